/** Integration tests of cluster reset and restore, single server and 3-server HA (issue: restore/HA). */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, mkdirSync, truncateSync } from 'node:fs';
import path from 'node:path';
import { startReady, killStarted, etcdctl, snapshotCli, runCli, tempDir, freePorts, type ServerProcess, type Ports } from './helpers/server.js';
import { assertRefused, prepared, reset, RESET_MESSAGE, startHa, treeHash } from './helpers/restore.js';
import { startSwift, type Swift } from './helpers/swift.js';

let swift: Swift | undefined;
after(async () => {
  killStarted();
  await swift?.stop();
});
const start = startReady;

const MESSAGE = RESET_MESSAGE;

const get = (s: { dataDir: string; ports: Ports }, key: string): string => etcdctl(s, ['get', key, '--print-value-only']).stdout.trim();
function revision(s: { dataDir: string; ports: Ports }): number {
  const r = etcdctl(s, ['endpoint', 'status', '-w', 'json']);
  return (JSON.parse(r.stdout) as Array<{ Status: { header: { revision: number } } }>)[0]?.Status.header.revision ?? -1;
}

async function checkRestored(s0: ServerProcess, rev: number, oldHash: string): Promise<void> {
  const db = path.join(s0.dataDir, 'server', 'db');
  assert.ok(existsSync(path.join(db, 'reset-flag')));
  const olds = readdirSync(db).filter((f) => /^etcd-old-\d+$/.test(f));
  assert.equal(olds.length, 1);
  assert.equal(treeHash(path.join(db, olds[0] ?? '')), oldHash, 'etcd-old-* holds the previous data, unchanged');
  const s = await start({ dataDir: s0.dataDir, ports: s0.ports, args: ['--etcd-disable-snapshots'] });
  assert.equal(get(s, 'a/7'), 'A7');
  assert.equal(get(s, 'b/7'), '', 'keys written after the snapshot are gone');
  assert.equal(revision(s), rev, 'revision as in the snapshot');
  assert.ok(!existsSync(path.join(db, 'reset-flag')), 'a normal start removes the reset flag');
  const members = etcdctl(s, ['member', 'list']).stdout.trim().split('\n');
  assert.equal(members.length, 1);
  assert.match(members[0] ?? '', /, started, node1-[0-9a-f]{8}, /);
  assert.equal(await s.stop(), 0);
}

test('single server: restore from a local file, then restart without flags', async () => {
  const { s, file, rev } = await prepared();
  const before = treeHash(path.join(s.dataDir, 'server', 'db', 'etcd'));
  const r = reset(s.dataDir, s.ports, [`--cluster-reset-restore-path=${file}`]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${MESSAGE(s.dataDir)}\n`);
  await checkRestored(s, rev, before);
});

test('single server: restore from a .zip', async () => {
  const { s, file, rev } = await prepared([], {}, ['--snapshot-compress']);
  assert.ok(file.endsWith('.zip'));
  const before = treeHash(path.join(s.dataDir, 'server', 'db', 'etcd'));
  const r = reset(s.dataDir, s.ports, ['--cluster-reset-restore-path', file]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${MESSAGE(s.dataDir)}\n`);
  await checkRestored(s, rev, before);
});

test('single server: restore from S3 with --etcd-s3 (downloaded and checked against its sidecar)', async () => {
  swift ??= await startSwift();
  await swift.createBucket('restore');
  const env = { AWS_ACCESS_KEY_ID: swift.accessKey, AWS_SECRET_ACCESS_KEY: swift.secretKey };
  const s3cli = ['--s3', '--s3-endpoint', swift.endpoint, '--s3-insecure', '--s3-bucket', 'restore', '--s3-folder', 'f', '--s3-bucket-lookup-type', 'path'];
  const { s, file, name, rev } = await prepared([], env, s3cli);
  rmSync(file); // only the S3 copy is left
  rmSync(path.join(s.dataDir, 'server', 'db', '.metadata', name));
  const before = treeHash(path.join(s.dataDir, 'server', 'db', 'etcd'));
  const s3server = [
    '--etcd-s3',
    '--etcd-s3-endpoint',
    swift.endpoint,
    '--etcd-s3-insecure',
    '--etcd-s3-bucket',
    'restore',
    '--etcd-s3-folder',
    'f',
    '--etcd-s3-bucket-lookup-type',
    'path',
  ];
  const r = reset(s.dataDir, s.ports, [...s3server, `--cluster-reset-restore-path=${name}`], env);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${MESSAGE(s.dataDir)}\n`);
  assert.ok(existsSync(file), 'downloaded into the snapshot dir');
  assert.ok(r.stderr.includes(`Retrieving etcd snapshot ${name} from S3`));
  await checkRestored(s, rev, before);
});

test('a snapshot written by etcdctl restores too, and ours restore with plain etcdctl', async () => {
  const s = await start({ args: ['--etcd-disable-snapshots'] });
  assert.equal(etcdctl(s, ['put', 'x', 'from-etcdctl']).code, 0);
  const ctlFile = path.join(tempDir(), 'etcdctl.db');
  assert.equal(etcdctl(s, ['snapshot', 'save', ctlFile]).code, 0);
  assert.equal(etcdctl(s, ['put', 'x', 'later']).code, 0);
  assert.equal(await s.stop(), 0);
  const r = reset(s.dataDir, s.ports, [`--cluster-reset-restore-path=${ctlFile}`]);
  assert.equal(r.code, 0, r.stderr);
  const again = await start({ dataDir: s.dataDir, ports: s.ports, args: ['--etcd-disable-snapshots'] });
  assert.equal(get(again, 'x'), 'from-etcdctl');
  const ours = snapshotCli(again, ['save']);
  const name = /^Snapshot (\S+) saved\./.exec(ours.stdout)?.[1] ?? '';
  assert.equal(await again.stop(), 0);
  const out = path.join(tempDir(), 'plain');
  const rs = spawnSync('etcdctl', ['snapshot', 'restore', path.join(s.dataDir, 'server', 'db', 'snapshots', name), '--data-dir', out], {
    encoding: 'utf8',
    env: { ...process.env, ETCDCTL_API: '3' },
  });
  assert.equal(rs.status, 0, rs.stderr);
});

test('refusals: restore path without reset, reset with --server, missing file, folder, corrupt snapshots, repeated reset', async () => {
  const { s, file } = await prepared();
  const etcdDir = path.join(s.dataDir, 'server', 'db', 'etcd');
  const before = treeHash(path.join(s.dataDir, 'server', 'db'));
  const fail = (args: string[], re: RegExp, withReset = true): void => {
    const r = withReset
      ? reset(s.dataDir, s.ports, args)
      : runCli(['server', '--config', path.join(path.dirname(s.dataDir), `config-${s.ports.supervisor}.yaml`), '--data-dir', s.dataDir, ...args]);
    assertRefused(r, re, args.join(' '));
    assert.equal(treeHash(path.join(s.dataDir, 'server', 'db')), before, `data dir untouched after: ${args.join(' ')}`);
  };
  fail([`--cluster-reset-restore-path=${file}`], /invalid flag use; --cluster-reset required with --cluster-reset-restore-path/, false);
  fail(['--server', 'https://127.0.0.1:1'], /cannot perform cluster-reset while server URL is set/);
  fail(['--cluster-reset-restore-path', path.join(tempDir(), 'missing.db')], /etcd: snapshot path does not exist: /);
  fail(['--cluster-reset-restore-path', tempDir()], /etcd: snapshot path must be a file, not a directory: /);
  const dir = tempDir();
  const truncated = path.join(dir, 'truncated.db');
  copyFileSync(file, truncated);
  truncateSync(truncated, statSync(file).size - 100);
  fail(['--cluster-reset-restore-path', truncated], /refusing to restore .*truncated\.db: snapshot has no sha256 trailer/);
  const flipped = path.join(dir, 'flipped.db');
  const buf = readFileSync(file);
  buf[4096] = (buf[4096] ?? 0) ^ 0xff;
  writeFileSync(flipped, buf);
  fail(['--cluster-reset-restore-path', flipped], /refusing to restore .*flipped\.db: snapshot sha256 trailer does not match/);
  const empty = path.join(dir, 'empty.db');
  writeFileSync(empty, '');
  fail(['--cluster-reset-restore-path', empty], /refusing to restore .*empty\.db/);
  const text = path.join(dir, 'notes.txt');
  writeFileSync(text, 'not a snapshot\n'.repeat(100));
  fail(['--cluster-reset-restore-path', text], /refusing to restore .*notes\.txt/);
  // a zip with a path in its entry name, and a zip with two entries
  const zdir = tempDir();
  mkdirSync(path.join(zdir, 'sub'));
  copyFileSync(file, path.join(zdir, 'sub', 'snap'));
  assert.equal(spawnSync('zip', ['-q', path.join(dir, 'path.zip'), 'sub/snap'], { cwd: zdir }).status ?? 1, 0);
  fail(['--cluster-reset-restore-path', path.join(dir, 'path.zip')], /path\.zip is not a compressed etcd snapshot: .*zip entry name/);
  copyFileSync(file, path.join(zdir, 'snap2'));
  assert.equal(spawnSync('zip', ['-q', '-j', path.join(dir, 'two.zip'), path.join(zdir, 'sub', 'snap'), path.join(zdir, 'snap2')]).status ?? 1, 0);
  fail(['--cluster-reset-restore-path', path.join(dir, 'two.zip')], /two\.zip is not a compressed etcd snapshot: it has 2 entries/);
  assert.ok(existsSync(etcdDir));

  // a plain reset, then a second one is refused naming the flag file
  const r = reset(s.dataDir, s.ports, []);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${MESSAGE(s.dataDir)}\n`);
  const again = reset(s.dataDir, s.ports, []);
  assert.equal(again.code, 1);
  assert.match(again.stderr, new RegExp(`you must first manually delete the file at ${path.join(s.dataDir, 'server', 'db', 'reset-flag')}`));
});

test('fresh host: the original full token restores the cluster CA from the snapshot; a wrong token or a snapshot without bootstrap data keeps nothing (a new CA only with --cluster-reset-new-ca)', async () => {
  const { s, file, rev } = await prepared();
  const token = s.token();
  const secret = token.split('::server:')[1] ?? '';
  const ca = readFileSync(path.join(s.dataDir, 'server', 'tls', 'server-ca.crt'), 'utf8');
  const fresh = path.join(tempDir(), 'data');
  const ports = await freePorts();
  const left = (): string[] =>
    ['server/tls', 'server/token', 'server/db/etcd/member', 'server/db/etcd-member-name'].filter((f) => existsSync(path.join(fresh, f)));

  // the right CA hash with another secret: the sealed data does not open
  let r = reset(fresh, ports, [`--cluster-reset-restore-path=${file}`], { ETCDSNAP_TOKEN: `${token.split('::server:')[0] ?? ''}::server:not-the-secret` });
  assert.equal(r.code, 1, r.stderr);
  assert.match(
    r.stderr,
    /error: bootstrap data already found in the snapshot and encrypted with different token: pass the token of the cluster the snapshot was taken from .*nothing was kept/,
  );
  assert.deepEqual(left(), [], 'a failed restore on a fresh host keeps nothing');
  assert.ok(!r.stderr.includes(secret));

  // without a restore, a full token on a fresh data dir is refused (its CA cannot come from anywhere)
  const plainStart = runCli(
    [
      'server',
      '--config',
      path.join(path.dirname(fresh), `config-${ports.supervisor}.yaml`),
      '--data-dir',
      fresh,
      '--supervisor-port',
      String(ports.supervisor),
      '--etcd-client-port',
      String(ports.client),
      '--etcd-peer-port',
      String(ports.peer),
    ],
    { ETCDSNAP_TOKEN: token },
  );
  assert.equal(plainStart.code, 1);
  assert.match(
    plainStart.stderr,
    /error: the token pins a cluster CA that this data dir does not have: .*or restore a snapshot of that cluster with --cluster-reset --cluster-reset-restore-path/,
  );
  assert.deepEqual(left(), []);

  // the right secret with another CA hash: the CA in the snapshot is not the one the token pins
  r = reset(fresh, ports, [`--cluster-reset-restore-path=${file}`], { ETCDSNAP_TOKEN: `K10${'ab'.repeat(32)}::server:${secret}` });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /error: the token pins another cluster CA than the one in the snapshot; .*nothing was kept/);
  assert.deepEqual(left(), []);

  r = reset(fresh, ports, [`--cluster-reset-restore-path=${file}`], { ETCDSNAP_TOKEN: token });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${MESSAGE(fresh)}\n`);
  assert.match(r.stderr, /restored the cluster CA from the snapshot/);
  assert.equal(readFileSync(path.join(fresh, 'server', 'tls', 'server-ca.crt'), 'utf8'), ca, 'the original CA');
  assert.equal(readFileSync(path.join(fresh, 'server', 'token'), 'utf8').trim(), token, 'the original token');
  assert.deepEqual(
    readdirSync(path.join(fresh, 'server', 'db')).filter((f) => f.startsWith('etcd-old-')),
    [],
    'nothing to move aside on a fresh host',
  );
  assert.ok(!r.stderr.includes(secret));
  const back = await start({ dataDir: fresh, ports, args: ['--etcd-disable-snapshots'], env: { ETCDSNAP_TOKEN: token } });
  assert.equal(get(back, 'a/7'), 'A7');
  assert.equal(revision(back), rev);
  // the CLI pins the CA by the original token and authenticates with it
  const ls = runCli(['etcd-snapshot', 'ls', '--etcd-server', back.url, '--etcd-token', token, '--data-dir', tempDir()]);
  assert.equal(ls.code, 0, ls.stderr);

  // a snapshot without bootstrap data (the key deleted, then etcdctl's snapshot)
  assert.equal(etcdctl(back, ['del', '/etcdsnap/bootstrap']).stdout.trim(), '1');
  const plain = path.join(tempDir(), 'plain.db');
  assert.equal(etcdctl(back, ['snapshot', 'save', plain]).code, 0);
  assert.equal(await back.stop(), 0);
  const fresh2 = path.join(tempDir(), 'data');
  r = reset(fresh2, ports, [`--cluster-reset-restore-path=${plain}`], { ETCDSNAP_TOKEN: token });
  assert.equal(r.code, 1, r.stderr);
  assert.match(
    r.stderr,
    /error: the snapshot holds no etcdsnap bootstrap data .*give only the token's secret \(the part after ::server:\) with --cluster-reset-new-ca/,
  );
  assert.ok(!existsSync(path.join(fresh2, 'server', 'tls')) && !existsSync(path.join(fresh2, 'server', 'token')));
  // only the secret, asking for a new CA: a new CA, with a warning
  r = reset(fresh2, ports, [`--cluster-reset-restore-path=${plain}`, '--cluster-reset-new-ca'], { ETCDSNAP_TOKEN: secret });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /--cluster-reset-new-ca: this host keeps the new cluster CA it made/);
  assert.notEqual(readFileSync(path.join(fresh2, 'server', 'tls', 'server-ca.crt'), 'utf8'), ca);

  // that new cluster's snapshot (its server stored its CA at start) restored where a CA exists:
  // the data dir keeps its own CA and token, with a warning
  const other = await start({ dataDir: fresh2, ports, args: ['--etcd-disable-snapshots'] });
  const foreign = path.join(tempDir(), 'foreign.db');
  assert.equal(etcdctl(other, ['snapshot', 'save', foreign]).code, 0);
  assert.equal(await other.stop(), 0);
  r = reset(s.dataDir, s.ports, [`--cluster-reset-restore-path=${foreign}`]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /the snapshot's bootstrap data holds another cluster CA .*this server keeps its own CA and token/);
  assert.equal(readFileSync(path.join(s.dataDir, 'server', 'tls', 'server-ca.crt'), 'utf8'), ca);
  assert.equal(s.token(), token);
});

test("HA: three servers form a cluster; the seed's restore procedure brings all three back with A and without B", async () => {
  const { dirs, ports, s1, s2, s3, startS1, join } = await startHa();
  for (let i = 0; i < 10; i++) assert.equal(etcdctl(s1, ['put', `a/${i}`, `A${i}`]).code, 0);
  const saved = snapshotCli(s1, ['save']);
  const name = /^Snapshot (\S+) saved\./.exec(saved.stdout)?.[1] ?? '';
  assert.ok(name, saved.stderr);
  for (let i = 0; i < 10; i++) assert.equal(etcdctl(s2, ['put', `b/${i}`, `B${i}`]).code, 0);
  for (const s of [s3, s2, s1]) assert.equal(await s.stop(), 0);

  const r = reset(dirs[0] ?? '', ports[0] as Ports, [`--cluster-reset-restore-path=${path.join(dirs[0] ?? '', 'server', 'db', 'snapshots', name)}`]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${MESSAGE(dirs[0] ?? '')}\n`);
  rmSync(path.join(dirs[1] ?? '', 'server', 'db'), { recursive: true });
  rmSync(path.join(dirs[2] ?? '', 'server', 'db'), { recursive: true });

  const n1 = await startS1();
  const n2 = await join(1);
  const n3 = await join(2);
  const health = etcdctl(n1, ['endpoint', 'health', `--endpoints=${ports.map((p) => `https://127.0.0.1:${p.client}`).join(',')}`]);
  assert.equal(health.code, 0, health.stderr);
  const healthy = (health.stdout + health.stderr).split('\n').filter((l) => /^https:\/\/127\.0\.0\.1:\d+ is healthy/.test(l));
  assert.equal(new Set(healthy.map((l) => l.split(' ')[0])).size, 3, health.stdout + health.stderr);
  const after = (JSON.parse(etcdctl(n1, ['member', 'list', '-w', 'json']).stdout) as { members: Array<{ isLearner?: boolean }> }).members;
  assert.equal(after.length, 3);
  assert.ok(after.every((m) => m.isLearner !== true));
  for (const s of [n1, n2, n3]) {
    assert.equal(etcdctl(s, ['get', 'a/3', '--print-value-only', '--consistency=s']).stdout.trim(), 'A3');
    assert.equal(etcdctl(s, ['get', 'b/3', '--print-value-only', '--consistency=s']).stdout.trim(), '');
  }
  for (const s of [n3, n2, n1]) assert.equal(await s.stop(), 0);
});
