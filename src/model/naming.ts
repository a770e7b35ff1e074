/**
 * Snapshot file names, as k3s: `<name>-<node-name>-<unix seconds>` plus `.zip` when
 * compressed; etcdsnap's other encodings add `.zst`, `.gz` and `.age` (encoding.ts). Pure
 * functions, no I/O.
 */
import { EtcdsnapError } from '../errors.js';
import { encodingSuffix, type SnapshotEncoding, splitEncodedName } from './encoding.js';

export const ZIP_EXT = '.zip';
export const PART_EXT = '.part';
/** Longest file name accepted from a user (most file systems allow 255 bytes). */
export const MAX_NAME_BYTES = 255;

/** `<prefix>-<node>-<unix seconds>` plus the extensions of `enc` (`.zip`, `.zst`, `.gz`, `.age`). */
export function snapshotFileName(prefix: string, nodeName: string, unixSeconds: number, enc: SnapshotEncoding): string {
  return `${prefix}-${nodeName}-${unixSeconds}${encodingSuffix(enc)}`;
}

export interface ParsedName {
  /** Name without its encoding extensions (`.zip`, `.zst`, `.gz`, `.age`). */
  base: string;
  /** Any compression extension. */
  compressed: boolean;
  /** An `.age` extension. */
  encrypted: boolean;
  /** Unix seconds from the text after the last '-'. */
  timestamp: number;
}

/**
 * Parses a snapshot file name; returns undefined when it does not follow the naming
 * scheme (text, '-', 9 to 11 digits of unix seconds, optional `.zip`, `.zst` or `.gz`,
 * optional `.age`).
 */
export function parseSnapshotName(file: string): ParsedName | undefined {
  const { base, compression, encrypted } = splitEncodedName(file);
  const m = /^(.+)-(\d{9,11})$/.exec(base);
  if (!m) return undefined;
  return { base, compressed: compression !== 'none', encrypted, timestamp: Number(m[2]) };
}

/** True when `file` is `<prefix>-<node>-<unix seconds>[.zip|.zst|.gz][.age]` for exactly this prefix and node. */
export function belongsTo(file: string, prefix: string, nodeName: string): boolean {
  const p = parseSnapshotName(file);
  return p !== undefined && p.base === `${prefix}-${nodeName}-${p.timestamp}`;
}

/**
 * Throws `invalid snapshot name` unless `name` is a plain file name that cannot address
 * anything outside the snapshot dir.
 */
export function assertSafeName(name: unknown, what = 'snapshot name'): string {
  if (typeof name !== 'string' || name.length === 0) throw new EtcdsnapError('usage', `invalid ${what}: it is empty`);
  const shown = JSON.stringify(name.length > 80 ? `${name.slice(0, 80)}...` : name);
  if (name.includes('/') || name.includes('\\') || name.includes('\0') || name === '.' || name === '..' || name.includes('..')) {
    throw new EtcdsnapError('usage', `invalid ${what} ${shown}: path separators, '..' and NUL are not allowed`);
  }
  if (Buffer.byteLength(name) > MAX_NAME_BYTES) {
    throw new EtcdsnapError('usage', `invalid ${what} ${shown}: longer than ${MAX_NAME_BYTES} bytes`);
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the point is to refuse control characters
  if (/[\x00-\x1f\x7f]/.test(name)) throw new EtcdsnapError('usage', `invalid ${what} ${shown}: control characters are not allowed`);
  return name;
}

/** Checks a `--name` prefix: it becomes part of file names, so the same rules apply. */
export function assertSafePrefix(prefix: unknown): string {
  const p = assertSafeName(prefix, 'snapshot name prefix');
  if (p.startsWith('.')) throw new EtcdsnapError('usage', `invalid snapshot name prefix "${p}": must not start with '.'`);
  if (Buffer.byteLength(p) > 200) throw new EtcdsnapError('usage', `invalid snapshot name prefix: longer than 200 bytes`);
  return p;
}

/**
 * True when `name` passes `assertSafeName` and has no C1 control character either (they
 * act as terminal escapes too). For names that come from outside, e.g. an S3 listing,
 * where a bad name is skipped instead of refused.
 */
export function isSafeName(name: string): boolean {
  try {
    assertSafeName(name);
  } catch {
    return false;
  }
  return !/[\u0080-\u009f]/.test(name);
}

/** True when `name` is a safe name (`isSafeName`) that follows the naming scheme. */
export function isSafeSnapshotName(name: string): boolean {
  return isSafeName(name) && parseSnapshotName(name) !== undefined;
}
