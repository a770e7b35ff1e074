/**
 * src/codec compressors against the real tools: our zip read by `unzip`, Python's zipfile and
 * yauzl (extractSnapshotZip); our gzip read by `gzip`, `gzip`'s read by ours; zstd both ways;
 * damaged and truncated data fail with the right kind; a destroyed zstd stream leaves no
 * child; sniffFormat on real files.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type Duplex, Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { pipeline } from 'node:stream/promises';
import { after, describe, it } from 'node:test';
import zlib from 'node:zlib';
import { DEFAULT_BLOCK_SIZE, ParallelDeflate } from '../src/codec/deflate-parallel.js';
import { createGunzipStream, createGzipStream } from '../src/codec/gzip.js';
import { SNIFF_BYTES, sniffFormat } from '../src/codec/magic.js';
import { zipSingleEntry } from '../src/codec/zip-writer.js';
import { checkZstdAvailable, createZstdCompressStream, createZstdDecompressStream } from '../src/codec/zstd.js';
import { EtcdsnapError } from '../src/errors.js';
import { extractSnapshotZip } from '../src/snapshot/unzip.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'codec-compress-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let seq = 0;
const tmp = (name: string): string => path.join(dir, `${++seq}-${name}`);

/** Deterministic data, half repetitive text, half noise, `n` bytes. */
function data(n: number): Buffer {
  const out = Buffer.alloc(n);
  let s = 0x12345678 + n;
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    out[i] = i % 4096 < 2048 ? (`{"kind":"Pod","metadata":{"name":"web-${i >> 12}"}}`.charCodeAt(i % 44) ?? 32) : s >>> 24;
  }
  return out;
}

/** `buf` as a stream of uneven chunks (so blocks are cut across chunk borders). */
function chunks(buf: Buffer): Readable {
  const parts: Buffer[] = [];
  for (let at = 0, k = 0; at < buf.length; k++) {
    const len = [1000, 65536, 333333, 7][k % 4] ?? 1000;
    parts.push(buf.subarray(at, at + len));
    at += len;
  }
  return Readable.from(parts);
}

interface Ran {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

function run(cmd: string, args: string[], input?: Buffer): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr }));
    child.stdin.end(input);
  });
}

async function toFile(stream: Readable, file: string): Promise<void> {
  await pipeline(stream, createWriteStream(file));
}

async function through(input: Buffer, stream: Duplex): Promise<Buffer> {
  const [, out] = await Promise.all([pipeline(Readable.from([input]), stream), buffer(stream)]);
  return out;
}

async function rejectsKind(p: Promise<unknown>, kind: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => err instanceof EtcdsnapError && err.kind === kind);
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

const PY_ZIP = `
import sys, zipfile, hashlib, json
z = zipfile.ZipFile(sys.argv[1])
i = z.infolist()[0]
print(json.dumps({"bad": z.testzip(), "n": len(z.infolist()), "name": i.filename, "size": i.file_size,
  "sha": hashlib.sha256(z.read(i)).hexdigest(), "mode": i.external_attr >> 16, "system": i.create_system,
  "date": list(i.date_time)}))
`;

describe('ParallelDeflate', () => {
  it('is one raw deflate stream with the CRC-32 and sizes of the data', async () => {
    for (const n of [0, 1, DEFAULT_BLOCK_SIZE - 1, DEFAULT_BLOCK_SIZE, DEFAULT_BLOCK_SIZE + 1, 3 * DEFAULT_BLOCK_SIZE + 5, 3 * DEFAULT_BLOCK_SIZE + 6]) {
      const input = data(n);
      const d = new ParallelDeflate({ level: 3, maxInFlight: 2 });
      // uneven chunks, and the whole input as one chunk (cut into blocks, 2 in flight at most)
      const out = await buffer((n % 2 ? Readable.from([input]) : chunks(input)).pipe(d));
      assert.ok(zlib.inflateRawSync(out).equals(input), `size ${n}`);
      assert.equal(d.crc32, zlib.crc32(input));
      assert.equal(d.uncompressedBytes, n);
      assert.equal(d.compressedBytes, out.length);
    }
  });
});

describe('zipSingleEntry', () => {
  const sizes = [0, 1, DEFAULT_BLOCK_SIZE - 1, DEFAULT_BLOCK_SIZE, DEFAULT_BLOCK_SIZE + 1, 5 * DEFAULT_BLOCK_SIZE + 123];
  for (const n of sizes) {
    it(`${n} bytes: unzip, Python's zipfile and yauzl read it back identical`, async () => {
      const input = data(n);
      const name = 'etcd-snapshot-node1-1700000000';
      const file = tmp('snap.zip');
      const mtime = new Date(2024, 4, 6, 7, 8, 10);
      await toFile(zipSingleEntry(chunks(input), name, mtime, { level: 3 }), file);

      const t = await run('unzip', ['-t', file]);
      assert.equal(t.code, 0, t.stdout.toString() + t.stderr);
      assert.match(t.stdout.toString(), /No errors detected/);
      const p = await run('unzip', ['-p', file, name]);
      assert.equal(p.code, 0, p.stderr);
      assert.ok(p.stdout.equals(input));

      const py = await run('python3', ['-c', PY_ZIP, file]);
      assert.equal(py.code, 0, py.stderr);
      assert.deepEqual(JSON.parse(py.stdout.toString()), {
        bad: null,
        n: 1,
        name,
        size: n,
        sha: sha(input),
        mode: 0o100600,
        system: 3,
        date: [2024, 5, 6, 7, 8, 10],
      });

      const parent = mkdtempSync(path.join(dir, 'x-'));
      const got = await extractSnapshotZip(file, parent);
      try {
        assert.equal(path.basename(got.file), name);
        assert.ok(readFileSync(got.file).equals(input));
      } finally {
        await got.remove();
      }
    });
  }

  it('is ZIP64 throughout (so entries over 4 GiB need no other path): unzip reports it', async () => {
    const file = tmp('z64.zip');
    await toFile(zipSingleEntry(Readable.from([Buffer.from('x')]), 'a', new Date()), file);
    const z = await run('unzip', ['-Zv', file]);
    assert.equal(z.code, 0, z.stderr);
    const text = z.stdout.toString();
    assert.match(text, /ID 0x0001 \(PKWARE 64-bit sizes\)/);
    assert.match(text, /minimum software version required to extract:\s+4\.5/);
    assert.match(text, /file system or operating system of origin:\s+Unix/);
    const bytes = readFileSync(file);
    assert.equal(bytes.readUInt32LE(bytes.length - 22 - 20 - 56), 0x06064b50, 'ZIP64 end of central directory record');
    assert.equal(bytes.readUInt32LE(bytes.length - 22 - 20), 0x07064b50, 'ZIP64 end of central directory locator');
    assert.equal(bytes.readUInt16LE(28), 20, 'local header: ZIP64 extra field');
    assert.equal(bytes.readUInt16LE(30 + 1), 0x0001);
  });

  it('fails when the source fails', async () => {
    const source = new Readable({ read() {} });
    source.push(data(100000));
    const out = zipSingleEntry(source, 'a', new Date());
    const done = toFile(out, tmp('fail.zip'));
    source.destroy(new Error('etcd went away'));
    await assert.rejects(done, /etcd went away/);
  });
});

describe('gzip', () => {
  for (const n of [0, 1, DEFAULT_BLOCK_SIZE, DEFAULT_BLOCK_SIZE + 1, 4 * DEFAULT_BLOCK_SIZE + 9]) {
    it(`${n} bytes: gzip -t and gzip -dc accept ours; ours reads gzip -c`, async () => {
      const input = data(n);
      const file = tmp('s.gz');
      await toFile(chunks(input).pipe(createGzipStream()), file);
      assert.equal((await run('gzip', ['-t', file])).code, 0);
      const d = await run('gzip', ['-dc', file]);
      assert.equal(d.code, 0, d.stderr);
      assert.ok(d.stdout.equals(input));
      assert.ok((await through(readFileSync(file), createGunzipStream())).equals(input));

      const theirs = await run('gzip', ['-c', '-6'], input);
      assert.ok((await through(theirs.stdout, createGunzipStream())).equals(input));
    });
  }

  it('accepts several members, refuses trailing bytes, truncation, damage and nothing', async () => {
    const a = (await run('gzip', ['-c'], Buffer.from('hello '))).stdout;
    const b = (await run('gzip', ['-c'], Buffer.from('world'))).stdout;
    assert.equal((await through(Buffer.concat([a, b]), createGunzipStream())).toString(), 'hello world');
    await rejectsKind(through(Buffer.concat([a, Buffer.alloc(16)]), createGunzipStream()), 'integrity');
    await rejectsKind(through(Buffer.concat([a, Buffer.from('junk')]), createGunzipStream()), 'integrity');
    await rejectsKind(through(Buffer.alloc(0), createGunzipStream()), 'integrity');

    const big = (await run('gzip', ['-c'], data(3 * DEFAULT_BLOCK_SIZE))).stdout;
    await rejectsKind(through(big.subarray(0, big.length - 100), createGunzipStream()), 'integrity');
    const bad = Buffer.from(big);
    bad[Math.floor(bad.length / 2)] ^= 0xff;
    await rejectsKind(through(bad, createGunzipStream()), 'integrity');
  });
});

describe('zstd', () => {
  it('checkZstdAvailable passes here and says how to install when zstd is missing', async () => {
    await checkZstdAvailable();
    const saved = process.env.PATH;
    process.env.PATH = mkdtempSync(path.join(dir, 'empty-path-'));
    try {
      await assert.rejects(
        checkZstdAvailable(),
        (e: unknown) => e instanceof EtcdsnapError && e.kind === 'environment' && /apt-get install zstd/.test(e.message),
      );
      await rejectsKind(through(Buffer.from('x'), createZstdCompressStream()), 'environment');
    } finally {
      process.env.PATH = saved;
    }
  });

  for (const n of [0, 1, 5 * DEFAULT_BLOCK_SIZE + 3]) {
    it(`${n} bytes: zstd -d reads ours, ours reads zstd -c`, async () => {
      const input = data(n);
      const file = tmp('s.zst');
      await toFile(chunks(input).pipe(createZstdCompressStream({ level: 1 })), file);
      const d = await run('zstd', ['-q', '-d', '-c', file]);
      assert.equal(d.code, 0, d.stderr);
      assert.ok(d.stdout.equals(input));
      const theirs = await run('zstd', ['-q', '-c', '-3'], input);
      assert.ok((await through(theirs.stdout, createZstdDecompressStream())).equals(input));
    });
  }

  it('truncated, damaged and non-zstd data fail as integrity', async () => {
    const z = (await run('zstd', ['-q', '-c'], data(2 * DEFAULT_BLOCK_SIZE))).stdout;
    await rejectsKind(through(z.subarray(0, z.length - 50), createZstdDecompressStream()), 'integrity');
    const bad = Buffer.from(z);
    bad[Math.floor(bad.length / 2)] ^= 0xff;
    bad[Math.floor(bad.length / 2) + 1] ^= 0x5a;
    await rejectsKind(through(bad, createZstdDecompressStream()), 'integrity');
    await rejectsKind(through(data(100000), createZstdDecompressStream()), 'integrity');
  });

  it('destroying the stream midway kills the child (no process left)', async () => {
    const z = createZstdCompressStream();
    const pid = z.pid;
    assert.ok(pid !== undefined);
    z.write(data(DEFAULT_BLOCK_SIZE));
    const closed = new Promise<void>((resolve) => z.once('close', () => resolve()));
    z.destroy();
    await closed;
    assert.throws(
      () => process.kill(pid, 0),
      (e: unknown) => (e as NodeJS.ErrnoException).code === 'ESRCH',
    );
  });
});

describe('sniffFormat', () => {
  it('tells each real format and nothing else', async () => {
    const head = async (file: string): Promise<Uint8Array> => {
      const buf = readFileSync(file);
      return buf.subarray(0, SNIFF_BYTES);
    };
    const input = data(5000);
    const plain = tmp('plain.db');
    // the first page of a bbolt file: page header (16 bytes), then meta magic and version
    const bolt = Buffer.alloc(4096 * 4 + 32);
    bolt.writeUInt16LE(0x04, 8);
    bolt.writeUInt32LE(0xed0cdaed, 16);
    bolt.writeUInt32LE(2, 20);
    writeFileSync(plain, bolt);
    assert.equal(sniffFormat(await head(plain)), 'plain');

    const zip = tmp('s.zip');
    await toFile(zipSingleEntry(Readable.from([input]), 'a', new Date()), zip);
    assert.equal(sniffFormat(await head(zip)), 'zip');
    const cliZip = tmp('cli.zip');
    assert.equal((await run('zip', ['-q', '-j', cliZip, plain])).code, 0);
    assert.equal(sniffFormat(await head(cliZip)), 'zip');

    const gz = tmp('s.gz');
    writeFileSync(gz, (await run('gzip', ['-c'], input)).stdout);
    assert.equal(sniffFormat(await head(gz)), 'gzip');
    const zst = tmp('s.zst');
    writeFileSync(zst, (await run('zstd', ['-q', '-c'], input)).stdout);
    assert.equal(sniffFormat(await head(zst)), 'zstd');

    const key = tmp('key.txt');
    assert.equal((await run('age-keygen', ['-o', key])).code, 0);
    const recipient = /public key: (age1\S+)/.exec(readFileSync(key, 'utf8'))?.[1];
    assert.ok(recipient);
    const aged = await run('age', ['-r', recipient], input);
    assert.equal(aged.code, 0, aged.stderr);
    assert.equal(sniffFormat(aged.stdout.subarray(0, SNIFF_BYTES)), 'age');

    for (const junk of [Buffer.alloc(0), Buffer.from('PK'), Buffer.alloc(SNIFF_BYTES), data(SNIFF_BYTES), Buffer.from('age-encryption.org/v2\n')]) {
      assert.equal(sniffFormat(junk), undefined, junk.toString('hex'));
    }
    assert.equal(sniffFormat(await buffer(createReadStream(plain, { end: 15 }))), undefined);
  });
});
