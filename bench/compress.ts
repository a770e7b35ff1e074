/**
 * `npm run bench:compress` (issue 14): what compression and encryption cost and save, on a
 * Kubernetes-shaped etcd (bench/k8s-dataset.ts: protobuf built-ins, JSON custom resources,
 * random Secret data; BENCH_MIB, default 1024) and on random values, the incompressible worst
 * case (BENCH_RANDOM_MIB, default 256; 0 skips it). For each dataset, a fresh `etcdsnap server`
 * (8 GiB quota, scheduled snapshots off) is filled with `fillEtcdWith` from a generator in a
 * worker thread (`inWorker`; the load rate is
 * printed and recorded), the fill synced to disk, then every variant below runs once per round,
 * BENCH_RUNS rounds (at least 3) after one untimed warm-up round (BENCH_WARMUP=0 skips it), the
 * order of the variants reversed every other round. Medians per variant; one row per
 * comparison, with its goal, in BENCHMARKS.md.
 *
 * Variants (etcdsnap = `etcdsnap etcd-snapshot save` against the running server):
 *   save + upload to S3 (loopback Swift, as bench:s3): etcdsnap uncompressed; etcdsnap with
 *     `--etcd-snapshot-compression zstd` and `gzip`; `etcdctl snapshot save f && zstd -T0 f &&
 *     s3cmd put f.zst` and the same with `gzip f` (sequential, timed as a whole);
 *   local save: etcdsnap with `--etcd-snapshot-compress` (k3s's zip) vs `etcdctl snapshot save f
 *     && zip f.zip f`; etcdsnap uncompressed and zstd, each without and with
 *     `--etcd-snapshot-encrypt-recipient <age1…>` (a key made with age-keygen).
 * The server's peak RSS is its VmHWM, reset (/proc/<pid>/clear_refs) before each etcdsnap run;
 * reported for the compressed save+upload. Compression ratios: the uncompressed snapshot's size
 * (etcdctl's file) over each compressed artifact's.
 *
 * Variants that need a flag the built `etcdsnap server --help` does not list are skipped and
 * reported as such; a variant whose command fails is reported as failed (its first error line)
 * and the others go on (BENCH_FORCE=1 skips the help probe). No assertion here is a test:
 * nothing fails on a missed goal.
 *   BENCH_MIB=1024 BENCH_RANDOM_MIB=256 BENCH_RUNS=3 npm run bench:compress
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { BIN, cleanEnv, etcdctlFlags, type ServerProcess, startServer, tempDir } from '../test/helpers/server.js';
import { startSwift, type Swift } from '../test/helpers/swift.js';
import { type DatasetEntry, fillEtcdWith, inWorker, mixTable, serverTarget } from './k8s-dataset.js';
import { machine, median, rssSampler, type Timed, timeCommand, writeSection } from './lib.js';

const MIB = Number(process.env.BENCH_MIB ?? 1024);
const RANDOM_MIB = Number(process.env.BENCH_RANDOM_MIB ?? 256);
const RUNS = Math.max(3, Number(process.env.BENCH_RUNS ?? 3));
const WARMUP = process.env.BENCH_WARMUP !== '0';
const SEED = Number(process.env.BENCH_SEED ?? 1);

// ---------------------------------------------------------------- what this build supports

const serverHelp = spawnSync(process.execPath, [BIN, 'server', '--help'], { encoding: 'utf8' }).stdout;
/** BENCH_FORCE=1 runs every variant whatever the help says (those the build lacks then fail, and are reported as failed). */
const FORCE = process.env.BENCH_FORCE === '1';
const HAS = {
  compression: FORCE || serverHelp.includes('--etcd-snapshot-compression'),
  encrypt: FORCE || serverHelp.includes('--etcd-snapshot-encrypt-recipient'),
};
type Need = keyof typeof HAS;
const FLAG_OF: Record<Need, string> = { compression: '--etcd-snapshot-compression', encrypt: '--etcd-snapshot-encrypt-recipient' };
console.log(
  `this build: ${FLAG_OF.compression} ${serverHelp.includes(FLAG_OF.compression) ? 'present' : 'MISSING'}, ${FLAG_OF.encrypt} ${serverHelp.includes(FLAG_OF.encrypt) ? 'present' : 'MISSING'}${FORCE ? ' (BENCH_FORCE=1)' : ''}`,
);

// ---------------------------------------------------------------- variants

interface Outcome {
  ms: number;
  /** Bytes of what was stored (the local artifact, or the uploaded object). */
  bytes: number;
  /** Server peak RSS (MiB) during the run, for etcdsnap runs. */
  rss?: number;
}

interface Variant {
  id: string;
  label: string;
  needs: Need[];
  run: () => Promise<Outcome>;
}

interface Result {
  label: string;
  ms: number[];
  bytes: number;
  rss: number;
  /** Why it did not run (a missing flag) or failed (the first error line). */
  problem?: string;
}

interface DatasetResult {
  name: string;
  mib: number;
  fill: { puts: number; bytes: number; ms: number };
  dbBytes: number;
  results: Map<string, Result>;
}

const dir = tempDir('etcdsnap-bench-compress-');
const keyFile = path.join(dir, 'age.key');
const keygen = spawnSync('age-keygen', ['-o', keyFile], { encoding: 'utf8' });
const RECIPIENT = /age1[0-9a-z]+/.exec(`${keygen.stderr}${keygen.stdout}`)?.[0] ?? '';
if (RECIPIENT === '') console.log(`age-keygen gave no recipient (${keygen.stderr.trim()}): the encryption variants will fail`);

const firstLine = (t: Timed): string =>
  `${t.stderr}\n${t.stdout}`
    .split('\n')
    .map((l) => l.trim())
    .find((l) => l !== '')
    ?.slice(0, 200) ?? `exit ${t.code}`;

/** VmHWM of `pid` in MiB (0 when unreadable): its peak RSS since it started, or since `resetHwm`. */
function hwm(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}
/** Resets the peak of VmHWM to the current RSS (Linux >= 4.0); false when not allowed. */
function resetHwm(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

function variants(server: ServerProcess, swift: Swift, s3cfg: string): Variant[] {
  const snapDir = path.join(server.dataDir, 'server', 'db', 'snapshots');
  const cfg = path.join(dir, `config-${server.ports.supervisor}.yaml`);
  const env = cleanEnv({ AWS_ACCESS_KEY_ID: swift.accessKey, AWS_SECRET_ACCESS_KEY: swift.secretKey });
  const ctlEnv = { ...process.env, ETCDCTL_API: '3' };
  const s3 = ['--s3', '--s3-endpoint', swift.endpoint, '--s3-insecure', '--s3-bucket', 'bench', '--s3-bucket-lookup-type', 'path'];
  const work = path.join(dir, 'work');
  const ctlFile = path.join(work, 'etcdctl.db');

  /** Removes the saved snapshot (and its sidecar in ../.metadata); returns its size and first bytes. */
  const clearLocal = (): { bytes: number; head: Buffer } => {
    let bytes = 0;
    let head = Buffer.alloc(0);
    for (const f of readdirSync(snapDir)) {
      const p = path.join(snapDir, f);
      bytes += statSync(p).size;
      if (head.length === 0) head = readFileSync(p).subarray(0, 32);
      rmSync(p, { recursive: true, force: true });
    }
    rmSync(path.join(snapDir, '..', '.metadata'), { recursive: true, force: true });
    return { bytes, head };
  };
  const emptyBucket = (): void => {
    const r = spawnSync('s3cmd', ['-c', s3cfg, 'del', '--recursive', '--force', 's3://bench'], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`s3cmd del failed: ${r.stderr}`);
  };

  /** An etcdsnap save; `magic`: what the stored file must start with (so that a flag accepted but ignored is not measured as a success). */
  const ours = (extra: string[], upload: boolean, magic?: string | Buffer) => async (): Promise<Outcome> => {
    const reset = resetHwm(server.pid);
    const sampled = rssSampler(server.pid);
    try {
      const t = await timeCommand(
        process.execPath,
        [BIN, 'etcd-snapshot', 'save', '--config', cfg, '--data-dir', server.dataDir, '--etcd-server', server.url, ...(upload ? s3 : []), ...extra],
        env,
      );
      const peak = sampled.stop();
      if (t.code !== 0 || !/saved/.test(t.stdout)) throw new Error(firstLine(t));
      const rss = reset ? hwm(server.pid) : peak;
      const { bytes, head } = clearLocal();
      const want = typeof magic === 'string' ? Buffer.from(magic) : magic;
      if (want !== undefined && !head.subarray(0, want.length).equals(want))
        throw new Error(`the snapshot starts with ${head.subarray(0, 8).toString('hex')}, not ${want.toString('hex')} as expected`);
      return { ms: t.ms, bytes, rss };
    } finally {
      sampled.stop();
      clearLocal();
      if (upload) emptyBucket();
    }
  };

  /** Runs the steps one after the other, timed as a whole; `out` is the artifact measured. */
  const pipeline = (steps: Array<[string, string[]]>, out: string, upload: boolean) => async (): Promise<Outcome> => {
    rmSync(work, { recursive: true, force: true });
    mkdirSync(work, { recursive: true });
    try {
      const t0 = process.hrtime.bigint();
      for (const [cmd, args] of steps) {
        const t = await timeCommand(cmd, args, ctlEnv);
        if (t.code !== 0) throw new Error(`${cmd}: ${firstLine(t)}`);
      }
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      return { ms, bytes: statSync(out).size };
    } finally {
      rmSync(work, { recursive: true, force: true });
      if (upload) emptyBucket();
    }
  };
  const ctlSave: [string, string[]] = ['etcdctl', [...etcdctlFlags(server), 'snapshot', 'save', ctlFile]];
  const put = (f: string): [string, string[]] => ['s3cmd', ['-c', s3cfg, '--no-progress', 'put', f, `s3://bench/${path.basename(f)}`]];
  const age = ['--etcd-snapshot-encrypt-recipient', RECIPIENT];
  const zstd = ['--etcd-snapshot-compression', 'zstd'];
  const ZSTD = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);
  const GZIP = Buffer.from([0x1f, 0x8b]);
  const ZIP = 'PK\x03\x04';
  const AGE = 'age-encryption.org/v1';

  return [
    { id: 's3-none', label: 'etcdsnap save + S3, uncompressed', needs: [], run: ours([], true) },
    { id: 's3-zstd', label: 'etcdsnap save + S3, zstd', needs: ['compression'], run: ours(zstd, true, ZSTD) },
    { id: 's3-gzip', label: 'etcdsnap save + S3, gzip', needs: ['compression'], run: ours(['--etcd-snapshot-compression', 'gzip'], true, GZIP) },
    {
      id: 'ctl-zstd-s3',
      label: '`etcdctl snapshot save f && zstd -T0 f && s3cmd put f.zst`',
      needs: [],
      run: pipeline([ctlSave, ['zstd', ['-q', '-T0', ctlFile, '-o', `${ctlFile}.zst`]], put(`${ctlFile}.zst`)], `${ctlFile}.zst`, true),
    },
    {
      id: 'ctl-gzip-s3',
      label: '`etcdctl snapshot save f && gzip f && s3cmd put f.gz`',
      needs: [],
      run: pipeline([ctlSave, ['gzip', [ctlFile]], put(`${ctlFile}.gz`)], `${ctlFile}.gz`, true),
    },
    { id: 'zip', label: 'etcdsnap save --etcd-snapshot-compress (zip), local', needs: [], run: ours(['--etcd-snapshot-compress'], false, ZIP) },
    {
      id: 'ctl-zip',
      label: '`etcdctl snapshot save f && zip f.zip f`',
      needs: [],
      run: pipeline([ctlSave, ['zip', ['-q', '-j', `${ctlFile}.zip`, ctlFile]]], `${ctlFile}.zip`, false),
    },
    { id: 'none', label: 'etcdsnap save, local, uncompressed', needs: [], run: ours([], false) },
    { id: 'none-age', label: 'etcdsnap save, local, uncompressed, age-encrypted', needs: ['encrypt'], run: ours(age, false, AGE) },
    { id: 'zstd', label: 'etcdsnap save, local, zstd', needs: ['compression'], run: ours(zstd, false, ZSTD) },
    { id: 'zstd-age', label: 'etcdsnap save, local, zstd, age-encrypted', needs: ['compression', 'encrypt'], run: ours([...zstd, ...age], false, AGE) },
  ];
}

// ---------------------------------------------------------------- one dataset

async function measure(name: string, mib: number, entries: AsyncIterable<DatasetEntry>, swift: Swift, s3cfg: string): Promise<DatasetResult> {
  const server = await startServer({
    dataDir: path.join(dir, `data-${name}`),
    args: ['--etcd-disable-snapshots', '--etcd-arg', 'quota-backend-bytes=8589934592'],
  });
  try {
    await server.ready();
    const fill = await fillEtcdWith(serverTarget(server), entries);
    console.log(
      `${name}: loaded ${fill.puts} puts, ${(fill.bytes / 2 ** 20).toFixed(0)} MiB in ${(fill.ms / 1000).toFixed(1)} s (${(fill.bytes / 2 ** 20 / (fill.ms / 1000)).toFixed(1)} MiB/s)`,
    );
    spawnSync('sync');
    const dbFile = path.join(dir, 'size.db');
    const probe = await timeCommand('etcdctl', [...etcdctlFlags(server), 'snapshot', 'save', dbFile], { ...process.env, ETCDCTL_API: '3' });
    if (probe.code !== 0) throw new Error(`etcdctl snapshot save failed: ${probe.stderr}`);
    const dbBytes = statSync(dbFile).size;
    rmSync(dbFile, { force: true });
    console.log(`${name}: snapshot ${(dbBytes / 2 ** 20).toFixed(0)} MiB`);

    const all = variants(server, swift, s3cfg);
    const results = new Map<string, Result>(all.map((v) => [v.id, { label: v.label, ms: [], bytes: 0, rss: 0 }]));
    for (const v of all) {
      const missing = v.needs.filter((n) => !HAS[n]);
      if (missing.length > 0) (results.get(v.id) as Result).problem = `not run: ${missing.map((n) => FLAG_OF[n]).join(', ')} not in this build`;
    }
    for (let round = WARMUP ? -1 : 0; round < RUNS; round++) {
      const order = round % 2 === 0 ? all : [...all].reverse();
      const line: string[] = [];
      for (const v of order) {
        const r = results.get(v.id) as Result;
        if (r.problem !== undefined) continue;
        try {
          const o = await v.run();
          if (round >= 0) {
            r.ms.push(o.ms);
            r.bytes = o.bytes;
            r.rss = Math.max(r.rss, o.rss ?? 0);
          }
          line.push(`${v.id} ${(o.ms / 1000).toFixed(2)} s`);
        } catch (err) {
          r.problem = `failed: ${err instanceof Error ? err.message : String(err)}`;
          line.push(`${v.id} FAILED`);
          console.log(`${name}: ${v.id} ${r.problem}`);
        }
      }
      console.log(`${name} ${round < 0 ? 'warm-up (not counted)' : `run ${round + 1}`}: ${line.join(', ')}`);
    }
    return { name, mib, fill, dbBytes, results };
  } finally {
    await server.stop();
    rmSync(server.dataDir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- main

const started = Date.now();
const swift = await startSwift();
const done: DatasetResult[] = [];
try {
  await swift.createBucket('bench');
  const s3cfg = path.join(dir, 's3cfg');
  writeFileSync(
    s3cfg,
    `[default]\naccess_key = ${swift.accessKey}\nsecret_key = ${swift.secretKey}\nhost_base = ${swift.endpoint}\nhost_bucket = ${swift.endpoint}\nuse_https = False\nsignature_v2 = False\nbucket_location = us-east-1\n`,
    { mode: 0o600 },
  );
  done.push(await measure('realistic', MIB, inWorker('k8s', MIB * 2 ** 20, SEED), swift, s3cfg));
  if (RANDOM_MIB > 0) done.push(await measure('random', RANDOM_MIB, inWorker('random', RANDOM_MIB * 2 ** 20, SEED), swift, s3cfg));
} finally {
  await swift.stop();
  rmSync(dir, { recursive: true, force: true });
}

// ---------------------------------------------------------------- report

const sec = (ms: number): string => (ms / 1000).toFixed(2);
const med = (d: DatasetResult, id: string): number | undefined => {
  const r = d.results.get(id);
  return r === undefined || r.problem !== undefined || r.ms.length === 0 ? undefined : median(r.ms);
};
const why = (d: DatasetResult, ...ids: string[]): string => {
  const p = ids.map((id) => d.results.get(id)?.problem).find((x) => x !== undefined);
  return p ?? 'no runs';
};

interface Comparison {
  what: string;
  ours: string;
  base: string;
  goal: number;
}
const COMPARISONS: Comparison[] = [
  { what: 'save + S3: zstd vs uncompressed', ours: 's3-zstd', base: 's3-none', goal: 0.6 },
  { what: 'save + S3: zstd vs `etcdctl` + `zstd -T0` + `s3cmd put`', ours: 's3-zstd', base: 'ctl-zstd-s3', goal: 0.4 },
  { what: 'save + S3: gzip vs `etcdctl` + `gzip` + `s3cmd put`', ours: 's3-gzip', base: 'ctl-gzip-s3', goal: 0.4 },
  { what: 'local: zip (`--etcd-snapshot-compress`) vs `etcdctl` + `zip`', ours: 'zip', base: 'ctl-zip', goal: 0.5 },
  { what: 'local: age encryption, uncompressed (encrypted vs not)', ours: 'none-age', base: 'none', goal: 1.1 },
  { what: 'local: age encryption, zstd (encrypted vs not)', ours: 'zstd-age', base: 'zstd', goal: 1.1 },
];

const cell = (d: DatasetResult, c: Comparison): string => {
  const a = med(d, c.ours);
  const b = med(d, c.base);
  if (a === undefined || b === undefined) return `n/a (${why(d, c.ours, c.base)})`;
  const ratio = a / b;
  return `**${ratio.toFixed(2)}** ${ratio <= c.goal ? 'met' : 'NOT met'} (${sec(a)} s / ${sec(b)} s)`;
};
const rssCell = (d: DatasetResult): string => {
  const r = d.results.get('s3-zstd');
  if (r === undefined || r.problem !== undefined)
    return `n/a (${why(d, 's3-zstd')}); uncompressed save + S3: ${(d.results.get('s3-none')?.rss ?? 0).toFixed(0)} MiB`;
  return `**${r.rss.toFixed(0)} MiB** ${r.rss * 1.048576 < 300 ? 'met' : 'NOT met'} (uncompressed: ${(d.results.get('s3-none')?.rss ?? 0).toFixed(0)} MiB)`;
};
const head = `| comparison (ratio = etcdsnap / baseline, medians) | goal | ${done.map((d) => `${d.name} (${d.mib} MiB)`).join(' | ')} |`;
const rule = `|---|---|${done.map(() => '---|').join('')}`;
const compRows = COMPARISONS.map((c) => `| ${c.what} | <= ${c.goal} | ${done.map((d) => cell(d, c)).join(' | ')} |`);
compRows.push(`| server peak RSS (VmHWM) during the zstd save + S3 | < 300 MB | ${done.map(rssCell).join(' | ')} |`);

const ARTIFACTS: Array<[string, string]> = [
  ['s3-zstd', 'etcdsnap zstd'],
  ['s3-gzip', 'etcdsnap gzip'],
  ['zip', 'etcdsnap zip'],
  ['zstd-age', 'etcdsnap zstd + age'],
  ['none-age', 'etcdsnap uncompressed + age'],
  ['ctl-zstd-s3', '`zstd -T0` (level 3)'],
  ['ctl-gzip-s3', '`gzip` (level 6)'],
  ['ctl-zip', '`zip` (deflate, level 6)'],
];
const ratioRows = ARTIFACTS.map(([id, label]) => {
  const cells = done.map((d) => {
    const r = d.results.get(id);
    if (r === undefined || r.problem !== undefined || r.bytes === 0) return 'n/a';
    return `${(d.dbBytes / r.bytes).toFixed(2)}x (${(r.bytes / 2 ** 20).toFixed(0)} MiB)`;
  });
  return `| ${label} | ${cells.join(' | ')} |`;
});

const variantRows = done.flatMap((d) =>
  [...d.results.entries()].map(
    ([id, r]) => `| ${d.name} | ${id}: ${r.label} | ${r.problem === undefined ? `${sec(median(r.ms))} | ${r.ms.map(sec).join(', ')}` : `${r.problem} | |`} |`,
  ),
);

const fills = done
  .map(
    (d) =>
      `${d.name}: ${d.fill.puts} puts, ${(d.fill.bytes / 2 ** 20).toFixed(0)} MiB loaded in ${sec(d.fill.ms)} s (**${(d.fill.bytes / 2 ** 20 / (d.fill.ms / 1000)).toFixed(1)} MiB/s**); snapshot ${(d.dbBytes / 2 ** 20).toFixed(0)} MiB`,
  )
  .join('; ');

const body = `Compressed and encrypted snapshots (issue 14) on a Kubernetes-shaped etcd and on random values (the incompressible worst case).
Command: \`npm run bench:compress\` (BENCH_MIB=${MIB}, BENCH_RANDOM_MIB=${RANDOM_MIB}, BENCH_RUNS=${RUNS}, ${WARMUP ? 'one untimed warm-up round' : 'no warm-up'}, variants alternating in order; ${((Date.now() - started) / 60_000).toFixed(1)} min in all). Machine: ${machine()}; etcd 3.4.23, zstd, gzip, zip, s3cmd (Debian); S3 is Swift with s3api on loopback.
This build's \`server --help\`: \`--etcd-snapshot-compression\` ${serverHelp.includes('--etcd-snapshot-compression') ? 'present' : '**missing**'}, \`--etcd-snapshot-encrypt-recipient\` ${serverHelp.includes('--etcd-snapshot-encrypt-recipient') ? 'present' : '**missing**'}${FORCE ? ' (BENCH_FORCE=1: all variants tried)' : ''}; rows needing a missing flag say so.
Load (\`fillEtcdWith\`, 128-put transactions of up to 1 MiB, 6 in flight, generated in a worker thread meanwhile): ${fills}.

${head}
${rule}
${compRows.join('\n')}

Compression ratio (uncompressed snapshot size / stored size):

| artifact | ${done.map((d) => d.name).join(' | ')} |
|---|${done.map(() => '---|').join('')}
${ratioRows.join('\n')}

All variants (median s | runs s):

| dataset | variant | median (s) | runs (s) |
|---|---|---|---|
${variantRows.join('\n')}

The realistic dataset (\`bench/k8s-dataset.ts\`, seed ${SEED}): keys and values as kube-apiserver stores them; built-ins protobuf in the \`k8s\\0\` envelope, custom resources and CRDs JSON; Secret data random base64.

${mixTable()}

Measured ${new Date().toISOString()}.`;
console.log(body);
writeSection('Compression and encryption (bench:compress)', body);
