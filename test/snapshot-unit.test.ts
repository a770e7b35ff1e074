/** Unit tests of the pure parts of snapshots: names, retention, schedules, verification, requests, output. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { snapshotFileName, parseSnapshotName, belongsTo, assertSafeName, assertSafePrefix } from '../src/model/naming.js';
import { planRetention } from '../src/retention/policy.js';
import { parseSchedule, Scheduler } from '../src/server/schedule.js';
import { TrailerVerifier } from '../src/snapshot/verify.js';
import { PLAIN } from '../src/model/encoding.js';
import { parseSnapshotRequest } from '../src/snapshot/request.js';
import { parseOutputFormat, renderRecords } from '../src/cli/output.js';
import { table } from '../src/cli/table.js';

test('snapshot names follow k3s: <name>-<node>-<unix seconds>[.zip]', () => {
  assert.equal(snapshotFileName('etcd-snapshot', 'node-1', 1700000000, PLAIN), 'etcd-snapshot-node-1-1700000000');
  assert.equal(snapshotFileName('on-demand', 'n', 1700000000, { compression: 'zip', recipients: [] }), 'on-demand-n-1700000000.zip');
  assert.deepEqual(parseSnapshotName('on-demand-n-1700000000.zip'), {
    base: 'on-demand-n-1700000000',
    compressed: true,
    encrypted: false,
    timestamp: 1700000000,
  });
  assert.equal(parseSnapshotName('random.txt'), undefined);
  assert.equal(parseSnapshotName('x-1700000000.part'), undefined);
  assert.ok(belongsTo('etcd-snapshot-node-1-1700000000', 'etcd-snapshot', 'node-1'));
  assert.ok(!belongsTo('etcd-snapshot-node-2-1700000000', 'etcd-snapshot', 'node-1'));
  assert.ok(!belongsTo('on-demand-node-1-1700000000', 'etcd-snapshot', 'node-1'));
});

test('unsafe names are refused: separators, .., NUL, absolute paths, huge names', () => {
  for (const bad of ['../x', 'a/b', 'a\\b', '/etc/passwd', '..', 'x\0y', 'a'.repeat(300), '', 'a\nb']) {
    assert.throws(() => assertSafeName(bad), /invalid snapshot name/, JSON.stringify(bad));
  }
  assert.equal(assertSafeName('on-demand-n-1700000000.zip'), 'on-demand-n-1700000000.zip');
  assert.throws(() => assertSafePrefix('.hidden'), /must not start with/);
});

test('retention keeps the newest N of this prefix and node, ignores everything else', () => {
  const names = [
    'etcd-snapshot-n1-1700000100',
    'etcd-snapshot-n1-1700000300.zip',
    'etcd-snapshot-n1-1700000200',
    'etcd-snapshot-n1-1700000000',
    'etcd-snapshot-n2-1700000050', // other node
    'on-demand-n1-1700000400', // other prefix
    'notes.txt', // not a snapshot
  ];
  const plan = planRetention(names, { prefix: 'etcd-snapshot', nodeName: 'n1', keep: 2 });
  assert.deepEqual(plan.keep, ['etcd-snapshot-n1-1700000300.zip', 'etcd-snapshot-n1-1700000200']);
  assert.deepEqual(plan.remove, ['etcd-snapshot-n1-1700000100', 'etcd-snapshot-n1-1700000000']);
  assert.deepEqual(plan.ignored.sort(), ['etcd-snapshot-n2-1700000050', 'notes.txt', 'on-demand-n1-1700000400']);
  assert.deepEqual(planRetention(names, { prefix: 'etcd-snapshot', nodeName: 'n1', keep: 0 }).remove, [], 'retention 0 disables pruning');
});

test('the default schedule fires at 00:00 and 12:00 system time', () => {
  const s = parseSchedule('0 */12 * * *');
  const from = new Date(2026, 10, 26, 5, 17, 3); // local time
  const n1 = s.next(from);
  assert.deepEqual(n1, new Date(2026, 10, 26, 12, 0, 0));
  assert.deepEqual(s.next(n1 ?? from), new Date(2026, 10, 27, 0, 0, 0));
  assert.deepEqual(s.next(new Date(2026, 10, 26, 23, 59, 59)), new Date(2026, 10, 27, 0, 0, 0));
});

test('schedules: descriptors, @every, CRON_TZ, and clear errors that quote the spec', () => {
  assert.deepEqual(parseSchedule('@daily').next(new Date(2026, 0, 1, 10)), new Date(2026, 0, 2, 0, 0));
  assert.deepEqual(parseSchedule('@hourly').next(new Date(2026, 0, 1, 10, 30)), new Date(2026, 0, 1, 11, 0));
  const every = parseSchedule('@every 2s');
  assert.equal((every.next(new Date(10_000))?.getTime() ?? 0) - 10_000, 2000);
  assert.equal(parseSchedule('@every 1h30m').next(new Date(0))?.getTime(), 5_400_000);
  const ny = parseSchedule('CRON_TZ=America/New_York 0 0 * * *');
  assert.equal(ny.next(new Date('2026-11-26T10:00:00Z'))?.toISOString(), '2026-11-27T05:00:00.000Z');
  for (const bad of ['junk', '* * * * * *', '61 * * * *', '@sometimes', '@every 0s', '@every soon', 'CRON_TZ=Mars/Base 0 0 * * *', '0 0 31 2 *']) {
    assert.throws(
      () => parseSchedule(bad),
      (err: Error) => err.message.startsWith(`invalid snapshot schedule "${bad}"`),
      bad,
    );
  }
});

test('the scheduler skips a tick while the previous run is still going', async () => {
  let runs = 0;
  const skips: Date[] = [];
  let release: () => void = () => undefined;
  const s = new Scheduler({
    schedule: { spec: 'test', next: (from) => new Date(from.getTime() + 50) },
    job: () => {
      runs++;
      return new Promise<void>((r) => (release = r));
    },
    onSkip: (t) => skips.push(t),
    maxJitterMs: 0,
  });
  s.start();
  await new Promise((r) => setTimeout(r, 400));
  assert.equal(runs, 1, 'only one run while it is still going');
  assert.ok(skips.length >= 3, `ticks were skipped (${skips.length})`);
  release();
  await new Promise((r) => setTimeout(r, 200));
  s.stop();
  assert.ok(runs >= 2, 'runs again once the first finished');
});

function fakeSnapshot(dbBytes: number): Buffer {
  const db = Buffer.alloc(dbBytes, 7);
  return Buffer.concat([db, createHash('sha256').update(db).digest()]);
}

async function verify(bytes: Buffer, chunk = 1000): Promise<TrailerVerifier> {
  const v = new TrailerVerifier();
  const parts: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += chunk) parts.push(bytes.subarray(i, i + chunk));
  await pipeline(Readable.from(parts), v, new Writable({ write: (_c, _e, cb) => cb() }));
  return v;
}

test('the trailer check accepts a good stream and refuses truncated, corrupt and hash-less ones', async () => {
  const good = fakeSnapshot(4096);
  const v = await verify(good, 333);
  assert.equal(v.size, 4128);
  assert.equal(v.dbSha256, createHash('sha256').update(good.subarray(0, 4096)).digest('hex'));
  assert.equal(v.streamSha256, createHash('sha256').update(good).digest('hex'));
  assert.equal((await verify(good, 7)).streamSha256, v.streamSha256, 'small chunks give the same result');
  await assert.rejects(verify(good.subarray(0, 4000)), /no sha256 trailer/);
  const flipped = Buffer.from(good);
  flipped[100] = (flipped[100] ?? 0) ^ 1;
  await assert.rejects(verify(flipped), /does not match/);
  await assert.rejects(verify(Buffer.alloc(4096)), /no sha256 trailer/);
  await assert.rejects(verify(Buffer.alloc(0)), /no sha256 trailer/);
});

test('snapshot requests are validated field by field', () => {
  assert.deepEqual(parseSnapshotRequest({ operation: 'save', name: ['x'], compress: true }), { operation: 'save', name: ['x'], compression: 'zip' });
  assert.deepEqual(parseSnapshotRequest({ operation: 'delete', name: 'a' }).name, ['a']);
  assert.throws(() => parseSnapshotRequest({ operation: 'explode' }), /invalid operation/);
  assert.throws(() => parseSnapshotRequest({ operation: 'prune', retention: -1 }), /invalid field "retention"/);
  assert.throws(() => parseSnapshotRequest({ operation: 'prune', retention: 1.5 }), /invalid field "retention"/);
  assert.throws(() => parseSnapshotRequest({ operation: 'save', compress: 'yes' }), /invalid field "compress"/);
  assert.throws(() => parseSnapshotRequest({ operation: 'save', name: [1] }), /invalid field "name"/);
  assert.throws(() => parseSnapshotRequest({ operation: 'save', extra: 1 }), /unknown field "extra"/);
});

test('ls output: k3s table, json, yaml; anything else is an invalid output format', () => {
  assert.equal(
    table([
      ['Name', 'Size'],
      ['abc', '1'],
    ]),
    'Name Size\nabc  1\n',
  );
  const rec = {
    name: 'n-1700000000',
    location: 'file:///x/n-1700000000',
    nodeName: 'n',
    createdAt: '2023-11-14T22:13:20Z',
    size: 5,
    compressed: false,
    status: 'successful' as const,
  };
  assert.equal(
    renderRecords([rec], 'table'),
    'Name         Location               Size Created\nn-1700000000 file:///x/n-1700000000 5    2023-11-14T22:13:20Z\n',
  );
  assert.deepEqual(JSON.parse(renderRecords([rec], 'json')), [rec]);
  assert.match(renderRecords([rec], 'yaml'), /^- name: n-1700000000\n/);
  assert.equal(parseOutputFormat(undefined), 'table');
  assert.throws(() => parseOutputFormat('xml'), { message: 'invalid output format: xml' });
});

test('the local folder lists snapshots with sidecars, shows failed records for 24 h, then expires them', async () => {
  const { LocalStore } = await import('../src/store/local.js');
  const { tempDir } = await import('./helpers/server.js');
  const { writeFileSync, existsSync, mkdirSync } = await import('node:fs');
  const path = await import('node:path');
  const root = tempDir();
  const dir = new LocalStore(path.join(root, 'snapshots'));
  await dir.prepare(true);
  writeFileSync(path.join(dir.dir, 'etcd-snapshot-n1-1700000000'), 'x'.repeat(10));
  writeFileSync(path.join(dir.dir, 'etcd-snapshot-n1-1700000001.part'), 'partial');
  writeFileSync(path.join(dir.dir, 'README.txt'), 'not a snapshot');
  mkdirSync(dir.metadataDir, { recursive: true });
  const failedAt = new Date('2026-01-01T00:00:00Z');
  await dir.writeRecord({
    name: 'on-demand-n1-1767225600',
    location: '',
    nodeName: 'n1',
    createdAt: failedAt.toISOString(),
    size: 0,
    compressed: false,
    status: 'failed',
    message: 'boom',
  });
  let list = await dir.list({ nodeName: 'n1', now: new Date(failedAt.getTime() + 3600_000) });
  assert.deepEqual(list.map((r) => [r.name, r.status]).sort(), [
    ['etcd-snapshot-n1-1700000000', 'successful'],
    ['on-demand-n1-1767225600', 'failed'],
  ]);
  assert.equal(list.find((r) => r.status === 'successful')?.size, 10);
  list = await dir.list({ nodeName: 'n1', now: new Date(failedAt.getTime() + 25 * 3600_000) });
  assert.deepEqual(
    list.map((r) => r.name),
    ['etcd-snapshot-n1-1700000000'],
  );
  assert.ok(!existsSync(dir.sidecarPath('on-demand-n1-1767225600')), 'the expired record is gone');
  assert.deepEqual(await dir.removeLeftoverParts(), ['etcd-snapshot-n1-1700000001.part']);
  assert.ok(existsSync(path.join(dir.dir, 'README.txt')));
});

test('a partial file never gets a final name: openWriter writes .part, commit renames, discard removes', async () => {
  const { LocalStore } = await import('../src/store/local.js');
  const { tempDir } = await import('./helpers/server.js');
  const { readdirSync, statSync } = await import('node:fs');
  const path = await import('node:path');
  const dir = new LocalStore(path.join(tempDir(), 'snapshots'));
  await dir.prepare(true);
  const w = await dir.openWriter('a-n-1700000000');
  w.stream.write('abc');
  assert.deepEqual(readdirSync(dir.dir), ['a-n-1700000000.part']);
  assert.equal(statSync(path.join(dir.dir, 'a-n-1700000000.part')).mode & 0o777, 0o600);
  await w.discard();
  assert.deepEqual(readdirSync(dir.dir), []);
  const w2 = await dir.openWriter('a-n-1700000001');
  await new Promise<void>((r) => w2.stream.end('abc', () => r()));
  await w2.commit();
  assert.deepEqual(readdirSync(dir.dir), ['a-n-1700000001']);
  await assert.rejects(
    dir.prepare(false).then(() => new LocalStore(path.join(dir.dir, 'missing')).prepare(false)),
    /does not exist/,
  );
});

test('leftovers of a crash are removed at start: .part files and the temp files of record writes; records and snapshots stay', async () => {
  const { LocalStore } = await import('../src/store/local.js');
  const { tempDir } = await import('./helpers/server.js');
  const { readdirSync, writeFileSync } = await import('node:fs');
  const path = await import('node:path');
  const store = new LocalStore(path.join(tempDir(), 'snapshots'));
  await store.prepare(true);
  writeFileSync(path.join(store.dir, 'a-n-1700000000'), 'x');
  writeFileSync(path.join(store.dir, 'a-n-1700000001.part'), 'x');
  await store.writeRecord({
    name: 'a-n-1700000000',
    location: '',
    nodeName: 'n',
    createdAt: '2023-11-14T22:13:20Z',
    size: 1,
    compressed: false,
    status: 'successful',
  });
  writeFileSync(path.join(store.metadataDir, '.a-n-1700000001.0123abcd.tmp'), '{');
  writeFileSync(path.join(store.metadataDir, '.keep.tmp'), 'not ours: no 8-hex suffix');
  const removed = await store.discardIncomplete({ nodeName: 'n' });
  assert.deepEqual(removed.sort(), [path.join('.metadata', '.a-n-1700000001.0123abcd.tmp'), 'a-n-1700000001.part']);
  assert.deepEqual(readdirSync(store.dir), ['a-n-1700000000']);
  assert.deepEqual(readdirSync(store.metadataDir).sort(), ['.keep.tmp', 'a-n-1700000000']);
});
