/**
 * The save pipeline, one code path for scheduled and on-demand snapshots:
 *
 *   etcd Maintenance.Snapshot (this member only, etcd/snapshot-stream.ts) → bytes → sha256-trailer check
 *     → [compress: zip | zstd | gzip] → [encrypt: age] (encode.ts) → sha256/size of the stored bytes
 *     → every store's sink (local `.part`, S3 parts)
 *     → local commit (fsync, rename, fsync dir) → replica commits (CompleteMultipartUpload)
 *
 * The trailer check fails the pipeline at the end of the stream if the snapshot is cut
 * short or corrupt, so the `.part` never gets its final name and no object is completed; every
 * sink is aborted on every failure path before the replicas' commits. Nothing holds the whole snapshot in memory.
 */
import { pipeline } from 'node:stream/promises';
import type { EtcdClient, EtcdStatus } from '../etcd/client.js';
import type { EtcdSnapshotStream } from '../etcd/snapshot-stream.js';
import { EtcdsnapError, errnoCode, messageOf } from '../errors.js';
import type { SnapshotSink, SnapshotStore, WriteOptions } from '../store/store.js';
import { HashCounter, TrailerVerifier } from './verify.js';
import { encodeStages } from './encode.js';
import { ReplicaBranch } from './replica-branch.js';
import { contentTypeOf, type SnapshotEncoding } from '../model/encoding.js';
import { createdAtFromName, encodingFields, type SnapshotRecord } from '../model/records.js';

export { contentTypeOf } from '../model/encoding.js';

export interface SaveRequest {
  /** Final file name (`<prefix>-<node>-<ts>[.zip|.zst|.gz][.age]`). */
  fileName: string;
  /** How the bytes are stored (compression, age recipients). */
  encoding: SnapshotEncoding;
  nodeName: string;
  /** The local folder: a failure there fails the save. */
  primary: SnapshotStore;
  /** Copies written in the same pass (S3); a failure of one fails only that copy. */
  replicas?: readonly SnapshotStore[];
  /** Status of the member taken just before the snapshot (revision, version, db size). */
  status: EtcdStatus;
  signal?: AbortSignal;
  /**
   * Told the count of bytes read from etcd so far, after each chunk (and the phase
   * `committing` once the stream ended); must be cheap and must not throw.
   */
  onProgress?: (bytes: number, phase: 'streaming' | 'committing') => void;
}

export interface SaveOutcome {
  record: SnapshotRecord;
  /**
   * Per replica, in the order of `replicas`: undefined when its copy was committed, else why
   * it failed (its write was aborted; the local snapshot is fine).
   */
  replicaErrors: Array<Error | undefined>;
}

const asError = (err: unknown): Error => (err instanceof Error ? err : new Error(String(err)));

/** Most bytes of the recipients list kept in S3 user metadata (S3 allows 2 KiB in all). */
const METADATA_RECIPIENTS_BYTES = 1024;

/**
 * The S3 user metadata that says how a snapshot is stored: `etcdsnap-compression` and, when
 * encrypted, `etcdsnap-encryption: age` and `etcdsnap-recipients` (the public keys,
 * comma-separated, cut to fit with `+N more`; the sidecar has the whole list).
 */
export function encodingMetadata(enc: SnapshotEncoding): Record<string, string> {
  const out: Record<string, string> = {};
  if (enc.compression !== 'none') out['etcdsnap-compression'] = enc.compression;
  if (enc.recipients.length > 0) {
    out['etcdsnap-encryption'] = 'age';
    let shown = '';
    let n = 0;
    for (const r of enc.recipients) {
      const next = shown === '' ? r : `${shown},${r}`;
      if (next.length > METADATA_RECIPIENTS_BYTES) break;
      shown = next;
      n++;
    }
    out['etcdsnap-recipients'] = n < enc.recipients.length ? `${shown}${shown === '' ? '' : ','}+${enc.recipients.length - n} more` : shown;
  }
  return out;
}

/** A replica's write: its sink and branch, or why it could not begin. */
interface ReplicaWrite {
  sink?: SnapshotSink;
  branch?: ReplicaBranch;
  error?: Error;
}

async function beginReplica(store: SnapshotStore, name: string, opts: WriteOptions): Promise<ReplicaWrite> {
  try {
    const sink = await store.beginWrite(name, opts);
    return { sink, branch: new ReplicaBranch(sink.stream) };
  } catch (err) {
    return { error: asError(err) };
  }
}

/**
 * Commits the replicas whose bytes all arrived (a copy that failed is aborted); answers each
 * replica's error. Called only after the local snapshot was committed.
 */
async function commitReplicas(writes: readonly ReplicaWrite[]): Promise<Array<Error | undefined>> {
  return Promise.all(
    writes.map(async (w) => {
      if (!w.sink) return w.error;
      const failure = w.branch?.failure;
      if (failure) {
        await w.sink.abort().catch(() => undefined);
        return failure;
      }
      try {
        await w.sink.commit();
        return undefined;
      } catch (err) {
        await w.sink.abort().catch(() => undefined);
        return asError(err);
      }
    }),
  );
}

/**
 * Streams a snapshot from etcd into the primary store and, in the same pass, into every
 * replica; resolves with its record, or throws (then nothing was kept anywhere).
 *
 * Steps: one read of the etcd stream, tee to every sink → trailer check → the local commit
 * (fsync, rename, fsync dir) while the replicas finish sending their parts → the replicas'
 * commits. A failure before the replicas' commits aborts every sink: no replica keeps an
 * object of a save whose local commit failed. A replica whose commit fails is aborted and
 * reported in `replicaErrors`; the local snapshot is kept.
 */
export async function saveSnapshot(etcd: Pick<EtcdClient, 'snapshotStream'>, req: SaveRequest): Promise<SaveOutcome> {
  const started = Date.now();
  const writeOpts = {
    contentType: contentTypeOf(req.fileName),
    metadata: { 'etcdsnap-node-name': req.nodeName, 'etcdsnap-revision': req.status.revision, ...encodingMetadata(req.encoding) },
  };
  const primary = await req.primary.beginWrite(req.fileName, writeOpts);
  const replicas: ReplicaWrite[] = [];
  let source: EtcdSnapshotStream | undefined;
  const onAbort = (): void => source?.cancel();
  req.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const opts = req.signal ? { signal: req.signal } : {};
    for (const store of req.replicas ?? []) replicas.push(await beginReplica(store, req.fileName, { ...writeOpts, ...opts }));
    source = await etcd.snapshotStream();
    const onProgress = req.onProgress;
    const verifier = new TrailerVerifier(onProgress ? (n) => onProgress(n, 'streaming') : undefined);
    const branches = replicas.flatMap((r) => (r.branch ? [r.branch] : []));
    const tail = [...branches, primary.stream];
    let stored: { size: number; sha256: string | undefined };
    const mtime = new Date(Date.parse(createdAtFromName(req.fileName, new Date())));
    const stages = await encodeStages(req.encoding, req.fileName, mtime);
    if (stages.length > 0) {
      const counter = new HashCounter();
      await pipeline([source, verifier, ...stages, counter, ...tail], opts);
      stored = counter;
    } else {
      // the verifier's single sha256 pass also gives the stored file's hash
      await pipeline([source, verifier, ...tail], opts);
      stored = { size: verifier.size, sha256: verifier.streamSha256 };
    }
    if (verifier.dbSha256 === undefined) throw new EtcdsnapError('integrity', 'snapshot stream ended before it was verified');
    req.onProgress?.(verifier.size, 'committing');
    // The local file is complete and verified: its fsync runs while the last parts upload.
    const [committed] = await Promise.allSettled([primary.commit(), ...branches.map((b) => b.settled())]);
    if (committed.status === 'rejected') throw committed.reason;
    const replicaErrors = await commitReplicas(replicas);
    const record: SnapshotRecord = {
      name: req.fileName,
      location: committed.value,
      nodeName: req.nodeName,
      createdAt: createdAtFromName(req.fileName, new Date(started)),
      size: stored.size,
      sha256: stored.sha256 ?? '',
      ...encodingFields(req.encoding),
      status: 'successful',
      etcdVersion: req.status.version,
      revision: req.status.revision,
      dbSize: req.status.dbSize,
      dbSha256: verifier.dbSha256,
      durationMs: Date.now() - started,
    };
    return { record, replicaErrors };
  } catch (err) {
    await Promise.all([primary, ...replicas.flatMap((r) => (r.sink ? [r.sink] : []))].map((s) => s.abort().catch(() => undefined)));
    source?.cancel();
    if (err instanceof EtcdsnapError) throw err;
    const code = errnoCode(err);
    if (code === 'ENOSPC' || code === 'EDQUOT') {
      throw new EtcdsnapError('environment', `no space left in snapshot dir ${req.primary.describe()} while writing ${req.fileName}`, { cause: err });
    }
    if (code?.startsWith('E')) {
      throw new EtcdsnapError('environment', `cannot write ${req.fileName} in ${req.primary.describe()}: ${messageOf(err)}`, { cause: err });
    }
    throw new EtcdsnapError('unavailable', `snapshot stream from etcd failed: ${messageOf(err)}`, { cause: err });
  } finally {
    req.signal?.removeEventListener('abort', onAbort);
  }
}
