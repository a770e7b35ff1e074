/**
 * The change log in S3 (issue 16), real etcd and Swift: a server with `--etcd-changelog` and
 * `--etcd-s3` (segments compressed with zstd and encrypted for an age recipient, like its
 * snapshots) uploads each sealed segment to `<folder>/changelog/`; after a SIGKILL of the
 * server and its etcd and the removal of the data dir, `--cluster-reset-restore-to=N` from
 * S3 alone gives what `etcdctl get --rev=N` showed; a corrupt or a missing segment object is
 * refused with server/db unchanged.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { parseSegmentName } from '../src/changelog/format.js';
import { CHANGELOG_PREFIX, segmentOfObject } from '../src/changelog/remote.js';
import { S3ObjectStore } from '../src/store/s3/object-store.js';
import { alive, etcdctl, etcdctlFlags, killStarted, snapshotCli, startReady, tempDir, waitUntil, type Ports } from './helpers/server.js';
import { reset, RESET_MESSAGE, treeHash } from './helpers/restore.js';
import { s3CliFlags, s3ServerFlags, startSwift, swiftSettings, type Swift } from './helpers/swift.js';

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
const put = (s: Srv, k: string, v: string): void => void ok(etcdctl(s, ['put', k, v]));
const revision = (s: Srv): number =>
  Number((JSON.parse(ok(etcdctl(s, ['get', 'no-such-key', '-w', 'json']))) as { header: { revision: number } }).header.revision);
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

test('change log in S3 (zstd + age): SIGKILL, data dir removed, restore to a revision from S3 alone; a corrupt or missing segment object is refused', async () => {
  swift = await startSwift();
  await swift.createBucket('pitr');
  const env = { AWS_ACCESS_KEY_ID: swift.accessKey, AWS_SECRET_ACCESS_KEY: swift.secretKey };
  const keys = tempDir();
  const identity = path.join(keys, 'key.txt');
  execFileSync('age-keygen', ['-o', identity], { stdio: 'ignore' });
  const recipient = execFileSync('age-keygen', ['-y', identity]).toString().trim();
  const s3 = s3ServerFlags(swift, 'pitr', 'f');
  const encoding = ['--etcd-snapshot-compression', 'zstd', '--etcd-snapshot-encrypt-recipient', recipient];
  const args = ['--etcd-disable-snapshots', '--etcd-changelog', '--etcd-changelog-period', '1s', ...s3, ...encoding];
  const bucket = S3ObjectStore.create(swiftSettings(swift, 'pitr', 'f'), CHANGELOG_PREFIX);
  after(() => bucket.close());
  const s = await startReady({ args, env });
  await s.waitFor((l) => typeof l.msg === 'string' && /^change log: chain [0-9a-f]{16} begins at revision \d+/.test(l.msg));
  for (let i = 0; i < 5; i++) put(s, `a/${i}`, `A${i}`);
  ok(snapshotCli(s, ['save', ...s3CliFlags(swift, 'pitr', 'f')], env));
  for (let i = 0; i < 5; i++) put(s, `b/${i}`, `B${i}`);
  // a first segment after the snapshot is in the bucket before the rest is written: two segments
  const mid = revision(s);
  await waitUntil(
    async () => (await bucket.list()).some((o) => (parseSegmentName(segmentOfObject(o.name) ?? '')?.last ?? 0) >= mid),
    30_000,
    `revision ${mid} in the bucket`,
  );
  put(s, 'a/1', 'A1-changed');
  ok(etcdctl(s, ['del', 'a/0']));
  const t = spawnSync('etcdctl', [...etcdctlFlags(s), 'txn'], {
    input: '\nput t/1 T1\nput t/2 T2\ndel b/0\n\n\n',
    env: { ...process.env, ETCDCTL_API: '3' },
    encoding: 'utf8',
  });
  assert.equal(t.status, 0, t.stderr);
  const target = revision(s);
  const expected = keysAt(s, target);
  put(s, 'c/1', 'after-target');
  ok(etcdctl(s, ['del', 'a/2']));

  // the bucket: poll until a sealed segment holding the target is there
  const covering = async (): Promise<string | undefined> =>
    (await bucket.list()).find((o) => {
      const seg = parseSegmentName(segmentOfObject(o.name) ?? '');
      return seg !== undefined && seg.first <= target && seg.last >= target;
    })?.name;
  await waitUntil(async () => (await covering()) !== undefined, 30_000, `a segment with revision ${target} in the bucket`);
  const objects = (await bucket.list()).map((o) => o.name);
  assert.ok(
    objects.every((n) => n.endsWith('.jsonl.zst.age')),
    `segments are compressed and encrypted like the snapshots: ${objects.join(', ')}`,
  );

  // lose the host: server and etcd SIGKILLed, the data dir removed
  const token = s.token();
  const etcdPid = s.etcdPid();
  s.child.kill('SIGKILL');
  if (etcdPid !== undefined) process.kill(etcdPid, 'SIGKILL');
  await s.wait();
  await waitUntil(() => !alive(etcdPid), 10_000, 'etcd to die');
  rmSync(s.dataDir, { recursive: true, force: true });

  const resetEnv = { ...env, ETCDSNAP_TOKEN: token };
  const restoreArgs = [...s3, `--etcd-snapshot-decrypt-identity-file=${identity}`, `--cluster-reset-restore-to=${target}`];
  let r = reset(s.dataDir, s.ports, restoreArgs, resetEnv);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${RESET_MESSAGE(s.dataDir)}\n`);
  assert.match(r.stderr, /Retrieving etcd snapshot \S+ from S3/);
  const restored = await startReady({ dataDir: s.dataDir, ports: s.ports, args: ['--etcd-disable-snapshots'] });
  assert.equal(revision(restored), target, 'the restored revision is the target');
  assert.deepEqual(keysAt(restored), expected, 'keys, values and revisions as etcdctl get --rev showed them');
  assert.equal(await restored.stop(), 0);

  // refusals from S3, server/db unchanged: a corrupt object, then a missing one
  const victim = await covering();
  assert.ok(victim);
  const seg = parseSegmentName(segmentOfObject(victim) ?? '');
  assert.ok(seg);
  const db = path.join(s.dataDir, 'server', 'db');
  const { body, metadata } = await bucket.get(victim, 1 << 26);
  const bad = Buffer.from(body);
  bad[bad.length - 5] = (bad[bad.length - 5] ?? 0) ^ 0x01;
  await bucket.put(victim, bad, { contentType: 'application/octet-stream', metadata });
  let h = treeHash(db);
  r = reset(s.dataDir, s.ports, restoreArgs, env);
  assert.equal(r.code, 1, r.stderr);
  assert.match(
    r.stderr,
    new RegExp(`change log segment s3://pitr/f/changelog/${victim.replace(/\./g, '\\.')}: sha256 .* does not match its record's .*nothing was changed`),
  );
  assert.equal(treeHash(db), h, 'a corrupt segment object changes nothing');
  await bucket.delete([victim]);
  h = treeHash(db);
  r = reset(s.dataDir, s.ports, restoreArgs, env);
  assert.equal(r.code, 1, r.stderr);
  assert.ok(seg.first > mid, `the target's segment ${victim} is not the first after the snapshot`);
  assert.match(
    r.stderr,
    new RegExp(`refusing to restore to a point: the change log has no revisions ${seg.first}\\.\\.${Math.min(seg.last, target)}: .*nothing was changed`),
  );
  assert.equal(treeHash(db), h, 'a missing segment object changes nothing');
});
