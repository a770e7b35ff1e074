/**
 * `npm run soak [-- --minutes N]` (default 10; not part of npm test): schedule `@every 2s`,
 * retention 3, S3 on (Swift), a writer process putting keys all the time. At the end:
 * exactly 3 local and 3 S3 scheduled snapshots remain, all verify, the last restores with
 * etcdctl, and the server's RSS and open file descriptors did not grow by more than 10%
 * after the first minute. Figures go to RELIABILITY.md.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer, tempDir, ROOT } from '../test/helpers/server.js';
import { startSwift, swiftSettings } from '../test/helpers/swift.js';
import { S3Store } from '../src/store/s3.js';
import { verifySnapshotFile } from '../src/snapshot/verify.js';
import { machine } from './lib.js';

const arg = process.argv.indexOf('--minutes');
const MINUTES = arg > 0 ? Number(process.argv[arg + 1]) : Number(process.env.SOAK_MINUTES ?? 10);
if (!Number.isFinite(MINUTES) || MINUTES < 3) throw new Error('--minutes must be a number >= 3');

const rss = (pid: number): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
const fds = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length;

const swift = await startSwift();
await swift.createBucket('soak');
const dir = tempDir('etcdsnap-soak-');
const env = { AWS_ACCESS_KEY_ID: swift.accessKey, AWS_SECRET_ACCESS_KEY: swift.secretKey };
const server = await startServer({
  dataDir: path.join(dir, 'data'),
  // auto-compaction as a real cluster runs it: without it the writer grows the db (and each snapshot) all the time
  args: [
    '--etcd-arg',
    'auto-compaction-mode=revision',
    '--etcd-arg',
    'auto-compaction-retention=1000',
    '--etcd-snapshot-schedule-cron',
    '@every 2s',
    '--etcd-snapshot-retention',
    '3',
    '--etcd-s3',
    '--etcd-s3-endpoint',
    swift.endpoint,
    '--etcd-s3-insecure',
    '--etcd-s3-bucket',
    'soak',
    '--etcd-s3-bucket-lookup-type',
    'path',
    '--etcd-s3-retention',
    '3',
  ],
  env,
});
const failures: string[] = [];
let ok = false;
try {
  await server.ready();
  const writer = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(path.dirname(fileURLToPath(import.meta.url)), 'soak-writer.ts'), server.dataDir, String(server.ports.client)],
    { stdio: 'ignore', cwd: ROOT },
  );
  const samples: Array<{ t: number; rss: number; fds: number }> = [];
  const t0 = Date.now();
  while (Date.now() - t0 < MINUTES * 60_000) {
    await new Promise((r) => setTimeout(r, 10_000));
    samples.push({ t: (Date.now() - t0) / 1000, rss: rss(server.pid), fds: fds(server.pid) });
    console.log(`t=${samples.at(-1)?.t.toFixed(0)}s rss=${samples.at(-1)?.rss.toFixed(1)} MiB fds=${samples.at(-1)?.fds}`);
  }
  writer.kill('SIGKILL');
  const saves = server.lines.filter((l) => typeof l.msg === 'string' && /^Snapshot etcd-snapshot-\S+ saved$/.test(l.msg)).length;
  const uploads = server.lines.filter((l) => typeof l.msg === 'string' && /uploaded to S3/.test(l.msg)).length;
  const failed = server.lines.filter(
    (l) => typeof l.msg === 'string' && /^Failed to take etcd snapshot|^Error received during snapshot upload/.test(l.msg),
  ).length;
  await server.stop();

  // RSS moves with each upload's part buffers, so compare medians, not single samples:
  // the minute after the first one (baseline) against the last minute
  const med = (xs: number[]): number => {
    const v = [...xs].sort((a, b) => a - b);
    return v[Math.floor(v.length / 2)] ?? 0;
  };
  const total = MINUTES * 60;
  const inMinute2 = samples.filter((x) => x.t >= 60 && x.t < 120);
  const lastMinute = samples.filter((x) => x.t >= total - 60);
  const baseRss = med(inMinute2.map((x) => x.rss));
  const endRss = med(lastMinute.map((x) => x.rss));
  const baseFds = med(inMinute2.map((x) => x.fds));
  const endFds = med(lastMinute.map((x) => x.fds));
  const maxRss = Math.max(...samples.filter((x) => x.t >= 60).map((x) => x.rss));
  const maxFds = Math.max(...samples.filter((x) => x.t >= 60).map((x) => x.fds));
  const rssGrowth = (endRss - baseRss) / baseRss;
  const fdGrowth = (endFds - baseFds) / baseFds;
  if (rssGrowth > 0.1) failures.push(`RSS grew ${(rssGrowth * 100).toFixed(1)}% after the first minute`);
  if (fdGrowth > 0.1) failures.push(`open fds grew ${(fdGrowth * 100).toFixed(1)}% after the first minute`);

  const snapDir = path.join(server.dataDir, 'server', 'db', 'snapshots');
  const local = readdirSync(snapDir)
    .filter((f) => f.startsWith('etcd-snapshot-'))
    .sort();
  if (local.length !== 3) failures.push(`${local.length} local snapshots, expected 3: ${local.join(' ')}`);
  for (const f of local) await verifySnapshotFile(path.join(snapDir, f)).catch((e: unknown) => failures.push(`${f}: ${String(e)}`));
  const store = S3Store.create(swiftSettings(swift, 'soak'));
  const remote: string[] = [];
  for await (const o of store.list()) if (!o.name.startsWith('.metadata/') && o.name.startsWith('etcd-snapshot-')) remote.push(o.name);
  if (remote.length !== 3) failures.push(`${remote.length} S3 snapshots, expected 3: ${remote.join(' ')}`);
  for (const n of remote) {
    const side = JSON.parse((await store.getText(store.metadataKey(n))) ?? '{}') as { sha256?: string };
    const h = createHash('sha256');
    for await (const c of await store.getStream(n)) h.update(c as Buffer);
    if (h.digest('hex') !== side.sha256) failures.push(`S3 object ${n} does not match its sidecar`);
  }
  const last = local.at(-1);
  const restore = last
    ? spawnSync('etcdctl', ['snapshot', 'restore', path.join(snapDir, last), '--data-dir', path.join(dir, 'restored')], {
        env: { ...process.env, ETCDCTL_API: '3' },
        encoding: 'utf8',
      })
    : undefined;
  if (restore?.status !== 0) failures.push(`etcdctl could not restore ${last ?? '(none)'}: ${restore?.stderr ?? ''}`);

  const body = `Soak of ${MINUTES} minutes (\`npm run soak -- --minutes ${MINUTES}\`), ${new Date().toISOString()}, ${machine()}:
schedule \`@every 2s\`, retention 3 locally and in S3 (Swift s3api on loopback), a writer putting 4 KiB values all the time.

- scheduled saves: ${saves}; uploads: ${uploads}; failed saves or uploads: ${failed}
- left at the end: ${local.length} local and ${remote.length} S3 snapshots of prefix etcd-snapshot (expected 3 and 3); all verified; the newest restored with \`etcdctl snapshot restore\`: ${restore?.status === 0 ? 'yes' : 'no'}
- server RSS (median of 10 s samples): ${baseRss.toFixed(1)} MiB in minute 2, ${endRss.toFixed(1)} MiB in the last minute (growth ${(rssGrowth * 100).toFixed(1)}%, limit 10%); peak after the first minute ${maxRss.toFixed(1)} MiB
- open file descriptors (median): ${baseFds} in minute 2, ${endFds} in the last minute (growth ${(fdGrowth * 100).toFixed(1)}%, limit 10%); peak ${maxFds}
- result: ${failures.length === 0 ? 'PASS' : `FAIL: ${failures.join('; ')}`}`;
  console.log(body);
  const file = path.join(ROOT, 'RELIABILITY.md');
  if (existsSync(file)) {
    const text = readFileSync(file, 'utf8');
    const start = text.indexOf('## Soak');
    const section = `## Soak\n\n${body}\n`;
    writeFileSync(
      file,
      start < 0
        ? `${text.trimEnd()}\n\n${section}`
        : text.slice(0, start) + section + (text.indexOf('\n## ', start + 3) > 0 ? text.slice(text.indexOf('\n## ', start + 3)) : ''),
    );
  }
  ok = failures.length === 0;
} finally {
  if (server.exitCode === undefined) await server.stop();
  await swift.stop();
}
// tempDir() removes the data dir at exit; a failed soak keeps a copy of the server log
if (!ok) console.log(`server log lines: ${server.raw.length}; last ones:\n${server.raw.slice(-20).join('\n')}`);
process.exit(ok ? 0 : 1);
