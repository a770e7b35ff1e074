/**
 * The segment format of the change log (docs/point-in-time-restore.md, "Format"), pure:
 * encoding of each line and the strict decoder of a whole sealed segment.
 *
 * A segment is JSON lines (UTF-8, `\n` after every line):
 *   1. header  {"format":"etcdsnap-changelog","version":1,"chain":"<id>","cluster":"<id>","first":N}
 *   2. records {"r":rev,"t":ms,"e":[["p",key,value,create,version,"lease"],["d",key],...]}
 *      one per etcd revision, revisions contiguous from `first`; keys and values base64;
 *      a put's mod revision is the record's revision
 *   3. footer  {"sealed":{"first":N,"last":M,"records":k,"firstTime":ms,"lastTime":ms,"sealedAt":ms,"sha256":"<hex>"}}
 *      `sha256` over every byte before the footer line, so a sealed segment is verifiable
 *      on its own (its file name repeats chain, first and last: `segmentName`).
 *
 * Contract of `decodeSegment`: it answers only for a segment that is whole and consistent
 * (hash, header, every record, footer, the name's chain/first/last); anything else is an
 * `integrity` error of one line, "change log segment <name>: <what>". Lines are bounded
 * (`MAX_LINE_BYTES`), revisions contiguous, times never decreasing.
 */
import { createHash } from 'node:crypto';
import { EtcdsnapError } from '../errors.js';
import type { ChangeEvent, ChangeRecord } from '../model/changelog.js';
import { checkFormatVersion, FORMATS } from '../model/format-version.js';

export const FORMAT = 'etcdsnap-changelog';
export const FORMAT_VERSION = FORMATS.changelog.version;
/** The longest line a segment may hold (one revision's events, base64): 64 MiB. */
export const MAX_LINE_BYTES = 64 * 1024 * 1024;
/** Extension of a sealed segment; a segment being written ends in `.part`. */
export const SEGMENT_EXT = '.jsonl';

export interface SegmentHeader {
  chain: string;
  /** etcd's cluster ID (decimal, as the status call gives it) the revisions belong to. */
  cluster: string;
  first: number;
}

export interface SegmentFooter {
  first: number;
  last: number;
  records: number;
  firstTime: number;
  lastTime: number;
  /** When the writer sealed it: every revision seen before this time is in this segment or an earlier one. */
  sealedAt: number;
  sha256: string;
}

export interface Segment {
  name: string;
  header: SegmentHeader;
  footer: SegmentFooter;
  records: ChangeRecord[];
}

/** The parts of a segment's file name. */
export interface SegmentName {
  name: string;
  chain: string;
  first: number;
  last: number;
}

const CHAIN = /^[0-9a-f]{16}$/;
const DIGITS = 20;
const pad = (n: number): string => String(n).padStart(DIGITS, '0');

/** `<chain>-<first>-<last>.jsonl`, revisions zero-padded to 20 digits (names sort by revision). */
export const segmentName = (chain: string, first: number, last: number): string => `${chain}-${pad(first)}-${pad(last)}${SEGMENT_EXT}`;

/** The name of a segment being written: `<chain>-<first>.part`. */
export const partName = (chain: string, first: number): string => `${chain}-${pad(first)}.part`;

/** The parts of a sealed segment's name, or undefined for any other name. */
export function parseSegmentName(name: string): SegmentName | undefined {
  const m = /^([0-9a-f]{16})-(\d{20})-(\d{20})\.jsonl$/.exec(name);
  if (!m) return undefined;
  const first = Number(m[2]);
  const last = Number(m[3]);
  if (!Number.isSafeInteger(first) || !Number.isSafeInteger(last) || first < 1 || last < first) return undefined;
  return { name, chain: m[1] ?? '', first, last };
}

export const isChainId = (s: string): boolean => CHAIN.test(s);

const line = (o: unknown): Buffer => Buffer.from(`${JSON.stringify(o)}\n`, 'utf8');

export function encodeHeader(h: SegmentHeader): Buffer {
  return line({ format: FORMAT, version: FORMAT_VERSION, chain: h.chain, cluster: h.cluster, first: h.first });
}

export function encodeRecord(r: ChangeRecord): Buffer {
  const e = r.events.map((ev) =>
    ev.type === 'put'
      ? ['p', ev.key.toString('base64'), ev.value.toString('base64'), ev.createRevision, ev.version, ev.lease]
      : ['d', ev.key.toString('base64')],
  );
  return line({ r: r.revision, t: r.time, e });
}

export function encodeFooter(f: SegmentFooter): Buffer {
  return line({ sealed: f });
}

type Fail = (what: string) => never;

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isRev = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 1;
const isTime = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const B64 = /^[A-Za-z0-9+/]*={0,2}$/;

function b64(v: unknown, fail: Fail, what: string): Buffer {
  if (typeof v !== 'string' || v.length % 4 !== 0 || !B64.test(v)) return fail(`${what} is not base64`);
  return Buffer.from(v, 'base64');
}

function parseLine(text: string, fail: Fail, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return fail(`${what} is not JSON`);
  }
  return isObj(v) ? v : fail(`${what} is not a JSON object`);
}

function decodeHeader(o: Record<string, unknown>, fail: Fail): SegmentHeader {
  if (o.format !== FORMAT) return fail('the first line is not a change log header');
  // every version up to ours is read (model/format-version.ts); a newer one names the fix
  const verdict = checkFormatVersion('changelog', o.version ?? null, 'it');
  if (!verdict.ok)
    return fail(verdict.reason === 'newer' ? verdict.message : `format version ${JSON.stringify(o.version)} is not supported (expected ${FORMAT_VERSION})`);
  if (typeof o.chain !== 'string' || !CHAIN.test(o.chain)) return fail('the header has no valid chain id');
  if (typeof o.cluster !== 'string' || !/^\d{1,20}$/.test(o.cluster)) return fail('the header has no valid cluster id');
  if (!isRev(o.first)) return fail('the header has no valid first revision');
  return { chain: o.chain, cluster: o.cluster, first: o.first };
}

function decodeEvent(v: unknown, rev: number, fail: Fail): ChangeEvent {
  const at = `revision ${rev}: an event`;
  if (!Array.isArray(v)) return fail(`${at} is not an array`);
  const a: unknown[] = v;
  if (a[0] === 'd' && a.length === 2) return { type: 'delete', key: b64(a[1], fail, `${at}'s key`) };
  if (a[0] !== 'p' || a.length !== 6) return fail(`${at} is neither a put nor a delete`);
  const [, k, val, create, version, lease] = a;
  if (!isRev(create) || create > rev) return fail(`${at} has a bad create revision`);
  if (!isRev(version)) return fail(`${at} has a bad version`);
  if (typeof lease !== 'string' || !/^\d{1,20}$/.test(lease)) return fail(`${at} has a bad lease`);
  return { type: 'put', key: b64(k, fail, `${at}'s key`), value: b64(val, fail, `${at}'s value`), createRevision: create, modRevision: rev, version, lease };
}

function decodeRecord(o: Record<string, unknown>, expected: number, prevTime: number, fail: Fail): ChangeRecord {
  if (!isRev(o.r)) return fail(`record ${expected} has no valid revision`);
  if (o.r !== expected) return fail(`revision ${o.r} follows revision ${expected - 1}: revisions ${expected}..${o.r - 1} are missing or out of order`);
  if (!isTime(o.t)) return fail(`revision ${o.r} has no valid time`);
  if (o.t < prevTime) return fail(`revision ${o.r}'s time goes back`);
  if (!Array.isArray(o.e) || o.e.length === 0) return fail(`revision ${o.r} has no events`);
  const events = (o.e as unknown[]).map((e) => decodeEvent(e, expected, fail));
  return { revision: expected, time: o.t, events };
}

function decodeFooter(o: Record<string, unknown>, fail: Fail): SegmentFooter {
  const s = o.sealed;
  if (!isObj(s)) return fail('the last line is not a seal');
  const { first, last, records, firstTime, lastTime, sealedAt, sha256 } = s;
  if (!isRev(first) || !isRev(last) || !isTime(records) || !isTime(firstTime) || !isTime(lastTime) || !isTime(sealedAt))
    return fail('the seal has a missing or bad field');
  if (typeof sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(sha256)) return fail('the seal has no valid sha256');
  return { first, last, records, firstTime, lastTime, sealedAt, sha256 };
}

/**
 * Decodes and verifies the sealed segment `bytes` read from the file `name` (see the
 * module's contract). Throws `integrity` naming the segment and what is wrong.
 */
export function decodeSegment(name: string, bytes: Buffer): Segment {
  const fail: Fail = (what) => {
    throw new EtcdsnapError('integrity', `change log segment ${name}: ${what}`);
  };
  const parsed = parseSegmentName(name);
  if (!parsed) fail('not a segment name (<chain>-<first>-<last>.jsonl)');
  if (bytes.length === 0) fail('empty file');
  if (bytes[bytes.length - 1] !== 0x0a) fail('truncated: the last line has no end (not sealed)');
  // the footer is the last line; the hash covers everything before it
  const footerStart = bytes.lastIndexOf(0x0a, bytes.length - 2) + 1;
  if (footerStart === 0) fail('it has no records and no seal');
  if (bytes.length - footerStart > 4096) fail('the seal line is too long');
  const footer = decodeFooter(parseLine(bytes.subarray(footerStart, bytes.length - 1).toString('utf8'), fail, 'the seal'), fail);
  const body = bytes.subarray(0, footerStart);
  const actual = createHash('sha256').update(body).digest('hex');
  if (actual !== footer.sha256) fail(`sha256 ${actual} does not match its seal's ${footer.sha256}: the segment is corrupt`);
  let header: SegmentHeader | undefined;
  const records: ChangeRecord[] = [];
  let start = 0;
  let prevTime = 0;
  while (start < body.length) {
    const end = body.indexOf(0x0a, start);
    if (end - start > MAX_LINE_BYTES) fail(`line ${(header ? records.length : 0) + 1} is longer than ${MAX_LINE_BYTES} bytes`);
    const text = body.subarray(start, end).toString('utf8');
    start = end + 1;
    if (!header) {
      header = decodeHeader(parseLine(text, fail, 'the header'), fail);
      continue;
    }
    const r = decodeRecord(parseLine(text, fail, `record ${records.length + 1}`), header.first + records.length, prevTime, fail);
    prevTime = r.time;
    records.push(r);
  }
  if (!header) return fail('it has no header');
  const lastRec = records[records.length - 1];
  const firstRec = records[0];
  if (!lastRec || !firstRec) return fail('it has no records');
  if (footer.first !== header.first || footer.last !== lastRec.revision || footer.records !== records.length)
    fail(
      `its seal says revisions ${footer.first}..${footer.last} (${footer.records} records), its records are ${header.first}..${lastRec.revision} (${records.length})`,
    );
  if (footer.firstTime !== firstRec.time || footer.lastTime !== lastRec.time || footer.sealedAt < footer.lastTime)
    fail("its seal's times do not match its records");
  if (parsed?.chain !== header.chain || parsed.first !== footer.first || parsed.last !== footer.last)
    fail(`its name does not match its content (chain ${header.chain}, revisions ${footer.first}..${footer.last})`);
  return { name, header, footer, records };
}

/** The seal in the last line of `tail` (the end of segment `name`), unverified: for retention only. */
export function decodeSeal(name: string, tail: Buffer): SegmentFooter {
  const fail: Fail = (what) => {
    throw new EtcdsnapError('integrity', `change log segment ${name}: ${what}`);
  };
  if (tail[tail.length - 1] !== 0x0a) fail('truncated: the last line has no end (not sealed)');
  const start = tail.lastIndexOf(0x0a, tail.length - 2) + 1;
  return decodeFooter(parseLine(tail.subarray(start, tail.length - 1).toString('utf8'), fail, 'the seal'), fail);
}
