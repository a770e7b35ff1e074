/**
 * One change log writer per cluster (issue 16), real etcd and Swift: three servers with
 * `--etcd-changelog --etcd-changelog-period 1s` and `--etcd-s3`. One writer at a time (only
 * its folder grows; segments never overlap); the writer's server and its etcd are SIGKILLed,
 * another server takes over within the lease TTL and resumes the chain from etcd's record;
 * the chain in S3 is contiguous from the snapshot to the end, with no gap and no overlap; a
 * restore to a revision after the failover with the seed's three-server procedure (S1
 * `--cluster-reset --cluster-reset-restore-to` with S3; S2 and S3 delete server/db and
 * rejoin) gives exactly what `etcdctl get --prefix "" --rev=<target>` showed, on all three
 * members; after it, the replayed election key (no lease) does not block a new writer.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { parseSegmentName, type SegmentName } from '../src/changelog/format.js';
import { CHANGELOG_PREFIX, segmentOfObject } from '../src/changelog/remote.js';
import { S3ObjectStore } from '../src/store/s3/object-store.js';
import { alive, etcdctl, killStarted, waitUntil, type Ports } from './helpers/server.js';
import { RESET_MESSAGE, resetAsync, startHa } from './helpers/restore.js';
import { s3ServerFlags, startSwift, swiftSettings, type Swift } from './helpers/swift.js';

let swift: Swift | undefined;
after(async () => {
  killStarted();
  await swift?.stop();
});

type Srv = { dataDir: string; ports: Ports };
const ok = (r: { code: number | null; stderr: string; stdout: string }): string => {
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
};
const revision = (s: Srv): number =>
  Number((JSON.parse(ok(etcdctl(s, ['get', 'no-such-key', '-w', 'json']))) as { header: { revision: number } }).header.revision);
function keysAt(s: Srv, rev: number): Array<{ key: string; value: string; create_revision: number; mod_revision: number; version: number }> {
  const out = JSON.parse(ok(etcdctl(s, ['get', '--prefix', '', '-w', 'json', `--rev=${rev}`]))) as {
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
const writerOf = (s: Srv): string => etcdctl(s, ['get', '/etcdsnap/changelog/writer', '--print-value-only']).stdout.trim();
const localSegments = (s: Srv): SegmentName[] => {
  const dir = path.join(s.dataDir, 'server', 'db', 'changelog');
  return (existsSync(dir) ? readdirSync(dir) : []).map((n) => parseSegmentName(n)).filter((x): x is SegmentName => x !== undefined);
};
const at = <T>(a: readonly T[], i: number): T => {
  const v = a[i];
  assert.ok(v !== undefined, `no element ${i}`);
  return v;
};
const msg = (re: RegExp) => (l: { msg?: string }) => typeof l.msg === 'string' && re.test(l.msg);

test('three servers: one writer, SIGKILL of it, takeover with no gap; the S3 chain is contiguous; the three-server restore to a point after the failover', async () => {
  swift = await startSwift();
  await swift.createBucket('elect');
  const env = { AWS_ACCESS_KEY_ID: swift.accessKey, AWS_SECRET_ACCESS_KEY: swift.secretKey };
  const s3 = s3ServerFlags(swift, 'elect', 'f');
  const bucket = S3ObjectStore.create(swiftSettings(swift, 'elect', 'f'), CHANGELOG_PREFIX);
  after(() => bucket.close());
  const ha = await startHa({ args: ['--etcd-changelog', '--etcd-changelog-period', '1s', ...s3], env });
  const begun = await ha.s1.waitFor(msg(/^change log: chain [0-9a-f]{16} begins at revision \d+/));
  const chain = String(begun.chain);
  const chainStart = Number(begun.revision);
  assert.equal(writerOf(ha.s2), 'server-1', 'S1 (the first up) writes');

  // writes through S2 and S3; only S1's folder grows
  const put = (s: Srv, k: string, v: string): void => void ok(etcdctl(s, ['put', k, v]));
  for (let i = 0; i < 10; i++) put(i % 2 ? ha.s2 : ha.s3, `w/${i}`, `V${i}`);
  const mid = revision(ha.s2);
  await waitUntil(() => localSegments(ha.s1).some((x) => x.last >= mid), 20_000, `S1 sealed revision ${mid}`);
  assert.deepEqual([...localSegments(ha.s2), ...localSegments(ha.s3)], [], 'S2 and S3 write no log while S1 does');
  const inBucket = async (rev: number): Promise<boolean> =>
    (await bucket.list()).some((o) => (parseSegmentName(segmentOfObject(o.name) ?? '')?.last ?? 0) >= rev);
  await waitUntil(() => inBucket(mid), 30_000, `revision ${mid} in the bucket`);

  // the writer dies with its etcd; S2 and S3 keep quorum
  const etcdPid = ha.s1.etcdPid();
  ha.s1.child.kill('SIGKILL');
  if (etcdPid !== undefined) process.kill(etcdPid, 'SIGKILL');
  const killedAt = Date.now();
  await ha.s1.wait();
  await waitUntil(() => !alive(etcdPid), 10_000, "S1's etcd to die");
  // writes go on (once etcd has a leader again)
  for (let i = 10; i < 20; i++) {
    const k = `w/${i}`;
    await waitUntil(() => etcdctl(ha.s2, ['put', k, `V${i}`]).code === 0, 30_000, `put ${k}`);
  }
  const resumed = await Promise.race(
    [ha.s2, ha.s3].map(async (s) => ({ s, line: await s.waitFor(msg(/^change log: resuming chain [0-9a-f]{16} at revision \d+/), 40_000) })),
  );
  const took = Date.now() - killedAt;
  // the lease TTL (10 s) after the last keepalive; when S1's member led etcd (it usually does:
  // it began the cluster), an election (5 s timeout) first, and the new leader extends every
  // lease by one more election timeout: 20 s, and the test's own polling
  assert.ok(took < 10_000 + 2 * 5_000 + 5_000, `the takeover took ${took} ms`);
  assert.equal(resumed.line.chain, chain, 'the same chain goes on');
  const next = resumed.s;
  const other = next === ha.s2 ? ha.s3 : ha.s2;
  assert.equal(writerOf(next), next === ha.s2 ? 'server-2' : 'server-3');
  for (let i = 20; i < 30; i++) put(other, `w/${i}`, `V${i}`);
  ok(etcdctl(other, ['del', 'w/3']));
  put(other, 'w/4', 'V4-changed');
  const target = revision(other);
  const expected = keysAt(other, target);
  put(other, 'w/after', 'after-target');
  await waitUntil(() => inBucket(target), 30_000, `revision ${target} in the bucket`);
  assert.ok(
    localSegments(next).every((x) => x.first > mid),
    'the new writer logs only what S1 had not committed',
  );
  assert.deepEqual(localSegments(other), [], 'the third server still writes nothing');

  // the chain in S3: contiguous from the snapshot's revision + 1 to the target, no overlap
  const segs = (await bucket.list())
    .map((o) => parseSegmentName(segmentOfObject(o.name) ?? ''))
    .filter((x): x is SegmentName => x !== undefined && x.chain === chain)
    .sort((a, b) => a.first - b.first);
  let expect = chainStart;
  for (const x of segs) {
    assert.equal(x.first, expect, `no gap and no overlap at ${x.name}`);
    expect = x.last + 1;
  }
  assert.ok(expect > target, `the chain reaches the target ${target} (ends at ${expect - 1})`);
  assert.ok(
    segs.some((x) => localSegments(ha.s1).some((y) => y.name === x.name)) && segs.some((x) => localSegments(next).some((y) => y.name === x.name)),
    'the chain in S3 holds segments of both writers',
  );

  // the seed's three-server procedure: S1 (down) resets to the target with S3; S2 and S3 stop, delete server/db, rejoin
  assert.deepEqual(await Promise.all([ha.s2.stop(), ha.s3.stop()]), [0, 0]);
  const dir1 = at(ha.dirs, 0);
  const r = await resetAsync(dir1, at(ha.ports, 0), [...s3, `--cluster-reset-restore-to=${target}`], env, 'server-1');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${RESET_MESSAGE(dir1)}\n`);
  for (const i of [1, 2]) rmSync(path.join(at(ha.dirs, i), 'server', 'db'), { recursive: true });
  const n1 = await ha.startS1();
  const n2 = await ha.join(1);
  const n3 = await ha.join(2);
  for (const s of [n1, n2, n3]) {
    assert.deepEqual(keysAt(s, target), expected, `${s.dataDir}: keys, values and revisions at the target as etcdctl get --rev showed them`);
  }
  assert.equal(etcdctl(n3, ['get', 'w/after', '--print-value-only']).stdout.trim(), '', 'nothing after the target');
  // the restored cluster: the replayed election key (no lease) does not block; a new chain begins after a snapshot
  await n1.waitFor(msg(/^change log: chain [0-9a-f]{16} begins at revision \d+/), 40_000);
  for (const s of [n3, n2, n1]) assert.equal(await s.stop(), 0);
});
