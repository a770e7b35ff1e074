/**
 * `etcd-snapshot restore-keys` against a live server (issue 13 part 3): the dry run prints
 * the plan and changes nothing (the whole keyspace compared before and after); `--apply`
 * restores a deleted prefix, leaves other keys and later writes alone, and reports a key
 * changed after the plan as a conflict (exit 1) without writing it; `--delete-key` is the
 * only way a key is deleted; restored keys carry no lease; a compacted plan revision is
 * refused before anything is written.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { apiRequest, etcdctl, killStarted, snapshotCli, startReady, type ServerProcess } from './helpers/server.js';

let s: ServerProcess;
let snap = '';
let lease = '';

/** Every key and value of the live cluster, as etcdctl prints them. */
const dump = (): string => {
  const r = etcdctl(s, ['get', '--prefix', '']);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
};
const value = (key: string): string | undefined => {
  const r = etcdctl(s, ['get', key, '--print-value-only']);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout === '' ? undefined : r.stdout.replace(/\n$/, '');
};
const put = (k: string, v: string, ...extra: string[]): void => assert.equal(etcdctl(s, ['put', k, v, ...extra]).code, 0);
const rk = (...args: string[]): { code: number | null; stdout: string; stderr: string } => snapshotCli(s, ['restore-keys', snap, ...args]);

before(async () => {
  s = await startReady();
  const grant = etcdctl(s, ['lease', 'grant', '3600']);
  lease = /lease ([0-9a-f]+) granted/.exec(grant.stdout)?.[1] ?? '';
  assert.ok(lease !== '', grant.stdout);
  put('/ns/a', 'A');
  put('/ns/b', 'B');
  put('/ns/c', 'C');
  put('/ns/leased', 'L', `--lease=${lease}`);
  put('/other/x', 'X');
  const r = snapshotCli(s, ['save', '--name', 'rk']);
  assert.equal(r.code, 0, r.stderr);
  snap = /^Snapshot (\S+) saved\./.exec(r.stdout)?.[1] ?? '';
  assert.ok(snap !== '');
});
after(() => killStarted());

test('the dry run prints create, overwrite, unchanged and live-only keys and changes nothing', () => {
  assert.equal(etcdctl(s, ['del', '/ns/a']).code, 0);
  put('/ns/b', 'B2');
  put('/ns/d', 'D');
  const before = dump();
  const r = rk('--prefix', '/ns/');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^create +\/ns\/a$/m);
  assert.match(r.stdout, /^overwrite +\/ns\/b$/m);
  assert.match(r.stdout, /^unchanged +\/ns\/c$/m);
  assert.match(r.stdout, /^live only +\/ns\/d +\(not in the snapshot: left alone\)$/m);
  assert.match(r.stdout, /Dry run: nothing was changed\. To apply exactly this plan: --apply --plan-revision \d+/);
  assert.equal(dump(), before, 'the dry run changed nothing');
});

test('the API route needs the token and answers the same plan as JSON', async () => {
  const before = dump();
  const body = JSON.stringify({ name: snap, prefix: '/ns/' });
  const url = `${s.url}/v1/snapshots/restore-keys`;
  assert.equal((await apiRequest(url, { method: 'POST', body, headers: { 'content-type': 'application/json' } })).status, 401);
  const secret = s.token().split('::server:')[1] ?? '';
  const r = await apiRequest(url, { method: 'POST', body, headers: { 'content-type': 'application/json', authorization: `Bearer ${secret}` } });
  assert.equal(r.status, 200, r.body);
  const plan = JSON.parse(r.body) as { applied: boolean; create: string[]; overwrite: string[]; unchanged: string[]; extra: string[] };
  assert.equal(plan.applied, false);
  assert.deepEqual([plan.create, plan.overwrite, plan.extra], [['/ns/a'], ['/ns/b'], ['/ns/d']]);
  assert.deepEqual(plan.unchanged, ['/ns/c', '/ns/leased']);
  const bad = await apiRequest(url, {
    method: 'POST',
    body: JSON.stringify({ name: '../x', prefix: '/' }),
    headers: { 'content-type': 'application/json', authorization: `Bearer ${secret}` },
  });
  assert.equal(bad.status, 400);
  assert.equal(dump(), before);
});

test('apply of a plan reports a key changed after it as a conflict and writes the others; later writes and other keys stay', () => {
  const plan = rk('--prefix', '/ns/');
  const rev = /--plan-revision (\d+)/.exec(plan.stdout)?.[1] ?? '';
  put('/ns/b', 'concurrent'); // after the plan
  put('/other/y', 'later');
  const r = rk('--prefix', '/ns/', '--apply', '--plan-revision', rev);
  assert.equal(r.code, 1, r.stdout);
  assert.match(r.stdout, /^CONFLICT +\/ns\/b: changed after the plan/m);
  assert.match(r.stdout, /^created +\/ns\/a$/m);
  assert.match(r.stderr, /1 key\(s\) changed after the plan and were not written/);
  assert.equal(value('/ns/a'), 'A');
  assert.equal(value('/ns/b'), 'concurrent', 'the concurrent write is not clobbered');
  assert.equal(value('/ns/d'), 'D', 'a live-only key is never deleted');
  assert.equal(value('/other/y'), 'later');
  assert.equal(value('/other/x'), 'X');
});

test('apply restores a whole deleted prefix without the snapshot lease; --delete-key deletes only what it names', () => {
  assert.equal(etcdctl(s, ['del', '--prefix', '/ns/']).code, 0);
  put('/ns/d', 'D');
  put('/ns/e', 'E');
  const r = rk('--prefix', '/ns/', '--apply', '--delete-key', '/ns/d');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^deleted +\/ns\/d$/m);
  assert.match(r.stdout, /4 created, 0 overwritten, 1 deleted/);
  for (const [k, v] of [
    ['/ns/a', 'A'],
    ['/ns/b', 'B'],
    ['/ns/c', 'C'],
    ['/ns/leased', 'L'],
    ['/ns/e', 'E'],
  ])
    assert.equal(value(k), v, k);
  assert.equal(value('/ns/d'), undefined);
  const leased = JSON.parse(etcdctl(s, ['get', '/ns/leased', '-w', 'json']).stdout) as { kvs: Array<{ lease?: number }> };
  assert.equal(leased.kvs[0]?.lease, undefined, 'written without the snapshot lease');
  // a key both restored and deleted is refused before anything is written
  const both = rk('--prefix', '/ns/', '--apply', '--delete-key', '/ns/a');
  assert.equal(both.code, 1);
  assert.match(both.stderr, /--delete-key \/ns\/a is in the snapshot's selection/);
  // --key restores single keys
  assert.equal(etcdctl(s, ['del', '/ns/c']).code, 0);
  const one = rk('--key', '/ns/c', '--key', '/ns/a', '--apply');
  assert.equal(one.code, 0, one.stderr);
  assert.match(one.stdout, /^created +\/ns\/c$/m);
  assert.match(one.stdout, /^unchanged +\/ns\/a$/m);
});

test('a plan whose revision etcd has compacted is refused; bad arguments are one-line usage errors', () => {
  const plan = rk('--prefix', '/ns/');
  const rev = Number(/--plan-revision (\d+)/.exec(plan.stdout)?.[1]);
  put('/ns/z', 'Z');
  put('/ns/z', 'Z2');
  const status = JSON.parse(etcdctl(s, ['endpoint', 'status', '-w', 'json']).stdout) as Array<{ Status: { header: { revision: number } } }>;
  assert.equal(etcdctl(s, ['compaction', String(status[0]?.Status.header.revision ?? 0)]).code, 0);
  const before = dump();
  const r = rk('--prefix', '/ns/', '--apply', '--plan-revision', String(rev));
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^error: the plan is too old: etcd has compacted its revision \d+; run the dry run again/);
  assert.equal(dump(), before);
  for (const [args, msg] of [
    [['--apply'], /needs --prefix or --key/],
    [['--prefix', '/ns/', '--key', '/ns/a'], /needs --prefix or --key \(one of the two\)/],
    [['--prefix', '/ns/', '--plan-revision', '5'], /--plan-revision applies a plan: give it with --apply/],
    [['--prefix', '/ns/', '--plan-revision', 'x', '--apply'], /plan-revision/],
  ] as const) {
    const b = rk(...args);
    assert.equal(b.code, 1, args.join(' '));
    assert.equal(b.stderr.trim().split('\n').length, 1, b.stderr);
    assert.match(b.stderr, msg);
  }
  const path = snapshotCli(s, ['restore-keys', './some.db', '--prefix', '/ns/']);
  assert.match(path.stderr, /restore-keys reads the snapshot on the server, by name/);
  const missing = snapshotCli(s, ['restore-keys', 'no-such', '--prefix', '/ns/']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /snapshot "no-such" not found/);
});
