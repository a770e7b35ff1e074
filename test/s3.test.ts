/** Integration tests of S3 snapshot storage against a real Swift (s3api) and real etcd (issue: S3). */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { startSwift, swiftSettings, type Swift } from './helpers/swift.js';
import { startReady, killStarted, snapshotCli, snapshotCliAsync, fillEtcd, waitUntil, type ServerProcess } from './helpers/server.js';
import { S3SnapshotStore, S3Store, type S3Settings } from '../src/store/s3.js';

let swift: Swift;
before(async () => {
  swift = await startSwift();
});
after(async () => {
  killStarted();
  await swift?.stop();
});

const settings = (bucket: string, folder = ''): S3Settings => swiftSettings(swift, bucket, folder);

/** Server flags for S3 on the test Swift; the keys go through the environment. */
function serverS3(bucket: string, folder: string): { args: string[]; env: Record<string, string> } {
  return {
    args: [
      '--etcd-s3',
      '--etcd-s3-endpoint',
      swift.endpoint,
      '--etcd-s3-insecure',
      '--etcd-s3-bucket',
      bucket,
      '--etcd-s3-folder',
      folder,
      '--etcd-s3-bucket-lookup-type',
      'path',
    ],
    env: { AWS_ACCESS_KEY_ID: swift.accessKey, AWS_SECRET_ACCESS_KEY: swift.secretKey },
  };
}
/** CLI flags for S3 (k3s's --s3-* spelling). */
function cliS3(bucket: string, folder: string): string[] {
  return ['--s3', '--s3-endpoint', swift.endpoint, '--s3-insecure', '--s3-bucket', bucket, '--s3-folder', folder, '--s3-bucket-lookup-type', 'path'];
}
const cliEnv = (): Record<string, string> => ({ AWS_ACCESS_KEY_ID: swift.accessKey, AWS_SECRET_ACCESS_KEY: swift.secretKey });

const start = startReady;

async function objectSha(store: S3Store, key: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of await store.getStream(key)) h.update(c as Buffer);
  return h.digest('hex');
}
async function keys(store: S3Store): Promise<string[]> {
  const out: string[] = [];
  for await (const o of store.list()) out.push(o.name);
  return out.sort();
}
const sha = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');
const snapDir = (s: ServerProcess): string => path.join(s.dataDir, 'server', 'db', 'snapshots');

test('scheduled and on-demand snapshots land in S3 byte-identical to the local files; ls, delete and prune work on both', async () => {
  await swift.createBucket('snaps');
  const store = S3Store.create(settings('snaps', 'cluster-a'));
  const s3 = serverS3('snaps', 'cluster-a');
  const s = await start({
    args: [...s3.args, '--etcd-snapshot-schedule-cron', '@every 3s', '--etcd-snapshot-retention', '2', '--etcd-s3-retention', '2'],
    env: s3.env,
  });
  await s.waitFor((l) => l.msg === 'S3 snapshot storage is ready');
  await s.waitFor((l) => typeof l.msg === 'string' && /^Snapshot etcd-snapshot-node1-\d+ uploaded to S3$/.test(l.msg), 30_000);

  let saved = snapshotCli(s, ['save', ...cliS3('snaps', 'cluster-a')], cliEnv());
  while (saved.code !== 0 && saved.stderr.includes('snapshot save already in progress'))
    saved = snapshotCli(s, ['save', ...cliS3('snaps', 'cluster-a')], cliEnv());
  assert.equal(saved.code, 0, saved.stderr);
  const m = /^Snapshot (on-demand-node1-\d+) saved\.\n/.exec(saved.stdout);
  assert.ok(m, saved.stdout);
  const name = m[1] ?? '';
  // byte-identical, read back by the SDK
  assert.equal(await objectSha(store, `cluster-a/${name}`), sha(path.join(snapDir(s), name)));
  const side = JSON.parse((await store.getText(`cluster-a/.metadata/${name}`)) ?? '{}') as Record<string, unknown>;
  assert.equal(side.sha256, sha(path.join(snapDir(s), name)));
  assert.equal(side.location, `s3://snaps/cluster-a/${name}`);
  const head = await store.head(`cluster-a/${name}`);
  assert.equal(head?.metadata['etcdsnap-node-name'], 'node1');

  // the scheduled ones too
  const sched = (await keys(store)).filter((k) => /^etcd-snapshot-node1-\d+$/.test(k));
  assert.ok(sched.length >= 1);
  for (const k of sched) {
    if (existsSync(path.join(snapDir(s), k))) assert.equal(await objectSha(store, `cluster-a/${k}`), sha(path.join(snapDir(s), k)));
  }

  // ls -o json shows both locations
  const js = JSON.parse(snapshotCli(s, ['ls', '-o', 'json', ...cliS3('snaps', 'cluster-a')], cliEnv()).stdout) as Array<Record<string, unknown>>;
  const locs = js
    .filter((r) => r.name === name)
    .map((r) => r.location)
    .sort();
  assert.deepEqual(locs, [`file://${path.join(snapDir(s), name)}`, `s3://snaps/cluster-a/${name}`]);
  assert.ok(js.filter((r) => r.name === name).every((r) => r.nodeName === 'node1' && typeof r.sha256 === 'string'));
  const table = snapshotCli(s, ['ls', ...cliS3('snaps', 'cluster-a')], cliEnv()).stdout;
  assert.match(table, new RegExp(`${name}\\s+s3://snaps/cluster-a/${name}\\s+\\d+\\s`));

  // S3 retention after scheduled saves: per node and prefix, at most 2 stay
  await waitUntil(
    async () =>
      (await keys(store)).filter((k) => k.startsWith('etcd-snapshot-node1-')).length === 2 &&
      s.lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('Removing S3 snapshot')).length > 0,
    40_000,
    'S3 retention',
  );

  // delete --s3 removes the local file, the object and both sidecars
  const del = snapshotCli(s, ['delete', ...cliS3('snaps', 'cluster-a'), name], cliEnv());
  assert.equal(del.code, 0, del.stderr);
  assert.equal(del.stdout, `Snapshot ${name} deleted.\nSnapshot s3://snaps/cluster-a/${name} deleted.\n`);
  assert.ok(!existsSync(path.join(snapDir(s), name)));
  assert.ok(!(await keys(store)).includes(name));
  assert.ok(!(await keys(store)).includes(`.metadata/${name}`));

  // prune --s3 on both (scheduled saves run meanwhile: a 409 means try again)
  for (let i = 0; i < 3; i++) {
    let r = snapshotCli(s, ['save', ...cliS3('snaps', 'cluster-a')], cliEnv());
    while (r.code !== 0 && r.stderr.includes('snapshot save already in progress')) {
      await new Promise((res) => setTimeout(res, 300));
      r = snapshotCli(s, ['save', ...cliS3('snaps', 'cluster-a')], cliEnv());
    }
    assert.equal(r.code, 0, r.stderr);
    await new Promise((res) => setTimeout(res, 1100));
  }
  const pr = snapshotCli(s, ['prune', '--snapshot-retention', '1', '--s3-retention', '1', ...cliS3('snaps', 'cluster-a')], cliEnv());
  assert.equal(pr.code, 0, pr.stderr);
  assert.equal(readdirSync(snapDir(s)).filter((f) => f.startsWith('on-demand-')).length, 1);
  assert.equal((await keys(store)).filter((k) => k.startsWith('on-demand-')).length, 1);
  assert.equal(await s.stop(), 0);
});

test("S3 retention is per node: another node's snapshots are never pruned", async () => {
  await swift.createBucket('shared');
  const store = S3Store.create(settings('shared'));
  // another node's objects in the same bucket and prefix
  const { Readable } = await import('node:stream');
  for (const ts of [1700000000, 1700000001, 1700000002]) {
    await store.upload(`etcd-snapshot-othernode-${ts}`, Readable.from([Buffer.from('x'.repeat(100))]), {
      contentType: 'application/octet-stream',
      metadata: {},
    });
  }
  const s3 = serverS3('shared', '');
  const s = await start({ args: [...s3.args], env: s3.env });
  for (let i = 0; i < 3; i++) {
    assert.equal(snapshotCli(s, ['save', '--name', 'etcd-snapshot', ...cliS3('shared', '')], cliEnv()).code, 0);
    await new Promise((r) => setTimeout(r, 1100));
  }
  const pr = snapshotCli(s, ['prune', '--name', 'etcd-snapshot', '--s3-retention', '1', ...cliS3('shared', '')], cliEnv());
  assert.equal(pr.code, 0, pr.stderr);
  const left = (await keys(store)).filter((k) => !k.startsWith('.metadata/'));
  assert.equal(left.filter((k) => k.startsWith('etcd-snapshot-node1-')).length, 1);
  assert.deepEqual(
    left.filter((k) => k.startsWith('etcd-snapshot-othernode-')),
    ['etcd-snapshot-othernode-1700000000', 'etcd-snapshot-othernode-1700000001', 'etcd-snapshot-othernode-1700000002'],
  );
  assert.equal(await s.stop(), 0);
});

test('an upload cut off by stopping S3 leaves no object and no parts; the local copy is kept and the upload is retried once S3 is back', async () => {
  await swift.createBucket('flaky');
  const store = S3Store.create(settings('flaky'));
  const s3 = serverS3('flaky', '');
  const s = await start({ args: [...s3.args, '--etcd-s3-timeout', '20s', '--etcd-arg', 'quota-backend-bytes=8589934592'], env: s3.env });
  await fillEtcd(s, 1600, 64 * 1024);
  const save = snapshotCliAsync(s, ['save', '--name', 'flaky', ...cliS3('flaky', '')], cliEnv());
  // stop S3 while the snapshot streams
  const dir = snapDir(s);
  await waitUntil(
    () => existsSync(dir) && readdirSync(dir).some((f) => f.endsWith('.part') && statSync(path.join(dir, f)).size > 16 * 1024 * 1024),
    60_000,
    'upload under way',
  );
  await swift.stopProxy();
  let res: Awaited<typeof save>;
  try {
    res = await save;
  } catch (err) {
    await swift.startProxy();
    throw err;
  }
  if (res.code !== 0) await swift.startProxy();
  assert.equal(res.code, 0, `${res.stderr}\n${s.raw.slice(-30).join('\n')}`);
  const name = /^Snapshot (flaky-node1-\d+) saved\.\n$/.exec(res.stdout)?.[1] ?? '';
  assert.ok(name, res.stdout);
  const local = path.join(dir, name);
  assert.ok(existsSync(local), 'the local snapshot is kept');
  await s.waitFor((l) => typeof l.msg === 'string' && l.msg.startsWith('Error received during snapshot upload to S3'));
  await swift.startProxy();
  // no object (a cut-off upload never completes)... until the retry uploads the whole file
  const listed = JSON.parse(snapshotCli(s, ['ls', '-o', 'json', ...cliS3('flaky', '')], cliEnv()).stdout) as Array<Record<string, unknown>>;
  const s3rec = listed.filter((r) => r.name === name && String(r.location).startsWith('s3://'));
  if (!(await keys(store)).includes(name)) {
    assert.equal(s3rec.length, 1);
    assert.equal(s3rec[0]?.status, 'failed', 'the failed upload is shown by ls');
  }
  await s.waitFor((l) => typeof l.msg === 'string' && l.msg === `Snapshot ${name} uploaded to S3 on retry`, 90_000);
  assert.equal(await objectSha(store, name), sha(local));
  assert.deepEqual(await store.listMultipartUploads(), [], 'no multipart upload left behind');
  const after = JSON.parse(snapshotCli(s, ['ls', '-o', 'json', ...cliS3('flaky', '')], cliEnv()).stdout) as Array<Record<string, unknown>>;
  assert.deepEqual(
    after.filter((r) => r.name === name).map((r) => r.status),
    ['successful', 'successful'],
  );
  assert.equal(await s.stop(), 0);
});

test('S3 that cannot be reached: the server logs a clear error and keeps running; an on-demand save is refused before any snapshot', async () => {
  const s3 = serverS3('no-such-bucket', '');
  const s = await start({ args: [...s3.args], env: s3.env });
  const line = await s.waitFor((l) => typeof l.msg === 'string' && l.msg.startsWith('S3 is not usable'));
  assert.equal(line.bucket, 'no-such-bucket');
  assert.equal(line.endpoint, swift.endpoint);
  assert.match(String(line.msg), /no-such-bucket/);
  const r = snapshotCli(s, ['save', ...cliS3('no-such-bucket', '')], cliEnv());
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^error: failed to initialize S3 client: .*no-such-bucket/);
  assert.deepEqual(existsSync(snapDir(s)) ? readdirSync(snapDir(s)) : [], [], 'no snapshot was taken');
  const bad = snapshotCli(s, ['save', '--s3', '--s3-endpoint', `http://${swift.endpoint}`, '--s3-bucket', 'x'], cliEnv());
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /without a scheme/);
  const missing = snapshotCli(s, ['save', '--s3'], cliEnv());
  assert.match(missing.stderr, /--s3-bucket is required with --s3/);
  assert.equal(await s.stop(), 0);
});

test('S3 secrets appear in no log line, output, record, sidecar or command line', async () => {
  await swift.createBucket('secret');
  const store = S3Store.create(settings('secret'));
  const s3 = serverS3('secret', '');
  // the keys on the command line this time (ps must not show them)
  const s = await start({ args: [...s3.args, '--etcd-s3-access-key', swift.accessKey, '--etcd-s3-secret-key', swift.secretKey] });
  const cmdline = readFileSync(`/proc/${s.pid}/cmdline`, 'utf8');
  const outputs: string[] = [];
  const run = (args: string[]): void => {
    const r = snapshotCli(s, args, cliEnv());
    outputs.push(r.stdout, r.stderr);
  };
  run(['save', ...cliS3('secret', '')]);
  run(['ls', ...cliS3('secret', '')]);
  run(['ls', '-o', 'json', ...cliS3('secret', '')]);
  run(['ls', '-o', 'yaml', ...cliS3('secret', '')]);
  run(['save', ...cliS3('secret', ''), '--s3-secret-key', 'wrong-secret-value-123']);
  run(['delete', ...cliS3('secret', ''), 'on-demand-node1-1700000000']);
  assert.equal(await s.stop(), 0);
  const files: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (!p.includes(`${path.sep}member${path.sep}`)) files.push(readFileSync(p, 'latin1'));
    }
  };
  walk(s.dataDir);
  const sidecars: string[] = [];
  for await (const o of store.list()) if (o.name.startsWith('.metadata/')) sidecars.push((await store.getText(o.key)) ?? '');
  assert.ok(sidecars.length >= 1);
  const haystacks = { logs: s.raw.join('\n'), outputs: outputs.join('\n'), files: files.join('\n'), sidecars: sidecars.join('\n'), cmdline };
  for (const [where, text] of Object.entries(haystacks)) {
    for (const secret of [swift.secretKey, swift.accessKey, 'wrong-secret-value-123']) {
      assert.ok(!text.includes(secret), `${secret} found in ${where}`);
    }
  }
  assert.ok(outputs.join('\n').includes('saved.'), 'the cycle did run');
});

test('download from S3 writes .part, checks the sha256 in the sidecar, then renames; a mismatch leaves nothing', async () => {
  const { LocalStore } = await import('../src/store/local.js');
  const { downloadSnapshot } = await import('../src/snapshot/transfer.js');
  const { tempDir } = await import('./helpers/server.js');
  await swift.createBucket('download');
  const store = S3Store.create(settings('download', 'f'));
  const s3 = serverS3('download', 'f');
  const s = await start({ args: [...s3.args], env: s3.env });
  const saved = snapshotCli(s, ['save', ...cliS3('download', 'f')], cliEnv());
  const name = /^Snapshot (on-demand-node1-\d+) saved\.\n/.exec(saved.stdout)?.[1] ?? '';
  assert.ok(name, saved.stdout + saved.stderr);
  assert.equal(await s.stop(), 0);

  const dir = new LocalStore(path.join(tempDir(), 'snapshots'));
  await dir.prepare(true);
  const file = await downloadSnapshot(new S3SnapshotStore(store), name, dir);
  assert.equal(sha(file), sha(path.join(snapDir(s), name)));
  assert.equal((await dir.readRecord(name))?.location, `file://${file}`);
  assert.equal(statSync(file).mode & 0o777, 0o600);

  // a sidecar whose sha256 does not match: refused, no file, no .part
  const side = JSON.parse((await store.getText(`f/.metadata/${name}`)) ?? '{}') as Record<string, unknown>;
  await store.putText(`f/.metadata/${name}`, JSON.stringify({ ...side, sha256: '0'.repeat(64) }), 'application/json');
  const other = new LocalStore(path.join(tempDir(), 'snapshots'));
  await other.prepare(true);
  await assert.rejects(downloadSnapshot(new S3SnapshotStore(store), name, other), /does not match the sha256 in its sidecar/);
  assert.deepEqual(readdirSync(other.dir), []);
});
