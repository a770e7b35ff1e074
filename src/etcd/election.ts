/**
 * One leader among several processes, elected through an etcd lease (the change log's writer,
 * docs/point-in-time-restore.md "One writer per cluster"; reusable for any singleton job).
 *
 * Contract:
 * - Every candidate runs `start()`. A candidate becomes leader by creating the election key
 *   `key` (value: its `value`) attached to a lease of `ttlSeconds` that it keeps alive, in
 *   one transaction that succeeds only while the key is absent (create revision 0). The key's
 *   create revision names the term (`Term.createRevision`).
 * - While the key exists, the others wait for it to go (a watch of the key, re-checked every
 *   `ttlSeconds`); it goes when the leader resigns or stops (lease revoked) or when its lease
 *   expires (`ttlSeconds` after the last keepalive etcd saw). A key that no live lease holds
 *   (lease 0, as when the key was replayed from a change log, or a lease etcd no longer
 *   knows) is dead: deleted (only if unchanged) and the election goes on at once.
 * - `value` identifies a candidate, unique in the cluster and stable across its restarts:
 *   a key holding the candidate's own value is its previous incarnation (a crash, or a term
 *   it lost), taken over at once instead of waiting for that lease to expire. Fencing stays
 *   exact: the old term's create revision no longer matches.
 * - Fencing: `Term.putIfLeader` writes only while the election key still has the term's
 *   create revision (so the lease is alive: etcd deletes the key with its lease). A deposed
 *   leader's write fails, whatever it believes.
 * - `onLost(term, why)` is told once per term when it ends without `stop()`: the lease was
 *   lost (etcd said so, or no keepalive answer for 2/3 of the TTL, before etcd expires it)
 *   or `restart(why)` was called (the caller found itself fenced). The term's `signal` is
 *   aborted; the candidate campaigns again.
 * - `stop()` ends campaigning; a leader resigns (its lease revoked, so the key goes at once
 *   and another candidate takes over without waiting for the TTL) and `stop()` resolves once
 *   etcd answered the revoke (2 s at most; past that the lease expires on its own). `onLost`
 *   is not called.
 * - No call throws to the caller: etcd failures are logged (warn) and retried every second.
 */
import type { Etcd3, ICompare, Lease } from 'etcd3';
import type { Logger } from '../log/logger.js';
import { messageOf } from '../errors.js';
import type { EtcdClient } from './client.js';

export interface ElectionOptions {
  etcd: EtcdClient;
  /** The election key, e.g. `/etcdsnap/changelog/writer`. */
  key: string;
  /** This candidate (see the module's contract): e.g. the node name. */
  value: string;
  ttlSeconds: number;
  logger: Logger;
  onElected(term: Term): void;
  onLost(term: Term, why: string): void;
}

/** One term of leadership. */
export interface Term {
  readonly leaseId: string;
  /** The election key's create revision: the fencing token. */
  readonly createRevision: number;
  /** Aborted when the term ends (lost, restarted or stopped). */
  readonly signal: AbortSignal;
  /**
   * Puts `key` = `value` only while this term lasts and, when `modRevision` is given, only
   * if `key`'s mod revision is still `modRevision` (0: absent). Resolves with the revision
   * of the put, or undefined when a compare failed (nothing written); rejects when etcd
   * could not be asked (the outcome is then unknown).
   */
  putIfLeader(key: string, value: string, modRevision?: number, timeoutMs?: number): Promise<number | undefined>;
}

/** The election key as etcd holds it. */
export interface Holder {
  value: string;
  lease: string;
  createRevision: number;
  modRevision: number;
  /** etcd's revision when it was read (a watch for its change starts after it). */
  readAt: number;
}

const RETRY_MS = 1000;
/** How long a resignation waits for etcd to revoke the lease (past it, the lease expires after its TTL). */
const REVOKE_TIMEOUT_MS = 2000;

/** The holder of election key `key` (undefined: nobody leads). */
export async function electionHolder(etcd: EtcdClient, key: string): Promise<Holder | undefined> {
  const page = await etcd.rangePage(Buffer.from(key), undefined, undefined, 1, 5000);
  const kv = page.kvs[0];
  return kv
    ? { value: kv.value.toString('utf8'), lease: kv.lease, createRevision: kv.createRevision, modRevision: kv.modRevision, readAt: page.revision }
    : undefined;
}

interface Running extends Term {
  lease: Lease;
  abort: AbortController;
  timer: NodeJS.Timeout;
}

export class Election {
  private stopped = true;
  private term: Running | undefined;
  private wake: (() => void) | undefined;
  private loop: Promise<void> = Promise.resolve();

  constructor(private readonly o: ElectionOptions) {}

  private get raw(): Etcd3 {
    return this.o.etcd.kv;
  }

  get isLeader(): boolean {
    return this.term !== undefined;
  }

  /** Begins campaigning (in the background). */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.loop = this.campaign();
  }

  /** Ends the current term (told to `onLost`) and campaigns again. */
  restart(why: string): void {
    const t = this.term;
    if (!t || this.stopped) return;
    void this.end(t, why, true);
  }

  /** Stops campaigning; a leader resigns: resolves once its lease was revoked (or etcd refused). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    const t = this.term;
    const resigned = t ? this.end(t, 'stopped', false) : undefined;
    await this.loop;
    await resigned;
  }

  private async campaign(): Promise<void> {
    while (!this.stopped) {
      if (this.term) {
        await this.sleep(undefined);
        continue;
      }
      try {
        await this.attempt();
      } catch (err) {
        if (this.stopped) break;
        this.o.logger.warn({ err: messageOf(err), key: this.o.key }, `election ${this.o.key}: ${messageOf(err)}; retrying`);
        await this.sleep(RETRY_MS);
      }
    }
  }

  /** One round: take the key if free (or dead, or ours), else wait until it changes. */
  private async attempt(): Promise<void> {
    const k = Buffer.from(this.o.key);
    const holder = await electionHolder(this.o.etcd, this.o.key);
    if (holder) {
      if (holder.value === this.o.value || (await this.dead(holder))) {
        await this.raw.kv.txn({
          compare: [{ key: k, target: 'Mod', result: 'Equal', mod_revision: holder.modRevision }],
          success: [{ request_delete_range: { key: k } }],
          failure: [],
        });
        return;
      }
      await this.waitForChange(holder);
      return;
    }
    const lease = this.raw.lease(this.o.ttlSeconds);
    lease.on('lost', () => undefined); // handled below and through `watchLease`
    let id: string;
    try {
      id = await lease.grant();
    } catch (err) {
      lease.release();
      throw err;
    }
    const r = await this.raw.kv.txn({
      compare: [{ key: k, target: 'Create', result: 'Equal', create_revision: 0 }],
      success: [{ request_put: { key: k, value: Buffer.from(this.o.value), lease: id } }],
      failure: [],
    });
    if (!r.succeeded || this.stopped) {
      await lease.revoke().catch(() => undefined);
      return;
    }
    this.elect(lease, id, Number(r.header.revision));
  }

  private elect(lease: Lease, leaseId: string, createRevision: number): void {
    const abort = new AbortController();
    const ttlMs = this.o.ttlSeconds * 1000;
    let lastOk = Date.now();
    lease.on('keepaliveSucceeded', () => {
      lastOk = Date.now();
    });
    const raw = this.raw;
    const key = Buffer.from(this.o.key);
    const term: Running = {
      leaseId,
      createRevision,
      signal: abort.signal,
      lease,
      abort,
      timer: setInterval(
        () => {
          if (Date.now() - lastOk > (ttlMs * 2) / 3)
            void this.end(term, `no lease keepalive answer from etcd for ${Math.round((Date.now() - lastOk) / 1000)}s`, true);
        },
        Math.max(100, Math.floor(ttlMs / 6)),
      ),
      putIfLeader: async (k, value, modRevision, timeoutMs = 10_000) => {
        const compare: ICompare[] = [{ key, target: 'Create', result: 'Equal', create_revision: createRevision }];
        if (modRevision !== undefined) compare.push({ key: Buffer.from(k), target: 'Mod', result: 'Equal', mod_revision: modRevision });
        const r = await raw.kv.txn(
          { compare, success: [{ request_put: { key: Buffer.from(k), value: Buffer.from(value) } }], failure: [] },
          { deadline: Date.now() + timeoutMs },
        );
        return r.succeeded ? Number(r.header.revision) : undefined;
      },
    };
    term.timer.unref();
    lease.on('lost', (err: Error) => void this.end(term, `the lease was lost: ${messageOf(err)}`, true));
    this.term = term;
    this.o.logger.info({ key: this.o.key, lease: leaseId, revision: createRevision }, `election ${this.o.key}: elected (${this.o.value})`);
    this.o.onElected(term);
  }

  /** Ends `t` once: signal aborted, lease revoked (best effort: the answer is the revoke's end); `lost` tells onLost. */
  private end(t: Running, why: string, lost: boolean): Promise<void> {
    if (this.term !== t) return Promise.resolve();
    this.term = undefined;
    clearInterval(t.timer);
    t.abort.abort();
    // bounded: a stop must not hang on an etcd that does not answer (the lease then expires on its own)
    const revoked = t.lease.revoke({ deadline: Date.now() + REVOKE_TIMEOUT_MS }).catch(() => undefined);
    if (lost) {
      this.o.logger.warn({ key: this.o.key, lease: t.leaseId }, `election ${this.o.key}: leadership lost: ${why}`);
      this.o.onLost(t, why);
    }
    this.wake?.();
    return revoked;
  }

  /** Whether no live lease holds the key (lease 0, or one etcd does not know). */
  private async dead(h: Holder): Promise<boolean> {
    if (h.lease === '0') return true;
    const r = await this.raw.leaseClient.leaseTimeToLive({ ID: h.lease });
    return Number(r.TTL) < 0;
  }

  /**
   * Waits until the key changes after it was read (a watch from the read's revision + 1:
   * never a compacted one), `ttlSeconds` at most, or stop; a watch that fails waits a second
   * more, so a broken watch never spins.
   */
  private async waitForChange(h: Holder): Promise<void> {
    const w = await this.raw
      .watch()
      .key(this.o.key)
      .startRevision(String(h.readAt + 1))
      .create();
    let failed = false;
    try {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(t);
          this.wake = undefined;
          resolve();
        };
        const fail = (): void => {
          failed = true;
          done();
        };
        const t = setTimeout(done, this.o.ttlSeconds * 1000);
        this.wake = done;
        w.on('data', (res) => {
          if (res.events.length > 0) done();
        });
        w.on('disconnected', fail);
        w.on('error', fail);
        if (this.stopped) done();
      });
    } finally {
      await w.cancel().catch(() => undefined);
    }
    if (failed) await this.sleep(RETRY_MS);
  }

  private sleep(ms: number | undefined): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = (): void => {
        if (t) clearTimeout(t);
        this.wake = undefined;
        resolve();
      };
      const t = ms === undefined ? undefined : setTimeout(done, ms);
      this.wake = done;
      if (this.stopped) done();
    });
  }
}
