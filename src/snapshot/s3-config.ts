/**
 * S3 settings from flags/config (server: `--etcd-s3-*`; CLI: `--s3-*`) and from the
 * `s3` field of an API request. Pure: validation only, no I/O; the S3 module checks the rest
 * (endpoint scheme, proxy, the server's own CA files) when it builds its client.
 *
 * Endpoint CAs: the server's own setting may name files (k3s semantics, read by
 * `S3Store.create`); a request's `endpointCA` must be certificate content (PEM, or base64
 * of PEM or DER), which `parseS3Request` turns into PEM text, so that a request can never
 * make the server read a file. The CLI reads `--s3-endpoint-ca` files itself and sends
 * their content.
 *
 * The proxy environment (HTTPS_PROXY/HTTP_PROXY/NO_PROXY) is read here, at the edge, by
 * `proxyEnvironment` from the environment the caller passes, and travels in
 * `S3Settings.proxyEnv`: the server's own settings get it from `s3OptionsFromValues`, a
 * request's from `withProxyEnvironment`. It is the server's, never sent by the CLI.
 */
import { X509Certificate } from 'node:crypto';
import { EtcdsnapError } from '../errors.js';
import type { Values } from '../config/resolve.js';
import type { ProxyEnvironment, S3Settings } from '../store/s3.js';

export interface S3Options {
  settings: S3Settings;
  /** Keep this many per node and name prefix in S3; 0 disables S3 pruning. */
  retention: number;
}

const bad = (msg: string): EtcdsnapError => new EtcdsnapError('config', msg);

const PROXY_VARIABLES = ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy', 'NO_PROXY', 'no_proxy'] as const;

/** The proxy variables of `env` (the process environment, read once at start), as given. */
export function proxyEnvironment(env: Readonly<Record<string, string | undefined>>): ProxyEnvironment {
  const out: ProxyEnvironment = {};
  for (const name of PROXY_VARIABLES) {
    const value = env[name];
    if (value !== undefined) out[name] = value;
  }
  return out;
}

/** `o` with `proxyEnv` (the server's proxy environment) in its settings. */
export function withProxyEnvironment(o: S3Options, proxyEnv: ProxyEnvironment): S3Options {
  return { ...o, settings: { ...o.settings, proxyEnv } };
}

/**
 * Reads S3 options from resolved values; undefined when S3 is off. `proxyEnv` is the proxy
 * environment that applies when no `s3-proxy` is set (the server's; the CLI gives none, as
 * its settings are sent to the server).
 */
export function s3OptionsFromValues(v: Values, prefix: 'etcd-' | '', proxyEnv?: ProxyEnvironment): S3Options | undefined {
  const k = (name: string): string => `${prefix}${name}`;
  if (!v.bool(k('s3'))) return undefined;
  const bucket = v.str(k('s3-bucket')) ?? '';
  if (bucket === '') throw bad(`--${k('s3-bucket')} is required with --${k('s3')}`);
  const lookup = v.str(k('s3-bucket-lookup-type')) ?? 'auto';
  const opt = (name: string): string | undefined => {
    const s = v.str(k(name));
    return s === undefined || s === '' ? undefined : s;
  };
  const settings: S3Settings = {
    endpoint: v.str(k('s3-endpoint')) ?? 's3.amazonaws.com',
    skipSslVerify: v.bool(k('s3-skip-ssl-verify')),
    bucket,
    region: v.str(k('s3-region')) ?? 'us-east-1',
    folder: v.str(k('s3-folder')) ?? '',
    insecure: v.bool(k('s3-insecure')),
    timeoutMs: v.int(k('s3-timeout')) ?? 300_000,
    bucketLookup: lookup === 'dns' || lookup === 'path' ? lookup : 'auto',
  };
  const ca = opt('s3-endpoint-ca');
  if (ca !== undefined) settings.endpointCA = ca;
  const ak = opt('s3-access-key');
  if (ak !== undefined) settings.accessKey = ak;
  const sk = opt('s3-secret-key');
  if (sk !== undefined) settings.secretKey = sk;
  const st = opt('s3-session-token');
  if (st !== undefined) settings.sessionToken = st;
  const proxy = opt('s3-proxy');
  if (proxy !== undefined) settings.proxy = proxy;
  if (proxyEnv !== undefined) settings.proxyEnv = proxyEnv;
  return { settings, retention: v.int(k('s3-retention')) ?? 5 };
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
const BASE64_ITEM = /^[A-Za-z0-9+/=_-]+$/;
/** The message for an `endpointCA` in a request that is not certificate content. */
export const REQUEST_CA_MESSAGE = 'endpointCA in a request must be PEM content; the CLI reads the file for you';

/**
 * The valid certificates of a PEM bundle, as PEM text (one after the other); undefined when
 * it holds none. Invalid blocks and text between blocks are dropped.
 */
export function pemBundle(text: string): string | undefined {
  const certs: string[] = [];
  for (const block of text.match(PEM_CERT) ?? []) {
    try {
      certs.push(new X509Certificate(block).toString());
    } catch {
      /* not a certificate: dropped */
    }
  }
  return certs.length > 0 ? certs.join('') : undefined;
}

/**
 * Certificates given as content, as PEM text: `spec` is PEM text, or space-separated items
 * each base64 of a PEM bundle or of one DER certificate. Undefined when `spec` is not such
 * content (e.g. a file path) or holds no valid certificate. Never reads a file.
 */
export function endpointCAContent(spec: string): string | undefined {
  if (spec.includes('-----BEGIN')) return pemBundle(spec);
  const items = spec.split(/\s+/).filter((s) => s !== '');
  if (items.length === 0) return undefined;
  const out: string[] = [];
  for (const item of items) {
    if (!BASE64_ITEM.test(item)) return undefined;
    const bytes = Buffer.from(item, 'base64');
    let pem: string | undefined;
    if (bytes.toString('latin1').includes('-----BEGIN')) pem = pemBundle(bytes.toString('utf8'));
    else {
      try {
        pem = new X509Certificate(bytes).toString();
      } catch {
        pem = undefined;
      }
    }
    if (pem === undefined) return undefined;
    out.push(pem);
  }
  return out.join('');
}

const STRING_FIELDS = ['endpoint', 'endpointCA', 'accessKey', 'secretKey', 'sessionToken', 'bucket', 'region', 'folder', 'proxy'] as const;
const BOOL_FIELDS = ['skipSslVerify', 'insecure'] as const;

/** Validates the `s3` object of an API request (the CLI's S3 flags). */
export function parseS3Request(raw: unknown): S3Options {
  const badReq = (msg: string): EtcdsnapError => new EtcdsnapError('usage', `invalid field "s3": ${msg}`);
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw badReq('expected an object');
  const o = raw as Record<string, unknown>;
  const known = new Set<string>([...STRING_FIELDS, ...BOOL_FIELDS, 'timeoutMs', 'bucketLookup', 'retention']);
  for (const key of Object.keys(o)) if (!known.has(key)) throw badReq(`unknown field "${key.slice(0, 64)}"`);
  const str = (key: string, maxChars = 16_384): string | undefined => {
    const val = o[key];
    if (val === undefined) return undefined;
    if (typeof val !== 'string' || val.length > maxChars) throw badReq(`"${key}" must be a string`);
    return val;
  };
  const bool = (key: string): boolean => {
    const val = o[key];
    if (val === undefined) return false;
    if (typeof val !== 'boolean') throw badReq(`"${key}" must be true or false`);
    return val;
  };
  const int = (key: string, min: number, max: number, dflt: number): number => {
    const val = o[key];
    if (val === undefined) return dflt;
    if (typeof val !== 'number' || !Number.isInteger(val) || val < min || val > max) throw badReq(`"${key}" must be a whole number from ${min} to ${max}`);
    return val;
  };
  const bucket = str('bucket') ?? '';
  if (bucket === '') throw badReq('"bucket" is required');
  const lookup = str('bucketLookup') ?? 'auto';
  if (lookup !== 'auto' && lookup !== 'dns' && lookup !== 'path') throw badReq('"bucketLookup" must be auto, dns or path');
  const settings: S3Settings = {
    endpoint: str('endpoint') ?? 's3.amazonaws.com',
    skipSslVerify: bool('skipSslVerify'),
    bucket,
    region: str('region') ?? 'us-east-1',
    folder: str('folder') ?? '',
    insecure: bool('insecure'),
    timeoutMs: int('timeoutMs', 1000, 24 * 3600_000, 300_000),
    bucketLookup: lookup,
  };
  for (const key of ['accessKey', 'secretKey', 'sessionToken', 'proxy'] as const) {
    const val = str(key);
    if (val !== undefined && val !== '') settings[key] = val;
  }
  // content only: a path would make the server read (and tell about) any file; the same
  // message whatever the value, so nothing is revealed about it
  const ca = str('endpointCA', 60_000);
  if (ca !== undefined && ca.trim() !== '') {
    const pem = endpointCAContent(ca);
    if (pem === undefined) throw badReq(REQUEST_CA_MESSAGE);
    settings.endpointCA = pem;
  }
  return { settings, retention: int('retention', 0, 100_000, 5) };
}

/**
 * The `s3` object the CLI sends (the inverse of `parseS3Request`). `endpointCA` must already
 * be content (the CLI reads files first); it is sent as given. A `proxyEnv` is never sent.
 */
export function s3Request(o: S3Options): Record<string, unknown> {
  const { proxyEnv: _local, ...settings } = o.settings;
  return { ...settings, retention: o.retention };
}
