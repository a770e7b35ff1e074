/**
 * Restore drills that do not finish (issue 18 part 1, docs/drills.md), with a real server and
 * real etcd. To hold a drill while its throwaway etcd runs, the server gets an `etcdctl` on
 * its PATH that passes every call to the real one except the drill's `endpoint health`, which
 * it answers by writing its pid to a marker file and sleeping (`exec sleep`): the drill then
 * waits with its etcd up, restored and serving. Checked:
 * - the server SIGKILLed then: the drill's etcd dies with it (pdeathsig), it never listened on
 *   a TCP port (only unix sockets in its private folder), and the next start removes the
 *   folder; no process is left that names it;
 * - the drill's timeout: the drill fails with "timed out", its etcd and etcdctl are gone and
 *   its folder removed, while the server keeps running;
 * - SIGTERM while a drill runs: the server stops the drill (etcd gone, folder removed) and exits.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { alive, etcdctl, killStarted, snapshotCli, snapshotCliAsync, startReady, tempDir, waitUntil, type ServerProcess } from './helpers/server.js';

const pidsToKill: number[] = [];
after(() => {
  killStarted();
  for (const p of pidsToKill) if (alive(p)) process.kill(p, 'SIGKILL');
});

/** A folder with an `etcdctl` that holds the drill's health check (see the module comment); its marker file. */
function holdingEtcdctl(): { env: Record<string, string>; marker: string } {
  const dir = tempDir('etcdsnap-drill-bin-');
  const real = execFileSync('sh', ['-c', 'command -v etcdctl'], { encoding: 'utf8' }).trim();
  const marker = path.join(dir, 'health-held');
  writeFileSync(
    path.join(dir, 'etcdctl'),
    `#!/bin/sh\nfor a in "$@"; do\n  if [ "$a" = health ]; then echo $$ > '${marker}.tmp' && mv '${marker}.tmp' '${marker}'; exec sleep 3600; fi\ndone\nexec '${real}' "$@"\n`,
  );
  chmodSync(path.join(dir, 'etcdctl'), 0o755);
  return { env: { PATH: `${dir}:${process.env.PATH ?? ''}` }, marker };
}

const drillsDir = (s: ServerProcess): string => path.join(s.dataDir, 'server', 'db', 'drills');

/** Waits for the held health check; answers the drill's folder and its etcd's pid. */
async function heldDrill(s: ServerProcess, marker: string): Promise<{ dir: string; etcdPid: number; ctlPid: number }> {
  await waitUntil(() => existsSync(marker), 60_000, 'the drill to start its etcd');
  const ctlPid = Number(readFileSync(marker, 'utf8').trim());
  pidsToKill.push(ctlPid);
  const names = readdirSync(drillsDir(s));
  assert.equal(names.length, 1, names.join(' '));
  const dir = path.join(drillsDir(s), names[0] ?? '');
  const etcdPid = Number(readFileSync(path.join(dir, 'etcd.pid'), 'utf8').trim());
  pidsToKill.push(etcdPid);
  assert.ok(alive(etcdPid));
  const cmdline = readFileSync(`/proc/${etcdPid}/cmdline`, 'utf8').split('\0');
  assert.ok(cmdline.includes('--name=drill') && cmdline.includes(`--data-dir=${path.join(dir, 'member')}`), cmdline.join(' '));
  return { dir, etcdPid, ctlPid };
}

/** The inodes of the sockets `pid` holds. */
function socketInodes(pid: number): Set<string> {
  const out = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`, { encoding: 'utf8' }));
    if (m?.[1]) out.add(m[1]);
  }
  return out;
}

/** The inodes of every TCP socket of the machine (v4 and v6). */
function tcpInodes(): Set<string> {
  const out = new Set<string>();
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(f, 'utf8').split('\n').slice(1)) {
      const inode = line.trim().split(/\s+/)[9];
      if (inode) out.add(inode);
    }
  }
  return out;
}

/** Pids of processes whose command line names `needle`. */
function processesNaming(needle: string): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      if (readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(needle)) out.push(Number(p));
    } catch {
      /* gone */
    }
  }
  return out;
}

async function serverWithSnapshot(env: Record<string, string>, args: string[] = []): Promise<ServerProcess> {
  const s = await startReady({ env, args });
  for (let i = 0; i < 10; i++) assert.equal(etcdctl(s, ['put', `k${i}`, `v${i}`]).code, 0);
  const r = snapshotCli(s, ['save']);
  assert.equal(r.code, 0, r.stderr);
  return s;
}

test('a server SIGKILLed during a drill leaves no drill etcd, no port; the next start removes the drill folder', async () => {
  const { env, marker } = holdingEtcdctl();
  const s = await serverWithSnapshot(env);
  const cli = snapshotCliAsync(s, ['drill']);
  const { dir, etcdPid } = await heldDrill(s, marker);

  // the drill's etcd serves on unix sockets in its private folder, never on TCP
  assert.ok(existsSync(path.join(dir, 'client.sock:0')) && existsSync(path.join(dir, 'peer.sock:0')));
  const sockets = socketInodes(etcdPid);
  assert.ok(sockets.size > 0);
  const tcp = tcpInodes();
  assert.deepEqual(
    [...sockets].filter((i) => tcp.has(i)),
    [],
    'the drill etcd holds no TCP socket',
  );

  s.child.kill('SIGKILL');
  await s.wait();
  await waitUntil(() => !alive(etcdPid), 15_000, 'the drill etcd to die with the server');
  assert.notEqual((await cli).code, 0);

  const again = await startReady({ dataDir: s.dataDir, ports: s.ports, env });
  assert.deepEqual(readdirSync(drillsDir(again)), []);
  assert.ok(again.lines.some((l) => l.msg === `removed ${dir}, left by a restore drill that did not finish`));
  assert.deepEqual(processesNaming(dir), []);
  await again.stop();
});

test('a drill that outlives --etcd-snapshot-drill-timeout fails as timed out and cleans up; the server keeps running', async () => {
  const { env, marker } = holdingEtcdctl();
  const s = await serverWithSnapshot(env, ['--etcd-snapshot-drill-timeout', '3s']);
  const cli = snapshotCliAsync(s, ['drill']);
  const { dir, etcdPid, ctlPid } = await heldDrill(s, marker);
  const r = await cli;
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stdout, /FAILED after [\d.]+s: timed out after 3s during start$/m);
  assert.ok(!alive(etcdPid), 'the drill etcd is stopped');
  assert.ok(!alive(ctlPid), 'the held etcdctl is stopped');
  assert.ok(!existsSync(dir));
  assert.deepEqual(readdirSync(drillsDir(s)), []);
  assert.equal(etcdctl(s, ['put', 'still', 'here']).code, 0);
  await s.stop();
});

test('SIGTERM during a drill stops the drill (etcd gone, folder removed) and the server exits', async () => {
  const { env, marker } = holdingEtcdctl();
  const s = await serverWithSnapshot(env);
  const cli = snapshotCliAsync(s, ['drill']);
  const { dir, etcdPid } = await heldDrill(s, marker);
  const code = await s.stop();
  assert.equal(code, 0, s.raw.slice(-20).join('\n'));
  assert.ok(!alive(etcdPid));
  assert.ok(!existsSync(dir));
  assert.ok(s.lines.some((l) => typeof l.msg === 'string' && /restore drill of \S+ failed: stopped during start: the host is shutting down/.test(l.msg)));
  await cli;
});
