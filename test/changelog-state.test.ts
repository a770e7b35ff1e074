/** The change log's visibility helpers (changelog/state.ts) and the wire decoders (model/changelog-api.ts, model/api.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chainRuns, earliestSnapshot, lagOf, rangeOf } from '../src/changelog/state.js';
import { segmentName, parseSegmentName } from '../src/changelog/format.js';
import { decodeChangelogList, decodeChangelogStatus } from '../src/model/changelog-api.js';
import { decodeSnapshotResponse, ResponseShapeError } from '../src/model/api.js';

const seg = (chain: string, first: number, last: number) => {
  const n = parseSegmentName(segmentName(chain, first, last));
  assert.ok(n);
  return n;
};
const A = 'aaaaaaaaaaaaaaaa';
const B = 'bbbbbbbbbbbbbbbb';

test('chainRuns: the contiguous run ending with each chain’s newest segment; a gap cuts what is before it', () => {
  const runs = chainRuns([seg(A, 3, 5), seg(A, 6, 9), seg(B, 20, 22), seg(A, 12, 14), seg(A, 15, 15), seg(B, 23, 30)]);
  assert.deepEqual(
    runs.map((r) => [r.chain, r.first, r.last, r.segments, r.newest.first]),
    [
      [A, 12, 15, 2, 15],
      [B, 20, 30, 2, 23],
    ],
  );
  assert.deepEqual(chainRuns([]), []);
});

test('earliestSnapshot and rangeOf: the oldest kept snapshot the run starts from; none when no snapshot fits', () => {
  const snaps = [
    { name: 'old', revision: 2, createdAt: '2026-11-30T00:00:00.000Z' },
    { name: 's11', revision: 11, createdAt: '2026-11-30T01:00:00.000Z' },
    { name: 's13', revision: 13, createdAt: '2026-11-30T02:00:00.000Z' },
    { name: 'after', revision: 16, createdAt: '2026-11-30T03:00:00.000Z' },
  ];
  const run = chainRuns([seg(A, 12, 15)])[0];
  assert.ok(run);
  assert.equal(earliestSnapshot(run, snaps)?.name, 's11');
  assert.equal(
    earliestSnapshot(
      run,
      [snaps[0], snaps[3]].filter((x) => x !== undefined),
    ),
    undefined,
  );
  assert.deepEqual(rangeOf(run, Date.parse('2026-11-30T02:30:00.000Z'), snaps), {
    chain: A,
    first: 12,
    segments: 1,
    earliest: { revision: 11, time: '2026-11-30T01:00:00.000Z', snapshot: 's11' },
    latest: { revision: 15, time: '2026-11-30T02:30:00.000Z' },
  });
  assert.equal(rangeOf(run, 0, []).earliest, undefined);
});

test('lagOf: 0 when every revision is sealed, else the revisions after it and the seconds since the seal', () => {
  assert.deepEqual(lagOf(10, { revision: 10, sealedAtMs: 1000 }, 9000), { revisions: 0, seconds: 0 });
  assert.deepEqual(lagOf(14, { revision: 10, sealedAtMs: 1000 }, 3500), { revisions: 4, seconds: 2.5 });
  assert.deepEqual(lagOf(9, { revision: 10, sealedAtMs: 1000 }, 3500), { revisions: 0, seconds: 0 });
});

test('decoders: the list answer’s optional ranges (older servers have none), the change log answers, each wrong field named', () => {
  assert.equal(decodeSnapshotResponse('list', { items: [] }).changelog, undefined);
  const range = { chain: A, first: 3, segments: 1, latest: { revision: 4, time: 't' } };
  assert.deepEqual(decodeSnapshotResponse('list', { items: [], changelog: [range] }).changelog, [range]);
  assert.throws(() => decodeSnapshotResponse('list', { items: [], changelog: [{ ...range, latest: { revision: -1, time: 't' } }] }), {
    name: 'ResponseShapeError',
    message: 'the answer.changelog[0].latest.revision is not a revision',
  });
  assert.throws(() => decodeSnapshotResponse('list', { items: [], changelog: [{ ...range, earliest: { revision: 2, time: 't' } }] }), ResponseShapeError);
  const l = { dir: '/d', segments: [{ name: 'n', chain: A, first: 3, sealed: false, size: 10 }], chains: [range] };
  assert.deepEqual(decodeChangelogList(l), l);
  assert.throws(() => decodeChangelogList({ ...l, segments: [{ ...l.segments[0], last: 'x' }] }), { message: 'the answer.segments[0].last is not a revision' });
  const st = { enabled: true, periodMs: 1000, dir: '/d', writer: { node: 'n', elected: false }, segments: 0, chains: 0, open: false };
  assert.deepEqual(decodeChangelogStatus(st), st);
  assert.throws(() => decodeChangelogStatus({ ...st, enabled: 'yes' }), { message: 'the answer.enabled is not true or false' });
  assert.throws(() => decodeChangelogStatus({ ...st, lag: { revisions: 1 } }), { message: 'the answer.lag.seconds is not a number' });
});
