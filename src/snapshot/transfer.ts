/**
 * Copies between stores, each through the two-step write (nothing visible before the bytes
 * were checked):
 * - `replicate`: a local snapshot again to a replica (retry after a failed upload); the copy
 *   is committed only if the file still has the sha256 its record says.
 * - `downloadSnapshot`: a snapshot from a replica into the local folder (restore), checked
 *   against the sha256 of the replica's record.
 */
import { pipeline } from 'node:stream/promises';
import { EtcdsnapError, messageOf } from '../errors.js';
import type { LocalStore } from '../store/local.js';
import type { SnapshotStore } from '../store/store.js';
import { assertStoreName } from '../store/store.js';
import type { SnapshotRecord } from '../model/records.js';
import { ExpectSha256, HashCounter } from './verify.js';
import { contentTypeOf } from './save.js';

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
      metadata: { 'etcdsnap-node-name': nodeName, ...(record.revision ? { 'etcdsnap-revision': record.revision } : {}) },
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
 * Downloads `name` from `from` into `dir` (`<name>.part`, then renamed), checked against the
 * sha256 of `from`'s record. Resolves with the final path. A record `from` refuses
 * (`integrity`: not a record, too big, a malformed sha256) refuses the download before
 * anything is written. The local record written afterwards is always for `name` (never the
 * record's own name), at the downloaded file, with the size and sha256 of what was
 * downloaded; only well-formed details come from `from`'s record.
 */
export async function downloadSnapshot(from: SnapshotStore, name: string, dir: LocalStore): Promise<string> {
  assertStoreName(name);
  let side: SnapshotRecord | undefined;
  try {
    side = await from.readRecord(name);
  } catch (err) {
    if (err instanceof EtcdsnapError && err.kind === 'integrity')
      throw new EtcdsnapError('integrity', `${messageOf(err)}; refusing the download`, { cause: err });
    throw err;
  }
  const where = from.location(name);
  const sink = await dir.beginWrite(name, { contentType: contentTypeOf(name), metadata: {} });
  try {
    const counter = new HashCounter();
    await pipeline(await from.openRead(name), counter, sink.stream);
    if (side?.sha256 !== undefined && side.sha256 !== counter.sha256) {
      throw new EtcdsnapError('integrity', `downloaded ${where} does not match the sha256 in its sidecar; refusing it`);
    }
    if (counter.size === 0) throw new EtcdsnapError('integrity', `${where} is empty`);
    const location = await sink.commit();
    if (side) await dir.writeRecord({ ...side, name, location, size: counter.size, sha256: counter.sha256, status: 'successful' });
    return dir.filePath(name);
  } catch (err) {
    await sink.abort();
    throw err;
  }
}
