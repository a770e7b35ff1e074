/**
 * The agent's deployment examples (docs/examples/) are valid as far as this machine can tell:
 * the systemd unit passes `systemd-analyze verify` (with ExecStart pointed at bin/etcdsnap;
 * skipped where systemd-analyze is missing), the Kubernetes manifest parses as YAML into a
 * Secret and a Deployment whose mounts name its volumes, and the arguments of both are
 * accepted by the agent's own option resolution and configuration.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { Command } from 'commander';
import { parseAllDocuments } from 'yaml';
import { addOptions, normalizeBooleanArgs, resolveValues } from '../src/config/resolve.js';
import { AGENT_OPTIONS } from '../src/config/schema.js';
import { buildAgentConfig } from '../src/server/agent-config.js';
import { BIN, ROOT, tempDir } from './helpers/server.js';

const examples = path.join(ROOT, 'docs', 'examples');

/** The agent's configuration from `args` (after `agent`), as `etcdsnap agent` resolves it. */
async function accepted(args: string[]): Promise<ReturnType<typeof buildAgentConfig>> {
  const dir = tempDir();
  writeFileSync(path.join(dir, 'agent.yaml'), '');
  const cmd = addOptions(new Command('agent').exitOverride(), AGENT_OPTIONS).action(() => undefined);
  const withConfig = args.map((a) => (a === '/etc/etcdsnap/agent.yaml' ? path.join(dir, 'agent.yaml') : a));
  await cmd.parseAsync(normalizeBooleanArgs(withConfig, AGENT_OPTIONS), { from: 'user' });
  const v = await resolveValues(cmd, AGENT_OPTIONS, { env: {}, warn: () => undefined });
  return buildAgentConfig(v, { endpoints: ['https://127.0.0.1:2379'], cacert: '/c', cert: '/c', key: '/k', fromKubeadm: [] });
}

test('the systemd unit: systemd-analyze verify, and etcdsnap agent accepts its ExecStart', async (t) => {
  const unit = readFileSync(path.join(examples, 'etcdsnap-agent.service'), 'utf8');
  const exec = /^ExecStart=(\S+) agent (.*)$/m.exec(unit);
  assert.ok(exec, 'ExecStart runs etcdsnap agent');
  await accepted((exec[2] ?? '').split(' '));
  if (spawnSync('systemd-analyze', ['--version']).status !== 0) {
    t.skip('systemd-analyze is not installed');
    return;
  }
  const copy = path.join(tempDir(), 'etcdsnap-agent.service');
  writeFileSync(copy, unit.replace(`ExecStart=${exec[1]}`, `ExecStart=${BIN}`));
  const r = spawnSync('systemd-analyze', ['verify', copy], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr.trim(), '', r.stderr);
});

test('the Kubernetes manifest: a Secret and a Deployment whose agent arguments are accepted', async () => {
  const docs = parseAllDocuments(readFileSync(path.join(examples, 'etcdsnap-agent.yaml'), 'utf8'));
  for (const d of docs) assert.deepEqual(d.errors, []);
  const objs = docs.map((d) => d.toJS() as { kind: string; spec?: unknown });
  assert.deepEqual(
    objs.map((o) => o.kind),
    ['Secret', 'Deployment'],
  );
  type Pod = {
    containers: Array<{
      args: string[];
      volumeMounts: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
      envFrom: Array<{ secretRef: { name: string } }>;
    }>;
    volumes: Array<{ name: string }>;
  };
  const dep = objs[1] as { spec: { replicas: number; template: { spec: Pod } } };
  assert.equal(dep.spec.replicas, 1, 'one agent until the election lands');
  const pod = dep.spec.template.spec;
  const c = pod.containers[0];
  assert.ok(c);
  assert.equal(c.args[0], 'agent');
  const cfg = await accepted(c.args.slice(1).map((a) => a.replace('$(POD_IP)', '10.0.0.10').replace('$(NODE_NAME)', 'cp-1')));
  assert.equal(cfg.supervisorPort, 9347);
  assert.equal(cfg.bindAddress, '10.0.0.10');
  assert.equal(cfg.snapshots.schedule.spec, '0 */6 * * *');
  const volumes = new Set(pod.volumes.map((v) => v.name));
  for (const m of c.volumeMounts) assert.ok(volumes.has(m.name), `mount ${m.name} has a volume`);
  const pki = c.volumeMounts.find((m) => m.name === 'etcd-pki');
  assert.equal(pki?.mountPath, '/etc/kubernetes/pki/etcd', "kubeadm's path, so that its defaults are found");
  assert.equal(pki?.readOnly, true);
  assert.equal(c.envFrom[0]?.secretRef.name, 'etcdsnap-agent');
});
