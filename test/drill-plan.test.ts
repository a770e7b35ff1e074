/**
 * The pure parts of restore drills (docs/drills.md): which snapshot a drill takes, the disk it
 * needs, which keys it reads back, the record's `drill` field (strict parsing, old records
 * still readable), the request's parsing, ls's Drill column and the webhook message.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DRILL_DISK_MARGIN, drillCell, drillDiskNeed, newestDrillable, sampleIndexes, servedRevision } from '../src/snapshot/drill-plan.js';
import { parseDrillResult, parseRecord, recordFromBucketSidecar, type SnapshotRecord } from '../src/model/records.js';
import { parseDrillRequest } from '../src/server/drills.js';
import { renderRecords } from '../src/cli/output.js';
import { INITIAL_NOTIFY_STATE, notificationFor } from '../src/server/notify-policy.js';
import { decodeDrillResponse } from '../src/model/api.js';

const rec = (name: string, createdAt: string, over: Partial<SnapshotRecord> = {}): SnapshotRecord => ({
  name,
  location: `file:///s/${name}`,
  nodeName: 'n1',
  createdAt,
  size: 10,
  compressed: false,
  status: 'successful',
  ...over,
});

test('newestDrillable: the newest successful snapshot of the allowed stores; the local copy wins a tie; failed records never', () => {
  const a = rec('a', '2026-01-01T00:00:00Z');
  const b = rec('b', '2026-01-02T00:00:00Z');
  const failed = rec('c', '2026-01-03T00:00:00Z', { status: 'failed', location: '' });
  const bS3 = { ...b, location: 's3://bucket/b' };
  assert.deepEqual(newestDrillable([a, b, failed], [], 'auto'), { record: b, store: 'local' });
  assert.deepEqual(newestDrillable([a], [bS3], 'auto'), { record: bS3, store: 's3' });
  assert.deepEqual(newestDrillable([b], [bS3], 'auto'), { record: b, store: 'local' });
  assert.deepEqual(
    newestDrillable(
      [bS3].map((r) => ({ ...r, location: 'file:///b' })),
      [bS3],
      's3',
    ),
    { record: bS3, store: 's3' },
  );
  assert.deepEqual(newestDrillable([a], [bS3], 'local'), { record: a, store: 'local' });
  assert.equal(newestDrillable([failed], [], 'auto'), undefined);
  assert.equal(newestDrillable([], [], 'auto'), undefined);
});

test('drillDiskNeed: download, decoded file and restored member, plus the margin', () => {
  assert.equal(drillDiskNeed(100, undefined, false, false), 100 + DRILL_DISK_MARGIN);
  assert.equal(drillDiskNeed(100, undefined, false, true), 200 + DRILL_DISK_MARGIN);
  assert.equal(drillDiskNeed(100, 1000, true, true), 100 + 1000 + 1000 + DRILL_DISK_MARGIN);
  assert.equal(drillDiskNeed(100, undefined, true, false), 1000 + 1000 + DRILL_DISK_MARGIN);
});

test("servedRevision: the file's revision, at least 1 (etcd starts counting at 1)", () => {
  assert.equal(servedRevision(0), 1);
  assert.equal(servedRevision(1), 1);
  assert.equal(servedRevision(42), 42);
});

test('sampleIndexes: up to n indexes spread from the first to the last, ascending and distinct', () => {
  assert.deepEqual(sampleIndexes(0), []);
  assert.deepEqual(sampleIndexes(3), [0, 1, 2]);
  assert.deepEqual(sampleIndexes(100, 5), [0, 25, 50, 74, 99]);
  const many = sampleIndexes(1_000_000);
  assert.equal(many.length, 16);
  assert.equal(many[0], 0);
  assert.equal(many[15], 999_999);
  assert.deepEqual(sampleIndexes(17, 16), [...new Set(sampleIndexes(17, 16))]);
});

test('the drill field of a record: kept when well-formed, a bad one dropped, an old record without it still read', () => {
  const drill = { status: 'failed', at: '2026-12-01T09:00:00Z', durationMs: 1200, source: 'local', message: 'sha256: bad\u001b[31m', revision: '42', keys: 7 };
  const r = parseRecord(JSON.stringify({ ...rec('x', '2026-12-01T00:00:00Z'), drill }));
  assert.deepEqual(r?.drill, { ...drill, message: 'sha256: bad [31m' });
  assert.equal(parseRecord(JSON.stringify({ ...rec('x', '2026-12-01T00:00:00Z'), drill: { ...drill, status: 'green' } }))?.drill, undefined);
  assert.equal(parseRecord(JSON.stringify({ ...rec('x', '2026-12-01T00:00:00Z'), drill: 'passed' }))?.drill, undefined);
  const old = parseRecord(JSON.stringify(rec('x', '2026-12-01T00:00:00Z')));
  assert.ok(old);
  assert.equal('drill' in old, false);
  assert.deepEqual(parseDrillResult({ status: 'passed', at: 'x', durationMs: 1 }), undefined);
  assert.deepEqual(parseDrillResult({ status: 'passed', at: '2026-12-01T09:00:00Z', durationMs: 1, keys: -1, revision: 'abc' }), {
    status: 'passed',
    at: '2026-12-01T09:00:00Z',
    durationMs: 1,
  });
  // a bucket sidecar's drill result is kept (shown by ls -o json)
  const facts = { name: 'x', location: 's3://b/x', createdAt: '2026-12-01T00:00:00Z', size: 1, compressed: false };
  assert.equal(recordFromBucketSidecar(JSON.stringify({ drill }), facts)?.record.drill?.status, 'failed');
});

test('parseDrillRequest: name checked as a store name, from one of auto, local, s3, no other field', () => {
  assert.deepEqual(parseDrillRequest(undefined), { from: 'auto' });
  assert.deepEqual(parseDrillRequest({ name: 'snap-1', from: 's3' }), { name: 'snap-1', from: 's3' });
  assert.throws(() => parseDrillRequest({ name: '../x' }), /x/);
  assert.throws(() => parseDrillRequest({ name: '.metadata' }));
  assert.throws(() => parseDrillRequest({ from: 'ftp' }), /auto, local or s3/);
  assert.throws(() => parseDrillRequest({ path: '/etc/passwd' }), /unknown field "path"/);
  assert.throws(() => parseDrillRequest([]), /JSON object/);
});

test("ls's table: k3s's four columns unchanged without drills; a Drill column after them when a row was drilled", () => {
  const plain = renderRecords([rec('a', '2026-01-01T00:00:00Z')], 'table');
  assert.equal(plain.split('\n')[0], 'Name Location    Size Created');
  const drilled = renderRecords(
    [rec('a', '2026-01-01T00:00:00Z'), rec('b', '2026-01-02T00:00:00Z', { drill: { status: 'failed', at: '2026-12-01T09:00:00Z', durationMs: 5 } })],
    'table',
  ).split('\n');
  assert.match(drilled[0] ?? '', /^Name +Location +Size +Created +Drill$/);
  assert.match(drilled[1] ?? '', /2026-01-01T00:00:00Z$/);
  assert.match(drilled[2] ?? '', /2026-01-02T00:00:00Z FAILED 2026-12-01T09:00:00Z$/);
  assert.equal(drillCell({ status: 'passed', at: '2026-12-01T09:00:00Z', durationMs: 1 }), 'passed 2026-12-01T09:00:00Z');
});

test('the webhook sends every drill result, scrubbed, without touching the save and upload states', () => {
  const ctx = { node: 'n1', time: new Date('2026-12-01T09:00:00Z'), scrub: (s: string) => s.replace('s3cr3t', '**') };
  const failed = notificationFor(
    INITIAL_NOTIFY_STATE,
    { kind: 'drill', scheduled: true, result: 'failure', seconds: 2, snapshot: 'snap-1', store: 's3', error: 'open: s3cr3t <bad>' },
    ctx,
  );
  assert.equal(failed.state, INITIAL_NOTIFY_STATE);
  assert.equal(failed.notification?.event, 'drill-failed');
  assert.equal(failed.notification?.error, 'open: ** <bad>');
  assert.equal(failed.notification?.text, 'etcdsnap n1: restore drill of snap-1 (s3) failed: open: ** &lt;bad&gt;');
  const passed = notificationFor(
    INITIAL_NOTIFY_STATE,
    { kind: 'drill', scheduled: false, result: 'success', seconds: 1, snapshot: 'snap-1', store: 'local' },
    ctx,
  );
  assert.equal(passed.notification?.event, 'drill-passed');
  assert.equal(passed.notification?.text, 'etcdsnap n1: restore drill of snap-1 (local) passed');
});

test('decodeDrillResponse: checks the answer of a drill request', () => {
  const ok = { snapshot: 's', store: 'local', result: { status: 'passed', at: '2026-12-01T09:00:00Z', durationMs: 1 } };
  assert.deepEqual(decodeDrillResponse(ok), ok);
  assert.throws(() => decodeDrillResponse({ ...ok, store: 'ftp' }), /local or s3/);
  assert.throws(() => decodeDrillResponse({ ...ok, result: { ...ok.result, status: 'green' } }), /passed or failed/);
});
