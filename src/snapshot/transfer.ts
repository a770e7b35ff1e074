/**
 * Copies between stores, each through the two-step write (nothing visible before the bytes
 * were checked):
 * - `replicate`: a local snapshot again to a replica (retry after a failed upload); the copy
 *   is committed only if the file still has the sha256 its record says.
 * - `downloadSnapshot`: a snapshot from a replica into the local folder (restore), checked
 *   against the sha256 of the replica's record.
 * - `downloadToFile`: the same check, into a private temp file of the caller (inspection).
 * Downloads tell an optional `ProgressReporter` (util/progress.ts) their bytes, of the size
 * the record gives.
 */
import { constants as fsc, promises as fsp } from 'node:fs';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { EtcdsnapError, messageOf } from '../errors.js';
import type { LocalStore } from '../store/local.js';
import type { SnapshotStore } from '../store/store.js';
import { assertStoreName } from '../store/store.js';
import { encodingOfRecord, type SnapshotRecord } from '../model/records.js';
import { ExpectSha256, HashCounter } from './verify.js';
import { contentTypeOf, encodingMetadata } from './save.js';
import { NO_PROGRESS, type ProgressReporter, progressTap } from '../util/progress.js';

/**
 * Writes `record`'s snapshot from `from` to `to`, then its record. Writes of the same name
 * that an unreachable `to` left incomplete are removed first. Aborting `signal` stops it
 * between steps and aborts a running write (nothing is committed).
 */
export async function replicate(from: LocalStore, to: SnapshotStore, record: SnapshotRecord, nodeName: string, signal?: AbortSignal): Promise<void> {
  // parts of the cut-off upload could not be aborted while S3 was away: abort them now
  await to.discardIncomplete({ name: record.name });
  signal?.throwIfAborted();
  const src = await from.openRead(record.name);
  const check = new ExpectSha256(record.sha256, from.filePath(record.name));
  try {
    const sink = await to.beginWrite(record.name, {
      contentType: contentTypeOf(record.name),
      metadata: {
        'etcdsnap-node-name': nodeName,
        ...(record.revision ? { 'etcdsnap-revision': record.revision } : {}),
        ...encodingMetadata(encodingOfRecord(record)),
      },
      ...(signal ? { signal } : {}),
    });
    try {
      await pipeline(src, check, sink.stream);
      signal?.throwIfAborted();
      await sink.commit();
    } catch (err) {
      await sink.abort();
      throw err;
    }
  } finally {
    src.destroy();
  }
  signal?.throwIfAborted();
  await to.writeRecord(record);
}

/**
 * The record of `name` in `from`, for a download: a record `from` refuses (`integrity`: not
 * a record, too big, a malformed sha256) refuses the download before anything is written.
 */
async function sourceRecord(from: SnapshotStore, name: string): Promise<SnapshotRecord | undefined> {
  try {
    return await from.readRecord(name);
  } catch (err) {
    if (err instanceof EtcdsnapError && err.kind === 'integrity')
      throw new EtcdsnapError('integrity', `${messageOf(err)}; refusing the download`, { cause: err });
    throw err;
  }
}

/**
 * Copies the bytes of `name` from `from` into `out` and checks them: the sha256 of `side`
 * (when it has one) must match, and the snapshot must not be empty. Resolves with the size
 * and sha256 of what was copied; on a mismatch `out` holds bytes the caller must discard.
 */
async function copyVerified(
  from: SnapshotStore,
  name: string,
  side: SnapshotRecord | undefined,
  out: Writable,
  progress: ProgressReporter,
): Promise<HashCounter> {
  const where = from.location(name);
  const counter = new HashCounter();
  // a bucket's record may not know the size (0): then the object's own, when someone watches
  const known = side !== undefined && side.size > 0 ? side.size : undefined;
  const task = progress.start(`downloading ${name}`, known ?? (progress === NO_PROGRESS ? undefined : (await from.stat(name))?.size));
  let ok = false;
  try {
    await pipeline(await from.openRead(name), progressTap(task), counter, out);
    ok = true;
  } finally {
    task.done(ok);
  }
  if (side?.sha256 !== undefined && side.sha256 !== counter.sha256) {
    throw new EtcdsnapError('integrity', `downloaded ${where} does not match the sha256 in its sidecar; refusing it`);
  }
  if (counter.size === 0) throw new EtcdsnapError('integrity', `${where} is empty`);
  return counter;
}

/**
 * Downloads `name` from `from` into `dir` (`<name>.part`, then renamed), checked against the
 * sha256 of `from`'s record. Resolves with the final path. A record `from` refuses
 * (`integrity`: not a record, too big, a malformed sha256) refuses the download before
 * anything is written. The local record written afterwards is always for `name` (never the
 * record's own name), at the downloaded file, with the size and sha256 of what was
 * downloaded; only well-formed details come from `from`'s record.
 */
export async function downloadSnapshot(from: SnapshotStore, name: string, dir: LocalStore, progress: ProgressReporter = NO_PROGRESS): Promise<string> {
  assertStoreName(name);
  const side = await sourceRecord(from, name);
  const sink = await dir.beginWrite(name, { contentType: contentTypeOf(name), metadata: {} });
  try {
    const counter = await copyVerified(from, name, side, sink.stream, progress);
    const location = await sink.commit();
    if (side) await dir.writeRecord({ ...side, name, location, size: counter.size, sha256: counter.sha256, status: 'successful' });
    return dir.filePath(name);
  } catch (err) {
    await sink.abort();
    throw err;
  }
}

/**
 * Downloads `name` from `from` into `file`, a new file (O_EXCL|O_NOFOLLOW, 0600) that the
 * caller places in a private folder, checked like `downloadSnapshot` against the sha256 of
 * `from`'s record. No record is written anywhere; `from`'s record (undefined when it has none)
 * is the answer. On any failure `file` is removed before the error is thrown.
 */
export async function downloadToFile(
  from: SnapshotStore,
  name: string,
  file: string,
  progress: ProgressReporter = NO_PROGRESS,
): Promise<SnapshotRecord | undefined> {
  assertStoreName(name);
  const side = await sourceRecord(from, name);
  const fh = await fsp.open(file, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
  try {
    await copyVerified(from, name, side, fh.createWriteStream(), progress);
    return side;
  } catch (err) {
    await fh.close().catch(() => undefined);
    await fsp.rm(file, { force: true });
    throw err;
  }
}
