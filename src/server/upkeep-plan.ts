/**
 * The pure rules of etcd upkeep (docs/upkeep.md):
 * - `nextToDefrag`: which member a defragmentation takes next: followers first, in a stable
 *   order (member name, then ID), the leader last; asked again before each member, so a
 *   leader that changed during the run is still taken last.
 * - `quotaStep`: what the quota watcher says after one look at etcd: one warning when the
 *   database size reaches `ratio` of the quota (again only after it went back under; none
 *   when NOSPACE is already raised, its error says more), one
 *   error per NOSPACE alarm occurrence (again only after it was disarmed), and an info line
 *   when each ends.
 * - the texts of those lines, with the commands that fix a NOSPACE alarm.
 */
import type { EtcdAlarm } from '../etcd/maintenance.js';

/** A member as the defragmentation orders it (IDs in hex, as etcdctl prints them). */
export interface DefragCandidate {
  id: string;
  name: string;
}

const byName = (a: DefragCandidate, b: DefragCandidate): number => (a.name === b.name ? (a.id < b.id ? -1 : a.id > b.id ? 1 : 0) : a.name < b.name ? -1 : 1);

/** The member to defragment next among `remaining`: the first follower by name, else the leader (`leaderId`). */
export function nextToDefrag<M extends DefragCandidate>(remaining: readonly M[], leaderId: string | undefined): M | undefined {
  const sorted = [...remaining].sort(byName);
  return sorted.find((m) => m.id !== leaderId) ?? sorted[0];
}

/** Binary units, one decimal: `52.3 MiB`. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i] ?? ''}`;
}

/** What the watcher remembers between looks. */
export interface QuotaState {
  /** The size warning was logged and the size has not gone back under the ratio since. */
  warned: boolean;
  /** A NOSPACE alarm is raised (its error was logged). */
  nospace: boolean;
}

export const INITIAL_QUOTA_STATE: QuotaState = { warned: false, nospace: false };

/** One look at etcd: the member's database size (absent: status failed) and the cluster's alarms (absent: the list failed). */
export interface QuotaObservation {
  dbSize?: number;
  alarms?: readonly EtcdAlarm[];
}

export interface QuotaLine {
  level: 'info' | 'warn' | 'error';
  event: 'quota-warning' | 'quota-ok' | 'nospace' | 'nospace-cleared';
  msg: string;
}

/** The commands that recover from NOSPACE, in order (docs/upkeep.md "Recovering from NOSPACE"). */
export const NOSPACE_FIX = 'etcdsnap etcd-snapshot compact, then etcdsnap etcd-snapshot defrag, then etcdsnap etcd-snapshot alarm disarm';

export function quotaWarning(dbSize: number, quota: number): string {
  const pct = Math.round((dbSize / quota) * 100);
  return `etcd database size ${formatBytes(dbSize)} is ${pct}% of its quota ${formatBytes(quota)} (quota-backend-bytes): at the quota etcd raises NOSPACE and refuses every write; free space now (${NOSPACE_FIX.replace(', then etcdsnap etcd-snapshot alarm disarm', '')}) or raise the quota with --etcd-arg quota-backend-bytes=<bytes>`;
}

export function nospaceError(alarms: readonly EtcdAlarm[], quota: number, memberName: (id: string) => string): string {
  const members = alarms.filter((a) => a.alarm === 'NOSPACE').map((a) => memberName(a.memberId));
  return `etcd raised the NOSPACE alarm (member ${members.join(', ')}): the database reached its quota of ${formatBytes(quota)} (quota-backend-bytes) and etcd now refuses every write until the alarm is disarmed; to recover run: ${NOSPACE_FIX} (or raise the quota with --etcd-arg quota-backend-bytes=<bytes> on every server, restart them, then disarm)`;
}

/** The state after `obs`, and the lines to log (see the module's contract). `ratio` 0: no size warning. */
export function quotaStep(
  state: QuotaState,
  obs: QuotaObservation,
  opts: { quota: number; ratio: number; memberName?: (id: string) => string },
): { state: QuotaState; lines: QuotaLine[] } {
  const lines: QuotaLine[] = [];
  let { warned, nospace } = state;
  if (obs.dbSize !== undefined && opts.ratio > 0) {
    const over = obs.dbSize >= opts.ratio * opts.quota;
    // at NOSPACE the alarm's error says it all: no warning beside it
    const raised = obs.alarms?.some((a) => a.alarm === 'NOSPACE') ?? state.nospace;
    if (over && !warned && !raised) lines.push({ level: 'warn', event: 'quota-warning', msg: quotaWarning(obs.dbSize, opts.quota) });
    if (!over && warned)
      lines.push({
        level: 'info',
        event: 'quota-ok',
        msg: `etcd database size ${formatBytes(obs.dbSize)} is back under ${Math.round(opts.ratio * 100)}% of its quota ${formatBytes(opts.quota)}`,
      });
    warned = over;
  }
  if (obs.alarms !== undefined) {
    const raised = obs.alarms.some((a) => a.alarm === 'NOSPACE');
    if (raised && !nospace) lines.push({ level: 'error', event: 'nospace', msg: nospaceError(obs.alarms, opts.quota, opts.memberName ?? ((id) => id)) });
    if (!raised && nospace) lines.push({ level: 'info', event: 'nospace-cleared', msg: 'etcd NOSPACE alarm is disarmed: writes are accepted again' });
    nospace = raised;
  }
  return { state: { warned, nospace }, lines };
}

export { parseWarningRatio } from '../config/checks.js';
