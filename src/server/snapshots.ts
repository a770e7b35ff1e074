/**
 * The snapshot feature of the server and of the agent (a `HostFeature`): prepares the folder, serves `POST /db/snapshot`
 * (save/list/delete/prune), `GET /db/snapshot/progress` (the running save's bytes, model/api.ts
 * `SaveProgressResponse`) and the inspection routes (inspect-routes.ts), runs the cron schedule, and drains a running save at stop.
 * A request's `dir` may name only the configured snapshot dir or a folder of
 * `--etcd-snapshot-api-dir` (`settings.apiDirs`, else the server config's).
 * Its `preflight` (before the server changes anything) refuses a snapshot dir that is
 * missing (other than the default) or not a folder, and S3 settings the S3 store refuses
 * (the S3 code is loaded only when S3 is configured, store/factory.ts).
 * Requests are parsed by `parseSnapshotRequest` (the option schema's validators); answers
 * have the types of model/api.ts (`SnapshotResponses`), which the CLI decodes.
 * It also serves the metrics (metrics.ts, metrics-http.ts): `GET /metrics` with the token,
 * and without it on `--metrics-listen-address` when set; the service reports to them, and
 * and `etcdsnap_agent_active` when the leadership tells (the agent's election),
 * to the webhook notifier of `--etcd-snapshot-notify-webhook` (notify.ts) when set, through
 * one observer (events.ts `fanOut`). Failed uploads are retried after the delays of
 * `--etcd-s3-upload-retry-delays`. At stop the notifier gets a short bounded time after the
 * service's drain (its last events included).
 * And restore drills (drills.ts, docs/drills.md): `POST /v1/snapshots/drill` and `--etcd-snapshot-drill-schedule`.
 * And the web dashboard at `/` (dashboard/routes.ts, docs/dashboard.md), with the server's S3 settings.
 * And the change log's visibility (changelog-routes.ts): `GET /v1/changelog`, `GET
 * /v1/changelog/status`, its ranges in the list's answer, and its metrics when it is on.
 */
import { Gauge } from 'prom-client';
import type { HostFeature } from './feature.js';
import { singleMember, type SnapshotSource } from '../etcd/members.js';
import type { Leadership } from './leadership.js';
import { addInspectRoutes } from './inspect-routes.js';
import { SnapshotService, type SnapshotSettings } from '../snapshot/service.js';
import { Scheduler, type Schedule } from './schedule.js';
import { parseSnapshotRequest, type SnapshotRequest } from '../snapshot/request.js';
import { mergeEncoding } from '../snapshot/encode.js';
import { SNAPSHOT_CLI_OPTIONS, stringDefault } from '../config/schema.js';
import type { SaveProgressResponse, SnapshotOperation, SnapshotResponses } from '../model/api.js';
import { EtcdsnapError, messageOf } from '../errors.js';
import { withProxyEnvironment, type S3Options } from '../snapshot/s3-config.js';
import { LocalStore } from '../store/local.js';
import { openStore } from '../store/factory.js';
import type { ProxyEnvironment } from '../store/s3/settings.js';
import { quotaBackendBytes, ServerMetrics } from './metrics.js';
import { addMetricsRoute, startMetricsListener } from './metrics-http.js';
import { type SnapshotNotifier, webhookNotifier } from './notify.js';
import { fanOut } from '../snapshot/events.js';
import { RetryQueue } from '../snapshot/retry-queue.js';
import { addDashboardRoutes } from './dashboard/routes.js';
import { startChangeLog, type ChangeLogFeature } from './changelog.js';
import { formatRetentionPolicy } from '../model/retention-policy.js';
import { systemTimeZone } from '../retention/calendar.js';
import type { SnapshotEncoding } from '../model/encoding.js';
import type { ServerConfig } from './config.js';
import { startDrills } from './drills.js';
import { addChangelogMetrics, addChangelogRoutes, restorableRanges, type ChangelogViewOptions } from './changelog-routes.js';

/** The replica stores of a request or of the server: its S3 settings, if any (one at most, as k3s). */
const replicasOf = (s3: S3Options | undefined): S3Options[] => (s3 ? [s3] : []);

export interface SnapshotFeatureConfig {
  disabled: boolean;
  schedule: Schedule;
  settings: SnapshotSettings;
  /** The server's S3 settings (`--etcd-s3`), used by scheduled saves. */
  s3?: S3Options;
  /**
   * The server's proxy environment (HTTPS_PROXY/HTTP_PROXY/NO_PROXY, read at start by the
   * caller), applied to the S3 settings of API requests; absent: requests get no env proxy.
   */
  proxyEnv?: ProxyEnvironment;
  /** The etcd executable restore drills run (the server's `--etcd-binary`; default `etcd` on PATH). */
  etcdBinary?: string;
  /** Asked before each scheduled save (leadership.ts); absent: always active (the server). */
  leadership?: Leadership;
  /** Wraps the snapshot source (upkeep.ts: saves announce their streams to defragmentation). */
  wrapSource?: (source: SnapshotSource) => SnapshotSource;
  /** Told the metrics and the webhook notifier (when set) once built, to add gauges and send events (upkeep.ts). */
  attach?: (parts: { metrics: ServerMetrics; notifier?: SnapshotNotifier }) => void;
}

/**
 * The snapshot service's settings from the resolved snapshot options: the one mapping the
 * server and the agent share, so a setting added to one reaches both (`encoding` is resolved
 * by the caller, asynchronously, before anything starts).
 */
export function snapshotSettingsOf(snapshots: ServerConfig['snapshots'], encoding: SnapshotEncoding, nodeName: string): SnapshotSettings {
  return {
    dir: snapshots.dir,
    dirIsDefault: snapshots.dirIsDefault,
    name: snapshots.name,
    retention: snapshots.retention,
    ...(snapshots.retentionPolicy ? { retentionPolicy: snapshots.retentionPolicy } : {}),
    encoding,
    nodeName,
  };
}

/** How long queued notifications may still be sent at stop, after the service's drain. */
const NOTIFY_DRAIN_MS = 2000;

export function snapshotFeature(cfg: SnapshotFeatureConfig): HostFeature {
  const feature: HostFeature = async (ctx) => {
    // the folders API requests may use: the configured one and --etcd-snapshot-api-dir
    const apiDirs = cfg.settings.apiDirs ?? ctx.cfg.snapshots.apiDirs;
    const metrics = new ServerMetrics({
      etcd: ctx.etcd,
      paths: ctx.paths,
      snapshotDir: cfg.settings.dir,
      nodeName: cfg.settings.nodeName,
      quotaBytes: quotaBackendBytes(ctx.cfg.etcdArgs),
    });
    await metrics.start();
    const leadership = cfg.leadership;
    if (leadership?.activeNow) {
      const active = new Gauge({
        name: 'etcdsnap_agent_active',
        help: 'Whether this agent is the active one of its group, which takes the scheduled snapshots (1) or stands by (0).',
        registers: [metrics.registry],
      });
      metrics.addScrapeHook(async () => {
        active.set(leadership.activeNow?.() ? 1 : 0);
      });
    }
    const notifyURL = ctx.cfg.snapshots.notifyWebhook;
    const notifier = notifyURL !== undefined ? webhookNotifier(notifyURL, cfg.settings.nodeName, ctx.logger) : undefined;
    cfg.attach?.({ metrics, ...(notifier ? { notifier } : {}) });
    const retries = new RetryQueue({ delays: ctx.cfg.snapshots.uploadRetryDelaysMs });
    let changelog: ChangeLogFeature | undefined;
    const observer = fanOut(ctx.logger, metrics.observe, notifier?.observe, (e) => changelog?.observe(e));
    const source = ctx.snapshotSource ?? singleMember(ctx.etcd);
    const service = new SnapshotService(cfg.wrapSource ? cfg.wrapSource(source) : source, { ...cfg.settings, apiDirs }, ctx.logger, retries, observer);
    if (apiDirs.length > 0) ctx.logger.info({ dirs: apiDirs }, `snapshot requests may also use ${apiDirs.join(', ')} (--etcd-snapshot-api-dir)`);
    await service.start();
    // a bad S3 setting (scheme in the endpoint, unreadable CA) stops the start; an S3 that
    // does not answer only disables uploads until it does (failures are recorded)
    if (cfg.s3) await service.startReplica(cfg.s3);
    if (ctx.cfg.changelog.enabled) {
      changelog = await startChangeLog({
        etcd: ctx.etcd,
        dbDir: ctx.paths.dbDir,
        periodMs: ctx.cfg.changelog.periodMs,
        snapshotDir: cfg.settings.dir,
        nodeName: cfg.settings.nodeName,
        logger: ctx.logger,
        snapshotNow: () =>
          service.save({ prefix: cfg.settings.name, encoding: cfg.settings.encoding, retention: 0, scheduled: false, replicas: replicasOf(cfg.s3) }),
        ...(cfg.s3 ? { s3: { settings: cfg.s3.settings, encoding: cfg.settings.encoding, retryDelaysMs: ctx.cfg.snapshots.uploadRetryDelaysMs } } : {}),
      });
    }

    const drills = await startDrills(ctx, {
      snapshotDir: cfg.settings.dir,
      snapshotDirIsDefault: cfg.settings.dirIsDefault,
      ...(cfg.s3 ? { s3: cfg.s3 } : {}),
      nodeName: cfg.settings.nodeName,
      etcdBinary: cfg.etcdBinary ?? 'etcd',
      observer,
      ...(cfg.leadership ? { leadership: cfg.leadership } : {}),
    });

    const view: ChangelogViewOptions = {
      etcd: ctx.etcd,
      dbDir: ctx.paths.dbDir,
      enabled: ctx.cfg.changelog.enabled,
      periodMs: ctx.cfg.changelog.periodMs,
      snapshotDir: cfg.settings.dir,
      nodeName: cfg.settings.nodeName,
    };
    addChangelogRoutes(ctx, view);
    if (view.enabled) addChangelogMetrics(metrics, view);

    // the request's name prefix when it gives none: the CLI's --name default
    const defaultPrefix = stringDefault(SNAPSHOT_CLI_OPTIONS, 'name');
    /** The answer to one request, typed as the CLI decodes it (model/api.ts). */
    const answer = async (r: SnapshotRequest): Promise<SnapshotResponses[SnapshotOperation]> => {
      switch (r.operation) {
        case 'save': {
          const res: SnapshotResponses['save'] = await service.save({
            prefix: r.name[0] ?? defaultPrefix,
            encoding: mergeEncoding(cfg.settings.encoding, {
              ...(r.compression !== undefined ? { compression: r.compression } : {}),
              ...(r.recipients !== undefined ? { recipients: r.recipients } : {}),
            }),
            ...(r.dir !== undefined ? { dir: r.dir } : {}),
            retention: 0,
            scheduled: false,
            replicas: replicasOf(r.s3),
          });
          return res;
        }
        case 'list': {
          const res: SnapshotResponses['list'] = await service.list(r.dir, replicasOf(r.s3), r.details ?? false);
          // the change log's ranges start from the server's own folder's snapshots
          if (r.dir === undefined || r.dir === cfg.settings.dir) res.changelog = await restorableRanges(view);
          return res;
        }
        case 'delete': {
          const res: SnapshotResponses['delete'] = await service.delete(r.name, r.dir, replicasOf(r.s3));
          return res;
        }
        case 'prune': {
          // the request's policy or count; neither: the server's policy, else its count
          const policy = r.retentionPolicy ?? (r.retention === undefined ? cfg.settings.retentionPolicy : undefined);
          const retention = r.retention ?? cfg.settings.retention;
          const out = await service.prune({
            prefix: r.name[0] ?? defaultPrefix,
            retention,
            ...(policy ? { policy } : {}),
            ...(r.dir !== undefined ? { dir: r.dir } : {}),
            dryRun: r.dryRun ?? false,
            replicas: replicasOf(r.s3),
          });
          const res: SnapshotResponses['prune'] = {
            deleted: out.deleted,
            ...(policy ? { policy: formatRetentionPolicy(policy), timeZone: systemTimeZone() } : { retention }),
            decisions: out.decisions,
          };
          return res;
        }
      }
    };

    addInspectRoutes(ctx, {
      dir: cfg.settings.dir,
      dirIsDefault: cfg.settings.dirIsDefault,
      apiDirs: [cfg.settings.dir, ...apiDirs],
      ...(cfg.s3 ? { s3: cfg.s3 } : {}),
      ...(cfg.proxyEnv ? { proxyEnv: cfg.proxyEnv } : {}),
      ...(ctx.cfg.snapshots.identityFile !== undefined ? { identityFile: ctx.cfg.snapshots.identityFile } : {}),
    });
    ctx.addRoute({
      method: 'POST',
      path: '/db/snapshot',
      handle: async (req) => {
        const parsed = parseSnapshotRequest(req.body);
        const r = parsed.s3 && cfg.proxyEnv ? { ...parsed, s3: withProxyEnvironment(parsed.s3, cfg.proxyEnv) } : parsed;
        return { status: 200, body: await answer(r) };
      },
    });

    ctx.addRoute({
      method: 'GET',
      path: '/db/snapshot/progress',
      handle: () => {
        const p = service.saveProgress();
        const body: SaveProgressResponse = p ? { saving: true, ...p } : { saving: false };
        return { status: 200, body };
      },
    });

    let scheduler: Scheduler | undefined;
    const dashboard = addDashboardRoutes(ctx, {
      service,
      ...(cfg.s3 ? { s3: cfg.s3 } : {}),
      savePrefix: defaultPrefix,
      encoding: cfg.settings.encoding,
      schedule: {
        enabled: !cfg.disabled,
        spec: cfg.schedule.spec,
        retention: cfg.settings.retention,
        ...(cfg.settings.retentionPolicy ? { retentionPolicy: formatRetentionPolicy(cfg.settings.retentionPolicy) } : {}),
      },
      nextRun: () => scheduler?.nextRun(),
    });
    if (cfg.disabled) {
      ctx.logger.info('scheduled etcd snapshots are disabled (--etcd-disable-snapshots)');
    } else {
      /** The scheduled save of `tick`, when the leadership says this process takes it. */
      const scheduledSave = async (tick: Date): Promise<void> => {
        if (cfg.leadership && !(await cfg.leadership.isActive(tick))) {
          ctx.logger.debug({ tick: tick.toISOString() }, 'skipping scheduled snapshot: another agent takes it');
          return;
        }
        await service.save({
          prefix: cfg.settings.name,
          encoding: cfg.settings.encoding,
          retention: cfg.settings.retention,
          ...(cfg.settings.retentionPolicy ? { retentionPolicy: cfg.settings.retentionPolicy } : {}),
          scheduled: true,
          replicas: replicasOf(cfg.s3),
        });
      };
      const onError = (err: unknown): void => {
        ctx.logger.error({ err: messageOf(err) }, `scheduled snapshot failed: ${messageOf(err)}`);
        dashboard.noteFailure('scheduled save', messageOf(err));
      };
      cfg.leadership?.onMissedTick?.((tick) => {
        scheduledSave(tick).catch(onError);
      });
      scheduler = new Scheduler({
        schedule: cfg.schedule,
        job: scheduledSave,
        onSkip: (tick) => ctx.logger.warn({ tick: tick.toISOString() }, 'skipping scheduled snapshot: the previous one is still running'),
        onError,
      });
      scheduler.start();
      const s = scheduler;
      metrics.setSchedule(() => s.nextRun());
      const next = scheduler.nextRun();
      ctx.logger.info(
        {
          schedule: cfg.schedule.spec,
          nextRun: next?.toISOString(),
          ...(cfg.settings.retentionPolicy
            ? { retentionPolicy: formatRetentionPolicy(cfg.settings.retentionPolicy), timeZone: systemTimeZone() }
            : { retention: cfg.settings.retention }),
          dir: cfg.settings.dir,
          compression: cfg.settings.encoding.compression,
          encryptedFor: cfg.settings.encoding.recipients.length,
        },
        'scheduled etcd snapshots enabled',
      );
    }
    addMetricsRoute(ctx, metrics);
    const listener = ctx.cfg.metricsListenAddress !== undefined ? await startMetricsListener(ctx.cfg.metricsListenAddress, metrics, ctx.logger) : undefined;
    ctx.onDrain(async (timeoutMs) => {
      scheduler?.stop();
      await drills.stop();
      await listener?.close();
      await service.drain(timeoutMs);
      await changelog?.stop();
      await notifier?.drain(NOTIFY_DRAIN_MS);
    });
  };
  feature.preflight = async () => {
    await new LocalStore(cfg.settings.dir).check(cfg.settings.dirIsDefault);
    if (cfg.s3) {
      try {
        (await openStore({ kind: 's3', settings: cfg.s3.settings })).close(); // validates the settings; no I/O
      } catch (err) {
        throw new EtcdsnapError(err instanceof EtcdsnapError ? err.kind : 'config', `failed to initialize S3 client: ${messageOf(err)}`, { cause: err });
      }
    }
  };
  return feature;
}
