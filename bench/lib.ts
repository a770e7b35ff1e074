/**
 * Shared pieces of the benchmarks: timing whole commands, sampling a process's RSS,
 * medians, and writing a section of BENCHMARKS.md. Benchmarks are never part of npm test.
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT, apiRequest, startServer, fillEtcd, type ServerProcess } from '../test/helpers/server.js';

export interface Timed {
  ms: number;
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion and returns its wall time. */
export function timeCommand(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Timed> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ ms: Number(process.hrtime.bigint() - t0) / 1e6, code, stdout, stderr }));
  });
}

/** Samples VmRSS of `pid` every 20 ms until stopped; returns the peak in MiB. */
export function rssSampler(pid: number): { stop(): number } {
  let peak = 0;
  const read = (): void => {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m) peak = Math.max(peak, Number(m[1]) / 1024);
    } catch {
      /* process gone */
    }
  };
  read();
  const timer = setInterval(read, 20);
  return {
    stop: () => {
      clearInterval(timer);
      read();
      return peak;
    },
  };
}

/** Clock ticks per second of /proc's CPU times (USER_HZ: 100 on Linux). */
const HZ = 100;

/** CPU-seconds the machine was busy on all cores (user, nice, system, irq, softirq, steal; /proc/stat). */
function machineBusySeconds(): number {
  const f = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
  const at = (i: number): number => f[i] ?? 0;
  return (at(0) + at(1) + at(2) + at(5) + at(6) + at(7)) / HZ;
}

/** CPU-seconds of `pid` (user and system), with its exited and reaped children's when `withChildren`; 0 when it is gone. */
function processSeconds(pid: number, withChildren: boolean): number {
  try {
    // the fields after "(comm) ": state is field 3, utime 14, stime 15, cutime 16, cstime 17
    const f = (readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1] ?? '').split(' ');
    const at = (n: number): number => Number(f[n - 3] ?? 0);
    return (at(14) + at(15) + (withChildren ? at(16) + at(17) : 0)) / HZ;
  } catch {
    return 0;
  }
}

/**
 * The CPU that processes other than the benchmark's used while it ran, in cores: the
 * machine's busy time minus the benchmark's own (this process, the commands it ran and
 * reaped, and the long-lived processes it started, e.g. etcd members and the daemon, read
 * before they stop). The 1-minute load average cannot tell: a benchmark's own etcd and
 * daemon keep it above 1 on two cores, and the previous benchmark's load lingers in it.
 */
export class OtherCpu {
  private readonly t0 = Date.now();
  private readonly busy0 = machineBusySeconds();
  private readonly own0 = processSeconds(process.pid, true);

  /** Cores used by others since construction; `pids`: the started processes still running. */
  cores(pids: readonly number[]): number {
    const own = processSeconds(process.pid, true) - this.own0 + pids.reduce((sum, pid) => sum + processSeconds(pid, false), 0);
    const others = machineBusySeconds() - this.busy0 - own;
    return Math.max(0, others) / Math.max(0.001, (Date.now() - this.t0) / 1000);
  }
}

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] ?? 0) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
};

/** The size (MiB) at which issue 3 set the save goal (wall ratio <= 1.0 against etcdctl): about 1 GiB. */
export const GOAL_MIB = 1024;

/**
 * The goal line of bench:save and bench:agent: the ratio at about 1 GiB, where issue 3 set
 * the goal (<= 1.0), and the worst ratio at the smaller sizes, which show the fixed costs
 * (the CLI's Node start-up and the API round trip) that a 1 GiB save hides.
 */
export function saveGoalLine(results: ReadonlyArray<{ mib: number; ratio: number }>): string {
  const atGoal = results.find((r) => r.mib >= GOAL_MIB * 0.9);
  const smaller = results.filter((r) => r !== atGoal);
  const worst = smaller.reduce<{ mib: number; ratio: number } | undefined>((w, r) => (w === undefined || r.ratio > w.ratio ? r : w), undefined);
  const goal =
    atGoal === undefined
      ? `No size of about ${GOAL_MIB} MiB was measured, where issue 3 set the goal (wall ratio <= 1.0): run with the default BENCH_SIZES to check it.`
      : `Wall ratio etcdsnap / etcdctl at about 1 GiB, where issue 3 set the goal: **${atGoal.ratio.toFixed(2)}** (goal <= 1.0, ${atGoal.ratio <= 1 ? 'met' : 'NOT met'}).`;
  const fixed =
    worst === undefined
      ? ''
      : ` The smaller sizes show the fixed costs a 1 GiB save hides (the CLI's Node start-up, about 0.2 s, and the API round trip; \`node -e 0\` alone takes about 0.08 s here): worst **${worst.ratio.toFixed(2)}** at ${worst.mib} MiB.`;
  return goal + fixed;
}

export function machine(): string {
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  return `${os.cpus().length} cores (${cpu}), ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM, ${os.type()} ${os.release()}, Node ${process.version}`;
}

/** Replaces (or appends) the section `## <title>` of BENCHMARKS.md. */
export function writeSection(title: string, body: string): void {
  const file = path.join(ROOT, 'BENCHMARKS.md');
  const head = '# Benchmarks\n\nWritten by `npm run bench:*` (never part of `npm test`). Each section is replaced by the script that owns it.\n';
  let text = existsSync(file) ? readFileSync(file, 'utf8') : head;
  const start = text.indexOf(`\n## ${title}\n`);
  const section = `\n## ${title}\n\n${body.trim()}\n`;
  if (start < 0) text = `${text.trimEnd()}\n${section}`;
  else {
    const next = text.indexOf('\n## ', start + 4);
    text = text.slice(0, start) + section + (next < 0 ? '' : text.slice(next));
  }
  writeFileSync(file, text);
}

/** A ready server (snapshots off, 8 GiB quota) in `dir/data`, filled with about `mib` MiB of 64 KiB values. */
export async function filledServer(dir: string, mib: number): Promise<ServerProcess> {
  const server = await startServer({ dataDir: path.join(dir, 'data'), args: ['--etcd-disable-snapshots', '--etcd-arg', 'quota-backend-bytes=8589934592'] });
  try {
    await server.ready();
    const t0 = Date.now();
    await fillEtcd(server, Math.round((mib * 1024) / 64), 64 * 1024);
    console.log(`filled ${mib} MiB in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    return server;
  } catch (err) {
    await server.stop();
    throw err;
  }
}

/**
 * What a watched server serves while a benchmark saves: Prometheus scraping `/metrics` (with
 * the token) and a dashboard session polling `/ui/state` and `/ui/progress`, each every
 * `everyMs`, so that the peak RSS measured includes them. `stop()` ends the polling and
 * answers how many scrapes and polls were answered 200 (a benchmark checks it is not 0).
 */
export async function watchServer(server: ServerProcess, everyMs = 500): Promise<{ stop(): Promise<number> }> {
  const secret = server.token().split('::server:')[1] ?? '';
  const login = await apiRequest(`${server.url}/ui/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-etcdsnap-csrf': 'login', origin: server.url },
    body: JSON.stringify({ token: secret }),
  });
  if (login.status !== 200) throw new Error(`dashboard login failed: ${login.status} ${login.body}`);
  const cookie = /__Host-etcdsnap-session=[^;]+/.exec(login.headers['set-cookie']?.join(';') ?? '')?.[0] ?? '';
  let running = true;
  let ok = 0;
  const loop = (async () => {
    while (running) {
      const answers = await Promise.all([
        apiRequest(`${server.url}/metrics`, { headers: { authorization: `Bearer ${secret}` } }),
        apiRequest(`${server.url}/ui/state`, { headers: { cookie } }),
        apiRequest(`${server.url}/ui/progress`, { headers: { cookie } }),
      ]).catch(() => []);
      ok += answers.filter((a) => a.status === 200).length;
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return ok;
    },
  };
}
