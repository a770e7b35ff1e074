/**
 * `openSnapshotReader(file)`: the `SnapshotReader` of an etcd (3.4) snapshot or backend db
 * file, read with `bbolt.ts` by page; nothing writes.
 *
 * - The sha256 trailer (32 bytes after the database, when size % pageSize == 32) is checked
 *   once per reader, started by the first method, beside its scan or pass (trailer.ts; a
 *   worker thread over 32 MiB, reading the file on its own).
 *   Every method waits for it before it answers, so a corrupt file never yields an answer.
 *   No trailer (size % pageSize == 0): 'absent'.
 * - `status()` reads every page once, in file order, and equals `etcdctl snapshot status -w
 *   json` on hash, revision, totalKey and totalSize; it falls back to the tree walk
 *   (`statusScan`) for a tree bbolt would not write.
 * - `entries`, `get` and `revisionCounts` each scan the `key` bucket once, keeping only where
 *   each matching key's newest revision ≤ R is; `entries` then reads values by position in
 *   key order. Memory: O(matching keys), never the values of more than one key at a time.
 * - A revision below the compact revision (the larger of finished and scheduled, as etcd
 *   finishes a scheduled compaction on start) or above the latest is a `usage` error.
 * - A damaged file: an `integrity` error "<file>: damaged snapshot: <what>".
 */
import { EtcdsnapError, errnoCode } from '../errors.js';
import { BoltFile, Damage } from './bbolt.js';
import {
  type Buckets,
  findBuckets,
  type KeyScan,
  type KeyScanOptions,
  readMeta,
  readValue,
  type Slot,
  type StatusScan,
  scanKeys,
  statusScan,
} from './mvcc-scan.js';
import { statusPass } from './status-seq.js';
import { INLINE_LIMIT, TrailerCheck } from './trailer.js';
import type { EntriesOptions, SnapshotKeyValue, SnapshotReader, SnapshotStatus } from './types.js';

function damaged(file: string, err: unknown): unknown {
  if (err instanceof Damage) return new EtcdsnapError('integrity', `${file}: damaged snapshot: ${err.message}`, { cause: err });
  // a Buffer read past its end: an offset in the file that the checks did not foresee
  if (err instanceof RangeError) return new EtcdsnapError('integrity', `${file}: damaged snapshot: ${err.message}`, { cause: err });
  return err;
}

function guard<T>(file: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw damaged(file, err);
  }
}

export interface OpenOptions {
  /** Files whose database part is larger are hashed in a worker thread (default 32 MiB; 0: always; tests use it). */
  hashInWorkerAbove?: number;
}

/** Opens a snapshot file: checks its meta pages and size now, its sha256 trailer from now on. */
export async function openSnapshotReader(file: string, options: OpenOptions = {}): Promise<SnapshotReader> {
  let bolt: BoltFile;
  try {
    bolt = new BoltFile(file);
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT') throw new EtcdsnapError('not-found', `${file}: no such file`);
    if (code === 'EISDIR') throw new EtcdsnapError('usage', `${file} is a directory, not a snapshot file`);
    throw damaged(file, err);
  }
  return new MvccReader(bolt, options.hashInWorkerAbove ?? INLINE_LIMIT);
}

class MvccReader implements SnapshotReader {
  private trailer: TrailerCheck | null = null;
  private checked: Promise<'ok' | 'absent'> | null = null;
  private readonly buckets: Buckets;
  private closed = false;

  constructor(
    private readonly bolt: BoltFile,
    private readonly inlineLimit: number,
  ) {
    try {
      this.buckets = guard(bolt.file, () => findBuckets(bolt));
    } catch (err) {
      bolt.close();
      throw err;
    }
  }

  private get file(): string {
    return this.bolt.file;
  }

  private mismatch(): EtcdsnapError {
    return new EtcdsnapError('integrity', `${this.file}: damaged snapshot: its sha256 trailer does not match its content`);
  }

  /** The trailer verdict, checked once per reader (started by the first method that needs it, beside its scan). */
  private verdict(): Promise<'ok' | 'absent'> {
    if (this.checked === null) {
      if (!this.bolt.hasTrailer) this.checked = Promise.resolve('absent');
      else {
        const t = new TrailerCheck(this.file, this.bolt.dataSize, this.inlineLimit);
        this.trailer = t;
        this.checked = t.result.then((ok) => {
          if (!ok) throw this.mismatch();
          return 'ok' as const;
        });
      }
      this.checked.catch(() => {
        /* awaited by every method; this only keeps an unawaited failure from being "unhandled" */
      });
    }
    return this.checked;
  }

  private assertOpen(): void {
    if (this.closed) throw new EtcdsnapError('usage', `${this.file}: the snapshot reader is closed`);
  }

  async status(): Promise<SnapshotStatus> {
    this.assertOpen();
    const s = await this.statusScan();
    const trailer = await this.verdict();
    return {
      hash: s.hash,
      revision: s.revision,
      totalKey: s.totalKey,
      totalSize: this.bolt.size,
      pageSize: this.bolt.pageSize,
      trailer,
      compactRevision: s.compactRevision,
      scheduledCompactRevision: s.scheduledCompactRevision,
      consistentIndex: s.consistentIndex,
      members: s.members.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)),
      liveKeys: s.liveKeys,
    };
  }

  /**
   * The one-pass status (status-seq.ts), with the trailer check started first so that it runs
   * beside the pass (in a worker thread over the inline limit); the tree walk when the pass
   * declines (a tree bbolt would not write).
   */
  private async statusScan(): Promise<StatusScan> {
    const bolt = this.bolt;
    const fresh = this.checked === null;
    this.verdict();
    let s: StatusScan | null;
    try {
      s = guard(this.file, () => statusPass(bolt));
    } catch (err) {
      if (fresh) {
        // a damaged file: the check is not needed now (a later method starts it again)
        await this.trailer?.stop();
        this.trailer = null;
        this.checked = null;
      }
      throw err;
    }
    return s ?? guard(this.file, () => statusScan(bolt));
  }

  /** Checks a requested revision against compaction, scans, then checks it against the latest. */
  private scan(opts: Omit<KeyScanOptions, 'revision'>, revision: number | undefined): KeyScan {
    if (revision !== undefined) {
      if (!Number.isSafeInteger(revision) || revision < 1) throw new EtcdsnapError('usage', `revision ${revision} is not a positive integer`);
      const m = guard(this.file, () => readMeta(this.bolt, this.buckets.meta));
      const floor = Math.max(m.compactRevision, m.scheduledCompactRevision);
      if (revision < floor) throw new EtcdsnapError('usage', `revision ${revision} has been compacted in ${this.file} (compacted up to ${floor})`);
    }
    const r = guard(this.file, () => scanKeys(this.bolt, this.buckets.key, { ...opts, revision: revision ?? Number.POSITIVE_INFINITY }));
    if (revision !== undefined && revision > r.latest)
      throw new EtcdsnapError('usage', `revision ${revision} is after the snapshot's latest revision ${r.latest}`);
    return r;
  }

  private kv(key: string, slot: Slot, values: boolean): SnapshotKeyValue {
    const ref = this.buckets.key;
    const value = values && ref ? guard(this.file, () => readValue(this.bolt, ref, key, slot)) : Buffer.alloc(0);
    return {
      key: Buffer.from(key, 'latin1'),
      value,
      createRevision: slot.createRevision,
      modRevision: slot.modRevision,
      version: slot.version,
      lease: slot.lease,
      valueSize: slot.valueSize,
    };
  }

  async *entries(opts: EntriesOptions): AsyncIterable<SnapshotKeyValue> {
    this.assertOpen();
    const trailer = this.verdict();
    const { slots } = this.scan({ prefix: opts.prefix }, opts.revision);
    await trailer;
    const keys = slots.liveKeys();
    for (const k of keys) {
      this.assertOpen();
      yield this.kv(k, slots.get(k) as Slot, opts.values);
    }
  }

  async get(key: Buffer, revision?: number): Promise<SnapshotKeyValue | undefined> {
    this.assertOpen();
    const trailer = this.verdict();
    const { slots } = this.scan({ exact: key }, revision);
    await trailer;
    const k = key.toString('latin1');
    const slot = slots.get(k);
    return slot === undefined || slot.tombstone ? undefined : this.kv(k, slot, true);
  }

  async revisionCounts(prefix?: Buffer, countBy?: (key: Buffer) => string): Promise<Map<string, number>> {
    this.assertOpen();
    const trailer = this.verdict();
    const r = this.scan({ prefix, countRevisions: true, countBy }, undefined);
    await trailer;
    return r.counts ?? new Map();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.trailer?.stop();
    this.bolt.close();
  }
}
