/**
 * The server side of the inspection routes: query parameters of `GET /v1/snapshots/...` and
 * the body of `POST /v1/snapshots/restore-keys` (`RestoreKeysRequest`, model/inspect.ts)
 * parsed into typed, checked values. Pure. Fields that carry an option (`prefix`, `limit`,
 * `revision`, `key`, `planRevision`...) are checked by that option's spec
 * (config/schema.ts `INSPECT_OPTIONS`), as the flag is; names by `assertStoreName`. Anything
 * wrong is a `usage` error (HTTP 400) naming the field.
 */
import { INSPECT_OPTIONS, jsonValue, specOf } from '../config/schema.js';
import { parseValue, valueFromJson } from '../config/values.js';
import { checkValue } from '../config/schema.js';
import { EtcdsnapError, messageOf } from '../errors.js';
import type { RestoreKeysRequest } from '../model/inspect.js';
import { assertStoreName } from '../store/store.js';
import { parseS3Request, type S3Options } from './s3-config.js';
import type { RestoreSelection } from './restore-keys.js';

const bad = (msg: string): EtcdsnapError => new EtcdsnapError('usage', msg);

/** Most keys one request may name (the body is bounded to 64 KiB anyway). */
export const MAX_REQUEST_KEYS = 10_000;

/** A query parameter as the value of the option `key`; undefined when absent. */
function queryOption(q: URLSearchParams, param: string, key: string): string | number | boolean | undefined {
  const raw = q.get(param);
  if (raw === null) return undefined;
  const spec = specOf(INSPECT_OPTIONS, key);
  try {
    const v = checkValue(spec, parseValue(spec.type, raw));
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return v;
  } catch (err) {
    throw bad(`invalid query parameter "${param}": ${messageOf(err)}`);
  }
  throw bad(`invalid query parameter "${param}"`);
}

/** The parameters of the read routes: which snapshot, and the options the route takes. */
export interface InspectQuery {
  name: string;
  prefix?: Buffer;
  limit?: number;
  revision?: number;
  key?: Buffer;
  against?: string;
  keys: boolean;
}

const ALLOWED = new Set(['name', 'prefix', 'limit', 'revision', 'key', 'against', 'keys']);

/** Parses and checks a read route's query; `name` is required, `needs` lists what else is. */
export function parseInspectQuery(q: URLSearchParams, needs: ReadonlyArray<'key' | 'against'> = []): InspectQuery {
  for (const k of q.keys()) if (!ALLOWED.has(k)) throw bad(`unknown query parameter "${k.slice(0, 64)}"`);
  const name = q.get('name');
  if (name === null) throw bad('query parameter "name" is required: a snapshot name as etcd-snapshot ls shows it');
  const out: InspectQuery = { name: assertStoreName(name), keys: false };
  const prefix = queryOption(q, 'prefix', 'prefix');
  if (typeof prefix === 'string') out.prefix = Buffer.from(prefix, 'utf8');
  const limit = queryOption(q, 'limit', 'limit');
  if (typeof limit === 'number') out.limit = limit;
  const revision = queryOption(q, 'revision', 'revision');
  if (typeof revision === 'number') out.revision = revision;
  const keys = queryOption(q, 'keys', 'keys');
  out.keys = keys === true;
  const key = q.get('key');
  if (key !== null) out.key = Buffer.from(key, 'utf8');
  const against = q.get('against');
  if (against !== null) out.against = assertStoreName(against);
  for (const n of needs) if (out[n] === undefined) throw bad(`query parameter "${n}" is required`);
  return out;
}

/** A parsed restore-keys request. */
export interface ParsedRestoreKeys {
  name: string;
  selection: RestoreSelection;
  apply: boolean;
  planRevision?: number;
  dir?: string;
  s3?: S3Options;
}

const FIELDS = new Set<keyof RestoreKeysRequest | 'dir'>(['name', 'prefix', 'keys', 'deleteKeys', 'revision', 'apply', 'planRevision', 's3', 'dir']);
const isField = (k: string): k is keyof RestoreKeysRequest | 'dir' => (FIELDS as Set<string>).has(k);

function field(body: Record<string, unknown>, name: string, key: string): ReturnType<typeof jsonValue> | undefined {
  const v = body[name];
  if (v === undefined) return undefined;
  try {
    return jsonValue(specOf(INSPECT_OPTIONS, key), v);
  } catch (err) {
    throw bad(`invalid field "${name}": ${messageOf(err)}`);
  }
}

function keyList(body: Record<string, unknown>, name: string, key: string): Buffer[] | undefined {
  const v = field(body, name, key);
  if (v === undefined) return undefined;
  if (!Array.isArray(v)) throw bad(`invalid field "${name}": expected a list of keys`);
  if (v.length > MAX_REQUEST_KEYS) throw bad(`too many keys in "${name}" (at most ${MAX_REQUEST_KEYS}): use a prefix`);
  return v.map((k) => {
    if (k === '') throw bad(`invalid field "${name}": a key may not be empty`);
    return Buffer.from(k, 'utf8');
  });
}

const int = (v: ReturnType<typeof jsonValue> | undefined): number | undefined => (typeof v === 'number' ? v : undefined);

/** Parses and checks the body of `POST /v1/snapshots/restore-keys`. */
export function parseRestoreKeysRequest(body: Record<string, unknown>): ParsedRestoreKeys {
  for (const k of Object.keys(body)) if (!isField(k)) throw bad(`unknown field "${k.slice(0, 64)}" in restore-keys request`);
  if (typeof body.name !== 'string') throw bad('field "name" is required: a snapshot name as etcd-snapshot ls shows it');
  const name = assertStoreName(body.name);
  const prefix = field(body, 'prefix', 'prefix');
  const keys = keyList(body, 'keys', 'key');
  if ((prefix === undefined) === (keys === undefined)) throw bad('give "prefix" or "keys" (one of the two)');
  if (keys?.length === 0) throw bad('"keys" is empty');
  let apply = false;
  try {
    apply = body.apply === undefined ? false : valueFromJson('boolean', body.apply) === true;
  } catch (err) {
    throw bad(`invalid field "apply": ${messageOf(err)}`);
  }
  const planRevision = int(field(body, 'planRevision', 'plan-revision'));
  if (planRevision !== undefined && !apply) throw bad('"planRevision" needs "apply": true');
  const revision = int(field(body, 'revision', 'revision'));
  const selection: RestoreSelection = {
    ...(typeof prefix === 'string' ? { prefix: Buffer.from(prefix, 'utf8') } : {}),
    ...(keys !== undefined ? { keys } : {}),
    deleteKeys: keyList(body, 'deleteKeys', 'delete-key') ?? [],
    ...(revision !== undefined ? { revision } : {}),
  };
  const out: ParsedRestoreKeys = { name, selection, apply, ...(planRevision !== undefined ? { planRevision } : {}) };
  if (body.dir !== undefined) {
    if (typeof body.dir !== 'string') throw bad('invalid field "dir": expected an absolute path');
    out.dir = body.dir;
  }
  if (body.s3 !== undefined) out.s3 = parseS3Request(body.s3);
  return out;
}
