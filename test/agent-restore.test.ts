/**
 * `etcdsnap etcd-snapshot restore` for an etcd cluster etcdsnap does not run: a snapshot the
 * agent took (zip, local and S3) becomes three member data dirs (one from the local file,
 * one from S3 by name, one from an age-encrypted copy), from which the three plain etcd
 * members start as a new cluster (new cluster ID) with the snapshot's keys and none written
 * after it. Refusals (non-empty dir, bad snapshot, bad flags, missing parent) leave nothing
 * behind.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { agentReady, EtcdCluster, type MemberSpec, startAgent, startEtcdCluster } from './helpers/etcd-cluster.js';
import { runCli, type ServerProcess, snapshotCli, tempDir } from './helpers/server.js';
import { treeHash } from './helpers/restore.js';
import { s3CliFlags, s3ServerFlags, startSwift, type Swift } from './helpers/swift.js';

let cluster: EtcdCluster;
let restored: EtcdCluster | undefined;
let swift: Swift;
let agent: ServerProcess | undefined;

before(async () => {
  [cluster, swift] = await Promise.all([startEtcdCluster(3), startSwift()]);
  await swift.createBucket('restore');
});

after(async () => {
  if (agent?.exitCode === undefined) agent?.child.kill('SIGKILL');
  await cluster?.stopAll();
  await restored?.stopAll();
  await swift?.stop();
});

const awsEnv = (): Record<string, string> => ({ AWS_ACCESS_KEY_ID: swift.accessKey, AWS_SECRET_ACCESS_KEY: swift.secretKey });
const restore = (args: string[], env: Record<string, string> = {}): { code: number | null; stdout: string; stderr: string } =>
  runCli(['etcd-snapshot', 'restore', ...args], env, 180_000);

/** One `error:` line and exit code 1. */
function refused(r: { code: number | null; stderr: string }, re: RegExp): void {
  assert.equal(r.code, 1, r.stderr);
  const lines = r.stderr.split('\n').filter((l) => l.startsWith('error: '));
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0] ?? '', re);
}

test('restore builds three member data dirs from which the members start as a new cluster with the snapshot keys', async () => {
  for (let i = 0; i < 20; i++) assert.equal(cluster.etcdctl(['put', `r/${String(i).padStart(2, '0')}`, `v${i}`]).code, 0);
  agent = await startAgent(cluster, { args: ['--etcd-disable-snapshots', ...s3ServerFlags(swift, 'restore', 'f')], env: awsEnv() });
  await agentReady(agent);
  const saved = snapshotCli(agent, ['save', '--snapshot-compress', ...s3CliFlags(swift, 'restore', 'f')], awsEnv());
  assert.equal(saved.code, 0, saved.stderr);
  const name = /Snapshot (on-demand-agent1-\d+\.zip) saved/.exec(saved.stdout)?.[1] ?? '';
  assert.ok(name, saved.stdout);
  const zip = path.join(agent.dataDir, 'server', 'db', 'snapshots', name);
  assert.equal(await agent.stop(), 0);
  assert.equal(cluster.etcdctl(['put', 'after/x', 'not in the snapshot']).code, 0);
  const oldClusterId = cluster.status()[0]?.clusterId;

  // an age-encrypted copy of the snapshot (age-keygen and age from Debian)
  const work = tempDir();
  const key = path.join(work, 'key.txt');
  assert.equal(spawnSync('age-keygen', ['-o', key]).status, 0);
  const recipient = /public key: (age1\S+)/.exec(readFileSync(key, 'utf8'))?.[1] ?? '';
  const encrypted = path.join(work, `${name}.age`);
  assert.equal(spawnSync('age', ['-r', recipient, '-o', encrypted, zip]).status, 0);

  await cluster.stopAll();
  const root = path.join(work, 'new');
  mkdirSync(root);
  const specs: MemberSpec[] = cluster.specs.map((s) => ({ ...s, dataDir: path.join(root, s.name) }));
  const ic = cluster.initialCluster;
  const url = (i: number): string => `https://127.0.0.1:${specs[i]?.peerPort}`;

  // m1 from the local zip, with a generated token
  const r1 = restore([zip, '--data-dir', specs[0]?.dataDir ?? '', '--name', 'm1', '--initial-cluster', ic, '--initial-advertise-peer-urls', url(0)]);
  assert.equal(r1.code, 0, r1.stderr);
  const token = /new cluster \(token (etcdsnap-restore-\d+)\)/.exec(r1.stdout)?.[1] ?? '';
  assert.ok(token, r1.stdout);
  for (const m of ['m2', 'm3'])
    assert.match(
      r1.stdout,
      new RegExp(`etcdsnap etcd-snapshot restore .* --name ${m} --initial-cluster ${ic} --initial-advertise-peer-urls \\S+ --initial-cluster-token ${token}`),
    );
  // m2 from S3 by name
  const r2 = restore(
    [
      name,
      ...s3CliFlags(swift, 'restore', 'f'),
      '--data-dir',
      specs[1]?.dataDir ?? '',
      '--name',
      'm2',
      '--initial-cluster',
      ic,
      '--initial-advertise-peer-urls',
      url(1),
      '--initial-cluster-token',
      token,
    ],
    awsEnv(),
  );
  assert.equal(r2.code, 0, r2.stderr);
  // m3 from the encrypted copy, into an empty folder that exists
  mkdirSync(specs[2]?.dataDir ?? '');
  const r3 = restore([
    encrypted,
    '--etcd-snapshot-decrypt-identity-file',
    key,
    '--data-dir',
    specs[2]?.dataDir ?? '',
    '--name',
    'm3',
    '--initial-cluster',
    ic,
    '--initial-advertise-peer-urls',
    url(2),
    '--initial-cluster-token',
    token,
  ]);
  assert.equal(r3.code, 0, r3.stderr);
  assert.deepEqual(readdirSync(root).sort(), ['m1', 'm2', 'm3'], 'no temp folder left beside the data dirs');

  restored = new EtcdCluster(root, cluster.tls, specs, token);
  for (let i = 0; i < 3; i++) restored.start(i);
  await restored.healthy();
  const st = restored.status();
  assert.equal(new Set(st.map((s) => s.clusterId)).size, 1);
  assert.notEqual(st[0]?.clusterId, oldClusterId, 'a new cluster ID');
  const keys = restored
    .etcdctl(['get', 'r/', '--prefix', '--keys-only'])
    .stdout.split('\n')
    .filter((l) => l !== '');
  assert.equal(keys.length, 20);
  assert.equal(restored.etcdctl(['get', 'after/x']).stdout, '', 'nothing written after the snapshot');
  const members = JSON.parse(restored.etcdctl(['member', 'list', '-w', 'json']).stdout) as { members: Array<{ name: string }> };
  assert.deepEqual(members.members.map((m) => m.name).sort(), ['m1', 'm2', 'm3']);
});

test('refusals (non-empty dir, bad snapshot, bad flags, missing parent) leave nothing behind', async () => {
  const root = tempDir();
  const ic = 'a=https://127.0.0.1:23801,b=https://127.0.0.1:23802';
  const member = (dir: string): string[] => [
    '--data-dir',
    dir,
    '--name',
    'a',
    '--initial-cluster',
    ic,
    '--initial-advertise-peer-urls',
    'https://127.0.0.1:23801',
  ];
  const bad = path.join(root, 'bad.db');
  writeFileSync(bad, Buffer.alloc(64 * 1024, 7));

  // a non-empty data dir is never written into
  const full = path.join(root, 'full');
  mkdirSync(full);
  writeFileSync(path.join(full, 'keep'), 'x');
  const before = treeHash(root);
  refused(restore([bad, ...member(full)]), /--data-dir .*full is not empty; restore never writes into an existing data dir/);
  assert.equal(treeHash(root), before);

  // a bad snapshot: no data dir, no temp folder
  const target = path.join(root, 'm');
  refused(restore([bad, ...member(target)]), /refusing to restore .*nothing was changed|damaged|not a snapshot/i);
  assert.equal(existsSync(target), false);
  assert.equal(treeHash(root), before);

  // bad flags and a missing parent
  refused(
    restore([bad, '--data-dir', target, '--name', 'c', '--initial-cluster', ic, '--initial-advertise-peer-urls', 'https://127.0.0.1:23801']),
    /--name c is not in --initial-cluster/,
  );
  refused(
    restore([bad, '--data-dir', target, '--name', 'a', '--initial-cluster', ic, '--initial-advertise-peer-urls', 'https://127.0.0.1:9']),
    /differ from a's URLs/,
  );
  refused(restore([bad, '--data-dir', target]), /restore needs --name, --initial-cluster, --initial-advertise-peer-urls/);
  refused(restore([bad, ...member(path.join(root, 'no', 'such', 'm'))]), /parent folder .* does not exist/);
  refused(restore([path.join(root, 'missing.db'), ...member(target)]), /does not exist/);
  assert.equal(existsSync(target), false);
  assert.equal(treeHash(root), before);
});
