/**
 * The agent's configuration without processes: etcdctl's flags and ETCDCTL_* variables,
 * kubeadm's defaults under a fake root (server/agent-config.ts `resolveEtcdConnection`),
 * the agent's own data dir, port and config file defaults, the follower-first member order
 * (etcd/members.ts `orderCandidates`), and the restore's member flags checked together
 * (snapshot/member-restore.ts `parseMemberPlan`).
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { Command } from 'commander';
import { addOptions, resolveValues } from '../src/config/resolve.js';
import { AGENT_OPTIONS } from '../src/config/schema.js';
import { buildAgentConfig, resolveEtcdConnection } from '../src/server/agent-config.js';
import { snapshotSettingsOf } from '../src/server/snapshots.js';
import { parseRetentionPolicy } from '../src/model/retention-policy.js';
import { orderCandidates, type SnapshotCandidate } from '../src/etcd/members.js';
import type { EtcdStatus } from '../src/etcd/client.js';
import { parseMemberPlan } from '../src/snapshot/member-restore.js';
import { tempDir } from './helpers/server.js';

async function values(argv: string[], env: Record<string, string> = {}) {
  const dir = tempDir();
  writeFileSync(path.join(dir, 'agent.yaml'), '');
  const cmd = addOptions(new Command('agent').exitOverride(), AGENT_OPTIONS).action(() => undefined);
  await cmd.parseAsync(['--config', path.join(dir, 'agent.yaml'), ...argv], { from: 'user' });
  return resolveValues(cmd, AGENT_OPTIONS, { env, warn: () => undefined });
}

/** A fake root with kubeadm's files: the CA and the given client pairs. */
function kubeadmRoot(pairs: Array<'healthcheck' | 'apiserver'>): string {
  const root = tempDir();
  const pki = path.join(root, 'etc', 'kubernetes', 'pki');
  mkdirSync(path.join(pki, 'etcd'), { recursive: true });
  writeFileSync(path.join(pki, 'etcd', 'ca.crt'), 'x');
  for (const p of pairs) {
    const base = p === 'healthcheck' ? path.join(pki, 'etcd', 'healthcheck-client') : path.join(pki, 'apiserver-etcd-client');
    writeFileSync(`${base}.crt`, 'x');
    writeFileSync(`${base}.key`, 'x');
  }
  return root;
}

test("etcdctl's flags and ETCDCTL_* variables; flags win; endpoints split at commas", async () => {
  const env = { ETCDCTL_ENDPOINTS: 'https://10.0.0.1:2379,https://10.0.0.2:2379', ETCDCTL_CACERT: '/e/ca', ETCDCTL_CERT: '/e/c', ETCDCTL_KEY: '/e/k' };
  const c = await resolveEtcdConnection(await values([], env), tempDir());
  assert.deepEqual(c, { endpoints: ['https://10.0.0.1:2379', 'https://10.0.0.2:2379'], cacert: '/e/ca', cert: '/e/c', key: '/e/k', fromKubeadm: [] });
  const f = await resolveEtcdConnection(await values(['--endpoints', 'https://a:1,https://b:2', '--cacert', '/f/ca'], env), tempDir());
  assert.deepEqual(f.endpoints, ['https://a:1', 'https://b:2']);
  assert.equal(f.cacert, '/f/ca');
  await assert.rejects(values(['--endpoints', 'http://a:2379']), /https/);
});

test("kubeadm's files fill what is not given: healthcheck-client first, then apiserver-etcd-client; nothing found is one error", async () => {
  const both = kubeadmRoot(['healthcheck', 'apiserver']);
  const c = await resolveEtcdConnection(await values([]), both);
  assert.deepEqual(c.endpoints, ['https://127.0.0.1:2379']);
  assert.equal(c.cacert, path.join(both, 'etc/kubernetes/pki/etcd/ca.crt'));
  assert.equal(c.cert, path.join(both, 'etc/kubernetes/pki/etcd/healthcheck-client.crt'));
  assert.deepEqual(c.fromKubeadm, ['--endpoints', '--cacert', '--cert', '--key']);
  const api = kubeadmRoot(['apiserver']);
  assert.equal((await resolveEtcdConnection(await values([]), api)).key, path.join(api, 'etc/kubernetes/pki/apiserver-etcd-client.key'));
  // a given --cert is never paired with kubeadm's key
  await assert.rejects(resolveEtcdConnection(await values(['--cert', '/x.crt']), both), /needs --key/);
  await assert.rejects(resolveEtcdConnection(await values([]), tempDir()), /etcdsnap agent needs --endpoints, --cacert, --cert, --key/);
});

test("the agent's defaults: its own data dir, port 9347, no change log, the server's snapshot settings", async () => {
  const v = await values(['--node-name', 'n1']);
  const cfg = buildAgentConfig(v, { endpoints: ['https://a:1'], cacert: '/c', cert: '/c', key: '/k', fromKubeadm: [] });
  assert.match(cfg.dataDir, /etcdsnap[/]agent$/);
  assert.equal(cfg.supervisorPort, 9347);
  assert.equal(cfg.changelog.enabled, false);
  assert.equal(cfg.snapshots.dir, path.join(cfg.dataDir, 'server', 'db', 'snapshots'));
  assert.equal(cfg.snapshots.name, 'etcd-snapshot');
});

test("the agent's retention policy reaches its snapshot service, as the server's does", async () => {
  const v = await values(['--node-name', 'n1', '--etcd-snapshot-retention-policy', 'last=2,daily=7']);
  const cfg = buildAgentConfig(v, { endpoints: ['https://a:1'], cacert: '/c', cert: '/c', key: '/k', fromKubeadm: [] });
  const settings = snapshotSettingsOf(cfg.snapshots, { compression: 'none', recipients: [] }, cfg.nodeName);
  assert.deepEqual(settings.retentionPolicy, parseRetentionPolicy('last=2,daily=7'));
  assert.equal(settings.nodeName, 'n1');
  assert.equal(settings.dir, cfg.snapshots.dir);
});

test('members: followers in --endpoints order, then the leader; learners never', () => {
  const st = (memberId: string, leader: string, isLearner = false): EtcdStatus =>
    ({ memberId, leader, isLearner, version: '3.4', dbSize: 1, clusterId: '1', raftIndex: '1', raftTerm: '1', revision: '1' }) satisfies EtcdStatus;
  const c = (endpoint: string, s: EtcdStatus): SnapshotCandidate => ({
    member: { endpoint, status: async () => s, snapshotStream: async () => Promise.reject(new Error('unused')) },
    status: s,
  });
  const order = orderCandidates([c('a', st('1', '1')), c('b', st('2', '1')), c('l', st('4', '1', true)), c('d', st('3', '1'))]).map((x) => x.member.endpoint);
  assert.deepEqual(order, ['b', 'd', 'a']);
});

test("restore's member flags are checked together", () => {
  const ic = 'a=https://h1:2380,b=https://h2:2380';
  const p = parseMemberPlan({ dataDir: '/d', name: 'b', initialCluster: ic, peerURLs: 'https://h2:2380' }, new Date(5000));
  assert.equal(p.clusterToken, 'etcdsnap-restore-5');
  assert.deepEqual(
    p.members.map((m) => m.name),
    ['a', 'b'],
  );
  assert.throws(() => parseMemberPlan({ dataDir: '/d', name: 'c', initialCluster: ic, peerURLs: 'https://h2:2380' }), /--name c is not in --initial-cluster/);
  assert.throws(() => parseMemberPlan({ dataDir: '/d', name: 'a', initialCluster: 'a=h1', peerURLs: 'h1' }), /not a URL/);
  assert.throws(() => parseMemberPlan({ dataDir: '/d', name: 'a', initialCluster: 'a', peerURLs: 'https://h:1' }), /not name=peer-url/);
  assert.throws(() => parseMemberPlan({ name: 'a' }), /restore needs --data-dir, --initial-cluster, --initial-advertise-peer-urls/);
});
