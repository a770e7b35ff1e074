/**
 * Integration tests of the change log and restore to a point (issue 16), one server, real
 * etcd: the writer after a snapshot (puts, deletes, a multi-key txn, a lease expiry, a
 * SIGKILL and restart in the middle), its segments (contiguous, no gap, no overlap, 0600 in
 * a 0700 folder), restores to a revision and to a time that equal `etcdctl get --rev`, and
 * refusals (a flipped byte, a missing segment) that leave server/db as it was.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { decodeSegment, parseSegmentName } from '../src/changelog/format.js';
import {
  alive,
  etcdctl,
  etcdctlFlags,
  killStarted,
  runCli,
  snapshotCli,
  startReady,
  tempDir,
  waitUntil,
  type Ports,
  type ServerProcess,
} from './helpers/server.js';
import { reset, RESET_MESSAGE, treeHash } from './helpers/restore.js';

after(() => killStarted());

type Srv = { dataDir: string; ports: Ports };
const CL_ARGS = ['--etcd-disable-snapshots', '--etcd-changelog', '--etcd-changelog-period', '1s'];

const ok = (r: { code: number | null; stderr: string; stdout: string }): string => {
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
};
const put = (s: Srv, k: string, v: string, ...more: string[]): void => void ok(etcdctl(s, ['put', k, v, ...more]));
function revision(s: Srv): number {
  return Number((JSON.parse(ok(etcdctl(s, ['get', 'no-such-key', '-w', 'json']))) as { header: { revision: number } }).header.revision);
}
/** The keys at `rev` (or now) as `etcdctl get --prefix "" -w json` shows them. */
function keysAt(s: Srv, rev?: number): Array<{ key: string; value: string; create_revision: number; mod_revision: number; version: number }> {
  const out = JSON.parse(ok(etcdctl(s, ['get', '--prefix', '', '-w', 'json', ...(rev !== undefined ? [`--rev=${rev}`] : [])]))) as {
    kvs?: Array<{ key: string; value?: string; create_revision: number; mod_revision: number; version: number }>;
  };
  return (out.kvs ?? []).map((kv) => ({
    key: kv.key,
    value: kv.value ?? '',
    create_revision: kv.create_revision,
    mod_revision: kv.mod_revision,
    version: kv.version,
  }));
}
function txn(s: Srv, ops: string[]): void {
  const r = spawnSync('etcdctl', [...etcdctlFlags(s), 'txn'], {
    input: `\n${ops.join('\n')}\n\n\n`,
    env: { ...process.env, ETCDCTL_API: '3' },
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^SUCCESS/);
}
const clDir = (s: Srv): string => path.join(s.dataDir, 'server', 'db', 'changelog');
const sealed = (s: Srv) =>
  (existsSync(clDir(s)) ? readdirSync(clDir(s)) : [])
    .map((n) => parseSegmentName(n))
    .filter((x) => x !== undefined)
    .sort((a, b) => a.first - b.first);
/** Waits (polling) until a sealed segment holds revision `rev`. */
const sealedThrough = (s: Srv, rev: number): Promise<void> =>
  waitUntil(() => sealed(s).some((x) => x.first <= rev && x.last >= rev), 20_000, `a sealed segment with revision ${rev}`);

const dbDir = (s: Srv): string => path.join(s.dataDir, 'server', 'db');
/** server/db without the files a reset itself rewrites on success (none on a refusal). */
const dbHash = (s: Srv): string => treeHash(dbDir(s));

test('change log: restore to a revision and to a time equals etcdctl get --rev; a restart resumes with no gap; damage is refused', async () => {
  let s: ServerProcess = await startReady({ args: CL_ARGS });
  // no chain to resume: a snapshot at once, and the chain after it
  const begun = await s.waitFor((l) => typeof l.msg === 'string' && /^change log: chain [0-9a-f]{16} begins at revision \d+/.test(l.msg));
  const chainStart = Number(begun.revision);
  assert.ok(s.lines.some((l) => l.msg === 'change log: no earlier segment; a new chain begins after a snapshot taken now'));
  for (let i = 0; i < 5; i++) put(s, `a/${i}`, `A${i}`);
  const saved = ok(snapshotCli(s, ['save']));
  const snapName = /^Snapshot (\S+) saved\./.exec(saved)?.[1] ?? '';

  for (let i = 0; i < 5; i++) put(s, `b/${i}`, `B${i}`);
  put(s, 'a/1', 'A1-changed');
  ok(etcdctl(s, ['del', 'a/0']));
  txn(s, ['put t/1 T1', 'put t/2 T2', 'del b/0']);
  const grant = ok(etcdctl(s, ['lease', 'grant', '2']));
  const lease = /lease ([0-9a-f]+) granted/.exec(grant)?.[1] ?? '';
  put(s, 'l/1', 'leased', `--lease=${lease}`);
  put(s, 'l/2', 'leased-too', `--lease=${lease}`);
  // 200 more keys on the lease: its expiry is one revision of 202 deletes, more than etcd's
  // default --max-txn-ops (128), which the replay must still apply as one transaction
  for (const part of [0, 1])
    txn(
      s,
      Array.from({ length: 100 }, (_, i) => `put l/m${part * 100 + i} v --lease=${lease}`),
    );
  await waitUntil(() => etcdctl(s, ['get', '--prefix', 'l/', '--keys-only']).stdout.trim() === '', 15_000, 'the lease to expire');

  // a crash in the middle: the writer starts again from its last sealed revision
  const beforeKill = revision(s);
  await sealedThrough(s, beforeKill - 2);
  put(s, 'k/1', 'K1');
  s.child.kill('SIGKILL');
  await s.wait();
  s = await startReady({ dataDir: s.dataDir, ports: s.ports, args: CL_ARGS });
  await waitUntil(() => s.lines.some((l) => typeof l.msg === 'string' && l.msg.includes('resuming chain')), 10_000, 'the resume');
  put(s, 'k/2', 'K2');
  put(s, 'b/1', 'B1-changed');

  const targetRev = revision(s);
  const expected = keysAt(s, targetRev);
  await sealedThrough(s, targetRev);
  const time = new Date(); // every revision up to targetRev was seen before it
  put(s, 'c/1', 'after-target');
  ok(etcdctl(s, ['del', 'a/2']));
  txn(s, ['put c/2 C2', 'put c/3 C3']);
  const last = revision(s);
  await sealedThrough(s, last);

  // the segments: one chain, contiguous from base + 1, no overlap, private files
  const segs = sealed(s);
  assert.equal(new Set(segs.map((x) => x.chain)).size, 1, 'one chain across the restart and a second snapshot');
  let next = chainStart;
  for (const x of segs) {
    assert.equal(x.first, next, `segment ${x.name} follows the previous one with no gap and no overlap`);
    next = x.last + 1;
    const d = decodeSegment(x.name, readFileSync(path.join(clDir(s), x.name)));
    assert.equal(d.records.length, x.last - x.first + 1);
    assert.equal(statSync(path.join(clDir(s), x.name)).mode & 0o777, 0o600);
  }
  // the writer's own record put after each seal keeps adding revisions: the log may already be past `last`
  assert.ok(next >= last + 1, `every revision up to the last one (${last}) is logged: the segments end at ${next - 1}`);
  // the writer's own record puts (one per seal) are revisions too: the time maps to the last
  // revision seen at or before it, which may be such a put after targetRev
  const seenBy = Math.max(
    ...segs.flatMap((x) =>
      decodeSegment(x.name, readFileSync(path.join(clDir(s), x.name)))
        .records.filter((rec) => rec.time <= time.getTime())
        .map((rec) => rec.revision),
    ),
  );
  assert.ok(seenBy >= targetRev, `revision ${targetRev} was seen before the time`);
  const expectedAtTime = keysAt(s, seenBy);
  assert.equal(statSync(clDir(s)).mode & 0o777, 0o700);
  assert.equal(await s.stop(), 0);

  // refusals: a flipped byte, a missing segment; server/db unchanged
  const needed = segs.filter((x) => x.first <= targetRev);
  const victim = needed[needed.length - 1];
  assert.ok(victim);
  const vfile = path.join(clDir(s), victim.name);
  const good = readFileSync(vfile);
  const bad = Buffer.from(good);
  bad[Math.floor(bad.length / 2)] = (bad[Math.floor(bad.length / 2)] ?? 0) ^ 0x01;
  writeFileSync(vfile, bad);
  let h = dbHash(s);
  let r = reset(s.dataDir, s.ports, [`--cluster-reset-restore-to=${targetRev}`]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`change log segment ${victim.name}: .*corrupt.*nothing was changed`));
  assert.equal(dbHash(s), h, 'a corrupt segment changes nothing');
  writeFileSync(vfile, good);
  renameSync(vfile, `${vfile}.away`);
  h = dbHash(s);
  r = reset(s.dataDir, s.ports, [`--cluster-reset-restore-to=${targetRev}`]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`no revisions ${victim.first}\\.\\.${Math.min(victim.last, targetRev)}.*nothing was changed`));
  assert.equal(dbHash(s), h, 'a missing segment changes nothing');
  renameSync(`${vfile}.away`, vfile);

  // to a revision (the newest local snapshot before it is chosen: the test's, not the first)
  r = reset(s.dataDir, s.ports, [`--cluster-reset-restore-to=${targetRev}`]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${RESET_MESSAGE(s.dataDir)}\n`);
  s = await startReady({ dataDir: s.dataDir, ports: s.ports, args: ['--etcd-disable-snapshots'] });
  assert.equal(revision(s), targetRev, 'the restored revision is the target');
  assert.deepEqual(keysAt(s), expected, 'keys, values and revisions as etcdctl get --rev showed them');
  assert.equal(await s.stop(), 0);

  // to a time, from the old history's log (moved aside by the restore) and an explicit snapshot path
  const old = readdirSync(dbDir(s)).find((n) => n.startsWith('changelog-old-'));
  assert.ok(old, 'the log of the history before the restore is kept aside');
  rmSync(clDir(s), { recursive: true, force: true });
  renameSync(path.join(dbDir(s), old), clDir(s));
  r = reset(s.dataDir, s.ports, [
    `--cluster-reset-restore-path=${path.join(dbDir(s), 'snapshots', snapName)}`,
    `--cluster-reset-restore-to=${time.toISOString()}`,
  ]);
  assert.equal(r.code, 0, r.stderr);
  s = await startReady({ dataDir: s.dataDir, ports: s.ports, args: ['--etcd-disable-snapshots'] });
  assert.equal(revision(s), seenBy);
  assert.deepEqual(keysAt(s), expectedAtTime);
  assert.equal(await s.stop(), 0);
});

test('change log: a compacted resume point ends the chain; a snapshot at once begins a new one', async () => {
  let s: ServerProcess = await startReady({ args: CL_ARGS });
  const first = await s.waitFor((l) => typeof l.msg === 'string' && l.msg.includes('begins at revision'));
  put(s, 'x/1', 'X1');
  await sealedThrough(s, revision(s));
  assert.equal(await s.stop(), 0);
  // written and compacted while no change log runs
  s = await startReady({ dataDir: s.dataDir, ports: s.ports, args: ['--etcd-disable-snapshots'] });
  put(s, 'x/2', 'X2');
  put(s, 'x/3', 'X3');
  ok(etcdctl(s, ['compact', String(revision(s))]));
  assert.equal(await s.stop(), 0);
  s = await startReady({ dataDir: s.dataDir, ports: s.ports, args: CL_ARGS });
  const why = await s.waitFor((l) => typeof l.msg === 'string' && l.msg.includes('was compacted while no change log was written'));
  assert.match(String(why.msg), /^change log: revision \d+ was compacted while no change log was written; a new chain begins after a snapshot taken now$/);
  const second = await s.waitFor((l) => typeof l.msg === 'string' && l.msg.includes('begins at revision') && l.chain !== first.chain);
  put(s, 'x/4', 'X4');
  await sealedThrough(s, revision(s));
  const chains = new Set(sealed(s).map((x) => x.chain));
  assert.deepEqual([...chains].sort(), [String(first.chain), String(second.chain)].sort(), 'the old chain and a new one');
  assert.equal(await s.stop(), 0);
});

test('change log: etcd killed and restarted by the server under the writer: it watches again with no gap and no overlap', async () => {
  const s = await startReady({ args: CL_ARGS });
  const begun = await s.waitFor((l) => typeof l.msg === 'string' && l.msg.includes('begins at revision'));
  const chainStart = Number(begun.revision);
  for (let i = 0; i < 10; i++) put(s, `e/${i}`, `E${i}`);
  const first = s.etcdPid();
  process.kill(first ?? -1, 'SIGKILL');
  await waitUntil(() => s.etcdPid() !== undefined && s.etcdPid() !== first && alive(s.etcdPid()), 20_000, 'etcd restart');
  await waitUntil(() => etcdctl(s, ['endpoint', 'health']).code === 0, 30_000, 'etcd healthy again');
  for (let i = 10; i < 20; i++) put(s, `e/${i}`, `E${i}`);
  const last = revision(s);
  await sealedThrough(s, last);
  const segs = sealed(s);
  assert.equal(new Set(segs.map((x) => x.chain)).size, 1, 'one chain');
  let next = chainStart;
  for (const x of segs) {
    assert.equal(x.first, next, `no gap and no overlap at ${x.name}`);
    next = x.last + 1;
  }
  assert.ok(next >= last + 1, `every revision up to ${last} is logged (the writer's record puts may add more): the segments end at ${next - 1}`);
  assert.ok(s.lines.some((l) => typeof l.msg === 'string' && l.msg.startsWith('change log: the watch ended; watching again')));
  assert.equal(await s.stop(), 0);
});

test('change log: retention removes the segments older than the oldest kept snapshot, and keeps what it needs', async () => {
  const s = await startReady({
    args: ['--etcd-snapshot-schedule-cron', '@every 2s', '--etcd-snapshot-retention', '1', '--etcd-changelog', '--etcd-changelog-period', '200ms'],
  });
  const begun = await s.waitFor((l) => typeof l.msg === 'string' && l.msg.includes('begins at revision'));
  const chainStart = Number(begun.revision);
  /** The revisions of the kept snapshots (their sidecars; a file pruned meanwhile is skipped). */
  const keptRevisions = (): number[] => {
    const meta = path.join(dbDir(s), '.metadata');
    return readdirSync(path.join(dbDir(s), 'snapshots')).flatMap((n) => {
      try {
        return [Number((JSON.parse(readFileSync(path.join(meta, n), 'utf8')) as { revision: string }).revision)];
      } catch {
        return [];
      }
    });
  };
  // a revision is logged when a sealed segment holds it, or retention removed it because a kept snapshot holds it
  const logged = (rev: number): Promise<void> =>
    waitUntil(() => sealed(s).some((x) => x.last >= rev) || Math.max(0, ...keptRevisions()) >= rev, 20_000, `revision ${rev} logged`);
  let i = 0;
  while (!s.lines.some((l) => typeof l.msg === 'string' && l.msg.startsWith('change log: removed'))) {
    put(s, `r/${i % 10}`, `R${i++}`);
    await logged(revision(s));
    if (i > 400) assert.fail('no segment was removed');
  }
  put(s, 'r/last', 'L');
  const last = revision(s);
  await logged(last);
  assert.equal(await s.stop(), 0, s.raw.slice(-20).join('\n'));
  const kept = keptRevisions();
  const oldest = Math.min(...kept);
  const segs = sealed(s);
  const shown = `kept snapshots at revisions ${kept.join(', ')}; segments ${segs.map((x) => `${x.first}..${x.last}`).join(', ')}; chain from ${chainStart}`;
  assert.ok(!segs.some((x) => x.first === chainStart), `the first segment is gone: ${shown}`);
  // what the oldest kept snapshot needs, (oldest, last], is all there, contiguous
  const needed = segs.filter((x) => x.last > oldest);
  if (oldest < last) assert.ok((needed[0]?.first ?? Number.POSITIVE_INFINITY) <= oldest + 1, `revision ${oldest + 1} is kept: ${shown}`);
  let next = needed[0]?.first ?? oldest + 1;
  for (const x of needed) {
    assert.equal(x.first, next, shown);
    next = x.last + 1;
  }
  assert.ok(next >= last + 1, `every revision up to ${last} is kept: ${shown}`);
});

test('--cluster-reset-restore-to: a bad value, or without --cluster-reset, is refused before anything is made', () => {
  const dataDir = path.join(tempDir(), 'data');
  const cfg = path.join(path.dirname(dataDir), 'empty.yaml');
  writeFileSync(cfg, '');
  const base = ['server', '--config', cfg, '--data-dir', dataDir];
  let r = runCli([...base, '--cluster-reset-restore-to=5']);
  assert.equal(r.code, 1);
  assert.equal(r.stderr.trim().split('\n').pop(), 'error: invalid flag use; --cluster-reset required with --cluster-reset-restore-to');
  r = runCli([...base, '--cluster-reset', '--cluster-reset-restore-to=yesterday']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /error: invalid --cluster-reset-restore-to "yesterday": give an etcd revision/);
  r = runCli([...base, '--cluster-reset', '--cluster-reset-restore-to=2026-11-30T14:02:00Z', '--token', 'a-long-enough-secret-0001']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /error: no local snapshot in .* was taken before 2026-11-30T14:02:00.000Z; give one with --cluster-reset-restore-path/);
  assert.equal(existsSync(dataDir), false, 'no data dir was made');
});
