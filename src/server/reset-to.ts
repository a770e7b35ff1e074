/**
 * Restore to a point (`--cluster-reset --cluster-reset-restore-to=<revision|time>`,
 * docs/point-in-time-restore.md), the parts reset.ts calls:
 *
 * - `snapshotFor`: without `--cluster-reset-restore-path`, the newest successful local
 *   snapshot taken before the target (by revision, or by time; for `latest`, the newest).
 * - `replayOnto` (run by reset.ts in the restored etcd it started on the temp dir, loopback
 *   only, before anything in the data dir moves): the change log's segments from the
 *   snapshot's revision + 1 are chosen and each read and verified (sha256, contiguity;
 *   changelog/plan.ts) before the first write, then read again and written, one
 *   transaction per original revision (puts without their lease, deletes); the result must
 *   be at the target revision. One segment in memory at a time. Any failure is thrown; the
 *   caller removes the temp dir and says nothing was changed (`replayFailed`).
 * - `moveChangelogAside`: after a successful restore the old history's segments move to
 *   `db/changelog-old-<unix>` (a restored cluster writes a new history from its revision).
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../log/logger.js';
import { EtcdsnapError, messageOf } from '../errors.js';
import type { EtcdClient } from '../etcd/client.js';
import { describeTarget, planSegments, recordsBetween, summarize, targetRevision, type RestoreTo, type SegmentSummary } from '../changelog/plan.js';
import { changelogDir } from '../changelog/segments.js';
import { localSegments, withS3Segments, type SegmentSource } from '../changelog/source.js';
import { CHANGELOG_PREFIX } from '../changelog/remote.js';
import { LocalStore } from '../store/local.js';
import { openObjectStore, openStore } from '../store/factory.js';
import type { S3Options } from '../snapshot/s3-config.js';
import type { SnapshotRecord } from '../model/records.js';
import { renameDurably } from '../util/durable.js';
import { exists } from '../util/fs.js';
import type { ServerConfig, ServerPaths } from './config.js';

/** Most rounding between a snapshot's real time and the second in its name (Math.round). */
const NAME_ROUNDING_MS = 500;

/**
 * The snapshot to restore before replaying to `target`: the newest successful one of this
 * node taken before it, local or (with `s3`) in S3. Answers its path (local) or its name (in
 * S3 only: the restore downloads it, snapshot/restore-source.ts), and its record time (ms).
 */
export async function snapshotFor(cfg: ServerConfig, target: RestoreTo, s3?: S3Options): Promise<{ file: string; createdAt: number }> {
  const store = new LocalStore(cfg.snapshots.dir);
  const before = (r: SnapshotRecord): boolean =>
    r.status === 'successful' &&
    r.revision !== undefined &&
    !r.foreignName &&
    ('revision' in target ? Number(r.revision) <= target.revision : 'time' in target ? Date.parse(r.createdAt) + NAME_ROUNDING_MS <= target.time : true);
  const newest = (a: SnapshotRecord, b: SnapshotRecord): number => Number(b.revision) - Number(a.revision) || Date.parse(b.createdAt) - Date.parse(a.createdAt);
  const local = (await store.list({ nodeName: cfg.nodeName }).catch(() => [])).filter(before).sort(newest)[0];
  let remote: SnapshotRecord | undefined;
  if (s3) {
    const bucket = await openStore({ kind: 's3', settings: s3.settings });
    try {
      remote = (await bucket.list({ nodeName: cfg.nodeName, withRecords: true })).filter((r) => r.nodeName === cfg.nodeName && before(r)).sort(newest)[0];
    } finally {
      bucket.close();
    }
  }
  if (remote && (!local || newest(remote, local) < 0) && remote.name !== local?.name) return { file: remote.name, createdAt: Date.parse(remote.createdAt) };
  if (!local)
    throw new EtcdsnapError(
      'usage',
      `no local snapshot in ${cfg.snapshots.dir}${s3 ? ` or in S3 (of ${cfg.nodeName})` : ''} was taken before ${describeTarget(target)}; give one with --cluster-reset-restore-path`,
    );
  return { file: store.filePath(local.name), createdAt: Date.parse(local.createdAt) };
}

/** The change log a replay reads: the local folder, and the server's S3 when given. */
export async function openSegmentSource(dbDir: string, s3: S3Options | undefined, identityFile: string | undefined): Promise<SegmentSource> {
  const dir = changelogDir(dbDir);
  if (!s3) return localSegments(dir);
  const store = await openObjectStore(s3.settings, CHANGELOG_PREFIX);
  try {
    return await withS3Segments(dir, store, dbDir, identityFile);
  } catch (err) {
    store.close();
    throw err;
  }
}

/** The record time (ms) of a snapshot given by path, when it is one of the snapshot dir's. */
export async function recordTimeOf(cfg: ServerConfig, file: string): Promise<number | undefined> {
  if (path.dirname(path.resolve(file)) !== path.resolve(cfg.snapshots.dir)) return undefined;
  const r = await new LocalStore(cfg.snapshots.dir).readRecord(path.basename(file)).catch(() => undefined);
  return r ? Date.parse(r.createdAt) : undefined;
}

/**
 * Replays `target` onto the restored etcd `client` (at the snapshot's revision): every
 * segment the plan names is read and verified first (one at a time, only its summary kept),
 * then read again and written, one transaction per revision. Resolves with the revision
 * reached (the target's). Memory holds one segment at a time.
 */
export async function replayOnto(
  client: EtcdClient,
  source: SegmentSource,
  target: RestoreTo,
  snapshotTime: number | undefined,
  logger: Logger,
): Promise<number> {
  const base = Number((await client.status()).revision);
  const run = planSegments(await source.list(), base, target);
  const sums: SegmentSummary[] = [];
  for (const s of run) sums.push(summarize(await source.read(s.name), base, target));
  const revision = targetRevision(sums, base, target, snapshotTime === undefined ? undefined : snapshotTime + NAME_ROUNDING_MS);
  logger.info(
    { from: base, to: revision, revisions: revision - base, segments: sums.length, target: describeTarget(target) },
    `replaying ${revision - base} revisions of the change log onto the snapshot (revision ${base} to ${revision})`,
  );
  const t0 = Date.now();
  let applied = base;
  for (const s of run) {
    if (s.first > revision) break;
    // read and verified again: what is written is what was checked
    for (const r of recordsBetween(await source.read(s.name), applied, revision)) {
      const got = await client.applyRevision(r.events);
      if (got !== r.revision) throw new EtcdsnapError('integrity', `replaying revision ${r.revision} of the change log gave etcd revision ${got}`);
      applied = r.revision;
    }
  }
  const end = Number((await client.status()).revision);
  if (applied !== revision || end !== revision) throw new EtcdsnapError('integrity', `after the replay etcd is at revision ${end}, not ${revision}`);
  logger.info({ revision: end, ms: Date.now() - t0 }, `replayed the change log to revision ${end}`);
  return end;
}

/** Wraps a replay failure: what failed, and that the data dir was not changed. */
/**
 * Extra etcd flags for the loopback etcd a change log is replayed onto: one revision is one
 * transaction, and one revision can hold more operations than etcd's default limit of 128
 * per transaction (a lease that expires deletes every key attached to it in one revision;
 * Kubernetes puts many events on one lease), or a request larger than the default 1.5 MiB
 * (10 MiB: etcd warns above that). The original etcd committed the revision, so the replay
 * must accept it whole.
 */
export const REPLAY_ETCD_ARGS: readonly string[] = ['--max-txn-ops=1000000', `--max-request-bytes=${10 * 1024 * 1024}`];

export const replayFailed = (err: unknown): EtcdsnapError =>
  new EtcdsnapError(err instanceof EtcdsnapError ? err.kind : 'environment', `refusing to restore to a point: ${messageOf(err)}; nothing was changed`, {
    cause: err,
  });

/** Moves the change log of the history before a restore to `db/changelog-old-<unix>`; answers where, if it existed. */
export async function moveChangelogAside(p: ServerPaths, unix: number, logger: Logger): Promise<string | undefined> {
  const dir = changelogDir(p.dbDir);
  if (!(await exists(dir))) return undefined;
  const entries = await fsp.readdir(dir);
  if (entries.length === 0) {
    await fsp.rmdir(dir).catch(() => undefined);
    return undefined;
  }
  const old = path.join(p.dbDir, `changelog-old-${unix}`);
  await renameDurably(dir, old);
  logger.info({ old }, `the change log of the history before the restore moved to ${old}`);
  return old;
}
