/**
 * Snapshot operations on an S3 store: records from a listing, sidecars, delete, per-node
 * retention, verified download, and re-uploads of local snapshots. Uses only the
 * `S3Store` interface, never the SDK.
 */
import { createReadStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { EtcdsnapError } from '../errors.js';
import type { S3Store, S3ObjectInfo } from '../store/s3.js';
import type { LocalSnapshotDir } from '../store/local.js';
import { planRetention } from '../retention/policy.js';
import { parseSnapshotName } from './naming.js';
import { createdAtFromName, parseRecord, type SnapshotRecord } from './records.js';
import { ExpectSha256, HashCounter } from './verify.js';
import { contentTypeOf } from './save.js';

/** Snapshot objects (not sidecars, not foreign keys) directly under the folder. */
async function snapshotObjects(store: S3Store): Promise<S3ObjectInfo[]> {
  const out: S3ObjectInfo[] = [];
  for await (const o of store.list()) {
    if (o.name.includes('/') || o.size === 0 || !parseSnapshotName(o.name)) continue;
    out.push(o);
  }
  return out;
}

/** Runs `fn` over `items` with at most `limit` at a time. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/**
 * Records of the snapshots in S3. From the listing alone (one request per 1000 objects);
 * with `withSidecars`, each record is completed from its sidecar (8 requests at a time).
 */
export async function listS3Records(store: S3Store, withSidecars: boolean): Promise<SnapshotRecord[]> {
  const objects = await snapshotObjects(store);
  return mapLimit(objects, 8, async (o) => {
    const base: SnapshotRecord = {
      name: o.name,
      location: store.location(o.name),
      nodeName: '',
      createdAt: createdAtFromName(o.name, o.lastModified),
      size: o.size,
      compressed: o.name.endsWith('.zip'),
      status: 'successful',
    };
    if (!withSidecars) return base;
    const side = parseRecord((await store.getText(store.metadataKey(o.name)).catch(() => undefined)) ?? '');
    if (!side) return base;
    const { s3: _s3, ...rest } = side;
    return { ...rest, ...base, nodeName: side.nodeName };
  });
}

/** Uploads the sidecar of a snapshot now in S3. */
export async function putSidecar(store: S3Store, record: SnapshotRecord): Promise<void> {
  const { s3: _s3, ...rest } = record;
  await store.putText(store.metadataKey(record.name), `${JSON.stringify({ ...rest, location: store.location(record.name) }, null, 2)}\n`, 'application/json');
}

/** Deletes snapshots and their sidecars; returns the names that existed. */
export async function deleteFromS3(store: S3Store, names: readonly string[]): Promise<string[]> {
  const present: string[] = [];
  for (const n of names) if (await store.head(store.key(n))) present.push(n);
  const res = await store.deleteMany(names.flatMap((n) => [store.key(n), store.metadataKey(n)]));
  if (res.errors.length > 0) {
    throw new EtcdsnapError('unavailable', `S3 could not delete ${res.errors.map((e) => `${e.key} (${e.message})`).join(', ')}`);
  }
  return present;
}

/**
 * S3 retention **per node**: keeps the newest `keep` of `<prefix>-<node>-*` and deletes
 * the rest with their sidecars, in batches. Other nodes' snapshots are never candidates
 * (k3s counts all nodes together).
 */
export async function pruneS3(store: S3Store, prefix: string, nodeName: string, keep: number, dryRun: boolean): Promise<string[]> {
  const objects = await snapshotObjects(store);
  const plan = planRetention(
    objects.map((o) => o.name),
    { prefix, nodeName, keep },
  );
  if (!dryRun && plan.remove.length > 0) {
    const res = await store.deleteMany(plan.remove.flatMap((n) => [store.key(n), store.metadataKey(n)]));
    if (res.errors.length > 0) throw new EtcdsnapError('unavailable', `S3 retention could not delete ${res.errors.length} object(s): ${res.errors[0]?.message ?? ''}`);
  }
  return plan.remove;
}

/**
 * Aborts multipart uploads of this node's snapshots that a crash left open (at start-up
 * no upload of ours can be running). Other nodes' uploads are left alone.
 */
export async function abortStaleUploads(store: S3Store, nodeName: string): Promise<string[]> {
  const aborted: string[] = [];
  for (const u of await store.listMultipartUploads()) {
    const name = u.key.slice(store.folder === '' ? 0 : store.folder.length + 1);
    const parsed = parseSnapshotName(name);
    if (!parsed || name.includes('/') || !parsed.base.endsWith(`-${nodeName}-${parsed.timestamp}`)) continue;
    await store.abortMultipartUpload(u.key, u.uploadId);
    aborted.push(name);
  }
  return aborted;
}

/**
 * Uploads a local snapshot file again (retry after a failed upload). The object is
 * completed only if the file still has the sha256 its record says.
 */
export async function reupload(store: S3Store, dir: LocalSnapshotDir, record: SnapshotRecord, nodeName: string): Promise<void> {
  const file = dir.filePath(record.name);
  const check = new ExpectSha256(record.sha256, file);
  // parts of the cut-off upload could not be aborted while S3 was away: abort them now
  for (const u of await store.listMultipartUploads()) {
    if (u.key === store.key(record.name)) await store.abortMultipartUpload(u.key, u.uploadId);
  }
  const src = createReadStream(file, { highWaterMark: 1 << 20 });
  src.once('error', (err) => check.destroy(err)); // pipe() does not forward errors
  const body = src.pipe(check);
  await store.upload(record.name, body, {
    contentType: contentTypeOf(record.name),
    metadata: { 'etcdsnap-node-name': nodeName, ...(record.revision ? { 'etcdsnap-revision': record.revision } : {}) },
  });
  await putSidecar(store, record);
}

/**
 * Downloads `<folder>/<name>` into the folder as `<name>.part`, checks it against the
 * sha256 in the S3 sidecar, then renames it. Resolves with the final path.
 */
export async function downloadSnapshot(store: S3Store, name: string, dir: LocalSnapshotDir): Promise<string> {
  const side = parseRecord((await store.getText(store.metadataKey(name))) ?? '');
  const writer = await dir.openWriter(name);
  try {
    const counter = new HashCounter();
    await pipeline(await store.getStream(store.key(name)), counter, writer.stream);
    if (side?.sha256 !== undefined && side.sha256 !== counter.sha256) {
      throw new EtcdsnapError('integrity', `downloaded ${store.location(name)} does not match the sha256 in its sidecar; refusing it`);
    }
    if (counter.size === 0) throw new EtcdsnapError('integrity', `${store.location(name)} is empty`);
    const final = await writer.commit();
    if (side) await dir.writeRecord({ ...side, location: `file://${final}` });
    return final;
  } catch (err) {
    await writer.discard();
    throw err;
  }
}
