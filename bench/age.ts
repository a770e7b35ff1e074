/**
 * `npm run bench:age`: MB/s of src/codec/age.ts's streams on BENCH_AGE_MIB (default 256) MiB of
 * random data fed in 64 KiB writes, against a bare loop of Node's ChaCha20-Poly1305 over the same
 * bytes (the ceiling; on a shared machine it shows how loaded the machine was). Medians of
 * BENCH_RUNS (default 5) runs; wall time and CPU time (user + system of this process). Prints only:
 * it writes no section of BENCHMARKS.md.
 */
import { execFileSync } from 'node:child_process';
import { createCipheriv, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable, type Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createAgeDecryptStream, createAgeEncryptStream, readIdentityFile } from '../src/codec/age.js';
import { machine, median } from './lib.js';

const MIB = Number(process.env.BENCH_AGE_MIB ?? 256);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const PIECE = 64 * 1024;

interface Rate {
  wall: number;
  cpu: number;
}

/** MiB/s of `work`, by wall clock and by this process's CPU time. */
async function rate(work: () => Promise<void>): Promise<Rate> {
  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  await work();
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const c = process.cpuUsage(c0);
  return { wall: MIB / wall, cpu: MIB / ((c.user + c.system) / 1e6) };
}

function* slices(data: Buffer): Generator<Buffer> {
  for (let i = 0; i < data.length; i += PIECE) yield data.subarray(i, i + PIECE);
}

const sink = (out?: Buffer[]): Writable =>
  new Writable({
    highWaterMark: 1 << 20,
    write(chunk: Buffer, _e, done) {
      out?.push(chunk);
      done();
    },
  });

const run = (input: Buffer, through: Transform, out?: Buffer[]): Promise<void> => pipeline(Readable.from(slices(input)), through, sink(out));

const dir = mkdtempSync(path.join(os.tmpdir(), 'etcdsnap-bench-age-'));
try {
  execFileSync('age-keygen', ['-o', path.join(dir, 'key.txt')], { stdio: 'ignore' });
  const ids = await readIdentityFile(path.join(dir, 'key.txt'));
  const plain = randomBytes(MIB * 1024 * 1024);
  const encrypted: Buffer[] = [];
  await run(plain, await createAgeEncryptStream(ids.recipients), encrypted);
  const file = Buffer.concat(encrypted);
  encrypted.length = 0;
  const results: Record<'cipher' | 'encrypt' | 'decrypt', Rate[]> = { cipher: [], encrypt: [], decrypt: [] };
  for (let i = 0; i < RUNS; i++) {
    results.cipher.push(
      await rate(async () => {
        const key = randomBytes(32);
        for (const piece of slices(plain)) {
          const c = createCipheriv('chacha20-poly1305', key, Buffer.alloc(12), { authTagLength: 16 });
          c.update(piece);
          c.final();
          c.getAuthTag();
        }
      }),
    );
    results.encrypt.push(await rate(async () => run(plain, await createAgeEncryptStream(ids.recipients))));
    results.decrypt.push(await rate(() => run(file, createAgeDecryptStream(ids))));
  }
  console.log(
    `${machine()}; load average ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}`,
  );
  console.log(`${MIB} MiB in ${PIECE / 1024} KiB writes, median of ${RUNS} runs (MiB/s, wall / CPU):`);
  for (const [name, rates] of Object.entries(results)) {
    console.log(`  ${name.padEnd(8)} ${median(rates.map((r) => r.wall)).toFixed(0)} / ${median(rates.map((r) => r.cpu)).toFixed(0)}`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
