/**
 * The server's Prometheus metrics (docs/metrics.md): snapshot outcomes from the snapshot
 * layer's events (snapshot/events.ts), and state read when scraped.
 *
 * Contract:
 * - One registry per server (never prom-client's global one), with prom-client's default
 *   process and Node.js metrics under their standard names (`process_*`, `nodejs_*`), less
 *   the three gauges it names `*_total` (refused by `promtool check metrics`).
 * - `observe` is the `SnapshotObserver` given to `SnapshotService`; it only updates
 *   in-memory metrics and never throws.
 * - `start()` reads the snapshot folder's records once, so that the last-success gauges
 *   survive a restart (local: the newest successful snapshot; s3: the newest whose replica
 *   state is `successful`). Later successes only move them forward in time.
 * - `scrape()` reads, before it renders: the snapshot folder's records (snapshot counts,
 *   no S3 request), the restore record (`db/last-restore.json`, written by a
 *   `--cluster-reset` in another process) and etcd's status with a short timeout. A failing
 *   etcd gives `etcdsnap_etcd_member_healthy 0` (and leader gauges 0, sizes as last seen);
 *   a scrape never fails because of etcd, the folder or the record.
 * - `etcdsnap_snapshot_next_scheduled_timestamp_seconds` exists only when `nextRun` is
 *   given (scheduled snapshots enabled).
 * - Other features add gauges to `registry` and a scrape hook that sets them
 *   (`addScrapeHook`; the change log's, changelog-routes.ts); a failing hook leaves them as they were.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { EtcdClient } from '../etcd/client.js';
import type { SnapshotEvent } from '../snapshot/events.js';
import { replicaState } from '../snapshot/replica-state.js';
import { LocalStore } from '../store/local.js';
import type { SnapshotRecord } from '../model/records.js';
import { readRestoreRecord } from './identity.js';
import type { ServerPaths } from './config.js';

/** etcd's default `--quota-backend-bytes` (2 GiB). */
export const DEFAULT_QUOTA_BACKEND_BYTES = 2 * 1024 ** 3;

/** The quota an `--etcd-arg quota-backend-bytes=N` sets, else etcd's default. */
export function quotaBackendBytes(etcdArgs: readonly string[]): number {
  let quota = DEFAULT_QUOTA_BACKEND_BYTES;
  for (const a of etcdArgs) {
    const m = /^quota-backend-bytes=(\d+)$/.exec(a.replace(/^--?/, ''));
    const n = Number(m?.[1] ?? Number.NaN);
    if (Number.isSafeInteger(n) && n > 0) quota = n;
  }
  return quota;
}

export interface MetricsOptions {
  etcd: EtcdClient;
  paths: ServerPaths;
  /** The configured snapshot folder, counted at scrape time. */
  snapshotDir: string;
  nodeName: string;
  /** etcd's backend quota in bytes (`quotaBackendBytes`). */
  quotaBytes: number;
  /** Timeout of etcd's status call at scrape time; default 1000 ms. */
  etcdTimeoutMs?: number;
}

const SAVE_BUCKETS = [0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800];
const PRUNE_BUCKETS = [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60];
const STORES = ['local', 's3'] as const;
const LINT_FAILING_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];
type StoreLabel = (typeof STORES)[number];

const seconds = (iso: string): number => Date.parse(iso) / 1000;

export class ServerMetrics {
  readonly registry = new Registry();
  private readonly saveDuration: Histogram<'trigger' | 'result'>;
  private readonly uploadAttempts: Counter<'store' | 'result'>;
  private readonly uploadFailures: Counter<'store'>;
  private readonly uploadDuration: Histogram<'store' | 'result'>;
  private readonly pruneDuration: Histogram<'store' | 'result'>;
  private readonly pruned: Counter<'store'>;
  private readonly lastSuccess: Gauge<'store'>;
  private readonly lastSize: Gauge<'store'>;
  private readonly kept: Gauge<'store'>;
  private readonly restoreTime: Gauge;
  private readonly drillDuration: Histogram<'result'>;
  private readonly drillLast: Gauge;
  private readonly drillLastTime: Gauge;
  private readonly drillLastSuccess: Gauge;
  private readonly etcd: Record<'dbSize' | 'dbInUse' | 'hasLeader' | 'isLeader' | 'healthy', Gauge>;
  private restoreRegistered = false;
  private readonly hooks: Array<() => Promise<void>> = [];
  /** Last success per store (unix seconds), so that an older success never moves it back. */
  private readonly newest = new Map<StoreLabel, number>();

  constructor(private readonly opts: MetricsOptions) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    // gauges that prom-client names *_total, which Prometheus's lint refuses (promtool
    // check metrics); the same counts are in nodejs_active_handles, _requests, _resources
    for (const n of LINT_FAILING_DEFAULTS) this.registry.removeSingleMetric(n);
    const g = (name: string, help: string): Gauge => new Gauge({ name, help, registers });
    this.saveDuration = new Histogram({
      name: 'etcdsnap_snapshot_save_duration_seconds',
      help: 'Duration of snapshot saves, by trigger (scheduled or on-demand) and result.',
      labelNames: ['trigger', 'result'],
      buckets: SAVE_BUCKETS,
      registers,
    });
    this.drillDuration = new Histogram({
      name: 'etcdsnap_drill_duration_seconds',
      help: 'Duration of restore drills (docs/drills.md), by result (success: passed, failure: failed).',
      labelNames: ['result'],
      buckets: SAVE_BUCKETS,
      registers,
    });
    this.drillLast = g(
      'etcdsnap_drill_last_result',
      'Result of the last restore drill in this process: 1 passed, 0 failed or none yet (etcdsnap_drill_last_timestamp_seconds is 0 until the first).',
    );
    this.drillLastTime = g('etcdsnap_drill_last_timestamp_seconds', 'Time (unix seconds) the last restore drill in this process ended.');
    this.drillLastSuccess = g('etcdsnap_drill_last_success_timestamp_seconds', 'Time (unix seconds) the last passed restore drill in this process ended.');
    this.uploadAttempts = new Counter({
      name: 'etcdsnap_snapshot_upload_attempts_total',
      help: 'Snapshot upload attempts to a replica store (the first in the save, then retries), by store and result.',
      labelNames: ['store', 'result'],
      registers,
    });
    this.uploadFailures = new Counter({
      name: 'etcdsnap_snapshot_upload_failures_total',
      help: 'Snapshot uploads given up in this process (the last attempt failed and no retry is queued), by store.',
      labelNames: ['store'],
      registers,
    });
    this.uploadDuration = new Histogram({
      name: 'etcdsnap_snapshot_upload_retry_duration_seconds',
      help: 'Duration of snapshot upload retries, by store and result (the first upload runs inside the save).',
      labelNames: ['store', 'result'],
      buckets: SAVE_BUCKETS,
      registers,
    });
    this.pruneDuration = new Histogram({
      name: 'etcdsnap_snapshot_prune_duration_seconds',
      help: 'Duration of snapshot retention passes (not dry runs), by store and result.',
      labelNames: ['store', 'result'],
      buckets: PRUNE_BUCKETS,
      registers,
    });
    this.pruned = new Counter({
      name: 'etcdsnap_snapshot_pruned_total',
      help: 'Snapshots deleted by retention, by store.',
      labelNames: ['store'],
      registers,
    });
    this.lastSuccess = new Gauge({
      name: 'etcdsnap_snapshot_last_success_timestamp_seconds',
      help: 'Creation time (unix seconds) of the newest snapshot stored successfully, by store.',
      labelNames: ['store'],
      registers,
    });
    this.lastSize = new Gauge({
      name: 'etcdsnap_snapshot_last_success_size_bytes',
      help: 'Stored size of the newest snapshot stored successfully, by store.',
      labelNames: ['store'],
      registers,
    });
    this.kept = new Gauge({
      name: 'etcdsnap_snapshots',
      help: "Snapshots kept, by store: local in the snapshot folder; s3 as the local records' replica state says (no S3 request).",
      labelNames: ['store'],
      registers,
    });
    this.restoreTime = new Gauge({
      name: 'etcdsnap_restore_last_timestamp_seconds',
      help: 'Time (unix seconds) of the last restore of this cluster (--cluster-reset-restore-path), from its restore record.',
      registers: [],
    });
    new Gauge({ name: 'etcdsnap_etcd_quota_backend_bytes', help: "etcd's backend quota (--quota-backend-bytes).", registers }).set(opts.quotaBytes);
    this.etcd = {
      dbSize: g('etcdsnap_etcd_db_size_bytes', "Size of this member's etcd database file."),
      dbInUse: g('etcdsnap_etcd_db_size_in_use_bytes', "Bytes of this member's etcd database logically in use."),
      hasLeader: g('etcdsnap_etcd_has_leader', 'Whether this etcd member knows a leader (1) or not (0).'),
      isLeader: g('etcdsnap_etcd_is_leader', 'Whether this etcd member is the leader (1) or not (0).'),
      healthy: g('etcdsnap_etcd_member_healthy', 'Whether this etcd member answered its status call at the last scrape (1) or not (0).'),
    };
    // series that exist from the start, so that rate() and increase() see their first change
    for (const store of STORES) this.pruned.inc({ store }, 0);
    for (const result of ['success', 'failure']) this.uploadAttempts.inc({ store: 's3', result }, 0);
    this.uploadFailures.inc({ store: 's3' }, 0);
  }

  /** Adds the next-run gauge (scheduled snapshots enabled). */
  setSchedule(nextRun: () => Date | null): void {
    new Gauge({
      name: 'etcdsnap_snapshot_next_scheduled_timestamp_seconds',
      help: 'Time (unix seconds) of the next scheduled snapshot.',
      registers: [this.registry],
      collect() {
        const next = nextRun();
        if (next) this.set(next.getTime() / 1000);
      },
    });
  }

  /** Runs `hook` before each scrape renders (it sets gauges it registered; a failure is ignored). */
  addScrapeHook(hook: () => Promise<void>): void {
    this.hooks.push(hook);
  }

  /** The observer for `SnapshotService` (see the contract). */
  readonly observe = (e: SnapshotEvent): void => {
    switch (e.kind) {
      case 'save':
        this.saveDuration.observe({ trigger: e.scheduled ? 'scheduled' : 'on-demand', result: e.result }, e.seconds);
        if (e.result === 'success') this.success('local', e.createdAt, e.bytes);
        return;
      case 'upload':
        this.uploadAttempts.inc({ store: e.store, result: e.result });
        if (e.seconds !== undefined) this.uploadDuration.observe({ store: e.store, result: e.result }, e.seconds);
        if (e.result === 'failure' && e.final) this.uploadFailures.inc({ store: e.store });
        if (e.result === 'success') this.success(e.store, e.createdAt, e.bytes);
        return;
      case 'prune':
        this.pruneDuration.observe({ store: e.store, result: e.result }, e.seconds);
        this.pruned.inc({ store: e.store }, e.deleted);
        return;
      case 'drill': {
        const now = Date.now() / 1000;
        this.drillDuration.observe({ result: e.result }, e.seconds);
        this.drillLast.set(e.result === 'success' ? 1 : 0);
        this.drillLastTime.set(now);
        if (e.result === 'success') this.drillLastSuccess.set(now);
        return;
      }
    }
  };

  private success(store: StoreLabel, createdAt: string | undefined, bytes: number | undefined): void {
    const at = createdAt !== undefined ? seconds(createdAt) : Number.NaN;
    if (!Number.isFinite(at) || at < (this.newest.get(store) ?? 0)) return;
    this.newest.set(store, at);
    this.lastSuccess.set({ store }, at);
    if (bytes !== undefined) this.lastSize.set({ store }, bytes);
  }

  private async records(): Promise<SnapshotRecord[]> {
    try {
      return await new LocalStore(this.opts.snapshotDir).list({ nodeName: this.opts.nodeName });
    } catch {
      return [];
    }
  }

  /** Sets the last-success gauges from the snapshot folder's records (see the contract). */
  async start(): Promise<void> {
    for (const r of await this.records()) {
      if (r.status !== 'successful') continue;
      this.success('local', r.createdAt, r.size);
      if (replicaState(r)?.status === 'successful') this.success('s3', r.createdAt, r.size);
    }
  }

  /** The exposition text (`registry.contentType`), state read first (see the contract). */
  async scrape(): Promise<string> {
    const [records] = await Promise.all([this.records(), this.readEtcd(), this.readRestore(), ...this.hooks.map((h) => h().catch(() => undefined))]);
    const ok = records.filter((r) => r.status === 'successful');
    this.kept.set({ store: 'local' }, ok.length);
    this.kept.set({ store: 's3' }, ok.filter((r) => replicaState(r)?.status === 'successful').length);
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  private async readEtcd(): Promise<void> {
    const g = this.etcd;
    try {
      const s = await this.opts.etcd.status(this.opts.etcdTimeoutMs ?? 1000);
      g.dbSize.set(s.dbSize);
      if (s.dbSizeInUse !== undefined) g.dbInUse.set(s.dbSizeInUse);
      g.hasLeader.set(s.leader !== '0' && s.leader !== '' ? 1 : 0);
      g.isLeader.set(s.leader === s.memberId ? 1 : 0);
      g.healthy.set(1);
    } catch {
      g.hasLeader.set(0);
      g.isLeader.set(0);
      g.healthy.set(0);
    }
  }

  private async readRestore(): Promise<void> {
    const rec = await readRestoreRecord(this.opts.paths).catch(() => undefined);
    const at = rec ? seconds(rec.restoredAt) : Number.NaN;
    if (!Number.isFinite(at)) return;
    this.restoreTime.set(at);
    if (!this.restoreRegistered) this.registry.registerMetric(this.restoreTime);
    this.restoreRegistered = true;
  }
}
