/**
 * S3 settings from flags/config (server: `--etcd-s3-*`; CLI: `--s3-*`) and from the
 * `s3` field of an API request. Pure: validation only, no I/O; the S3 module checks the rest
 * (endpoint scheme, proxy, the server's own CA files) when it builds its client.
 * Both read the same option specs (config/schema.ts `S3_OPTIONS`): a request field is the
 * option `S3_REQUEST_FIELDS` names, validated by that option's type and check, and both
 * fill what is absent with the options' defaults (`buildS3Options`).
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
import { EtcdsnapError, messageOf } from '../errors.js';
import type { Values } from '../config/resolve.js';
import { checkValue, numberDefault, S3_OPTIONS, specOf, stringDefault } from '../config/schema.js';
import { valueFromJson, type OptionValue } from '../config/values.js';
import type { S3RequestBody } from '../model/api.js';
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

/** Each field of a request's `s3` object and the option (config/schema.ts, without `etcd-`) it carries. */
export const S3_REQUEST_FIELDS: { readonly [K in keyof S3RequestBody]-?: string } = {
  endpoint: 's3-endpoint',
  endpointCA: 's3-endpoint-ca',
  skipSslVerify: 's3-skip-ssl-verify',
  accessKey: 's3-access-key',
  secretKey: 's3-secret-key',
  sessionToken: 's3-session-token',
  bucket: 's3-bucket',
  region: 's3-region',
  folder: 's3-folder',
  insecure: 's3-insecure',
  timeoutMs: 's3-timeout',
  proxy: 's3-proxy',
  bucketLookup: 's3-bucket-lookup-type',
  retention: 's3-retention',
};

/**
 * S3 options from `get` (a validated value by option key without prefix, or undefined when
 * not given); absent values take the options' defaults, an empty optional string counts as
 * absent. `missingBucket` is the message when no bucket is given.
 */
function buildS3Options(get: (key: string) => OptionValue | undefined, missingBucket: () => EtcdsnapError): S3Options {
  const text = (key: string): string => {
    const v = get(key);
    return typeof v === 'string' ? v : stringDefault(S3_OPTIONS, key);
  };
  const num = (key: string): number => {
    const v = get(key);
    return typeof v === 'number' ? v : numberDefault(S3_OPTIONS, key);
  };
  const opt = (key: string): string | undefined => {
    const v = get(key);
    return typeof v === 'string' && v !== '' ? v : undefined;
  };
  const bucket = opt('s3-bucket');
  if (bucket === undefined) throw missingBucket();
  const lookup = text('s3-bucket-lookup-type'); // one of the spec's choices
  const settings: S3Settings = {
    endpoint: text('s3-endpoint'),
    skipSslVerify: get('s3-skip-ssl-verify') === true,
    bucket,
    region: text('s3-region'),
    folder: text('s3-folder'),
    insecure: get('s3-insecure') === true,
    timeoutMs: num('s3-timeout'),
    bucketLookup: lookup === 'dns' || lookup === 'path' ? lookup : 'auto',
  };
  const optional = [
    ['endpointCA', 's3-endpoint-ca'],
    ['accessKey', 's3-access-key'],
    ['secretKey', 's3-secret-key'],
    ['sessionToken', 's3-session-token'],
    ['proxy', 's3-proxy'],
  ] as const;
  for (const [field, key] of optional) {
    const v = opt(key);
    if (v !== undefined) settings[field] = v;
  }
  return { settings, retention: num('s3-retention') };
}

/**
 * Reads S3 options from resolved values; undefined when S3 is off. `proxyEnv` is the proxy
 * environment that applies when no `s3-proxy` is set (the server's; the CLI gives none, as
 * its settings are sent to the server).
 */
export function s3OptionsFromValues(v: Values, prefix: 'etcd-' | '', proxyEnv?: ProxyEnvironment): S3Options | undefined {
  const k = (name: string): string => `${prefix}${name}`;
  if (!v.bool(k('s3'))) return undefined;
  const o = buildS3Options(
    (key) => {
      const name = k(key);
      const spec = specOf(S3_OPTIONS, key);
      return !v.has(name) ? undefined : spec.type === 'boolean' ? v.bool(name) : spec.type === 'string' ? v.str(name) : v.int(name);
    },
    () => bad(`--${k('s3-bucket')} is required with --${k('s3')}`),
  );
  if (proxyEnv !== undefined) o.settings.proxyEnv = proxyEnv;
  return o;
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

const isRequestField = (key: string): key is keyof S3RequestBody => Object.hasOwn(S3_REQUEST_FIELDS, key);

/** Validates the `s3` object of an API request (the CLI's S3 flags) with the options' specs. */
export function parseS3Request(raw: unknown): S3Options {
  const badReq = (msg: string): EtcdsnapError => new EtcdsnapError('usage', `invalid field "s3": ${msg}`);
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw badReq('expected an object');
  const given = new Map<string, OptionValue>();
  const entries: Array<[string, unknown]> = Object.entries(raw);
  for (const [field, value] of entries) {
    if (!isRequestField(field)) throw badReq(`unknown field "${field.slice(0, 64)}"`);
    if (value === undefined) continue;
    const spec = specOf(S3_OPTIONS, S3_REQUEST_FIELDS[field]);
    let v: OptionValue;
    try {
      v = valueFromJson(spec.type, value);
    } catch (err) {
      throw badReq(`"${field}" ${messageOf(err)}`);
    }
    if (typeof v === 'string' && v.length > (field === 'endpointCA' ? 60_000 : 16_384)) throw badReq(`"${field}" must be a string`);
    try {
      checkValue(spec, v);
    } catch (err) {
      throw badReq(`"${field}": ${messageOf(err)}`);
    }
    given.set(spec.key, v);
  }
  const o = buildS3Options(
    (key) => given.get(key),
    () => badReq('"bucket" is required'),
  );
  // content only: a path would make the server read (and tell about) any file; the same
  // message whatever the value, so nothing is revealed about it
  const ca = o.settings.endpointCA;
  if (ca !== undefined) {
    if (ca.trim() === '') delete o.settings.endpointCA;
    else {
      const pem = endpointCAContent(ca);
      if (pem === undefined) throw badReq(REQUEST_CA_MESSAGE);
      o.settings.endpointCA = pem;
    }
  }
  return o;
}

/**
 * The `s3` object the CLI sends (the inverse of `parseS3Request`). `endpointCA` must already
 * be content (the CLI reads files first); it is sent as given. A `proxyEnv` is never sent.
 */
export function s3Request(o: S3Options): S3RequestBody {
  const { proxyEnv: _local, ...settings } = o.settings;
  return { ...settings, retention: o.retention };
}
