/**
 * The two binary encodings of etcd's `key` bucket, decoded with bounds checks and no schema
 * library: revision keys (8-byte big-endian main revision, '_', 8-byte sub revision, and a
 * trailing 't' for a tombstone) and mvccpb.KeyValue protobuf values (key=1 bytes,
 * create_revision=2, mod_revision=3, version=4 int64 varints, value=5 bytes, lease=6 int64).
 * Pure functions; a malformed input throws `Damage`.
 */
import { Damage } from './bbolt-page.js';

/** A varint at `buf[pos]`: its value (a number when below 2^53, else a bigint) and the next position. */
export interface Varint {
  value: number | bigint;
  next: number;
}

/** Where the last `varint()` call stopped (module state: the hot path allocates nothing per varint). */
let next = 0;

/** A varint at `buf[pos..end)` (at most 10 bytes, a uint64); sets `next`. A number when below 2^53, else a bigint. */
function varint(buf: Uint8Array, pos: number, end: number): number | bigint {
  let value = 0;
  let mult = 1;
  let i = pos;
  // up to 7 bytes (49 bits) a number is exact
  for (; i < end && i < pos + 7; i++) {
    const b = buf[i] as number;
    value += (b & 0x7f) * mult;
    if (b < 0x80) {
      next = i + 1;
      return value;
    }
    mult *= 128;
  }
  let big = BigInt(value);
  let shift = 49n;
  for (; i < end && i < pos + 10; i++) {
    const b = buf[i] as number;
    if (i === pos + 9 && b > 1) throw new Damage('varint overflows 64 bits');
    big |= BigInt(b & 0x7f) << shift;
    if (b < 0x80) {
      next = i + 1;
      return big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
    }
    shift += 7n;
  }
  throw new Damage('varint runs past the end of the message');
}

/** Reads a protobuf base-128 varint (at most 10 bytes, a uint64) from `buf[pos..end)`. */
export function readVarint(buf: Uint8Array, pos: number, end: number): Varint {
  const value = varint(buf, pos, end);
  return { value, next };
}

/** An int64 field as a non-negative safe integer (revisions, versions), or `Damage`. */
function safeInt(v: number | bigint, what: string): number {
  if (typeof v === 'number') return v;
  throw new Damage(`${what} ${BigInt.asIntN(64, v)} is negative or beyond 2^53`);
}

/** A decoded mvccpb.KeyValue: offsets of key and value in the decoded buffer, the rest as values. */
export interface KvFields {
  keyStart: number;
  keyEnd: number;
  valueStart: number;
  valueEnd: number;
  createRevision: number;
  modRevision: number;
  version: number;
  /** int64 lease ID as a decimal string ('0': none). */
  lease: string;
}

/**
 * Decodes the mvccpb.KeyValue in `buf[start..end)`; offsets in the result are into `buf`.
 * `out` (reused by scans, so a walk allocates nothing per entry) is overwritten and returned.
 */
export function decodeKeyValue(buf: Uint8Array, start: number, end: number, out?: KvFields): KvFields {
  const f: KvFields = out ?? { keyStart: 0, keyEnd: 0, valueStart: 0, valueEnd: 0, createRevision: 0, modRevision: 0, version: 0, lease: '0' };
  f.keyStart = f.keyEnd = f.valueStart = f.valueEnd = start;
  f.createRevision = f.modRevision = f.version = 0;
  f.lease = '0';
  let hasKey = false;
  let pos = start;
  while (pos < end) {
    const tag = varint(buf, pos, end);
    pos = next;
    if (typeof tag !== 'number' || tag > 0xffffffff) throw new Damage('protobuf tag out of range');
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    if (field === 0) throw new Damage('protobuf field number 0');
    if (wire === 0) {
      const v = varint(buf, pos, end);
      pos = next;
      if (field === 2) f.createRevision = safeInt(v, 'create_revision');
      else if (field === 3) f.modRevision = safeInt(v, 'mod_revision');
      else if (field === 4) f.version = safeInt(v, 'version');
      else if (field === 6) f.lease = typeof v === 'number' ? String(v) : BigInt.asIntN(64, v).toString();
    } else if (wire === 2) {
      const len = varint(buf, pos, end);
      const s = next;
      if (typeof len !== 'number' || s + len > end) throw new Damage('protobuf length-delimited field runs past the end of the message');
      pos = s + len;
      if (field === 1) {
        f.keyStart = s;
        f.keyEnd = pos;
        hasKey = true;
      } else if (field === 5) {
        f.valueStart = s;
        f.valueEnd = pos;
      }
    } else if (wire === 1) pos += 8;
    else if (wire === 5) pos += 4;
    else throw new Damage(`protobuf wire type ${wire} is not used by mvccpb.KeyValue`);
    if (pos > end) throw new Damage('protobuf field runs past the end of the message');
    if (field >= 1 && field <= 6 && wire !== (field === 1 || field === 5 ? 2 : 0)) throw new Damage(`protobuf field ${field} has wire type ${wire}`);
  }
  if (!hasKey) throw new Damage('KeyValue without a key');
  return f;
}

/** A revision key of the `key` bucket. */
export interface Revision {
  main: number;
  sub: number;
  tombstone: boolean;
}

const REV_BYTES = 17;

/** Decodes a revision key `buf[start..end)` (17 bytes, or 18 ending in 't' for a tombstone). */
export function decodeRevision(buf: Uint8Array, start: number, end: number, out?: Revision): Revision {
  const len = end - start;
  if ((len !== REV_BYTES && len !== REV_BYTES + 1) || buf[start + 8] !== 0x5f || (len === REV_BYTES + 1 && buf[start + REV_BYTES] !== 0x74)) {
    throw new Damage(`malformed revision key (${len} bytes)`);
  }
  const r = out ?? { main: 0, sub: 0, tombstone: false };
  r.main = beUint(buf, start);
  r.sub = beUint(buf, start + 9);
  r.tombstone = len === REV_BYTES + 1;
  return r;
}

/** An 8-byte big-endian unsigned integer that must be a safe JS integer. */
export function beUint(buf: Uint8Array, at: number): number {
  const hi = ((buf[at] as number) << 24) | ((buf[at + 1] as number) << 16) | ((buf[at + 2] as number) << 8) | (buf[at + 3] as number);
  const lo = ((buf[at + 4] as number) << 24) | ((buf[at + 5] as number) << 16) | ((buf[at + 6] as number) << 8) | (buf[at + 7] as number);
  const h = hi >>> 0;
  if (h > 0x1fffff) throw new Damage('revision beyond 2^53');
  return h * 0x1_0000_0000 + (lo >>> 0);
}

/** Encodes a revision key (for tests and lookups). */
export function encodeRevision(main: number, sub: number, tombstone = false): Buffer {
  const b = Buffer.alloc(tombstone ? 18 : 17);
  b.writeBigUInt64BE(BigInt(main), 0);
  b[8] = 0x5f;
  b.writeBigUInt64BE(BigInt(sub), 9);
  if (tombstone) b[17] = 0x74;
  return b;
}
