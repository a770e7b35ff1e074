/**
 * One store operation under its own deadline.
 *
 * Contract: `callWithDeadline()` runs `fn` with a signal that aborts after the target's
 * `timeoutMs` (k3s's `--etcd-s3-timeout` per operation, covering the SDK's retries) or when
 * the caller's `signal` aborts, and translates failures (`translate`): a timeout is
 * `unavailable` "timed out after N ms", a caller abort is `unavailable`, not retryable. The
 * deadline ends when `fn` settles: a response body still streaming is not cut by it.
 */
import { abortedError, abortReason, translate } from './errors.js';
import type { S3Target } from './client.js';

export async function callWithDeadline<T>(target: S3Target, what: string, fn: (signal: AbortSignal) => Promise<T>, signal?: AbortSignal): Promise<T> {
  const ctl = new AbortController();
  const deadline = { timedOut: false, ms: target.timeoutMs };
  const timer = setTimeout(() => {
    deadline.timedOut = true;
    ctl.abort(new Error(`timed out after ${target.timeoutMs} ms`));
  }, target.timeoutMs);
  const onAbort = (): void => ctl.abort(signal ? abortReason(signal) : undefined);
  if (signal?.aborted) onAbort();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    return await fn(ctl.signal);
  } catch (err) {
    if (signal?.aborted && !deadline.timedOut) throw abortedError(what, signal);
    throw translate(err, what, target.endpoint, deadline);
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  }
}
