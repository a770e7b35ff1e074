/**
 * The seam for several agents backing up one cluster (issue 17, part 2): before each
 * scheduled snapshot the scheduler asks `isActive()`, and a passive agent skips the tick
 * (logged at debug level). On-demand saves (`etcd-snapshot save` against one agent's API)
 * are not asked: the caller chose that agent.
 *
 * Today every agent is active (`ALWAYS_ACTIVE`): run one agent per cluster. The election
 * (an etcd lease and key, `src/etcd/election.ts`, being built separately) will implement
 * this interface and be handed to `snapshotFeature` by the agent; nothing else changes.
 */
export interface Leadership {
  /** Whether this process should take the scheduled snapshot now. */
  isActive(): boolean | Promise<boolean>;
}

/** The only implementation until the election lands: always active. */
export const ALWAYS_ACTIVE: Leadership = { isActive: () => true };
