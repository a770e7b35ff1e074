/**
 * The pure parts of a restore drill (drill.ts): which snapshot a drill takes, the disk it
 * needs, which keys it reads back, and how a result is shown. No I/O.
 */
import type { DrillResult, SnapshotRecord } from '../model/records.js';

/** Where a drill reads a snapshot: the local folder first (`auto`), or only one place. */
export type DrillFrom = 'auto' | 'local' | 's3';

/** A snapshot a drill can take, with the store it is in. */
export interface DrillCandidate {
  record: SnapshotRecord;
  store: 'local' | 's3';
}

/**
 * The newest snapshot among `local` and `s3` records that a drill can take: a successful
 * record with a location (never a failed save's record), from the stores `from` allows.
 * Newest by created time, then name; on a tie between the two stores the local copy wins
 * (no download). Undefined when there is none.
 */
export function newestDrillable(local: readonly SnapshotRecord[], s3: readonly SnapshotRecord[], from: DrillFrom): DrillCandidate | undefined {
  const ok = (r: SnapshotRecord): boolean => r.status === 'successful' && r.location !== '';
  const all: DrillCandidate[] = [
    ...(from !== 's3' ? local.filter(ok).map((record) => ({ record, store: 'local' as const })) : []),
    ...(from !== 'local' ? s3.filter(ok).map((record) => ({ record, store: 's3' as const })) : []),
  ];
  let best: DrillCandidate | undefined;
  for (const c of all) {
    if (best === undefined) {
      best = c;
      continue;
    }
    const byTime = c.record.createdAt.localeCompare(best.record.createdAt) || c.record.name.localeCompare(best.record.name);
    if (byTime > 0 || (byTime === 0 && c.store === 'local' && best.store === 's3')) best = c;
  }
  return best;
}

/** Room for etcd's own files besides the database (wal, snap), and a margin. */
export const DRILL_DISK_MARGIN = 64 * 1024 * 1024;

/**
 * The free bytes a drill of a snapshot stored in `storedBytes` needs: the download (S3), the
 * decoded file (at most `dbBytes`, the record's database size, when known; else assumed 10
 * times the stored size for an encoded snapshot), and the restored member (its database, the
 * same size again), plus `DRILL_DISK_MARGIN`.
 */
export function drillDiskNeed(storedBytes: number, dbBytes: number | undefined, encoded: boolean, fromS3: boolean): number {
  const db = dbBytes ?? (encoded ? storedBytes * 10 : storedBytes);
  return (fromS3 ? storedBytes : 0) + (encoded ? db : 0) + db + DRILL_DISK_MARGIN;
}

/** Keys a drill reads back at most. */
export const SAMPLE_KEYS = 16;

/**
 * Which of `total` keys (in key order) a drill reads back: up to `n`, spread evenly from the
 * first to the last. Answers their indexes, ascending.
 */
export function sampleIndexes(total: number, n = SAMPLE_KEYS): number[] {
  if (total <= 0 || n <= 0) return [];
  if (total <= n) return Array.from({ length: total }, (_, i) => i);
  if (n === 1) return [0];
  const out = new Set<number>();
  for (let i = 0; i < n; i++) out.add(Math.round((i * (total - 1)) / (n - 1)));
  return [...out].sort((a, b) => a - b);
}

/** A drill result in one cell of ls's table: `passed 2026-12-01T09:00:00Z`, `FAILED 2026-...`, or '' when never drilled. */
export function drillCell(d: DrillResult | undefined): string {
  if (d === undefined) return '';
  return `${d.status === 'passed' ? 'passed' : 'FAILED'} ${d.at}`;
}

/**
 * The revision a restored member serves for a snapshot whose file says `fileRevision`: the
 * same, except that etcd's revisions start at 1, so an empty keyspace (0 in the file) is
 * served as 1.
 */
export function servedRevision(fileRevision: number): number {
  return Math.max(1, fileRevision);
}
