/**
 * S3 settings from flags/config (server: `--etcd-s3-*`; CLI: `--s3-*`) and from the
 * `s3` field of an API request. Pure: validation only; the S3 module checks the rest
 * (endpoint scheme, CA, proxy) when it builds its client.
 */
import { EtcdsnapError } from '../errors.js';
import type { Values } from '../config/resolve.js';
import type { S3Settings } from '../store/s3.js';

export interface S3Options {
  settings: S3Settings;
  /** Keep this many per node and name prefix in S3; 0 disables S3 pruning. */
  retention: number;
}

const bad = (msg: string): EtcdsnapError => new EtcdsnapError('config', msg);

/** Reads S3 options from resolved values; undefined when S3 is off. */
export function s3OptionsFromValues(v: Values, prefix: 'etcd-' | ''): S3Options | undefined {
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
  return { settings, retention: v.int(k('s3-retention')) ?? 5 };
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
  const str = (key: string): string | undefined => {
    const val = o[key];
    if (val === undefined) return undefined;
    if (typeof val !== 'string' || val.length > 16_384) throw badReq(`"${key}" must be a string`);
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
  for (const key of ['endpointCA', 'accessKey', 'secretKey', 'sessionToken', 'proxy'] as const) {
    const val = str(key);
    if (val !== undefined && val !== '') settings[key] = val;
  }
  return { settings, retention: int('retention', 0, 100_000, 5) };
}

/** The `s3` object the CLI sends (the inverse of `parseS3Request`). */
export function s3Request(o: S3Options): Record<string, unknown> {
  return { ...o.settings, retention: o.retention };
}
