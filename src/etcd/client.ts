/**
 * The one wrapper around the etcd gRPC client (etcd3). Each instance talks to exactly one
 * endpoint (no load balancing, no hidden retries: callers decide), over mTLS with the
 * client material from `tls.ts`. gRPC errors leave this module as EtcdsnapError
 * `unavailable` (retryable) or as they are.
 */
import { promises as fsp } from 'node:fs';
import https from 'node:https';
import { isIP } from 'node:net';
import { Etcd3 } from 'etcd3';
import { noop } from 'cockatiel';
import { EtcdsnapError, messageOf } from '../errors.js';
import type { KeyValue } from '../model/key-value.js';
import type { ChangeEvent, ChangeRecord } from '../model/changelog.js';
import type { TlsPaths } from './tls.js';
import { EtcdSnapshotStream } from './snapshot-stream.js';

export interface EtcdStatus {
  version: string;
  dbSize: number;
  /** Bytes of the database logically in use (etcd 3.4+; absent when etcd does not say). */
  dbSizeInUse?: number;
  memberId: string;
  /** The cluster's ID (decimal, as etcd3 gives uint64s); from the response header. */
  clusterId: string;
  leader: string;
  raftIndex: string;
  raftTerm: string;
  isLearner: boolean;
  revision: string;
}

export interface EtcdMember {
  id: string;
  name: string;
  peerURLs: string[];
  clientURLs: string[];
  isLearner: boolean;
}

export interface EtcdClientOptions {
  /** e.g. https://127.0.0.1:2379 */
  endpoint: string;
  tls: Pick<TlsPaths, 'etcdCa' | 'clientCert' | 'clientKey'>;
  /**
   * Name the member's certificate must carry: `localhost` by default (etcdsnap's own
   * certificates carry DNS:localhost); the agent passes the endpoint's host, as etcdctl
   * checks it. An IP address is checked against the certificate's IP SANs (no SNI is sent).
   */
  serverName?: string;
}

/** A key as a live range returns it (model/key-value.ts; `lease`: decimal ID, '0' for none). */
export type LiveKeyValue = KeyValue;

/** One page of a range (`EtcdClient.rangePage`). */
export interface LivePage {
  revision: number;
  more: boolean;
  kvs: LiveKeyValue[];
}

/** etcd's answer to a read at a revision it cannot serve, as an EtcdsnapError; else undefined. */
function revisionError(err: unknown, revision: number | undefined): EtcdsnapError | undefined {
  const msg = messageOf(err);
  if (msg.includes('required revision has been compacted'))
    return new EtcdsnapError('conflict', `etcd has compacted revision ${String(revision)}: it can no longer be read`, { cause: err });
  if (msg.includes('required revision is a future revision'))
    return new EtcdsnapError('usage', `revision ${String(revision)} is in the future of this cluster`, { cause: err });
  return undefined;
}

const unavailable = (what: string, err: unknown): EtcdsnapError => new EtcdsnapError('unavailable', `etcd ${what} failed: ${messageOf(err)}`, { cause: err });

/** A watch response's events as one record per mod revision, in etcd's order. */
function groupByRevision(
  events: ReadonlyArray<{ type: string; kv: { key: Buffer; value: Buffer; create_revision: string; mod_revision: string; version: string; lease: string } }>,
  time: number,
): ChangeRecord[] {
  const out: ChangeRecord[] = [];
  for (const ev of events) {
    const revision = Number(ev.kv.mod_revision);
    let rec = out[out.length - 1];
    if (rec?.revision !== revision) {
      rec = { revision, time, events: [] };
      out.push(rec);
    }
    const kv = ev.kv;
    rec.events.push(
      ev.type === 'Delete'
        ? { type: 'delete', key: kv.key }
        : {
            type: 'put',
            key: kv.key,
            value: kv.value,
            createRevision: Number(kv.create_revision),
            modRevision: revision,
            version: Number(kv.version),
            lease: String(kv.lease),
          },
    );
  }
  return out;
}

/** Most bytes of a member's `/metrics` read (etcd 3.4's exposition is about 100 KB). */
const MAX_METRICS_BYTES = 8 * 1024 * 1024;

export class EtcdClient {
  private constructor(
    private readonly client: Etcd3,
    readonly endpoint: string,
    private readonly tlsMaterial: { ca: Buffer; cert: Buffer; key: Buffer },
    /** The certificate name to check; undefined: the endpoint's IP address. */
    private readonly serverName: string | undefined,
  ) {}

  static async connect(opts: EtcdClientOptions): Promise<EtcdClient> {
    const [ca, cert, key] = await Promise.all([fsp.readFile(opts.tls.etcdCa), fsp.readFile(opts.tls.clientCert), fsp.readFile(opts.tls.clientKey)]);
    const name = opts.serverName ?? 'localhost';
    const serverName = isIP(name) === 0 ? name : undefined;
    const client = new Etcd3({
      hosts: [opts.endpoint],
      credentials: { rootCertificate: ca, certChain: cert, privateKey: key },
      dialTimeout: 3000,
      faultHandling: { host: () => noop, global: noop },
      grpcOptions: {
        'grpc.max_receive_message_length': 64 * 1024 * 1024,
        // etcdsnap's certificates carry DNS:localhost; naming it avoids TLS SNI with an IP literal
        ...(serverName !== undefined ? { 'grpc.ssl_target_name_override': serverName } : {}),
        // HTTP/2's default 64 KiB window stalls the snapshot stream (32 KiB messages) on
        // window updates; 8 MiB made a 270 MiB snapshot stream 1.8x faster here.
        'grpc-node.flow_control_window': 8 * 1024 * 1024,
        // etcd is a local child that may restart: reconnect quickly instead of backing off for minutes
        'grpc.initial_reconnect_backoff_ms': 200,
        'grpc.max_reconnect_backoff_ms': 2000,
      },
    });
    return new EtcdClient(client, opts.endpoint, { ca, cert, key }, serverName);
  }

  /** Status of this endpoint's member. */
  async status(timeoutMs = 5000): Promise<EtcdStatus> {
    try {
      const s = await this.client.maintenance.status({ deadline: Date.now() + timeoutMs });
      const learner = (s as { isLearner?: boolean }).isLearner === true;
      const inUse = Number((s as { dbSizeInUse?: string }).dbSizeInUse ?? Number.NaN);
      return {
        version: s.version,
        dbSize: Number(s.dbSize),
        ...(Number.isFinite(inUse) && inUse > 0 ? { dbSizeInUse: inUse } : {}),
        memberId: s.header.member_id,
        clusterId: s.header.cluster_id,
        leader: s.leader,
        raftIndex: s.raftIndex,
        raftTerm: s.raftTerm,
        isLearner: learner,
        revision: s.header.revision,
      };
    } catch (err) {
      throw unavailable('status', err);
    }
  }

  async members(timeoutMs = 5000): Promise<EtcdMember[]> {
    try {
      const r = await this.client.cluster.memberList({}, { deadline: Date.now() + timeoutMs });
      return r.members.map((m) => ({
        id: m.ID,
        name: m.name,
        peerURLs: m.peerURLs,
        clientURLs: m.clientURLs,
        isLearner: m.isLearner,
      }));
    } catch (err) {
      throw unavailable('member list', err);
    }
  }

  /** Adds a member (as a learner when asked); resolves with its ID and the member list. */
  async addMember(peerURL: string, isLearner: boolean, timeoutMs = 10_000): Promise<{ id: string; members: EtcdMember[] }> {
    try {
      const r = await this.client.cluster.memberAdd({ peerURLs: [peerURL], isLearner }, { deadline: Date.now() + timeoutMs });
      const list = await this.members(timeoutMs);
      return { id: r.member.ID, members: list };
    } catch (err) {
      if (err instanceof EtcdsnapError) throw err;
      throw unavailable('member add', err);
    }
  }

  async removeMember(id: string, timeoutMs = 10_000): Promise<void> {
    try {
      await this.client.cluster.memberRemove({ ID: id }, { deadline: Date.now() + timeoutMs });
    } catch (err) {
      throw unavailable('member remove', err);
    }
  }

  /** Promotes a learner; etcd refuses while it has not caught up with the leader. */
  async promoteMember(id: string, timeoutMs = 10_000): Promise<void> {
    try {
      await this.client.cluster.memberPromote({ ID: id }, { deadline: Date.now() + timeoutMs });
    } catch (err) {
      throw unavailable('member promote', err);
    }
  }

  /**
   * Opens etcd's Maintenance.Snapshot stream of this member: the snapshot's bytes (a bbolt db
   * followed by a 32-byte sha256 trailer), over its own HTTP/2 connection (see
   * `snapshot-stream.ts` for why not through etcd3).
   */
  async snapshotStream(): Promise<EtcdSnapshotStream> {
    return EtcdSnapshotStream.open({ endpoint: this.endpoint, ...this.tlsMaterial, ...(this.serverName !== undefined ? { servername: this.serverName } : {}) });
  }

  /**
   * This member's Prometheus exposition (`GET /metrics` on its client URL, with the client
   * certificate), at most `MAX_METRICS_BYTES`: what etcd itself counts, e.g. the snapshot
   * streams it serves (maintenance.ts `snapshotStreamsInFlight`). Read-only.
   */
  metricsText(timeoutMs = 5000): Promise<string> {
    const url = new URL('/metrics', this.endpoint);
    return new Promise((resolve, reject) => {
      const req = https.get(
        url,
        { ...this.tlsMaterial, ...(this.serverName !== undefined ? { servername: this.serverName } : {}), timeout: timeoutMs },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > MAX_METRICS_BYTES) req.destroy(new Error(`more than ${MAX_METRICS_BYTES} bytes`));
            else chunks.push(c);
          });
          res.on('end', () =>
            res.statusCode === 200 ? resolve(Buffer.concat(chunks).toString('utf8')) : reject(unavailable('metrics', new Error(`HTTP ${res.statusCode ?? 0}`))),
          );
          res.on('error', (err) => reject(unavailable('metrics', err)));
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on('error', (err) => reject(unavailable('metrics', err)));
    });
  }

  /** The value of `key` as UTF-8, or undefined when it is absent. */
  async getValue(key: string, timeoutMs = 5000): Promise<string | undefined> {
    try {
      const v = await this.client
        .get(key)
        .options({ deadline: Date.now() + timeoutMs })
        .string();
      return v ?? undefined;
    } catch (err) {
      throw unavailable(`get ${key}`, err);
    }
  }

  async putValue(key: string, value: string, timeoutMs = 5000): Promise<void> {
    try {
      await this.client
        .put(key)
        .value(value)
        .options({ deadline: Date.now() + timeoutMs })
        .exec();
    } catch (err) {
      throw unavailable(`put ${key}`, err);
    }
  }

  /**
   * One page of keys in [start, end) (`end` undefined: the key `start` only) at `revision`
   * (undefined: the latest), values included, in key order, at most `limit` of them.
   * `revision` is the header revision the page was read at (the one asked for, else the
   * latest), `more` whether keys beyond the page exist. A compacted `revision` is a
   * `conflict` error (the read can no longer be made), a future one a `usage` error.
   */
  async rangePage(start: Buffer, end: Buffer | undefined, revision: number | undefined, limit: number, timeoutMs = 30_000): Promise<LivePage> {
    try {
      const b = end === undefined ? this.client.get(start) : this.client.getAll().inRange({ start, end }).limit(limit);
      if (revision !== undefined) b.revision(revision);
      const r = await b.options({ deadline: Date.now() + timeoutMs }).exec();
      return {
        revision: Number(r.header.revision),
        more: r.more,
        kvs: r.kvs.map((kv) => ({
          key: kv.key,
          value: kv.value,
          createRevision: Number(kv.create_revision),
          modRevision: Number(kv.mod_revision),
          version: Number(kv.version),
          lease: String(kv.lease),
        })),
      };
    } catch (err) {
      throw revisionError(err, revision) ?? unavailable('range', err);
    }
  }

  /**
   * Writes (`value`) or deletes (`value` undefined) `key` in one transaction, only if the
   * key's mod revision is still `modRevision` (0: the key is absent). Resolves true when
   * written, false when the compare failed (someone changed the key): nothing is retried.
   * The put carries no lease.
   */
  async putIfModRevision(key: Buffer, modRevision: number, value: Buffer | undefined, timeoutMs = 10_000): Promise<boolean> {
    try {
      const op = value === undefined ? this.client.delete().key(key) : this.client.put(key).value(value);
      const r = await this.client
        .if(key, 'Mod', '==', modRevision)
        .then(op)
        .options({ deadline: Date.now() + timeoutMs })
        .commit();
      return r.succeeded;
    } catch (err) {
      throw unavailable(`transaction on ${key.toString('utf8').slice(0, 200)}`, err);
    }
  }

  /**
   * Watches every key from `startRevision` and hands over each watch response's events
   * grouped into one record per revision (etcd never splits a revision across responses),
   * stamped with the time they arrived. etcd3's own reconnect is not used: it may resume
   * past revisions it has not delivered (it takes the header's revision), so the first
   * disconnect, cancellation (e.g. a compacted start revision) or error ends the watch and
   * is told to `on.end` once; the caller starts a new watch from its own position.
   * Nothing is queued here: `on.records` is called synchronously per response.
   */
  async watchChanges(startRevision: number, on: { records(rs: ChangeRecord[]): void; end(err: EtcdsnapError): void }): Promise<{ cancel(): Promise<void> }> {
    let ended = false;
    let watcher: Awaited<ReturnType<ReturnType<Etcd3['watch']>['create']>> | undefined;
    const end = (what: string, err: unknown): void => {
      if (ended) return;
      ended = true;
      void watcher?.cancel().catch(() => undefined);
      on.end(err instanceof EtcdsnapError ? err : unavailable(what, err));
    };
    try {
      watcher = await this.client.watch().prefix('').startRevision(String(startRevision)).create();
    } catch (err) {
      throw unavailable('watch', err);
    }
    const w = watcher;
    w.on('data', (res) => {
      if (ended || res.events.length === 0) return;
      on.records(groupByRevision(res.events, Date.now()));
    });
    w.on('disconnected', (err: unknown) => end('watch (disconnected)', err));
    w.on('error', (err: unknown) => end('watch', err));
    return {
      cancel: async () => {
        ended = true;
        await w.cancel().catch(() => undefined);
      },
    };
  }

  /**
   * Writes one revision's `events` in one transaction with no compare (puts without their
   * lease); resolves with the revision etcd gave it.
   */
  async applyRevision(events: readonly ChangeEvent[], timeoutMs = 30_000): Promise<number> {
    try {
      const r = await this.client.kv.txn(
        {
          compare: [],
          success: events.map((e) => (e.type === 'put' ? { request_put: { key: e.key, value: e.value } } : { request_delete_range: { key: e.key } })),
          failure: [],
        },
        { deadline: Date.now() + timeoutMs },
      );
      return Number(r.header.revision);
    } catch (err) {
      throw unavailable('transaction', err);
    }
  }

  /** The raw etcd3 client, for key-value calls in tools and tests. */
  get kv(): Etcd3 {
    return this.client;
  }

  close(): void {
    this.client.close();
  }
}
