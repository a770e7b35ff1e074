/**
 * The proxy of an S3 client: which proxy applies (`--etcd-s3-proxy`, else the proxy
 * environment given in `S3Settings.proxyEnv`, as Go's http.ProxyFromEnvironment), and the
 * agent that tunnels through it.
 *
 * Contract: `chooseProxy()` returns the proxy URL or undefined for a direct connection; a bad
 * URL is a `config` `EtcdsnapError` with k3s's message naming its source (the flag or the
 * variable). The proxy password is registered with `registerSecret()`. Never reads
 * `process.env`. With `https-proxy-agent`, the only import of it.
 */
import type { ClientRequest } from 'node:http';
import { isIP } from 'node:net';
import tls from 'node:tls';
import { HttpsProxyAgent } from 'https-proxy-agent';
import { registerSecret } from '../../log/logger.js';
import { cfg, nonEmpty, type ProxyEnvironment } from './settings.js';

/** TLS settings of the connection to the S3 endpoint itself. */
export interface TargetTls {
  ca?: string[];
  rejectUnauthorized: boolean;
}

/**
 * The proxy for `hostname:port`: `proxy` when set (`none`: no proxy), else the one `env`
 * gives (loopback and NO_PROXY matches excluded). Throws `config` for a bad URL.
 */
export function chooseProxy(
  proxy: string | undefined,
  env: ProxyEnvironment | undefined,
  target: { hostname: string; port: string; secure: boolean },
): URL | undefined {
  let proxyUrl: URL | undefined;
  if (proxy !== undefined && proxy !== '') {
    proxyUrl = proxy.toLowerCase() === 'none' ? undefined : parseProxy(proxy, '--etcd-s3-proxy');
  } else {
    proxyUrl = proxyFromEnvironment(env ?? {}, target.hostname, target.port, target.secure);
  }
  if (proxyUrl) registerSecret(decodeURIComponent(proxyUrl.password));
  return proxyUrl;
}

/** A proxy URL must be http(s)://host[:port]; the message is k3s's. Returns the parsed URL. */
function parseProxy(value: string, source: string): URL {
  let u: URL | undefined;
  try {
    u = new URL(value);
  } catch {
    u = undefined;
  }
  if (u === undefined || u.hostname === '' || !/^[a-z][a-z0-9+.-]*:$/i.test(u.protocol)) {
    throw cfg(`proxy URL must include scheme and host (${source})`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw cfg(`proxy URL scheme ${u.protocol.slice(0, -1)} is not supported; use http:// or https:// (${source})`);
  }
  return u;
}

function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || hostname.endsWith('.localhost') || /^127\./.test(hostname) || hostname === '::1';
}

/** Go's http.ProxyFromEnvironment for one target: HTTPS_PROXY/HTTP_PROXY, NO_PROXY, loopback excluded. */
function proxyFromEnvironment(env: ProxyEnvironment, hostname: string, port: string, secure: boolean): URL | undefined {
  const name = secure ? 'HTTPS_PROXY' : 'HTTP_PROXY';
  const lower = secure ? 'https_proxy' : 'http_proxy';
  const raw = nonEmpty(env[name]) ?? nonEmpty(env[lower]);
  if (raw === undefined || isLoopback(hostname)) return undefined;
  const noProxy = nonEmpty(env.NO_PROXY) ?? nonEmpty(env.no_proxy) ?? '';
  for (let entry of noProxy
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s !== '')) {
    if (entry === '*') return undefined;
    let entryPort = '';
    const m = /^(.*):(\d+)$/.exec(entry);
    if (m && isIP(entry) !== 6) {
      entry = m[1] ?? entry;
      entryPort = m[2] ?? '';
    }
    if (entryPort !== '' && entryPort !== port) continue;
    const h = hostname.toLowerCase();
    const bare = entry.replace(/^\*?\./, '');
    if (h === bare || h.endsWith(`.${bare}`)) return undefined;
  }
  // Go accepts a bare host:port here and assumes http://.
  const value = /^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `http://${raw}`;
  return parseProxy(value, `environment variable ${env[name] !== undefined ? name : lower}`);
}

/**
 * https-proxy-agent applies its own TLS options to the proxy hop only; the TLS session to the
 * S3 endpoint is built from the per-request options, which the SDK does not fill. This agent
 * adds the endpoint CA / verification setting to the target connection, and checks the
 * certificate against the real target host (the library sets no servername for IP literals).
 */
export class TargetTlsProxyAgent extends HttpsProxyAgent<string> {
  constructor(
    proxy: URL,
    private readonly targetTls: TargetTls,
  ) {
    super(proxy, { keepAlive: true, ...(targetTls.ca ? { ca: targetTls.ca } : {}) });
  }

  override connect(req: ClientRequest, opts: Parameters<HttpsProxyAgent<string>['connect']>[1]): ReturnType<HttpsProxyAgent<string>['connect']> {
    if (!opts.secureEndpoint) return super.connect(req, opts);
    const host = opts.host ?? 'localhost';
    return super.connect(req, {
      ...opts,
      ...(this.targetTls.ca ? { ca: this.targetTls.ca } : {}),
      rejectUnauthorized: this.targetTls.rejectUnauthorized,
      checkServerIdentity: (_name: string, cert: tls.PeerCertificate) => tls.checkServerIdentity(host, cert),
    });
  }
}
