/**
 * The supervisor API's snapshot endpoint on the wire (`POST /db/snapshot`), shared by the
 * server and the CLI. Pure.
 *
 * Contract:
 * - `SnapshotRequestBody` is what the CLI sends. The server parses it with
 *   `parseSnapshotRequest` (snapshot/request.ts), which checks every field with the option
 *   schema's validators (config/schema.ts) and fills absent S3 fields with the schema's
 *   defaults; nothing else reads a request body.
 * - `SnapshotResponses[op]` is what the server answers to a 2xx request of operation `op`
 *   (the handler in server/snapshots.ts is typed with it). The client decodes every answer
 *   with `decodeSnapshotResponse` (server/api-client.ts), which returns the value it was
 *   given, now typed, or throws a `ResponseShapeError` naming the first field that is
 *   wrong, so no caller casts a response.
 */
import type { DrillResult, SnapshotRecord, SnapshotStatus } from './records.js';

export type SnapshotOperation = 'save' | 'list' | 'delete' | 'prune';

export const SNAPSHOT_OPERATIONS: readonly SnapshotOperation[] = ['save', 'list', 'delete', 'prune'];

export type BucketLookup = 'auto' | 'dns' | 'path';

/**
 * The S3 settings of one request (the CLI's `--s3-*` flags), field by field the option of
 * config/schema.ts named in `S3_REQUEST_FIELDS` (snapshot/s3-config.ts); an absent field
 * takes that option's default. `endpointCA` is certificate content, never a path.
 */
export interface S3RequestBody {
  endpoint?: string;
  endpointCA?: string;
  skipSslVerify?: boolean;
  accessKey?: string;
  secretKey?: string;
  sessionToken?: string;
  bucket: string;
  region?: string;
  folder?: string;
  insecure?: boolean;
  /** Milliseconds (`--s3-timeout`). */
  timeoutMs?: number;
  proxy?: string;
  bucketLookup?: BucketLookup;
  retention?: number;
}

/** The body of `POST /db/snapshot` (modelled on k3s's SnapshotRequest). */
export interface SnapshotRequestBody {
  operation: SnapshotOperation;
  /** save, prune: the name prefix (first item); delete: the file names. */
  name?: string | string[];
  /** An absolute folder on the server, which must allow it (`--etcd-snapshot-api-dir`). */
  dir?: string;
  /** save: k3s's zip switch (`--snapshot-compress`). */
  compress?: boolean;
  /** save: `--snapshot-compression` (none, zip, zstd, gzip); must agree with `compress`. */
  compression?: string;
  /** save: more age recipients (`age1...`), added to the server's own. */
  encryptRecipients?: string[];
  /** prune: snapshots to keep (neither this nor `retentionPolicy`: the server's policy, else its `--etcd-snapshot-retention`). */
  retention?: number;
  /**
   * prune: a time-bucket policy (`--snapshot-retention-policy`, model/retention-policy.ts),
   * applied to the local folder and `s3` alike; not with `retention`. Neither given: the
   * server's policy, else its count.
   */
  retentionPolicy?: string;
  dryRun?: boolean;
  /** list: read S3 sidecars too (json/yaml output). */
  details?: boolean;
  s3?: S3RequestBody;
}

export interface SaveResponse {
  created: SnapshotRecord[];
  deleted: string[];
  /** Why the S3 upload failed (the local snapshot is kept and the upload retried). */
  s3Error?: string;
}

export interface ListResponse {
  items: SnapshotRecord[];
  /** Why S3 could not be listed (`items` then holds the local snapshots only). */
  s3Error?: string;
  /**
   * The change log's restorable range per chain (docs/point-in-time-restore.md), when the
   * list is of the server's own snapshot folder; absent from older servers and for `--dir`.
   */
  changelog?: ChainRange[];
}

/** A point a restore can reach: an etcd revision and its time (RFC 3339). */
export interface RestorablePoint {
  revision: number;
  time: string;
}

/**
 * One chain of the change log: the revisions its segments hold without a gap up to its
 * newest sealed one (`first`..`latest.revision`), and the range a restore to a point can
 * reach with it: from the oldest kept local snapshot it starts from (`earliest`, absent when
 * no kept snapshot is at revision `first - 1` or later within the chain) to its last sealed
 * revision (`latest`, the time the writer saw it).
 */
export interface ChainRange {
  chain: string;
  first: number;
  segments: number;
  earliest?: RestorablePoint & { snapshot: string };
  latest: RestorablePoint;
}

export interface DeleteResponse {
  deleted: string[];
  notFound: string[];
}

/** One snapshot of a prune's set: kept or removed, and why (retention/buckets.ts reasons). */
export interface PruneDecision {
  store: 'local' | 's3';
  name: string;
  /** `file://...` or `s3://bucket/folder/name`. */
  location: string;
  /** The time in its name, RFC 3339 (UTC). */
  time: string;
  /** The same in the server's zone, as the buckets used it (`2026-11-30 14:05:00 +01:00`). */
  localTime: string;
  keep: boolean;
  reasons: string[];
}

export interface PruneResponse {
  /** What was removed (with `dryRun`: what would be). */
  deleted: string[];
  /** The policy applied (`last=3,daily=7`), absent for count-based retention; absent from older servers. */
  policy?: string;
  /** The count applied locally, for count-based retention; absent from older servers. */
  retention?: number;
  /** The zone the policy's buckets used (`Europe/Berlin`); with `policy`. */
  timeZone?: string;
  /** Every snapshot of the set, each store newest first; absent from older servers. */
  decisions?: PruneDecision[];
}

/** The answer to each operation. */
export interface SnapshotResponses {
  save: SaveResponse;
  list: ListResponse;
  delete: DeleteResponse;
  prune: PruneResponse;
}

/** An answer that does not have the shape its request expects; `message` is one line. */
export class ResponseShapeError extends Error {
  override readonly name = 'ResponseShapeError';
}

export type Decoder<T> = (v: unknown, at: string) => T;

export const fail = (at: string, expected: string): never => {
  throw new ResponseShapeError(`${at} is not ${expected}`);
};

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export function object(v: unknown, at: string): Record<string, unknown> {
  return isObject(v) ? v : fail(at, 'an object');
}

export function str(v: unknown, at: string): string {
  return typeof v === 'string' ? v : fail(at, 'a string');
}

export function optional<T>(d: Decoder<T>): Decoder<T | undefined> {
  return (v, at) => (v === undefined ? undefined : d(v, at));
}

export function array<T>(d: Decoder<T>): Decoder<T[]> {
  return (v, at) => {
    if (!Array.isArray(v)) return fail(at, 'a list');
    v.forEach((item, i) => {
      d(item, `${at}[${i}]`);
    });
    return v as T[]; // each item was checked by `d`
  };
}

const strings = array(str);

const isStatus = (v: unknown): v is SnapshotStatus => v === 'successful' || v === 'failed';

/**
 * A snapshot record as the server sends it: the fields `ls` prints must have their types;
 * the others, when present, too. The object is returned as it came (field order kept, so
 * `ls -o json` prints what the server sent).
 */
const record: Decoder<SnapshotRecord> = (v, at) => {
  const o = object(v, at);
  for (const key of ['name', 'location', 'nodeName', 'createdAt'] as const) str(o[key], `${at}.${key}`);
  if (typeof o.size !== 'number') fail(`${at}.size`, 'a number');
  if (typeof o.compressed !== 'boolean') fail(`${at}.compressed`, 'true or false');
  if (!isStatus(o.status)) fail(`${at}.status`, 'successful or failed');
  for (const key of ['sha256', 'message', 'etcdVersion', 'revision', 'dbSha256'] as const) optional(str)(o[key], `${at}.${key}`);
  for (const key of ['dbSize', 'durationMs'] as const) if (o[key] !== undefined && typeof o[key] !== 'number') fail(`${at}.${key}`, 'a number');
  if (o.foreignName !== undefined && typeof o.foreignName !== 'boolean') fail(`${at}.foreignName`, 'true or false');
  if (o.drill !== undefined) drillResult(o.drill, `${at}.drill`);
  if (o.s3 !== undefined) {
    const c = object(o.s3, `${at}.s3`);
    str(c.location, `${at}.s3.location`);
    if (!isStatus(c.status)) fail(`${at}.s3.status`, 'successful or failed');
  }
  return o as unknown as SnapshotRecord; // every field was checked above
};

const records = array(record);

/** `POST /v1/snapshots/drill`'s body (docs/drills.md): a snapshot name (default: the newest) and where to read it. */
export interface DrillRequestBody {
  name?: string;
  /** `auto` (default): the snapshot folder, then S3; `local` or `s3`: only there. */
  from?: 'auto' | 'local' | 's3';
}

/** The answer: the snapshot drilled, the store it came from, and the result written to its record. */
export interface DrillResponse {
  snapshot: string;
  store: 'local' | 's3';
  result: DrillResult;
}

const drillResult: Decoder<DrillResult> = (v, at) => {
  const o = object(v, at);
  if (o.status !== 'passed' && o.status !== 'failed') fail(`${at}.status`, 'passed or failed');
  str(o.at, `${at}.at`);
  if (typeof o.durationMs !== 'number') fail(`${at}.durationMs`, 'a number');
  for (const key of ['message', 'revision'] as const) optional(str)(o[key], `${at}.${key}`);
  if (o.keys !== undefined && typeof o.keys !== 'number') fail(`${at}.keys`, 'a number');
  return o as unknown as DrillResult; // every field was checked above
};

/** The answer to a drill request, typed; a `ResponseShapeError` when it has another shape. */
export function decodeDrillResponse(v: unknown): DrillResponse {
  const o = object(v, 'the answer');
  str(o.snapshot, 'the answer.snapshot');
  if (o.store !== 'local' && o.store !== 's3') fail('the answer.store', 'local or s3');
  drillResult(o.result, 'the answer.result');
  return o as unknown as DrillResponse; // every field was checked above
}

/** Checks the fields of `o` with `fields`; returns `o` typed. */
export function shaped<T>(fields: { [K in keyof T]-?: Decoder<T[K]> }): Decoder<T> {
  return (v, at) => {
    const o = object(v, at);
    for (const [key, d] of Object.entries(fields) as Array<[string, Decoder<unknown>]>) d(o[key], `${at}.${key}`);
    return o as T; // every field was checked above
  };
}

/** A whole non-negative revision. */
export const revision: Decoder<number> = (v, at) => (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : fail(at, 'a revision'));

const point: Decoder<RestorablePoint> = (v, at) => shaped<RestorablePoint>({ revision, time: str })(v, at);

/** A chain's restorable range, every field checked. */
export const chainRange: Decoder<ChainRange> = (v, at) => {
  const o = shaped<Omit<ChainRange, 'earliest'>>({ chain: str, first: revision, segments: revision, latest: point })(v, at);
  if ((o as { earliest?: unknown }).earliest !== undefined) {
    const e = (o as { earliest?: unknown }).earliest;
    point(e, `${at}.earliest`);
    str(object(e, `${at}.earliest`).snapshot, `${at}.earliest.snapshot`);
  }
  return o as ChainRange; // every field was checked above
};

const storeKind: Decoder<PruneDecision['store']> = (v, at) => (v === 'local' || v === 's3' ? v : fail(at, 'local or s3'));
const pruneDecision: Decoder<PruneDecision> = (v, at) =>
  shaped<PruneDecision>({ store: storeKind, name: str, location: str, time: str, localTime: str, keep: bool, reasons: strings })(v, at);

const DECODERS: { [K in SnapshotOperation]: Decoder<SnapshotResponses[K]> } = {
  save: shaped<SaveResponse>({ created: records, deleted: strings, s3Error: optional(str) }),
  list: shaped<ListResponse>({ items: records, s3Error: optional(str), changelog: optional(array(chainRange)) }),
  delete: shaped<DeleteResponse>({ deleted: strings, notFound: strings }),
  prune: shaped<PruneResponse>({
    deleted: strings,
    policy: optional(str),
    retention: optional(revision),
    timeZone: optional(str),
    decisions: optional(array(pruneDecision)),
  }),
};

/** The answer `v` to a request of operation `op`, typed; a `ResponseShapeError` when it has another shape. */
export function decodeSnapshotResponse<O extends SnapshotOperation>(op: O, v: unknown): SnapshotResponses[O] {
  const decode: Decoder<SnapshotResponses[O]> = DECODERS[op];
  return decode(v, 'the answer');
}

/**
 * `GET /db/snapshot/progress`: the save that runs now on the server, if any (scheduled or
 * on-demand). `bytes` counts what was read from etcd; `totalBytes` is etcd's db size taken
 * just before (the snapshot is about that big); `phase` is `committing` once etcd's stream
 * ended (files synced, uploads finishing).
 */
export interface SaveProgress {
  name: string;
  phase: 'streaming' | 'committing';
  bytes: number;
  totalBytes: number;
  /** RFC 3339. */
  startedAt: string;
  scheduled: boolean;
}

export type SaveProgressResponse = { saving: false } | ({ saving: true } & SaveProgress);

export const num: Decoder<number> = (v, at) => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : fail(at, 'a number'));
export const bool: Decoder<boolean> = (v, at) => (typeof v === 'boolean' ? v : fail(at, 'true or false'));
const phase: Decoder<SaveProgress['phase']> = (v, at) => (v === 'streaming' || v === 'committing' ? v : fail(at, 'streaming or committing'));

/** The answer to `GET /db/snapshot/progress`, typed; a `ResponseShapeError` when it has another shape. */
export function decodeSaveProgress(v: unknown): SaveProgressResponse {
  const o = object(v, 'the answer');
  if (o.saving === false) return { saving: false };
  if (o.saving !== true) return fail('the answer.saving', 'true or false');
  const p = shaped<SaveProgress>({ name: str, phase, bytes: num, totalBytes: num, startedAt: str, scheduled: bool })(o, 'the answer');
  return { saving: true, ...p };
}

/** `GET /v1/cluster/bootstrap`: the cluster CA, handed to a joining server (token only). */
export interface ClusterBootstrapResponse {
  caCert: string;
  caKey: string;
}

/** `POST /v1/cluster/members {name, peerURL}`: the learner's member ID and etcd's `--initial-cluster`. */
export interface MemberAddResponse {
  id: string;
  initialCluster: string;
}

/** The answer to `GET /v1/cluster/bootstrap`, typed; a `ResponseShapeError` when it has another shape. */
export const decodeClusterBootstrap = (v: unknown): ClusterBootstrapResponse => shaped<ClusterBootstrapResponse>({ caCert: str, caKey: str })(v, 'the answer');

/** The answer to `POST /v1/cluster/members`, typed; a `ResponseShapeError` when it has another shape. */
export const decodeMemberAdd = (v: unknown): MemberAddResponse => shaped<MemberAddResponse>({ id: str, initialCluster: str })(v, 'the answer');
