/**
 * Helpers of the upgrade test (upgrade.test.ts): building a previous release from its git
 * commit, and a writer that puts keys through etcd while servers are upgraded, recording every
 * put with the upgrade step it started in.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, realpathSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { EtcdClient } from '../../src/etcd/client.js';
import { ROOT, tempDir, type Ports } from './server.js';

/** A previous release: its version and the commit it was cut from (an ancestor of main). */
export interface Release {
  version: string;
  commit: string;
}

/**
 * Builds `release` of this repository into a temp dir (`git archive` of its commit, this
 * tree's node_modules linked in, its own `tsc` build) and answers its bin/etcdsnap. The
 * release's tag (`version`) is used when the clone has it, and must point at `commit`; a
 * clone of main carries the history but not always the tags, so the commit alone also works.
 * Throws, with what to do, when the commit is missing (a shallow clone), the tag points
 * elsewhere, or the build fails: never a silent skip.
 */
export function buildRelease(release: Release): string {
  const tag = spawnSync('git', ['-C', ROOT, 'rev-parse', '-q', '--verify', `refs/tags/${release.version}^{commit}`], { encoding: 'utf8' });
  if (tag.status === 0 && tag.stdout.trim() !== release.commit) {
    throw new Error(
      `the tag ${release.version} points at ${tag.stdout.trim()}, not at the release's commit ${release.commit}: fix the tag or the test's RELEASE`,
    );
  }
  const has = spawnSync('git', ['-C', ROOT, 'cat-file', '-e', `${release.commit}^{commit}`], { encoding: 'utf8' });
  if (has.status !== 0) {
    throw new Error(
      `the upgrade test needs commit ${release.commit} (release ${release.version}) in ${ROOT}: clone with history (git fetch --unshallow) and run again`,
    );
  }
  const dir = tempDir(`etcdsnap-${release.version}-`);
  const unpack = spawnSync('bash', ['-c', 'git -C "$1" archive "$2" | tar -x -C "$3"', 'unpack', ROOT, release.commit, dir], { encoding: 'utf8' });
  if (unpack.status !== 0) throw new Error(`git archive ${release.version} failed: ${unpack.stderr}`);
  symlinkSync(realpathSync(path.join(ROOT, 'node_modules')), path.join(dir, 'node_modules'));
  const build = spawnSync(process.execPath, [path.join(dir, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], {
    cwd: dir,
    encoding: 'utf8',
    timeout: 600_000,
  });
  const bin = path.join(dir, 'bin', 'etcdsnap');
  if (build.status !== 0 || !existsSync(path.join(dir, 'dist', 'cli', 'main.js'))) {
    throw new Error(`building ${release.version} failed (${build.status}): ${build.stdout}${build.stderr}`);
  }
  return bin;
}

/** The etcd client of a test server (its client certificates). */
export function etcdClientOf(s: { dataDir: string; ports: Ports }): Promise<EtcdClient> {
  const tls = path.join(s.dataDir, 'server', 'tls', 'etcd');
  return EtcdClient.connect({
    endpoint: `https://127.0.0.1:${s.ports.client}`,
    tls: { etcdCa: path.join(tls, 'server-ca.crt'), clientCert: path.join(tls, 'server-client.crt'), clientKey: path.join(tls, 'server-client.key') },
  });
}

/** One put of the writer: its key, the step it started in, and its error when it failed. */
export interface Put {
  key: string;
  step: string;
  error?: string;
}

/**
 * Puts `w/<n>` one after another, each through a member that is up (round robin over
 * `clients`; a member being upgraded is taken out with `down` and put back with `up`, with a
 * new client). `step` labels the puts that start after it is set. Stops with `stop()`, which
 * resolves once the put in flight has ended.
 */
export class Writer {
  readonly puts: Put[] = [];
  step = 'steady';
  private readonly clients = new Map<number, EtcdClient>();
  private readonly retired: EtcdClient[] = [];
  private stopped = false;
  private inflight: Promise<unknown> = Promise.resolve();
  private readonly done: Promise<void>;
  private waiters: Array<{ step: string; resolve: () => void }> = [];

  constructor(clients: EtcdClient[], paceMs: number) {
    for (const [i, c] of clients.entries()) this.clients.set(i, c);
    this.done = this.run(paceMs);
  }

  /** Takes member `i` out; resolves once the put in flight (maybe through it) has ended. */
  async down(i: number): Promise<void> {
    const c = this.clients.get(i);
    if (c) this.retired.push(c);
    this.clients.delete(i);
    await this.inflight;
  }

  up(i: number, client: EtcdClient): void {
    this.clients.set(i, client);
  }

  /**
   * Resolves once a put that started in `step` went through; rejects after `timeoutMs`. An
   * upgrade step ends only then: a put lost in a leader change waits out its 10 s deadline,
   * and a step that ended meanwhile would have seen no write at all.
   */
  wentThrough(step: string, timeoutMs: number): Promise<void> {
    if (this.puts.some((p) => p.step === step && p.error === undefined)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no write went through during ${step} within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({
        step,
        resolve: () => {
          clearTimeout(t);
          resolve();
        },
      });
    });
  }

  private async run(paceMs: number): Promise<void> {
    for (let n = 0; !this.stopped; n++) {
      const up = [...this.clients.values()];
      const client = up[n % up.length];
      const put: Put = { key: `w/${String(n).padStart(6, '0')}`, step: this.step };
      try {
        if (!client) throw new Error('no member up');
        const done = client.putValue(put.key, `v${n}`, 10_000);
        this.inflight = done.catch(() => undefined);
        await done;
      } catch (err) {
        put.error = err instanceof Error ? err.message : String(err);
      }
      this.puts.push(put);
      if (put.error === undefined) {
        for (const w of this.waiters.filter((x) => x.step === put.step)) w.resolve();
        this.waiters = this.waiters.filter((x) => x.step !== put.step);
      }
      // a pace, not a wait for an event: the writer stands for a steady client load
      await new Promise((r) => setTimeout(r, paceMs));
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
    for (const c of [...this.clients.values(), ...this.retired]) c.close();
  }
}
