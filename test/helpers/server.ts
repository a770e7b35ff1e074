/**
 * Test harness: starts a real `etcdsnap server` (bin/etcdsnap, built dist) on free loopback
 * ports in a temp data dir, reads its JSON log, and stops it by pid.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BIN = path.join(ROOT, 'bin', 'etcdsnap');
/** The node flags of bin/etcdsnap's `#!/usr/bin/env -S node ...` line: servers start as an installed one does. */
export const NODE_FLAGS: readonly string[] = (readFileSync(BIN, 'utf8').split('\n')[0] ?? '').split(/\s+/).slice(3);

/**
 * Test ports come from 20000-32767, below Linux's ephemeral range (32768-60999). A port the
 * kernel hands out for `listen(0)` is in the ephemeral range, where outgoing connections
 * (our gRPC and S3 clients, Swift's, etcd's peers) also take their local ports: a port
 * picked that way could be taken by a connection before the server we pick it for binds it,
 * and the server then fails to start (a CI run failed like that once).
 *
 * A port is claimed with a file created exclusively in PORT_DIR, so test files running at the
 * same time never pick the same one; a claim whose process is gone is taken over. Claims are
 * removed when this process exits.
 */
const PORT_LOW = 20000;
const PORT_HIGH = 32767;
const PORT_DIR = path.join(os.tmpdir(), 'etcdsnap-test-ports');
const claimed: string[] = [];

function claim(port: number): boolean {
  const file = path.join(PORT_DIR, String(port));
  try {
    writeFileSync(file, String(process.pid), { flag: 'wx' });
  } catch {
    let owner = NaN;
    try {
      owner = Number(readFileSync(file, 'utf8'));
    } catch {
      return false;
    }
    if (owner === process.pid || alive(owner)) return false;
    try {
      rmSync(file, { force: true });
      writeFileSync(file, String(process.pid), { flag: 'wx' });
    } catch {
      return false;
    }
  }
  if (claimed.push(file) === 1) {
    process.on('exit', () => {
      for (const f of claimed) rmSync(f, { force: true });
    });
  }
  return true;
}

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** A loopback port outside the ephemeral range, claimed for this process and free right now. */
export async function freePort(): Promise<number> {
  mkdirSync(PORT_DIR, { recursive: true });
  const span = PORT_HIGH - PORT_LOW + 1;
  const start = Math.floor(Math.random() * span);
  for (let i = 0; i < span; i++) {
    const port = PORT_LOW + ((start + i) % span);
    if (claim(port) && (await bindable(port))) return port;
  }
  throw new Error(`no free test port in ${PORT_LOW}-${PORT_HIGH}`);
}

const tempDirs: string[] = [];
/**
 * A new temp dir, removed when this process exits (each test file runs in a process of its
 * own; its after() hooks have stopped the servers by then). Test data dirs hold 100 MiB to
 * 1 GiB databases, so leaving them behind filled the disk over repeated runs.
 */
export function tempDir(prefix = 'etcdsnap-test-'): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  if (tempDirs.push(dir) === 1) {
    process.on('exit', () => {
      for (const d of tempDirs) {
        try {
          rmSync(d, { recursive: true, force: true });
        } catch {
          /* a mount left inside (faults tests umount lazily): leave the rest to the OS */
        }
      }
    });
  }
  return dir;
}

/** process.env without any ETCDSNAP_* or AWS_* variable, plus `extra`. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('ETCDSNAP_') && !k.startsWith('AWS_')) env[k] = v;
  }
  return { ...env, ...extra };
}

export interface Ports {
  supervisor: number;
  client: number;
  peer: number;
}

export async function freePorts(): Promise<Ports> {
  return { supervisor: await freePort(), client: await freePort(), peer: await freePort() };
}

export type LogLine = Record<string, unknown> & { msg?: string; level?: string };

export class ServerProcess {
  readonly lines: LogLine[] = [];
  readonly raw: string[] = [];
  exitCode: number | null | undefined = undefined;
  exitSignal: NodeJS.Signals | null = null;
  private readonly exited: Promise<void>;
  private waiters: Array<() => void> = [];

  constructor(
    readonly child: ChildProcess,
    readonly dataDir: string,
    readonly ports: Ports,
  ) {
    let buf = '';
    const onData = (d: Buffer): void => {
      buf += d.toString('utf8');
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        this.raw.push(line);
        try {
          this.lines.push(JSON.parse(line) as LogLine);
        } catch {
          /* not JSON (node warnings) */
        }
        for (const w of this.waiters.splice(0)) w();
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, sig) => {
        this.exitCode = code;
        this.exitSignal = sig;
        for (const w of this.waiters.splice(0)) w();
        resolve();
      });
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  /** Waits until a log line matches, or throws (with the log) after `timeoutMs` or on exit. */
  async waitFor(pred: (l: LogLine) => boolean, timeoutMs = 30_000): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.lines.find(pred);
      if (hit) return hit;
      if (this.exitCode !== undefined) throw new Error(`server exited (${this.exitCode}) before the expected log line:\n${this.raw.join('\n')}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for a log line:\n${this.raw.slice(-40).join('\n')}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 500));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  ready(timeoutMs = 60_000): Promise<LogLine> {
    return this.waitFor((l) => l.msg === 'etcdsnap server ready', timeoutMs);
  }

  /** Resolves with the exit code once the process is gone. */
  async wait(timeoutMs = 30_000): Promise<number | null> {
    const t = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    await this.exited;
    clearTimeout(t);
    return this.exitCode ?? null;
  }

  async stop(): Promise<number | null> {
    if (this.exitCode === undefined) this.child.kill('SIGTERM');
    return this.wait();
  }

  get url(): string {
    return `https://127.0.0.1:${this.ports.supervisor}`;
  }

  token(): string {
    return readFileSync(path.join(this.dataDir, 'server', 'token'), 'utf8').trim();
  }

  etcdPid(): number | undefined {
    let n: number;
    try {
      n = Number(readFileSync(path.join(this.dataDir, 'server', 'db', 'etcd.pid'), 'utf8').trim());
    } catch {
      return undefined; // not running (the file goes away when etcd exits)
    }
    return Number.isInteger(n) && n > 0 ? n : undefined;
  }
}

export interface StartOptions {
  dataDir?: string;
  ports?: Ports;
  args?: string[];
  env?: Record<string, string>;
  /** YAML text for the config file; an empty file is used when not given. */
  config?: string;
  nodeName?: string;
  /** Soft and hard limit of open files for the server (and its etcd), set with `ulimit -n`. */
  fdLimit?: number;
  /** The etcdsnap to run: this tree's bin/etcdsnap by default (upgrade.test.ts: a release's). */
  bin?: string;
}

/** Starts `etcdsnap server` with JSON logs; does not wait for readiness. */
export async function startServer(opts: StartOptions = {}): Promise<ServerProcess> {
  const dataDir = opts.dataDir ?? path.join(tempDir(), 'data');
  const ports = opts.ports ?? (await freePorts());
  const cfgFile = path.join(path.dirname(dataDir), `config-${ports.supervisor}.yaml`);
  writeFileSync(cfgFile, opts.config ?? '');
  const args = [
    ...NODE_FLAGS,
    opts.bin ?? BIN,
    'server',
    '--config',
    cfgFile,
    '--log-format',
    'json',
    '--data-dir',
    dataDir,
    '--node-name',
    opts.nodeName ?? 'node1',
    '--supervisor-port',
    String(ports.supervisor),
    '--etcd-client-port',
    String(ports.client),
    '--etcd-peer-port',
    String(ports.peer),
    ...(opts.args ?? []),
  ];
  const child =
    opts.fdLimit === undefined
      ? spawn(process.execPath, args, { env: cleanEnv(opts.env), stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn('bash', ['-c', `ulimit -n ${opts.fdLimit} && exec "$0" "$@"`, process.execPath, ...args], {
          env: cleanEnv(opts.env),
          stdio: ['ignore', 'pipe', 'pipe'],
        });
  return new ServerProcess(child, dataDir, ports);
}

const started: ServerProcess[] = [];

/** Starts a server (remembered for `killStarted`) and waits until it is ready. */
export async function startReady(opts: StartOptions = {}): Promise<ServerProcess> {
  const s = await startServer(opts);
  started.push(s);
  await s.ready();
  return s;
}

/** Kills every server `startReady` started that is still running (call it from `after`). */
export function killStarted(): void {
  for (const s of started) if (s.exitCode === undefined) s.child.kill('SIGKILL');
}

/** Runs bin/etcdsnap to completion. */
export function runCli(args: string[], env: Record<string, string> = {}, timeoutMs = 120_000): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { env: cleanEnv(env), encoding: 'utf8', timeout: timeoutMs });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** etcdctl's endpoint and the k3s-style client cert paths of a server. */
export function etcdctlFlags(server: { dataDir: string; ports: Ports }): string[] {
  const tls = path.join(server.dataDir, 'server', 'tls', 'etcd');
  return [
    `--endpoints=https://127.0.0.1:${server.ports.client}`,
    `--cacert=${path.join(tls, 'server-ca.crt')}`,
    `--cert=${path.join(tls, 'server-client.crt')}`,
    `--key=${path.join(tls, 'server-client.key')}`,
  ];
}

/** Runs etcdctl against a server with the k3s-style client cert paths. */
export function etcdctl(server: { dataDir: string; ports: Ports }, args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync('etcdctl', [...etcdctlFlags(server), ...args], { env: { ...process.env, ETCDCTL_API: '3' }, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

export function alive(pid: number | undefined): boolean {
  if (pid === undefined) return false;
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // a zombie is not alive
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/\) Z /.test(stat);
  } catch {
    return false;
  }
}

export async function waitUntil(pred: () => boolean | Promise<boolean>, timeoutMs = 15_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** An HTTPS request to the supervisor API that skips CA checks (tests of auth, health). */
export async function apiRequest(
  url: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<{ status: number; body: string; headers: import('node:http').IncomingHttpHeaders }> {
  const https = await import('node:https');
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method: opts.method ?? 'GET', headers: opts.headers, rejectUnauthorized: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), headers: res.headers }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** Puts `count` keys of `valueBytes` random bytes into the server's etcd (for big snapshots). */
export async function fillEtcd(server: { dataDir: string; ports: Ports }, count: number, valueBytes: number, prefix = 'fill/'): Promise<void> {
  const { EtcdClient } = await import('../../src/etcd/client.js');
  const { tlsPaths } = await import('../../src/etcd/tls.js');
  const { randomBytes } = await import('node:crypto');
  const client = await EtcdClient.connect({ endpoint: `https://127.0.0.1:${server.ports.client}`, tls: tlsPaths(server.dataDir) });
  try {
    const value = randomBytes(valueBytes);
    const batch = 16;
    for (let i = 0; i < count; i += batch) {
      const ops: Array<Promise<unknown>> = [];
      for (let j = i; j < Math.min(count, i + batch); j++)
        ops.push(
          client.kv
            .put(`${prefix}${String(j).padStart(8, '0')}`)
            .value(value)
            .exec(),
        );
      await Promise.all(ops);
    }
  } finally {
    client.close();
  }
}

/** Runs `etcdsnap etcd-snapshot ...` against a test server. */
export function snapshotCli(server: ServerProcess, args: string[], env: Record<string, string> = {}): { code: number | null; stdout: string; stderr: string } {
  const cfg = path.join(path.dirname(server.dataDir), `config-${server.ports.supervisor}.yaml`);
  const [sub, ...rest] = args;
  return runCli(['etcd-snapshot', ...(sub ? [sub] : []), '--config', cfg, '--data-dir', server.dataDir, '--etcd-server', server.url, ...rest], env);
}

/** Like `snapshotCli`, without blocking the event loop (for tests that act while it runs). */
export function snapshotCliAsync(
  server: ServerProcess,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const cfg = path.join(path.dirname(server.dataDir), `config-${server.ports.supervisor}.yaml`);
  const [sub, ...rest] = args;
  const child = spawn(
    process.execPath,
    [BIN, 'etcd-snapshot', ...(sub ? [sub] : []), '--config', cfg, '--data-dir', server.dataDir, '--etcd-server', server.url, ...rest],
    {
      env: cleanEnv(env),
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}
