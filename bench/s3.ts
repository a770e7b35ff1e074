/**
 * `npm run bench:s3`: on a ~1 GiB etcd, `etcdsnap etcd-snapshot save --s3` (local file and
 * upload in one pass) against the sequential baseline `etcdctl snapshot save` then
 * `s3cmd put` to the same Swift (s3api), alternating; records medians, the ratio and the
 * server's peak RSS in BENCHMARKS.md.
 * One untimed warm-up round of both goes first (the server's first save also loads the SDK
 * and compiles its hot paths; the baseline's first run warms the page cache), and the fill
 * is synced to disk before it, so that its writeback does not land in the first timed run.
 * Objects are deleted from the bucket after each run (untimed) so the disk does not fill.
 *   BENCH_MIB=1024 BENCH_RUNS=5 npm run bench:s3
 */
import { spawnSync } from 'node:child_process';
import { rmSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { tempDir, BIN, cleanEnv, etcdctlFlags } from '../test/helpers/server.js';
import { startSwift } from '../test/helpers/swift.js';
import { timeCommand, rssSampler, median, machine, writeSection, filledServer, watchServer } from './lib.js';

const MIB = Number(process.env.BENCH_MIB ?? 1024);
const RUNS = Math.max(3, Number(process.env.BENCH_RUNS ?? 5));

const dir = tempDir('etcdsnap-bench-s3-');
const swift = await startSwift();
await swift.createBucket('bench');
const server = await filledServer(dir, MIB);
try {
  const snapDir = path.join(server.dataDir, 'server', 'db', 'snapshots');
  const cfg = path.join(dir, `config-${server.ports.supervisor}.yaml`);
  const s3cfg = path.join(dir, 's3cfg');
  writeFileSync(
    s3cfg,
    `[default]\naccess_key = ${swift.accessKey}\nsecret_key = ${swift.secretKey}\nhost_base = ${swift.endpoint}\nhost_bucket = ${swift.endpoint}\nuse_https = False\nsignature_v2 = False\nbucket_location = us-east-1\n`,
    { mode: 0o600 },
  );
  const ctlOut = path.join(dir, 'etcdctl.db');
  const env = cleanEnv({ AWS_ACCESS_KEY_ID: swift.accessKey, AWS_SECRET_ACCESS_KEY: swift.secretKey });
  const ours: number[] = [];
  const theirs: number[] = [];
  let peakRss = 0;
  const emptyBucket = (): void => {
    const r = spawnSync('s3cmd', ['-c', s3cfg, 'del', '--recursive', '--force', 's3://bench'], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`s3cmd del failed: ${r.stderr}`);
  };
  spawnSync('sync');
  for (let i = -1; i < RUNS; i++) {
    const rss = rssSampler(server.pid);
    const watch = await watchServer(server);
    const a = await timeCommand(
      process.execPath,
      [
        BIN,
        'etcd-snapshot',
        'save',
        '--config',
        cfg,
        '--data-dir',
        server.dataDir,
        '--etcd-server',
        server.url,
        '--s3',
        '--s3-endpoint',
        swift.endpoint,
        '--s3-insecure',
        '--s3-bucket',
        'bench',
        '--s3-bucket-lookup-type',
        'path',
      ],
      env,
    );
    peakRss = Math.max(peakRss, rss.stop());
    if ((await watch.stop()) === 0) throw new Error('no /metrics scrape nor dashboard poll was answered during the save');
    if (a.code !== 0 || !/saved/.test(a.stdout)) throw new Error(`etcdsnap save --s3 failed: ${a.stdout} ${a.stderr}`);
    for (const f of readdirSync(snapDir)) rmSync(path.join(snapDir, f));
    emptyBucket();

    const t = process.hrtime.bigint();
    const b = await timeCommand('etcdctl', [...etcdctlFlags(server), 'snapshot', 'save', ctlOut], { ...process.env, ETCDCTL_API: '3' });
    if (b.code !== 0) throw new Error(`etcdctl snapshot save failed: ${b.stderr}`);
    const c = await timeCommand('s3cmd', ['-c', s3cfg, '--no-progress', 'put', ctlOut, `s3://bench/etcdctl-${i}.db`]);
    if (c.code !== 0) throw new Error(`s3cmd put failed: ${c.stderr}`);
    const total = Number(process.hrtime.bigint() - t) / 1e6;
    rmSync(ctlOut, { force: true });
    emptyBucket();
    if (i < 0) {
      console.log(`warm-up: etcdsnap --s3 ${(a.ms / 1000).toFixed(2)} s; etcdctl + s3cmd ${(total / 1000).toFixed(2)} s (not counted)`);
      continue;
    }
    ours.push(a.ms);
    theirs.push(total);
    console.log(
      `run ${i + 1}: etcdsnap --s3 ${(a.ms / 1000).toFixed(2)} s; etcdctl ${(b.ms / 1000).toFixed(2)} s + s3cmd ${(c.ms / 1000).toFixed(2)} s = ${(total / 1000).toFixed(2)} s`,
    );
  }
  const mo = median(ours);
  const mt = median(theirs);
  const fmt = (xs: number[]): string => xs.map((x) => (x / 1000).toFixed(2)).join(', ');
  const body = `Snapshot of a ~${MIB} MiB etcd (64 KiB values) to local disk and to S3 (Debian Swift 2.30 with s3api on loopback, plain http, multipart).
Command: \`npm run bench:s3\` (BENCH_MIB=${MIB}, ${RUNS} alternating runs each after one untimed warm-up round of both; the fill is synced first and the bucket emptied after each run). Machine: ${machine()}; etcd 3.4.23 (Debian), s3cmd (Debian).

| | median (s) | runs (s) |
|---|---|---|
| \`etcdsnap etcd-snapshot save --s3\` (one pass: stream, verify, write locally and upload) | ${(mo / 1000).toFixed(2)} | ${fmt(ours)} |
| \`etcdctl snapshot save\` then \`s3cmd put\` (sequential baseline) | ${(mt / 1000).toFixed(2)} | ${fmt(theirs)} |

Wall ratio: **${(mo / mt).toFixed(2)}** (goal <= 0.65). Server peak RSS during the save: **${peakRss.toFixed(0)} MiB** (goal < 250 MB), with Prometheus scraping \`/metrics\` and a dashboard session polling \`/ui/state\` and \`/ui/progress\` every 0.5 s (bench/lib.ts \`watchServer\`).
Measured ${new Date().toISOString()}.`;
  console.log(body);
  writeSection('Save to S3 (bench:s3)', body);
} finally {
  await server.stop();
  await swift.stop();
  rmSync(dir, { recursive: true, force: true });
}
