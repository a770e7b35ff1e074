/**
 * The one place that reads and writes the replica state kept in a local record. The field is
 * `record.s3` (`S3CopyState`), as sidecars on disk hold it; with one replica store (S3, the
 * only kind today) it is that replica's state.
 */
import type { S3CopyState, SnapshotRecord } from '../model/records.js';

export type ReplicaState = S3CopyState;

/** The replica state of a local record, if any. */
export function replicaState(r: SnapshotRecord): ReplicaState | undefined {
  return r.s3;
}

/** `r` with `state` as its replica state (a new object). */
export function withReplicaState(r: SnapshotRecord, state: ReplicaState): SnapshotRecord {
  return { ...r, s3: state };
}

/** The record of the replica's copy of a local snapshot: at `location`, without replica state. */
export function replicaCopy(r: SnapshotRecord, location: string): SnapshotRecord {
  const { s3: _state, ...rest } = r;
  return { ...rest, location };
}

/** Whether the local record `r` waits for a retry of its upload to `location`. */
export function needsRetry(r: SnapshotRecord, location: string): boolean {
  const st = replicaState(r);
  return r.status === 'successful' && st?.status === 'failed' && st.location === location;
}

/**
 * Failed uploads as ls shows them: one failed record at the replica's location per local
 * record whose upload failed, unless the replica listing (`listed` locations) has it.
 */
export function failedUploads(local: readonly SnapshotRecord[], listed: ReadonlySet<string>): SnapshotRecord[] {
  const out: SnapshotRecord[] = [];
  for (const r of local) {
    const st = replicaState(r);
    if (st?.status !== 'failed' || listed.has(st.location)) continue;
    out.push({ ...replicaCopy(r, st.location), status: 'failed', message: st.message ?? 'upload failed' });
  }
  return out;
}
