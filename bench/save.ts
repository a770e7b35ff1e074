/**
 * `npm run bench:save`: fills a fresh etcd (run by etcdsnap server) with about 1 GiB of
 * 64 KiB values, then times `etcdsnap etcd-snapshot save` against
 * `etcdctl snapshot save` on the same etcd, alternating, and records medians, the ratio
 * and the server's peak RSS in BENCHMARKS.md.
 *   BENCH_MIB=1024 BENCH_RUNS=3 npm run bench:save
 */
import { rmSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { tempDir, BIN, cleanEnv, etcdctlFlags } from '../test/helpers/server.js';
import { timeCommand, rssSampler, median, machine, writeSection, filledServer } from './lib.js';

const MIB = Number(process.env['BENCH_MIB'] ?? 1024);
const RUNS = Math.max(3, Number(process.env['BENCH_RUNS'] ?? 3));

const dir = tempDir('etcdsnap-bench-');
const server = await filledServer(dir, MIB);
try {
  const snapDir = path.join(server.dataDir, 'server', 'db', 'snapshots');
  const ctlOut = path.join(dir, 'etcdctl.db');
  const cfg = path.join(dir, `config-${server.ports.supervisor}.yaml`);
  const ours: number[] = [];
  const theirs: number[] = [];
  let peakRss = 0;
  let size = 0;
  for (let i = 0; i < RUNS; i++) {
    const rss = rssSampler(server.pid);
    const a = await timeCommand(process.execPath, [BIN, 'etcd-snapshot', 'save', '--config', cfg, '--data-dir', server.dataDir, '--etcd-server', server.url], cleanEnv());
    peakRss = Math.max(peakRss, rss.stop());
    if (a.code !== 0) throw new Error(`etcdsnap save failed: ${a.stderr}`);
    ours.push(a.ms);
    for (const f of readdirSync(snapDir)) {
      size = statSync(path.join(snapDir, f)).size;
      rmSync(path.join(snapDir, f));
    }
    const b = await timeCommand('etcdctl', [
      ...etcdctlFlags(server),
      'snapshot',
      'save',
      ctlOut,
    ], { ...process.env, ETCDCTL_API: '3' });
    if (b.code !== 0) throw new Error(`etcdctl snapshot save failed: ${b.stderr}`);
    theirs.push(b.ms);
    rmSync(ctlOut, { force: true });
    console.log(`run ${i + 1}: etcdsnap ${(a.ms / 1000).toFixed(2)} s, etcdctl ${(b.ms / 1000).toFixed(2)} s`);
  }
  const mo = median(ours);
  const mt = median(theirs);
  const ratio = mo / mt;
  const fmt = (xs: number[]): string => xs.map((x) => (x / 1000).toFixed(2)).join(', ');
  const body = `Snapshot of a ${(size / 2 ** 30).toFixed(2)} GiB etcd (${Math.round((MIB * 1024) / 64)} keys of 64 KiB), local disk, uncompressed.
Command: \`npm run bench:save\` (BENCH_MIB=${MIB}, ${RUNS} alternating runs each). Machine: ${machine()}; etcd 3.4.23 (Debian).

| | median (s) | runs (s) |
|---|---|---|
| \`etcdsnap etcd-snapshot save\` (CLI → server → etcd stream, verify, fsync, rename) | ${(mo / 1000).toFixed(2)} | ${fmt(ours)} |
| \`etcdctl snapshot save\` | ${(mt / 1000).toFixed(2)} | ${fmt(theirs)} |

Wall ratio etcdsnap / etcdctl: **${ratio.toFixed(2)}** (goal <= 1.0). Server peak RSS while streaming: **${peakRss.toFixed(0)} MiB** (goal < 150 MB).
Measured ${new Date().toISOString()}.`;
  console.log(body);
  writeSection('Save (bench:save)', body);
} finally {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}
