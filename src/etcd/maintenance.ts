/**
 * etcd's upkeep calls on one member's `EtcdClient` (docs/upkeep.md): defragment (that
 * member only), compact (the cluster's key space, through any member), and the cluster's
 * alarms (list, disarm). Each call is one gRPC request with a deadline, never retried;
 * failures leave as EtcdsnapError `unavailable` naming the call and the endpoint.
 */
import { EtcdsnapError, messageOf } from '../errors.js';
import type { EtcdClient } from './client.js';

/** One raised alarm: the member that raised it (decimal ID, as etcd3 gives uint64s) and its kind. */
export interface EtcdAlarm {
  memberId: string;
  /** `NOSPACE`, `CORRUPT` (etcd's names). */
  alarm: string;
}

/** How long a defragmentation may take (etcdctl's default of 5 s is too short for large databases). */
export const DEFRAG_TIMEOUT_MS = 10 * 60_000;

const unavailable = (what: string, endpoint: string, err: unknown): EtcdsnapError =>
  new EtcdsnapError('unavailable', `etcd ${what} at ${endpoint} failed: ${messageOf(err)}`, { cause: err });

/** Normalizes etcd3's alarm enum (a name such as `NOSPACE`/`Nospace`, or a number) to etcd's name. */
export function alarmName(v: unknown): string {
  const names: Record<string, string> = { '0': 'NONE', '1': 'NOSPACE', '2': 'CORRUPT' };
  const s = String(v);
  return names[s] ?? s.toUpperCase();
}

/** Defragments the member `client` talks to; it blocks that member's reads and writes meanwhile. */
export async function defragment(client: EtcdClient, timeoutMs = DEFRAG_TIMEOUT_MS): Promise<void> {
  try {
    await client.kv.maintenance.defragment({ deadline: Date.now() + timeoutMs });
  } catch (err) {
    throw unavailable('defragment', client.endpoint, err);
  }
}

/** The cluster's raised alarms (every member's), as `etcdctl alarm list`. */
export async function listAlarms(client: EtcdClient, timeoutMs = 5000): Promise<EtcdAlarm[]> {
  try {
    const r = await client.kv.maintenance.alarm({ action: 'Get', memberID: 0, alarm: 'None' }, { deadline: Date.now() + timeoutMs });
    return r.alarms.map((a) => ({ memberId: String(a.memberID), alarm: alarmName(a.alarm) })).filter((a) => a.alarm !== 'NONE');
  } catch (err) {
    throw unavailable('alarm list', client.endpoint, err);
  }
}

/** Disarms every raised alarm (as `etcdctl alarm disarm`); resolves with those it disarmed. */
export async function disarmAlarms(client: EtcdClient, timeoutMs = 5000): Promise<EtcdAlarm[]> {
  const raised = await listAlarms(client, timeoutMs);
  for (const a of raised) {
    const alarm = a.alarm === 'NOSPACE' ? 'Nospace' : a.alarm === 'CORRUPT' ? 'Corrupt' : 'None';
    try {
      await client.kv.maintenance.alarm({ action: 'Deactivate', memberID: a.memberId, alarm }, { deadline: Date.now() + timeoutMs });
    } catch (err) {
      throw unavailable('alarm disarm', client.endpoint, err);
    }
  }
  return raised;
}

/**
 * Compacts the key space to `revision` (physically: the call returns once the compacted
 * revisions are removed from the backend). A revision already compacted is a `conflict`.
 */
export async function compact(client: EtcdClient, revision: number, timeoutMs = 60_000): Promise<void> {
  try {
    await client.kv.kv.compact({ revision, physical: true }, { deadline: Date.now() + timeoutMs });
  } catch (err) {
    const msg = messageOf(err);
    if (msg.includes('required revision has been compacted'))
      throw new EtcdsnapError('conflict', `etcd has already compacted revision ${revision}: nothing to compact`, { cause: err });
    throw unavailable('compact', client.endpoint, err);
  }
}

/**
 * Pure: the snapshot streams a member is serving, from its `/metrics` text: gRPC's
 * `grpc_server_started_total` of Maintenance.Snapshot minus its `grpc_server_handled_total`
 * over every code. etcd counts every client's stream (ours, etcdctl's, another tool's), and
 * reading it writes nothing to etcd. Undefined when the text has no such counter.
 */
export function snapshotStreamsInFlight(metrics: string): number | undefined {
  let started: number | undefined;
  let handled = 0;
  for (const line of metrics.split('\n')) {
    if (!line.includes('grpc_method="Snapshot"') || !line.includes('grpc_service="etcdserverpb.Maintenance"')) continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (!Number.isFinite(value)) continue;
    if (line.startsWith('grpc_server_started_total{')) started = (started ?? 0) + value;
    else if (line.startsWith('grpc_server_handled_total{')) handled += value;
  }
  return started === undefined ? undefined : Math.max(0, started - handled);
}

/** The snapshot streams the member `client` talks to is serving now (see `snapshotStreamsInFlight`). */
export async function snapshotsInFlight(client: EtcdClient, timeoutMs = 5000): Promise<number> {
  const n = snapshotStreamsInFlight(await client.metricsText(timeoutMs));
  if (n === undefined) throw new EtcdsnapError('unavailable', `etcd at ${client.endpoint} exports no gRPC counters of its snapshot streams`);
  return n;
}
