/**
 * Retention over any `SnapshotStore`: the newest `keep` snapshots of a prefix on this node are
 * kept, the rest deleted with their records. Only names of the naming scheme are candidates
 * (`planRetention`); other nodes' snapshots and foreign names never are.
 */
import { planRetention } from '../retention/policy.js';
import type { SnapshotStore } from '../store/store.js';

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
