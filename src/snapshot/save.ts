/**
 * The save pipeline, one code path for scheduled and on-demand snapshots:
 *
 *   etcd Maintenance.Snapshot (this member only, etcd/snapshot-stream.ts) → bytes → sha256-trailer check
 *     → [zip] → sha256/size of the stored bytes → <dir>/<file>.part → fsync, rename, fsync dir
 *
 * The trailer check fails the pipeline at the end of the stream if the snapshot is cut
 * short or corrupt, so the `.part` never gets its final name; it is removed on every
 * failure path. Nothing holds the whole snapshot in memory.
 */
import { pipeline } from 'node:stream/promises';
import type { EtcdClient, EtcdStatus } from '../etcd/client.js';
import type { EtcdSnapshotStream } from '../etcd/snapshot-stream.js';
import { EtcdsnapError, errnoCode, messageOf } from '../errors.js';
import type { LocalSnapshotDir } from '../store/local.js';
import { HashCounter, TrailerVerifier } from './verify.js';
import { zipSingleEntry } from './zip.js';
import { S3Branch } from './s3-branch.js';
import type { S3Store } from '../store/s3.js';
import { ZIP_EXT } from '../model/naming.js';
import { createdAtFromName, type SnapshotRecord } from '../model/records.js';

export interface SaveRequest {
  /** Final file name (`<prefix>-<node>-<ts>[.zip]`). */
  fileName: string;
  compress: boolean;
  nodeName: string;
  dir: LocalSnapshotDir;
  /** Status of the member taken just before the snapshot (revision, version, db size). */
  status: EtcdStatus;
  signal?: AbortSignal;
  /** Upload to S3 in the same pass. */
  s3?: S3Store;
}

export interface SaveOutcome {
  record: SnapshotRecord;
  /** Set when an S3 upload was asked for and failed (the local snapshot is fine). */
  s3Error?: Error;
}

/** Content type of a snapshot object (as k3s). */
export const contentTypeOf = (name: string): string => (name.endsWith(ZIP_EXT) ? 'application/zip' : 'application/octet-stream');

/**
 * Streams a snapshot from etcd into the folder (and S3 when asked); resolves with its
 * record, or throws (then nothing was kept, locally or in S3).
 */
export async function saveSnapshot(etcd: EtcdClient, req: SaveRequest): Promise<SaveOutcome> {
  const started = Date.now();
  const writer = await req.dir.openWriter(req.fileName);
  let source: EtcdSnapshotStream | undefined;
  const onAbort = (): void => source?.cancel();
  req.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    source = await etcd.snapshotStream();
    const verifier = new TrailerVerifier();
    const opts = req.signal ? { signal: req.signal } : {};
    const branch = req.s3 ? new S3Branch() : undefined;
    if (branch && req.s3) {
      branch.attach(
        req.s3.upload(req.fileName, branch.body, {
          contentType: contentTypeOf(req.fileName),
          metadata: { 'etcdsnap-node-name': req.nodeName, 'etcdsnap-revision': req.status.revision },
          ...opts,
        }),
      );
    }
    const tail = branch ? [branch, writer.stream] : [writer.stream];
    let stored: { size: number; sha256: string | undefined };
    if (req.compress) {
      const entry = req.fileName.slice(0, -ZIP_EXT.length);
      const verified = source.pipe(verifier);
      source.once('error', (err: Error) => verified.destroy(err));
      const counter = new HashCounter();
      const mtime = new Date(Date.parse(createdAtFromName(req.fileName, new Date())));
      await pipeline([zipSingleEntry(verified, entry, mtime), counter, ...tail], opts);
      stored = counter;
    } else {
      // the verifier's single sha256 pass also gives the stored file's hash
      await pipeline([source, verifier, ...tail], opts);
      stored = { size: verifier.size, sha256: verifier.streamSha256 };
    }
    if (verifier.dbSha256 === undefined) throw new EtcdsnapError('integrity', 'snapshot stream ended before it was verified');
    // The local file is complete and verified: its fsync runs while the last parts upload.
    const [committed] = await Promise.allSettled([writer.commit(), branch?.settled()]);
    if (committed.status === 'rejected') throw committed.reason;
    const final = committed.value;
    const record: SnapshotRecord = {
      name: req.fileName,
      location: `file://${final}`,
      nodeName: req.nodeName,
      createdAt: createdAtFromName(req.fileName, new Date(started)),
      size: stored.size,
      sha256: stored.sha256 ?? '',
      compressed: req.compress,
      status: 'successful',
      etcdVersion: req.status.version,
      revision: req.status.revision,
      dbSize: req.status.dbSize,
      dbSha256: verifier.dbSha256,
      durationMs: Date.now() - started,
    };
    return branch?.failure ? { record, s3Error: branch.failure } : { record };
  } catch (err) {
    await writer.discard();
    source?.cancel();
    if (err instanceof EtcdsnapError) throw err;
    const code = errnoCode(err);
    if (code === 'ENOSPC' || code === 'EDQUOT') {
      throw new EtcdsnapError('environment', `no space left in snapshot dir ${req.dir.dir} while writing ${req.fileName}`, { cause: err });
    }
    if (code !== undefined && code.startsWith('E')) {
      throw new EtcdsnapError('environment', `cannot write ${req.fileName} in ${req.dir.dir}: ${messageOf(err)}`, { cause: err });
    }
    throw new EtcdsnapError('unavailable', `snapshot stream from etcd failed: ${messageOf(err)}`, { cause: err });
  } finally {
    req.signal?.removeEventListener('abort', onAbort);
  }
}
