/**
 * `npm run bench:save`: times `etcdsnap etcd-snapshot save` against `etcdctl snapshot save`
 * on the same etcd (run by etcdsnap server) at several database sizes: the etcd is filled
 * with 64 KiB values up to the first size, measured, then filled further up to the next
 * one. At each size the two commands alternate, and which goes first alternates from one
 * pair to the next. Records, per size, the medians, the ratio and the server's peak RSS in
 * BENCHMARKS.md. Small databases show the fixed costs (CLI start-up, the API round trip,
 * fsyncs, the sidecar), large ones the cost per byte.
 *   BENCH_SIZES=50,300,1024 BENCH_RUNS=3 npm run bench:save
 *   BENCH_MIB=1024 npm run bench:save   (one size, as before)
 * BENCH_RUNS is the number of runs at the largest size (at least 3); smaller sizes, where a
 * run is short and the spread relatively larger, get 9 at least.
 */
import { rmSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { tempDir, BIN, cleanEnv, etcdctlFlags, fillEtcd } from '../test/helpers/server.js';
import { timeCommand, rssSampler, median, machine, saveGoalLine, writeSection, filledServer, watchServer } from './lib.js';

const SIZES = (process.env.BENCH_MIB ?? process.env.BENCH_SIZES ?? '50,300,1024')
  .split(',')
  .map((s) => Number(s.trim()))
  .filter((n) => Number.isFinite(n) && n > 0)
  .sort((a, b) => a - b);
if (SIZES.length === 0) throw new Error('BENCH_SIZES (or BENCH_MIB) gives no size in MiB');
const RUNS = Math.max(3, Number(process.env.BENCH_RUNS ?? 3));
const LARGEST = SIZES[SIZES.length - 1] ?? 0;
const runsAt = (mib: number): number => (mib === LARGEST ? RUNS : Math.max(9, RUNS));
const VALUE = 64 * 1024;
const keysFor = (mib: number): number => Math.round((mib * 1024 * 1024) / VALUE);

interface SizeResult {
  mib: number;
  bytes: number;
  ours: number[];
  theirs: number[];
  peakRss: number;
}

const started = Date.now();
const dir = tempDir('etcdsnap-bench-');
const server = await filledServer(dir, SIZES[0] ?? 0);
const results: SizeResult[] = [];
try {
  const snapDir = path.join(server.dataDir, 'server', 'db', 'snapshots');
  const ctlOut = path.join(dir, 'etcdctl.db');
  const cfg = path.join(dir, `config-${server.ports.supervisor}.yaml`);
  let keys = keysFor(SIZES[0] ?? 0);

  const ours = async (): Promise<{ ms: number; rss: number; bytes: number }> => {
    const rss = rssSampler(server.pid);
    const watch = await watchServer(server);
    const a = await timeCommand(
      process.execPath,
      [BIN, 'etcd-snapshot', 'save', '--config', cfg, '--data-dir', server.dataDir, '--etcd-server', server.url],
      cleanEnv(),
    );
    const peak = rss.stop();
    if ((await watch.stop()) === 0) throw new Error('no /metrics scrape nor dashboard poll was answered during the save');
    if (a.code !== 0) throw new Error(`etcdsnap save failed: ${a.stderr}`);
    let bytes = 0;
    for (const f of readdirSync(snapDir)) {
      bytes = statSync(path.join(snapDir, f)).size;
      rmSync(path.join(snapDir, f));
    }
    return { ms: a.ms, rss: peak, bytes };
  };
  const theirs = async (): Promise<number> => {
    const b = await timeCommand('etcdctl', [...etcdctlFlags(server), 'snapshot', 'save', ctlOut], { ...process.env, ETCDCTL_API: '3' });
    if (b.code !== 0) throw new Error(`etcdctl snapshot save failed: ${b.stderr}`);
    rmSync(ctlOut, { force: true });
    return b.ms;
  };

  for (const mib of SIZES) {
    const want = keysFor(mib);
    if (want > keys) {
      const t0 = Date.now();
      // new keys (a prefix per step): the database grows by the difference
      await fillEtcd(server, want - keys, VALUE, `fill-${mib}/`);
      console.log(`filled up to ${mib} MiB in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      keys = want;
    }
    const r: SizeResult = { mib, bytes: 0, ours: [], theirs: [], peakRss: 0 };
    for (let i = 0; i < runsAt(mib); i++) {
      // alternate which command goes first, so neither always runs on a warmer cache
      let a: { ms: number; rss: number; bytes: number };
      let b: number;
      if (i % 2 === 0) {
        a = await ours();
        b = await theirs();
      } else {
        b = await theirs();
        a = await ours();
      }
      r.ours.push(a.ms);
      r.theirs.push(b);
      r.peakRss = Math.max(r.peakRss, a.rss);
      r.bytes = a.bytes;
      console.log(`${mib} MiB run ${i + 1}: etcdsnap ${(a.ms / 1000).toFixed(2)} s, etcdctl ${(b / 1000).toFixed(2)} s`);
    }
    results.push(r);
  }
} finally {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}

const fmt = (xs: number[]): string => xs.map((x) => (x / 1000).toFixed(2)).join(', ');
const sizeOf = (bytes: number): string => (bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(2)} GiB` : `${(bytes / 2 ** 20).toFixed(0)} MiB`);
const rows = results.map((r) => {
  const mo = median(r.ours);
  const mt = median(r.theirs);
  return `| ${sizeOf(r.bytes)} (${keysFor(r.mib)} keys) | ${(mo / 1000).toFixed(2)} | ${(mt / 1000).toFixed(2)} | **${(mo / mt).toFixed(2)}** | ${r.peakRss.toFixed(0)} MiB | ${fmt(r.ours)} | ${fmt(r.theirs)} |`;
});
const goalLine = saveGoalLine(results.map((r) => ({ mib: r.mib, ratio: median(r.ours) / median(r.theirs) })));
const peak = Math.max(...results.map((r) => r.peakRss));
const minutes = ((Date.now() - started) / 60_000).toFixed(1);
const body = `Snapshots of one etcd filled with 64 KiB values to ${SIZES.join(', ')} MiB in turn, local disk, uncompressed.
Command: \`npm run bench:save\` (BENCH_SIZES=${SIZES.join(',')}, BENCH_RUNS=${RUNS}: ${RUNS} alternating pairs at the largest size, ${Math.max(9, RUNS)} at the smaller ones, the first command of a pair alternating; ${minutes} min in all). Machine: ${machine()}; etcd 3.4.23 (Debian).
etcdsnap: \`etcdsnap etcd-snapshot save\` (CLI → server → etcd stream, verify, fsync, rename, sidecar); etcdctl: \`etcdctl snapshot save\`.

| snapshot size | etcdsnap median (s) | etcdctl median (s) | ratio (goal <= 1.0 at 1 GiB) | server peak RSS (goal < 150 MB) | etcdsnap runs (s) | etcdctl runs (s) |
|---|---|---|---|---|---|---|
${rows.join('\n')}

${goalLine} Server peak RSS while streaming: **${peak.toFixed(0)} MiB** (goal < 150 MB), with Prometheus scraping \`/metrics\` and a dashboard session polling \`/ui/state\` and \`/ui/progress\` every 0.5 s (bench/lib.ts \`watchServer\`).
Measured ${new Date().toISOString()}.`;
console.log(body);
writeSection('Save (bench:save)', body);
