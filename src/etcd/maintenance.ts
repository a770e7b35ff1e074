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
