/**
 * `etcdsnap agent` against a real 3-member TLS etcd cluster of plain etcd processes
 * (helpers/etcd-cluster.ts) and the test Swift: on-demand saves through `etcd-snapshot save`
 * against the agent's API, streamed from a follower; scheduled saves with local and S3
 * retention; ls, delete and prune as for a server; a member down before the stream and a
 * member killed mid-stream make the save use another member; bad connection flags refuse
 * the start with one line and leave no data dir.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { after, before, test } from 'node:test';
import { agentReady, type EtcdCluster, startAgent, startEtcdCluster } from './helpers/etcd-cluster.js';
import { apiRequest, runCli, type ServerProcess, snapshotCli, tempDir, waitUntil } from './helpers/server.js';
import { s3CliFlags, s3ServerFlags, startSwift, type Swift } from './helpers/swift.js';
import { EtcdClient } from '../src/etcd/client.js';

let cluster: EtcdCluster;
let swift: Swift;
const agents: ServerProcess[] = [];

before(async () => {
  [cluster, swift] = await Promise.all([startEtcdCluster(3), startSwift()]);
  await swift.createBucket('agent');
});

after(async () => {
  for (const a of agents) if (a.exitCode === undefined) a.child.kill('SIGKILL');
  await cluster?.stopAll();
  await swift?.stop();
});

const awsEnv = (): Record<string, string> => ({ AWS_ACCESS_KEY_ID: swift.accessKey, AWS_SECRET_ACCESS_KEY: swift.secretKey });

async function agent(opts: Parameters<typeof startAgent>[1] = {}): Promise<ServerProcess> {
  const a = await startAgent(cluster, opts);
  agents.push(a);
  await agentReady(a);
  return a;
}

/** The names in a snapshot folder (no records, no hidden files). */
const files = (dir: string): string[] => (existsSync(dir) ? readdirSync(dir).filter((n) => !n.startsWith('.')) : []);
const snapshotDir = (a: ServerProcess): string => path.join(a.dataDir, 'server', 'db', 'snapshots');

/** Puts `count` keys of `bytes` random bytes through the first member. */
async function fill(prefix: string, count: number, bytes: number): Promise<void> {
  const { randomBytes } = await import('node:crypto');
  const c = await EtcdClient.connect({
    endpoint: cluster.endpoints[0] ?? '',
    tls: { etcdCa: cluster.tls.ca, clientCert: cluster.tls.cert, clientKey: cluster.tls.key },
    serverName: '127.0.0.1',
  });
  try {
    const value = randomBytes(bytes);
    for (let i = 0; i < count; i += 16) {
      await Promise.all(
        Array.from({ length: Math.min(16, count - i) }, (_, j) =>
          c.kv
            .put(`${prefix}${String(i + j).padStart(6, '0')}`)
            .value(value)
            .exec(),
        ),
      );
    }
  } finally {
    c.close();
  }
}

/** The endpoint the agent's log says a snapshot was streamed from. */
async function savedFrom(a: ServerProcess, name: string): Promise<string> {
  return String((await a.waitFor((l) => l.msg === `Snapshot ${name} saved`, 10_000)).endpoint);
}

test('on-demand and scheduled saves, S3, retention, ls, delete and prune, as for a server', async () => {
  for (let i = 0; i < 10; i++) assert.equal(cluster.etcdctl(['put', `agent/${i}`, `v${i}`]).code, 0);
  const a = await agent({
    args: [...s3ServerFlags(swift, 'agent', 'f1'), '--etcd-snapshot-schedule-cron', '@every 2s', '--etcd-snapshot-retention', '2', '--etcd-s3-retention', '2'],
    env: awsEnv(),
  });
  assert.equal(readFileSync(path.join(a.dataDir, 'server', 'token'), 'utf8').startsWith('K10'), true);
  assert.equal(existsSync(path.join(a.dataDir, 'server', 'db', 'etcd')), false, 'the agent runs no etcd');
  const health = await apiRequest(`${a.url}/healthz`);
  assert.equal(health.status, 200);

  // on demand, with the request's S3 (as k3s), through the agent's API
  const saved = snapshotCli(a, ['save', ...s3CliFlags(swift, 'agent', 'f1')], awsEnv());
  assert.equal(saved.code, 0, saved.stderr);
  const name = /^Snapshot (on-demand-agent1-\d+) saved\./m.exec(saved.stdout)?.[1] ?? '';
  assert.ok(name, saved.stdout);
  const leader = cluster.endpoints[cluster.leaderIndex()];
  assert.notEqual(await savedFrom(a, name), leader, 'streamed from a follower, not the leader');
  const file = path.join(snapshotDir(a), name);
  const st = spawnSync('etcdctl', ['snapshot', 'status', file, '-w', 'json'], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '', ETCDCTL_API: '3' } });
  assert.equal(st.status, 0, st.stderr);
  assert.ok((JSON.parse(st.stdout) as { totalKey: number }).totalKey >= 10);

  // scheduled: three ticks, retention 2 locally and in S3 (counted once the schedule stopped:
  // between a save's commit and its retention a third copy exists for a moment)
  const scheduledSaves = (): number => a.lines.filter((x) => /^Snapshot etcd-snapshot-agent1-\d+ saved$/.test(String(x.msg))).length;
  await a.waitFor(() => scheduledSaves() >= 3, 60_000);
  assert.equal(await a.stop(), 0);
  const b = await agent({ args: ['--etcd-disable-snapshots'], dataDir: a.dataDir });
  assert.equal(files(snapshotDir(b)).filter((n) => n.startsWith('etcd-snapshot-')).length, 2, 'local retention');
  const ls = snapshotCli(b, ['ls', ...s3CliFlags(swift, 'agent', 'f1')], awsEnv());
  assert.equal(ls.code, 0, ls.stderr);
  assert.match(ls.stdout, new RegExp(`${name}\\s+file://`));
  assert.match(ls.stdout, new RegExp(`${name}\\s+s3://agent/f1/${name}`));
  assert.equal(ls.stdout.split('\n').filter((l) => /^etcd-snapshot-agent1-\d+\s+s3:/.test(l)).length, 2, `S3 retention:\n${ls.stdout}`);

  // metrics (with the token) and the dashboard page, as on a server
  const secret =
    readFileSync(path.join(b.dataDir, 'server', 'token'), 'utf8')
      .trim()
      .split('::server:')[1] ?? '';
  const metrics = await apiRequest(`${b.url}/metrics`, { headers: { authorization: `Bearer ${secret}` } });
  assert.equal(metrics.status, 200);
  assert.match(metrics.body, /^etcdsnap_etcd_member_healthy(\{[^}]*\})? 1$/m);
  assert.match(metrics.body, /^etcdsnap_snapshots(\{[^}]*\})? \d+$/m);
  assert.equal((await apiRequest(`${b.url}/metrics`)).status, 401, 'the token is needed');
  assert.equal((await apiRequest(`${b.url}/`)).status, 200, 'the dashboard page');

  // delete and prune through the API
  const del = snapshotCli(b, ['delete', name, ...s3CliFlags(swift, 'agent', 'f1')], awsEnv());
  assert.equal(del.code, 0, del.stderr);
  assert.equal(files(snapshotDir(b)).includes(name), false);
  const ls2 = snapshotCli(b, ['ls', ...s3CliFlags(swift, 'agent', 'f1')], awsEnv());
  assert.doesNotMatch(ls2.stdout, new RegExp(name));
  // without --etcd-server: the CLI finds the agent's API by the URL it wrote in its data dir
  assert.equal(readFileSync(path.join(b.dataDir, 'server', 'supervisor-url'), 'utf8'), `${b.url}\n`);
  const cfg = path.join(path.dirname(b.dataDir), `config-${b.ports.supervisor}.yaml`);
  const pruned = runCli(['etcd-snapshot', 'prune', '--config', cfg, '--data-dir', b.dataDir, '--name', 'etcd-snapshot', '--snapshot-retention', '1']);
  assert.equal(pruned.code, 0, pruned.stderr);
  assert.equal(files(snapshotDir(b)).filter((n) => n.startsWith('etcd-snapshot-')).length, 1);
  assert.equal(await b.stop(), 0);
  assert.equal(existsSync(path.join(b.dataDir, 'server', 'supervisor-url')), false, 'the URL file goes with the agent');
  // no secret in any log line of either agent
  for (const log of [a.raw, b.raw].map((r) => r.join('\n'))) {
    assert.equal(log.includes(swift.secretKey), false, 'the S3 secret key is never logged');
    assert.equal(log.includes(secret), false, "the API token's secret is never logged");
  }
});

test('a member down before the save, and a member killed mid-stream: the save streams from another', async () => {
  await fill('big/', 160, 256 * 1024); // ~40 MiB of random values, so that a gzip save takes a while
  const a = await agent({ args: ['--etcd-disable-snapshots'] });
  const leaderIdx = cluster.leaderIndex();
  const followers = [0, 1, 2].filter((i) => i !== leaderIdx);
  const [f1, f2] = followers as [number, number];

  // before: the first follower is down
  await cluster.kill(f1);
  const s1 = snapshotCli(a, ['save', '--name', 'down']);
  assert.equal(s1.code, 0, s1.stderr);
  const n1 = /Snapshot (down-agent1-\d+) saved/.exec(s1.stdout)?.[1] ?? '';
  assert.equal(await savedFrom(a, n1), cluster.endpoints[f2]);
  cluster.start(f1);
  await cluster.healthy();

  // mid-stream: kill the member the save streams from once bytes flow
  const leaderNow = cluster.leaderIndex();
  const first = [0, 1, 2].find((i) => i !== leaderNow) ?? 0;
  const { snapshotCliAsync } = await import('./helpers/server.js');
  const running = snapshotCliAsync(a, ['save', '--name', 'mid', '--snapshot-compression', 'gzip']);
  const token = readFileSync(path.join(a.dataDir, 'server', 'token'), 'utf8').trim();
  const secret = token.split('::server:')[1] ?? '';
  await waitUntil(
    async () => {
      const r = await apiRequest(`${a.url}/db/snapshot/progress`, { headers: { authorization: `Bearer ${secret}` } });
      const p = JSON.parse(r.body) as { saving: boolean; bytes?: number };
      return p.saving && (p.bytes ?? 0) > 0;
    },
    30_000,
    'the save to stream',
  );
  await cluster.kill(first);
  const s2 = await running;
  assert.equal(s2.code, 0, s2.stderr);
  const n2 = /Snapshot (mid-agent1-\d+\.gz) saved/.exec(s2.stdout)?.[1] ?? '';
  assert.ok(n2, s2.stdout);
  await a.waitFor((l) => typeof l.msg === 'string' && l.msg.startsWith(`snapshot stream from ${cluster.endpoints[first]} failed`), 10_000);
  assert.notEqual(await savedFrom(a, n2), cluster.endpoints[first]);
  // the snapshot is whole: decoded and checked by etcdctl
  const out = path.join(tempDir(), 'mid.db');
  assert.equal(spawnSync('bash', ['-c', `gunzip -c "$0" > "$1"`, path.join(snapshotDir(a), n2), out]).status, 0);
  const st = spawnSync('etcdctl', ['snapshot', 'status', out], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '', ETCDCTL_API: '3' } });
  assert.equal(st.status, 0, st.stderr);
  cluster.start(first);
  await cluster.healthy();
  assert.equal(await a.stop(), 0);
});

test('bad connection flags refuse the start with one line and leave no data dir', async () => {
  const root = tempDir();
  const dir = path.join(root, 'agent');
  writeFileSync(path.join(root, 'empty.yaml'), '');
  const base = ['agent', '--config', path.join(root, 'empty.yaml'), '--data-dir', dir];
  const env = { ETCDCTL_CACERT: cluster.tls.ca, ETCDCTL_CERT: cluster.tls.cert, ETCDCTL_KEY: cluster.tls.key };
  const cases: Array<[string[], Record<string, string>, RegExp]> = [
    [[], {}, /^error: etcdsnap agent needs --endpoints, --cacert, --cert, --key/],
    [['--endpoints', 'http://127.0.0.1:2379'], env, /^error: invalid value for --endpoints: .*https/],
    [['--endpoints', cluster.endpoints[0] ?? '', '--cacert', '/nonexistent/ca.crt'], env, /^error: cannot read --cacert \/nonexistent\/ca\.crt: ENOENT/],
  ];
  for (const [args, e, re] of cases) {
    const r = runCli([...base, ...args], e);
    assert.equal(r.code, 1, r.stderr);
    const errors = r.stderr.split('\n').filter((l) => l.startsWith('error: '));
    assert.equal(errors.length, 1, r.stderr);
    assert.match(errors[0] ?? '', re);
    assert.equal(existsSync(dir), false, `no data dir after: ${args.join(' ')}`);
  }
});

test("a second agent on a running agent's data dir is refused, naming the agent that holds it", async () => {
  const a = await agent();
  const env = { ETCDCTL_ENDPOINTS: cluster.endpoints.join(','), ETCDCTL_CACERT: cluster.tls.ca, ETCDCTL_CERT: cluster.tls.cert, ETCDCTL_KEY: cluster.tls.key };
  const r = runCli(['agent', '--data-dir', a.dataDir, '--supervisor-port', '1'], env);
  assert.equal(r.code, 1, r.stderr);
  assert.match(
    r.stderr,
    new RegExp(`^error: another etcdsnap agent \\(pid ${a.child.pid}\\) is using ${a.dataDir}; stop it first or choose another --data-dir$`, 'm'),
  );
  assert.equal(await a.stop(), 0);
});
