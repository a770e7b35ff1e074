/**
 * Restore drills on a host (server or agent; docs/drills.md), part of the snapshot feature
 * (snapshots.ts calls `startDrills`): the on-demand route, the optional schedule, and the
 * sweep of what a killed drill left.
 *
 * - At start: `sweepDrills` over `<data-dir>/server/db/drills` (a survivor etcd killed, every
 *   leftover folder removed), before anything else can start a drill.
 * - `POST /v1/snapshots/drill` (token) with `DrillRequestBody` (model/api.ts): drills the
 *   named snapshot (`assertStoreName`) or the newest, answers `DrillResponse` when done
 *   (a failed drill is a 200 answer with `result.status: failed`; nothing to drill is a 404).
 *   One drill at a time: a request while one runs is a `conflict` (409).
 * - `--etcd-snapshot-drill-schedule` (when set): a `Scheduler` drills the newest snapshot at
 *   each tick. On an agent only the active one of its group drills (`leadership.activeNow`;
 *   the tick marker is the snapshots' and is not claimed for drills).
 * - Each drill that ran emits one `drill` event (snapshot/events.ts): metrics and webhook.
 * - The drain stops the schedule and a running drill (its etcd stopped, its folder removed,
 *   its result `failed: stopped ...`), and waits for that.
 */
import path from 'node:path';
import { EtcdsnapError, messageOf } from '../errors.js';
import type { DrillResponse } from '../model/api.js';
import { type DrillContext, runDrill, sweepDrills } from '../snapshot/drill.js';
import type { DrillFrom } from '../snapshot/drill-plan.js';
import type { SnapshotObserver } from '../snapshot/events.js';
import type { S3Options } from '../snapshot/s3-config.js';
import { assertStoreName } from '../store/store.js';
import type { HostContext } from './feature.js';
import type { Leadership } from './leadership.js';
import { type Schedule, Scheduler } from './schedule.js';

export interface DrillsConfig {
  snapshotDir: string;
  snapshotDirIsDefault: boolean;
  s3?: S3Options;
  nodeName: string;
  etcdBinary: string;
  observer: SnapshotObserver;
  leadership?: Leadership;
}

/** The drills folder of a data dir's layout. */
export const drillsDir = (dbDir: string): string => path.join(dbDir, 'drills');

/** Parses a drill request body; a `usage` error for anything else. */
export function parseDrillRequest(body: unknown): { name?: string; from: DrillFrom } {
  if (body === undefined || body === null) return { from: 'auto' };
  if (typeof body !== 'object' || Array.isArray(body)) throw new EtcdsnapError('usage', 'a drill request is a JSON object');
  const o = body as Record<string, unknown>;
  for (const k of Object.keys(o)) if (k !== 'name' && k !== 'from') throw new EtcdsnapError('usage', `unknown field ${JSON.stringify(k)} in a drill request`);
  const from = o.from ?? 'auto';
  if (from !== 'auto' && from !== 'local' && from !== 's3') throw new EtcdsnapError('usage', 'from: auto, local or s3');
  if (o.name === undefined) return { from };
  return { name: assertStoreName(o.name), from };
}

/** Starts the drills of the host: sweep, route, schedule; resolves once the sweep is done. */
export async function startDrills(ctx: HostContext, cfg: DrillsConfig): Promise<{ stop(): Promise<void> }> {
  const workDir = drillsDir(ctx.paths.dbDir);
  await sweepDrills(workDir, ctx.logger);
  const dctx: DrillContext = {
    snapshotDir: cfg.snapshotDir,
    snapshotDirIsDefault: cfg.snapshotDirIsDefault,
    ...(cfg.s3 ? { s3: cfg.s3 } : {}),
    ...(ctx.cfg.snapshots.identityFile !== undefined ? { identityFile: ctx.cfg.snapshots.identityFile } : {}),
    workDir,
    etcdBinary: cfg.etcdBinary,
    timeoutMs: ctx.cfg.snapshots.drillTimeoutMs,
    nodeName: cfg.nodeName,
    logger: ctx.logger,
  };
  let running: Promise<unknown> | undefined;
  const stopping = new AbortController();
  const drill = async (name: string | undefined, from: DrillFrom, scheduled: boolean): Promise<DrillResponse> => {
    if (running) throw new EtcdsnapError('conflict', 'a restore drill is already running; try again when it is done');
    if (stopping.signal.aborted) throw new EtcdsnapError('unavailable', 'the host is shutting down');
    const p = runDrill(name, from, dctx, stopping.signal);
    running = p;
    try {
      const out = await p;
      const { result } = out;
      cfg.observer({
        kind: 'drill',
        scheduled,
        result: result.status === 'passed' ? 'success' : 'failure',
        seconds: result.durationMs / 1000,
        snapshot: out.snapshot,
        store: out.store,
        ...(result.message !== undefined ? { error: result.message } : {}),
      });
      return out;
    } finally {
      running = undefined;
    }
  };
  ctx.addRoute({
    method: 'POST',
    path: '/v1/snapshots/drill',
    handle: async (req) => {
      const r = parseDrillRequest(req.body);
      return { status: 200, body: await drill(r.name, r.from, false) };
    },
  });
  const schedule: Schedule | undefined = ctx.cfg.snapshots.drillSchedule;
  let scheduler: Scheduler | undefined;
  if (schedule) {
    scheduler = new Scheduler({
      schedule,
      job: async (tick) => {
        if (cfg.leadership?.activeNow && !cfg.leadership.activeNow()) {
          ctx.logger.debug({ tick: tick.toISOString() }, 'skipping the scheduled restore drill: another agent is active');
          return;
        }
        await drill(undefined, 'auto', true);
      },
      onSkip: (tick) => ctx.logger.warn({ tick: tick.toISOString() }, 'skipping the scheduled restore drill: the previous one is still running'),
      onError: (err) => ctx.logger.error({ err: messageOf(err) }, `scheduled restore drill not run: ${messageOf(err)}`),
    });
    scheduler.start();
    ctx.logger.info({ schedule: schedule.spec, nextRun: scheduler.nextRun()?.toISOString(), timeoutMs: dctx.timeoutMs }, 'scheduled restore drills enabled');
  }
  return {
    async stop() {
      scheduler?.stop();
      stopping.abort(); // a running drill stops its etcd and cleans up
      await running?.catch(() => undefined);
    },
  };
}
