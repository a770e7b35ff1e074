/**
 * A restore that cannot be undone by a stale peer (issue: restore safety).
 * - Every restore gives the cluster a new etcd cluster ID and member ID, so etcd rejects the
 *   members of the cluster before the restore, and the reset is safe while they still run.
 * - A server with data from before the restore refuses to start, and changes nothing.
 * - A fresh-host restore whose token does not open the snapshot's CA is refused, unless
 *   --cluster-reset-new-ca asks for a new CA; a refusal leaves nothing behind.
 * Three real servers on loopback (test/helpers/restore.ts), real etcd 3.4.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import {
  apiRequest,
  etcdctl,
  freePorts,
  killStarted,
  runCli,
  snapshotCli,
  startReady,
  startServer,
  tempDir,
  type Ports,
  type ServerProcess,
} from './helpers/server.js';
import { getLocal, prepared, reset, RESET_MESSAGE, resetAsync, startHa, treeHash, type HaCluster, type RunResult } from './helpers/restore.js';

after(() => killStarted());

const dbOf = (dataDir: string): string => path.join(dataDir, 'server', 'db');
const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
const at = <T>(a: readonly T[], i: number): T => {
  const v = a[i];
  assert.ok(v !== undefined, `no element ${i}`);
  return v;
};

/** This member's cluster and member IDs in hex, read from etcdctl's JSON text (uint64s do not fit a JS number). */
function ids(s: { dataDir: string; ports: Ports }): { cluster: string; member: string } {
  const out = etcdctl(s, ['endpoint', 'status', '-w', 'json']).stdout;
  const num = (field: string): string => BigInt(new RegExp(`"${field}":(\\d+)`).exec(out)?.[1] ?? '0').toString(16);
  return { cluster: num('cluster_id'), member: num('member_id') };
}

/** Member IDs (hex) in a member list. */
function memberIds(s: { dataDir: string; ports: Ports }): string[] {
  const out = etcdctl(s, ['member', 'list', '-w', 'json']).stdout;
  return [...out.matchAll(/"ID":(\d+)/g)].map((m) => BigInt(m[1] ?? '0').toString(16));
}

async function identity(s: ServerProcess, token: string): Promise<{ clusterId: string; memberId: string; restoredAt: string | null; snapshot: string | null }> {
  const secret = token.split('::server:')[1] ?? '';
  const r = await apiRequest(`${s.url}/v1/cluster/identity`, { headers: { authorization: `Bearer ${secret}` } });
  assert.equal(r.status, 200, r.body);
  return JSON.parse(r.body) as { clusterId: string; memberId: string; restoredAt: string | null; snapshot: string | null };
}

/** Keys a/0..9 on S1, a snapshot of S1, then keys b/0..9 written through S2. */
function fillAndSnapshot(ha: HaCluster): { name: string; file: string } {
  for (let i = 0; i < 10; i++) assert.equal(etcdctl(ha.s1, ['put', `a/${i}`, `A${i}`]).code, 0);
  const saved = snapshotCli(ha.s1, ['save']);
  const name = /^Snapshot (\S+) saved\./.exec(saved.stdout)?.[1] ?? '';
  assert.ok(name, saved.stderr);
  for (let i = 0; i < 10; i++) assert.equal(etcdctl(ha.s2, ['put', `b/${i}`, `B${i}`]).code, 0);
  return { name, file: path.join(at(ha.dirs, 0), 'server', 'db', 'snapshots', name) };
}

/** S1's reset-restore (S1 must be stopped), as the seed runs it: exit 0, the message, and etcd never crashed. */
async function resetS1(ha: HaCluster, file: string): Promise<RunResult> {
  const dir = at(ha.dirs, 0);
  const r = await resetAsync(dir, at(ha.ports, 0), [`--cluster-reset-restore-path=${file}`], {}, 'server-1');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${RESET_MESSAGE(dir)}\n`);
  assert.doesNotMatch(r.stderr, /exited unexpectedly|panic/i, "S1's etcd never crashed during the reset");
  return r;
}

/** Every server given serves A and not B, from its own member. */
function restoredOnAll(servers: readonly ServerProcess[]): void {
  for (const s of servers) {
    assert.equal(getLocal(s, 'a/3'), 'A3', `${s.dataDir}: a key from before the snapshot`);
    assert.equal(getLocal(s, 'b/3'), '', `${s.dataDir}: a key written after the snapshot is absent`);
  }
}

test("the seed's three-server procedure in its written order (S1 resets while S2 and S3 still run): no crash, a new cluster and member ID, all three restored", async () => {
  const ha = await startHa();
  const { name, file } = fillAndSnapshot(ha);
  const before = ids(ha.s1);
  const oldMembers = memberIds(ha.s1);
  assert.equal(oldMembers.length, 3);

  // 1. on S1: the reset-restore; S2 and S3 are still running
  assert.equal(await ha.s1.stop(), 0);
  const r = await resetS1(ha, file);
  assert.match(r.stderr, new RegExp(`the restored cluster has a new etcd identity: cluster ID [0-9a-f]+ \\(was ${before.cluster}\\)`));
  // 2. on S2 and S3: stop, delete server/db
  assert.deepEqual(await Promise.all([ha.s2.stop(), ha.s3.stop()]), [0, 0]);
  assert.equal(readFileSync(path.join(dbOf(at(ha.dirs, 1)), 'cluster-id'), 'utf8').trim(), before.cluster, 'each start records the cluster ID');
  for (const i of [1, 2]) rmSync(dbOf(at(ha.dirs, i)), { recursive: true });
  // 3. S1 starts; 4. S2 and S3 join the restored cluster
  const n1 = await ha.startS1();
  const n2 = await ha.join(1);
  const n3 = await ha.join(2);

  const now = ids(n1);
  assert.notEqual(now.cluster, before.cluster, 'a new cluster ID');
  assert.ok(!oldMembers.includes(now.member), `a new member ID (${now.member}, before: ${oldMembers.join(', ')})`);
  assert.equal(ids(n2).cluster, now.cluster);
  assert.equal(readFileSync(path.join(dbOf(at(ha.dirs, 0)), 'cluster-id'), 'utf8').trim(), now.cluster);
  assert.equal((await apiRequest(`${n1.url}/v1/cluster/identity`)).status, 401, 'the identity route needs the token');
  for (const s of [n1, n2]) {
    const id = await identity(s, ha.token);
    assert.equal(id.clusterId, now.cluster);
    assert.equal(id.snapshot, name);
    assert.match(id.restoredAt ?? '', /^\d{4}-\d\d-\d\dT[\d:.]+Z$/, `${s.url} knows when the restore was`);
  }
  const members = (JSON.parse(etcdctl(n1, ['member', 'list', '-w', 'json']).stdout) as { members: Array<{ isLearner?: boolean }> }).members;
  assert.equal(members.length, 3);
  assert.ok(members.every((m) => m.isLearner !== true));
  restoredOnAll([n1, n2, n3]);
  for (const s of [n3, n2, n1]) assert.equal(await s.stop(), 0);
});

test('S2 and S3 never stopped: the restored S1 rejects them (cluster ID mismatch) and keeps the restored data; restarted without deleting server/db they refuse to start and change nothing', async () => {
  const ha = await startHa();
  const { name, file } = fillAndSnapshot(ha);
  const old = ids(ha.s1).cluster;
  assert.equal(await ha.s1.stop(), 0);
  await resetS1(ha, file);

  // S1 starts normally while S2 and S3 still run as members of the cluster before the restore
  const n1 = await ha.startS1();
  await n1.waitFor((l) => JSON.stringify(l).includes('cluster ID mismatch'), 60_000);
  const restored = ids(n1).cluster;
  assert.notEqual(restored, old);
  assert.equal(memberIds(n1).length, 1, 'S1 took no member of the old cluster');
  restoredOnAll([n1]);
  assert.equal(getLocal(ha.s2, 'b/3'), 'B3', 'S2 still runs, apart, with the old data');

  // stopped and started again without deleting server/db: refused before etcd starts
  assert.deepEqual(await Promise.all([ha.s2.stop(), ha.s3.stop()]), [0, 0]);
  for (const i of [1, 2]) {
    const dir = at(ha.dirs, i);
    const hash = treeHash(dir);
    const stale = await startServer({
      dataDir: dir,
      ports: at(ha.ports, i),
      nodeName: `server-${i + 1}`,
      args: ['--server', n1.url, '--etcd-disable-snapshots'],
      env: { ETCDSNAP_TOKEN: ha.token },
    });
    assert.equal(await stale.wait(30_000), 1, stale.raw.join('\n'));
    const errors = stale.raw.filter((l) => l.startsWith('error: '));
    assert.equal(errors.length, 1, stale.raw.join('\n'));
    assert.match(
      errors[0] ?? '',
      new RegExp(
        `^error: this server's etcd data is from before a restore: the cluster at ${escapeRe(n1.url)} was restored from snapshot ${escapeRe(name)} at \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z, and its etcd cluster ID is now ${restored} \\(this data: ${old}\\); .*Back up and delete ${escapeRe(dbOf(dir))}, then start this server again`,
      ),
    );
    assert.ok(!stale.raw.some((l) => l.includes('"component":"etcd"')), 'etcd was never started');
    assert.equal(treeHash(dir), hash, 'the data dir is unchanged');
  }
  restoredOnAll([n1]);

  // backed up and deleted, they join the restored cluster
  for (const i of [1, 2]) rmSync(dbOf(at(ha.dirs, i)), { recursive: true });
  const n2 = await ha.join(1);
  const n3 = await ha.join(2);
  restoredOnAll([n1, n2, n3]);
  assert.equal(memberIds(n1).length, 3);
  for (const s of [n3, n2, n1]) assert.equal(await s.stop(), 0);
});

test("fresh host: a token that does not open the snapshot's CA, or a snapshot without bootstrap data, is refused and leaves nothing; --cluster-reset-new-ca restores with a new CA", async () => {
  const { s, file } = await prepared();
  const token = s.token();
  const ca = readFileSync(path.join(s.dataDir, 'server', 'tls', 'server-ca.crt'), 'utf8');
  const ports = await freePorts();
  const errorLine = (r: RunResult): string => {
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('error: '));
    assert.equal(lines.length, 1, r.stderr);
    return lines[0] ?? '';
  };

  // another bare secret: k3s's "encrypted with different token"; the data dir did not exist and still does not
  const fresh = path.join(tempDir(), 'data');
  const wrong = 'another-secret-of-this-cluster-0001';
  let r = reset(fresh, ports, [`--cluster-reset-restore-path=${file}`], { ETCDSNAP_TOKEN: wrong });
  assert.equal(r.code, 1, r.stderr);
  assert.match(
    errorLine(r),
    /^error: bootstrap data already found in the snapshot and encrypted with different token: pass the token of the cluster the snapshot was taken from .*, or add --cluster-reset-new-ca to restore the data with a new cluster CA and token .*; nothing was kept$/,
  );
  assert.ok(!existsSync(fresh), `nothing left: ${existsSync(fresh) ? readdirSync(fresh, { recursive: true }).join(' ') : ''}`);

  // the flag asks for a new CA: restored, with a new CA and a token of the given secret
  r = reset(fresh, ports, [`--cluster-reset-restore-path=${file}`, '--cluster-reset-new-ca'], { ETCDSNAP_TOKEN: wrong });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /--cluster-reset-new-ca: this host keeps the new cluster CA it made/);
  assert.notEqual(readFileSync(path.join(fresh, 'server', 'tls', 'server-ca.crt'), 'utf8'), ca);
  assert.match(readFileSync(path.join(fresh, 'server', 'token'), 'utf8'), new RegExp(`^K10[0-9a-f]{64}::server:${wrong}\\n$`));
  const back = await startReady({ dataDir: fresh, ports, args: ['--etcd-disable-snapshots'] });
  assert.equal(getLocal(back, 'a/7'), 'A7');
  // a snapshot without bootstrap data: the key deleted, then etcdctl's snapshot
  assert.equal(etcdctl(back, ['del', '/etcdsnap/bootstrap']).stdout.trim(), '1');
  const plain = path.join(tempDir(), 'plain.db');
  assert.equal(etcdctl(back, ['snapshot', 'save', plain]).code, 0);
  assert.equal(await back.stop(), 0);

  // refused with the original full token or a bare secret; an existing empty data dir stays empty
  const fresh2 = path.join(tempDir(), 'data');
  mkdirSync(fresh2);
  r = reset(fresh2, ports, [`--cluster-reset-restore-path=${plain}`], { ETCDSNAP_TOKEN: token });
  assert.equal(r.code, 1, r.stderr);
  assert.match(
    errorLine(r),
    /^error: the snapshot holds no etcdsnap bootstrap data \(it was taken by etcdctl or another tool.*\), so its cluster CA cannot be restored: give only the token's secret \(the part after ::server:\) with --cluster-reset-new-ca .*; nothing was kept$/,
  );
  assert.deepEqual(readdirSync(fresh2), []);
  r = reset(fresh2, ports, [`--cluster-reset-restore-path=${plain}`], { ETCDSNAP_TOKEN: wrong });
  assert.equal(r.code, 1, r.stderr);
  assert.match(
    errorLine(r),
    /^error: the snapshot holds no etcdsnap bootstrap data .*: add --cluster-reset-new-ca to restore the data with a new cluster CA and token/,
  );
  assert.deepEqual(readdirSync(fresh2), []);
  // a full token with the flag: a new CA cannot match the CA it pins
  r = reset(fresh2, ports, [`--cluster-reset-restore-path=${plain}`, '--cluster-reset-new-ca'], { ETCDSNAP_TOKEN: token });
  assert.equal(r.code, 1, r.stderr);
  assert.match(errorLine(r), /--cluster-reset-new-ca makes a new cluster CA, which a full token \(K10\.\.\.\) cannot pin: pass only its secret/);
  assert.deepEqual(readdirSync(fresh2), []);
  // the flag with a bare secret restores it
  r = reset(fresh2, ports, [`--cluster-reset-restore-path=${plain}`, '--cluster-reset-new-ca'], { ETCDSNAP_TOKEN: wrong });
  assert.equal(r.code, 0, r.stderr);
  assert.ok(existsSync(path.join(fresh2, 'server', 'tls', 'server-ca.crt')));

  // the flag needs a restore path
  const cfg = path.join(path.dirname(fresh2), `config-${ports.supervisor}.yaml`);
  const bad = runCli(['server', '--config', cfg, '--data-dir', fresh2, '--cluster-reset', '--cluster-reset-new-ca']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^error: invalid flag use; --cluster-reset-restore-path required with --cluster-reset-new-ca$/m);
});
