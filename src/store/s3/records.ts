/**
 * Snapshot records in a bucket folder: records from a listing, sidecars, delete, per-node
 * retention, the stale-upload abort. Used by `S3SnapshotStore` (snapshot-store.ts); uses
 * only the `S3Store` methods, never the SDK directly.
 *
 * Everything read from the bucket is untrusted (anyone who can write to it can put any key
 * and any sidecar there):
 * - A listing keeps only objects directly under the folder whose name passes
 *   `isSafeSnapshotName` and that are not empty; anything else is skipped, never thrown on,
 *   and reported once per object and process through the optional `onSkip` callback
 *   (`.metadata/` sidecars and keys in sub-folders are skipped silently: they are ours, or
 *   another folder's). Retention and the stale-upload abort see only such names.
 * - Sidecars are read at most `MAX_SIDECAR_BYTES`, and only through
 *   `recordFromBucketSidecar`: the name, location, status, size and created time of a record
 *   are always ours, never the sidecar's.
 */
import type { Readable } from 'node:stream';
import { EtcdsnapError } from '../../errors.js';
import type { S3Store } from './store.js';
import type { S3ObjectInfo } from './list.js';
import { planRetention } from '../../retention/policy.js';
import { isSafeName, isSafeSnapshotName, parseSnapshotName } from '../../model/naming.js';
import {
  compressionFromName,
  createdAtFromName,
  recordFromBucketSidecar,
  sidecarText,
  type BucketRecordFacts,
  type SnapshotRecord,
} from '../../model/records.js';

/** Largest sidecar read from S3; a bigger one is not read (listing) or refused (download). */
export const MAX_SIDECAR_BYTES = 64 * 1024;

/** Something from the bucket that was skipped, for a log line (level warn). */
export interface S3Skip {
  /** The full object key (may hold any character: log it as a field, JSON-escaped). */
  key: string;
  /** Why it was skipped. */
  reason: string;
  /** One line for the log; the key in it is JSON-escaped and cut to 200 characters. */
  message: string;
}
export type S3SkipReporter = (skip: S3Skip) => void;

const noReport: S3SkipReporter = () => undefined;

/** Keys already reported, per process; at most REPORTED_MAX are remembered. */
const REPORTED_MAX = 1000;
const reported = new Set<string>();
let reportedFull = false;

/**
 * Reports a skipped key through `report` the first time this process skips it. Memory is
 * bounded: after REPORTED_MAX distinct keys, one last line says that further skips are not
 * reported. With the default no-op reporter nothing is remembered.
 */
function skipOnce(store: S3Store, key: string, reason: string, report: S3SkipReporter): void {
  if (report === noReport) return;
  const id = `${store.endpoint}\0${store.bucket}\0${key}`;
  if (reported.has(id)) return;
  if (reported.size >= REPORTED_MAX) {
    if (!reportedFull) {
      reportedFull = true;
      report({ key: '', reason: 'too many', message: `more than ${REPORTED_MAX} objects in S3 were skipped; further ones are skipped without a log line` });
    }
    return;
  }
  reported.add(id);
  const shown = JSON.stringify(key.length > 200 ? `${key.slice(0, 200)}...` : key);
  report({ key, reason, message: `skipping S3 object ${shown} in bucket ${store.bucket}: ${reason}` });
}

/** Why `name` (relative to the folder, no '/') is not a snapshot we list; undefined when it is one. */
function unusable(name: string, size: number): string | undefined {
  if (!isSafeName(name)) return "not a safe file name (path separators, '..', control characters or over 255 bytes)";
  if (!parseSnapshotName(name)) return 'not a snapshot file name (<name>-<node>-<unix seconds>[.zip|.zst|.gz][.age])';
  if (size === 0) return 'the object is empty';
  return undefined;
}

/**
 * Snapshot objects directly under the folder: safe snapshot names, not empty. Everything
 * else is skipped (reported once, except sidecars and keys in sub-folders).
 */
async function snapshotObjects(store: S3Store, onSkip: S3SkipReporter): Promise<S3ObjectInfo[]> {
  const out: S3ObjectInfo[] = [];
  for await (const o of store.list()) {
    if (o.name.includes('/')) continue; // .metadata/ sidecars, other folders
    const why = unusable(o.name, o.size);
    if (why !== undefined) {
      skipOnce(store, o.key, why, onSkip);
      continue;
    }
    out.push(o);
  }
  return out;
}

/**
 * The sidecar of `name` as text, read at most MAX_SIDECAR_BYTES; undefined when there is
 * none. A bigger one rejects with `integrity` (the rest is not downloaded).
 */
export async function readSidecar(store: S3Store, name: string): Promise<string | undefined> {
  const key = store.metadataKey(name);
  let body: Readable;
  try {
    body = await store.getStream(key);
  } catch (err) {
    if (err instanceof EtcdsnapError && err.kind === 'not-found') return undefined;
    throw err;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body) {
      const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
      size += b.length;
      if (size > MAX_SIDECAR_BYTES) {
        throw new EtcdsnapError('integrity', `sidecar s3://${store.bucket}/${key} is larger than ${MAX_SIDECAR_BYTES} bytes; it is not a snapshot record`);
      }
      chunks.push(b);
    }
  } finally {
    body.destroy();
  }
  return Buffer.concat(chunks).toString('utf8');
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
 * Objects that are not snapshots of ours are skipped (see the module comment); a sidecar
 * that cannot be read or parsed only leaves its record without details.
 */
export async function listS3Records(store: S3Store, withSidecars: boolean, onSkip: S3SkipReporter = noReport): Promise<SnapshotRecord[]> {
  const objects = await snapshotObjects(store, onSkip);
  return mapLimit(objects, 8, async (o) => {
    const facts: BucketRecordFacts = {
      name: o.name,
      location: store.location(o.name),
      createdAt: createdAtFromName(o.name, o.lastModified),
      size: o.size,
      ...compressionFromName(o.name),
    };
    const base: SnapshotRecord = { ...facts, nodeName: '', status: 'successful' };
    if (!withSidecars) return base;
    let text: string | undefined;
    try {
      text = await readSidecar(store, o.name);
    } catch (err) {
      if (err instanceof EtcdsnapError && err.kind === 'integrity')
        skipOnce(store, store.metadataKey(o.name), `sidecar ignored: larger than ${MAX_SIDECAR_BYTES} bytes`, onSkip);
      return base;
    }
    if (text === undefined) return base;
    let side: ReturnType<typeof recordFromBucketSidecar>;
    try {
      side = recordFromBucketSidecar(text, facts);
    } catch (err) {
      // a sidecar of a newer format: listed with what the bucket says, and the reason
      if (err instanceof EtcdsnapError && err.kind === 'environment') return { ...base, newerRecord: err.message };
      throw err;
    }
    if (!side) skipOnce(store, store.metadataKey(o.name), 'sidecar ignored: not a JSON object', onSkip);
    return side?.record ?? base;
  });
}

/** Uploads the sidecar of a snapshot now in S3. */
export async function putSidecar(store: S3Store, record: SnapshotRecord): Promise<void> {
  const { s3: _s3, ...rest } = record;
  await store.putText(store.metadataKey(record.name), sidecarText({ ...rest, location: store.location(record.name) }), 'application/json');
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
export async function pruneS3(
  store: S3Store,
  prefix: string,
  nodeName: string,
  keep: number,
  dryRun: boolean,
  onSkip: S3SkipReporter = noReport,
): Promise<string[]> {
  const objects = await snapshotObjects(store, onSkip);
  const plan = planRetention(
    objects.map((o) => o.name),
    { prefix, nodeName, keep },
  );
  if (!dryRun && plan.remove.length > 0) {
    const res = await store.deleteMany(plan.remove.flatMap((n) => [store.key(n), store.metadataKey(n)]));
    if (res.errors.length > 0)
      throw new EtcdsnapError('unavailable', `S3 retention could not delete ${res.errors.length} object(s): ${res.errors[0]?.message ?? ''}`);
  }
  return plan.remove;
}

/**
 * Aborts multipart uploads of this node's snapshots that a crash left open (at start-up
 * no upload of ours can be running). Other nodes' uploads, and uploads whose key is not a
 * safe snapshot name directly under the folder, are left alone (the latter reported once).
 */
export async function abortStaleUploads(store: S3Store, nodeName: string, onSkip: S3SkipReporter = noReport): Promise<string[]> {
  const aborted: string[] = [];
  const base = store.folder === '' ? '' : `${store.folder}/`;
  for (const u of await store.listMultipartUploads()) {
    if (!u.key.startsWith(base)) continue;
    const name = u.key.slice(base.length);
    if (name.includes('/')) continue;
    if (!isSafeSnapshotName(name)) {
      skipOnce(store, u.key, 'multipart upload left alone: not a safe snapshot file name', onSkip);
      continue;
    }
    const parsed = parseSnapshotName(name);
    if (!parsed?.base.endsWith(`-${nodeName}-${parsed.timestamp}`)) continue;
    await store.abortMultipartUpload(u.key, u.uploadId);
    aborted.push(name);
  }
  return aborted;
}

/**
 * The record of `name` from its sidecar, for a download: undefined when there is none. The
 * name, location, status, size (0: unknown) and created time are ours, never the sidecar's.
 * Refused (`integrity`): a sidecar larger than MAX_SIDECAR_BYTES, one that is not a record,
 * one whose sha256 is malformed; (`environment`) one written by a newer etcdsnap.
 */
export async function readBucketRecord(store: S3Store, name: string): Promise<SnapshotRecord | undefined> {
  const text = await readSidecar(store, name);
  if (text === undefined) return undefined;
  const where = store.location(name);
  const facts: BucketRecordFacts = { name, location: where, createdAt: createdAtFromName(name, new Date()), size: 0, ...compressionFromName(name) };
  const side = recordFromBucketSidecar(text, facts);
  if (!side) throw new EtcdsnapError('integrity', `the sidecar of ${where} is not a snapshot record`);
  if (side.invalid.includes('sha256')) throw new EtcdsnapError('integrity', `the sidecar of ${where} has a malformed sha256`);
  return side.record;
}
