/**
 * etcd upkeep on `etcdsnap agent` (issue 18, docs/upkeep.md), real etcd: a three-member
 * cluster that etcdsnap does not run, reached through `--endpoints`. `etcd-snapshot compact`
 * and `defrag` against the agent take every member, followers first (by name) and the
 * leader last, each database shrinking; `alarm list` says there is none, with the quota of
 * `--etcd-quota-backend-bytes`.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { EtcdClient } from '../src/etcd/client.js';
import { agentReady, type EtcdCluster, startAgent, startEtcdCluster } from './helpers/etcd-cluster.js';
import { snapshotCli, type ServerProcess } from './helpers/server.js';

let cluster: EtcdCluster | undefined;
let agent: ServerProcess | undefined;
after(async () => {
  if (agent?.exitCode === undefined) agent?.child.kill('SIGKILL');
  await cluster?.stopAll();
});

test('the agent compacts and defragments the cluster it backs up: followers first, the leader last, every db shrinks', async () => {
  cluster = await startEtcdCluster(3);
  const c = cluster;
  agent = await startAgent(c, { args: ['--etcd-disable-snapshots', '--etcd-quota-backend-bytes', String(32 * 1024 * 1024)] });
  await agentReady(agent);
  const tls = { etcdCa: c.tls.ca, clientCert: c.tls.cert, clientKey: c.tls.key };
  const clients = await Promise.all(c.endpoints.map((endpoint) => EtcdClient.connect({ endpoint, tls, serverName: '127.0.0.1' })));
  after(() => {
    for (const x of clients) x.close();
  });
  const [first] = clients;
  assert.ok(first);
  const value = randomBytes(64 * 1024);
  for (let i = 0; i < 160; i += 16)
    await Promise.all(
      Array.from({ length: 16 }, (_, j) =>
        first.kv
          .put(`fill/${i + j}`)
          .value(value)
          .exec(),
      ),
    );
  await first.kv.delete().prefix('fill/').exec();
  const compacted = snapshotCli(agent, ['compact']);
  assert.equal(compacted.code, 0, compacted.stderr);
  assert.match(compacted.stdout, /^Compacted etcd to revision \d+\.\n$/);
  const before = await Promise.all(clients.map(async (x) => (await x.status()).dbSize));
  for (const b of before) assert.ok(b > 10 * 1024 * 1024, `db size ${b}`);

  const run = snapshotCli(agent, ['defrag']);
  assert.equal(run.code, 0, run.stderr);
  const leader = `m${c.leaderIndex() + 1}`;
  const followers = ['m1', 'm2', 'm3'].filter((n) => n !== leader);
  const names = run.stdout
    .trim()
    .split('\n')
    .slice(0, 3)
    .map((l) => /^Defragmented member (\S+) \((follower|leader)\) (\S+): /.exec(l)?.slice(1, 4).join(' '));
  assert.deepEqual(
    names,
    [...followers, leader].map((n) => `${n} ${n === leader ? 'leader' : 'follower'} ${c.endpoints[Number(n.slice(1)) - 1]}`),
    run.stdout,
  );
  const afterSizes = await Promise.all(clients.map(async (x) => (await x.status()).dbSize));
  afterSizes.forEach((a, i) => {
    assert.ok(a < (before[i] ?? 0) / 4, `member ${i + 1}: ${before[i]} -> ${a}`);
  });

  const alarms = snapshotCli(agent, ['alarm', 'list']);
  assert.equal(alarms.code, 0, alarms.stderr);
  assert.match(alarms.stdout, /^No alarms\.\nDatabase size \d+\.\d [KM]iB \(\d+\.\d [KM]iB in use\) of quota 32\.0 MiB \(\d+%\)\.\n$/);
  assert.equal(await agent.stop(), 0);
});
