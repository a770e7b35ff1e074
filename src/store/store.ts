/**
 * `SnapshotStore`: one place that keeps snapshot files and their records (sidecars). The
 * local folder (`local.ts`), an S3 bucket folder (`s3/snapshot-store.ts`) and memory
 * (`memory.ts`, for tests) implement it; `factory.ts` builds one from a `StoreSpec`.
 * test/store-conformance.test.ts runs one suite against all three.
 *
 * Contract:
 * - Names: every method that takes a snapshot name checks it with `assertStoreName` first and
 *   throws its `usage` error, the same for every store: empty, path separators, `..`, NUL and
 *   other control characters, over 255 bytes, hidden names (leading `.`, e.g. `.metadata`)
 *   and `.part` names are refused before any I/O.
 * - Two-step write: `beginWrite(name)` answers a `SnapshotSink`. Bytes written to
 *   `sink.stream` are held by the store but invisible: until `commit()` resolved, `list`,
 *   `stat` and `openRead` do not see the name (local: `<name>.part`; S3: the parts of a
 *   multipart upload, CompleteMultipartUpload not sent; memory: a buffer aside). The
 *   stream's 'finish' means every byte was handed over (S3: every part uploaded), so that
 *   `commit()` has only the commit left to do (local: fsync, rename, fsync the folder; S3:
 *   CompleteMultipartUpload, or PutObject for a body shorter than one part). `commit()` may
 *   be called only after 'finish', and resolves with the snapshot's location.
 * - `abort()` leaves nothing behind (local: the `.part` removed; S3: AbortMultipartUpload, no
 *   parts left and no object; memory: the buffer dropped). It is safe at any time: before the
 *   stream finished, after 'finish', after a failed `commit()`, twice. After a successful
 *   `commit()` it does nothing (use `delete`). A stream destroyed with an error must be
 *   followed by `abort()`. Aborting `opts.signal` aborts the write too.
 * - A record (`writeRecord`/`readRecord`) is kept beside the snapshot, in each store's own
 *   encoding (local: the whole record; S3: without the replica state, at its own location).
 *   `readRecord` answers undefined when there is none; a store may refuse (`integrity`) a
 *   record it cannot trust (S3: too big, not a record, a malformed sha256).
 * - `list` shows committed snapshots only, never `.part` files or open uploads; a store
 *   whose content comes from others (S3) skips what is not a snapshot of ours (see its
 *   module). `delete` removes snapshots with their records and answers the names that existed.
 * - `openRead` gives the bytes as stored; callers verify them against the record's sha256
 *   (snapshot/transfer.ts). A missing name rejects with `not-found`.
 */
import type { Readable, Writable } from 'node:stream';
import { EtcdsnapError } from '../errors.js';
import { assertSafeName, PART_EXT } from '../model/naming.js';
import type { SnapshotRecord } from '../model/records.js';

export interface WriteOptions {
  contentType: string;
  /** Kept with the object where the store can (S3 user metadata); lower-case keys. */
  metadata: Record<string, string>;
  /** Aborting it aborts the write (as `abort()`). */
  signal?: AbortSignal;
}

/** A write in progress (see the module contract). */
export interface SnapshotSink {
  readonly stream: Writable;
  /** Makes the snapshot visible; resolves with its location. Only after the stream finished. */
  commit(): Promise<string>;
  /** Leaves nothing behind; safe at any time, also after a failed commit. */
  abort(): Promise<void>;
}

export interface ListOptions {
  /** Node name for records without one (local files without a sidecar). */
  nodeName: string;
  /** Complete each record from its sidecar where that costs a request per record (S3). */
  withRecords?: boolean;
  /** Now, for the expiry of failed records (local). */
  now?: Date;
}

export interface StoreStat {
  size: number;
  modified: Date;
}

/** Which incomplete writes `discardIncomplete` removes. */
export type IncompleteFilter = { name: string } | { nodeName: string };

export interface SnapshotStore {
  /** 'local', 's3' or 'memory'. */
  readonly kind: string;
  beginWrite(name: string, opts: WriteOptions): Promise<SnapshotSink>;
  list(opts: ListOptions): Promise<SnapshotRecord[]>;
  openRead(name: string, signal?: AbortSignal): Promise<Readable>;
  /** Size and time of a committed snapshot; undefined when there is none. */
  stat(name: string): Promise<StoreStat | undefined>;
  /** Deletes snapshots and their records; answers the names whose snapshot or record existed. */
  delete(names: readonly string[]): Promise<string[]>;
  readRecord(name: string): Promise<SnapshotRecord | undefined>;
  writeRecord(record: SnapshotRecord): Promise<void>;
  /** `file://<path>`, `s3://<bucket>/<key>`, `memory://<name>`. */
  location(name: string): string;
  /** For logs; never holds credentials. */
  describe(): string;
  /** Resolves when the store answers and may be used (S3: HeadBucket). */
  probe(): Promise<void>;
  /**
   * Removes writes a crash or an unreachable store left incomplete: of `name`, or of this
   * node's snapshots (at start, when no write of ours runs). Answers the names removed.
   */
  discardIncomplete(filter: IncompleteFilter): Promise<string[]>;
  /** Releases connections; the store must not be used afterwards. */
  close(): void;
}

/**
 * The name check of every store: `assertSafeName` (empty, separators, `..`, NUL, control
 * characters, over 255 bytes), plus hidden names (`.metadata`, temp files) and `.part`
 * names, which stores use themselves. Throws `usage`; answers the name.
 */
export function assertStoreName(name: unknown): string {
  const n = assertSafeName(name);
  if (n.startsWith('.') || n.endsWith(PART_EXT)) {
    const shown = JSON.stringify(n.length > 80 ? `${n.slice(0, 80)}...` : n);
    throw new EtcdsnapError('usage', `invalid snapshot name ${shown}: hidden names (a leading '.') and ${PART_EXT} names are not allowed`);
  }
  return n;
}

/** Whether `assertStoreName` accepts `name`. */
export function isStoreName(name: string): boolean {
  try {
    assertStoreName(name);
    return true;
  } catch {
    return false;
  }
}
