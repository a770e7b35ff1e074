/**
 * Kubernetes-aware decoding of etcd values and keys (issue 13). Pure: no I/O, never throws on
 * any input bytes.
 *
 * `decodeValue(bytes)` recognises, in this order:
 *   1. Encrypted at rest: a value starting `k8s:enc:` (the API server's envelope,
 *      `k8s:enc:<provider>:<version>:<key name>:`) → `base64`, with `encryption` naming the
 *      provider and key; nothing inside is readable without the key.
 *   2. Protobuf storage: the magic `k8s\0` then a `runtime.Unknown` (typeMeta{apiVersion=1,
 *      kind=2}=1, raw=2, contentEncoding=3, contentType=4). `raw` is the object's protobuf; every
 *      built-in type (and every code-generated one) has ObjectMeta at field 1, so metadata is read
 *      from there for any kind, known or not. Only metadata is decoded: without the type's schema
 *      the rest of the object (spec, status, a Secret's data) stays undecoded. → `protobuf`.
 *   3. JSON storage (custom resources; built-ins in JSON clusters): a JSON object with string
 *      `apiVersion` and `kind` → `json`, the whole object in `object`, metadata extracted.
 *   4. Anything else: valid UTF-8 without control characters (tab, LF, CR allowed) → `text`;
 *      else → `base64`. Nothing is dropped.
 * A value with the protobuf magic that does not decode (truncated varint, length beyond the
 * end, a field of the wrong wire type, invalid UTF-8 in a string, no ObjectMeta with a name at
 * field 1, a content encoding we cannot undo) is shown as `base64` with `undecodable` saying
 * why, and `apiVersion`/`kind` when the envelope was readable: never a guessed field.
 *
 * Metadata follows the API server's JSON: empty strings, zero generation and empty maps are
 * left out (`omitempty`), map keys sorted, timestamps as RFC 3339 in UTC with whole seconds
 * (`2024-05-01T10:00:00Z`, metav1.Time drops nanoseconds), int64 values as numbers when safe,
 * else decimal strings. `managedFields` is summarised (fieldsV1 left out).
 *
 * Keys: see `parseRegistryKey` in `registry-key.ts`, re-exported here.
 */
import { stringify } from 'yaml';
import { asBool, asBytes, asInt64, asString, type ProtoField, type ProtoResult, readMessage, safeNumber } from './protobuf-k8s.js';
import { parseRegistryKey, type RegistryKey } from './registry-key.js';
import type { SnapshotKeyValue } from './types.js';

export { parseRegistryKey, type RegistryKey, resourceType } from './registry-key.js';

export interface OwnerReference {
  apiVersion?: string;
  kind?: string;
  name?: string;
  uid?: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

/** metav1.ManagedFieldsEntry without fieldsV1 (large, and rarely what a reader wants). */
export interface ManagedFieldsSummary {
  manager?: string;
  operation?: string;
  apiVersion?: string;
  time?: string;
  fieldsType?: string;
  subresource?: string;
}

export interface ObjectMetadata {
  name?: string;
  generateName?: string;
  namespace?: string;
  selfLink?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number | string;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number | string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
  finalizers?: string[];
  managedFields?: ManagedFieldsSummary[];
}

export interface DecodedValue {
  /** How the value is shown: decoded metadata (`protobuf`), the whole object (`json`), or its bytes. */
  encoding: 'protobuf' | 'json' | 'text' | 'base64';
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMetadata;
  /** The whole object (`json` only). */
  object?: Record<string, unknown>;
  text?: string;
  base64?: string;
  /** Why a value that looked like a Kubernetes object is shown as base64. */
  undecodable?: string;
  /** `<provider>:<version>:<key name>` of a value encrypted at rest. */
  encryption?: string;
}

/** One entry for display: the key (as text when printable, else base64), where it is in the registry, its revisions and value. */
export interface DecodedEntry {
  key?: string;
  keyBase64?: string;
  registry?: RegistryKey;
  createRevision: number;
  modRevision: number;
  version: number;
  lease: string;
  value: DecodedValue;
}

const MAGIC = Buffer.from([0x6b, 0x38, 0x73, 0x00]);
const ENC_PREFIX = Buffer.from('k8s:enc:', 'latin1');
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
// C0 controls except \t \n \r, DEL and C1 controls.
// biome-ignore lint/suspicious/noControlCharactersInRegex: this regex exists to find control characters
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/;

/** Thrown inside this module only; `decodeValue` turns it into an `undecodable` result. */
class Undecodable extends Error {}

function need<T>(r: ProtoResult<T>, where: string): T {
  if (!r.ok) throw new Undecodable(`${where}: ${r.error}`);
  return r.value;
}

/** The bytes as text when they are valid UTF-8 without control characters (tab, LF, CR allowed). */
export function printableText(bytes: Buffer): string | undefined {
  let s: string;
  try {
    s = utf8.decode(bytes);
  } catch {
    return undefined;
  }
  return CONTROL.test(s) ? undefined : s;
}

export function decodeValue(value: Buffer): DecodedValue {
  if (value.subarray(0, ENC_PREFIX.length).equals(ENC_PREFIX)) {
    const parts = value
      .subarray(ENC_PREFIX.length, ENC_PREFIX.length + 512)
      .toString('latin1')
      .split(':');
    const id = parts.length > 3 && parts.slice(0, 3).every((p) => /^[\x21-\x7e]{1,253}$/.test(p)) ? parts.slice(0, 3).join(':') : 'unknown';
    return { encoding: 'base64', base64: value.toString('base64'), encryption: id, undecodable: 'encrypted at rest' };
  }
  if (value.subarray(0, 4).equals(MAGIC)) return decodeProtobuf(value);
  const text = printableText(value);
  if (text !== undefined) {
    const json = decodeJson(text);
    if (json !== undefined) return json;
    return { encoding: 'text', text };
  }
  return { encoding: 'base64', base64: value.toString('base64') };
}

export function decodeEntry(kv: SnapshotKeyValue): DecodedEntry {
  const keyText = printableText(kv.key);
  const registry = parseRegistryKey(kv.key);
  return {
    ...(keyText === undefined ? { keyBase64: kv.key.toString('base64') } : { key: keyText }),
    ...(registry === undefined ? {} : { registry }),
    createRevision: kv.createRevision,
    modRevision: kv.modRevision,
    version: kv.version,
    lease: kv.lease,
    value: decodeValue(kv.value),
  };
}

function decodeProtobuf(value: Buffer): DecodedValue {
  const head: { apiVersion?: string; kind?: string } = {};
  try {
    let raw: Buffer | undefined;
    let contentEncoding = '';
    let contentType = '';
    for (const f of need(readMessage(value.subarray(4)), 'runtime.Unknown')) {
      if (f.field === 1) {
        for (const t of need(readMessage(need(asBytes(f), 'typeMeta')), 'typeMeta')) {
          if (t.field === 1) head.apiVersion = need(asString(t), 'typeMeta.apiVersion');
          else if (t.field === 2) head.kind = need(asString(t), 'typeMeta.kind');
        }
      } else if (f.field === 2) raw = need(asBytes(f), 'raw');
      else if (f.field === 3) contentEncoding = need(asString(f), 'contentEncoding');
      else if (f.field === 4) contentType = need(asString(f), 'contentType');
    }
    if (head.apiVersion === '') delete head.apiVersion;
    if (head.kind === '') delete head.kind;
    if (contentEncoding !== '') throw new Undecodable(`raw object has content encoding ${JSON.stringify(contentEncoding)}`);
    if (contentType !== '' && contentType !== 'application/vnd.kubernetes.protobuf')
      throw new Undecodable(`raw object has content type ${JSON.stringify(contentType)}`);
    if (raw === undefined) throw new Undecodable('runtime.Unknown has no raw object');
    const meta = lastOf(need(readMessage(raw), 'object'), 1);
    if (meta === undefined) throw new Undecodable('object has no ObjectMeta at field 1');
    const metadata = decodeObjectMeta(need(asBytes(meta), 'metadata'));
    if (metadata.name === undefined) throw new Undecodable('object has no ObjectMeta with a name at field 1');
    return { encoding: 'protobuf', ...head, metadata };
  } catch (err) {
    if (!(err instanceof Undecodable)) throw err;
    return { encoding: 'base64', ...head, base64: value.toString('base64'), undecodable: `protobuf: ${err.message}` };
  }
}

function lastOf(fields: ProtoField[], n: number): ProtoField | undefined {
  let found: ProtoField | undefined;
  for (const f of fields) if (f.field === n) found = f;
  return found;
}

const META_STRINGS: Partial<Record<number, 'name' | 'generateName' | 'namespace' | 'selfLink' | 'uid' | 'resourceVersion'>> = {
  1: 'name',
  2: 'generateName',
  3: 'namespace',
  4: 'selfLink',
  5: 'uid',
  6: 'resourceVersion',
};

function decodeObjectMeta(buf: Buffer): ObjectMetadata {
  const m: ObjectMetadata = {};
  const labels = new Map<string, string>();
  const annotations = new Map<string, string>();
  const ownerReferences: OwnerReference[] = [];
  const finalizers: string[] = [];
  const managedFields: ManagedFieldsSummary[] = [];
  for (const f of need(readMessage(buf), 'metadata')) {
    const s = META_STRINGS[f.field];
    if (s !== undefined) m[s] = need(asString(f), `metadata.${s}`);
    else if (f.field === 7) m.generation = safeNumber(need(asInt64(f), 'metadata.generation'));
    else if (f.field === 8 || f.field === 9) {
      const which = f.field === 8 ? 'creationTimestamp' : 'deletionTimestamp';
      const t = decodeTime(f, `metadata.${which}`);
      if (t === undefined) delete m[which];
      else m[which] = t;
    } else if (f.field === 10) m.deletionGracePeriodSeconds = safeNumber(need(asInt64(f), 'metadata.deletionGracePeriodSeconds'));
    else if (f.field === 11 || f.field === 12) {
      const [k, v] = decodeMapEntry(f, f.field === 11 ? 'metadata.labels' : 'metadata.annotations');
      (f.field === 11 ? labels : annotations).set(k, v);
    } else if (f.field === 13) ownerReferences.push(decodeOwnerReference(f));
    else if (f.field === 14) finalizers.push(need(asString(f), 'metadata.finalizers'));
    else if (f.field === 17) managedFields.push(decodeManagedFields(f));
  }
  // The API server's JSON leaves these out when empty (omitempty); protobuf writes them anyway.
  for (const s of Object.values(META_STRINGS)) if (s !== undefined && m[s] === '') delete m[s];
  if (m.generation === 0) delete m.generation;
  if (labels.size > 0) m.labels = sortedRecord(labels);
  if (annotations.size > 0) m.annotations = sortedRecord(annotations);
  if (ownerReferences.length > 0) m.ownerReferences = ownerReferences;
  if (finalizers.length > 0) m.finalizers = finalizers;
  if (managedFields.length > 0) m.managedFields = managedFields;
  return m;
}

/** A map<string,string> entry (key=1, value=2); absent parts are '' as in protobuf. */
function decodeMapEntry(f: ProtoField, where: string): [string, string] {
  let k = '';
  let v = '';
  for (const e of need(readMessage(need(asBytes(f), where)), where)) {
    if (e.field === 1) k = need(asString(e), `${where} key`);
    else if (e.field === 2) v = need(asString(e), `${where} value`);
  }
  return [k, v];
}

function decodeOwnerReference(f: ProtoField): OwnerReference {
  const where = 'metadata.ownerReferences';
  const r: OwnerReference = {};
  for (const e of need(readMessage(need(asBytes(f), where)), where)) {
    if (e.field === 1) r.kind = need(asString(e), `${where}.kind`);
    else if (e.field === 3) r.name = need(asString(e), `${where}.name`);
    else if (e.field === 4) r.uid = need(asString(e), `${where}.uid`);
    else if (e.field === 5) r.apiVersion = need(asString(e), `${where}.apiVersion`);
    else if (e.field === 6) r.controller = need(asBool(e), `${where}.controller`);
    else if (e.field === 7) r.blockOwnerDeletion = need(asBool(e), `${where}.blockOwnerDeletion`);
  }
  // In the API server's key order (apiVersion, kind, name, uid, controller, blockOwnerDeletion).
  const ordered: OwnerReference = {};
  for (const k of ['apiVersion', 'kind', 'name', 'uid', 'controller', 'blockOwnerDeletion'] as const) {
    if (r[k] !== undefined) Object.assign(ordered, { [k]: r[k] });
  }
  return ordered;
}

function decodeManagedFields(f: ProtoField): ManagedFieldsSummary {
  const where = 'metadata.managedFields';
  const r: ManagedFieldsSummary = {};
  const strings: Partial<Record<number, 'manager' | 'operation' | 'apiVersion' | 'fieldsType' | 'subresource'>> = {
    1: 'manager',
    2: 'operation',
    3: 'apiVersion',
    6: 'fieldsType',
    8: 'subresource',
  };
  for (const e of need(readMessage(need(asBytes(f), where)), where)) {
    const s = strings[e.field];
    if (s !== undefined) {
      const v = need(asString(e), `${where}.${s}`);
      if (v !== '') r[s] = v;
    } else if (e.field === 4) {
      const t = decodeTime(e, `${where}.time`);
      if (t !== undefined) r.time = t;
    }
  }
  return r;
}

/** metav1.Time: an empty message is the zero time (JSON null, left out); else seconds=1 (nanos=2 ignored, as metav1 does). */
function decodeTime(f: ProtoField, where: string): string | undefined {
  const buf = need(asBytes(f), where);
  if (buf.length === 0) return undefined;
  let seconds = 0n;
  for (const e of need(readMessage(buf), where)) {
    if (e.field === 1) seconds = need(asInt64(e), `${where}.seconds`);
    else if (e.field === 2) need(asInt64(e), `${where}.nanos`);
  }
  return formatTime(seconds, where);
}

/** RFC 3339 in UTC with whole seconds, as Go's time.RFC3339 prints it; years 1 to 9999 only. */
export function formatTime(seconds: bigint, where = 'time'): string {
  if (seconds < -62135596800n || seconds > 253402300799n) throw new Undecodable(`${where}: ${seconds} s is outside years 1 to 9999`);
  return new Date(Number(seconds) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function sortedRecord(m: Map<string, string>): Record<string, string> {
  // Object.fromEntries defines own properties, so a key such as "__proto__" stays a key.
  return Object.fromEntries([...m.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function decodeJson(text: string): DecodedValue | undefined {
  if (!/^\s*\{/.test(text)) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isRecord(parsed) || typeof parsed.apiVersion !== 'string' || typeof parsed.kind !== 'string') return undefined;
  const metadata = metadataFromJson(parsed.metadata);
  return { encoding: 'json', apiVersion: parsed.apiVersion, kind: parsed.kind, ...(metadata === undefined ? {} : { metadata }), object: parsed };
}

function stringMap(x: unknown): Record<string, string> | undefined {
  if (!isRecord(x)) return undefined;
  const m = new Map<string, string>();
  for (const [k, v] of Object.entries(x)) if (typeof v === 'string') m.set(k, v);
  return m.size > 0 ? sortedRecord(m) : undefined;
}

function pick<T extends object>(src: Record<string, unknown>, keys: readonly string[], ok: (v: unknown) => boolean): Partial<T> {
  const out: Record<string, unknown> = {};
  for (const k of keys) if (ok(src[k])) out[k] = src[k];
  return out as Partial<T>;
}

const nonEmptyString = (v: unknown): boolean => typeof v === 'string' && v !== '';

function metadataFromJson(x: unknown): ObjectMetadata | undefined {
  if (!isRecord(x)) return undefined;
  const keys = ['name', 'generateName', 'namespace', 'selfLink', 'uid', 'resourceVersion', 'creationTimestamp', 'deletionTimestamp'];
  const m: ObjectMetadata = pick<ObjectMetadata>(x, keys, nonEmptyString);
  if (typeof x.generation === 'number' && x.generation !== 0) m.generation = x.generation;
  if (typeof x.deletionGracePeriodSeconds === 'number') m.deletionGracePeriodSeconds = x.deletionGracePeriodSeconds;
  const labels = stringMap(x.labels);
  if (labels !== undefined) m.labels = labels;
  const annotations = stringMap(x.annotations);
  if (annotations !== undefined) m.annotations = annotations;
  const owners = (Array.isArray(x.ownerReferences) ? x.ownerReferences : []).filter(isRecord).map((r) => ({
    ...pick<OwnerReference>(r, ['apiVersion', 'kind', 'name', 'uid'], nonEmptyString),
    ...pick<OwnerReference>(r, ['controller', 'blockOwnerDeletion'], (v) => typeof v === 'boolean'),
  }));
  if (owners.length > 0) m.ownerReferences = owners;
  const finalizers = (Array.isArray(x.finalizers) ? x.finalizers : []).filter((f): f is string => typeof f === 'string');
  if (finalizers.length > 0) m.finalizers = finalizers;
  const managedKeys = ['manager', 'operation', 'apiVersion', 'time', 'fieldsType', 'subresource'];
  const managed = (Array.isArray(x.managedFields) ? x.managedFields : [])
    .filter(isRecord)
    .map((e) => pick<ManagedFieldsSummary>(e, managedKeys, nonEmptyString));
  if (managed.length > 0) m.managedFields = managed;
  return m;
}

/** Pretty JSON (2 spaces) with a final newline. */
export function renderJson(x: unknown): string {
  return `${JSON.stringify(x, null, 2)}\n`;
}

/**
 * YAML with a final newline, as kubectl would read it back: YAML 1.1 quoting (so `yes`, `on`,
 * `0123` stay strings for 1.1 readers such as kubectl), no folding of long lines, no anchors.
 */
export function renderYaml(x: unknown): string {
  return stringify(x, { version: '1.1', lineWidth: 0, aliasDuplicateObjects: false });
}
