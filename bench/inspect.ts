/**
 * `npm run bench:inspect`: times the snapshot inspection commands (issue 13) on snapshot files
 * of several sizes, against `etcdctl snapshot status -w json` on the same file. One etcd (run
 * by etcdsnap server) is filled to the first size with a mix of values — 80 % of the bytes in
 * 64 KiB values, 20 % in 1 KiB values under /registry/ (Kubernetes-like keys) — saved with
 * `etcdctl snapshot save`, measured, then filled further to the next size.
 *
 * Per size: `etcdsnap etcd-snapshot status <file> -o json` and etcdctl's status alternate
 * (which goes first alternates too), and must agree on hash, revision, totalKey and totalSize;
 * then `keys <file> --prefix /registry/` and `stats <file>` are timed. Wall time includes
 * Node's start-up; peak RSS is the child's VmHWM, sampled every 10 ms until it exits.
 *   BENCH_SIZES=300,1200 BENCH_RUNS=5 npm run bench:inspect
 * BENCH_ETCDSNAP=<script> runs another entry script in place of bin/etcdsnap (same arguments).
 */
import { spawn } from 'node:child_process';
import { readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { BIN, cleanEnv, etcdctlFlags, fillEtcd, startServer, tempDir } from '../test/helpers/server.js';
import { machine, median, writeSection } from './lib.js';

const SIZES = (process.env.BENCH_SIZES ?? '300,1200')
  .split(',')
  .map((s) => Number(s.trim()))
  .filter((n) => Number.isFinite(n) && n > 0)
  .sort((a, b) => a - b);
if (SIZES.length === 0) throw new Error('BENCH_SIZES gives no size in MiB');
const RUNS = Math.max(3, Number(process.env.BENCH_RUNS ?? 5));
const ENTRY = process.env.BENCH_ETCDSNAP ?? BIN;
const BIG = 64 * 1024;
const SMALL = 1024;

interface Run {
  ms: number;
  peakMiB: number;
  stdout: string;
}

/** Runs a command to completion: wall time, and its peak RSS (VmHWM) as last sampled. */
function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let peak = 0;
    const sample = (): void => {
      try {
        const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        if (m) peak = Math.max(peak, Number(m[1]) / 1024);
      } catch {
        /* exited */
      }
    };
    const timer = setInterval(sample, 10);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      clearInterval(timer);
      if (code !== 0) reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${stderr}`));
      else resolve({ ms, peakMiB: peak, stdout });
    });
  });
}

const ours = (args: string[]): Promise<Run> => run(process.execPath, [ENTRY, 'etcd-snapshot', ...args], cleanEnv());
const theirs = (file: string): Promise<Run> => run('etcdctl', ['snapshot', 'status', '-w', 'json', file], { ...process.env, ETCDCTL_API: '3' });

interface Four {
  hash: number;
  revision: number;
  totalKey: number;
  totalSize: number;
}
const four = (json: string): Four => {
  const j = JSON.parse(json) as Four;
  return { hash: j.hash, revision: j.revision, totalKey: j.totalKey, totalSize: j.totalSize };
};

interface SizeResult {
  bytes: number;
  keys: number;
  status: number[];
  etcdctl: number[];
  statusRss: number;
  etcdctlRss: number;
  keysMs: number[];
  keysRss: number;
  statsMs: number[];
  statsRss: number;
}

const started = Date.now();
const dir = tempDir('etcdsnap-bench-inspect-');
const server = await startServer({ dataDir: path.join(dir, 'data'), args: ['--etcd-disable-snapshots', '--etcd-arg', 'quota-backend-bytes=8589934592'] });
const results: SizeResult[] = [];
try {
  await server.ready();
  let big = 0;
  let small = 0;
  for (const mib of SIZES) {
    const t0 = Date.now();
    const wantBig = Math.round((mib * 0.8 * 2 ** 20) / BIG);
    const wantSmall = Math.round((mib * 0.2 * 2 ** 20) / SMALL);
    await fillEtcd(server, wantBig - big, BIG, `bench/big-${mib}/`);
    // small values: distinct prefixes per step, namespaced like Kubernetes objects
    await fillEtcd(server, wantSmall - small, SMALL, `/registry/configmaps/ns-${mib}/cm-`);
    big = wantBig;
    small = wantSmall;
    console.log(`filled to ${mib} MiB in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const file = path.join(dir, `snapshot-${mib}.db`);
    await run('etcdctl', [...etcdctlFlags(server), 'snapshot', 'save', file], { ...process.env, ETCDCTL_API: '3' });
    const r: SizeResult = {
      bytes: statSync(file).size,
      keys: big + small,
      status: [],
      etcdctl: [],
      statusRss: 0,
      etcdctlRss: 0,
      keysMs: [],
      keysRss: 0,
      statsMs: [],
      statsRss: 0,
    };
    for (let i = 0; i < RUNS; i++) {
      // alternate which goes first, so neither always runs on a warmer cache
      let a: Run;
      let b: Run;
      if (i % 2 === 0) {
        a = await ours(['status', file, '-o', 'json']);
        b = await theirs(file);
      } else {
        b = await theirs(file);
        a = await ours(['status', file, '-o', 'json']);
      }
      const mine = four(a.stdout);
      const ref = four(b.stdout);
      if (JSON.stringify(mine) !== JSON.stringify(ref)) throw new Error(`status differs from etcdctl's: ${JSON.stringify(mine)} vs ${JSON.stringify(ref)}`);
      r.status.push(a.ms);
      r.etcdctl.push(b.ms);
      r.statusRss = Math.max(r.statusRss, a.peakMiB);
      r.etcdctlRss = Math.max(r.etcdctlRss, b.peakMiB);
      console.log(`${mib} MiB status run ${i + 1}: etcdsnap ${(a.ms / 1000).toFixed(2)} s, etcdctl ${(b.ms / 1000).toFixed(2)} s`);
    }
    for (let i = 0; i < Math.max(3, Math.ceil(RUNS / 2)); i++) {
      const k = await ours(['keys', file, '--prefix', '/registry/']);
      r.keysMs.push(k.ms);
      r.keysRss = Math.max(r.keysRss, k.peakMiB);
      const s = await ours(['stats', file]);
      r.statsMs.push(s.ms);
      r.statsRss = Math.max(r.statsRss, s.peakMiB);
      console.log(`${mib} MiB run ${i + 1}: keys --prefix ${(k.ms / 1000).toFixed(2)} s, stats ${(s.ms / 1000).toFixed(2)} s`);
    }
    results.push(r);
    rmSync(file, { force: true });
  }
} finally {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}

const s = (ms: number): string => (ms / 1000).toFixed(2);
const fmt = (xs: number[]): string => xs.map(s).join(', ');
const sizeOf = (bytes: number): string => (bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(2)} GiB` : `${(bytes / 2 ** 20).toFixed(0)} MiB`);
const mb = (m: number): string => `${m.toFixed(0)} MiB`;
const rows = results.map((r) => {
  const mo = median(r.status);
  const mt = median(r.etcdctl);
  return `| ${sizeOf(r.bytes)} (${r.keys} keys) | ${s(mo)} | ${s(mt)} | **${(mo / mt).toFixed(2)}** | ${mb(r.statusRss)} (etcdctl ${mb(r.etcdctlRss)}) | ${s(median(r.keysMs))} / ${mb(r.keysRss)} | ${s(median(r.statsMs))} / ${mb(r.statsRss)} | ${fmt(r.status)} | ${fmt(r.etcdctl)} |`;
});
const worst = Math.max(...results.map((r) => median(r.status) / median(r.etcdctl)));
const peak = Math.max(...results.flatMap((r) => [r.statusRss, r.keysRss, r.statsRss]));
const body = `Snapshot files of one etcd filled to ${SIZES.join(', ')} MiB in turn (80 % of the bytes in 64 KiB values, 20 % in 1 KiB values under /registry/), saved with \`etcdctl snapshot save\`, on local disk (in the page cache).
Command: \`npm run bench:inspect\` (BENCH_SIZES=${SIZES.join(',')}, BENCH_RUNS=${RUNS}: ${RUNS} alternating status pairs per size; ${((Date.now() - started) / 60_000).toFixed(1)} min in all). Machine: ${machine()}; etcd 3.4.23 (Debian).
etcdsnap status: \`etcdsnap etcd-snapshot status <file> -o json\` (Node start-up included; also checks the sha256 trailer, which etcdctl does not), equal to etcdctl's on hash, revision, totalKey and totalSize in every run; etcdctl: \`etcdctl snapshot status -w json <file>\`. keys: \`keys <file> --prefix /registry/\`; stats: \`stats <file>\`. Peak RSS: the child's VmHWM.

| snapshot size | etcdsnap status median (s) | etcdctl median (s) | ratio (goal <= 1.0, aim 0.5) | status peak RSS (goal < 200 MB) | keys --prefix median (s) / peak RSS | stats median (s) / peak RSS | etcdsnap status runs (s) | etcdctl runs (s) |
|---|---|---|---|---|---|---|---|---|
${rows.join('\n')}

Worst status ratio etcdsnap / etcdctl: **${worst.toFixed(2)}**. Highest peak RSS of an inspection command: **${peak.toFixed(0)} MiB** (goal < 200 MB).
Measured ${new Date().toISOString()}.`;
console.log(body);
writeSection('Inspect (bench:inspect)', body);
