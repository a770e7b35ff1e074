/**
 * Helpers shared by the restore tests (restore.test.ts, restore-safety.test.ts): running
 * `etcdsnap server --cluster-reset ...` to completion, hashing a folder, a server with a
 * snapshot between two sets of keys, and three servers forming one cluster on loopback.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { BIN, cleanEnv, etcdctl, freePorts, runCli, snapshotCli, startReady, tempDir, type Ports, type ServerProcess } from './server.js';

/** What a successful reset prints on stdout (k3s's text with the real data dir). */
export const RESET_MESSAGE = (dataDir: string): string =>
  `Managed etcd cluster membership has been reset, restart without --cluster-reset flag now. Backup and delete ${dataDir}/server/db on each peer etcd server and rejoin the nodes`;

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function resetArgs(dataDir: string, ports: Ports, extra: string[], nodeName: string): string[] {
  const cfg = path.join(path.dirname(dataDir), `config-${ports.supervisor}.yaml`);
  if (!existsSync(cfg)) writeFileSync(cfg, '');
  return [
    'server',
    '--config',
    cfg,
    '--log-format',
    'json',
    '--data-dir',
    dataDir,
    '--node-name',
    nodeName,
    '--supervisor-port',
    String(ports.supervisor),
    '--etcd-client-port',
    String(ports.client),
    '--etcd-peer-port',
    String(ports.peer),
    '--cluster-reset',
    ...extra,
  ];
}

/** Runs `etcdsnap server --cluster-reset ...` for a data dir to completion (blocks the event loop). */
export function reset(dataDir: string, ports: Ports, extra: string[], env: Record<string, string> = {}, nodeName = 'node1'): RunResult {
  return runCli(resetArgs(dataDir, ports, extra, nodeName), env, 180_000);
}

/**
 * Like `reset`, without blocking the event loop: for resets run while other servers of this
 * test process keep running (their log pipes must keep being read).
 */
export function resetAsync(dataDir: string, ports: Ports, extra: string[], env: Record<string, string> = {}, nodeName = 'node1'): Promise<RunResult> {
  const child = spawn(process.execPath, [BIN, ...resetArgs(dataDir, ports, extra, nodeName)], { env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 180_000);
  return new Promise((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    }),
  );
}

/** sha256 over every file (path and content) under `dir`. */
export function treeHash(dir: string): string {
  const h = createHash('sha256');
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else {
        h.update(path.relative(dir, p));
        h.update(readFileSync(p));
      }
    }
  };
  walk(dir);
  return h.digest('hex');
}

/** A value read from one server's member only (no quorum needed), '' when absent. */
export const getLocal = (s: { dataDir: string; ports: Ports }, key: string): string =>
  etcdctl(s, ['get', key, '--print-value-only', '--consistency=s']).stdout.trim();

/** A server with keys a/0..19, a snapshot, then keys b/0..19; stopped. */
export async function prepared(
  extraArgs: string[] = [],
  env: Record<string, string> = {},
  saveArgs: string[] = [],
): Promise<{ s: ServerProcess; file: string; name: string; rev: number; stdout: string }> {
  const s = await startReady({ args: ['--etcd-disable-snapshots', ...extraArgs], env });
  for (let i = 0; i < 20; i++) assert.equal(etcdctl(s, ['put', `a/${i}`, `A${i}`]).code, 0);
  const saved = snapshotCli(s, ['save', ...saveArgs], env);
  assert.equal(saved.code, 0, saved.stderr);
  const name = /^Snapshot (\S+) saved\./.exec(saved.stdout)?.[1] ?? '';
  const side = JSON.parse(readFileSync(path.join(s.dataDir, 'server', 'db', '.metadata', name), 'utf8')) as { revision: string };
  for (let i = 0; i < 20; i++) assert.equal(etcdctl(s, ['put', `b/${i}`, `B${i}`]).code, 0);
  assert.equal(await s.stop(), 0);
  return { s, file: path.join(s.dataDir, 'server', 'db', 'snapshots', name), name, rev: Number(side.revision), stdout: saved.stdout };
}

/** Three servers on one host: S1 (`--cluster-init`) and the data dirs, ports and join of S2, S3. */
export interface HaCluster {
  dirs: string[];
  ports: Ports[];
  token: string;
  s1: ServerProcess;
  s2: ServerProcess;
  s3: ServerProcess;
  /** Starts S1 again (node server-1, same flags). */
  startS1(): Promise<ServerProcess>;
  /** Starts server i (1 or 2) with `--server <S1>` and the token; waits until ready. */
  join(i: number): Promise<ServerProcess>;
}

/**
 * Starts S1, then S2 and S3 joining it; every server is ready and a voting member. `extra`
 * args and env are given to every server (and to later starts through `startS1` and `join`).
 */
export async function startHa(extra: { args?: string[]; env?: Record<string, string> } = {}): Promise<HaCluster> {
  const root = tempDir();
  const dirs = ['s1', 's2', 's3'].map((n) => path.join(root, n));
  const ports = [await freePorts(), await freePorts(), await freePorts()];
  const at = <T>(a: T[], i: number): T => {
    const v = a[i];
    if (v === undefined) throw new Error(`no server ${i + 1}`);
    return v;
  };
  const startS1 = (): Promise<ServerProcess> =>
    startReady({
      dataDir: at(dirs, 0),
      ports: at(ports, 0),
      nodeName: 'server-1',
      args: ['--cluster-init', '--etcd-disable-snapshots', ...(extra.args ?? [])],
      env: extra.env ?? {},
    });
  const s1 = await startS1();
  const token = s1.token();
  const join = (i: number): Promise<ServerProcess> =>
    startReady({
      dataDir: at(dirs, i),
      ports: at(ports, i),
      nodeName: `server-${i + 1}`,
      args: ['--server', s1.url, '--etcd-disable-snapshots', ...(extra.args ?? [])],
      env: { ...extra.env, ETCDSNAP_TOKEN: token },
    });
  const s2 = await join(1);
  const s3 = await join(2);
  const list = etcdctl(s1, ['member', 'list', '-w', 'json']);
  const members = (JSON.parse(list.stdout) as { members: Array<{ name: string; isLearner?: boolean; clientURLs?: string[] }> }).members;
  assert.equal(members.length, 3);
  assert.ok(
    members.every((m) => m.name !== '' && m.isLearner !== true && (m.clientURLs ?? []).length > 0),
    list.stdout,
  );
  return { dirs, ports, token, s1, s2, s3, startS1, join };
}

/**
 * Asserts that a run was refused the way every refusal is: exit code 1 and exactly one
 * `error: ` line on stderr, matching `re`. The caller checks that nothing changed.
 */
export function assertRefused(r: RunResult, re: RegExp, what: string): void {
  assert.equal(r.code, 1, `${what}: ${r.stdout}${r.stderr}`);
  const lines = r.stderr
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('error: '));
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0] ?? '', re);
}
