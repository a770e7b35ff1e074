/**
 * Several agents, one backup (docs/agent.md "Several agents"): the agent's `Leadership`.
 *
 * Contract:
 * - Every agent of group `group` (`--election-name`) campaigns (etcd/election.ts) on
 *   `/etcdsnap/agent/<group>/active` with its `--node-name` as the value (unique per agent:
 *   an agent treats a key holding its own name as its previous incarnation) and a lease of
 *   `ttlSeconds` (`--election-ttl`). `isActive(tick)` is true only while this agent holds a
 *   live term and only after it claimed `tick`.
 * - A claim writes the group's tick marker `/etcdsnap/agent/<group>/last-tick` (agent-ticks.ts)
 *   through `Term.putIfLeader` with a compare on the marker's mod revision: it succeeds only
 *   while the term lasts and only when no other claim came since the marker was read, and
 *   only a tick newer than the marker's is claimed. So each tick is claimed at most once per
 *   group, whatever the agents believe; a save already running when its agent lost its term
 *   was claimed while it held it and is that tick's snapshot.
 * - When elected, an agent takes the newest tick missed while no agent was active (newer
 *   than the marker, not older than `lookbackMs`: two lease TTLs plus 10 s, covering the
 *   dead agent's lease and the scheduler's jitter), through the snapshot feature's
 *   scheduled save (`onMissedTick`), which claims it like any tick.
 * - Logged: "this agent is now the active one", "standing by, <node> is active" (when the
 *   holder this agent saw changes), each claim, a lost term. `GET /v1/agent/election`
 *   (token) answers `AgentElectionStatus`; the gauge `etcdsnap_agent_active` is 1 while
 *   this agent holds a term (`activeNow`).
 * - The election runs from the feature's start (`feature()`, after the snapshot feature)
 *   until the drain, where the active agent resigns (its lease revoked: another takes over
 *   at once).
 */
import type { Logger } from '../log/logger.js';
import { messageOf } from '../errors.js';
import type { EtcdClient } from '../etcd/client.js';
import { Election, electionHolder, type Term } from '../etcd/election.js';
import { formatMarker, missedTick, parseMarker, shouldClaim, type TickMarker } from './agent-ticks.js';
import type { HostFeature } from './feature.js';
import type { Leadership } from './leadership.js';
import type { Schedule } from './schedule.js';

/** The etcd keys of agent group `group`. */
export function agentElectionKeys(group: string): { active: string; lastTick: string } {
  return { active: `/etcdsnap/agent/${group}/active`, lastTick: `/etcdsnap/agent/${group}/last-tick` };
}

export interface AgentElectionOptions {
  group: string;
  nodeName: string;
  ttlSeconds: number;
  schedule: Schedule;
  logger: Logger;
}

/** The answer of `GET /v1/agent/election`. */
export interface AgentElectionStatus {
  group: string;
  node: string;
  active: boolean;
  /** The node that holds the election key now, if any. */
  holder?: string;
  /** The newest claimed tick (ISO) and its node. */
  lastTick?: { tick: string; node: string };
}

export class AgentLeadership implements Leadership {
  private readonly keys: { active: string; lastTick: string };
  private term: Term | undefined;
  private etcd: EtcdClient | undefined;
  private take: ((tick: Date) => void) | undefined;
  private seenHolder: string | undefined;

  constructor(private readonly o: AgentElectionOptions) {
    this.keys = agentElectionKeys(o.group);
  }

  /** How far back a newly active agent looks for a missed tick (see the contract). */
  get lookbackMs(): number {
    return 2 * this.o.ttlSeconds * 1000 + 10_000;
  }

  onMissedTick(take: (tick: Date) => void): void {
    this.take = take;
  }

  activeNow(): boolean {
    return this.term !== undefined && !this.term.signal.aborted;
  }

  async isActive(tick: Date): Promise<boolean> {
    const term = this.term;
    const etcd = this.etcd;
    if (!term || term.signal.aborted || !etcd) {
      await this.reportHolder();
      return false;
    }
    const iso = tick.toISOString();
    const { marker, modRevision } = await this.readMarker(etcd);
    if (!shouldClaim(tick.getTime(), marker)) {
      this.o.logger.info({ tick: iso, by: marker?.node }, `not taking tick ${iso}: ${marker?.node} already took it`);
      return false;
    }
    const revision = await term.putIfLeader(this.keys.lastTick, formatMarker({ tick: tick.getTime(), node: this.o.nodeName }), modRevision);
    if (revision === undefined) {
      this.o.logger.info({ tick: iso }, `not taking tick ${iso}: this agent's term ended or another claim came first`);
      return false;
    }
    this.o.logger.info({ tick: iso, revision, group: this.o.group }, `taking the scheduled snapshot of tick ${iso}`);
    return true;
  }

  /** Starts campaigning with the host's etcd client; resigns at the drain. */
  feature(): HostFeature {
    return (ctx) => {
      this.etcd = ctx.etcd;
      const election = new Election({
        etcd: ctx.etcd,
        key: this.keys.active,
        value: this.o.nodeName,
        ttlSeconds: this.o.ttlSeconds,
        logger: this.o.logger,
        onElected: (term) => this.elected(term),
        onLost: (_term, why) => {
          this.term = undefined;
          this.o.logger.warn({ group: this.o.group }, `this agent is no longer the active one (${why}); campaigning again`);
        },
      });
      ctx.addRoute({ method: 'GET', path: '/v1/agent/election', handle: async () => ({ status: 200, body: await this.status() }) });
      election.start();
      this.o.logger.info(
        { group: this.o.group, key: this.keys.active, node: this.o.nodeName, leaseTtl: this.o.ttlSeconds },
        `campaigning to be the active agent of group ${this.o.group} (--election-name)`,
      );
      void this.reportHolder();
      ctx.onDrain(async () => {
        this.term = undefined;
        await election.stop();
      });
    };
  }

  /** What `GET /v1/agent/election` answers. */
  async status(): Promise<AgentElectionStatus> {
    const out: AgentElectionStatus = { group: this.o.group, node: this.o.nodeName, active: this.activeNow() };
    if (!this.etcd) return out;
    const holder = await electionHolder(this.etcd, this.keys.active);
    const { marker } = await this.readMarker(this.etcd);
    return {
      ...out,
      ...(holder ? { holder: holder.value } : {}),
      ...(marker ? { lastTick: { tick: new Date(marker.tick).toISOString(), node: marker.node } } : {}),
    };
  }

  private elected(term: Term): void {
    this.term = term;
    this.seenHolder = this.o.nodeName;
    this.o.logger.info({ group: this.o.group, node: this.o.nodeName, revision: term.createRevision }, 'this agent is now the active one');
    void this.catchUp(term);
  }

  /** Takes the newest tick missed while no agent was active, if any. */
  private async catchUp(term: Term): Promise<void> {
    const etcd = this.etcd;
    if (!etcd || !this.take) return;
    try {
      const { marker } = await this.readMarker(etcd);
      const tick = missedTick(this.o.schedule, marker, Date.now(), this.lookbackMs);
      if (tick === undefined || term.signal.aborted) return;
      const iso = new Date(tick).toISOString();
      this.o.logger.info({ tick: iso, last: marker ? new Date(marker.tick).toISOString() : undefined }, `tick ${iso} was missed while no agent was active`);
      this.take(new Date(tick));
    } catch (err) {
      this.o.logger.warn({ err: messageOf(err) }, `could not look for a missed tick: ${messageOf(err)}`);
    }
  }

  /** Logs "standing by, <node> is active" when the holder changed since last seen. */
  private async reportHolder(): Promise<void> {
    if (!this.etcd) return;
    try {
      const h = await electionHolder(this.etcd, this.keys.active);
      if (!h || h.value === this.o.nodeName || h.value === this.seenHolder || this.term) return;
      this.seenHolder = h.value;
      this.o.logger.info({ group: this.o.group, active: h.value }, `standing by, ${h.value} is active`);
    } catch (err) {
      this.o.logger.debug({ err: messageOf(err) }, `could not read the active agent: ${messageOf(err)}`);
    }
  }

  private async readMarker(etcd: EtcdClient): Promise<{ marker: TickMarker | undefined; modRevision: number }> {
    const page = await etcd.rangePage(Buffer.from(this.keys.lastTick), undefined, undefined, 1, 5000);
    const kv = page.kvs[0];
    return { marker: parseMarker(kv?.value.toString('utf8')), modRevision: kv ? Number(kv.modRevision) : 0 };
  }
}
