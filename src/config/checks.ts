/**
 * The checks options declare in the schema (`OptionSpec.check`, config/schema.ts): each
 * throws an Error whose message completes "invalid value for <flag>: " (or, for an API
 * request field, `invalid field "<name>": `). Pure.
 */
import path from 'node:path';
import { isIP } from 'node:net';
import { assertSafePrefix } from '../model/naming.js';
import { parseRetentionPolicy } from '../model/retention-policy.js';
import { isRecipientText } from '../model/records.js';
import { formatDuration, parseDuration, within, type ValueCheck } from './values.js';

/** Retention counts: 0 disables pruning; the bound keeps a request from asking for absurd work. */
export const RETENTION: ValueCheck = within(0, 100_000);

/** A time-bucket retention policy (`last=3,daily=7,...`, model/retention-policy.ts); '' is none. */
export const checkRetentionPolicy: ValueCheck = (v) => {
  parseRetentionPolicy(String(v));
};

const NODE_NAME = /^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$/i;

export const checkNodeName: ValueCheck = (v) => {
  if (!NODE_NAME.test(String(v))) throw new Error(`"${String(v)}" is not a node name: use letters, digits, '-' and '.', at most 63 characters`);
};

export const checkIP: ValueCheck = (v) => {
  if (isIP(String(v)) === 0) throw new Error(`"${String(v)}" is not an IP address`);
};

/** A snapshot name prefix becomes part of file names (model/naming.ts). */
export const checkPrefix: ValueCheck = (v) => {
  assertSafePrefix(v);
};

/** Each comma-separated item an absolute path. */
export const checkAbsoluteDirs: ValueCheck = (v) => {
  for (const d of String(v)
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x !== '')) {
    if (!path.isAbsolute(d) || d.includes('\0')) {
      throw new Error(`"${d}" is not an absolute path; give absolute folder paths (repeat the flag or separate them with commas)`);
    }
  }
};

export const checkEtcdArg: ValueCheck = (v) => {
  if (!/^[a-z0-9-]+=/.test(String(v).replace(/^--?/, ''))) throw new Error(`"${String(v)}" is not key=value (example: quota-backend-bytes=8589934592)`);
};

/** A supervisor URL to join: https with an explicit port ('' means none). */
export const checkJoinURL: ValueCheck = (v) => {
  const s = String(v);
  if (s === '') return;
  let u: URL | undefined;
  try {
    u = new URL(s);
  } catch {
    u = undefined;
  }
  if (u?.protocol !== 'https:' || u.port === '') throw new Error(`"${s}" is not https://<host>:<supervisor-port>`);
};

/** Each comma-separated item an age recipient (`age1...`, as `age-keygen -y` prints it). */
export const checkRecipients: ValueCheck = (v) => {
  for (const r of String(v)
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x !== '')) {
    if (/^age-(secret-key|plugin-)/i.test(r)) {
      // never echo it: the value is someone's secret key
      throw new Error(
        'that is an age secret key, not a recipient: give its public key (age-keygen -y <key file> prints it), and keep the secret key out of flags and config',
      );
    }
    if (!isRecipientText(r)) {
      const shown = r.length > 80 ? `${r.slice(0, 80)}...` : r;
      throw new Error(`"${shown}" is not an age recipient: give a public key age1... as age-keygen prints it (never the AGE-SECRET-KEY-1... line)`);
    }
  }
};

/** Each S3 operation: at least a second, at most a day. */
export const S3_TIMEOUT: ValueCheck = within(1000, 24 * 3_600_000, formatDuration);

/** `host:port` (`[v6]:port` for IPv6), as `--metrics-listen-address` takes it; throws on anything else. */
export function parseHostPort(v: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(v.trim());
  const port = Number(m?.[3]);
  const host = m?.[1] ?? m?.[2];
  if (!m || host === undefined || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`"${v}" is not host:port (e.g. 127.0.0.1:9346, [::1]:9346)`);
  }
  return { host, port };
}

export const checkHostPort: ValueCheck = (v) => {
  parseHostPort(String(v));
};

/** Most retries `--etcd-s3-upload-retry-delays` may list. */
export const MAX_UPLOAD_RETRIES = 20;
const RETRY_DELAY_MIN_MS = 1000;
const RETRY_DELAY_MAX_MS = 3_600_000;

/**
 * `--etcd-s3-upload-retry-delays` as milliseconds: comma-separated durations, the delay
 * before each retry of a failed S3 upload (its length is the number of retries); `0` or an
 * empty text is no retry. Each 1s to 1h, at most `MAX_UPLOAD_RETRIES`. Throws a one-line Error.
 */
export function parseRetryDelays(text: string): number[] {
  const t = text.trim();
  if (t === '' || t === '0') return [];
  const items = t.split(',').map((x) => x.trim());
  if (items.length > MAX_UPLOAD_RETRIES) throw new Error(`${items.length} delays; list at most ${MAX_UPLOAD_RETRIES} (or 0 for no retry)`);
  const range = within(RETRY_DELAY_MIN_MS, RETRY_DELAY_MAX_MS, formatDuration);
  return items.map((item) => {
    if (item === '') throw new Error('an empty item; give comma-separated durations like 5s,15s,45s (or 0 for no retry)');
    const ms = parseDuration(item);
    range(ms);
    return ms;
  });
}

export const checkRetryDelays: ValueCheck = (v) => {
  parseRetryDelays(String(v));
};

/**
 * A webhook URL (`--etcd-snapshot-notify-webhook`): http or https, a host, no user name or
 * password. The URL may hold a secret (Slack's do), so no message echoes it. '' is none.
 */
export function parseWebhookURL(text: string): URL | undefined {
  if (text === '') return undefined;
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new Error('not a URL; give http(s)://host[:port]/path (the value is not shown: it may hold a secret)');
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new Error(`scheme ${u.protocol.replace(/:$/, '')} is not http or https`);
  if (u.username !== '' || u.password !== '') throw new Error('a user name or password in the URL is not allowed (the value is not shown)');
  if (u.hostname === '') throw new Error('the URL has no host');
  return u;
}

export const checkWebhookURL: ValueCheck = (v) => {
  parseWebhookURL(String(v));
};

/** A warning ratio (`--etcd-quota-warning-ratio`) as a number in [0, 1) (0: off); throws a message completing "invalid value: ". */
export function parseWarningRatio(text: string): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || n < 0 || n >= 1) throw new Error(`"${text}" is not a ratio from 0 (off) to below 1, e.g. 0.8`);
  return n;
}
