/**
 * The seam for several agents backing up one cluster (docs/agent.md "Several agents"):
 * before each scheduled snapshot the scheduler asks `isActive(tick)`, and a passive agent
 * skips the tick (logged at debug level). On-demand saves (`etcd-snapshot save` against one
 * agent's API) are never asked: the caller chose that agent, and each request makes one.
 *
 * The server passes none (it is always active). The agent's implementation
 * (agent-election.ts) holds an etcd-lease term and claims each tick exactly once per
 * agent group; it also takes a tick missed while no agent was active, through the
 * function the snapshot feature hands to `onMissedTick`.
 */
export interface Leadership {
  /**
   * Whether this process takes the scheduled snapshot of `tick` (its scheduled time) now.
   * True at most once per tick across the processes sharing this leadership; a rejection
   * (etcd could not be asked) is the tick's failure.
   */
  isActive(tick: Date): boolean | Promise<boolean>;
  /**
   * Registers how a missed tick is taken (the scheduled save, which asks `isActive(tick)`
   * first); called once by the snapshot feature at start. Absent: nothing is ever missed.
   */
  onMissedTick?(take: (tick: Date) => void): void;
  /** Whether this process is the active one now (the `etcdsnap_agent_active` gauge); absent: no gauge. */
  activeNow?(): boolean;
}
