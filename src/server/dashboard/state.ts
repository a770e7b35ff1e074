/**
 * What the dashboard shows (docs/dashboard.md), as JSON for its page: the snapshots of both
 * stores as `etcd-snapshot ls` lists them (SnapshotService.list with the server's S3
 * settings), the schedule, the running save, the last failure and the last save started from
 * the dashboard. Pure except `Activity`, which remembers failures this process saw.
 */
import type { SaveProgress } from '../../model/api.js';
import { type DrillResult, recordNote, type SnapshotRecord } from '../../model/records.js';

/** One row of the snapshot table (and a point of the chart when it has a duration). */
export interface DashboardSnapshot {
  name: string;
  node: string;
  /** `file://...` or `s3://...`; empty for a failed save. */
  location: string;
  store: 'local' | 's3' | '';
  size: number;
  createdAt: string;
  compression: string;
  encrypted: boolean;
  status: 'successful' | 'failed';
  message?: string;
  durationMs?: number;
  /** The last restore drill of this copy (docs/drills.md), when it was drilled. */
  drill?: DashboardDrill;
  /** `ls`'s Note (a foreign name, a record from a newer etcdsnap), when there is one. */
  note?: string;
  /** The record was written by a newer etcdsnap (the reason): it cannot be downloaded here. */
  newerRecord?: string;
}

/** A drill result as the table shows it: passed or failed, when, and why it failed. */
export type DashboardDrill = Pick<DrillResult, 'status' | 'at' | 'durationMs' | 'message' | 'revision' | 'keys'>;

export interface Failure {
  /** RFC 3339. */
  at: string;
  what: string;
  message: string;
}

export interface DashboardSchedule {
  enabled: boolean;
  spec: string;
  /** RFC 3339; absent when disabled or the schedule never fires again. */
  nextRun?: string;
  retention: number;
  /** The time-bucket policy (`--etcd-snapshot-retention-policy`), when set: it replaces both counts. */
  retentionPolicy?: string;
  /** S3 retention, when the server has S3 settings. */
  s3Retention?: number;
  /** Where S3 copies go (`s3://bucket/folder at endpoint`), when configured. */
  s3?: string;
}

/** The last save started from the dashboard: running, or finished with its snapshot's name or its error. */
export interface DashboardSave {
  startedAt: string;
  running: boolean;
  name?: string;
  error?: string;
  s3Error?: string;
}

export interface DashboardState {
  node: string;
  csrf: string;
  snapshots: DashboardSnapshot[];
  /** Why the S3 listing failed (the local snapshots are shown anyway). */
  s3Error?: string;
  schedule: DashboardSchedule;
  /** A save that runs now (any trigger), from SnapshotService.saveProgress. */
  saving?: SaveProgress;
  lastFailure?: Failure;
  lastSave?: DashboardSave;
}

/** A list record as a table row. */
export function rowOf(r: SnapshotRecord): DashboardSnapshot {
  const note = recordNote(r);
  const store = r.location.startsWith('s3://') ? 's3' : r.location.startsWith('file://') ? 'local' : '';
  return {
    name: r.name,
    node: r.nodeName,
    location: r.location,
    store,
    size: r.size,
    createdAt: r.createdAt,
    compression: r.compression ?? (r.compressed ? 'zip' : 'none'),
    encrypted: r.encryption !== undefined || r.name.endsWith('.age'),
    status: r.status,
    ...(r.message !== undefined ? { message: r.message } : {}),
    ...(r.durationMs !== undefined ? { durationMs: r.durationMs } : {}),
    ...(r.drill !== undefined ? { drill: drillOf(r.drill) } : {}),
    ...(note !== '' ? { note } : {}),
    ...(r.newerRecord !== undefined ? { newerRecord: r.newerRecord } : {}),
  };
}

function drillOf(d: DrillResult): DashboardDrill {
  return {
    status: d.status,
    at: d.at,
    durationMs: d.durationMs,
    ...(d.message !== undefined ? { message: d.message } : {}),
    ...(d.revision !== undefined ? { revision: d.revision } : {}),
    ...(d.keys !== undefined ? { keys: d.keys } : {}),
  };
}

/** The newest of the failed rows (a failed save or upload, by its record) and the failures seen (by time). */
export function lastFailure(rows: readonly DashboardSnapshot[], seen: Failure | undefined): Failure | undefined {
  let best = seen;
  for (const r of rows) {
    if (r.status !== 'failed') continue;
    const f: Failure = { at: r.createdAt, what: r.store === 's3' ? `upload of ${r.name}` : `save of ${r.name}`, message: r.message ?? '' };
    if (!best || Date.parse(f.at) > Date.parse(best.at)) best = f;
  }
  return best;
}

/** Failures this process saw that leave no record (a refused save, a scheduled save's error). */
export class Activity {
  private failure: Failure | undefined;
  lastSave: DashboardSave | undefined;

  noteFailure(what: string, message: string, at = new Date()): void {
    this.failure = { at: at.toISOString().replace(/\.\d{3}Z$/, 'Z'), what, message };
  }

  get lastFailure(): Failure | undefined {
    return this.failure;
  }
}
