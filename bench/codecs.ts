/**
 * Compressor speed and ratio on Kubernetes-like etcd data (`npm run bench:codecs`): our
 * parallel deflate at levels 1, 3, 6 with 1 MiB blocks and 2 or 4 blocks in flight, the
 * single-threaded zlib stream yazl used, the `zip -6` and `gzip -6` CLIs, and `zstd -1/-3 -T0`.
 * The data is generated (seeded, reproducible): 4 KiB bbolt-like pages holding `/registry/...`
 * keys with JSON objects (repeated field names, managedFields, uids, timestamps), k8s
 * protobuf-like values, Secrets with random base64 payloads, and some free (zero) pages.
 * The chosen defaults are in src/codec/levels.ts, with the table this script printed.
 */
import { createReadStream, createWriteStream, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { ParallelDeflate } from '../src/codec/deflate-parallel.js';
import { createZstdCompressStream } from '../src/codec/zstd.js';
import { zipSingleEntry } from '../src/codec/zip-writer.js';
import { machine, timeCommand } from './lib.js';

const MiB = 1024 * 1024;
const SIZE_MIB = Number(process.env.BENCH_COMPRESS_MIB ?? 256);
/** A real file to measure instead of the generated data (a real snapshot, say). */
const INPUT = process.env.BENCH_COMPRESS_FILE;
/** Runs of each measurement; the best is kept (the machine may be shared). */
const RUNS = Number(process.env.BENCH_COMPRESS_RUNS ?? 2);

async function best(measure: () => Promise<Row>): Promise<Row> {
  let top: Row | undefined;
  for (let i = 0; i < RUNS; i++) {
    const r = await measure();
    if (top === undefined || r.mbps > top.mbps) top = r;
  }
  return top as Row;
}

/** xorshift32: reproducible data without a dependency. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 0x100000000;
  };
}

const RESOURCES = ['pods', 'configmaps', 'secrets', 'services/specs', 'events', 'leases', 'deployments', 'replicasets', 'endpointslices'];
const NAMESPACES = ['default', 'kube-system', 'monitoring', 'ingress-nginx', 'cert-manager', 'app-prod', 'app-staging'];
const WORDS = ['api', 'web', 'worker', 'redis', 'postgres', 'nginx', 'coredns', 'metrics', 'exporter', 'gateway', 'auth', 'billing'];

function generate(bytes: number): Buffer {
  const r = rng(14);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
  const hex = (n: number): string => Array.from({ length: n }, () => Math.floor(r() * 16).toString(16)).join('');
  const b64 = (n: number): string => Buffer.from(Array.from({ length: n }, () => Math.floor(r() * 256))).toString('base64');
  const uid = (): string => `${hex(8)}-${hex(4)}-${hex(4)}-${hex(4)}-${hex(12)}`;
  const record = (): string => {
    const res = pick(RESOURCES);
    const ns = pick(NAMESPACES);
    const name = `${pick(WORDS)}-${pick(WORDS)}-${hex(10)}-${hex(5)}`;
    const meta = {
      name,
      namespace: ns,
      uid: uid(),
      resourceVersion: String(Math.floor(r() * 9e6)),
      creationTimestamp: `2026-0${1 + Math.floor(r() * 9)}-1${Math.floor(r() * 9)}T0${Math.floor(r() * 9)}:2${Math.floor(r() * 9)}:00Z`,
      labels: { app: pick(WORDS), 'app.kubernetes.io/part-of': pick(WORDS), 'pod-template-hash': hex(10) },
      managedFields: [
        { manager: 'kube-controller-manager', operation: 'Update', apiVersion: 'v1', fieldsType: 'FieldsV1', fieldsV1: { 'f:metadata': { 'f:labels': {} } } },
      ],
    };
    let value: string;
    if (res === 'secrets')
      value = JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: meta, type: 'Opaque', data: { token: b64(64 + Math.floor(r() * 1500)) } });
    else if (r() < 0.5) value = `k8s\u0000\n\u0002v1\u0012\u0003Pod\u0012${JSON.stringify(meta).replace(/[{}":,]/g, '\u0012')}\u001a${hex(40)}`;
    else
      value = JSON.stringify({
        apiVersion: 'v1',
        kind: res,
        metadata: meta,
        spec: { containers: [{ name: pick(WORDS), image: `registry.k8s.io/${pick(WORDS)}:v1.${Math.floor(r() * 30)}.0` }] },
      });
    return `/registry/${res}/${ns}/${name}\u0000${value}\u0000`;
  };
  const out = Buffer.alloc(bytes);
  for (let page = 0; page * 4096 < bytes; page++) {
    const at = page * 4096;
    if (r() < 0.08) continue; // a free page: zeros
    let text = '';
    while (text.length < 4096) text += record();
    out.write(text.slice(0, Math.min(4096, bytes - at)), at, 'latin1');
  }
  return out;
}

interface Row {
  what: string;
  /** MiB of input per second of wall time. */
  mbps: number;
  /** MiB of input per CPU-second (user + system, all threads): what the data costs, whatever the load. */
  cpuMbps: number;
  ratio: number;
}

const cpuSeconds = (u: NodeJS.CpuUsage): number => (u.user + u.system) / 1e6;

/** Bytes counted, nothing kept. */
function counter(): { sink: Writable; bytes: () => number } {
  let n = 0;
  const sink = new Writable({
    write: (chunk: Buffer, _e, cb) => {
      n += chunk.length;
      cb();
    },
  });
  return { sink, bytes: () => n };
}

async function timeStream(what: string, file: string, make: () => NodeJS.ReadWriteStream): Promise<Row> {
  const size = statSync(file).size;
  const { sink, bytes } = counter();
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  await pipeline(createReadStream(file, { highWaterMark: MiB }), make(), sink);
  const s = (performance.now() - t0) / 1000;
  return { what, mbps: size / MiB / s, cpuMbps: size / MiB / cpuSeconds(process.cpuUsage(c0)), ratio: bytes() / size };
}

async function timeCli(what: string, file: string, cmd: string, args: string[], out: string): Promise<Row> {
  const size = statSync(file).size;
  rmSync(out, { force: true });
  const t = await timeCommand('bash', ['-c', `TIMEFORMAT='%R %U %S'; time (${cmd} ${args.join(' ')})`]);
  if (t.code !== 0) throw new Error(`${what}: ${t.stderr}`);
  const [real = 0, user = 0, sys = 0] = (t.stderr.trim().split('\n').pop() ?? '').split(' ').map(Number);
  return { what, mbps: size / MiB / real, cpuMbps: size / MiB / (user + sys), ratio: statSync(out).size / size };
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-compress-'));
try {
  const file = INPUT ?? path.join(dir, 'snapshot.db');
  if (INPUT === undefined) writeFileSync(file, generate(SIZE_MIB * MiB));
  const rows: Row[] = [];
  rows.push(await best(() => timeStream('zlib deflateRaw -6, 1 thread (yazl)', file, () => zlib.createDeflateRaw({ level: 6 }))));
  for (const level of [1, 3, 4, 6]) {
    for (const maxInFlight of [2, 4]) {
      rows.push(await best(() => timeStream(`ParallelDeflate -${level}, 1 MiB x ${maxInFlight}`, file, () => new ParallelDeflate({ level, maxInFlight }))));
    }
  }
  for (const level of [1, 3, 4, 6]) {
    const out = path.join(dir, `ours-${level}.zip`);
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    await pipeline(zipSingleEntry(createReadStream(file), 'snapshot.db', new Date(), { level }), createWriteStream(out));
    const s = (performance.now() - t0) / 1000;
    const cpuMbps = statSync(file).size / MiB / cpuSeconds(process.cpuUsage(c0));
    rows.push({
      what: `zipSingleEntry level ${level} (to disk)`,
      mbps: statSync(file).size / MiB / s,
      cpuMbps,
      ratio: statSync(out).size / statSync(file).size,
    });
  }
  rows.push(await best(() => timeCli('zip -6 (CLI)', file, 'zip', ['-6', '-q', '-j', path.join(dir, 'cli.zip'), file], path.join(dir, 'cli.zip'))));
  rows.push(await best(() => timeCli('zip -1 (CLI)', file, 'zip', ['-1', '-q', '-j', path.join(dir, 'cli1.zip'), file], path.join(dir, 'cli1.zip'))));
  rows.push(await best(() => timeCli('gzip -6 (CLI)', file, 'gzip', ['-6', '-c', file, '>', path.join(dir, 'cli.gz')], path.join(dir, 'cli.gz'))));
  for (const level of [1, 3]) {
    const out = path.join(dir, `cli-${level}.zst`);
    rows.push(await best(() => timeCli(`zstd -${level} -T0 (CLI)`, file, 'zstd', ['-q', '-T0', `-${level}`, '-c', file, '>', out], out)));
    rows.push(await best(() => timeStream(`zstd -${level} -T0 (our stream; CPU of node only)`, file, () => createZstdCompressStream({ level }))));
  }
  const what =
    INPUT === undefined ? `${SIZE_MIB} MiB of generated Kubernetes-like etcd data` : `${(statSync(file).size / MiB).toFixed(0)} MiB of ${path.basename(file)}`;
  console.log(`${what}, best of ${RUNS}; ${machine()}; load average ${os.loadavg()[0]?.toFixed(1)}\n`);
  console.log('| compressor | MiB/s (wall) | MiB per CPU-second | compressed/original |\n|---|---:|---:|---:|');
  for (const r of rows) console.log(`| ${r.what} | ${r.mbps.toFixed(0)} | ${r.cpuMbps.toFixed(0)} | ${(r.ratio * 100).toFixed(1)} % |`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
