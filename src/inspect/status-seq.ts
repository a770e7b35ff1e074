/**
 * `status` in one sequential pass over the file (the fast path of `MvccReader.status`): the
 * same answer as `statusScan` (mvcc-scan.ts) — etcdctl's CRC-32C hash, revision and totalKey,
 * plus live keys, meta and members — with every leaf page read once, in file order, instead
 * of a tree walk in key order. The sha256 trailer is checked beside it by trailer.ts (a worker
 * thread over 32 MiB, reading the file on its own), so this pass never waits for it.
 *
 * 1. The trees: each bucket's branch pages are read (`BoltFile.leafPages`), giving its leaf
 *    pages in key order.
 * 2. The pass: the leaf pages in file order, read forward in 128 KiB windows into one reused
 *    buffer (`Forward`); a buffer that small stays in the CPU cache, and copying out of the
 *    page cache into it is several times faster than into a larger or rotating one. Each leaf page is
 *    checked and its elements decoded; its keys and values (contiguous runs) get a CRC-32C of
 *    their own.
 * 3. The hash: per bucket in order, its name, then its leaves' checksums chained in key order
 *    with `crc32cCombine`. Live keys are counted from the newest position of each key (the
 *    key bucket's order is revision order), so the file order of the pass does not matter.
 *
 * Key order is checked within each page (the tree walk also checks it across pages). When a
 * page taken for a leaf is a branch (a tree that is not balanced; bbolt never writes one),
 * it returns null and the caller falls back to the tree walk.
 */
import { crc32c } from '@node-rs/crc32';
import { type BoltFile, type BucketRef, Damage, Walk } from './bbolt.js';
import { BUCKET_LEAF, checkElements, LEAF, type LeafElement, leafElement, PAGE_HEADER } from './bbolt-page.js';
import { crc32cCombine } from './crc32c.js';
import { KeyPositions } from './key-positions.js';
import { memberEntry, metaEntry, type StatusScan } from './mvcc-scan.js';
import { decodeKeyValue, decodeRevision, type KvFields, type Revision } from './protobuf.js';

/** Bytes of the pass's read window: small enough to stay in the CPU cache between the read and the checksums. */
export const WINDOW = 128 * 1024;

type Kind = 'key' | 'meta' | 'members' | 'other';

interface BucketPlan {
  name: Buffer;
  kind: Kind;
  /** Inline bucket: its checksum and hashed length, computed from the bucket value. */
  inline: { crc: number; len: number } | null;
  /** Leaves in key order: indexes into the pass's arrays. */
  first: number;
  count: number;
}

const kindOf = (name: string): Kind => (name === 'key' || name === 'meta' || name === 'members' ? name : 'other');

/** Byte order of `buf[as..ae)` and `buf[bs..be)` (negative, 0, positive), in JS: cheaper than a native call for short keys. */
function compareIn(buf: Buffer, as: number, ae: number, bs: number, be: number): number {
  const n = Math.min(ae - as, be - bs);
  for (let i = 0; i < n; i++) {
    const d = (buf[as + i] as number) - (buf[bs + i] as number);
    if (d !== 0) return d;
  }
  return ae - as - (be - bs);
}

/**
 * Pages read in increasing file order through one reused buffer. A page that is not all in
 * what the buffer holds starts the next read at its first byte: the part already held is
 * moved to the front, and the rest is read, a window of 128 KiB ahead, or the whole page when
 * it is larger (the buffer then grows to it; later windows still use only its first 128 KiB,
 * which stay in the CPU cache). Every byte of a page is read once, and nothing is copied in
 * the common case.
 */
class Forward {
  /** The buffer `at` returns offsets into (replaced when it grows). */
  buf: Buffer = Buffer.allocUnsafe(WINDOW);
  private start = 0;
  private len = 0;

  constructor(private readonly bolt: BoltFile) {}

  /** Bytes `[pos, pos+len)` of the database: their offset in `this.buf`, valid until the next call. */
  at(pos: number, len: number): number {
    const end = pos + len;
    if (end > this.bolt.dataSize) throw new Damage(`bytes ${pos}..${end} are beyond the database`);
    const held = this.start + this.len;
    if (pos >= this.start && end <= held) return pos - this.start;
    const have = pos >= this.start && pos < held ? held - pos : 0;
    const need = Math.max(len, Math.min(WINDOW, this.bolt.dataSize - pos));
    if (this.buf.length < need) {
      const grown = Buffer.allocUnsafe(need);
      if (have > 0) this.buf.copy(grown, 0, pos - this.start, held);
      this.buf = grown;
    } else if (have > 0 && pos !== this.start) this.buf.copyWithin(0, pos - this.start, held);
    this.bolt.readAt(this.buf.subarray(have), need - have, pos + have);
    this.start = pos;
    this.len = need;
    return 0;
  }
}

/** Status in one pass; null when the trees are not as bbolt writes them (use the tree walk). */
export function statusPass(bolt: BoltFile): StatusScan | null {
  const out: StatusScan = { hash: 0, revision: 0, totalKey: 0, liveKeys: 0, members: [], consistentIndex: 0, compactRevision: 0, scheduledCompactRevision: 0 };
  const walk = new Walk(bolt.meta.pgid);
  const live = new KeyPositions();
  const rev: Revision = { main: 0, sub: 0, tombstone: false };
  const kv: KvFields = { keyStart: 0, keyEnd: 0, valueStart: 0, valueEnd: 0, createRevision: 0, modRevision: 0, version: 0, lease: '0' };
  const el: LeafElement = { page: 0, index: 0, flags: 0, keyStart: 0, keyEnd: 0, valueEnd: 0 };
  let lastKeyLeaf = -1;
  // the checksum and hashed length of the last leaf
  let leafCrc = 0;
  let leafLen = 0;

  // the elements of one leaf page: checked, counted, decoded; sets leafCrc and leafLen
  const leaf = (buf: Buffer, off: number, end: number, count: number, page: number, kind: Kind, order: number): void => {
    const what = page === 0 ? 'inline bucket' : `page ${page}`;
    checkElements(off, end, count, what);
    let crc = 0;
    let len = 0;
    let runStart = -1;
    let runEnd = -1;
    let ps = -1;
    let pe = -1;
    for (let i = 0; i < count; i++) {
      leafElement(buf, off, end, i, what, el);
      if (ps >= 0 && compareIn(buf, ps, pe, el.keyStart, el.keyEnd) >= 0) throw new Damage(`${what}: keys out of order at element ${i}`);
      ps = el.keyStart;
      pe = el.keyEnd;
      const nested = (el.flags & BUCKET_LEAF) !== 0;
      const hashEnd = nested ? el.keyEnd : el.valueEnd;
      if (el.keyStart === runEnd) runEnd = hashEnd;
      else {
        if (runStart >= 0) {
          crc = crc32c(buf.subarray(runStart, runEnd), crc);
          len += runEnd - runStart;
        }
        runStart = el.keyStart;
        runEnd = hashEnd;
      }
      out.totalKey++;
      if (nested) continue;
      if (kind === 'key') {
        decodeRevision(buf, el.keyStart, el.keyEnd, rev);
        decodeKeyValue(buf, el.keyEnd, el.valueEnd, kv);
        if (!rev.tombstone && kv.modRevision !== rev.main) throw new Damage(`revision ${rev.main} holds a KeyValue of mod_revision ${kv.modRevision}`);
        if (order === lastKeyLeaf) out.revision = rev.main;
        // the newest position of a key wins: (leaf order, element), negative for a tombstone
        const at = order * 65536 + i + 1;
        live.newest(buf, kv.keyStart, kv.keyEnd, rev.tombstone ? -at : at);
      } else if (kind === 'meta') metaEntry(out, buf, el.keyStart, el.keyEnd, el.valueEnd);
      else if (kind === 'members') memberEntry(out.members, buf, el.keyStart, el.keyEnd, el.valueEnd);
    }
    if (runStart >= 0) {
      crc = crc32c(buf.subarray(runStart, runEnd), crc);
      len += runEnd - runStart;
    }
    leafCrc = crc >>> 0;
    leafLen = len;
  };

  // 1. the trees
  const plans: BucketPlan[] = [];
  const ids: number[] = [];
  const kinds: Kind[] = [];
  for (const { name, ref } of bolt.buckets(walk)) {
    const kind = kindOf(name.toString('latin1'));
    const plan: BucketPlan = { name, kind, inline: null, first: ids.length, count: 0 };
    if (ref.inline !== null) {
      inlineBucket(ref, (b, o, e, c) => leaf(b, o, e, c, 0, kind, -1));
      plan.inline = { crc: leafCrc, len: leafLen };
    } else {
      for (const id of bolt.leafPages(ref.root, walk)) {
        ids.push(id);
        kinds.push(kind);
      }
      plan.count = ids.length - plan.first;
      if (kind === 'key' && plan.count > 0) lastKeyLeaf = ids.length - 1;
    }
    plans.push(plan);
  }
  if (plans.some((p) => p.kind === 'key' && p.inline !== null)) {
    // an inline key bucket: its last element is the revision (no leaf order to compare)
    return null;
  }

  // 2. the pass, in file order
  const n = ids.length;
  const crcs = new Uint32Array(n);
  const lens = new Float64Array(n);
  // leaf index + 1 by page id: the file order without a sort
  const pgid = bolt.meta.pgid;
  const leafOf = new Int32Array(pgid);
  for (let j = 0; j < n; j++) {
    const id = ids[j] as number;
    if (id < 2 || id >= pgid) throw new Damage(`page id ${id} is outside 2..${pgid - 1}`);
    if (leafOf[id] !== 0) throw new Damage(`page ${id} is reached twice`);
    leafOf[id] = j + 1;
  }
  const ps = bolt.pageSize;
  const fwd = new Forward(bolt);
  for (let id = 2; id < pgid; id++) {
    const j = (leafOf[id] as number) - 1;
    if (j < 0) continue;
    const pos = id * ps;
    const hoff = fwd.at(pos, PAGE_HEADER);
    const h = bolt.header(id, fwd.buf, hoff);
    if (h.flags !== LEAF) return null;
    walk.mark(id, h.overflow);
    const len = (h.overflow + 1) * ps;
    const off = fwd.at(pos, len);
    leaf(fwd.buf, off, off + len, h.count, id, kinds[j] as Kind, j);
    crcs[j] = leafCrc;
    lens[j] = leafLen;
  }

  // 3. the hash, in bucket and key order
  let crc = 0;
  for (const p of plans) {
    crc = crc32c(p.name, crc) >>> 0;
    if (p.inline !== null) crc = crc32cCombine(crc, p.inline.crc, p.inline.len);
    for (let j = p.first; j < p.first + p.count; j++) crc = crc32cCombine(crc, crcs[j] as number, lens[j] as number);
  }
  out.hash = crc >>> 0;
  out.liveKeys = live.countPositive();
  return out;
}

/** An inline bucket's page (held in its bucket value), through the same leaf function. */
function inlineBucket(ref: BucketRef, leaf: (buf: Buffer, off: number, end: number, count: number) => void): void {
  const page = ref.inline as Buffer;
  const flags = page.readUInt16LE(8);
  if (flags !== LEAF) throw new Damage(`inline bucket page is not a leaf page (flags 0x${flags.toString(16)})`);
  leaf(page, 0, page.length, page.readUInt16LE(10));
}
