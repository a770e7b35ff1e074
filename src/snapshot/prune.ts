/**
 * Retention over any `SnapshotStore`: the newest `keep` snapshots of a prefix on this node are
 * kept, the rest deleted with their records. Only names of the naming scheme are candidates
 * (`planRetention`); other nodes' snapshots and foreign names never are.
 */
import { planRetention } from '../retention/policy.js';
import type { SnapshotStore } from '../store/store.js';
import type { Logger } from '../log/logger.js';
import { EtcdsnapError } from '../errors.js';
import { assertSafePrefix } from '../model/naming.js';
import type { LocalStore } from '../store/local.js';
import { pruneEvent, timed, type SnapshotEvent, type SnapshotObserver } from './events.js';

/** Log hooks of `pruneStore`. */
export interface PruneHooks {
  /** The names retention selected, before anything is deleted. */
  onPlan?(remove: readonly string[]): void;
  /** Before each deletion. */
  onRemove?(name: string): void;
}

/**
 * Keeps the newest `keep` snapshots of `prefix` on this node in `store` (names of the naming
 * scheme only, `planRetention`); answers the names removed (that would be, with `dryRun`).
 */
export async function pruneStore(
  store: SnapshotStore,
  prefix: string,
  nodeName: string,
  keep: number,
  dryRun: boolean,
  hooks: PruneHooks = {},
): Promise<string[]> {
  const records = await store.list({ nodeName });
  const plan = planRetention(
    records.filter((r) => r.status === 'successful').map((r) => r.name),
    { prefix, nodeName, keep },
  );
  hooks.onPlan?.(plan.remove);
  if (!dryRun) {
    for (const name of plan.remove) {
      hooks.onRemove?.(name);
      await store.delete([name]);
    }
  }
  return plan.remove;
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
 * (`usage`) a prefix outside the naming scheme or a retention below 1.
 */
export function checkPrune(opts: { prefix: string; retention: number }): string {
  const prefix = assertSafePrefix(opts.prefix);
  if (!Number.isInteger(opts.retention) || opts.retention < 1) {
    throw new EtcdsnapError('usage', `invalid snapshot retention ${opts.retention}: keep at least 1`);
  }
  return prefix;
}

/**
 * Retention over the local folder `dir`, then over each replica with a retention > 0 (each by
 * its own count); one `prune` event per store (events.ts `pruneEvent`). Answers the local
 * names and the replicas' locations removed. `opts` is checked first (`checkPrune`).
 */
export async function pruneAll<R extends ReplicaRetention>(
  dir: LocalStore,
  opts: { prefix: string; retention: number; dryRun: boolean; replicas: readonly R[] },
  ctx: PruneContext<R>,
): Promise<string[]> {
  const prefix = checkPrune(opts);
  const { nodeName, logger, emit } = ctx;
  const event =
    (store: 'local' | 's3') =>
    (gone: string[] | undefined, seconds: number): SnapshotEvent | undefined =>
      pruneEvent(store, opts.dryRun, gone, seconds);
  const deleted = await timed(
    emit,
    () =>
      pruneStore(dir, prefix, nodeName, opts.retention, opts.dryRun, {
        onPlan: (remove) =>
          logger.info(
            { retention: opts.retention, prefix, dir: dir.dir, remove: remove.length, dryRun: opts.dryRun },
            `Applying snapshot retention=${opts.retention} to local snapshots with prefix ${prefix} in ${dir.dir}`,
          ),
        onRemove: (name) => logger.info({ snapshot: name }, `Removing local snapshot ${name}`),
      }),
    event('local'),
  );
  for (const o of opts.replicas.filter((r) => r.retention > 0)) {
    const store = await ctx.replicaStore(o);
    logger.info({ retention: o.retention, prefix }, `Applying snapshot retention=${o.retention} to snapshots stored in ${store.describe()} (this node only)`);
    const gone = await timed(emit, () => pruneStore(store, prefix, nodeName, o.retention, opts.dryRun), event('s3'));
    deleted.push(...gone.map((n) => store.location(n)));
  }
  return deleted;
}
