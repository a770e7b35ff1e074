/**
 * Retention over any `SnapshotStore`: count-based (the newest `keep` snapshots of a prefix on
 * this node are kept) or a time-bucket policy (`--etcd-snapshot-retention-policy`,
 * retention/buckets.ts, in the server's time zone, calendar.ts `systemTimeZone`); the rest
 * are deleted with their records. Only names of the naming scheme are candidates
 * (`planRetention`); other nodes' snapshots and foreign names never are. Every pass answers
 * its decisions (each snapshot kept or removed, with the reasons), dry run or not.
 */
import { planRetention, type RetentionPlan } from '../retention/policy.js';
import { systemTimeZone, zoneCalendar } from '../retention/calendar.js';
import type { SnapshotStore } from '../store/store.js';
import type { Logger } from '../log/logger.js';
import { EtcdsnapError } from '../errors.js';
import { assertSafePrefix } from '../model/naming.js';
import { formatRetentionPolicy, type BucketPolicy } from '../model/retention-policy.js';
import type { PruneDecision } from '../model/api.js';
import type { LocalStore } from '../store/local.js';
import { pruneEvent, timed, type SnapshotEvent, type SnapshotObserver } from './events.js';

/** What a pass keeps: a count (`--etcd-snapshot-retention`, `--etcd-s3-retention`) or a time-bucket policy. */
export type Keep = number | BucketPolicy;

/** `keep` for a log line: `retention=5` or `retention policy last=3,daily=7 (time zone UTC)`. */
export function describeKeep(keep: Keep): string {
  return typeof keep === 'number' ? `retention=${keep}` : `retention policy ${formatRetentionPolicy(keep)} (time zone ${systemTimeZone()})`;
}

/** Names deleted per `SnapshotStore.delete` call by a retention pass. */
const DELETE_BATCH = 100;

/** Log hooks of `pruneStore`. */
export interface PruneHooks {
  /** The names retention selected, before anything is deleted. */
  onPlan?(remove: readonly string[]): void;
  /** Before each deletion. */
  onRemove?(name: string): void;
}

/**
 * Applies `keep` to the snapshots of `prefix` on this node in `store` (names of the naming
 * scheme only, `planRetention`; failed records are never candidates); answers the plan, whose
 * `remove` was deleted (would be, with `dryRun`).
 */
export async function pruneStore(
  store: SnapshotStore,
  prefix: string,
  nodeName: string,
  keep: Keep,
  dryRun: boolean,
  hooks: PruneHooks = {},
): Promise<RetentionPlan> {
  const records = await store.list({ nodeName });
  const names = records.filter((r) => r.status === 'successful').map((r) => r.name);
  const plan =
    typeof keep === 'number'
      ? planRetention(names, { prefix, nodeName, keep })
      : planRetention(names, { prefix, nodeName, keep: 0, buckets: keep, calendar: zoneCalendar(systemTimeZone()) });
  hooks.onPlan?.(plan.remove);
  if (!dryRun) {
    // in batches: a policy can remove hundreds at once (one S3 DeleteObjects per batch)
    for (let i = 0; i < plan.remove.length; i += DELETE_BATCH) {
      const batch = plan.remove.slice(i, i + DELETE_BATCH);
      for (const name of batch) hooks.onRemove?.(name);
      await store.delete(batch);
    }
  }
  return plan;
}

/** A plan's decisions as the API answers them (model/api.ts `PruneDecision`). */
export function pruneDecisions(store: SnapshotStore, kind: PruneDecision['store'], plan: RetentionPlan): PruneDecision[] {
  return plan.decisions.map((d) => ({
    store: kind,
    name: d.name,
    location: store.location(d.name),
    time: new Date(d.time * 1000).toISOString().replace('.000Z', 'Z'),
    localTime: d.localTime,
    keep: d.keep,
    reasons: d.reasons,
  }));
}

/** What `pruneAll` needs of the service. */
export interface PruneContext<R> {
  nodeName: string;
  logger: Logger;
  emit: SnapshotObserver;
  /** The store of a replica's settings (built lazily by the service). */
  replicaStore(o: R): Promise<SnapshotStore>;
}

/** A replica to prune: its own retention (0: not pruned). */
export interface ReplicaRetention {
  retention: number;
}

/**
 * Checks a prune request before anything is touched: answers its prefix, or refuses
 * (`usage`) a prefix outside the naming scheme or, without a policy, a retention below 1.
 */
export function checkPrune(opts: { prefix: string; retention: number; policy?: BucketPolicy }): string {
  const prefix = assertSafePrefix(opts.prefix);
  if (opts.policy === undefined && (!Number.isInteger(opts.retention) || opts.retention < 1)) {
    throw new EtcdsnapError('usage', `invalid snapshot retention ${opts.retention}: keep at least 1`);
  }
  return prefix;
}

/** What `pruneAll` answers: the removed names (local) and locations (replicas), and every decision. */
export interface PruneOutcome {
  deleted: string[];
  decisions: PruneDecision[];
}

/**
 * Retention over the local folder `dir`, then over each replica: by `opts.policy` when given
 * (every replica too), else by the count (`opts.retention` locally, each replica with a
 * retention > 0 by its own); one `prune` event per store (events.ts `pruneEvent`). Answers
 * the local names and the replicas' locations removed, and each store's decisions. `opts`
 * is checked first (`checkPrune`).
 */
export async function pruneAll<R extends ReplicaRetention>(
  dir: LocalStore,
  opts: { prefix: string; retention: number; policy?: BucketPolicy; dryRun: boolean; replicas: readonly R[] },
  ctx: PruneContext<R>,
): Promise<PruneOutcome> {
  const prefix = checkPrune(opts);
  const { nodeName, logger, emit } = ctx;
  const event =
    (store: 'local' | 's3') =>
    (plan: RetentionPlan | undefined, seconds: number): SnapshotEvent | undefined =>
      pruneEvent(store, opts.dryRun, plan?.remove, seconds);
  const local: Keep = opts.policy ?? opts.retention;
  const plan = await timed(
    emit,
    () =>
      pruneStore(dir, prefix, nodeName, local, opts.dryRun, {
        onPlan: (remove) =>
          logger.info(
            {
              ...(opts.policy ? { policy: formatRetentionPolicy(opts.policy), timeZone: systemTimeZone() } : { retention: opts.retention }),
              prefix,
              dir: dir.dir,
              remove: remove.length,
              dryRun: opts.dryRun,
            },
            `Applying snapshot ${describeKeep(local)} to local snapshots with prefix ${prefix} in ${dir.dir}`,
          ),
        onRemove: (name) => logger.info({ snapshot: name }, `Removing local snapshot ${name}`),
      }),
    event('local'),
  );
  const deleted = [...plan.remove];
  const decisions = pruneDecisions(dir, 'local', plan);
  for (const o of opts.replicas.filter((r) => opts.policy !== undefined || r.retention > 0)) {
    const store = await ctx.replicaStore(o);
    const keep: Keep = opts.policy ?? o.retention;
    logger.info(
      { ...(opts.policy ? { policy: formatRetentionPolicy(opts.policy) } : { retention: o.retention }), prefix },
      `Applying snapshot ${describeKeep(keep)} to snapshots stored in ${store.describe()} (this node only)`,
    );
    const gone = await timed(emit, () => pruneStore(store, prefix, nodeName, keep, opts.dryRun), event('s3'));
    deleted.push(...gone.remove.map((n) => store.location(n)));
    decisions.push(...pruneDecisions(store, 's3', gone));
  }
  return { deleted, decisions };
}
