/**
 * Snapshot records: what ls shows and what the JSON sidecar at
 * `<snapshot-dir>/../.metadata/<file>` (k3s's place) holds. Pure types and helpers.
 */
import { parseSnapshotName } from './naming.js';

export type SnapshotStatus = 'successful' | 'failed';

export interface SnapshotRecord {
  /** File name (basename). */
  name: string;
  /** `file://<abs path>` or `s3://<bucket>/<key>`; empty for a failed save. */
  location: string;
  /** Node that took the snapshot. */
  nodeName: string;
  /** RFC3339, from the timestamp in the name. */
  createdAt: string;
  /** Size of the stored file in bytes. */
  size: number;
  /** sha256 (hex) of the stored file (the zip for compressed snapshots). */
  sha256?: string;
  compressed: boolean;
  status: SnapshotStatus;
  /** Error message of a failed save or upload. */
  message?: string;
  etcdVersion?: string;
  /** etcd revision when the snapshot was taken. */
  revision?: string;
  /** etcd's database size in bytes (status call before the snapshot). */
  dbSize?: number;
  /** sha256 of the database, as in etcd's trailer. */
  dbSha256?: string;
  /** How long the save took, in milliseconds. */
  durationMs?: number;
  /** The S3 copy of a local snapshot (kept in the local sidecar). */
  s3?: S3CopyState;
}

export interface S3CopyState {
  location: string;
  status: SnapshotStatus;
  message?: string;
  /** Upload attempts so far. */
  attempts: number;
  updatedAt: string;
}

/** A failed record is shown for 24 hours, then expires. */
export const FAILED_RECORD_TTL_MS = 24 * 3600 * 1000;

export function createdAtFromName(name: string, fallback: Date): string {
  const p = parseSnapshotName(name);
  return new Date(p ? p.timestamp * 1000 : fallback.getTime()).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Sorted by created time, then name (as k3s's ls). */
export function sortRecords(records: SnapshotRecord[]): SnapshotRecord[] {
  return records.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.name.localeCompare(b.name) || a.location.localeCompare(b.location));
}

/** Parses a sidecar; returns undefined for anything that is not a record. */
export function parseRecord(text: string): SnapshotRecord | undefined {
  try {
    const r = JSON.parse(text) as Partial<SnapshotRecord>;
    if (typeof r.name !== 'string' || typeof r.createdAt !== 'string' || (r.status !== 'successful' && r.status !== 'failed')) return undefined;
    return r as SnapshotRecord;
  } catch {
    return undefined;
  }
}
