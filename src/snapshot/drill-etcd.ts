/**
 * The throwaway etcd of a restore drill (drill.ts) and the `etcdctl` calls that check it.
 *
 * Contract:
 * - No port: etcd listens on unix sockets only (`unix://client.sock:0`, `unix://peer.sock:0`:
 *   etcd 3.4 takes the URL's host as the socket path, relative to its working folder), and
 *   runs with the drill's private folder (0700) as its working folder, so its sockets live
 *   there and only this user can connect. It can never collide with the live member's ports.
 * - No orphan: it runs under `setpriv --pdeathsig SIGKILL` (when present), so it dies with us
 *   even on SIGKILL; its pid is written to `<dir>/etcd.pid` so a later start's sweep
 *   (drill.ts `sweepDrills`) kills a survivor (checked against its command line).
 * - `stop()` sends SIGTERM, then SIGKILL after 5 s; it never restarts the process.
 * - etcd and etcdctl get a minimal environment (`childEnv`: PATH and locale), never ours, and
 *   not even the user's `ETCD_*`/`ETCDCTL_*` (an `ETCDCTL_CACERT` or `ETCD_CERT_FILE` meant
 *   for the live cluster would turn TLS on for the drill's sockets): only the flags here count.
 * - `ctl` runs `etcdctl` against the client socket from the drill's folder, bounded by the
 *   given signal; a non-zero exit rejects with its last output line.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fsp, constants as fsc } from 'node:fs';
import path from 'node:path';
import { EtcdsnapError } from '../errors.js';
import { resolveBinary } from '../etcd/process.js';
import { childEnv } from '../util/child-env.js';

/** The client and peer URLs of a drill's etcd (socket files in its working folder). */
export const DRILL_CLIENT_URL = 'unix://client.sock:0';
export const DRILL_PEER_URL = 'unix://peer.sock:0';
/** The member name a drill restores as. */
export const DRILL_MEMBER = 'drill';
/** The pidfile of a drill's etcd, in its folder. */
export const DRILL_PID_FILE = 'etcd.pid';

const SETPRIV = '/usr/bin/setpriv';
const STOP_KILL_AFTER_MS = 5000;

async function hasSetpriv(): Promise<boolean> {
  return fsp.access(SETPRIV, fsc.X_OK).then(
    () => true,
    () => false,
  );
}

/** A running drill etcd. */
export class DrillEtcd {
  private readonly closed: Promise<void>;
  private output = '';

  private constructor(
    private readonly child: ChildProcess,
    readonly dir: string,
  ) {
    this.closed = new Promise((resolve) => child.once('close', () => resolve()));
    const keep = (d: Buffer): void => {
      this.output = (this.output + d.toString()).slice(-8192);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
  }

  /** Starts etcd on the restored member dir `<dir>/member`, sockets in `dir`. */
  static async start(dir: string, etcdBinary: string): Promise<DrillEtcd> {
    const bin = await resolveBinary(etcdBinary, '--etcd-binary', 'install it with `apt-get install etcd-server`');
    const args = [
      `--name=${DRILL_MEMBER}`,
      `--data-dir=${path.join(dir, 'member')}`,
      `--listen-client-urls=${DRILL_CLIENT_URL}`,
      `--advertise-client-urls=${DRILL_CLIENT_URL}`,
      `--listen-peer-urls=${DRILL_PEER_URL}`,
      `--initial-advertise-peer-urls=${DRILL_PEER_URL}`,
      `--initial-cluster=${DRILL_MEMBER}=${DRILL_PEER_URL}`,
      // a lone member: elect itself quickly
      '--heartbeat-interval=50',
      '--election-timeout=500',
      '--log-level=warn',
    ];
    const usePdeath = await hasSetpriv();
    const [cmd, argv] = usePdeath ? [SETPRIV, ['--pdeathsig', 'KILL', '--', bin, ...args]] : [bin, args];
    const child = spawn(cmd, argv, { cwd: dir, env: childEnv(process.env, []), stdio: ['ignore', 'pipe', 'pipe'] });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', () => resolve());
      child.once('error', (err) => reject(new EtcdsnapError('environment', `cannot start ${bin}: ${err.message}`, { cause: err })));
    });
    await fsp.writeFile(path.join(dir, DRILL_PID_FILE), `${child.pid ?? ''}\n`, { mode: 0o600 });
    return new DrillEtcd(child, dir);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** True once the process has exited. */
  get exited(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null;
  }

  /** etcd's last output line (for a failure's message). */
  lastOutput(): string {
    return this.output.trim().split('\n').slice(-1)[0] ?? '';
  }

  /** SIGTERM, then SIGKILL after 5 s; resolves when the process is gone. Safe twice. */
  async stop(): Promise<void> {
    if (!this.exited) {
      this.child.kill('SIGTERM');
      const t = setTimeout(() => this.child.kill('SIGKILL'), STOP_KILL_AFTER_MS);
      await this.closed;
      clearTimeout(t);
    }
    await fsp.rm(path.join(this.dir, DRILL_PID_FILE), { force: true });
  }
}

/**
 * Runs `etcdctl <args>` against the drill's client socket, from `dir`; resolves with its
 * stdout. Rejects (`integrity`) with the last output line on a non-zero exit.
 */
export async function ctl(dir: string, args: readonly string[], signal: AbortSignal): Promise<string> {
  const bin = await resolveBinary('etcdctl', '--etcd-binary', 'install it with `apt-get install etcd-client`');
  return new Promise((resolve, reject) => {
    const child = spawn(bin, [`--endpoints=${DRILL_CLIENT_URL}`, '--command-timeout=5s', ...args], {
      cwd: dir,
      env: childEnv(process.env, [], { ETCDCTL_API: '3' }),
      stdio: ['ignore', 'pipe', 'pipe'],
      signal,
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', (e) => reject(e));
    child.on('close', (code) => {
      if (code === 0) resolve(out);
      else reject(new EtcdsnapError('integrity', `etcdctl ${args[0] ?? ''} failed: ${(err || out).trim().split('\n').slice(-1)[0] ?? ''}`));
    });
  });
}
