/**
 * Supervises one etcd member as a child process.
 *
 * Contract:
 * - `start()` spawns etcd and returns at once; readiness is the caller's business (ask etcd
 *   over gRPC). etcd's stderr/stdout lines are re-logged with `component: "etcd"` by an
 *   `EtcdLogRelay` (etcd-log.ts): zap lines at their own level, panics and fatal errors as
 *   errors, nothing below the `--log-level=` given in `args` (etcd's own level).
 * - An unexpected exit is logged as an error with its exit code and its cause (the last
 *   panic/fatal message etcd printed, see `EtcdLogRelay.cause`) and followed by a restart with
 *   exponential backoff (1 s doubling to 30 s; reset after 60 s of uptime).
 * - `stop()` sends SIGTERM, waits up to `stopTimeoutMs`, then SIGKILL; it never restarts.
 * - No orphan: etcd runs under `setpriv --pdeathsig SIGKILL` when available, so it dies with
 *   us even on SIGKILL; and its pid is kept in a pidfile so that the next start kills a
 *   leftover member of the same data dir (`killStale`).
 * - etcd gets a minimal environment (`childEnv`: PATH, locale, the user's ETCD_*...), never
 *   ours, which may hold the token or S3 keys.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fsp, constants as fsc } from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import type { Logger } from '../log/logger.js';
import { environmentError } from '../errors.js';
import { childEnv, ETCD_PREFIXES } from '../util/child-env.js';
import { EtcdLogRelay, etcdLogLevelOf } from './etcd-log.js';

export interface EtcdProcessOptions {
  binary: string;
  args: readonly string[];
  dataDir: string;
  pidFile: string;
  logger: Logger;
  stopTimeoutMs?: number;
  /** Called after every spawn (initial and restarts). */
  onSpawn?: () => void;
}

const SETPRIV = '/usr/bin/setpriv';

/** Resolves an executable name on PATH (or checks an explicit path); throws when missing. */
export async function resolveBinary(binary: string, flag: string, installHint: string): Promise<string> {
  const candidates = binary.includes('/')
    ? [binary]
    : (process.env.PATH ?? '')
        .split(':')
        .filter(Boolean)
        .map((d) => path.join(d, binary));
  for (const c of candidates) {
    try {
      await fsp.access(c, fsc.X_OK);
      const st = await fsp.stat(c);
      if (st.isFile()) return c;
    } catch {
      /* try the next one */
    }
  }
  throw environmentError(`${binary} binary not found${binary.includes('/') ? '' : ' on PATH'}; ${installHint}, or pass its path with ${flag}`);
}

async function hasSetpriv(): Promise<boolean> {
  try {
    await fsp.access(SETPRIV, fsc.X_OK);
    return true;
  } catch {
    return false;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Kills an etcd left running by a previous etcdsnap process of the same data dir (found
 * through the pidfile and checked against /proc/<pid>/cmdline), then removes the pidfile.
 * @returns the pid killed, if any.
 */
export async function killStale(pidFile: string, dataDir: string, logger: Logger): Promise<number | undefined> {
  let pid: number;
  try {
    pid = Number((await fsp.readFile(pidFile, 'utf8')).trim());
  } catch {
    return undefined;
  }
  let killed: number | undefined;
  if (Number.isInteger(pid) && pid > 1 && alive(pid)) {
    const cmdline = await fsp.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(dataDir)) {
      logger.warn({ pid }, 'killing etcd left running by a previous etcdsnap process');
      process.kill(pid, 'SIGKILL');
      for (let i = 0; i < 100 && alive(pid); i++) await new Promise((r) => setTimeout(r, 50));
      killed = pid;
    }
  }
  await fsp.rm(pidFile, { force: true });
  return killed;
}

export class EtcdProcess {
  private child: ChildProcess | undefined;
  private stopping = false;
  private restarts = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  private exited: Promise<void> = Promise.resolve();

  constructor(private readonly opts: EtcdProcessOptions) {}

  /** The running child's pid, if any. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  async start(): Promise<void> {
    this.stopping = false;
    await this.spawnOnce();
  }

  private async spawnOnce(): Promise<void> {
    const { binary, args, logger } = this.opts;
    const usePdeath = await hasSetpriv();
    const [cmd, argv] = usePdeath ? [SETPRIV, ['--pdeathsig', 'KILL', '--', binary, ...args]] : [binary, [...args]];
    // its own process group: a terminal's Ctrl-C reaches etcdsnap, which stops etcd in order
    const child = spawn(cmd, argv, { env: childEnv(process.env, ETCD_PREFIXES), stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    this.child = child;
    const startedAt = Date.now();
    // etcd's logger runs at etcd's own level: what etcd would not print is not re-logged either
    const log = logger.child({ component: 'etcd' }, { level: etcdLogLevelOf(args) });
    const relay = new EtcdLogRelay(log);
    for (const stream of [child.stdout, child.stderr]) {
      if (stream) readline.createInterface({ input: stream }).on('line', (line) => relay.line(line));
    }
    this.exited = new Promise((resolve) => {
      // 'close', not 'exit': every line etcd printed (a panic's stack) has been read by then
      child.once('close', (code, signal) => {
        relay.end();
        void fsp.rm(this.opts.pidFile, { force: true });
        if (this.child === child) this.child = undefined;
        resolve();
        if (this.stopping) {
          logger.info({ code, signal }, 'etcd stopped');
          return;
        }
        if (Date.now() - startedAt > 60_000) this.restarts = 0;
        const delay = Math.min(30_000, 1000 * 2 ** this.restarts);
        this.restarts++;
        const cause = relay.cause;
        const how = code !== null ? `with code ${code}` : `on signal ${signal ?? 'unknown'}`;
        logger.error(
          { code, signal, ...(cause !== undefined ? { cause } : {}), restartInMs: delay, restarts: this.restarts },
          `etcd exited unexpectedly ${how}${cause !== undefined ? `: ${cause}` : ''}; restarting in ${delay / 1000}s`,
        );
        this.restartTimer = setTimeout(() => {
          this.restartTimer = undefined;
          if (!this.stopping) void this.spawnOnce().catch((err: unknown) => logger.error({ err }, 'etcd restart failed'));
        }, delay);
      });
    });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', () => resolve());
      child.once('error', (err) => reject(environmentError(`cannot start ${binary}: ${err.message}`, err)));
    });
    await fsp.writeFile(this.opts.pidFile, `${child.pid ?? ''}\n`, { mode: 0o600 });
    logger.debug({ pid: child.pid, pdeathsig: usePdeath }, 'etcd started');
    this.opts.onSpawn?.();
  }

  /** Stops etcd (SIGTERM, then SIGKILL after the timeout). Safe to call more than once. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    child.kill('SIGTERM');
    const timeout = this.opts.stopTimeoutMs ?? 8000;
    const timer = setTimeout(() => child.kill('SIGKILL'), timeout);
    await this.exited;
    clearTimeout(timer);
  }
}
