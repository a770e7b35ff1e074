/**
 * Keeps snapshot streams and defragmentations of the same etcd member apart, across every
 * server and agent of the cluster (docs/upkeep.md "Saves and defragmentation"): a member
 * being defragmented blocks its reads, and a defragmentation started under a running
 * snapshot stream would block the member until the stream ends.
 *
 * Contract (markers in etcd, each on a lease that dies with its process):
 * - A save, before it streams from member M (before it reads the status it records, for
 *   its first member), puts `/etcdsnap/upkeep/streaming/<M>/<node>` (lease kept alive
 *   while the stream lasts, revoked when it closes, or after a minute when it never opens),
 *   then waits while `/etcdsnap/upkeep/defragmenting/<M>` exists (a defragmentation is short).
 * - A defragmentation of M (`exclusive`) puts `/etcdsnap/upkeep/defragmenting/<M>`, then
 *   looks for streaming markers of M; when there is one it removes its own marker, waits
 *   until the streams of M end, and tries again. A save never waits for a defragmentation
 *   that waits for it: the defragmentation always yields.
 * - etcd refusing the markers (NOSPACE refuses leases and puts) or not answering within 2 s
 *   (the host's member is down or hung) never stops a save nor a defragmentation (both are
 *   what recovers from NOSPACE, and the save fails over to another member): they go on
 *   without their marker, with a debug line; the other side's markers are still read.
 * - Until `bind` is called (the upkeep feature's start), the guard lets everything through.
 */
import type { Etcd3, Lease } from 'etcd3';
import type { Logger } from '../log/logger.js';
import type { EtcdClient } from '../etcd/client.js';
import type { SnapshotCandidate, SnapshotSource } from '../etcd/members.js';
import { messageOf } from '../errors.js';
import { hexId } from './identity.js';
import { sleep } from './host.js';

export const STREAMING_PREFIX = '/etcdsnap/upkeep/streaming/';
export const DEFRAG_PREFIX = '/etcdsnap/upkeep/defragmenting/';
const LEASE_TTL_S = 15;
const POLL_MS = 250;
/** How long a save or a defragmentation waits for etcd to answer about markers before going on without. */
const TIMEOUT_MS = 2000;
/** How long a save's marker waits for its stream to open before it is removed. */
const UNUSED_MARKER_MS = 60_000;

/** `fn`, run at most once. */
function once(fn: () => void): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    fn();
  };
}

export class SaveGuard {
  private etcd: Etcd3 | undefined;
  private node = '';
  private logger: Logger | undefined;

  bind(etcd: EtcdClient, node: string, logger: Logger): void {
    this.etcd = etcd.kv;
    this.node = node;
    this.logger = logger;
  }

  /**
   * `source` whose members announce their snapshot streams (see the contract). The first
   * candidate's marker is written before the statuses the save records are read (the
   * candidates are asked again after it), so that the record's revision includes the
   * marker's own write and matches the snapshot; a failover candidate is marked when its
   * stream opens (its status is from before, as any failover's).
   */
  wrap(source: SnapshotSource): SnapshotSource {
    return {
      candidates: async () => {
        const before = await source.candidates();
        const first = before[0];
        if (!first || !this.etcd) return before;
        const id = hexId(first.status.memberId);
        const release = once(await this.announceStream(id));
        let fresh: SnapshotCandidate[];
        try {
          fresh = await source.candidates();
        } catch (err) {
          release();
          throw err;
        }
        // a marker whose stream never opens (the save failed before) goes after a while
        const unused = setTimeout(release, UNUSED_MARKER_MS);
        unused.unref();
        const held = (): (() => void) => {
          clearTimeout(unused);
          return release;
        };
        if (!fresh.some((c) => hexId(c.status.memberId) === id)) release();
        return fresh.map((c) => this.guarded(c, hexId(c.status.memberId) === id ? held : undefined));
      },
    };
  }

  private guarded(c: SnapshotCandidate, held: (() => () => void) | undefined): SnapshotCandidate {
    const m = c.member;
    const member = hexId(c.status.memberId);
    return {
      status: c.status,
      member: {
        endpoint: m.endpoint,
        status: (t) => m.status(t),
        snapshotStream: async () => {
          const release = held ? held() : once(await this.announceStream(member));
          try {
            const s = await m.snapshotStream();
            s.once('close', release);
            return s;
          } catch (err) {
            release();
            throw err;
          }
        },
      },
    };
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

  /**
   * The live markers under `prefix`. A marker no live lease holds (lease 0, as a key put
   * back by restore-keys or a change log replay; or a lease etcd no longer knows) is dead:
   * left out, and deleted if unchanged.
   */
  private async exists(prefix: string): Promise<string[]> {
    const etcd = this.etcd;
    if (!etcd) return [];
    const deadline = (): { deadline: number } => ({ deadline: Date.now() + TIMEOUT_MS });
    const r = await etcd.getAll().prefix(prefix).options(deadline()).exec();
    const live: string[] = [];
    for (const kv of r.kvs) {
      const key = kv.key.toString('utf8');
      const lease = String(kv.lease);
      const alive = lease !== '0' && Number((await etcd.leaseClient.leaseTimeToLive({ ID: lease }, deadline())).TTL) > 0;
      if (alive) {
        live.push(key);
        continue;
      }
      this.logger?.info({ key }, `removing the stale upkeep marker ${key} (no live lease holds it)`);
      await etcd
        .if(key, 'Mod', '==', kv.mod_revision)
        .then(etcd.delete().key(key))
        .options(deadline())
        .commit()
        .catch(() => undefined);
    }
    return live;
  }

  /** The save side: marker, then wait while member `member` is being defragmented. */
  private async announceStream(member: string): Promise<() => void> {
    const release = (await this.mark(`${STREAMING_PREFIX}${member}/${this.node}`)) ?? (() => undefined);
    try {
      let logged = false;
      while ((await this.exists(`${DEFRAG_PREFIX}${member}`)).length > 0) {
        if (!logged) this.logger?.info({ member }, `snapshot waits for the defragmentation of etcd member ${member} to finish`);
        logged = true;
        await sleep(POLL_MS);
      }
    } catch (err) {
      this.logger?.debug({ err: messageOf(err) }, 'could not read the defragmentation marker; streaming anyway');
    }
    return release;
  }

  /**
   * The defragmentation side: runs `fn` while no snapshot streams from member `member`
   * (hex ID), waiting for running streams (`onWait` told once with the nodes streaming).
   */
  async exclusive<T>(member: string, fn: () => Promise<T>, onWait?: (nodes: string[]) => void): Promise<T> {
    let told = false;
    for (;;) {
      const release = await this.mark(`${DEFRAG_PREFIX}${member}`);
      const streams = await this.exists(`${STREAMING_PREFIX}${member}/`);
      if (streams.length === 0) {
        try {
          return await fn();
        } finally {
          release?.();
        }
      }
      release?.();
      if (!told) onWait?.(streams.map((k) => k.slice(`${STREAMING_PREFIX}${member}/`.length)));
      told = true;
      while ((await this.exists(`${STREAMING_PREFIX}${member}/`)).length > 0) await sleep(POLL_MS);
    }
  }
}
