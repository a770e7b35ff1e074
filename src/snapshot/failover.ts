/**
 * A save's fail-over between etcd members (the agent's `ClusterSource`, etcd/members.ts):
 * `streamFrom` runs the save with each candidate in turn until one succeeds. A failed stream
 * (kinds `unavailable` and `integrity`: the member went down, hung, or sent a bad stream;
 * the save has already aborted every sink) moves on to the next candidate, logged as a
 * warning, unless `signal` aborted (the service is stopping); any other error (a full disk,
 * a refused folder), or the last candidate's, is thrown.
 */
import type { Logger } from '../log/logger.js';
import { EtcdsnapError, messageOf } from '../errors.js';
import type { SnapshotCandidate } from '../etcd/members.js';

export async function streamFrom<T>(
  candidates: readonly SnapshotCandidate[],
  logger: Logger,
  signal: AbortSignal,
  save: (c: SnapshotCandidate) => Promise<T>,
): Promise<T> {
  for (let i = 0; ; i++) {
    const c = candidates[i];
    if (c === undefined) throw new EtcdsnapError('unavailable', 'no etcd member to stream the snapshot from');
    try {
      return await save(c);
    } catch (err) {
      const next = candidates[i + 1];
      const retryable = err instanceof EtcdsnapError && (err.kind === 'unavailable' || err.kind === 'integrity');
      if (next === undefined || !retryable || signal.aborted) throw err;
      logger.warn(
        { endpoint: c.member.endpoint, next: next.member.endpoint, err: messageOf(err) },
        `snapshot stream from ${c.member.endpoint} failed (${messageOf(err)}); streaming from ${next.member.endpoint} instead`,
      );
    }
  }
}
