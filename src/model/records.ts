/**
 * Snapshot records: what ls shows and what the JSON sidecar at
 * `<snapshot-dir>/../.metadata/<file>` (k3s's place) holds. Pure types and helpers.
 *
 * A sidecar carries `formatVersion` (format-version.ts; k3s ignores unknown fields, and a
 * sidecar without it is version 1, what 0.1.0 wrote). `sidecarText` writes it; `parseRecord`
 * and `recordFromBucketSidecar` read every version up to RECORD_FORMAT_VERSION and throw the
 * one-line `environment` error of format-version.ts for a newer one (a store's listing shows
 * such a snapshot with `newerRecord` instead of failing).
 */
import { assertReadable, checkFormatVersion, RECORD_FORMAT_VERSION } from './format-version.js';
import { type Compression, isCompression, type SnapshotEncoding, splitEncodedName } from './encoding.js';
import { isSafeName, parseSnapshotName } from './naming.js';

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
  /** Any compression (k3s's field: true for its zip). */
  compressed: boolean;
  /** Which compression, when compressed (absent in k3s's records and ours before it existed). */
  compression?: Exclude<Compression, 'none'>;
  /** Set when the snapshot is age-encrypted: for whom (public keys only, never a secret). */
  encryption?: SnapshotEncryption;
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
  /**
   * Set (true) on a local file whose name does not follow etcdsnap's naming scheme
   * (`<name>-<node>-<unix seconds>[.zip]`) but whose content is a snapshot, e.g. one from
   * `etcdctl snapshot save` (see store/snapshot-kind.ts); absent otherwise. Retention never
   * selects such a file; `delete` takes it by name.
   */
  foreignName?: boolean;
  /**
   * Set only by a store's listing, never read from a sidecar: the sidecar was written by a
   * newer etcdsnap (the one-line reason). The entry then holds only what the store itself
   * knows (name, location, size, created time); restoring or downloading it is refused.
   */
  newerRecord?: string;
  /** The last restore drill of this snapshot (snapshot/drill.ts); absent when never drilled. */
  drill?: DrillResult;
}

/** The listing's note for a snapshot whose name is not etcdsnap's (`foreignName`). */
export const FOREIGN_NAME_NOTE = 'foreign name';
/** The listing's note for a snapshot whose record a newer etcdsnap wrote (`newerRecord`; the record has the whole reason). */
export const NEWER_RECORD_NOTE = 'record from a newer etcdsnap: upgrade this node';

/** What `ls`'s Note column and the dashboard say of a record ('' when nothing). */
export function recordNote(r: Pick<SnapshotRecord, 'foreignName' | 'newerRecord'>): string {
  return [r.foreignName === true ? FOREIGN_NAME_NOTE : '', r.newerRecord !== undefined ? NEWER_RECORD_NOTE : ''].filter((n) => n !== '').join('; ');
}

/** The outcome of a restore drill (docs/drills.md). */
export type DrillStatus = 'passed' | 'failed';

export interface DrillResult {
  status: DrillStatus;
  /** RFC 3339: when the drill started. */
  at: string;
  /** How long it took, in milliseconds. */
  durationMs: number;
  /** Where the drilled bytes came from. */
  source?: 'local' | 's3';
  /** What failed (a failed drill), cut to MAX_MESSAGE_CHARS. */
  message?: string;
  /** The revision the restored member served (a passed drill). */
  revision?: string;
  /** The number of keys the restored member served (a passed drill). */
  keys?: number;
}

export interface SnapshotEncryption {
  /** The format: age (age-encryption.org/v1). */
  format: 'age';
  /** The recipients (`age1...`) whose identities open it. */
  recipients: string[];
}

/** Most recipients a record keeps (a longer list is refused as a whole). */
export const MAX_RECORD_RECIPIENTS = 64;
/** An age recipient as records keep it: `age1` and bech32 characters (X25519: 62 characters; post-quantum ones are longer). */
const RECIPIENT = /^age1[02-9ac-hj-np-z]{20,2100}$/;

/** Whether `v` has the shape of an age recipient (the full check, with its bech32 checksum, is codec/age.ts). */
export const isRecipientText = (v: unknown): boolean => typeof v === 'string' && RECIPIENT.test(v);

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

/** The record of a save that failed (shown by ls for `FAILED_RECORD_TTL_MS`); nothing was kept. */
export function failedRecord(name: string, nodeName: string, started: Date, enc: SnapshotEncoding, message: string): SnapshotRecord {
  return { name, location: '', nodeName, createdAt: createdAtFromName(name, started), size: 0, ...encodingFields(enc), status: 'failed', message };
}

/** The compression fields a file name gives (`.zip`, `.zst`, `.gz` before an optional `.age`), for records without a sidecar. */
export function compressionFromName(name: string): Pick<SnapshotRecord, 'compressed' | 'compression'> {
  const c = splitEncodedName(name).compression;
  return c === 'none' ? { compressed: false } : { compressed: true, compression: c };
}

/** How the snapshot of `r` is stored, as its record says (a `compressed` record without `compression` is k3s's zip). */
export function encodingOfRecord(r: SnapshotRecord): SnapshotEncoding {
  return { compression: r.compression ?? (r.compressed ? 'zip' : 'none'), recipients: r.encryption?.recipients ?? [] };
}

/** The record fields that say how a snapshot written with `enc` is stored. */
export function encodingFields(enc: SnapshotEncoding): Pick<SnapshotRecord, 'compressed' | 'compression' | 'encryption'> {
  return {
    compressed: enc.compression !== 'none',
    ...(enc.compression !== 'none' ? { compression: enc.compression } : {}),
    ...(enc.recipients.length > 0 ? { encryption: { format: 'age', recipients: [...enc.recipients] } } : {}),
  };
}

/** Longest `message` kept from a sidecar (longer ones are cut). */
export const MAX_MESSAGE_CHARS = 4096;

const SHA256_HEX = /^[0-9a-f]{64}$/;
/** C0 and C1 control characters and DEL: never kept in a text field (terminal escapes). */
// biome-ignore lint/suspicious/noControlCharactersInRegex: the point is to find control characters
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
/** A string of at most `maxBytes` UTF-8 bytes without control characters. */
const isText = (v: unknown, maxBytes: number): v is string => typeof v === 'string' && !CONTROL.test(v) && Buffer.byteLength(v) <= maxBytes;
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isStatus = (v: unknown): v is SnapshotStatus => v === 'successful' || v === 'failed';
const isTime = (v: unknown): v is string => isText(v, 64) && !Number.isNaN(Date.parse(v));
/** Control characters become spaces and the text is cut to MAX_MESSAGE_CHARS. */
const cleanMessage = (v: string): string => v.replace(new RegExp(CONTROL.source, 'g'), ' ').slice(0, MAX_MESSAGE_CHARS);

function parseCopyState(v: unknown): S3CopyState | undefined {
  if (!isObject(v) || !isText(v.location, 4096) || !isStatus(v.status) || !isCount(v.attempts) || !isTime(v.updatedAt)) return undefined;
  const out: S3CopyState = { location: v.location, status: v.status, attempts: v.attempts, updatedAt: v.updatedAt };
  if (typeof v.message === 'string') out.message = cleanMessage(v.message);
  return out;
}

/** A drill result with every field checked (a bad required field drops it whole; a bad optional one is dropped). */
export function parseDrillResult(v: unknown): DrillResult | undefined {
  if (!isObject(v) || (v.status !== 'passed' && v.status !== 'failed') || !isTime(v.at)) return undefined;
  if (typeof v.durationMs !== 'number' || !Number.isFinite(v.durationMs) || v.durationMs < 0) return undefined;
  const out: DrillResult = { status: v.status, at: v.at, durationMs: v.durationMs };
  if (v.source === 'local' || v.source === 's3') out.source = v.source;
  if (typeof v.message === 'string') out.message = cleanMessage(v.message);
  if (typeof v.revision === 'string' && /^\d{1,20}$/.test(v.revision)) out.revision = v.revision;
  if (isCount(v.keys)) out.keys = v.keys;
  return out;
}

function parseEncryption(v: unknown): SnapshotEncryption | undefined {
  if (!isObject(v) || v.format !== 'age' || !Array.isArray(v.recipients)) return undefined;
  const r: unknown[] = v.recipients;
  if (r.length === 0 || r.length > MAX_RECORD_RECIPIENTS || !r.every((x): x is string => isRecipientText(x))) return undefined;
  return { format: 'age', recipients: [...r] };
}

/** The fields of a record, each checked for its type and shape. */
const FIELD_CHECKS: { [K in keyof SnapshotRecord]-?: (v: unknown) => SnapshotRecord[K] | undefined } = {
  name: (v) => (typeof v === 'string' && isSafeName(v) ? v : undefined),
  location: (v) => (isText(v, 4096) ? v : undefined),
  nodeName: (v) => (isText(v, 255) ? v : undefined),
  createdAt: (v) => (isTime(v) ? v : undefined),
  size: (v) => (isCount(v) ? v : undefined),
  // '' is what a save without a hash records; it matches no file
  sha256: (v) => (typeof v === 'string' && (v === '' || SHA256_HEX.test(v)) ? v : undefined),
  compressed: (v) => (typeof v === 'boolean' ? v : undefined),
  compression: (v) => (isCompression(v) && v !== 'none' ? v : undefined),
  encryption: (v) => parseEncryption(v),
  status: (v) => (isStatus(v) ? v : undefined),
  message: (v) => (typeof v === 'string' ? cleanMessage(v) : undefined),
  etcdVersion: (v) => (isText(v, 64) ? v : undefined),
  revision: (v) => (typeof v === 'string' && /^\d{1,20}$/.test(v) ? v : undefined),
  dbSize: (v) => (isCount(v) ? v : undefined),
  dbSha256: (v) => (typeof v === 'string' && SHA256_HEX.test(v) ? v : undefined),
  durationMs: (v) => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined),
  s3: (v) => parseCopyState(v),
  foreignName: (v) => (v === true ? true : undefined),
  newerRecord: () => undefined,
  drill: (v) => parseDrillResult(v),
};

/**
 * The known fields of a parsed sidecar that pass their check (`kept`), and the names of the
 * known fields that were present but failed it (`invalid`). Unknown fields are dropped.
 */
function checkFields(o: Record<string, unknown>): { kept: Partial<SnapshotRecord>; invalid: string[] } {
  const kept: Record<string, unknown> = {};
  const invalid: string[] = [];
  for (const [key, check] of Object.entries(FIELD_CHECKS) as Array<[keyof SnapshotRecord, (v: unknown) => unknown]>) {
    if (o[key] === undefined) continue;
    const v = check(o[key]);
    if (v === undefined) invalid.push(key);
    else kept[key] = v;
  }
  return { kept: kept as Partial<SnapshotRecord>, invalid };
}

/** The text of a sidecar for `record`: its fields and `formatVersion` (RECORD_FORMAT_VERSION), pretty JSON with a final newline. */
export function sidecarText(record: SnapshotRecord): string {
  const { newerRecord: _listingOnly, ...fields } = record;
  return `${JSON.stringify({ ...fields, formatVersion: RECORD_FORMAT_VERSION }, null, 2)}\n`;
}

/**
 * Whether the sidecar object `o` is of a format this etcdsnap reads: true for versions up to
 * RECORD_FORMAT_VERSION (absent: 1), false for a malformed version; throws the
 * `environment` error for a newer one. `where` names the sidecar's snapshot for the message.
 */
function readableVersion(o: Record<string, unknown>, where: string): boolean {
  const verdict = checkFormatVersion('record', o.formatVersion, `the record of ${where}`);
  if (!verdict.ok && verdict.reason === 'invalid') return false;
  assertReadable(verdict);
  return true;
}

function parseObject(text: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(text);
    return isObject(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Parses a local sidecar (one this program wrote). Returns undefined unless it is a JSON
 * object with a valid `name`, `createdAt` and `status`. Only known fields are kept, each only
 * when it has the right type and shape (a bad optional field is dropped, not trusted); text
 * fields never carry control characters. A sidecar of a newer format throws (see above);
 * `where` names its snapshot in that message.
 */
export function parseRecord(text: string, where = 'a snapshot'): SnapshotRecord | undefined {
  const o = parseObject(text);
  if (!o || !readableVersion(o, where)) return undefined;
  const { kept } = checkFields(o);
  if (kept.name === undefined || kept.createdAt === undefined || kept.status === undefined) return undefined;
  // fields in their usual order (ls -o yaml/json shows them so); defaults only for missing ones
  return {
    ...kept,
    location: kept.location ?? '',
    nodeName: kept.nodeName ?? '',
    size: kept.size ?? 0,
    compressed: kept.compressed ?? false,
  } as SnapshotRecord;
}

/** What a record built from a bucket sidecar takes from us, never from the sidecar. */
export type BucketRecordFacts = Pick<SnapshotRecord, 'name' | 'location' | 'createdAt' | 'size' | 'compressed'> & Pick<Partial<SnapshotRecord>, 'compression'>;

/**
 * A record from a sidecar read from S3 (anyone with write access to the bucket can have
 * written it). `facts` (name, location, created time, size, compression) are ours and
 * always win; the status is `successful` (the object exists); `message` and `s3` are never
 * taken. From the sidecar only `nodeName`, `sha256`, `etcdVersion`, `revision`, `dbSize`,
 * `dbSha256`, `durationMs`, `drill` (the last drill of that copy, shown by ls) and `encryption` (which recipients: shown, and named in the error
 * of a restore without a matching identity; the format itself is read from the bytes) are
 * kept, each only when well-formed. `invalid` lists the
 * fields the sidecar had in a bad shape (a caller checking a hash refuses when `sha256` is
 * among them). Undefined when the text is not a JSON object or its `formatVersion` is
 * malformed; a newer format throws (see above).
 */
export function recordFromBucketSidecar(text: string, facts: BucketRecordFacts): { record: SnapshotRecord; invalid: string[] } | undefined {
  const o = parseObject(text);
  if (!o || !readableVersion(o, facts.location)) return undefined;
  const { kept, invalid } = checkFields(o);
  const record: SnapshotRecord = { ...facts, nodeName: kept.nodeName ?? '', status: 'successful' };
  if (kept.sha256 !== undefined) record.sha256 = kept.sha256;
  if (kept.etcdVersion !== undefined) record.etcdVersion = kept.etcdVersion;
  if (kept.revision !== undefined) record.revision = kept.revision;
  if (kept.dbSize !== undefined) record.dbSize = kept.dbSize;
  if (kept.dbSha256 !== undefined) record.dbSha256 = kept.dbSha256;
  if (kept.durationMs !== undefined) record.durationMs = kept.durationMs;
  if (kept.encryption !== undefined) record.encryption = kept.encryption;
  if (kept.drill !== undefined) record.drill = kept.drill;
  return { record, invalid };
}
