/**
 * `SegmentUploader`: puts each sealed local segment into S3 as well (remote.ts says what the
 * object is), off the writer's path: the writer only calls `enqueue(name)` (its `onSealed`),
 * the uploads run one at a time on their own queue, each failure retried after the delays of
 * `--etcd-s3-upload-retry-delays` (bounded; `RetryQueue`), then logged as an error and left
 * for the next start: `start()` lists the bucket's segments and uploads every local one that
 * is not there (the local segment is the source). `prune(removed)` deletes from S3 what local
 * retention removed, and the objects of this node's chains (the chains of the local
 * segments) older than the first local segment of their chain (a delete that failed before).
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
import { listSegments } from './segments.js';

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

  /** Deletes from S3 the segments local retention removed, and older ones of this node's chains. */
  prune(removed: readonly string[]): void {
    this.run(async () => {
      const local = await listSegments(this.o.dir);
      const firstOf = new Map<string, number>();
      for (const s of local) firstOf.set(s.chain, Math.min(firstOf.get(s.chain) ?? s.first, s.first));
      const gone = new Set(removed);
      const names: string[] = [];
      for (const o of await this.o.store.list()) {
        const seg = segmentOfObject(o.name);
        const parsed = seg !== undefined ? parseSegmentName(seg) : undefined;
        if (seg === undefined || !parsed) continue;
        const first = firstOf.get(parsed.chain);
        if (gone.has(seg) || (first !== undefined && parsed.last < first)) names.push(o.name);
      }
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
