/**
 * The wire format of `POST /db/snapshot` (the CLI's request to the server, modelled on
 * k3s's SnapshotRequest) and its validation. Pure: every field is checked here, so the
 * handlers get typed, safe values.
 */
import { EtcdsnapError } from '../errors.js';
import { parseS3Request, type S3Options } from './s3-config.js';

export type SnapshotOperation = 'save' | 'list' | 'delete' | 'prune';

export interface SnapshotRequest {
  operation: SnapshotOperation;
  /** save: prefix; prune: prefix; delete: file names. */
  name: string[];
  /**
   * An absolute folder on the server; the service accepts only allowed ones (the
   * configured snapshot dir, `--etcd-snapshot-api-dir`), see `resolveApiDir`.
   */
  dir?: string;
  compress?: boolean;
  retention?: number;
  dryRun?: boolean;
  /** list: read S3 sidecars too (json/yaml output). */
  details?: boolean;
  /** S3 settings for this request (only when the CLI was given --s3). */
  s3?: S3Options;
}

const FIELDS = new Set(['operation', 'name', 'dir', 'compress', 'retention', 'dryRun', 'details', 's3']);
const OPS: readonly SnapshotOperation[] = ['save', 'list', 'delete', 'prune'];
const bad = (msg: string): EtcdsnapError => new EtcdsnapError('usage', msg);

function optionalBoolean(body: Record<string, unknown>, key: string): boolean | undefined {
  const v = body[key];
  if (v !== undefined && typeof v !== 'boolean') throw bad(`invalid field "${key}": expected true or false`);
  return v;
}

export function parseSnapshotRequest(body: Record<string, unknown>): SnapshotRequest {
  for (const k of Object.keys(body)) if (!FIELDS.has(k)) throw bad(`unknown field "${k.slice(0, 64)}" in snapshot request`);
  const op = body['operation'];
  if (typeof op !== 'string' || !OPS.includes(op as SnapshotOperation)) {
    throw bad(`invalid operation: use one of ${OPS.join(', ')}`);
  }
  const rawName = body['name'];
  let name: string[] = [];
  if (typeof rawName === 'string') name = [rawName];
  else if (Array.isArray(rawName)) {
    if (rawName.length > 1000) throw bad('too many names in one request (at most 1000)');
    if (!rawName.every((n): n is string => typeof n === 'string')) throw bad('invalid field "name": expected strings');
    name = rawName;
  } else if (rawName !== undefined) throw bad('invalid field "name": expected a string or a list of strings');
  const req: SnapshotRequest = { operation: op as SnapshotOperation, name };
  const dir = body['dir'];
  if (dir !== undefined) {
    if (typeof dir !== 'string' || dir.length > 4096) throw bad('invalid field "dir": expected a path');
    if (dir !== '' && (!dir.startsWith('/') || dir.includes('\0'))) throw bad(`invalid snapshot dir ${JSON.stringify(dir.slice(0, 200))}: give an absolute path`);
    req.dir = dir;
  }
  const compress = optionalBoolean(body, 'compress');
  if (compress !== undefined) req.compress = compress;
  const retention = body['retention'];
  if (retention !== undefined) {
    if (typeof retention !== 'number' || !Number.isInteger(retention) || retention < 0 || retention > 100_000) {
      throw bad('invalid field "retention": expected a whole number from 0 to 100000');
    }
    req.retention = retention;
  }
  const dryRun = optionalBoolean(body, 'dryRun');
  if (dryRun !== undefined) req.dryRun = dryRun;
  const details = optionalBoolean(body, 'details');
  if (details !== undefined) req.details = details;
  if (body['s3'] !== undefined) req.s3 = parseS3Request(body['s3']);
  return req;
}
