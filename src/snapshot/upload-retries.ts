/**
 * Retries of replica copies (S3 uploads) that failed: from the local file, through a
 * `RetryQueue`, each run in the service's turn (`run`). The outcome of each attempt is kept
 * in the local record's replica state (replica-state.ts).
 */
import type { Logger } from '../log/logger.js';
import { messageOf } from '../errors.js';
import type { LocalStore } from '../store/local.js';
import type { SnapshotStore } from '../store/store.js';
import type { SnapshotRecord } from '../model/records.js';
import type { RetryQueue } from './retry-queue.js';
import { needsRetry, withReplicaState } from './replica-state.js';
import { replicate } from './transfer.js';
import type { SnapshotObserver } from './events.js';

/** Runs `fn` in the service's turn (one operation at a time). */
export type TurnRunner = (what: string, fn: () => Promise<void>) => Promise<void>;

export class UploadRetries {
  constructor(
    private readonly queue: RetryQueue,
    private readonly logger: Logger,
    private readonly nodeName: string,
    private readonly run: TurnRunner,
    /** Told each retry's outcome (events.ts `upload`); must not throw. */
    private readonly emit: SnapshotObserver = () => undefined,
  ) {}

  /**
   * Queues attempt `attempt + 2` of an upload that failed (`attempt` retries ago); logs
   * when the attempts are used up, or when the queue is closed (the record stays failed and
   * `resume` picks it up at the next start). Answers whether an attempt was queued.
   */
  schedule(store: SnapshotStore, dir: LocalStore, record: SnapshotRecord, attempt: number): boolean {
    const log = this.logger.child({ snapshot: record.name });
    const r = this.queue.schedule((signal) => this.run('upload retry', () => this.retry(store, dir, record, attempt, signal)), attempt);
    if (r.scheduled) {
      log.warn({ retryInMs: r.delayMs, attempt: attempt + 2 }, `will retry the S3 upload of ${record.name}`);
    } else if (r.reason === 'exhausted') {
      log.error({ attempts: attempt + 1 }, `giving up uploading ${record.name} to S3 after ${attempt + 1} attempts; the local snapshot is kept`);
    } else {
      log.info(`not retrying the S3 upload of ${record.name} now: the server is shutting down (it is retried at the next start)`);
    }
    return r.scheduled;
  }

  /** One retry: re-reads the local record, copies the file again, records the outcome. */
  private async retry(store: SnapshotStore, dir: LocalStore, record: SnapshotRecord, attempt: number, signal: AbortSignal): Promise<void> {
    const log = this.logger.child({ snapshot: record.name });
    const current = await dir.readRecord(record.name);
    if (current?.status !== 'successful' || !(await dir.exists(record.name))) {
      log.info('the local snapshot is gone; not retrying its upload');
      return;
    }
    const state = { location: store.location(record.name), attempts: attempt + 2, updatedAt: new Date().toISOString() };
    const t0 = performance.now();
    const event = { kind: 'upload', store: 's3', attempt: attempt + 2, bytes: current.size, createdAt: current.createdAt, snapshot: record.name } as const;
    try {
      await replicate(dir, store, current, this.nodeName, signal);
      await dir.writeRecord(withReplicaState(current, { ...state, status: 'successful' }));
      log.info({ location: state.location, attempt: attempt + 2 }, `Snapshot ${record.name} uploaded to S3 on retry`);
      this.emit({ ...event, result: 'success', seconds: (performance.now() - t0) / 1000, final: false });
    } catch (err) {
      const seconds = (performance.now() - t0) / 1000;
      await dir.writeRecord(withReplicaState(current, { ...state, status: 'failed', message: messageOf(err) })).catch(() => undefined);
      log.error({ err: messageOf(err), attempt: attempt + 2 }, `retry of the S3 upload of ${record.name} failed: ${messageOf(err)}`);
      const queued = this.schedule(store, dir, current, attempt + 1);
      this.emit({ ...event, result: 'failure', seconds, final: !queued, error: messageOf(err) });
    }
  }

  /** Cancels pending retries and waits for running ones (see `RetryQueue.drain`). */
  drain(timeoutMs: number): Promise<void> {
    return this.queue.drain(timeoutMs);
  }

  /** Re-queues uploads to `store` that failed before a restart (local records marked failed). */
  async resume(store: SnapshotStore, dir: LocalStore): Promise<number> {
    let n = 0;
    for (const r of await dir.list({ nodeName: this.nodeName })) {
      if (needsRetry(r, store.location(r.name))) {
        this.schedule(store, dir, r, 0);
        n++;
      }
    }
    return n;
  }
}
