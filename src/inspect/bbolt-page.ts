/**
 * The on-disk layout of a bbolt database (the file format etcd's backend and snapshots use),
 * as pure functions over Buffers: the meta page, page headers, branch and leaf elements, and
 * the bucket header. Nothing here does I/O; `bbolt.ts` reads pages and calls these.
 *
 * Layout (little-endian, as bbolt writes it on amd64 and arm64):
 *   page header (16 bytes): id u64 | flags u16 | count u16 | overflow u32
 *   meta (after the header): magic u32 | version u32 | pageSize u32 | flags u32 |
 *     root bucket {root pgid u64, sequence u64} | freelist pgid u64 | pgid (high-water) u64 |
 *     txid u64 | checksum u64 (FNV-1a 64 over the 56 bytes before it)
 *   branch element (16 bytes): pos u32 | ksize u32 | child pgid u64   (key at element + pos)
 *   leaf element (16 bytes):   flags u32 | pos u32 | ksize u32 | vsize u32 (key, then value, at element + pos)
 *   bucket value: root pgid u64 | sequence u64, then (root 0, "inline") a whole leaf page.
 *
 * Every accessor that takes an offset from the file checks it against the buffer and throws
 * a `Damage` (a plain description; `bbolt.ts` turns it into an `integrity` EtcdsnapError that
 * names the file).
 */

export const PAGE_HEADER = 16;
export const ELEMENT_SIZE = 16;
export const BUCKET_HEADER = 16;
export const META_SIZE = 64;
export const MAGIC = 0xed0cdaed;
export const VERSION = 2;

export const BRANCH = 0x01;
export const LEAF = 0x02;
export const META = 0x04;
export const FREELIST = 0x10;
/** Leaf element flag: the value is a bucket header (a nested bucket), not data. */
export const BUCKET_LEAF = 0x01;

/** Page ids beyond this are not plausible (2^48 pages), and keep every offset an exact JS number. */
const MAX_PGID = 2 ** 48;

/** A format violation, described without the file name. */
export class Damage extends Error {}

export interface Meta {
  pageSize: number;
  /** Root page of the top-level bucket tree. */
  root: number;
  freelist: bigint;
  /** High-water mark: pages 0 .. pgid-1 exist. */
  pgid: number;
  txid: bigint;
}

const FNV_OFFSET = 0xcbf29ce484222325n;
const FNV_PRIME = 0x100000001b3n;
const MASK64 = 0xffffffffffffffffn;

/** FNV-1a 64 of `data`, as Go's hash/fnv New64a. */
export function fnv1a64(data: Uint8Array): bigint {
  let h = FNV_OFFSET;
  for (const b of data) h = ((h ^ BigInt(b)) * FNV_PRIME) & MASK64;
  return h;
}

function pgidAt(buf: Buffer, off: number, what: string): number {
  const v = buf.readBigUInt64LE(off);
  if (v >= BigInt(MAX_PGID)) throw new Damage(`${what} ${v} is out of range`);
  return Number(v);
}

/**
 * Parses and validates the meta of the page starting at `page[0]` (the page header, then the
 * meta). Returns the meta, or a reason it is not valid.
 */
export function parseMeta(page: Buffer): Meta | string {
  if (page.length < PAGE_HEADER + META_SIZE) return 'too short for a meta page';
  const m = page.subarray(PAGE_HEADER, PAGE_HEADER + META_SIZE);
  if (m.readUInt32LE(0) !== MAGIC) return 'no bbolt magic number';
  if (m.readUInt32LE(4) !== VERSION) return `unsupported bbolt version ${m.readUInt32LE(4)}`;
  if (fnv1a64(m.subarray(0, 56)) !== m.readBigUInt64LE(56)) return 'meta checksum mismatch';
  if ((page.readUInt16LE(8) & META) === 0) return 'page is not flagged as a meta page';
  const pageSize = m.readUInt32LE(8);
  if (pageSize < 512 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0) return `implausible page size ${pageSize}`;
  let pgid: number;
  let root: number;
  try {
    root = pgidAt(m, 16, 'root page id');
    pgid = pgidAt(m, 40, 'high-water page id');
  } catch (err) {
    return (err as Error).message;
  }
  if (pgid < 3) return `high-water page id ${pgid} is too small`;
  if (root < 2 || root >= pgid) return `root page id ${root} is outside 2..${pgid - 1}`;
  const freelist = m.readBigUInt64LE(32);
  // all ones: no freelist written (NoFreelistSync)
  if (freelist !== 0xffffffffffffffffn && (freelist < 2n || freelist >= BigInt(pgid))) return `freelist page id ${freelist} is outside 2..${pgid - 1}`;
  return { pageSize, root, freelist, pgid, txid: m.readBigUInt64LE(48) };
}

export interface PageHeader {
  id: number;
  flags: number;
  count: number;
  overflow: number;
}

export function pageHeader(page: Buffer, off = 0): PageHeader {
  if (off + PAGE_HEADER > page.length) throw new Damage('page header beyond the page');
  return {
    id: page.readUInt32LE(off + 4) * 0x1_0000_0000 + page.readUInt32LE(off),
    flags: page.readUInt16LE(off + 8),
    count: page.readUInt16LE(off + 10),
    overflow: page.readUInt32LE(off + 12),
  };
}

/** Checks that `count` elements fit in the page (`base` = where the page starts in `buf`, `end` = where it ends). */
export function checkElements(base: number, end: number, count: number, what: string): void {
  if (base + PAGE_HEADER + count * ELEMENT_SIZE > end) throw new Damage(`${what}: ${count} elements do not fit in the page`);
}

/** The key of branch element `i` and its child page id. */
export function branchChild(buf: Buffer, base: number, end: number, i: number, what: string): number {
  const e = base + PAGE_HEADER + i * ELEMENT_SIZE;
  const pos = buf.readUInt32LE(e);
  const ksize = buf.readUInt32LE(e + 4);
  if (e + pos + ksize > end) throw new Damage(`${what}: branch element ${i} points beyond the page`);
  return pgidAt(buf, e + 8, `${what}: branch element ${i} child page`);
}

/** Where leaf element `i`'s key and value are in `buf`; the result object is reused by the caller. */
export interface LeafElement {
  /** Page the element is on (0: an inline bucket's page) and its index there. */
  page: number;
  index: number;
  flags: number;
  keyStart: number;
  keyEnd: number;
  valueEnd: number;
}

export function leafElement(buf: Buffer, base: number, end: number, i: number, what: string, out: LeafElement): LeafElement {
  const e = base + PAGE_HEADER + i * ELEMENT_SIZE;
  const flags = buf.readUInt32LE(e);
  const pos = buf.readUInt32LE(e + 4);
  const ksize = buf.readUInt32LE(e + 8);
  const vsize = buf.readUInt32LE(e + 12);
  const keyStart = e + pos;
  const valueEnd = keyStart + ksize + vsize;
  if (valueEnd > end) throw new Damage(`${what}: leaf element ${i} points beyond the page`);
  if ((flags & ~BUCKET_LEAF) !== 0) throw new Damage(`${what}: leaf element ${i} has unknown flags ${flags}`);
  out.index = i;
  out.flags = flags;
  out.keyStart = keyStart;
  out.keyEnd = keyStart + ksize;
  out.valueEnd = valueEnd;
  return out;
}

/** A bucket header: its root page, or 0 with `inline` holding the bucket's whole leaf page. */
export interface BucketRef {
  root: number;
  inline: Buffer | null;
}

export function parseBucket(value: Buffer, what: string): BucketRef {
  if (value.length < BUCKET_HEADER) throw new Damage(`${what}: bucket header is ${value.length} bytes`);
  const root = pgidAt(value, 0, `${what}: bucket root page`);
  if (root !== 0) return { root, inline: null };
  const page = Buffer.from(value.subarray(BUCKET_HEADER));
  if (page.length < PAGE_HEADER) throw new Damage(`${what}: inline bucket page is truncated`);
  return { root: 0, inline: page };
}
