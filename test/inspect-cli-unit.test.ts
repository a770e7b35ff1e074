/**
 * Pure parts of issue 13 part 3: etcdctl's size rendering (Go's humanize.Bytes, checked
 * against what etcdctl 3.4 printed for the same sizes), etcd's range end of a prefix, the
 * restore plan's rendering, and the checks of the API's query and body.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { borderedTable, humanBytes, renderRestorePlan } from '../src/cli/inspect-output.js';
import { prefixEnd } from '../src/snapshot/restore-keys.js';
import { parseInspectQuery, parseRestoreKeysRequest } from '../src/snapshot/inspect-request.js';
import { EtcdsnapError } from '../src/errors.js';

test('humanBytes prints sizes as etcdctl does (SI units, one decimal below 10, halves to even)', () => {
  // etcdctl snapshot status -w table printed "20 kB" for 20480 and "25 kB" for 24576 bytes
  assert.equal(humanBytes(20480), '20 kB');
  assert.equal(humanBytes(24576), '25 kB');
  assert.equal(humanBytes(9), '9 B');
  assert.equal(humanBytes(999), '999 B');
  assert.equal(humanBytes(1500), '1.5 kB');
  assert.equal(humanBytes(362717216), '363 MB');
  assert.equal(humanBytes(1_200_000_000), '1.2 GB');
});

test('borderedTable draws etcdctl tables: centered headers, right-aligned cells', () => {
  assert.equal(
    borderedTable(['HASH', 'REVISION', 'TOTAL KEYS', 'TOTAL SIZE'], [['a2ff1f6e', '7', '10', '20 kB']]),
    [
      '+----------+----------+------------+------------+',
      '|   HASH   | REVISION | TOTAL KEYS | TOTAL SIZE |',
      '+----------+----------+------------+------------+',
      '| a2ff1f6e |        7 |         10 |      20 kB |',
      '+----------+----------+------------+------------+',
      '',
    ].join('\n'),
  );
});

test('prefixEnd is etcd range_end of a prefix', () => {
  assert.deepEqual(prefixEnd(Buffer.from('/ns/')), Buffer.from('/ns0'));
  assert.deepEqual(prefixEnd(Buffer.from([0x61, 0xff])), Buffer.from([0x62]));
  assert.deepEqual(prefixEnd(Buffer.from([0xff, 0xff])), Buffer.from([0]));
  assert.deepEqual(prefixEnd(Buffer.alloc(0)), Buffer.from([0]));
});

test('the restore plan lists each action, and after apply what was written and what conflicted', () => {
  const base = {
    snapshot: 's',
    snapshotRevision: 8,
    planRevision: 11,
    create: ['/a'],
    overwrite: ['/b'],
    unchanged: ['/c'],
    extra: ['/d'],
    delete: [],
    absent: ['/e'],
  };
  const dry = renderRestorePlan({ ...base, applied: false, conflicts: [] });
  assert.match(dry, /^create +\/a$/m);
  assert.match(dry, /^overwrite +\/b$/m);
  assert.match(dry, /^absent +\/e +\(--delete-key: not in the live cluster, nothing to delete\)$/m);
  assert.match(dry, /--apply --plan-revision 11\n$/);
  const applied = renderRestorePlan({ ...base, applied: true, conflicts: [{ key: '/b', action: 'overwrite', reason: 'changed' }] });
  assert.match(applied, /^created +\/a$/m);
  assert.doesNotMatch(applied, /^overwrote/m);
  assert.match(applied, /^CONFLICT +\/b: changed$/m);
  assert.match(applied, /1 created, 0 overwritten, 0 deleted, 1 unchanged, 1 live only, 1 conflict\(s\)\.\n$/);
});

test('API parameters are checked like their flags; names never carry a path', () => {
  const usage = (fn: () => unknown, re: RegExp): void =>
    assert.throws(fn, (e: unknown) => e instanceof EtcdsnapError && e.kind === 'usage' && re.test(e.message));
  const q = (s: string): URLSearchParams => new URLSearchParams(s);
  assert.deepEqual(parseInspectQuery(q('name=a&prefix=/x&limit=3&revision=9')), { name: 'a', prefix: Buffer.from('/x'), limit: 3, revision: 9, keys: false });
  usage(() => parseInspectQuery(q('prefix=/x')), /"name" is required/);
  usage(() => parseInspectQuery(q('name=../x')), /invalid snapshot name/);
  usage(() => parseInspectQuery(q('name=.hidden')), /hidden names/);
  usage(() => parseInspectQuery(q('name=a&limit=0')), /"limit": 0 is less than 1/);
  usage(() => parseInspectQuery(q('name=a&file=/etc/passwd')), /unknown query parameter "file"/);
  usage(() => parseInspectQuery(q('name=a'), ['key']), /"key" is required/);
  const r = parseRestoreKeysRequest({ name: 'a', prefix: '/ns/', deleteKeys: ['/ns/x'], apply: true, planRevision: 5 });
  assert.equal(r.apply, true);
  assert.equal(r.planRevision, 5);
  assert.deepEqual(r.selection.deleteKeys, [Buffer.from('/ns/x')]);
  usage(() => parseRestoreKeysRequest({ name: 'a', prefix: '/ns/', keys: ['/k'] }), /"prefix" or "keys"/);
  usage(() => parseRestoreKeysRequest({ name: 'a' }), /"prefix" or "keys"/);
  usage(() => parseRestoreKeysRequest({ name: '/etc/x', prefix: '/' }), /invalid snapshot name/);
  usage(() => parseRestoreKeysRequest({ name: 'a', prefix: '/', planRevision: 5 }), /"planRevision" needs "apply": true/);
  usage(() => parseRestoreKeysRequest({ name: 'a', prefix: '/', apply: 'yes' }), /invalid field "apply"/);
  usage(() => parseRestoreKeysRequest({ name: 'a', keys: [''] }), /may not be empty/);
  usage(() => parseRestoreKeysRequest({ name: 'a', prefix: '/', file: '/x' }), /unknown field "file"/);
});
