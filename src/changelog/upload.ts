/**
 * `SegmentUploader`: puts each sealed local segment into S3 as well (remote.ts says what the
 * object is), off the writer's path: the writer only calls `enqueue(name)` (its `onSealed`),
 * the uploads run one at a time on their own queue, each failure retried after the delays of
 * `--etcd-s3-upload-retry-delays` (bounded; `RetryQueue`), then logged as an error and left
 * for the next start: `start()` lists the bucket's segments and uploads every local one that
 * is not there (the local segment is the source). `prune(removed, kept, current)` is called
 * on the cluster's writer only (segments of one chain come from every server that held the
 * lease) and deletes the objects `s3Unneeded` names.
 */
import path from 'node:path';
import { promises as fsp } from 'node:fs';
import type { Logger } from '../log/logger.js';
import { messageOf } from '../errors.js';
import type { SnapshotEncoding } from '../model/encoding.js';
import type { ObjectStore } from '../store/object-store.js';
import { RetryQueue } from '../snapshot/retry-queue.js';
import { decodeSegment, parseSegmentName } from './format.js';
import { encodeSegmentObject, segmentOfObject } from './remote.js';
import { listSegments, type KeptSnapshot } from './segments.js';

/** The chain the writer writes, and when it began (the snapshot it began after was taken then). */
export interface CurrentChain {
  chain: string;
  since: number;
}

/**
 * Pure: the S3 segment objects (by object name) no kept snapshot of the writer needs:
 * - those whose segment local retention just removed (`removed`);
 * - of the current chain, those whose last revision is at or below the revision of every
 *   kept snapshot taken since the chain began (a restore from any of them starts after it);
 * - of any other chain (an older one, a broken one, another etcd cluster's), all, once every
 *   kept snapshot was taken since the current chain began (none of them can use another chain).
 * With no kept snapshot, nothing.
 */
export function s3Unneeded(objects: readonly string[], removed: readonly string[], kept: readonly KeptSnapshot[], current: CurrentChain): string[] {
  if (kept.length === 0) return [];
  const gone = new Set(removed);
  const ofChain = kept.filter((k) => k.createdAt >= current.since);
  const floor = ofChain.length > 0 ? Math.min(...ofChain.map((k) => k.revision)) : undefined;
  const othersUnneeded = ofChain.length === kept.length;
  return objects.filter((o) => {
    const seg = segmentOfObject(o);
    const parsed = seg !== undefined ? parseSegmentName(seg) : undefined;
    if (seg === undefined || !parsed) return false;
    if (gone.has(seg)) return true;
    if (parsed.chain === current.chain) return floor !== undefined && parsed.last <= floor;
    return othersUnneeded;
  });
}

export interface SegmentUploaderOptions {
  store: ObjectStore;
  /** The local change log folder. */
  dir: string;
  encoding: SnapshotEncoding;
  /** Delays before each retry; its length bounds them. */
  retryDelaysMs: readonly number[];
  logger: Logger;
  /** Told each upload that failed for good (after its retries). */
  onFailure?: (segment: string, err: unknown) => void;
}

export class SegmentUploader {
  private queue: Promise<void> = Promise.resolve();
  private readonly retries: RetryQueue;
  private stopped = false;
  /** Object names known to be in the bucket, by segment name. */
  private readonly remote = new Map<string, string>();

  constructor(private readonly o: SegmentUploaderOptions) {
    this.retries = new RetryQueue({ delays: o.retryDelaysMs });
  }

  /** Lists the bucket's segments and queues every local sealed segment missing there. Never rejects. */
  start(): void {
    this.run(async () => {
      for (const o of await this.o.store.list()) {
        const seg = segmentOfObject(o.name);
        if (seg !== undefined) this.remote.set(seg, o.name);
      }
      const missing = (await listSegments(this.o.dir)).filter((s) => !this.remote.has(s.name));
      if (missing.length > 0) this.o.logger.info({ segments: missing.length }, `change log: uploading ${missing.length} segments not yet in S3`);
      for (const s of missing) this.enqueue(s.name);
    }, 'listing the change log in S3 failed; segments sealed from now on are uploaded');
  }

  /** Queues the upload of the sealed segment `name` (the writer's `onSealed`); returns at once. */
  enqueue(name: string, attempt = 0): void {
    if (this.stopped) return;
    this.queue = this.queue.then(async () => {
      if (this.stopped) return;
      try {
        await this.upload(name);
      } catch (err) {
        if (this.stopped) return;
        const r = this.retries.schedule(async () => this.enqueue(name, attempt + 1), attempt);
        if (r.scheduled) {
          this.o.logger.warn(
            { segment: name, err: messageOf(err), retryInMs: r.delayMs },
            `change log: upload of ${name} to S3 failed, retrying: ${messageOf(err)}`,
          );
        } else {
          this.o.logger.error(
            { segment: name, err: messageOf(err) },
            `change log: upload of ${name} to S3 failed; it is retried at the next start: ${messageOf(err)}`,
          );
          this.o.onFailure?.(name, err);
        }
      }
    });
  }

  private async upload(name: string): Promise<void> {
    if (this.remote.has(name)) return; // queued twice (sealed while the start listed the bucket)
    const plain = await fsp.readFile(path.join(this.o.dir, name)).catch(() => undefined);
    if (plain === undefined) return; // pruned meanwhile
    const obj = await encodeSegmentObject(decodeSegment(name, plain), plain, this.o.encoding);
    await this.o.store.put(obj.name, obj.body, { contentType: obj.contentType, metadata: obj.metadata });
    this.remote.set(name, obj.name);
    this.o.logger.debug({ segment: name, location: this.o.store.location(obj.name) }, `change log: uploaded ${name}`);
  }

  /** Deletes from S3 the objects `s3Unneeded` names (call it on the writer only). */
  prune(removed: readonly string[], kept: readonly KeptSnapshot[], current: CurrentChain): void {
    this.run(async () => {
      const names = s3Unneeded(
        (await this.o.store.list()).map((o) => o.name),
        removed,
        kept,
        current,
      );
      if (names.length === 0) return;
      await this.o.store.delete(names);
      for (const n of names) {
        const seg = segmentOfObject(n);
        if (seg !== undefined) this.remote.delete(seg);
      }
      this.o.logger.info({ segments: names.length }, `change log: removed ${names.length} segments from S3 that no kept snapshot needs`);
    }, 'change log: S3 retention failed');
  }

  private run(job: () => Promise<void>, what: string): void {
    this.queue = this.queue.then(job).catch((err: unknown) => this.o.logger.warn({ err: messageOf(err) }, `${what}: ${messageOf(err)}`));
  }

  /** Waits for the queued work (at most `timeoutMs`), cancels the retries, releases the store. */
  async stop(timeoutMs = 5000): Promise<void> {
    await Promise.race([this.queue, new Promise((r) => setTimeout(r, timeoutMs).unref())]);
    this.stopped = true;
    await this.retries.drain(timeoutMs);
    this.o.store.close();
  }

  /** Resolves when the queued work is done (tests). */
  idle(): Promise<void> {
    return this.queue;
  }
}
