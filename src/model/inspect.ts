/**
 * Snapshot inspection and selective restore on the wire (issue 13), shared by the server
 * (server/inspect-routes.ts), the CLI (cli/inspect-command.ts, cli/restore-keys-command.ts)
 * and snapshot/inspect.ts, which builds these values. Pure.
 *
 * Keys and values are bytes in etcd; on the wire a key is a string (`keyText`: UTF-8, with
 * invalid sequences replaced, for display) — the server never takes a key back from an
 * answer: restore-keys re-reads every key from the snapshot and the live cluster.
 *
 * Contract of the routes (docs/api.md, docs/inspect.md); every one needs the token:
 * - `GET /v1/snapshots/status?name=` → `InspectStatus`
 * - `GET /v1/snapshots/keys?name=&prefix=&limit=&revision=` → NDJSON, one `KeyInfo` a line
 * - `GET /v1/snapshots/get?name=&key=&revision=` → `KeyDetail` of snapshot/inspect.ts (404 when absent)
 * - `GET /v1/snapshots/stats?name=&prefix=` → `SnapshotStats` of inspect/stats.ts
 * - `GET /v1/snapshots/diff?name=&against=&prefix=&keys=` → NDJSON: with `keys`, one change a
 *   line, then the `DiffSummary` of inspect/diff.ts as the last line
 * - `POST /v1/snapshots/restore-keys` `RestoreKeysRequest` → `RestoreKeysResponse`
 */
import type { S3RequestBody } from './api.js';

/** A key's bytes as text for display and JSON. */
export function keyText(key: Buffer): string {
  return key.toString('utf8');
}

/** `etcdctl snapshot status -w json`'s fields (same names), then ours. */
export interface InspectStatus {
  hash: number;
  revision: number;
  totalKey: number;
  totalSize: number;
  /** Ours from here on. */
  snapshot: string;
  pageSize: number;
  trailer: 'ok' | 'absent';
  compactRevision: number;
  scheduledCompactRevision: number;
  consistentIndex: number;
  liveKeys: number;
  members: Array<{ id: string; name: string; peerURLs: string[]; isLearner: boolean }>;
}

/** One key of `keys`, without its value. */
export interface KeyInfo {
  key: string;
  createRevision: number;
  modRevision: number;
  version: number;
  lease: string;
  /** Bytes of the value (when values were read; else absent). */
  size?: number;
}

/** `restore-keys`: the snapshot by name, what to restore, and whether to write. */
export interface RestoreKeysRequest {
  /** A snapshot in the server's snapshot folder, or in S3 with `s3`. */
  name: string;
  /** Restore the keys under this prefix ... */
  prefix?: string;
  /** ... or these keys (exactly one of the two). */
  keys?: string[];
  /** Live keys to delete (only these are ever deleted). */
  deleteKeys?: string[];
  /** Read the snapshot at this revision (default: its latest). */
  revision?: number;
  /** false: plan only (dry run). */
  apply: boolean;
  /** With apply: the live revision of the plan to apply (default: plan at the latest). */
  planRevision?: number;
  s3?: S3RequestBody;
}

/** The actions of a plan, key by key. */
export type RestoreAction = 'create' | 'overwrite' | 'unchanged' | 'extra' | 'delete' | 'absent';

export const RESTORE_ACTIONS: readonly RestoreAction[] = ['create', 'overwrite', 'unchanged', 'extra', 'delete', 'absent'];

/** A key the apply did not write because it changed after the plan. */
export interface RestoreConflict {
  key: string;
  action: 'create' | 'overwrite' | 'delete';
  /** Why, for the user: what the compare expected. */
  reason: string;
}

/**
 * The plan (and, with apply, its outcome). Each list is in key order:
 * - `create`: in the snapshot, absent live: written (compare: absent);
 * - `overwrite`: in the snapshot, live value differs: written (compare: live mod revision
 *   unchanged since the plan);
 * - `unchanged`: live value identical: left alone;
 * - `extra`: live keys under the prefix that the snapshot does not hold: left alone;
 * - `delete`: `deleteKeys` alive at the plan: deleted (compare as overwrite);
 * - `absent`: `deleteKeys` not alive at the plan: nothing to do.
 * `conflicts` (apply only) are planned writes that were not made; every other planned
 * write was made.
 */
export interface RestoreKeysResponse {
  snapshot: string;
  snapshotRevision: number;
  /** The live revision the plan was made at. */
  planRevision: number;
  applied: boolean;
  create: string[];
  overwrite: string[];
  unchanged: string[];
  extra: string[];
  delete: string[];
  absent: string[];
  conflicts: RestoreConflict[];
}

/** An answer that does not have the shape of a `RestoreKeysResponse`. */
export class InspectShapeError extends Error {
  override readonly name = 'InspectShapeError';
}

const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');

/** The answer `v` to `restore-keys`, typed; an `InspectShapeError` naming the first wrong field otherwise. */
export function decodeRestoreKeysResponse(v: unknown): RestoreKeysResponse {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new InspectShapeError('the answer is not an object');
  const o = v as Record<string, unknown>;
  if (typeof o.snapshot !== 'string') throw new InspectShapeError('the answer.snapshot is not a string');
  for (const f of ['snapshotRevision', 'planRevision'] as const) if (typeof o[f] !== 'number') throw new InspectShapeError(`the answer.${f} is not a number`);
  if (typeof o.applied !== 'boolean') throw new InspectShapeError('the answer.applied is not true or false');
  for (const f of RESTORE_ACTIONS) if (!isStrings(o[f])) throw new InspectShapeError(`the answer.${f} is not a list of strings`);
  const conflicts = o.conflicts;
  if (!Array.isArray(conflicts)) throw new InspectShapeError('the answer.conflicts is not a list');
  conflicts.forEach((c: unknown, i) => {
    const ok =
      typeof c === 'object' &&
      c !== null &&
      typeof (c as Record<string, unknown>).key === 'string' &&
      typeof (c as Record<string, unknown>).reason === 'string' &&
      ['create', 'overwrite', 'delete'].includes(String((c as Record<string, unknown>).action));
    if (!ok) throw new InspectShapeError(`the answer.conflicts[${i}] is not a conflict`);
  });
  return o as unknown as RestoreKeysResponse; // every field was checked above
}
