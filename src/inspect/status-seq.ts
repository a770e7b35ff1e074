/**
 * `status` in one sequential pass over the file (the fast path of `MvccReader.status`): the
 * same answer as `statusScan` (mvcc-scan.ts) — etcdctl's CRC-32C hash, revision and totalKey,
 * plus live keys, meta and members — with every byte read once, in file order, and handed to
 * the sha256 trailer check on the way (`ChunkSource`, sha-sink.ts), instead of a tree walk in key order plus a
 * second read for the sha256.
 *
 * 1. The trees: each bucket's branch pages are read (`BoltFile.leafPages`), giving its leaf
 *    pages in key order.
 * 2. The pass: 4 MiB chunks from the start of the file; each leaf page met is checked and its
 *    elements decoded; its keys and values (contiguous runs) get a CRC-32C of their own.
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
import { BUCKET_LEAF, checkElements, LEAF, type LeafElement, leafElement } from './bbolt-page.js';
import { crc32cCombine } from './crc32c.js';
import { memberEntry, metaEntry, type StatusScan } from './mvcc-scan.js';
import { decodeKeyValue, decodeRevision, type KvFields, type Revision } from './protobuf.js';
import type { ChunkSource } from './sha-sink.js';

/** Bytes per chunk of the pass: small enough to stay in the CPU cache between the read and the checksums. */
export const CHUNK = 256 * 1024;

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

/** Status in one pass; null when the trees are not as bbolt writes them (use the tree walk). */
export function statusPass(bolt: BoltFile, src: ChunkSource): StatusScan | null {
  const out: StatusScan = { hash: 0, revision: 0, totalKey: 0, liveKeys: 0, members: [], consistentIndex: 0, compactRevision: 0, scheduledCompactRevision: 0 };
  const walk = new Walk(bolt.meta.pgid);
  const live = new Map<string, number>();
  const rev: Revision = { main: 0, sub: 0, tombstone: false };
  const kv: KvFields = { keyStart: 0, keyEnd: 0, valueStart: 0, valueEnd: 0, createRevision: 0, modRevision: 0, version: 0, lease: '0' };
  const el: LeafElement = { page: 0, index: 0, flags: 0, keyStart: 0, keyEnd: 0, valueEnd: 0 };
  let lastKeyLeaf = -1;

  // the elements of one leaf page: checked, counted, decoded; returns its checksum and hashed length
  const leaf = (buf: Buffer, off: number, end: number, count: number, page: number, kind: Kind, order: number): { crc: number; len: number } => {
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
      if (ps >= 0 && buf.compare(buf, ps, pe, el.keyStart, el.keyEnd) <= 0) throw new Damage(`${what}: keys out of order at element ${i}`);
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
        const key = buf.toString('latin1', kv.keyStart, kv.keyEnd);
        const was = live.get(key);
        if (was === undefined || Math.abs(was) < at) live.set(key, rev.tombstone ? -at : at);
      } else if (kind === 'meta') metaEntry(out, buf, el.keyStart, el.keyEnd, el.valueEnd);
      else if (kind === 'members') memberEntry(out.members, buf, el.keyStart, el.keyEnd, el.valueEnd);
    }
    if (runStart >= 0) {
      crc = crc32c(buf.subarray(runStart, runEnd), crc);
      len += runEnd - runStart;
    }
    return { crc: crc >>> 0, len };
  };

  // 1. the trees
  const plans: BucketPlan[] = [];
  const ids: number[] = [];
  const kinds: Kind[] = [];
  for (const { name, ref } of bolt.buckets(walk)) {
    const kind = kindOf(name.toString('latin1'));
    const plan: BucketPlan = { name, kind, inline: null, first: ids.length, count: 0 };
    if (ref.inline !== null) plan.inline = inlineBucket(ref, (b, o, e, c) => leaf(b, o, e, c, 0, kind, -1));
    else {
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
  const byId = Array.from({ length: n }, (_, i) => i).sort((a, b) => (ids[a] as number) - (ids[b] as number));
  const ps = bolt.pageSize;
  let chunk: Buffer = Buffer.alloc(0);
  let cStart = 0;
  let cLen = 0;
  const next = (): void => {
    if (cLen > 0) src.release();
    cStart += cLen;
    cLen = Math.min(CHUNK, bolt.dataSize - cStart);
    if (cLen <= 0) throw new Damage(`a page at or after byte ${cStart} is beyond the database`);
    chunk = src.get(cStart, cLen);
  };
  let assembly = Buffer.alloc(0);
  for (const j of byId) {
    const id = ids[j] as number;
    const pos = id * ps;
    while (pos >= cStart + cLen) next();
    const h = bolt.header(id, chunk, pos - cStart);
    if (h.flags !== LEAF) return null;
    walk.mark(id, h.overflow);
    const len = (h.overflow + 1) * ps;
    let r: { crc: number; len: number };
    if (pos + len <= cStart + cLen) r = leaf(chunk, pos - cStart, pos - cStart + len, h.count, id, kinds[j] as Kind, j);
    else {
      // a page running past the chunk: the rest is read for it (the pass reads it again for the sha256)
      if (assembly.length < len) assembly = Buffer.allocUnsafe(len);
      const have = cStart + cLen - pos;
      chunk.copy(assembly, 0, pos - cStart, cLen);
      bolt.readAt(assembly.subarray(have), len - have, pos + have);
      r = leaf(assembly, 0, len, h.count, id, kinds[j] as Kind, j);
    }
    crcs[j] = r.crc;
    lens[j] = r.len;
  }
  if (cLen > 0) src.release();

  // 3. the hash, in bucket and key order
  let crc = 0;
  for (const p of plans) {
    crc = crc32c(p.name, crc) >>> 0;
    if (p.inline !== null) crc = crc32cCombine(crc, p.inline.crc, p.inline.len);
    for (let j = p.first; j < p.first + p.count; j++) crc = crc32cCombine(crc, crcs[j] as number, lens[j] as number);
  }
  out.hash = crc >>> 0;
  for (const at of live.values()) if (at > 0) out.liveKeys++;
  return out;
}

/** An inline bucket's page (held in its bucket value), through the same leaf function. */
function inlineBucket(
  ref: BucketRef,
  leaf: (buf: Buffer, off: number, end: number, count: number) => { crc: number; len: number },
): { crc: number; len: number } {
  const page = ref.inline as Buffer;
  const flags = page.readUInt16LE(8);
  if (flags !== LEAF) throw new Damage(`inline bucket page is not a leaf page (flags 0x${flags.toString(16)})`);
  return leaf(page, 0, page.length, page.readUInt16LE(10));
}
