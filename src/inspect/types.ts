/**
 * The vocabulary of snapshot inspection (issue 13): what a reader of an etcd snapshot file
 * answers. `bbolt.ts` reads the page file, `mvcc.ts` reads etcd's buckets on top of it and
 * implements `SnapshotReader`; `k8s.ts` decodes Kubernetes values; `stats.ts` and `diff.ts`
 * aggregate over `SnapshotReader.entries`. Nothing here writes.
 *
 * Revisions are JS numbers: etcd revisions are int64, and a reader refuses (`integrity`) one
 * above Number.MAX_SAFE_INTEGER instead of rounding it.
 */
import type { KeyValue } from '../model/key-value.js';

/** One key at one revision, as etcd's mvccpb.KeyValue says it (model/key-value.ts). */
export interface SnapshotKeyValue extends KeyValue {
  /**
   * Bytes of the value, also when `entries` was asked for no values (`value` is then empty):
   * the reader knows it from the scan. Absent on entries not made by a reader.
   */
  valueSize?: number;
}

/** What `etcdctl snapshot status -w json` says, plus what it does not. */
export interface SnapshotStatus {
  /** CRC-32C over every bucket name, key and value, in bbolt order (as etcdctl computes it). */
  hash: number;
  /** Main revision of the last entry of the `key` bucket (0 when empty). */
  revision: number;
  /** Entries in all top-level buckets (etcdctl's "totalKey"). */
  totalKey: number;
  /** Bytes of the bbolt database: high-water page id × page size (etcdctl's "totalSize"). */
  totalSize: number;
  pageSize: number;
  /** 'ok' when a 32-byte sha256 trailer matches, 'absent' when the file has none. A mismatch is an error, not a verdict. */
  trailer: 'ok' | 'absent';
  /** `meta` bucket: finishedCompactRev (0 when never compacted). */
  compactRevision: number;
  /** `meta` bucket: scheduledCompactRev (0 when none). */
  scheduledCompactRevision: number;
  /** `meta` bucket: consistent_index. */
  consistentIndex: number;
  /** `members` bucket, parsed; ids as lower-case hex as etcdctl prints them. */
  members: SnapshotMember[];
  /** Live keys at `revision` (not counting tombstoned ones). */
  liveKeys: number;
}

export interface SnapshotMember {
  id: string;
  name: string;
  peerURLs: string[];
  isLearner: boolean;
}

export interface EntriesOptions {
  /** Only keys that start with these bytes. */
  prefix?: Buffer;
  /**
   * The view at this revision (default: the snapshot's latest). Below the compact revision it
   * is refused with a `usage` error, as etcd refuses a read of a compacted revision.
   */
  revision?: number;
  /**
   * Also read the values (false: `value` is an empty Buffer and no value is read again or
   * copied; the scan itself still reads every page of the `key` bucket, as etcd keeps each
   * key inside the KeyValue stored with its value).
   */
  values: boolean;
}

/**
 * A read-only view of one snapshot file. Every method reads by page from the file; none holds
 * the whole file in memory. A damaged file (bad meta checksum, a page out of bounds or reached
 * twice, a truncated overflow, a malformed KeyValue, a sha256 trailer that does not match)
 * rejects with an `integrity` EtcdsnapError naming the file and what is wrong — never a partial
 * or wrong answer.
 */
export interface SnapshotReader {
  status(): Promise<SnapshotStatus>;
  /** The keys alive at the revision, in key (byte) order, each with its newest revision ≤ it. */
  entries(opts: EntriesOptions): AsyncIterable<SnapshotKeyValue>;
  /** One key at the revision (default latest); undefined when it is absent or deleted there. */
  get(key: Buffer, revision?: number): Promise<SnapshotKeyValue | undefined>;
  /**
   * Number of revisions (puts and deletes) recorded per key — for `stats`; prefix-filtered.
   * The map key is the etcd key as a latin1 string (`key.toString('latin1')`, one char per
   * byte, so any key round-trips exactly), or `countBy(key)` when given: counts summed per
   * group, so that the map holds one entry per group instead of one per key. `countBy` gets a
   * view of the page: it must not keep the Buffer.
   */
  revisionCounts(prefix?: Buffer, countBy?: (key: Buffer) => string): Promise<Map<string, number>>;
  close(): Promise<void>;
}
