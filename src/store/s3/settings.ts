/**
 * S3 settings: the `S3Settings` value, its validation, and the endpoint CA loading.
 *
 * Contract: `resolveSettings()` checks one `S3Settings` synchronously and returns what the
 * client is built from, or throws a `config` `EtcdsnapError` with k3s's message where k3s has
 * one. It registers the access key, secret key and session token with `registerSecret()`
 * first, so that no later message can show them. The only I/O is reading the endpoint CA
 * files the setting names (k3s semantics); nothing here reads the environment: the proxy
 * environment comes in as `S3Settings.proxyEnv`. No AWS SDK import.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { EtcdsnapError, errnoCode, messageOf } from '../../errors.js';
import { registerSecret } from '../../log/secrets.js';
import { CLI_S3_OPTIONS, stringDefault } from '../../config/schema.js';

/**
 * The proxy variables of the environment that applies to a store (Go's
 * http.ProxyFromEnvironment reads the upper-case name first, then the lower-case one).
 * Read once at the edge (`proxyEnvironment` in snapshot/s3-config.ts); the store never
 * reads `process.env`.
 */
export type ProxyEnvironment = Partial<Record<'HTTPS_PROXY' | 'https_proxy' | 'HTTP_PROXY' | 'http_proxy' | 'NO_PROXY' | 'no_proxy', string>>;

/** Settings of one S3 target, already merged from flags, env and config file by the caller. */
export interface S3Settings {
  /** host[:port] without a scheme; `--etcd-s3-insecure` selects http. */
  endpoint: string;
  /**
   * PEM text (certificate content; no file is read), or a space-separated list where each item
   * is base64 of a PEM bundle or a file path (k3s tries base64 first). File paths belong to the
   * server's own configuration only: an API request's value is always PEM text (see
   * `parseS3Request`). The certificates are trusted in addition to the system roots. Ignored
   * when `skipSslVerify` is set.
   */
  endpointCA?: string;
  skipSslVerify: boolean;
  /** Static credentials; when none is given the AWS default credential chain applies. */
  accessKey?: string;
  secretKey?: string;
  sessionToken?: string;
  bucket: string;
  region: string;
  /** Key prefix; '' is the bucket root. Slashes are normalised like Go's path.Join. */
  folder: string;
  /** Plain http instead of https. */
  insecure: boolean;
  /** Deadline per operation, in milliseconds. */
  timeoutMs: number;
  /** Proxy URL (http/https), `none` for no proxy, undefined for the proxy environment (`proxyEnv`). */
  proxy?: string;
  /**
   * The HTTPS_PROXY/HTTP_PROXY/NO_PROXY values that apply when `proxy` is undefined; absent:
   * no proxy. The server fills it from its own environment; it is never sent in a request.
   */
  proxyEnv?: ProxyEnvironment;
  /**
   * `auto`: path-style for IP-literal and non-AWS endpoints, virtual-host for *.amazonaws.com
   * (and endpoints containing `aliyun`, as k3s); `dns`: virtual-host; `path`: path-style.
   */
  bucketLookup: 'auto' | 'dns' | 'path';
}

/** Checked settings, ready for building a client. */
export interface ResolvedSettings {
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** The endpoint's hostname (IPv6 without brackets). */
  hostname: string;
  /** The endpoint's port, or the scheme's default. */
  port: string;
  folder: string;
  region: string;
  /** System roots plus the endpoint CAs; undefined for the system roots only. */
  ca?: string[];
  forcePathStyle: boolean;
}

export function cfg(message: string): EtcdsnapError {
  return new EtcdsnapError('config', message);
}

export function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v === '' ? undefined : v;
}

/**
 * Validates `settings` in k3s's order: endpoint, bucket, timeout, credentials, folder, CA.
 * Throws `config` EtcdsnapErrors (see `S3Store.create`).
 */
export function resolveSettings(settings: S3Settings): ResolvedSettings {
  const accessKey = nonEmpty(settings.accessKey);
  const secretKey = nonEmpty(settings.secretKey);
  const sessionToken = nonEmpty(settings.sessionToken);
  registerSecret(accessKey);
  registerSecret(secretKey);
  registerSecret(sessionToken);

  const { hostname } = parseEndpoint(settings.endpoint);
  if (settings.bucket === '') throw cfg('s3 bucket name was not set');
  if (!Number.isFinite(settings.timeoutMs) || settings.timeoutMs <= 0) throw cfg('--etcd-s3-timeout must be a positive duration');
  if ((accessKey === undefined) !== (secretKey === undefined)) {
    throw cfg('--etcd-s3-access-key and --etcd-s3-secret-key must be given together (or neither, for the AWS default credential chain)');
  }
  if (sessionToken !== undefined && accessKey === undefined) {
    throw cfg('--etcd-s3-session-token needs --etcd-s3-access-key and --etcd-s3-secret-key');
  }
  const folder = normaliseFolder(settings.folder);
  // an empty region (given as such) means the schema's default, as k3s
  const region = settings.region === '' ? stringDefault(CLI_S3_OPTIONS, 's3-region') : settings.region;
  const rawPort = settings.endpoint.slice(settings.endpoint.lastIndexOf(':') + 1);
  const port = /^\d+$/.test(rawPort) ? rawPort : settings.insecure ? '80' : '443';

  const ca =
    !settings.insecure && !settings.skipSslVerify && nonEmpty(settings.endpointCA?.trim()) !== undefined
      ? [...tls.rootCertificates, ...loadEndpointCAs(settings.endpointCA ?? '')]
      : undefined;

  let forcePathStyle: boolean;
  if (settings.bucketLookup === 'path') forcePathStyle = true;
  else if (settings.bucketLookup === 'dns' || settings.endpoint.includes('aliyun')) forcePathStyle = false;
  else forcePathStyle = isIP(hostname) !== 0 || !(hostname === 'amazonaws.com' || hostname.endsWith('.amazonaws.com'));

  return {
    ...(accessKey !== undefined && secretKey !== undefined
      ? { credentials: { accessKeyId: accessKey, secretAccessKey: secretKey, ...(sessionToken ? { sessionToken } : {}) } }
      : {}),
    hostname,
    port,
    folder,
    region,
    ...(ca ? { ca } : {}),
    forcePathStyle,
  };
}

/** Checks `host[:port]` (no scheme, path, user info or query) and returns the hostname. */
function parseEndpoint(endpoint: string): { hostname: string } {
  const schemeMsg = '--etcd-s3-endpoint must be host[:port] without a scheme; use --etcd-s3-insecure for http';
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(endpoint)) throw cfg(schemeMsg);
  if (endpoint.trim() === '') throw cfg('--etcd-s3-endpoint is empty; give host[:port]');
  let u: URL;
  try {
    u = new URL(`http://${endpoint}`);
  } catch {
    throw cfg(`--etcd-s3-endpoint ${JSON.stringify(endpoint)} is not a valid host[:port]`);
  }
  if (u.hostname === '' || u.username !== '' || u.password !== '' || u.search !== '' || u.hash !== '' || (u.pathname !== '/' && u.pathname !== '')) {
    throw cfg(`--etcd-s3-endpoint ${JSON.stringify(endpoint)} must be host[:port] only (no path, query or user info)`);
  }
  if (endpoint.endsWith('/')) throw cfg(`--etcd-s3-endpoint ${JSON.stringify(endpoint)} must be host[:port] only (no path)`);
  return { hostname: u.hostname.replace(/^\[|\]$/g, '') };
}

/** Go `path.Join`-like normalisation of the folder; leading/trailing slashes are dropped. */
function normaliseFolder(folder: string): string {
  if (folder === '') return '';
  const n = path.posix.normalize(folder).replace(/^\/+|\/+$/g, '');
  if (n === '.' || n === '') return '';
  if (n === '..' || n.startsWith('../')) throw cfg(`--etcd-s3-folder ${JSON.stringify(folder)} must not start with '..'`);
  return n;
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Valid PEM certificates found in `text` (invalid blocks are skipped, as Go's AppendCertsFromPEM). */
function pemCertificates(text: string): string[] {
  const out: string[] = [];
  for (const block of text.match(PEM_CERT) ?? []) {
    try {
      new X509Certificate(block);
      out.push(block);
    } catch {
      /* skipped */
    }
  }
  return out;
}

/**
 * The endpoint CAs of `spec`. PEM text is used as content and never read as a path. Anything
 * else has k3s semantics for `--etcd-s3-endpoint-ca`: each space-separated item is tried as
 * base64 of a PEM bundle, then as a file path. No certificate at all is a config error.
 */
function loadEndpointCAs(spec: string): string[] {
  if (spec.includes('-----BEGIN')) {
    const fromPem = pemCertificates(spec);
    if (fromPem.length === 0) throw cfg('no certificates loaded from etcd-s3-endpoint-ca (the PEM content holds no valid certificate)');
    return fromPem;
  }
  const certs: string[] = [];
  const problems: string[] = [];
  for (const item of spec.split(/\s+/).filter((s) => s !== '')) {
    if (/^[A-Za-z0-9+/=_-]+$/.test(item)) {
      const fromBase64 = pemCertificates(Buffer.from(item, 'base64').toString('utf8'));
      if (fromBase64.length > 0) {
        certs.push(...fromBase64);
        continue;
      }
    }
    let text: string;
    try {
      text = readFileSync(item, 'utf8');
    } catch (err) {
      // Only paths are shown: a failed base64 item is not echoed (it could be long).
      if (item.includes('/') || item.includes('.')) problems.push(`${item}: ${errnoCode(err) ?? messageOf(err)}`);
      else problems.push('an item is neither base64 PEM nor a readable file');
      continue;
    }
    const fromFile = pemCertificates(text);
    if (fromFile.length === 0) problems.push(`${item}: no PEM certificate in the file`);
    certs.push(...fromFile);
  }
  if (certs.length === 0) {
    throw cfg(`no certificates loaded from etcd-s3-endpoint-ca${problems.length > 0 ? ` (${problems.join('; ')})` : ''}`);
  }
  return certs;
}
