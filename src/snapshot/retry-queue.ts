/**
 * A queue of delayed retries that knows jobs, not snapshots. The upload-specific part (what
 * a retry does, what it logs) is the caller's; `SnapshotService` uses it for S3 uploads.
 *
 * Contract:
 * - `schedule(job, attempt)` runs `job` once, `delays[attempt]` ms later. Attempts are
 *   bounded by `delays`: when `attempt >= delays.length` nothing is scheduled and the answer
 *   is `{ scheduled: false, reason: 'exhausted' }`. A job that wants another attempt
 *   schedules itself again with `attempt + 1` (the queue never re-runs a job on its own; a
 *   job's rejection is swallowed, so a job reports its own failures).
 * - Jobs due at the same time run in the order they were scheduled (timers of equal delay
 *   fire in insertion order); several jobs may run at once.
 * - Each run gets an `AbortSignal`; it aborts only when `drain` times out. A job must stop
 *   soon after it aborts (its promise settling is what `drain` waits for).
 * - `drain(timeoutMs)` closes the queue (later `schedule` calls answer
 *   `{ scheduled: false, reason: 'closed' }` and no job starts after it was called), cancels
 *   every pending timer, then waits for the jobs already running; if they have not settled
 *   after `timeoutMs`, it aborts their signal and keeps waiting until they have. When it
 *   resolves no job is running, so the caller may release what jobs use (S3 clients).
 * - Timers are unref'd by default (`nodeTimer`): pending retries never keep the process alive.
 */
import { parseRetryDelays } from '../config/checks.js';
import { SERVER_OPTIONS, stringDefault } from '../config/schema.js';

/**
 * Delays between upload retries after a failed S3 upload (k3s never retries): the default
 * of `--etcd-s3-upload-retry-delays` (5s, 15s, 45s, 2m, 5m), which the server passes.
 */
export const UPLOAD_RETRY_DELAYS_MS: readonly number[] = parseRetryDelays(stringDefault(SERVER_OPTIONS, 'etcd-s3-upload-retry-delays'));

/** One run of a retried piece of work; it must honour `signal`. */
export type RetryJob = (signal: AbortSignal) => Promise<void>;

export type ScheduleResult = { scheduled: true; delayMs: number } | { scheduled: false; reason: 'exhausted' | 'closed' };

/**
 * Starts a timer that calls `fn` after `ms` and answers a function that cancels it
 * (injectable for tests).
 */
export type StartTimer = (fn: () => void, ms: number) => () => void;

/** Node's setTimeout, unref'd. */
export const nodeTimer: StartTimer = (fn, ms) => {
  const t = setTimeout(fn, ms).unref();
  return () => clearTimeout(t);
};

export interface RetryQueueOptions {
  /** Delay before attempt n (0-based); its length bounds the attempts. Default UPLOAD_RETRY_DELAYS_MS. */
  delays?: readonly number[];
  /** Default `nodeTimer`. */
  timer?: StartTimer;
}

export class RetryQueue {
  private readonly delays: readonly number[];
  private readonly timer: StartTimer;
  /** Cancel functions of the pending timers. */
  private readonly pending = new Set<() => void>();
  private readonly running = new Set<Promise<void>>();
  private readonly abort = new AbortController();
  private closed = false;

  constructor(opts: RetryQueueOptions = {}) {
    this.delays = opts.delays ?? UPLOAD_RETRY_DELAYS_MS;
    this.timer = opts.timer ?? nodeTimer;
  }

  /** Number of attempts `schedule` accepts (`delays.length`). */
  get maxAttempts(): number {
    return this.delays.length;
  }

  /** Jobs waiting for their timer. */
  get pendingCount(): number {
    return this.pending.size;
  }

  /** Jobs running now. */
  get runningCount(): number {
    return this.running.size;
  }

  /** Runs `job` after `delays[attempt]` ms (see the module's contract). */
  schedule(job: RetryJob, attempt: number): ScheduleResult {
    if (this.closed) return { scheduled: false, reason: 'closed' };
    const delayMs = Number.isInteger(attempt) && attempt >= 0 ? this.delays[attempt] : undefined;
    if (delayMs === undefined) return { scheduled: false, reason: 'exhausted' };
    const cancel = this.timer(() => {
      this.pending.delete(cancel);
      if (!this.closed) this.start(job);
    }, delayMs);
    this.pending.add(cancel);
    return { scheduled: true, delayMs };
  }

  private start(job: RetryJob): void {
    let p: Promise<void>;
    try {
      p = job(this.abort.signal);
    } catch (err) {
      p = Promise.reject(err);
    }
    const run: Promise<void> = p.catch(() => undefined).finally(() => this.running.delete(run));
    this.running.add(run);
  }

  /** Closes the queue, cancels pending jobs, waits for running ones (aborted after `timeoutMs`). */
  async drain(timeoutMs: number): Promise<void> {
    this.closed = true;
    for (const cancel of this.pending) cancel();
    this.pending.clear();
    if (this.running.size === 0) return;
    const cancelAbort = this.timer(() => this.abort.abort(new Error('shutting down')), timeoutMs);
    await Promise.all([...this.running]);
    cancelAbort();
  }
}
