/**
 * Unit tests of snapshot names and path safety (model/naming.ts), the retention policy
 * (retention/policy.ts) and sidecar records (model/records.ts), down to their edges: the
 * bounds, each refused character class, each field check. Written to kill the mutants that
 * `npm run mutate` found alive (docs/mutation-testing.md). Pure: no I/O.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EtcdsnapError } from '../src/errors.js';
import { assertSafeName, assertSafePrefix, belongsTo, isSafeName, isSafeSnapshotName, MAX_NAME_BYTES, parseSnapshotName } from '../src/model/naming.js';
import {
  createdAtFromName,
  FAILED_RECORD_TTL_MS,
  failedRecord,
  MAX_MESSAGE_CHARS,
  parseRecord,
  recordFromBucketSidecar,
  type SnapshotRecord,
  sortRecords,
} from '../src/model/records.js';
import { planRetention, type RetentionPlan } from '../src/retention/policy.js';

const usage = (re: RegExp) => (e: unknown) => e instanceof EtcdsnapError && e.kind === 'usage' && re.test(e.message);

test('snapshot names: 9 to 11 digits of unix seconds after the last dash, a non-empty head, .zip only at the end', () => {
  assert.deepEqual(parseSnapshotName('a-123456789'), { base: 'a-123456789', compressed: false, encrypted: false, timestamp: 123456789 });
  assert.deepEqual(parseSnapshotName('a-b-12345678901.zip'), { base: 'a-b-12345678901', compressed: true, encrypted: false, timestamp: 12345678901 });
  for (const bad of [
    'a-12345678',
    'a-123456789012',
    '-1700000000',
    'a1700000000',
    'a-1700000000x',
    'a-170000000x0',
    'a-1700000000.zip.zip',
    'a-1700000000.ZIP',
  ]) {
    assert.equal(parseSnapshotName(bad), undefined, bad);
  }
  // the head is anything (the prefix and node themselves contain dashes)
  assert.equal(parseSnapshotName('x\ny-1700000000'), undefined, 'a newline does not match .+');
  assert.ok(belongsTo('a-b-n-1-1700000000.zip', 'a-b', 'n-1'));
  assert.ok(belongsTo('a-b-n-1-1700000000.zip', 'a', 'b-n-1'), 'names are text: a-b/n-1 and a/b-n-1 look alike');
  assert.ok(!belongsTo('notes.txt', 'notes', 'txt'));
  assert.ok(!belongsTo('etcd-snapshot-n1-1700000000-1700000001', 'etcd-snapshot', 'n1'), 'a second timestamp is part of another node name');
  assert.ok(isSafeSnapshotName('etcd-snapshot-n1-1700000000.zip'));
  assert.ok(!isSafeSnapshotName('notes.txt'), 'safe but not a snapshot name');
  assert.ok(!isSafeSnapshotName('../x-1700000000'), 'a snapshot name but not safe');
});

test('assertSafeName: every refused shape has its own message; the name is returned as is', () => {
  assert.throws(() => assertSafeName(''), usage(/^invalid snapshot name: it is empty$/));
  assert.throws(() => assertSafeName(42), usage(/^invalid snapshot name: it is empty$/), 'a non-string is refused too');
  assert.throws(() => assertSafeName(undefined, 'file'), usage(/^invalid file: it is empty$/));
  for (const bad of ['.', '..', 'a..b', 'a/b', 'a\\b', 'a\0b']) {
    assert.throws(() => assertSafeName(bad), usage(/^invalid snapshot name ".*": path separators, '\.\.' and NUL are not allowed$/), JSON.stringify(bad));
  }
  assert.equal(assertSafeName('a.b'), 'a.b', 'a single dot inside is fine');
  assert.equal(assertSafeName('.a'), '.a', 'a leading dot is fine for a name (not for a prefix)');
  assert.equal(assertSafeName('x'.repeat(MAX_NAME_BYTES)), 'x'.repeat(MAX_NAME_BYTES), '255 bytes is the limit, included');
  assert.throws(() => assertSafeName('x'.repeat(MAX_NAME_BYTES + 1)), usage(/longer than 255 bytes$/));
  assert.throws(() => assertSafeName('é'.repeat(128)), usage(/longer than 255 bytes$/), 'bytes, not characters: 128 x 2 bytes');
  for (const c of ['\x01', '\x1f', '\x7f', '\n', '\t']) {
    assert.throws(() => assertSafeName(`a${c}b`), usage(/: control characters are not allowed$/), JSON.stringify(c));
  }
  assert.equal(assertSafeName('a b~!'), 'a b~!', 'space and printable ASCII are fine');
  // the name in a message is JSON-quoted and cut at 80 characters
  const long = `${'y'.repeat(100)}/`;
  assert.throws(
    () => assertSafeName(long),
    (e: unknown) => e instanceof Error && e.message.includes(`"${'y'.repeat(80)}..."`) && !e.message.includes('y'.repeat(81)),
  );
  const eighty = `${'z'.repeat(79)}/`;
  assert.throws(
    () => assertSafeName(eighty),
    (e: unknown) => e instanceof Error && e.message.includes(`"${eighty}"`),
    'exactly 80 characters are shown whole',
  );
  assert.throws(
    () => assertSafeName('a\x1bb', 'snapshot name'),
    (e: unknown) => e instanceof Error && e.message.includes('"a\\u001bb"'),
    'escaped in the message',
  );
});

test('assertSafePrefix: a safe name that does not start with a dot, at most 200 bytes', () => {
  assert.equal(assertSafePrefix('a.'), 'a.', 'a trailing dot is fine');
  assert.throws(() => assertSafePrefix('.a'), usage(/^invalid snapshot name prefix "\.a": must not start with '\.'$/));
  assert.equal(assertSafePrefix('p'.repeat(200)), 'p'.repeat(200));
  assert.throws(() => assertSafePrefix('p'.repeat(201)), usage(/^invalid snapshot name prefix: longer than 200 bytes$/));
  assert.throws(() => assertSafePrefix('a/b'), usage(/^invalid snapshot name prefix "a\/b"/), 'named as a prefix');
});

test('isSafeName: C1 control characters are unsafe too (names from a listing are skipped, not refused)', () => {
  assert.ok(isSafeName('etcd-snapshot-n1-1700000000'));
  assert.ok(!isSafeName('a/b'));
  assert.ok(!isSafeName('\u0080x'));
  assert.ok(!isSafeName('x\u009f'));
  assert.ok(isSafeName('x\u00a0é'), 'a no-break space and letters are not control characters');
});

test('retention: newest first; equal times by name, descending; any input order; keep 1 and keep below 1', () => {
  const a = 'p-n-1700000000';
  const az = 'p-n-1700000000.zip';
  const b = 'p-n-1700000001';
  // the plan's three name lists (its per-snapshot decisions are tested in retention-policy.test.ts)
  const sets = (p: RetentionPlan): Pick<RetentionPlan, 'keep' | 'remove' | 'ignored'> => ({ keep: p.keep, remove: p.remove, ignored: p.ignored });
  const forward = sets(planRetention([a, az, b], { prefix: 'p', nodeName: 'n', keep: 1 }));
  const backward = sets(planRetention([b, az, a], { prefix: 'p', nodeName: 'n', keep: 1 }));
  assert.deepEqual(forward, { keep: [b], remove: [az, a], ignored: [] });
  assert.deepEqual(backward, forward, 'the order of the listing does not matter');
  assert.deepEqual(planRetention([az, a], { prefix: 'p', nodeName: 'n', keep: 5 }).keep, [az, a]);
  assert.deepEqual(planRetention([a, az], { prefix: 'p', nodeName: 'n', keep: 5 }).keep, [az, a]);
  assert.deepEqual(sets(planRetention([a, a], { prefix: 'p', nodeName: 'n', keep: 1 })), { keep: [a], remove: [a], ignored: [] }, 'duplicates are stable');
  const all = sets(planRetention([a, b, 'x', az], { prefix: 'p', nodeName: 'n', keep: -1 }));
  assert.deepEqual(all, { keep: [b, az, a], remove: [], ignored: ['x'] }, 'below 1 keeps all, newest first');
  assert.deepEqual(planRetention([a, b], { prefix: 'p', nodeName: 'n', keep: 0 }).keep, [b, a]);
  assert.deepEqual(sets(planRetention([], { prefix: 'p', nodeName: 'n', keep: 3 })), { keep: [], remove: [], ignored: [] });
});

const record = (over: Partial<SnapshotRecord> = {}): SnapshotRecord => ({
  name: 'p-n-1700000000',
  location: 'file:///s/p-n-1700000000',
  nodeName: 'n',
  createdAt: '2023-11-14T22:13:20Z',
  size: 10,
  compressed: false,
  status: 'successful',
  ...over,
});

test('records: created time from the name (whole seconds, UTC), else the fallback; failed records; sorting', () => {
  assert.equal(createdAtFromName('p-n-1700000000', new Date(0)), '2023-11-14T22:13:20Z');
  assert.equal(createdAtFromName('p-n-1700000000.zip', new Date(0)), '2023-11-14T22:13:20Z');
  assert.equal(createdAtFromName('custom.db', new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 678))), '2024-01-02T03:04:05Z', 'milliseconds dropped');
  assert.equal(FAILED_RECORD_TTL_MS, 86_400_000);
  assert.deepEqual(failedRecord('p-n-1700000000', 'n', new Date(0), { compression: 'zip', recipients: [] }, 'boom'), {
    name: 'p-n-1700000000',
    location: '',
    nodeName: 'n',
    createdAt: '2023-11-14T22:13:20Z',
    size: 0,
    compressed: true,
    compression: 'zip',
    status: 'failed',
    message: 'boom',
  });
  const rs = [
    record({ name: 'b', createdAt: '2023-01-02T00:00:00Z', location: 'y' }),
    record({ name: 'b', createdAt: '2023-01-02T00:00:00Z', location: 'x' }),
    record({ name: 'a', createdAt: '2023-01-02T00:00:00Z', location: 'z' }),
    record({ name: 'c', createdAt: '2023-01-01T00:00:00Z', location: 'z' }),
  ];
  assert.deepEqual(
    sortRecords(rs).map((r) => `${r.name}${r.location}`),
    ['cz', 'az', 'bx', 'by'],
  );
});

test('parseRecord: a JSON object with a valid name, createdAt and status; defaults for the rest; bad fields dropped', () => {
  const min = { name: 'p-n-1700000000', createdAt: '2023-11-14T22:13:20Z', status: 'failed' };
  assert.deepEqual(parseRecord(JSON.stringify(min)), { ...min, location: '', nodeName: '', size: 0, compressed: false });
  for (const missing of ['name', 'createdAt', 'status'] as const) {
    const o: Record<string, unknown> = { ...min };
    delete o[missing];
    assert.equal(parseRecord(JSON.stringify(o)), undefined, missing);
  }
  for (const text of ['not json', '[]', 'null', '"x"', '42']) assert.equal(parseRecord(text), undefined, text);
  assert.equal(parseRecord(JSON.stringify({ ...min, name: 'a/b' })), undefined, 'an unsafe name');
  assert.equal(parseRecord(JSON.stringify({ ...min, name: 'x\u0085' })), undefined, 'a C1 character in the name');
  assert.equal(parseRecord(JSON.stringify({ ...min, name: 5 })), undefined);
  assert.equal(parseRecord(JSON.stringify({ ...min, createdAt: 'yesterday' })), undefined);
  assert.equal(parseRecord(JSON.stringify({ ...min, createdAt: `2023-11-14T22:13:20Z${' '.repeat(60)}` })), undefined, 'a time over 64 bytes');
  assert.equal(parseRecord(JSON.stringify({ ...min, status: 'ok' })), undefined);
  assert.equal(parseRecord(JSON.stringify({ ...min, status: 'successful' }))?.status, 'successful');

  const full = {
    ...min,
    location: 'file:///x',
    nodeName: 'n',
    size: 5,
    sha256: 'a'.repeat(64),
    compressed: true,
    message: 'm',
    etcdVersion: '3.5.9',
    revision: '12',
    dbSize: 0,
    dbSha256: 'b'.repeat(64),
    durationMs: 1.5,
    s3: { location: 's3://b/k', status: 'successful', attempts: 0, updatedAt: '2023-11-14T22:13:20Z', message: 'up' },
    foreignName: true,
    unknown: 'dropped',
  };
  const { unknown: _dropped, ...kept } = full;
  assert.deepEqual(parseRecord(JSON.stringify(full)), kept);
});

test('parseRecord: each field is checked for its type and shape', () => {
  const min = { name: 'p-n-1700000000', createdAt: '2023-11-14T22:13:20Z', status: 'successful' };
  const field = (key: string, v: unknown): unknown => (parseRecord(JSON.stringify({ ...min, [key]: v })) as unknown as Record<string, unknown>)[key];
  const dropped = (key: string, v: unknown, why: string) => {
    const r = parseRecord(JSON.stringify({ ...min, [key]: v })) as unknown as Record<string, unknown>;
    assert.ok(r !== undefined, `${key} ${why}: the record stays`);
    assert.ok(!(key in r) || r[key] !== v, `${key} ${why}: dropped (${JSON.stringify(r[key])})`);
  };
  assert.equal(field('location', 'l'.repeat(4096)), 'l'.repeat(4096));
  dropped('location', 'l'.repeat(4097), 'over 4096 bytes');
  dropped('location', 'a\u0000b', 'a NUL');
  dropped('location', 'a\u001fb', 'a unit separator');
  dropped('location', 'a\u007fb', 'a DEL');
  dropped('location', 'a\u0090b', 'a C1 character');
  assert.equal(field('location', 'a\u00a0b'), 'a\u00a0b', 'U+00A0 is text');
  assert.equal(field('location', 'a b'), 'a b');
  assert.equal(field('nodeName', 'n'.repeat(255)), 'n'.repeat(255));
  dropped('nodeName', 'n'.repeat(256), 'over 255 bytes');
  dropped('nodeName', 7, 'a number');
  assert.equal(field('size', 0), 0);
  dropped('size', -1, 'negative');
  dropped('size', 1.5, 'not whole');
  dropped('size', 2 ** 53, 'not a safe integer');
  dropped('size', '5', 'a string');
  assert.equal(field('sha256', ''), '', "'' is what a save without a hash records");
  assert.equal(field('sha256', '0123456789abcdef'.repeat(4)), '0123456789abcdef'.repeat(4));
  dropped('sha256', 'A'.repeat(64), 'upper case');
  dropped('sha256', 'a'.repeat(63), '63 digits');
  dropped('sha256', 'a'.repeat(65), '65 digits');
  dropped('sha256', `x${'a'.repeat(64)}`, 'a prefix');
  dropped('sha256', 5, 'a number');
  assert.equal(field('compressed', false), false);
  dropped('compressed', 'true', 'a string');
  assert.equal(field('message', 'a\u0000b\u001bc\u009fd'), 'a b c d', 'every control character becomes a space');
  assert.equal(field('message', 'm'.repeat(MAX_MESSAGE_CHARS + 10)), 'm'.repeat(MAX_MESSAGE_CHARS), 'cut, not refused');
  assert.equal(MAX_MESSAGE_CHARS, 4096);
  dropped('message', 5, 'a number');
  assert.equal(field('etcdVersion', 'v'.repeat(64)), 'v'.repeat(64));
  dropped('etcdVersion', 'v'.repeat(65), 'over 64 bytes');
  assert.equal(field('revision', '1'.repeat(20)), '1'.repeat(20));
  dropped('revision', '1'.repeat(21), '21 digits');
  dropped('revision', '', 'empty');
  dropped('revision', '12a', 'not digits');
  dropped('revision', 'a12', 'not digits');
  dropped('revision', 12, 'a number');
  assert.equal(field('dbSize', 7), 7);
  dropped('dbSize', -7, 'negative');
  dropped('dbSha256', '', 'empty (unlike sha256)');
  dropped('dbSha256', 'c'.repeat(63), '63 digits');
  dropped('dbSha256', 64, 'a number');
  assert.equal(field('durationMs', 0), 0);
  dropped('durationMs', -1, 'negative');
  dropped('durationMs', '5', 'a string');
  // JSON has no Infinity; a huge number parses to it
  assert.ok(!('durationMs' in (parseRecord(`{"name":"p-n-1700000000","createdAt":"2023-11-14T22:13:20Z","status":"failed","durationMs":1e400}`) ?? {})));
  dropped('foreignName', false, 'false (absent means false)');
  dropped('foreignName', 'true', 'a string');
});

test('parseRecord: the S3 copy state is kept only whole and well-formed', () => {
  const min = { name: 'p-n-1700000000', createdAt: '2023-11-14T22:13:20Z', status: 'successful' };
  const s3 = { location: 's3://b/k', status: 'failed', attempts: 3, updatedAt: '2023-11-14T22:13:20Z' };
  const copy = (v: unknown) => parseRecord(JSON.stringify({ ...min, s3: v }))?.s3;
  assert.deepEqual(copy(s3), s3);
  assert.deepEqual(copy({ ...s3, message: 'x\ny' }), { ...s3, message: 'x y' });
  assert.deepEqual(copy({ ...s3, message: 5 }), s3, 'a bad message is left out');
  assert.deepEqual(copy({ ...s3, extra: 1 }), s3, 'unknown fields are dropped');
  for (const [what, v] of [
    ['an array', [s3]],
    ['null', null],
    ['a string', 's3://b/k'],
    ['no location', { ...s3, location: undefined }],
    ['a location with a control character', { ...s3, location: 's3://b/\u0007' }],
    ['a location over 4096 bytes', { ...s3, location: 'l'.repeat(4097) }],
    ['a bad status', { ...s3, status: 'pending' }],
    ['negative attempts', { ...s3, attempts: -1 }],
    ['a bad time', { ...s3, updatedAt: 'soon' }],
  ] as const) {
    assert.equal(copy(v), undefined, what);
  }
  assert.deepEqual(copy({ ...s3, location: 'l'.repeat(4096) })?.location, 'l'.repeat(4096));
});

test('recordFromBucketSidecar: our facts always win; only the listed fields come from the sidecar; bad ones are named', () => {
  const facts = { name: 'p-n-1700000000', location: 's3://b/p-n-1700000000', createdAt: '2023-11-14T22:13:20Z', size: 99, compressed: true };
  const sidecar = {
    name: 'other-n-1800000000',
    location: 's3://evil/x',
    createdAt: '2030-01-01T00:00:00Z',
    size: 1,
    compressed: false,
    status: 'failed',
    message: 'injected',
    s3: { location: 's3://b/k', status: 'failed', attempts: 1, updatedAt: '2023-11-14T22:13:20Z' },
    nodeName: 'n',
    sha256: 'a'.repeat(64),
    etcdVersion: '3.5.9',
    revision: '42',
    dbSize: 4096,
    dbSha256: 'b'.repeat(64),
    durationMs: 12,
    foreignName: true,
  };
  assert.deepEqual(recordFromBucketSidecar(JSON.stringify(sidecar), facts), {
    record: {
      ...facts,
      nodeName: 'n',
      status: 'successful',
      sha256: 'a'.repeat(64),
      etcdVersion: '3.5.9',
      revision: '42',
      dbSize: 4096,
      dbSha256: 'b'.repeat(64),
      durationMs: 12,
    },
    invalid: [],
  });
  assert.deepEqual(recordFromBucketSidecar('{}', facts), { record: { ...facts, nodeName: '', status: 'successful' }, invalid: [] });
  const bad = recordFromBucketSidecar(JSON.stringify({ sha256: 'nope', revision: 'x', nodeName: null, size: -1 }), facts);
  assert.deepEqual(bad?.record, { ...facts, nodeName: '', status: 'successful' });
  assert.deepEqual(bad?.invalid, ['nodeName', 'size', 'sha256', 'revision'], 'in the order of the record fields; null counts as present');
  for (const text of ['', 'nope', '[1]', 'null', 'true']) assert.equal(recordFromBucketSidecar(text, facts), undefined, text);
});

test('parseRecord: foreignName is kept only as true; a stored false leaves the field out', () => {
  const min = { name: 'p-n-1700000000', createdAt: '2023-11-14T22:13:20Z', status: 'successful' };
  assert.equal(parseRecord(JSON.stringify({ ...min, foreignName: true }))?.foreignName, true);
  const r = parseRecord(JSON.stringify({ ...min, foreignName: false }));
  assert.ok(r !== undefined && !('foreignName' in r), JSON.stringify(r));
});
