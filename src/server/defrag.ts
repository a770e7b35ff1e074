/**
 * Defragmentation of every member of the cluster, one at a time (docs/upkeep.md).
 *
 * Contract:
 * - One defragmentation at a time in the cluster: the runner holds the lock key
 *   `/etcdsnap/upkeep/defrag/lock` (value: its node name) on a lease kept alive while it
 *   runs; another runner finds it held and gives up (`conflict`, naming the holder). When
 *   etcd refuses the lock (NOSPACE refuses leases and puts: defragmentation is part of the
 *   recovery) the runner goes on with a warning, one at a time in this process only.
 * - A scheduled run is taken once per tick across the cluster: under the lock, it skips a
 *   tick that `/etcdsnap/upkeep/defrag/last-tick` already reached, else records it.
 * - Members: every voting member of the member list, reached at its client URL (the server)
 *   or through the host's `--endpoints` (the agent), by `MemberClients`. Before each member
 *   the leader is asked again; followers go first (by name), the leader last
 *   (upkeep-plan.ts `nextToDefrag`). Each member is defragmented only while no snapshot
 *   streams from it (save-guard.ts). A member that cannot be reached or fails is reported
 *   with its error and the run goes on with the next.
 * - Each member's line logs its database size before and after (Maintenance.Status on its
 *   own endpoint) and the bytes reclaimed.
 */
import type { Lease } from 'etcd3';
import type { Logger } from '../log/logger.js';
import type { EtcdClient, EtcdMember } from '../etcd/client.js';
import { defragment } from '../etcd/maintenance.js';
import { EtcdsnapError, messageOf } from '../errors.js';
import type { DefragMemberResult, DefragResponse } from '../model/upkeep-api.js';
import { hexId } from './identity.js';
import type { SaveGuard } from './save-guard.js';
import { formatBytes, nextToDefrag } from './upkeep-plan.js';

export const LOCK_KEY = '/etcdsnap/upkeep/defrag/lock';
export const LAST_TICK_KEY = '/etcdsnap/upkeep/defrag/last-tick';
const LOCK_TTL_S = 15;
/** How long taking the lock may take before the run gives up (`unavailable`). */
const LOCK_TIMEOUT_MS = 10_000;

/** `p`, or a rejection naming `what` after `ms` (etcd3's lease grant takes no deadline). */
function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer from etcd in ${ms / 1000}s`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** Clients of the cluster's members by member ID (hex), connected once and kept. */
export class MemberClients {
  private readonly byEndpoint = new Map<string, Promise<EtcdClient>>();

  constructor(
    /** The endpoints to reach members at: given the member list, their URLs (server) or `--endpoints` (agent). */
    private readonly endpointsOf: (members: readonly EtcdMember[]) => readonly string[],
    private readonly connect: (endpoint: string) => Promise<EtcdClient>,
  ) {}

  private client(endpoint: string): Promise<EtcdClient> {
    let c = this.byEndpoint.get(endpoint);
    if (!c) {
      c = this.connect(endpoint);
      c.catch(() => this.byEndpoint.delete(endpoint));
      this.byEndpoint.set(endpoint, c);
    }
    return c;
  }

  /** Each reachable member's client, by hex member ID, and each endpoint's error. */
  async reach(members: readonly EtcdMember[]): Promise<{ clients: Map<string, EtcdClient>; errors: string[] }> {
    const clients = new Map<string, EtcdClient>();
    const errors: string[] = [];
    await Promise.all(
      this.endpointsOf(members).map(async (endpoint) => {
        try {
          const c = await this.client(endpoint);
          const s = await c.status(2000);
          clients.set(hexId(s.memberId), c);
        } catch (err) {
          errors.push(`${endpoint}: ${messageOf(err)}`);
        }
      }),
    );
    return { clients, errors };
  }

  close(): void {
    for (const c of this.byEndpoint.values()) void c.then((x) => x.close()).catch(() => undefined);
    this.byEndpoint.clear();
  }
}

export interface DefragRunnerOptions {
  /** The host's own client: member list, lock. */
  etcd: EtcdClient;
  members: MemberClients;
  guard: SaveGuard;
  nodeName: string;
  logger: Logger;
}

const isNospace = (err: unknown): boolean => messageOf(err).includes('database space exceeded');

export class DefragRunner {
  private running = false;

  constructor(private readonly o: DefragRunnerOptions) {}

  /** Defragments every member (see the contract); `tick`: a scheduled run's tick. Undefined: the tick was taken elsewhere. */
  async run(tick?: Date): Promise<DefragResponse | undefined> {
    if (this.running) throw new EtcdsnapError('conflict', 'a defragmentation is already running on this node');
    this.running = true;
    let lease: Lease | undefined;
    try {
      lease = await this.lock();
      if (tick && !(await this.claimTick(tick))) return undefined;
      return await this.all(tick);
    } finally {
      this.running = false;
      if (lease) await lease.revoke().catch(() => undefined);
    }
  }

  private async lock(): Promise<Lease | undefined> {
    const raw = this.o.etcd.kv;
    const lease = raw.lease(LOCK_TTL_S);
    lease.on('lost', () => undefined);
    try {
      const id = await withTimeout(lease.grant(), LOCK_TIMEOUT_MS, 'lease grant');
      const r = await raw
        .if(LOCK_KEY, 'Create', '==', 0)
        .then(raw.put(LOCK_KEY).value(this.o.nodeName).lease(id))
        .options({ deadline: Date.now() + LOCK_TIMEOUT_MS })
        .commit();
      if (r.succeeded) return lease;
      await lease.revoke().catch(() => undefined);
      const holder = await this.o.etcd.getValue(LOCK_KEY).catch(() => undefined);
      throw new EtcdsnapError('conflict', `a defragmentation is already running on ${holder ?? 'another node'}; try again when it is done`);
    } catch (err) {
      if (err instanceof EtcdsnapError) throw err;
      lease.release();
      if (!isNospace(err)) throw new EtcdsnapError('unavailable', `cannot take the defragmentation lock in etcd: ${messageOf(err)}`, { cause: err });
      this.o.logger.warn('etcd refuses the defragmentation lock (NOSPACE): defragmenting without it');
      return undefined;
    }
  }

  /** Whether this tick is still to do (recorded as done when it is); NOSPACE: yes, unrecorded. */
  private async claimTick(tick: Date): Promise<boolean> {
    const last = await this.o.etcd.getValue(LAST_TICK_KEY);
    if (last !== undefined && Date.parse(last) >= tick.getTime()) {
      this.o.logger.info({ tick: tick.toISOString() }, 'scheduled defragmentation of this tick was done by another node');
      return false;
    }
    await this.o.etcd.putValue(LAST_TICK_KEY, tick.toISOString()).catch((err: unknown) => {
      if (!isNospace(err)) throw err;
    });
    return true;
  }

  private async all(tick: Date | undefined): Promise<DefragResponse> {
    const log = this.o.logger;
    const voters = (await this.o.etcd.members()).filter((m) => !m.isLearner);
    const remaining = voters.map((m) => ({ id: hexId(m.id), name: m.name }));
    const results: DefragMemberResult[] = [];
    const started = Date.now();
    log.info(
      { members: remaining.length, ...(tick ? { tick: tick.toISOString() } : {}) },
      `defragmenting ${remaining.length} etcd members one at a time, followers first, the leader last`,
    );
    while (remaining.length > 0) {
      const { clients, errors } = await this.o.members.reach(voters);
      let leader: string | undefined;
      for (const c of clients.values()) {
        const s = await c.status(2000).catch(() => undefined);
        if (s && s.leader !== '0') leader = hexId(s.leader);
        if (leader) break;
      }
      const next = nextToDefrag(remaining, leader);
      if (!next) break;
      remaining.splice(remaining.indexOf(next), 1);
      const client = clients.get(next.id);
      const isLeader = next.id === leader;
      if (!client) {
        const error = `not reachable (${errors.join('; ') || 'no endpoint of this member answers'})`;
        log.error({ member: next.name, id: next.id }, `cannot defragment etcd member ${next.name} (${next.id}): ${error}`);
        results.push({ id: next.id, name: next.name, endpoint: '', leader: isLeader, error });
        continue;
      }
      results.push(await this.one(client, next, isLeader));
    }
    const reclaimed = results.reduce((sum, r) => sum + (r.before !== undefined && r.after !== undefined ? r.before - r.after : 0), 0);
    const failed = results.filter((r) => r.error !== undefined).length;
    log[failed > 0 ? 'warn' : 'info'](
      { reclaimedBytes: reclaimed, members: results.length, failed, seconds: (Date.now() - started) / 1000 },
      `defragmentation done: ${results.length - failed} of ${results.length} members, ${formatBytes(reclaimed)} reclaimed`,
    );
    return { node: this.o.nodeName, members: results };
  }

  private async one(client: EtcdClient, m: { id: string; name: string }, leader: boolean): Promise<DefragMemberResult> {
    const log = this.o.logger;
    const role = leader ? 'leader' : 'follower';
    try {
      return await this.o.guard.exclusive(
        m.id,
        client,
        async () => {
          const before = (await client.status(5000)).dbSize;
          const t0 = Date.now();
          await defragment(client);
          const seconds = (Date.now() - t0) / 1000;
          const after = (await client.status(5000)).dbSize;
          log.info(
            { member: m.name, id: m.id, endpoint: client.endpoint, role, beforeBytes: before, afterBytes: after, reclaimedBytes: before - after, seconds },
            `defragmented etcd member ${m.name} (${role}): ${formatBytes(before)} -> ${formatBytes(after)}, reclaimed ${formatBytes(before - after)} in ${seconds.toFixed(1)}s`,
          );
          return { id: m.id, name: m.name, endpoint: client.endpoint, leader, before, after, seconds };
        },
        (streams) =>
          log.info({ member: m.name, streams }, `defragmentation of etcd member ${m.name} waits for the snapshot streams it serves (${streams} open)`),
      );
    } catch (err) {
      log.error({ member: m.name, id: m.id, err: messageOf(err) }, `defragmentation of etcd member ${m.name} failed: ${messageOf(err)}`);
      return { id: m.id, name: m.name, endpoint: client.endpoint, leader, error: messageOf(err) };
    }
  }
}
