/**
 * Scans of etcd's buckets on a `BoltFile` (synchronous, bounded memory): the full status walk
 * (etcdctl's hash, revision and key count, plus live keys), the `meta` and `members` buckets,
 * and the key-bucket scan behind entries/get/revisionCounts, which keeps per matching key only
 * where its newest revision ≤ R is (page, element) and its small fields — never a value.
 * Throws `Damage` on a malformed file; `mvcc.ts` names the file.
 */
import { type BoltFile, type BucketRef, Damage, Walk } from './bbolt.js';
import { BUCKET_LEAF } from './bbolt-page.js';
import { Crc32c } from './crc32c.js';
import { beUint, decodeKeyValue, decodeRevision, type KvFields, type Revision } from './protobuf.js';
import { type Slot, SlotTable } from './slot-table.js';
import type { SnapshotMember } from './types.js';

export type { Slot } from './slot-table.js';

export interface Buckets {
  key: BucketRef | undefined;
  meta: BucketRef | undefined;
  members: BucketRef | undefined;
}

export function findBuckets(bolt: BoltFile): Buckets {
  const out: Buckets = { key: undefined, meta: undefined, members: undefined };
  for (const b of bolt.buckets()) {
    const name = b.name.toString('latin1');
    if (name === 'key' || name === 'meta' || name === 'members') out[name] = b.ref;
  }
  return out;
}

export interface MetaFields {
  consistentIndex: number;
  compactRevision: number;
  scheduledCompactRevision: number;
}

const newRevision = (): Revision => ({ main: 0, sub: 0, tombstone: false });
const newKvFields = (): KvFields => ({ keyStart: 0, keyEnd: 0, valueStart: 0, valueEnd: 0, createRevision: 0, modRevision: 0, version: 0, lease: '0' });

/** Reads one entry of the `meta` bucket (consistent_index, finishedCompactRev, scheduledCompactRev) into `m`. */
export function metaEntry(m: MetaFields, buf: Buffer, ks: number, ke: number, ve: number): void {
  const name = buf.toString('latin1', ks, ke);
  if (name === 'consistent_index') {
    if (ve - ke !== 8) throw new Damage(`meta consistent_index is ${ve - ke} bytes, not 8`);
    m.consistentIndex = beUint(buf, ke);
  } else if (name === 'finishedCompactRev' || name === 'scheduledCompactRev') {
    const rev = decodeRevision(buf, ke, ve).main;
    if (name === 'finishedCompactRev') m.compactRevision = rev;
    else m.scheduledCompactRevision = rev;
  }
}

export function memberEntry(members: SnapshotMember[], buf: Buffer, ks: number, ke: number, ve: number): void {
  const id = buf.toString('latin1', ks, ke);
  let json: unknown;
  try {
    json = JSON.parse(buf.toString('utf8', ke, ve));
  } catch {
    throw new Damage(`member ${id} is not JSON`);
  }
  const j = (typeof json === 'object' && json !== null ? json : {}) as Record<string, unknown>;
  const urls = Array.isArray(j.peerURLs) ? j.peerURLs.filter((u): u is string => typeof u === 'string') : [];
  members.push({ id, name: typeof j.name === 'string' ? j.name : '', peerURLs: urls, isLearner: j.isLearner === true });
}

export function readMeta(bolt: BoltFile, ref: BucketRef | undefined): MetaFields {
  const m: MetaFields = { consistentIndex: 0, compactRevision: 0, scheduledCompactRevision: 0 };
  if (ref) bolt.forEach(ref, null, (buf, el) => metaEntry(m, buf, el.keyStart, el.keyEnd, el.valueEnd));
  return m;
}

export interface StatusScan extends MetaFields {
  hash: number;
  revision: number;
  totalKey: number;
  liveKeys: number;
  members: SnapshotMember[];
}

/**
 * One full walk (every page reached at most once), as etcd 3.4's `snapshot status`: CRC-32C
 * over each top-level bucket's name, then each key and value in order (nothing for a nested
 * bucket's value), totalKey counting every entry, revision the main revision of the `key`
 * bucket's last key. Also checks and decodes every KeyValue, and counts live keys.
 */
export function statusScan(bolt: BoltFile): StatusScan {
  const walk = new Walk(bolt.meta.pgid);
  const crc = new Crc32c();
  const out: StatusScan = { hash: 0, revision: 0, totalKey: 0, liveKeys: 0, members: [], consistentIndex: 0, compactRevision: 0, scheduledCompactRevision: 0 };
  const live = new Map<string, boolean>();
  const revOut = newRevision();
  const kvOut = newKvFields();
  for (const { name, ref } of bolt.buckets(walk)) {
    crc.update(name);
    const kind = name.toString('latin1');
    // bbolt packs a page's keys and values in order (k0 v0 k1 v1 ...): hash each contiguous run in one piece
    let run: Buffer | null = null;
    let runStart = 0;
    let runEnd = 0;
    const flush = (): void => {
      if (run !== null) crc.update(run, runStart, runEnd);
      run = null;
    };
    bolt.forEach(
      ref,
      walk,
      (buf, el) => {
        const nested = (el.flags & BUCKET_LEAF) !== 0;
        // a nested bucket's value (its header) is not hashed: etcdctl's ForEach gives it as nil
        const hashEnd = nested ? el.keyEnd : el.valueEnd;
        if (run === buf && el.keyStart === runEnd) runEnd = hashEnd;
        else {
          flush();
          run = buf;
          runStart = el.keyStart;
          runEnd = hashEnd;
        }
        out.totalKey++;
        if (nested) return;
        if (kind === 'key') {
          const rev = decodeRevision(buf, el.keyStart, el.keyEnd, revOut);
          const kv = decodeKeyValue(buf, el.keyEnd, el.valueEnd, kvOut);
          if (!rev.tombstone && kv.modRevision !== rev.main) throw new Damage(`revision ${rev.main} holds a KeyValue of mod_revision ${kv.modRevision}`);
          out.revision = rev.main;
          const key = buf.toString('latin1', kv.keyStart, kv.keyEnd);
          const was = live.get(key) === true;
          if (was === rev.tombstone) out.liveKeys += rev.tombstone ? -1 : 1;
          live.set(key, !rev.tombstone);
        } else if (kind === 'meta') metaEntry(out, buf, el.keyStart, el.keyEnd, el.valueEnd);
        else if (kind === 'members') memberEntry(out.members, buf, el.keyStart, el.keyEnd, el.valueEnd);
      },
      flush,
    );
    flush();
  }
  out.hash = crc.digest();
  return out;
}

export interface KeyScan {
  /** Key (latin1, so JS string order is byte order) → its newest revision ≤ R. */
  slots: SlotTable;
  /** Number of revisions (puts and deletes) per key, when asked for (then `slots` stays empty). */
  counts: Map<string, number> | null;
  /** Main revision of the last entry of the bucket. */
  latest: number;
}

export interface KeyScanOptions {
  prefix?: Buffer | undefined;
  /** Only this exact key. */
  exact?: Buffer | undefined;
  /** Newest revision to consider (Infinity: all). */
  revision: number;
  /** Count revisions per key instead of keeping where each key's newest one is. */
  countRevisions?: boolean;
  /** With `countRevisions`: count per `countBy(key)` instead of per key (the key is a view: not kept). */
  countBy?: ((key: Buffer) => string) | undefined;
}

/** Scans the whole `key` bucket (a full walk) keeping, per matching key, its newest revision ≤ R. */
export function scanKeys(bolt: BoltFile, ref: BucketRef | undefined, opts: KeyScanOptions): KeyScan {
  const out: KeyScan = { slots: new SlotTable(), counts: opts.countRevisions ? new Map() : null, latest: 0 };
  if (ref === undefined) return out;
  const prefix = opts.exact ?? opts.prefix;
  const revOut = newRevision();
  const kvOut = newKvFields();
  const exact = opts.exact !== undefined;
  bolt.forEach(ref, new Walk(bolt.meta.pgid), (buf, el) => {
    if ((el.flags & BUCKET_LEAF) !== 0) throw new Damage('the key bucket holds a nested bucket');
    const rev = decodeRevision(buf, el.keyStart, el.keyEnd, revOut);
    out.latest = rev.main;
    const kv = decodeKeyValue(buf, el.keyEnd, el.valueEnd, kvOut);
    if (!rev.tombstone && kv.modRevision !== rev.main) throw new Damage(`revision ${rev.main} holds a KeyValue of mod_revision ${kv.modRevision}`);
    if (rev.main > opts.revision) return;
    const klen = kv.keyEnd - kv.keyStart;
    if (prefix !== undefined) {
      if (klen < prefix.length || (exact && klen !== prefix.length)) return;
      if (buf.compare(prefix, 0, prefix.length, kv.keyStart, kv.keyStart + prefix.length) !== 0) return;
    }
    if (out.counts) {
      const id = opts.countBy ? opts.countBy(buf.subarray(kv.keyStart, kv.keyEnd)) : buf.toString('latin1', kv.keyStart, kv.keyEnd);
      out.counts.set(id, (out.counts.get(id) ?? 0) + 1);
      return;
    }
    const key = buf.toString('latin1', kv.keyStart, kv.keyEnd);
    out.slots.set(key, {
      page: el.page,
      index: el.index,
      tombstone: rev.tombstone,
      createRevision: kv.createRevision,
      modRevision: kv.modRevision,
      version: kv.version,
      lease: kv.lease,
      valueSize: kv.valueEnd - kv.valueStart,
    });
  });
  return out;
}

/** The value of the KeyValue at a slot (re-read by position), checked to belong to `key`. */
export function readValue(bolt: BoltFile, ref: BucketRef, key: string, slot: Slot): Buffer {
  let value: Buffer | undefined;
  bolt.element(ref, slot.page, slot.index, (buf, el) => {
    const kv = decodeKeyValue(buf, el.keyEnd, el.valueEnd);
    if (buf.toString('latin1', kv.keyStart, kv.keyEnd) !== key) throw new Damage(`page ${slot.page} changed under the reader`);
    value = Buffer.from(buf.subarray(kv.valueStart, kv.valueEnd));
  });
  return value ?? Buffer.alloc(0);
}
