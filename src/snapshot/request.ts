/**
 * The server side of `POST /db/snapshot`: the wire body (`SnapshotRequestBody`,
 * model/api.ts, what the CLI sends) parsed into a `SnapshotRequest` for the handlers.
 * Pure: every field is checked here, so the handlers get typed, safe values. Fields that
 * carry an option (`compress`, `retention`, the save/prune name prefix, the `s3` object) are
 * validated by that option's spec (config/schema.ts), as the flag is.
 */
import { EtcdsnapError, messageOf } from '../errors.js';
import { jsonValue, SNAPSHOT_CLI_OPTIONS, specOf } from '../config/schema.js';
import { valueFromJson } from '../config/values.js';
import { SNAPSHOT_OPERATIONS, type SnapshotOperation, type SnapshotRequestBody } from '../model/api.js';
import { parseS3Request, type S3Options } from './s3-config.js';
import { parseRecipient } from '../codec/age.js';
import type { Compression } from '../model/encoding.js';
import { compressionOf, MAX_RECIPIENTS } from './encode.js';
import { parseRetentionPolicy, type BucketPolicy } from '../model/retention-policy.js';

export type { SnapshotOperation } from '../model/api.js';

export interface SnapshotRequest {
  operation: SnapshotOperation;
  /** save: prefix; prune: prefix; delete: file names. */
  name: string[];
  /**
   * An absolute folder on the server; the service accepts only allowed ones (the
   * configured snapshot dir, `--etcd-snapshot-api-dir`), see `resolveApiDir`.
   */
  dir?: string;
  /** save: the compression asked for (`compress` and `compression` together), if any. */
  compression?: Compression;
  /** save: age recipients to add to the server's. */
  recipients?: string[];
  retention?: number;
  /** prune: the time-bucket policy (never together with `retention`). */
  retentionPolicy?: BucketPolicy;
  dryRun?: boolean;
  /** list: read S3 sidecars too (json/yaml output). */
  details?: boolean;
  /** S3 settings for this request (only when the CLI was given --s3). */
  s3?: S3Options;
}

/** The wire fields and, for those that carry an option, its key in the etcd-snapshot options. */
const FIELDS: { readonly [K in keyof SnapshotRequestBody]-?: string | null } = {
  operation: null,
  name: 'name',
  dir: null,
  compress: 'snapshot-compress',
  compression: 'snapshot-compression',
  encryptRecipients: 'etcd-snapshot-encrypt-recipient',
  retention: 'snapshot-retention',
  retentionPolicy: 'snapshot-retention-policy',
  dryRun: null,
  details: null,
  s3: null,
};
const bad = (msg: string): EtcdsnapError => new EtcdsnapError('usage', msg);
const isField = (k: string): k is keyof SnapshotRequestBody => Object.hasOwn(FIELDS, k);
const isOperation = (v: unknown): v is SnapshotOperation => SNAPSHOT_OPERATIONS.some((op) => op === v);

/** `body[key]` checked by the spec of the option the field carries. */
function optionField(body: Record<string, unknown>, key: 'compress' | 'retention' | 'retentionPolicy' | 'compression'): boolean | number | string | undefined {
  const v = body[key];
  if (v === undefined) return undefined;
  try {
    const out = jsonValue(specOf(SNAPSHOT_CLI_OPTIONS, FIELDS[key] ?? key), v);
    if (typeof out === 'boolean' || typeof out === 'number' || typeof out === 'string') return out;
  } catch (err) {
    throw bad(`invalid field "${key}": ${messageOf(err)}`);
  }
  throw bad(`invalid field "${key}"`);
}

function optionalBoolean(body: Record<string, unknown>, key: string): boolean | undefined {
  const v = body[key];
  if (v === undefined) return undefined;
  try {
    return valueFromJson('boolean', v) === true;
  } catch (err) {
    throw bad(`invalid field "${key}": ${messageOf(err)}`);
  }
}

export function parseSnapshotRequest(body: Record<string, unknown>): SnapshotRequest {
  for (const k of Object.keys(body)) if (!isField(k)) throw bad(`unknown field "${k.slice(0, 64)}" in snapshot request`);
  const op = body.operation;
  if (!isOperation(op)) throw bad(`invalid operation: use one of ${SNAPSHOT_OPERATIONS.join(', ')}`);
  const rawName = body.name;
  let name: string[] = [];
  if (typeof rawName === 'string') name = [rawName];
  else if (Array.isArray(rawName)) {
    if (rawName.length > 1000) throw bad('too many names in one request (at most 1000)');
    if (!rawName.every((n): n is string => typeof n === 'string')) throw bad('invalid field "name": expected strings');
    name = rawName;
  } else if (rawName !== undefined) throw bad('invalid field "name": expected a string or a list of strings');
  // save and prune take a name prefix: the --name option's rules (delete's file names are checked by the service)
  const prefix = name[0];
  if ((op === 'save' || op === 'prune') && prefix !== undefined) {
    try {
      jsonValue(specOf(SNAPSHOT_CLI_OPTIONS, 'name'), prefix);
    } catch (err) {
      throw bad(`invalid field "name": ${messageOf(err)}`);
    }
  }
  const req: SnapshotRequest = { operation: op, name };
  const dir = body.dir;
  if (dir !== undefined) {
    if (typeof dir !== 'string' || dir.length > 4096) throw bad('invalid field "dir": expected a path');
    if (dir !== '' && (!dir.startsWith('/') || dir.includes('\0')))
      throw bad(`invalid snapshot dir ${JSON.stringify(dir.slice(0, 200))}: give an absolute path`);
    req.dir = dir;
  }
  const compress = optionField(body, 'compress');
  const compressionText = optionField(body, 'compression');
  try {
    const compression = compressionOf(typeof compress === 'boolean' ? compress : undefined, typeof compressionText === 'string' ? compressionText : undefined, {
      compress: 'field "compress"',
      compression: 'field "compression"',
    });
    if (compression !== undefined) req.compression = compression;
  } catch (err) {
    throw bad(messageOf(err));
  }
  const recipients = body.encryptRecipients;
  if (recipients !== undefined) {
    if (!Array.isArray(recipients) || recipients.length > MAX_RECIPIENTS || !recipients.every((r): r is string => typeof r === 'string' && r.length <= 4096)) {
      throw bad(`invalid field "encryptRecipients": expected at most ${MAX_RECIPIENTS} age recipients (age1... strings)`);
    }
    try {
      req.recipients = recipients.map((r) => parseRecipient(r));
    } catch (err) {
      throw bad(`invalid field "encryptRecipients": ${messageOf(err)}`);
    }
  }
  const retention = optionField(body, 'retention');
  if (typeof retention === 'number') req.retention = retention;
  const policyText = optionField(body, 'retentionPolicy');
  if (typeof policyText === 'string') {
    const policy = parseRetentionPolicy(policyText); // checked above: only '' can give none
    if (policy && req.retention !== undefined) throw bad('give "retention" or "retentionPolicy", not both: the policy replaces the count');
    if (policy) req.retentionPolicy = policy;
  }
  const dryRun = optionalBoolean(body, 'dryRun');
  if (dryRun !== undefined) req.dryRun = dryRun;
  const details = optionalBoolean(body, 'details');
  if (details !== undefined) req.details = details;
  if (body.s3 !== undefined) req.s3 = parseS3Request(body.s3);
  return req;
}
