/**
 * What a save does with its replicas once the local snapshot is committed: record each
 * replica's outcome in the local record, schedule a retry for a failed upload, and apply
 * replica retention after scheduled saves. Generic over `SnapshotStore`; the log lines are
 * the ones k3s users know ("uploaded to S3", "Error received during snapshot upload to S3").
 */
import type { Logger } from '../log/logger.js';
import { messageOf } from '../errors.js';
import type { SnapshotStore } from '../store/store.js';
import type { SnapshotRecord } from '../model/records.js';
import type { S3Options } from './s3-config.js';
import { replicaCopy, withReplicaState } from './replica-state.js';
import { describeKeep, pruneStore, type Keep } from './prune.js';
import type { BucketPolicy } from '../model/retention-policy.js';
import { timed, type SnapshotObserver } from './events.js';

/** A replica of a request: its options, and its store unless it could not be built. */
export interface ReplicaTarget {
  opts: S3Options;
  store?: SnapshotStore;
}

export interface ReplicaOutcome {
  /** The local record with each replica's state. */
  record: SnapshotRecord;
  /** The replicas' copies that were written (a record each, at the replica's location). */
  copies: SnapshotRecord[];
  /** The first failure, as the API's `s3Error` ("...; it will be retried"). */
  uploadError?: string;
}

/**
 * Writes the record to each replica the snapshot reached (`errors[i]` is the upload error of
 * `live[i]`) and sets the replica state of the local record; a failed one is passed to
 * `retry` (the local snapshot is kept and uploaded again later; it answers whether a retry
 * was queued). Each outcome is emitted as an `upload` event of attempt 1.
 */
export async function settleReplicas(
  targets: readonly ReplicaTarget[],
  live: readonly SnapshotStore[],
  errors: ReadonlyArray<Error | undefined>,
  saved: SnapshotRecord,
  log: Logger,
  retry: (store: SnapshotStore, record: SnapshotRecord) => boolean,
  emit: SnapshotObserver = () => undefined,
): Promise<ReplicaOutcome> {
  let record = saved;
  const copies: SnapshotRecord[] = [];
  let uploadError: string | undefined;
  for (const t of targets) {
    const store = t.store;
    let err = store ? errors[live.indexOf(store)] : new Error('S3 is not reachable');
    const location = store ? store.location(record.name) : `s3://${t.opts.settings.bucket}/${record.name}`;
    if (!err && store) {
      try {
        await store.writeRecord(record);
      } catch (e) {
        err = e instanceof Error ? e : new Error(String(e));
      }
    }
    record = withReplicaState(record, {
      location,
      status: err ? 'failed' : 'successful',
      attempts: 1,
      updatedAt: new Date().toISOString(),
      ...(err ? { message: messageOf(err) } : {}),
    });
    if (err) {
      log.error({ err: messageOf(err), location }, `Error received during snapshot upload to S3: ${messageOf(err)}`);
      const queued = store ? retry(store, record) : false;
      emit({ kind: 'upload', store: 's3', result: 'failure', attempt: 1, final: !queued, snapshot: record.name, error: messageOf(err) });
      uploadError ??= `upload to ${location} failed: ${messageOf(err)}; it will be retried`;
    } else {
      log.info({ location }, `Snapshot ${record.name} uploaded to S3`);
      copies.push(replicaCopy(record, location));
      emit({
        kind: 'upload',
        store: 's3',
        result: 'success',
        attempt: 1,
        final: false,
        bytes: record.size,
        createdAt: record.createdAt,
        snapshot: record.name,
      });
    }
  }
  return uploadError !== undefined ? { record, copies, uploadError } : { record, copies };
}

/**
 * Replica retention after a scheduled save: each replica keeps, of `prefix` on this node,
 * what `policy` keeps when given (`--etcd-snapshot-retention-policy`), else its newest
 * `retention` (none when 0). It runs even after a failed upload (the bucket may be full), as
 * k3s; a failure is logged, never thrown. Answers the removed locations.
 */
export async function pruneReplicas(
  targets: readonly ReplicaTarget[],
  prefix: string,
  nodeName: string,
  log: Logger,
  emit: SnapshotObserver = () => undefined,
  policy?: BucketPolicy,
): Promise<string[]> {
  const deleted: string[] = [];
  for (const t of targets) {
    const store = t.store;
    if (!store || (policy === undefined && t.opts.retention <= 0)) continue;
    const keep: Keep = policy ?? t.opts.retention;
    try {
      const gone = await timed(
        emit,
        () => pruneStore(store, prefix, nodeName, keep, false),
        (g, seconds) => ({ kind: 'prune', store: 's3', result: g ? 'success' : 'failure', seconds, deleted: g?.remove.length ?? 0 }),
      );
      if (policy)
        log.info({ prefix, remove: gone.remove.length }, `Applied snapshot ${describeKeep(keep)} to snapshots stored in ${store.describe()} (this node only)`);
      for (const n of gone.remove) log.info({ snapshot: n }, `Removing S3 snapshot ${store.location(n)}`);
      deleted.push(...gone.remove.map((n) => store.location(n)));
    } catch (err) {
      log.warn({ err: messageOf(err) }, 'S3 snapshot retention failed');
    }
  }
  return deleted;
}
