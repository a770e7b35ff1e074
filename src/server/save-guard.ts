/**
 * Keeps snapshot streams and defragmentations of the same etcd member apart, across every
 * server and agent of the cluster (docs/upkeep.md "Saves and defragmentation"): a member
 * being defragmented blocks its reads, and a defragmentation started under a running
 * snapshot stream would block the member until the stream ends.
 *
 * Contract:
 * - A save writes nothing to etcd (a snapshot holds exactly what the cluster held). Before
 *   it opens a stream from member M it reads `/etcdsnap/upkeep/defragmenting/<M>` and waits
 *   while a live lease holds it (a defragmentation is short); a marker no lease holds (put
 *   back by restore-keys or a change log replay) is not live and is ignored.
 * - A defragmentation of M (`exclusive`) puts that marker on a lease that dies with its
 *   process, keeps it while it waits for the snapshot streams M serves to end, then
 *   defragments and removes it. The streams are etcd's own count (gRPC's started minus
 *   handled Maintenance.Snapshot calls in M's `/metrics`, etcd/maintenance.ts), so a stream
 *   of any client (etcdctl's, another tool's, another etcdsnap's) is waited for. A stream
 *   open for longer than `STREAM_WAIT_MS` fails that member's defragmentation.
 * - The window left: a save that read no marker just before a defragmentation's marker was
 *   put, and opened its stream after the defragmentation read the count, streams while the
 *   member defragments: etcd serializes the two (the stream waits), nothing is lost.
 * - etcd refusing the marker (NOSPACE refuses leases and puts), not answering within 2 s, or
 *   a member whose metrics cannot be read never stops a save nor a defragmentation (both
 *   are what recovers from NOSPACE; a save fails over to another member): they go on, with
 *   a debug line.
 * - Until `bind` is called (the upkeep feature's start), the guard lets everything through.
 */
import type { Etcd3, Lease } from 'etcd3';
import type { Logger } from '../log/logger.js';
import type { EtcdClient } from '../etcd/client.js';
import { snapshotsInFlight } from '../etcd/maintenance.js';
import type { SnapshotCandidate, SnapshotSource } from '../etcd/members.js';
import { messageOf } from '../errors.js';
import { hexId } from './identity.js';
import { sleep } from './host.js';

export const DEFRAG_PREFIX = '/etcdsnap/upkeep/defragmenting/';
const LEASE_TTL_S = 15;
const POLL_MS = 250;
/** How long a save or a defragmentation waits for etcd to answer about markers before going on without. */
const TIMEOUT_MS = 2000;
/** How long a defragmentation waits for the snapshot streams of its member to end. */
export const STREAM_WAIT_MS = 10 * 60_000;

export class SaveGuard {
  private etcd: Etcd3 | undefined;
  private node = '';
  private logger: Logger | undefined;

  bind(etcd: EtcdClient, node: string, logger: Logger): void {
    this.etcd = etcd.kv;
    this.node = node;
    this.logger = logger;
  }

  /** `source` whose members' streams wait while their member is being defragmented (see the contract). */
  wrap(source: SnapshotSource): SnapshotSource {
    return { candidates: async () => (await source.candidates()).map((c) => this.guarded(c)) };
  }

  private guarded(c: SnapshotCandidate): SnapshotCandidate {
    const m = c.member;
    const member = hexId(c.status.memberId);
    return {
      status: c.status,
      member: {
        endpoint: m.endpoint,
        status: (t) => m.status(t),
        snapshotStream: async () => {
          await this.waitWhileDefragmenting(member);
          return m.snapshotStream();
        },
      },
    };
  }

  /** The save side: read-only, waits while a live marker says `member` is being defragmented. */
  private async waitWhileDefragmenting(member: string): Promise<void> {
    try {
      let logged = false;
      while (await this.live(`${DEFRAG_PREFIX}${member}`)) {
        if (!logged) this.logger?.info({ member }, `snapshot waits for the defragmentation of etcd member ${member} to finish`);
        logged = true;
        await sleep(POLL_MS);
      }
    } catch (err) {
      this.logger?.debug({ err: messageOf(err) }, 'could not read the defragmentation marker; streaming anyway');
    }
  }

  /** Whether a live lease holds `key` (read-only). */
  private async live(key: string): Promise<boolean> {
    const etcd = this.etcd;
    if (!etcd) return false;
    const deadline = (): { deadline: number } => ({ deadline: Date.now() + TIMEOUT_MS });
    const kv = (await etcd.get(key).options(deadline()).exec()).kvs[0];
    if (kv === undefined || String(kv.lease) === '0') return false;
    return Number((await etcd.leaseClient.leaseTimeToLive({ ID: String(kv.lease) }, deadline())).TTL) > 0;
  }

  /**
   * The defragmentation side: runs `fn` once member `member` (hex ID), which `client` talks
   * to, serves no snapshot stream; `onWait` is told once, with the number of streams, when
   * it has to wait.
   */
  async exclusive<T>(member: string, client: EtcdClient, fn: () => Promise<T>, onWait?: (streams: number) => void): Promise<T> {
    const release = await this.mark(`${DEFRAG_PREFIX}${member}`);
    try {
      const deadline = Date.now() + STREAM_WAIT_MS;
      let told = false;
      for (;;) {
        let streams: number;
        try {
          streams = await snapshotsInFlight(client, TIMEOUT_MS);
        } catch (err) {
          this.logger?.debug({ member, err: messageOf(err) }, 'could not read the member snapshot streams; defragmenting anyway');
          break;
        }
        if (streams === 0) break;
        if (Date.now() > deadline) throw new Error(`${streams} snapshot stream(s) still open after ${STREAM_WAIT_MS / 60_000} minutes`);
        if (!told) onWait?.(streams);
        told = true;
        await sleep(POLL_MS);
      }
      return await fn();
    } finally {
      release?.();
    }
  }

  /**
   * Puts a marker on a fresh lease; resolves with its release, or undefined when etcd
   * refused or did not answer within `TIMEOUT_MS` (a late lease is revoked when it comes).
   */
  private async mark(key: string): Promise<(() => void) | undefined> {
    const etcd = this.etcd;
    if (!etcd) return undefined;
    const lease: Lease = etcd.lease(LEASE_TTL_S);
    lease.on('lost', () => undefined);
    const revoke = (): void => void lease.revoke().catch(() => lease.release());
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), TIMEOUT_MS);
    });
    const put = lease
      .put(key)
      .value(this.node)
      .exec()
      .then(() => 'ok' as const);
    try {
      const r = await Promise.race([put, timedOut]);
      if (r === 'ok') return revoke;
      void put.then(revoke, () => lease.release());
      this.logger?.debug({ key }, 'upkeep marker not written (etcd did not answer); going on without it');
      return undefined;
    } catch (err) {
      lease.release();
      this.logger?.debug({ key, err: messageOf(err) }, 'upkeep marker not written (etcd refused it); going on without it');
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  }
}
