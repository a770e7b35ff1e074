/**
 * The S3 snapshot store: the ONLY module that imports the AWS SDK (`@aws-sdk/client-s3`)
 * and `https-proxy-agent`. Everything else talks to S3 through
 * `S3Store`.
 *
 * Contract:
 * - `S3Store.create(settings)` validates the settings synchronously and throws a `config`
 *   `EtcdsnapError` (k3s's messages where k3s has one). It registers the access key, secret
 *   key, session token and any proxy password with `registerSecret()`; no message produced
 *   here ever contains them (SDK messages are passed through `scrubSecrets()`).
 * - Object keys follow k3s: `path.Join(folder, name)`; sidecars are `<folder>/.metadata/<name>`;
 *   the location string is `s3://<bucket>/<key>`.
 * - Every call gets its own deadline of `timeoutMs` (k3s's `--etcd-s3-timeout` per operation)
 *   covering the SDK's retries (maxAttempts 3); each HTTP request also has `timeoutMs` as
 *   connection and request timeout. `upload()` and the body of `getStream()` are the
 *   exceptions: their length depends on the data, so there the limit applies per HTTP request
 *   (each part) and to socket inactivity, not to the whole transfer.
 * - Failures are `EtcdsnapError`s: `not-found` (NoSuchKey, NoSuchBucket, 404), `auth`
 *   (InvalidAccessKeyId, SignatureDoesNotMatch, AccessDenied, 401/403, no credentials found),
 *   `unavailable` (network errors, timeouts, 5xx, 429; retryable), `config` (bad settings,
 *   TLS trust failures, wrong region/endpoint). Messages name the operation, the bucket/key
 *   and the endpoint, plus the S3 error code and HTTP status. The `cause` is a sanitised copy
 *   of the SDK error (name, code, status, scrubbed message), never the SDK object itself.
 * - S3-compatible servers: DeleteObjects (and any other call the SDK checksums) is sent with
 *   `Content-MD5` instead of the SDK's CRC32 headers, and checksums are only computed/validated
 *   when an operation requires them (`WHEN_REQUIRED`). Swift, MinIO and Ceph need this.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { ClientRequest } from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import path from 'node:path';
import { Readable } from 'node:stream';
import tls from 'node:tls';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { HttpsProxyAgent } from 'https-proxy-agent';
import { EtcdsnapError, errnoCode, messageOf } from '../errors.js';
import { registerSecret, scrubSecrets } from '../log/logger.js';
import { assertSafeName } from '../snapshot/naming.js';
import { sendInParts, type PartSink } from './parts.js';

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
  /** Proxy URL (http/https), `none` for no proxy, undefined for HTTPS_PROXY/HTTP_PROXY/NO_PROXY. */
  proxy?: string;
  /**
   * `auto`: path-style for IP-literal and non-AWS endpoints, virtual-host for *.amazonaws.com
   * (and endpoints containing `aliyun`, as k3s); `dns`: virtual-host; `path`: path-style.
   */
  bucketLookup: 'auto' | 'dns' | 'path';
}

/** One object from a listing. */
export interface S3ObjectInfo {
  /** The full object key. */
  key: string;
  /** The key relative to the folder (e.g. `snap-1`, `.metadata/snap-1`). */
  name: string;
  size: number;
  lastModified: Date;
}

/** Options of `S3Store.upload()`. */
export interface S3UploadOptions {
  contentType: string;
  /** User metadata (sent as `x-amz-meta-<key>`); keys should be lower case. */
  metadata: Record<string, string>;
  /** Aborting it aborts the upload (the promise rejects; nothing is left in the bucket). */
  signal?: AbortSignal;
  /** Multipart part size, at least 5 MiB; default 16 MiB. */
  partSizeBytes?: number;
}

/** Options of `S3Store.list()`. */
export interface S3ListOptions {
  /** Objects per ListObjectsV2 page (MaxKeys); default 1000. */
  pageSize?: number;
  signal?: AbortSignal;
}

const MiB = 1024 * 1024;
/** Default multipart part size. */
export const DEFAULT_PART_SIZE = 16 * MiB;
/** Reused part buffers per upload, which is also the most parts in flight: memory is partSize × UPLOAD_BUFFERS. */
export const UPLOAD_BUFFERS = 3;
const MIN_PART_SIZE = 5 * MiB;
const DELETE_BATCH = 1000;
const DEFAULT_AWS_ENDPOINT = 's3.amazonaws.com';

// ---------------------------------------------------------------------------------------------
// Settings validation

function cfg(message: string): EtcdsnapError {
  return new EtcdsnapError('config', message);
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v === '' ? undefined : v;
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
function proxyFromEnvironment(hostname: string, port: string, secure: boolean): URL | undefined {
  const env = process.env;
  const name = secure ? 'HTTPS_PROXY' : 'HTTP_PROXY';
  const raw = nonEmpty(env[name]) ?? nonEmpty(env[name.toLowerCase()]);
  if (raw === undefined || isLoopback(hostname)) return undefined;
  const noProxy = nonEmpty(env.NO_PROXY) ?? nonEmpty(env.no_proxy) ?? '';
  for (let entry of noProxy.split(',').map((s) => s.trim().toLowerCase()).filter((s) => s !== '')) {
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
  return parseProxy(value, `environment variable ${env[name] !== undefined ? name : name.toLowerCase()}`);
}

/**
 * https-proxy-agent applies its own TLS options to the proxy hop only; the TLS session to the
 * S3 endpoint is built from the per-request options, which the SDK does not fill. This agent
 * adds the endpoint CA / verification setting to the target connection, and checks the
 * certificate against the real target host (the library sets no servername for IP literals).
 */
class TargetTlsProxyAgent extends HttpsProxyAgent<string> {
  constructor(
    proxy: URL,
    private readonly targetTls: { ca?: string[]; rejectUnauthorized: boolean },
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

// ---------------------------------------------------------------------------------------------
// SDK plumbing

/**
 * Build-step middleware (aws-sdk-js-v3 supplemental-docs/MD5_FALLBACK.md): for DeleteObjects,
 * and for any request with a buffered body that the SDK gave a flexible checksum, drop the
 * `x-amz-checksum-*` / `x-amz-sdk-checksum-*` headers and send `Content-MD5` instead. Added at
 * low priority so it runs after the SDK's own checksum middleware.
 */
/** The SDK's HTTP request inside a middleware's args, when it is one (it has headers). */
function httpRequestOf(req: unknown): { headers: Record<string, string>; body?: unknown } | undefined {
  return typeof req === 'object' && req !== null && 'headers' in req ? (req as { headers: Record<string, string>; body?: unknown }) : undefined;
}

function md5FallbackMiddleware<A extends { request: unknown }, R>(
  next: (args: A) => Promise<R>,
  context: { commandName?: string },
): (args: A) => Promise<R> {
  return async (args: A): Promise<R> => {
    const req = httpRequestOf(args.request);
    if (!req) return next(args);
    const { headers, body } = req;
    const checksumHeaders = Object.keys(headers).filter((h) => {
      const l = h.toLowerCase();
      return l.startsWith('x-amz-checksum-') || l.startsWith('x-amz-sdk-checksum-');
    });
    const buffered = typeof body === 'string' || body instanceof Uint8Array;
    if (!buffered || (context.commandName !== 'DeleteObjectsCommand' && checksumHeaders.length === 0)) return next(args);
    for (const h of checksumHeaders) delete headers[h];
    for (const h of Object.keys(headers)) if (h.toLowerCase() === 'content-md5') delete headers[h];
    headers['Content-MD5'] = createHash('md5').update(body).digest('base64');
    return next(args);
  };
}

/**
 * Build-step middleware: upload parts go with `x-amz-content-sha256: UNSIGNED-PAYLOAD`, so
 * neither the SDK nor the server hashes each part a second time for the signature (the
 * headers are still signed). Integrity comes from our own sha256 (sidecar, checked on
 * download and restore), as the parts' content was already hashed once in the pipeline.
 */
function unsignedPartsMiddleware<A extends { request: unknown }, R>(
  next: (args: A) => Promise<R>,
  context: { commandName?: string },
): (args: A) => Promise<R> {
  return async (args: A): Promise<R> => {
    const req = httpRequestOf(args.request);
    if (context.commandName === 'UploadPartCommand' && req) req.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
    return next(args);
  };
}

let sdkWarningHandled = false;
/**
 * The SDK prints a NodeVersionSupportWarning on Node < 22 when a client is built; it has its
 * own documented opt-out variable, which we set unless the user set it.
 */
function quietSdkNodeWarning(): void {
  if (sdkWarningHandled) return;
  sdkWarningHandled = true;
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
}

interface SdkErrorShape {
  name: string;
  message: string;
  code?: string;
  status?: number;
}

function sdkErrorShape(err: unknown): SdkErrorShape {
  const o = typeof err === 'object' && err !== null ? (err as Record<string, unknown>) : {};
  const meta = typeof o.$metadata === 'object' && o.$metadata !== null ? (o.$metadata as Record<string, unknown>) : {};
  const status = typeof meta.httpStatusCode === 'number' ? meta.httpStatusCode : undefined;
  // Errors without a body (HEAD) come back as "Unknown"/"UnknownError"; the status says more.
  const rawName = typeof o.name === 'string' ? o.name : 'Error';
  const name = rawName === 'Unknown' || rawName === 'UnknownError' ? 'Error' : rawName;
  const code = typeof o.Code === 'string' ? o.Code : errnoCode(err);
  return { name, message: scrubSecrets(messageOf(err)), code, status };
}

const NOT_FOUND = new Set(['NoSuchKey', 'NoSuchBucket', 'NotFound', 'NoSuchUpload']);
const AUTH = new Set([
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'AccessDenied',
  'Forbidden',
  'InvalidToken',
  'ExpiredToken',
  'TokenRefreshRequired',
  'InvalidSecurity',
  'CredentialsProviderError',
  'AccountProblem',
]);
const CONFIG = new Set([
  'AuthorizationHeaderMalformed',
  'PermanentRedirect',
  'InvalidBucketName',
  'IllegalLocationConstraintException',
  'InvalidRegion',
  'InvalidArgument',
]);
const TLS_TRUST = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);
const NETWORK = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EADDRNOTAVAIL',
  'ERR_STREAM_PREMATURE_CLOSE',
  'UND_ERR_SOCKET',
]);

/** A plain Error with the SDK error's identifying fields, safe to log. */
function sanitisedCause(s: SdkErrorShape): Error {
  return Object.assign(new Error(s.message), { name: s.name, ...(s.code ? { code: s.code } : {}), ...(s.status ? { httpStatusCode: s.status } : {}) });
}

/**
 * Turns an SDK/network error into an EtcdsnapError. `what` names the operation and object,
 * e.g. `GetObject s3://b/k`; the endpoint is appended.
 */
function translate(err: unknown, what: string, endpoint: string, deadline?: { timedOut: boolean; ms: number }): EtcdsnapError {
  if (err instanceof EtcdsnapError) return err;
  const s = sdkErrorShape(err);
  const label = [s.name !== 'Error' ? s.name : s.code, s.status !== undefined ? `HTTP ${s.status}` : undefined].filter(Boolean).join(', ');
  const detail = s.message !== '' && s.message !== s.name && s.message !== 'UnknownError' ? `: ${s.message}` : '';
  const base = `${what} at ${endpoint} failed${label ? ` (${label})` : ''}${detail}`;
  const cause = sanitisedCause(s);
  const status = s.status ?? 0;
  if (deadline?.timedOut || s.name === 'TimeoutError' || s.code === 'ETIMEDOUT' || s.code === 'ESOCKETTIMEDOUT') {
    return new EtcdsnapError('unavailable', `${what} at ${endpoint} timed out${deadline?.timedOut ? ` after ${deadline.ms} ms` : ''}${detail}`, { cause });
  }
  if (NOT_FOUND.has(s.name) || status === 404) return new EtcdsnapError('not-found', base, { cause });
  if (AUTH.has(s.name) || status === 401 || status === 403) {
    return new EtcdsnapError('auth', `${base}; check the S3 access key, secret key and session token`, { cause });
  }
  if ((s.code !== undefined && TLS_TRUST.has(s.code)) || /certificate|self[- ]signed/i.test(s.message)) {
    return new EtcdsnapError('config', `${base}; the server certificate is not trusted: set --etcd-s3-endpoint-ca or --etcd-s3-skip-ssl-verify`, { cause });
  }
  if (/wrong version number|packet length too long/i.test(s.message)) {
    return new EtcdsnapError('config', `${base}; the endpoint does not speak TLS: use --etcd-s3-insecure for http`, { cause });
  }
  if (CONFIG.has(s.name) || status === 301 || status === 307) return new EtcdsnapError('config', base, { cause });
  if (status === 409) return new EtcdsnapError('conflict', base, { cause, retryable: true });
  if (status >= 500 || status === 429 || s.name === 'SlowDown' || (s.code !== undefined && NETWORK.has(s.code)) || status === 0) {
    return new EtcdsnapError('unavailable', base, { cause });
  }
  return new EtcdsnapError('unavailable', base, { cause, retryable: false });
}

/**
 * A key from a listing sent with `encoding-type=url`: form-style percent-encoding ('+' is a
 * space, as AWS sends it; Swift sends %20; a literal '+' is %2B in both). Undefined when it
 * is not valid percent-encoded UTF-8.
 */
function decodeListedKey(encoded: string): string | undefined {
  try {
    return decodeURIComponent(encoded.replace(/\+/g, ' '));
  } catch {
    return undefined;
  }
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new Error('aborted');
}

// ---------------------------------------------------------------------------------------------
// The store

/**
 * One bucket/folder on one S3 endpoint. Create it with `S3Store.create()`; it keeps one
 * SDK client (with its connection pool) for its lifetime; call `destroy()` when done.
 */
export class S3Store {
  readonly bucket: string;
  /** Normalised folder ('' = bucket root), without leading or trailing slash. */
  readonly folder: string;
  /** host[:port] as configured, for messages. */
  readonly endpoint: string;
  private readonly client: S3Client;
  private readonly timeoutMs: number;

  private constructor(settings: S3Settings, client: S3Client, folder: string) {
    this.bucket = settings.bucket;
    this.folder = folder;
    this.endpoint = settings.endpoint;
    this.client = client;
    this.timeoutMs = settings.timeoutMs;
  }

  /**
   * Validates `settings` and builds the client. Throws `config` EtcdsnapErrors:
   * a scheme in the endpoint, an empty bucket (`s3 bucket name was not set`), an endpoint CA
   * that yields no certificate (`no certificates loaded from etcd-s3-endpoint-ca`), a bad proxy
   * URL (`proxy URL must include scheme and host`), only one of access key / secret key, a
   * non-positive timeout. No network I/O happens here; use `checkBucket()` for that.
   */
  static create(settings: S3Settings): S3Store {
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
    const region = settings.region === '' ? 'us-east-1' : settings.region;
    const port = settings.endpoint.slice(settings.endpoint.lastIndexOf(':') + 1);

    const ca = !settings.insecure && !settings.skipSslVerify && nonEmpty(settings.endpointCA?.trim()) !== undefined
      ? [...tls.rootCertificates, ...loadEndpointCAs(settings.endpointCA ?? '')]
      : undefined;
    const targetTls = { ...(ca ? { ca } : {}), rejectUnauthorized: !settings.skipSslVerify };

    let proxyUrl: URL | undefined;
    if (settings.proxy !== undefined && settings.proxy !== '') {
      proxyUrl = settings.proxy.toLowerCase() === 'none' ? undefined : parseProxy(settings.proxy, '--etcd-s3-proxy');
    } else {
      proxyUrl = proxyFromEnvironment(hostname, /^\d+$/.test(port) ? port : settings.insecure ? '80' : '443', !settings.insecure);
    }
    if (proxyUrl) {
      registerSecret(decodeURIComponent(proxyUrl.password));
    }

    let forcePathStyle: boolean;
    if (settings.bucketLookup === 'path') forcePathStyle = true;
    else if (settings.bucketLookup === 'dns' || settings.endpoint.includes('aliyun')) forcePathStyle = false;
    else forcePathStyle = isIP(hostname) !== 0 || !(hostname === 'amazonaws.com' || hostname.endsWith('.amazonaws.com'));

    const agent = proxyUrl ? new TargetTlsProxyAgent(proxyUrl, targetTls) : undefined;
    const requestHandler = {
      connectionTimeout: settings.timeoutMs,
      requestTimeout: settings.timeoutMs,
      throwOnRequestTimeout: true,
      socketTimeout: settings.timeoutMs,
      httpsAgent: agent ?? new https.Agent({ keepAlive: true, ...targetTls }),
      ...(agent ? { httpAgent: agent } : {}),
    };

    const config: S3ClientConfig = {
      region,
      forcePathStyle,
      maxAttempts: 3,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler,
      ...(accessKey !== undefined && secretKey !== undefined
        ? { credentials: { accessKeyId: accessKey, secretAccessKey: secretKey, ...(sessionToken ? { sessionToken } : {}) } }
        : {}),
    };
    // For AWS itself leave the endpoint to the SDK, so that the region picks the right host.
    if (settings.insecure || settings.endpoint !== DEFAULT_AWS_ENDPOINT) {
      config.endpoint = `${settings.insecure ? 'http' : 'https'}://${settings.endpoint}`;
    }

    quietSdkNodeWarning();
    const client = new S3Client(config);
    client.middlewareStack.add(md5FallbackMiddleware, { step: 'build', priority: 'low', name: 'etcdsnapContentMd5Fallback' });
    client.middlewareStack.add(unsignedPartsMiddleware, { step: 'build', priority: 'low', name: 'etcdsnapUnsignedParts' });
    return new S3Store({ ...settings, region }, client, folder);
  }

  /** `<folder>/<name>`; `name` must pass `assertSafeName` (a `usage` error otherwise). */
  key(name: string): string {
    const n = assertSafeName(name);
    return this.folder === '' ? n : `${this.folder}/${n}`;
  }

  /** `<folder>/.metadata/<name>`, the sidecar key. */
  metadataKey(name: string): string {
    const n = assertSafeName(name);
    return this.folder === '' ? `.metadata/${n}` : `${this.folder}/.metadata/${n}`;
  }

  /** `s3://<bucket>/<key(name)>`. */
  location(name: string): string {
    return `s3://${this.bucket}/${this.key(name)}`;
  }

  /** `s3://<bucket>/<folder> at <endpoint>`, for logs; never contains credentials. */
  describe(): string {
    return `s3://${this.bucket}/${this.folder} at ${this.endpoint}`;
  }

  /** Closes the client's idle connections. The store must not be used afterwards. */
  destroy(): void {
    this.client.destroy();
  }

  /**
   * Runs one SDK call under its own `timeoutMs` deadline (and the caller's signal), and
   * translates failures. The deadline ends when the call returns (a response body that is
   * still streaming is not cut by it).
   */
  private async call<T>(what: string, fn: (signal: AbortSignal) => Promise<T>, signal?: AbortSignal): Promise<T> {
    const ctl = new AbortController();
    const deadline = { timedOut: false, ms: this.timeoutMs };
    const timer = setTimeout(() => {
      deadline.timedOut = true;
      ctl.abort(new Error(`timed out after ${this.timeoutMs} ms`));
    }, this.timeoutMs);
    const onAbort = (): void => ctl.abort(signal ? abortReason(signal) : undefined);
    if (signal?.aborted) onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      return await fn(ctl.signal);
    } catch (err) {
      if (signal?.aborted && !deadline.timedOut) {
        throw new EtcdsnapError('unavailable', `${what} aborted: ${scrubSecrets(messageOf(abortReason(signal)))}`, { retryable: false });
      }
      throw translate(err, what, this.endpoint, deadline);
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /**
   * HeadBucket. Resolves when the bucket exists and the credentials may use it. Rejects with
   * `not-found` ("bucket X does not exist at ENDPOINT (NotFound, HTTP 404)"), `auth`,
   * `unavailable` or `config`; every message names the bucket and the endpoint.
   */
  async checkBucket(): Promise<void> {
    try {
      await this.call(`HeadBucket ${this.bucket}`, (abortSignal) => this.client.send(new HeadBucketCommand({ Bucket: this.bucket }), { abortSignal }));
    } catch (err) {
      if (err instanceof EtcdsnapError && err.kind === 'not-found') {
        const c = err.cause instanceof Error ? (err.cause as Error & { httpStatusCode?: number }) : undefined;
        const label = c ? ` (${[c.name, c.httpStatusCode ? `HTTP ${c.httpStatusCode}` : ''].filter(Boolean).join(', ')})` : '';
        throw new EtcdsnapError('not-found', `bucket ${this.bucket} does not exist at ${this.endpoint}${label}`, { cause: err.cause });
      }
      throw err;
    }
  }

  /**
   * Streams `body` to `key(name)` as a multipart upload: parts of `partSizeBytes` cut by
   * `sendInParts` into UPLOAD_BUFFERS reused buffers, that many in flight at most, so memory
   * stays at partSize × UPLOAD_BUFFERS whatever the size. A body shorter than one part is sent
   * with one PutObject once it ended.
   *
   * The object only appears when `body` ended normally (and no abort happened): if `body`
   * emits 'error' or closes before 'end', `signal` aborts, or any part fails (after the SDK's
   * retries), the in-flight requests are cancelled, the multipart upload is aborted (no parts
   * are left; if S3 is unreachable the abort itself may fail, which the message says), no
   * object is created, and the promise rejects with an EtcdsnapError: for a body failure the
   * kind of the body's error when it is an EtcdsnapError (else `unavailable`, not retryable);
   * for an abort `unavailable`, not retryable; for S3 failures the translated S3 error.
   *
   * `body` is never destroyed by this method; after a failure, unless another consumer reads
   * it, the rest is drained and discarded, so that a tee feeding both a local file and this
   * upload does not stall. If a commit request (Complete/PutObject) was sent before the
   * failure, a DeleteObject of the key is attempted so that no object remains.
   */
  async upload(name: string, body: Readable, opts: S3UploadOptions): Promise<void> {
    const key = this.key(name);
    const what = `upload of s3://${this.bucket}/${key}`;
    const partSize = opts.partSizeBytes ?? DEFAULT_PART_SIZE;
    if (!Number.isInteger(partSize) || partSize < MIN_PART_SIZE) throw cfg(`S3 part size must be at least ${MIN_PART_SIZE} bytes`);

    const ctl = new AbortController();
    let bodyError: unknown;
    let callerAborted = false;
    let s3Error: unknown;
    let abortMpuError: unknown;
    let commitSent = false;
    const onBodyError = (err: unknown): void => {
      bodyError ??= err;
      if (!ctl.signal.aborted) ctl.abort(err);
    };
    const onBodyClose = (): void => {
      if (!body.readableEnded) onBodyError(bodyError ?? new Error('the stream closed before its end'));
    };
    const onAbort = (): void => {
      callerAborted = true;
      if (!ctl.signal.aborted) ctl.abort(opts.signal ? abortReason(opts.signal) : new Error('aborted'));
    };
    body.on('error', onBodyError);
    body.on('close', onBodyClose);
    if (opts.signal?.aborted) onAbort();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    if (body.destroyed && !body.readableEnded) onBodyError(body.errored ?? new Error('the stream was destroyed'));

    const client = this.client;
    const base = { Bucket: this.bucket, Key: key };
    /** A data-carrying request: cancelled by any failure, and its own failure stops the rest. */
    const data = async <T>(request: Promise<T>): Promise<T> => {
      try {
        return await request;
      } catch (err) {
        if (!ctl.signal.aborted) {
          s3Error ??= err;
          ctl.abort(err);
        }
        throw err;
      }
    };
    // CreateMultipartUpload is not tied to the cancellation: a started upload is always known
    // (and aborted below), never left behind by a request cancelled after S3 acted on it.
    let created: Promise<string> | undefined;
    const create = (): Promise<string> =>
      (created ??= data(
        client.send(new CreateMultipartUploadCommand({ ...base, ContentType: opts.contentType, Metadata: opts.metadata }), {
          abortSignal: AbortSignal.timeout(this.timeoutMs),
        }),
      ).then((r) => {
        if (r.UploadId === undefined) throw new Error('CreateMultipartUpload returned no UploadId');
        return r.UploadId;
      }));
    const etags: string[] = [];
    const abortSignal = ctl.signal;
    const sink: PartSink = {
      part: async (n, bytes) => {
        const uploadId = await create();
        const r = await data(client.send(new UploadPartCommand({ ...base, UploadId: uploadId, PartNumber: n, Body: bytes, ContentLength: bytes.length }), { abortSignal }));
        if (r.ETag === undefined) throw new Error(`UploadPart ${n} returned no ETag`);
        etags[n - 1] = r.ETag;
      },
      single: async (bytes) => {
        if (abortSignal.aborted) throw abortSignal.reason;
        commitSent = true;
        await data(
          client.send(new PutObjectCommand({ ...base, Body: bytes, ContentLength: bytes.length, ContentType: opts.contentType, Metadata: opts.metadata }), { abortSignal }),
        );
      },
      complete: async (parts) => {
        const uploadId = await create();
        if (abortSignal.aborted) throw abortSignal.reason;
        commitSent = true;
        const Parts = etags.slice(0, parts).map((ETag, i) => ({ ETag, PartNumber: i + 1 }));
        await data(client.send(new CompleteMultipartUploadCommand({ ...base, UploadId: uploadId, MultipartUpload: { Parts } }), { abortSignal }));
      },
    };

    let failed = true;
    try {
      await sendInParts(body, sink, { partSize, buffers: UPLOAD_BUFFERS, signal: ctl.signal });
      failed = false;
    } catch (err) {
      if (!ctl.signal.aborted) ctl.abort(err);
      // a failed Create left nothing to abort; a failed Abort may leave parts
      const uploadId = await created?.catch(() => undefined);
      if (uploadId !== undefined) {
        try {
          await client.send(new AbortMultipartUploadCommand({ ...base, UploadId: uploadId }), { abortSignal: AbortSignal.timeout(this.timeoutMs) });
        } catch (abortErr) {
          abortMpuError = abortErr;
        }
      }
      // The commit request (Complete/PutObject) may have succeeded on the server even though we
      // saw a failure (cancelled or lost response): make sure no object is left under the key.
      if (commitSent) await this.deleteQuietly(key);
      const note = abortMpuError !== undefined
        ? `; aborting the multipart upload failed too (${scrubSecrets(messageOf(abortMpuError))}), so its parts may remain until a bucket lifecycle rule for incomplete uploads removes them`
        : '';
      if (bodyError !== undefined) {
        const kind = bodyError instanceof EtcdsnapError ? bodyError.kind : 'unavailable';
        throw new EtcdsnapError(kind, `${what} failed: the snapshot stream failed: ${scrubSecrets(messageOf(bodyError))}${note}`, { cause: bodyError, retryable: false });
      }
      if (callerAborted) {
        const reason = opts.signal ? abortReason(opts.signal) : undefined;
        throw new EtcdsnapError('unavailable', `${what} aborted: ${scrubSecrets(messageOf(reason))}${note}`, { retryable: false });
      }
      const t = translate(s3Error ?? err, what, this.endpoint);
      throw note === '' ? t : new EtcdsnapError(t.kind, `${t.message}${note}`, { cause: t.cause, retryable: t.retryable });
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
      body.off('error', onBodyError);
      body.off('close', onBodyClose);
      // Drain the rest unless something else still reads it.
      if (failed && !body.destroyed && body.listenerCount('data') === 0) body.resume();
    }
  }

  /** Best-effort DeleteObject after a failed upload; errors are ignored. */
  private async deleteQuietly(key: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }), { abortSignal: AbortSignal.timeout(this.timeoutMs) });
    } catch {
      /* S3 unreachable: nothing more we can do */
    }
  }

  /** PutObject of a small text object (sidecars). `key` is a full key (see `metadataKey`). */
  async putText(key: string, text: string, contentType: string): Promise<void> {
    await this.call(`PutObject s3://${this.bucket}/${key}`, (abortSignal) =>
      this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: text, ContentType: contentType }), { abortSignal }),
    );
  }

  /** GetObject as UTF-8 text; `undefined` when the key does not exist. */
  async getText(key: string): Promise<string | undefined> {
    try {
      return await this.call(`GetObject s3://${this.bucket}/${key}`, async (abortSignal) => {
        const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }), { abortSignal });
        return out.Body ? await out.Body.transformToString('utf8') : '';
      });
    } catch (err) {
      if (err instanceof EtcdsnapError && err.kind === 'not-found') return undefined;
      throw err;
    }
  }

  /**
   * GetObject as a stream; rejects `not-found` when the key does not exist. The deadline
   * covers getting the response; the body then only has the socket inactivity timeout. Errors
   * while reading the stream are plain Node stream errors.
   */
  async getStream(key: string): Promise<Readable> {
    return this.call(`GetObject s3://${this.bucket}/${key}`, async (abortSignal) => {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }), { abortSignal });
      const body: unknown = out.Body;
      if (!(body instanceof Readable)) throw new EtcdsnapError('unavailable', `GetObject s3://${this.bucket}/${key} returned no stream`);
      return body;
    });
  }

  /** HeadObject: size, mtime and user metadata (keys without `x-amz-meta-`); `undefined` on 404. */
  async head(key: string): Promise<{ size: number; lastModified: Date; metadata: Record<string, string> } | undefined> {
    try {
      return await this.call(`HeadObject s3://${this.bucket}/${key}`, async (abortSignal) => {
        const out = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }), { abortSignal });
        return { size: out.ContentLength ?? 0, lastModified: out.LastModified ?? new Date(0), metadata: { ...(out.Metadata ?? {}) } };
      });
    } catch (err) {
      if (err instanceof EtcdsnapError && err.kind === 'not-found') return undefined;
      throw err;
    }
  }

  /**
   * All objects under `<folder>/` (plus `prefix`, relative to the folder), recursively,
   * including `.metadata/` sidecars, in key order; pages through ListObjectsV2 continuation
   * tokens (`pageSize` keys per request, each page under its own deadline). Keys are listed
   * with `encoding-type=url` (as minio-go, which k3s uses) and decoded here, so that a key
   * with characters XML cannot carry (control characters) does not break the listing; an
   * S3 that ignores the parameter sends plain keys, which are used as they are. A key whose
   * encoding cannot be decoded is left out. `name` and `key` may hold any character: callers
   * check names before using them.
   */
  async *list(prefix = '', opts: S3ListOptions = {}): AsyncIterable<S3ObjectInfo> {
    const base = this.folder === '' ? '' : `${this.folder}/`;
    const fullPrefix = `${base}${prefix}`;
    let token: string | undefined;
    do {
      const page = await this.call(
        `ListObjectsV2 s3://${this.bucket}/${fullPrefix}`,
        (abortSignal) =>
          this.client.send(
            new ListObjectsV2Command({
              Bucket: this.bucket,
              Prefix: fullPrefix === '' ? undefined : fullPrefix,
              ContinuationToken: token,
              MaxKeys: opts.pageSize ?? 1000,
              EncodingType: 'url',
            }),
            { abortSignal },
          ),
        opts.signal,
      );
      const encoded = page.EncodingType === 'url';
      for (const o of page.Contents ?? []) {
        const key = o.Key === undefined ? undefined : encoded ? decodeListedKey(o.Key) : o.Key;
        if (key === undefined || !key.startsWith(base)) continue;
        yield { key, name: key.slice(base.length), size: o.Size ?? 0, lastModified: o.LastModified ?? new Date(0) };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  }

  /**
   * In-progress multipart uploads under the folder (all pages), for tests and cleanup. Keys
   * are listed and decoded like `list()`.
   */
  async listMultipartUploads(): Promise<Array<{ key: string; uploadId: string }>> {
    const prefix = this.folder === '' ? undefined : `${this.folder}/`;
    const out: Array<{ key: string; uploadId: string }> = [];
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      const page = await this.call(`ListMultipartUploads s3://${this.bucket}/${prefix ?? ''}`, (abortSignal) =>
        this.client.send(
          new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: prefix, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker, EncodingType: 'url' }),
          { abortSignal },
        ),
      );
      const encoded = page.EncodingType === 'url';
      for (const u of page.Uploads ?? []) {
        const key = u.Key === undefined ? undefined : encoded ? decodeListedKey(u.Key) : u.Key;
        if (key !== undefined && u.UploadId !== undefined) out.push({ key, uploadId: u.UploadId });
      }
      if (!page.IsTruncated || (page.NextKeyMarker === undefined && page.NextUploadIdMarker === undefined)) break;
      // the marker is a key: decoded like the keys (the request encodes it again)
      keyMarker = page.NextKeyMarker !== undefined && encoded ? decodeListedKey(page.NextKeyMarker) ?? page.NextKeyMarker : page.NextKeyMarker;
      uploadIdMarker = page.NextUploadIdMarker;
    }
    return out;
  }

  /**
   * AbortMultipartUpload: removes the parts of an upload that `upload()` could not abort (S3 was
   * unreachable at the time). A missing upload (already aborted or completed) is not an error.
   */
  async abortMultipartUpload(key: string, uploadId: string): Promise<void> {
    try {
      await this.call(`AbortMultipartUpload s3://${this.bucket}/${key}`, (abortSignal) =>
        this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId }), { abortSignal }),
      );
    } catch (err) {
      if (err instanceof EtcdsnapError && err.kind === 'not-found') return;
      throw err;
    }
  }

  /**
   * DeleteObjects in batches of 1000 (`batchSize`, for tests; at most 1000), sent with
   * Content-MD5. Keys are full keys. Per-key failures are returned, not thrown; a failed
   * request (network, auth) rejects, with the earlier batches already deleted. Deleting a key
   * that does not exist counts as deleted (S3 semantics).
   */
  async deleteMany(keys: string[], opts: { batchSize?: number } = {}): Promise<{ deleted: string[]; errors: Array<{ key: string; message: string }> }> {
    const batchSize = Math.min(DELETE_BATCH, Math.max(1, Math.floor(opts.batchSize ?? DELETE_BATCH)));
    const deleted: string[] = [];
    const errors: Array<{ key: string; message: string }> = [];
    for (let i = 0; i < keys.length; i += batchSize) {
      const batch = keys.slice(i, i + batchSize);
      const out = await this.call(`DeleteObjects s3://${this.bucket} (${batch.length} keys)`, (abortSignal) =>
        this.client.send(
          new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: false } }),
          { abortSignal },
        ),
      );
      for (const d of out.Deleted ?? []) if (d.Key !== undefined) deleted.push(d.Key);
      for (const e of out.Errors ?? []) {
        errors.push({ key: e.Key ?? '', message: scrubSecrets([e.Code, e.Message].filter(Boolean).join(': ') || 'unknown error') });
      }
    }
    return { deleted, errors };
  }
}

