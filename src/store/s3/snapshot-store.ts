/**
 * `S3SnapshotStore`: the `SnapshotStore` (store/store.ts) of one bucket folder, on top of the
 * bucket client `S3Store`. The untrusted-input rules of a listing and of sidecars are in
 * records.ts; this file adds the two-step write: `beginWrite` streams the parts of a
 * multipart upload and holds CompleteMultipartUpload (or the PutObject of a body shorter
 * than one part, kept in memory until then) until `commit()`; `abort()` aborts the upload.
 */
import { PassThrough, Writable, type Readable } from 'node:stream';
import { EtcdsnapError } from '../../errors.js';
import type { SnapshotRecord } from '../../model/records.js';
import {
  assertStoreName,
  type IncompleteFilter,
  type ListOptions,
  type SnapshotSink,
  type SnapshotStore,
  type StoreStat,
  type WriteOptions,
} from '../store.js';
import { abortStaleUploads, deleteFromS3, listS3Records, putSidecar, readBucketRecord, type S3SkipReporter } from './records.js';
import { S3Store } from './store.js';
import type { S3Settings } from './settings.js';

export class S3SnapshotStore implements SnapshotStore {
  readonly kind = 's3';

  /** `bucket` is the client this store owns (`close()` destroys it). */
  constructor(
    readonly bucket: S3Store,
    private readonly onSkip?: S3SkipReporter,
  ) {}

  /** Validates the settings and builds the client (no I/O); see `S3Store.create`. */
  static create(settings: S3Settings, onSkip?: S3SkipReporter): S3SnapshotStore {
    return new S3SnapshotStore(S3Store.create(settings), onSkip);
  }

  async beginWrite(name: string, opts: WriteOptions): Promise<SnapshotSink> {
    const n = assertStoreName(name);
    const ctl = new AbortController();
    const signal = opts.signal ? AbortSignal.any([opts.signal, ctl.signal]) : ctl.signal;
    let ready: () => void = () => undefined;
    const partsDone = new Promise<void>((resolve) => (ready = resolve));
    let open: () => void = () => undefined;
    const gate = new Promise<void>((resolve, reject) => {
      open = resolve;
      const onAbort = (): void => reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    });
    gate.catch(() => undefined);
    const body = new PassThrough({ highWaterMark: 1 << 20 });
    let failure: unknown;
    let committed = false;
    const uploading = this.bucket.upload(n, body, { contentType: opts.contentType, metadata: opts.metadata, signal, hold: { ready, gate } });
    const stream = new Writable({
      highWaterMark: 1 << 20,
      write(chunk: Buffer, _enc, cb) {
        if (failure !== undefined) return cb(failure instanceof Error ? failure : new Error(String(failure)));
        if (body.write(chunk)) return cb();
        const go = (): void => {
          body.off('drain', go);
          body.off('close', go);
          cb();
        };
        body.once('drain', go);
        body.once('close', go);
      },
      final(cb) {
        body.end();
        Promise.race([partsDone, uploading]).then(
          () => cb(),
          (err: unknown) => cb(err instanceof Error ? err : new Error(String(err))),
        );
      },
      destroy(err, cb) {
        if (!body.writableEnded) body.destroy(err ?? new Error('the write was abandoned'));
        cb(err);
      },
    });
    uploading.catch((err: unknown) => {
      failure ??= err;
      if (!stream.writableFinished && !stream.destroyed) stream.destroy(err instanceof Error ? err : new Error(String(err)));
    });
    const location = this.location(n);
    return {
      stream,
      commit: async () => {
        if (committed) return location;
        open();
        await uploading;
        committed = true;
        return location;
      },
      abort: async () => {
        if (committed) return;
        if (!ctl.signal.aborted) ctl.abort(new EtcdsnapError('unavailable', `the write of ${location} was aborted`, { retryable: false }));
        if (!stream.destroyed) stream.destroy();
        await uploading.catch(() => undefined);
      },
    };
  }

  async list(opts: ListOptions): Promise<SnapshotRecord[]> {
    return listS3Records(this.bucket, opts.withRecords ?? false, this.onSkip);
  }

  async openRead(name: string): Promise<Readable> {
    return this.bucket.getStream(this.bucket.key(assertStoreName(name)));
  }

  async stat(name: string): Promise<StoreStat | undefined> {
    const h = await this.bucket.head(this.bucket.key(assertStoreName(name)));
    return h ? { size: h.size, modified: h.lastModified } : undefined;
  }

  async delete(names: readonly string[]): Promise<string[]> {
    return deleteFromS3(
      this.bucket,
      names.map((n) => assertStoreName(n)),
    );
  }

  async readRecord(name: string): Promise<SnapshotRecord | undefined> {
    return readBucketRecord(this.bucket, assertStoreName(name));
  }

  async writeRecord(record: SnapshotRecord): Promise<void> {
    assertStoreName(record.name);
    await putSidecar(this.bucket, record);
  }

  location(name: string): string {
    return this.bucket.location(assertStoreName(name));
  }

  describe(): string {
    return this.bucket.describe();
  }

  async probe(): Promise<void> {
    await this.bucket.checkBucket();
  }

  async discardIncomplete(filter: IncompleteFilter): Promise<string[]> {
    if ('nodeName' in filter) return abortStaleUploads(this.bucket, filter.nodeName, this.onSkip);
    const key = this.bucket.key(assertStoreName(filter.name));
    const out: string[] = [];
    for (const u of await this.bucket.listMultipartUploads()) {
      if (u.key !== key) continue;
      await this.bucket.abortMultipartUpload(u.key, u.uploadId);
      out.push(filter.name);
    }
    return out;
  }

  close(): void {
    this.bucket.destroy();
  }
}
