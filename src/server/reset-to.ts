/**
 * Restore to a point (`--cluster-reset --cluster-reset-restore-to=<revision|time>`,
 * docs/point-in-time-restore.md), the parts reset.ts calls:
 *
 * - `snapshotFor`: without `--cluster-reset-restore-path`, the newest successful local
 *   snapshot taken before the target (by revision, or by time).
 * - `replayInto`: after etcd's restore tool wrote the snapshot into the temp dir and before
 *   anything in the data dir moves, etcd is started on that temp dir on loopback only, the
 *   change log's segments from the snapshot's revision + 1 are read and verified (sha256,
 *   contiguity; changelog/plan.ts), each original revision is written as one transaction
 *   (puts without their lease, deletes), and the result must be at the target revision.
 *   Any failure is thrown with "nothing was changed": the caller removes the temp dir.
 * - `moveChangelogAside`: after a successful restore the old history's segments move to
 *   `db/changelog-old-<unix>` (a restored cluster writes a new history from its revision).
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../log/logger.js';
import { EtcdsnapError, messageOf } from '../errors.js';
import type { EtcdClient } from '../etcd/client.js';
import { describeTarget, planSegments, selectRecords, type Replay, type RestoreTo } from '../changelog/plan.js';
import { changelogDir, listSegments, readSegment } from '../changelog/segments.js';
import { LocalStore } from '../store/local.js';
import { renameDurably } from '../util/durable.js';
import { exists } from '../util/fs.js';
import type { ServerConfig, ServerPaths } from './config.js';

/** Most rounding between a snapshot's real time and the second in its name (Math.round). */
const NAME_ROUNDING_MS = 500;

/** The local snapshot to restore before replaying to `target`: its path and record time (ms). */
export async function snapshotFor(cfg: ServerConfig, target: RestoreTo): Promise<{ file: string; createdAt: number }> {
  const store = new LocalStore(cfg.snapshots.dir);
  const records = await store.list({ nodeName: cfg.nodeName }).catch(() => []);
  const candidates = records
    .filter((r) => r.status === 'successful' && r.revision !== undefined && !r.foreignName)
    .filter((r) => ('revision' in target ? Number(r.revision) <= target.revision : Date.parse(r.createdAt) + NAME_ROUNDING_MS <= target.time))
    .sort((a, b) => Number(b.revision) - Number(a.revision) || Date.parse(b.createdAt) - Date.parse(a.createdAt));
  const best = candidates[0];
  if (!best)
    throw new EtcdsnapError(
      'usage',
      `no local snapshot in ${cfg.snapshots.dir} was taken before ${describeTarget(target)}; give one with --cluster-reset-restore-path`,
    );
  return { file: store.filePath(best.name), createdAt: Date.parse(best.createdAt) };
}

/** The record time (ms) of a snapshot given by path, when it is one of the snapshot dir's. */
export async function recordTimeOf(cfg: ServerConfig, file: string): Promise<number | undefined> {
  if (path.dirname(path.resolve(file)) !== path.resolve(cfg.snapshots.dir)) return undefined;
  const r = await new LocalStore(cfg.snapshots.dir).readRecord(path.basename(file)).catch(() => undefined);
  return r ? Date.parse(r.createdAt) : undefined;
}

/** Reads and verifies the segments that carry `target` past `base` (all before anything is written). */
export async function planReplay(dbDir: string, base: number, target: RestoreTo, snapshotTime: number | undefined): Promise<Replay> {
  const dir = changelogDir(dbDir);
  const run = planSegments(await listSegments(dir), base, target);
  const segments = [];
  for (const s of run) segments.push(await readSegment(dir, s.name));
  return selectRecords(segments, base, target, snapshotTime === undefined ? undefined : snapshotTime + NAME_ROUNDING_MS);
}

/**
 * Replays `target` onto the restored etcd `client` (at the snapshot's revision): plans, then
 * writes one transaction per revision; resolves with the revision reached (the target's).
 */
export async function replayOnto(client: EtcdClient, dbDir: string, target: RestoreTo, snapshotTime: number | undefined, logger: Logger): Promise<number> {
  const base = Number((await client.status()).revision);
  const plan = await planReplay(dbDir, base, target, snapshotTime);
  logger.info(
    { from: base, to: plan.revision, revisions: plan.records.length, target: describeTarget(target) },
    `replaying ${plan.records.length} revisions of the change log onto the snapshot (revision ${base} to ${plan.revision})`,
  );
  const t0 = Date.now();
  for (const r of plan.records) {
    const got = await client.applyRevision(r.events);
    if (got !== r.revision) throw new EtcdsnapError('integrity', `replaying revision ${r.revision} of the change log gave etcd revision ${got}`);
  }
  const end = Number((await client.status()).revision);
  if (end !== plan.revision) throw new EtcdsnapError('integrity', `after the replay etcd is at revision ${end}, not ${plan.revision}`);
  logger.info({ revision: end, ms: Date.now() - t0 }, `replayed the change log to revision ${end}`);
  return end;
}

/** Wraps a replay failure: what failed, and that the data dir was not changed. */
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
