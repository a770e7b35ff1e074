/**
 * etcd upkeep on a server or an agent (docs/upkeep.md): the `HostFeature` that
 * - defragments every member on `--etcd-defrag-schedule` (defrag.ts: one run in the
 *   cluster at a time, once per tick, followers first, the leader last, never under a
 *   snapshot stream of that member: save-guard.ts, whose `wrap` the snapshot feature puts
 *   around its snapshot source);
 * - watches the host's member every `POLL_MS` (status: database size; the cluster's alarm
 *   list) and logs by upkeep-plan.ts `quotaStep`: one warning at `--etcd-quota-warning-ratio`
 *   of the quota, one error per NOSPACE occurrence with the commands that fix it;
 * - serves the token routes of model/upkeep-api.ts (defrag, compact, alarms, disarm);
 * - sends the watcher's warning, NOSPACE and cleared lines to the webhook of
 *   `--etcd-snapshot-notify-webhook` (notify.ts: `etcd-quota-warning`, `etcd-nospace`,
 *   `etcd-nospace-cleared`), when set;
 * - adds gauges to the snapshot feature's metrics (`attach`):
 *   `etcdsnap_etcd_alarm_active{alarm}`, `etcdsnap_etcd_defrag_reclaimed_bytes_total`,
 *   `etcdsnap_etcd_defrag_last_timestamp_seconds` (database size, in use and quota are
 *   the snapshot feature's own).
 */
import { Counter, Gauge } from 'prom-client';
import type { EtcdClient, EtcdMember } from '../etcd/client.js';
import { compact, disarmAlarms, listAlarms, type EtcdAlarm } from '../etcd/maintenance.js';
import { configError, EtcdsnapError, messageOf } from '../errors.js';
import type { AlarmsResponse, CompactResponse, DefragResponse } from '../model/upkeep-api.js';
import { ALARMS_PATH, COMPACT_PATH, DEFRAG_PATH, DISARM_PATH } from '../model/upkeep-api.js';
import { DefragRunner, MemberClients } from './defrag.js';
import type { HostContext, HostFeature } from './feature.js';
import { hexId } from './identity.js';
import type { ServerMetrics } from './metrics.js';
import type { SnapshotNotifier } from './notify.js';
import { SaveGuard } from './save-guard.js';
import { parseSchedule, type Schedule, Scheduler } from './schedule.js';
import { INITIAL_QUOTA_STATE, parseWarningRatio, quotaStep, type QuotaState } from './upkeep-plan.js';
import type { Values } from '../config/resolve.js';

/** How often the quota watcher looks at etcd. */
export const POLL_MS = 10_000;

export interface UpkeepConfig {
  /** `--etcd-defrag-schedule`; absent: no scheduled defragmentation. */
  defragSchedule?: Schedule;
  /** `--etcd-quota-warning-ratio` (0: no size warning). */
  warningRatio: number;
  /** etcd's quota in bytes (metrics.ts `quotaBackendBytes`). */
  quotaBytes: number;
  /** Where members are reached, given the member list: their client URLs (server) or `--endpoints` (agent). */
  endpointsOf: (members: readonly EtcdMember[]) => readonly string[];
  connect: (endpoint: string) => Promise<EtcdClient>;
}

/**
 * The upkeep settings of resolved values (server and agent): `--etcd-defrag-schedule`
 * (empty: off; `@every` ticks on multiples of the duration since the epoch, so that every
 * server's schedule names the same ticks) and `--etcd-quota-warning-ratio`.
 */
export function upkeepSettingsOf(v: Values): Pick<UpkeepConfig, 'defragSchedule' | 'warningRatio'> {
  const spec = v.text('etcd-defrag-schedule').trim();
  let defragSchedule: Schedule | undefined;
  if (spec !== '') {
    try {
      defragSchedule = parseSchedule(spec, { epochAligned: true });
    } catch (err) {
      throw configError(
        messageOf(err)
          .replace('invalid snapshot schedule', 'invalid defragmentation schedule')
          .replace('--etcd-snapshot-schedule-cron', '--etcd-defrag-schedule'),
      );
    }
  }
  return { ...(defragSchedule ? { defragSchedule } : {}), warningRatio: parseWarningRatio(v.text('etcd-quota-warning-ratio')) };
}

export class Upkeep {
  /** Put around the snapshot source by the snapshot feature (save-guard.ts). */
  readonly guard = new SaveGuard();
  private alarms: EtcdAlarm[] = [];
  private readonly reclaimed = { total: 0, lastAt: 0 };

  /** The webhook of `--etcd-snapshot-notify-webhook`, when set (`attach`). */
  private notifier: SnapshotNotifier | undefined;

  constructor(private readonly cfg: UpkeepConfig) {}

  /** The snapshot feature's metrics and notifier: the upkeep gauges, and the watcher's events to the webhook. */
  readonly attach = (parts: { metrics: ServerMetrics; notifier?: SnapshotNotifier }): void => {
    this.notifier = parts.notifier;
    this.addMetrics(parts.metrics);
  };

  private addMetrics(m: ServerMetrics): void {
    const registers = [m.registry];
    const active = new Gauge({
      name: 'etcdsnap_etcd_alarm_active',
      help: 'Whether an etcd alarm of this kind is raised in the cluster (1) or not (0), as the quota watcher last saw.',
      labelNames: ['alarm'],
      registers,
    });
    const reclaimed = new Counter({
      name: 'etcdsnap_etcd_defrag_reclaimed_bytes_total',
      help: 'Bytes of etcd database files reclaimed by defragmentations this process ran.',
      registers,
    });
    const last = new Gauge({
      name: 'etcdsnap_etcd_defrag_last_timestamp_seconds',
      help: 'End (unix seconds) of the last defragmentation this process ran.',
      registers,
    });
    reclaimed.inc(0);
    let counted = 0;
    m.addScrapeHook(async () => {
      for (const a of ['NOSPACE', 'CORRUPT']) active.set({ alarm: a }, this.alarms.some((x) => x.alarm === a) ? 1 : 0);
      if (this.reclaimed.total > counted) reclaimed.inc(this.reclaimed.total - counted);
      counted = this.reclaimed.total;
      if (this.reclaimed.lastAt > 0) last.set(this.reclaimed.lastAt / 1000);
    });
  }

  feature(): HostFeature {
    return (ctx) => this.start(ctx);
  }

  private async start(ctx: HostContext): Promise<void> {
    const { logger, etcd } = ctx;
    const node = ctx.cfg.nodeName;
    this.guard.bind(etcd, node, logger);
    const members = new MemberClients(this.cfg.endpointsOf, this.cfg.connect);
    const runner = new DefragRunner({ etcd, members, guard: this.guard, nodeName: node, logger });
    const defrag = async (tick?: Date): Promise<DefragResponse | undefined> => {
      const r = await runner.run(tick);
      if (r) {
        this.reclaimed.total += r.members.reduce((s, x) => s + Math.max(0, (x.before ?? 0) - (x.after ?? 0)), 0);
        this.reclaimed.lastAt = Date.now();
      }
      return r;
    };
    const names = async (): Promise<Map<string, string>> => new Map((await etcd.members().catch(() => [])).map((m) => [hexId(m.id), m.name]));

    // the quota watcher
    let state: QuotaState = INITIAL_QUOTA_STATE;
    const look = async (): Promise<void> => {
      const [status, alarms] = await Promise.all([etcd.status(3000).catch(() => undefined), listAlarms(etcd).catch(() => undefined)]);
      if (alarms) this.alarms = alarms;
      const memberNames = alarms && alarms.length > 0 ? await names() : new Map<string, string>();
      const step = quotaStep(
        state,
        { ...(status ? { dbSize: status.dbSize } : {}), ...(alarms ? { alarms } : {}) },
        {
          quota: this.cfg.quotaBytes,
          ratio: this.cfg.warningRatio,
          memberName: (id) => {
            const hex = hexId(id);
            const name = memberNames.get(hex);
            return name !== undefined ? `${name} (${hex})` : hex;
          },
        },
      );
      state = step.state;
      for (const l of step.lines) {
        logger[l.level]({ event: l.event, dbSize: status?.dbSize, quota: this.cfg.quotaBytes }, l.msg);
        if (l.event !== 'quota-ok') this.notifier?.notifyUpkeep(`etcd-${l.event}`, l.msg);
      }
    };
    let looking = false;
    const tick = (): void => {
      if (looking) return;
      looking = true;
      look()
        .catch((err: unknown) => logger.debug({ err: messageOf(err) }, 'quota watcher: etcd did not answer'))
        .finally(() => {
          looking = false;
        });
    };
    tick();
    const timer = setInterval(tick, POLL_MS);
    timer.unref();

    this.addRoutes(ctx, defrag, names);

    let scheduler: Scheduler | undefined;
    if (this.cfg.defragSchedule) {
      scheduler = new Scheduler({
        schedule: this.cfg.defragSchedule,
        job: async (t) => {
          try {
            await defrag(t);
          } catch (err) {
            if (!(err instanceof EtcdsnapError && err.kind === 'conflict')) throw err;
            logger.info({ tick: t.toISOString() }, `skipping scheduled defragmentation: ${err.message}`);
          }
        },
        onSkip: (t) => logger.warn({ tick: t.toISOString() }, 'skipping scheduled defragmentation: the previous one is still running'),
        onError: (err) => logger.error({ err: messageOf(err) }, `scheduled defragmentation failed: ${messageOf(err)}`),
      });
      scheduler.start();
      logger.info(
        { schedule: this.cfg.defragSchedule.spec, nextRun: scheduler.nextRun()?.toISOString() },
        'scheduled etcd defragmentation enabled (--etcd-defrag-schedule)',
      );
    }
    ctx.onDrain(async () => {
      scheduler?.stop();
      clearInterval(timer);
      await scheduler?.idle();
      members.close();
    });
  }

  private addRoutes(ctx: HostContext, defrag: (tick?: Date) => Promise<DefragResponse | undefined>, names: () => Promise<Map<string, string>>): void {
    const { etcd } = ctx;
    ctx.addRoute({
      method: 'POST',
      path: DEFRAG_PATH,
      handle: async () => {
        const body: DefragResponse = (await defrag()) ?? { node: ctx.cfg.nodeName, members: [] };
        return { status: 200, body };
      },
    });
    ctx.addRoute({
      method: 'POST',
      path: COMPACT_PATH,
      handle: async () => {
        const revision = Number((await etcd.status()).revision);
        let already = false;
        try {
          await compact(etcd, revision);
          ctx.logger.info({ revision }, `compacted etcd to revision ${revision}`);
        } catch (err) {
          if (!(err instanceof EtcdsnapError && err.kind === 'conflict')) throw err;
          already = true;
        }
        const body: CompactResponse = { revision, already };
        return { status: 200, body };
      },
    });
    const answer = async (alarms: EtcdAlarm[]): Promise<AlarmsResponse> => {
      const [status, byId] = await Promise.all([etcd.status(3000).catch(() => undefined), names()]);
      return {
        alarms: alarms.map((a) => {
          const memberId = hexId(a.memberId);
          const member = byId.get(memberId);
          return { memberId, ...(member !== undefined ? { member } : {}), alarm: a.alarm };
        }),
        ...(status ? { dbSize: status.dbSize, ...(status.dbSizeInUse !== undefined ? { dbSizeInUse: status.dbSizeInUse } : {}) } : {}),
        quota: this.cfg.quotaBytes,
      };
    };
    ctx.addRoute({ method: 'GET', path: ALARMS_PATH, handle: async () => ({ status: 200, body: await answer(await listAlarms(etcd)) }) });
    ctx.addRoute({
      method: 'POST',
      path: DISARM_PATH,
      handle: async () => {
        const disarmed = await disarmAlarms(etcd);
        if (disarmed.length > 0)
          ctx.logger.info(
            { alarms: disarmed.map((a) => ({ memberId: hexId(a.memberId), alarm: a.alarm })) },
            `disarmed ${disarmed.length} etcd alarm(s): ${disarmed.map((a) => a.alarm).join(', ')}`,
          );
        this.alarms = await listAlarms(etcd).catch(() => this.alarms);
        return { status: 200, body: await answer(disarmed) };
      },
    });
  }
}
