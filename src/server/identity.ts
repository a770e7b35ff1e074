/**
 * The etcd identity of this server's data and of the cluster it joins, so that a restore
 * cannot be undone by a server that still holds data from before it.
 *
 * Every restore (reset.ts) gives the cluster a new etcd cluster ID and member ID: etcd's
 * restore tool derives both from the peer URLs and `--initial-cluster-token`, and the reset
 * passes a random token. etcd itself then rejects the raft messages of the members from
 * before the restore (rafthttp answers "request cluster ID mismatch"). This module adds what
 * etcd cannot do: a server whose data predates the restore refuses to start, with a message.
 *
 * Files, in server/db (deleting server/db, as the reset message says, removes them too):
 * - `cluster-id`: the etcd cluster ID (hex, as etcd logs it) of the data in server/db/etcd,
 *   written whenever etcd is up (each server start, each reset). A data dir without it (an
 *   older etcdsnap) is not checked.
 * - `last-restore.json`: the last restore of this cluster (`RestoreRecord`), written by the
 *   reset that made it and copied by the servers that join the restored cluster (join.ts).
 *
 * `GET /v1/cluster/identity` (cluster.ts, token-protected) answers `identityOf`.
 * `refuseStaleData` runs before etcd starts on a server that has etcd data and `--server`:
 * it asks that server for the cluster's identity and refuses (`conflict`) when the cluster ID
 * differs from this data's. When no answer can be had (server down, older version), it logs a
 * warning and the server starts as before; etcd still keeps the old member away from a
 * restored cluster.
 */
import type { Logger } from '../log/logger.js';
import { EtcdsnapError, messageOf } from '../errors.js';
import type { EtcdClient } from '../etcd/client.js';
import { tokenFromHash } from '../etcd/token.js';
import { readIfExists } from '../util/fs.js';
import { writeFileAtomic } from '../util/durable.js';
import { SupervisorClient } from './api-client.js';
import type { TokenCheck } from './bootstrap.js';
import type { ServerConfig, ServerPaths } from './config.js';

export const IDENTITY_PATH = '/v1/cluster/identity';

/** What `GET /v1/cluster/identity` answers (IDs in hex, as etcd logs them). */
export interface ClusterIdentity {
  clusterId: string;
  /** The answering server's own member. */
  memberId: string;
  /** When the cluster with this ID was made by a restore (ISO 8601, UTC); null when unknown or never. */
  restoredAt: string | null;
  /** The snapshot it was restored from (file or object name); null with restoredAt. */
  snapshot: string | null;
}

/** A restore, as `last-restore.json` keeps it. */
export interface RestoreRecord {
  /** The etcd cluster ID the restore made (hex). */
  clusterId: string;
  /** The member the restore made (hex); only in the record of the server that restored. */
  memberId?: string;
  /** ISO 8601, UTC. */
  restoredAt: string;
  /** The snapshot's file name (no folder). */
  snapshot: string;
  /** The cluster ID of the data before the restore, when it was recorded. */
  previousClusterId?: string;
}

const HEX_ID = /^[0-9a-f]{1,16}$/;

/** An etcd uint64 ID given in decimal (etcd3's form) as etcd prints it: lowercase hex. */
export function hexId(decimal: string): string {
  if (!/^\d{1,20}$/.test(decimal)) throw new EtcdsnapError('unavailable', `etcd answered an invalid ID "${decimal.slice(0, 40)}"`);
  return BigInt(decimal).toString(16);
}

/** The cluster ID recorded for this data dir's etcd data, or undefined (none, or unreadable). */
export async function readClusterId(p: ServerPaths): Promise<string | undefined> {
  const text = (await readIfExists(p.clusterIdFile))?.trim();
  return text !== undefined && HEX_ID.test(text) ? text : undefined;
}

/** Records the cluster ID of this data dir's etcd data (rewritten only when it changed). */
export async function recordClusterId(p: ServerPaths, clusterId: string): Promise<void> {
  if ((await readClusterId(p)) === clusterId) return;
  await writeFileAtomic(p.clusterIdFile, `${clusterId}\n`, 0o600);
}

const isStr = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= 4096;

/** The restore record of this data dir, or undefined (none, or not one we wrote). */
export async function readRestoreRecord(p: ServerPaths): Promise<RestoreRecord | undefined> {
  const text = await readIfExists(p.restoreRecordFile);
  if (text === undefined) return undefined;
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof o !== 'object' || o === null) return undefined;
  const r = o as Record<string, unknown>;
  const { clusterId, memberId, restoredAt, snapshot, previousClusterId } = r;
  if (!isStr(clusterId) || !HEX_ID.test(clusterId) || !isStr(restoredAt) || !isStr(snapshot)) return undefined;
  return { clusterId, ...(isStr(memberId) ? { memberId } : {}), restoredAt, snapshot, ...(isStr(previousClusterId) ? { previousClusterId } : {}) };
}

export async function writeRestoreRecord(p: ServerPaths, r: RestoreRecord): Promise<void> {
  await writeFileAtomic(p.restoreRecordFile, `${JSON.stringify(r, null, 2)}\n`, 0o600);
}

/** This server's answer to `GET /v1/cluster/identity`: etcd's IDs now, and the restore that made this cluster, if recorded. */
export async function identityOf(etcd: EtcdClient, p: ServerPaths): Promise<ClusterIdentity> {
  const s = await etcd.status(2000);
  const clusterId = hexId(s.clusterId);
  const rec = await readRestoreRecord(p);
  const same = rec !== undefined && rec.clusterId === clusterId ? rec : undefined;
  return { clusterId, memberId: hexId(s.memberId), restoredAt: same?.restoredAt ?? null, snapshot: same?.snapshot ?? null };
}

/** Checks an answer of `GET /v1/cluster/identity`. */
export function parseIdentity(body: unknown, from: string): ClusterIdentity {
  const b = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  const { clusterId, memberId, restoredAt, snapshot } = b;
  if (!isStr(clusterId) || !HEX_ID.test(clusterId) || !isStr(memberId)) {
    throw new EtcdsnapError('integrity', `unexpected answer from ${from}${IDENTITY_PATH}`);
  }
  return { clusterId, memberId, restoredAt: isStr(restoredAt) ? restoredAt : null, snapshot: isStr(snapshot) ? snapshot : null };
}

/** How long a server that answers but is still starting (404: routes not there yet; 503) is asked again. */
const STARTING_GRACE_MS = 30_000;

/** Asks the server at `url` for the cluster's identity (retrying while it is starting). */
async function askIdentity(url: string, token: string, dataDir: string): Promise<ClusterIdentity> {
  const client = await SupervisorClient.connect({ server: url, token, dataDir, timeoutMs: 10_000, flags: { server: '--server', token: '--token' } });
  const deadline = Date.now() + STARTING_GRACE_MS;
  for (;;) {
    try {
      return parseIdentity(await client.get(IDENTITY_PATH), url);
    } catch (err) {
      const starting = err instanceof EtcdsnapError && (err.kind === 'not-found' || err.kind === 'unavailable');
      if (!starting || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

/** The refusal of a server whose etcd data predates a restore of the cluster it joins. */
export function staleDataMessage(url: string, p: ServerPaths, local: string, remote: ClusterIdentity): string {
  const what =
    remote.restoredAt !== null
      ? `the cluster at ${url} was restored from snapshot ${remote.snapshot ?? '(unknown)'} at ${remote.restoredAt}`
      : `the cluster at ${url} was restored or reset since this server last ran (when is not recorded)`;
  return (
    `this server's etcd data is from before a restore: ${what}, and its etcd cluster ID is now ${remote.clusterId} (this data: ${local}); ` +
    `starting with this data could bring back what the restore removed, so nothing was started. ` +
    `Back up and delete ${p.dbDir}, then start this server again: it joins the restored cluster as a new member`
  );
}

/**
 * Before etcd starts: refuses (EtcdsnapError `conflict`, nothing changed) when this server
 * has etcd data and `--server`, and the cluster at that URL has another etcd cluster ID
 * than the one recorded for the data. Skipped (debug line) without a recorded ID or a full
 * token; a server that cannot be asked is logged as a warning and the start goes on.
 */
export async function refuseStaleData(cfg: ServerConfig, p: ServerPaths, check: TokenCheck, logger: Logger): Promise<void> {
  const url = cfg.joinURL;
  if (url === undefined) return;
  const local = await readClusterId(p);
  if (local === undefined) {
    logger.debug({ file: p.clusterIdFile }, 'no etcd cluster ID recorded for this data (written by an older etcdsnap): not compared with the cluster');
    return;
  }
  const token = check.given ?? check.existing;
  if (token?.caHash === undefined) {
    logger.debug('no full token (K10...): this data is not compared with the cluster');
    return;
  }
  let remote: ClusterIdentity;
  try {
    remote = await askIdentity(url, tokenFromHash(token.caHash, token.secret), cfg.dataDir);
  } catch (err) {
    logger.warn(
      { server: url, err: messageOf(err) },
      `could not compare this server's etcd data with the cluster at ${url}; starting with it. If that cluster was restored from a snapshot since this server last ran, stop this server, back up and delete ${p.dbDir}, and start it again`,
    );
    return;
  }
  if (remote.clusterId !== local) throw new EtcdsnapError('conflict', staleDataMessage(url, p, local, remote));
  logger.debug({ server: url, clusterId: local }, 'this etcd data belongs to the cluster it joins');
}
