/** Unit tests of the change log's pure parts: the segment codec (format.ts), planning (plan.ts), retention (segments.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { decodeSegment, encodeFooter, encodeHeader, encodeRecord, parseSegmentName, segmentName } from '../src/changelog/format.js';
import { parseRestoreTo, planSegments, selectRecords } from '../src/changelog/plan.js';
import { unneededSegments } from '../src/changelog/segments.js';
import type { ChangeRecord, PutEvent } from '../src/model/changelog.js';

const CHAIN = '0123456789abcdef';
const put = (rev: number, k: string, v: string, create = rev, version = 1): PutEvent => ({
  type: 'put',
  key: Buffer.from(k),
  value: Buffer.from(v),
  createRevision: create,
  modRevision: rev,
  version,
  lease: '0',
});

/** A sealed segment of `records` (revisions `first`..), as the writer writes it. */
function segment(first: number, records: ChangeRecord[], sealedAt?: number, chain = CHAIN): { name: string; bytes: Buffer } {
  const body = Buffer.concat([encodeHeader({ chain, cluster: '42', first }), ...records.map((r) => encodeRecord(r))]);
  const last = records[records.length - 1] ?? { revision: first - 1, time: 0 };
  const footer = encodeFooter({
    first,
    last: last.revision,
    records: records.length,
    firstTime: records[0]?.time ?? 0,
    lastTime: last.time,
    sealedAt: sealedAt ?? last.time,
    sha256: createHash('sha256').update(body).digest('hex'),
  });
  return { name: segmentName(chain, first, last.revision), bytes: Buffer.concat([body, footer]) };
}

const recs = (first: number, n: number, t0 = 1000): ChangeRecord[] =>
  Array.from({ length: n }, (_, i) => ({ revision: first + i, time: t0 + (first + i) * 10, events: [put(first + i, `k${first + i}`, `v${first + i}`)] }));

test('codec: a segment round-trips, bytes and all event kinds', () => {
  const r: ChangeRecord[] = [
    { revision: 5, time: 100, events: [put(5, 'a', 'x'), { type: 'delete', key: Buffer.from([0, 255, 10]) }] },
    { revision: 6, time: 100, events: [{ ...put(6, 'b\n', ''), lease: '7587', version: 3, createRevision: 2 }] },
  ];
  const s = segment(5, r, 150);
  const d = decodeSegment(s.name, s.bytes);
  assert.equal(d.header.chain, CHAIN);
  assert.equal(d.footer.last, 6);
  assert.equal(d.footer.sealedAt, 150);
  assert.deepEqual(d.records, r);
  assert.deepEqual(parseSegmentName(s.name), { name: s.name, chain: CHAIN, first: 5, last: 6 });
  assert.equal(parseSegmentName('x.jsonl'), undefined);
});

test('codec: every damage is an integrity error naming the segment', () => {
  const s = segment(5, recs(5, 3));
  const flipped = Buffer.from(s.bytes);
  flipped[60] = (flipped[60] ?? 0) ^ 1;
  const cases: Array<[string, Buffer, string, RegExp]> = [
    ['flipped byte', flipped, s.name, /sha256 .* does not match/],
    ['truncated', s.bytes.subarray(0, s.bytes.length - 5), s.name, /truncated|not sealed|not JSON|seal/],
    ['empty', Buffer.alloc(0), s.name, /empty file/],
    ['wrong name', s.bytes, segmentName(CHAIN, 5, 9), /name does not match/],
    ['bad name', s.bytes, 'x.jsonl', /not a segment name/],
  ];
  for (const [what, bytes, name, re] of cases) {
    assert.throws(
      () => decodeSegment(name, bytes),
      (err: Error & { kind?: string }) =>
        err.kind === 'integrity' && err.message.startsWith(`change log segment ${name}: `) && re.test(err.message) && !err.message.includes('\n'),
      what,
    );
  }
  // a gap inside a segment, with a valid hash
  const gap = segment(5, [...recs(5, 2), ...recs(8, 1)]);
  assert.throws(() => decodeSegment(gap.name, gap.bytes), /revisions 7..7 are missing/);
  const back: ChangeRecord[] = [
    { revision: 5, time: 200, events: [put(5, 'a', 'b')] },
    { revision: 6, time: 100, events: [put(6, 'a', 'b')] },
  ];
  const b = segment(5, back);
  assert.throws(() => decodeSegment(b.name, b.bytes), /time goes back/);
});

test('restore-to: revisions, RFC 3339 times and latest', () => {
  assert.deepEqual(parseRestoreTo('1234'), { revision: 1234 });
  assert.deepEqual(parseRestoreTo('latest'), { latest: true });
  assert.deepEqual(parseRestoreTo('2026-11-30T14:02:00Z'), { time: Date.UTC(2026, 10, 30, 14, 2, 0) });
  assert.deepEqual(parseRestoreTo('2026-11-30T15:02:00.5+01:00'), { time: Date.UTC(2026, 10, 30, 14, 2, 0, 500) });
  for (const bad of ['0', '-1', '2026-11-30T14:02:00', 'yesterday', '', '1e5', 'Latest', 'newest'])
    assert.throws(() => parseRestoreTo(bad), /invalid --cluster-reset-restore-to/);
});

test('plan: the contiguous run from base + 1, cut at the target; gaps and missing segments named', () => {
  const n = (chain: string, first: number, last: number) => ({ name: segmentName(chain, first, last), chain, first, last });
  const A = 'aaaaaaaaaaaaaaaa';
  const B = 'bbbbbbbbbbbbbbbb';
  const segs = [n(A, 11, 20), n(A, 21, 30), n(A, 31, 40), n(B, 25, 50), n(B, 51, 60)];
  assert.deepEqual(
    planSegments(segs, 15, { revision: 35 }).map((s) => s.first),
    [11, 21, 31],
  );
  assert.deepEqual(planSegments(segs, 15, { revision: 15 }), []);
  assert.deepEqual(
    planSegments(segs, 26, { revision: 55 }).map((s) => `${s.chain[0]}${s.first}`),
    ['b25', 'b51'],
    'the chain reaching furthest',
  );
  assert.throws(() => planSegments(segs, 15, { revision: 45 }), /no revisions 41..45/);
  assert.throws(() => planSegments(segs, 5, { revision: 12 }), /no change log segment holds revision 6/);
  assert.throws(() => planSegments(segs, 15, { revision: 14 }), /after the target revision 14/);
  const gap = [n(A, 11, 20), n(A, 31, 40)];
  assert.throws(() => planSegments(gap, 12, { revision: 35 }), /no revisions 21..30/);
  assert.deepEqual(
    planSegments(gap, 12, { latest: true }).map((s) => s.first),
    [11],
    'latest: the run from base + 1 up to the gap',
  );
  assert.deepEqual(planSegments(segs, 70, { latest: true }), [], 'latest with nothing after the snapshot: the snapshot alone');
});

test('select: records of (base, target]; a time maps to the last revision seen at or before it', () => {
  const s1 = decodeSegment(segment(11, recs(11, 10)).name, segment(11, recs(11, 10)).bytes); // times 1110..1200
  const s2raw = segment(21, recs(21, 10), 1400); // times 1210..1300, sealed at 1400
  const s2 = decodeSegment(s2raw.name, s2raw.bytes);
  const r = selectRecords([s1, s2], 14, { revision: 25 });
  assert.equal(r.revision, 25);
  assert.deepEqual(
    r.records.map((x) => x.revision),
    [15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25],
  );
  assert.equal(selectRecords([s1, s2], 14, { time: 1255 }).revision, 25);
  assert.equal(selectRecords([s1, s2], 14, { time: 1399 }).revision, 30, 'covered by the seal');
  assert.throws(() => selectRecords([s1, s2], 14, { time: 1400 }), /covers what was seen before/);
  assert.equal(selectRecords([s1, s2], 14, { time: 1145 }).revision, 14, 'nothing seen after the snapshot before it: the snapshot');
  assert.throws(() => selectRecords([s1, s2], 14, { time: 1100 }), /holds revision 14, seen at .* after the target time/);
  assert.throws(() => selectRecords([s1, s2], 14, { time: 1100 }, 1150), /after the target time/);
  assert.throws(() => selectRecords([s2], 14, { revision: 25 }), /no revisions 15..20/);
  assert.throws(() => selectRecords([s1], 14, { revision: 25 }), /no revisions 21..25/);
  assert.equal(selectRecords([s1, s2], 14, { latest: true }).revision, 30, 'latest: the last revision of the contiguous run');
  assert.equal(selectRecords([s1], 14, { latest: true }).records.length, 6);
  assert.equal(selectRecords([], 14, { latest: true }).revision, 14, 'latest with no segment after the snapshot: the snapshot');
});

test('retention: a segment goes when every kept snapshot is past it', () => {
  const segs = [
    { name: 'a', last: 10, sealedAt: 100 },
    { name: 'b', last: 20, sealedAt: 200 },
    { name: 'c', last: 30, sealedAt: 300 },
  ];
  assert.deepEqual(unneededSegments(segs, [{ revision: 20, createdAt: 250 }]), ['a', 'b']);
  assert.deepEqual(unneededSegments(segs, [{ revision: 20, createdAt: 150 }]), ['a'], 'b was sealed after the snapshot');
  assert.deepEqual(
    unneededSegments(segs, [
      { revision: 25, createdAt: 500 },
      { revision: 5, createdAt: 50 },
    ]),
    [],
  );
  assert.deepEqual(unneededSegments(segs, []), []);
});
