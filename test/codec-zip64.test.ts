/**
 * The ZIP64 fields of src/codec/zip-writer.ts with sizes and offsets past 4 GiB: as a unit
 * (the trailer for a 6 GiB entry compressed to 5 GiB), and, opt-in because it writes and
 * reads 4 GiB (`ETCDSNAP_TEST_BIG_ZIP=1`, about a minute), a real entry of 4 GiB + 1 MiB + 7
 * bytes checked by `unzip -t`, Python's zipfile and yauzl (extractSnapshotZip).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, describe, it } from 'node:test';
import { zipLocalHeader, zipSingleEntry, zipTrailer } from '../src/codec/zip-writer.js';
import { extractSnapshotZip } from '../src/snapshot/unzip.js';

const GiB = 2 ** 30;
const MiB = 2 ** 20;

describe('ZIP64 trailer', () => {
  it('records sizes and offsets past 4 GiB as 8-byte numbers', () => {
    const name = Buffer.from('etcd-snapshot-node1-1700000000');
    const header = zipLocalHeader(name, new Date(2025, 0, 2, 3, 4, 6));
    assert.equal(header.length, 30 + name.length + 20);
    const compressed = 5 * GiB + 3;
    const uncompressed = 6 * GiB + 5;
    const t = zipTrailer({ name, mtime: new Date(), crc32: 0xdeadbeef, compressedBytes: compressed, uncompressedBytes: uncompressed }, header.length);
    // data descriptor
    assert.equal(t.readUInt32LE(0), 0x08074b50);
    assert.equal(t.readUInt32LE(4), 0xdeadbeef);
    assert.equal(Number(t.readBigUInt64LE(8)), compressed);
    assert.equal(Number(t.readBigUInt64LE(16)), uncompressed);
    // central directory: 32-bit fields maxed, the ZIP64 extra after the 9-byte UT extra
    const cd = 24;
    assert.equal(t.readUInt32LE(cd), 0x02014b50);
    assert.equal(t.readUInt32LE(cd + 20), 0xffffffff);
    assert.equal(t.readUInt32LE(cd + 24), 0xffffffff);
    assert.equal(t.readUInt32LE(cd + 42), 0xffffffff);
    const x = cd + 46 + name.length + 9;
    assert.equal(t.readUInt16LE(x), 0x0001);
    assert.equal(Number(t.readBigUInt64LE(x + 4)), uncompressed);
    assert.equal(Number(t.readBigUInt64LE(x + 12)), compressed);
    assert.equal(Number(t.readBigUInt64LE(x + 20)), 0);
    const cdLength = 46 + name.length + 9 + 28;
    // ZIP64 end of central directory record, locator, end record
    const e64 = cd + cdLength;
    const cdOffset = header.length + compressed + 24;
    assert.equal(t.readUInt32LE(e64), 0x06064b50);
    assert.equal(Number(t.readBigUInt64LE(e64 + 40)), cdLength);
    assert.equal(Number(t.readBigUInt64LE(e64 + 48)), cdOffset);
    assert.equal(t.readUInt32LE(e64 + 56), 0x07064b50);
    assert.equal(Number(t.readBigUInt64LE(e64 + 56 + 8)), cdOffset + cdLength);
    assert.equal(t.readUInt32LE(e64 + 76), 0x06054b50);
    assert.equal(t.length, e64 + 76 + 22);
  });
});

function run(cmd: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const PY_HASH = `
import sys, zipfile, hashlib
z = zipfile.ZipFile(sys.argv[1]); i = z.infolist()[0]; h = hashlib.sha256()
with z.open(i) as f:
    for b in iter(lambda: f.read(1 << 20), b''): h.update(b)
print(i.file_size, h.hexdigest())
`;

describe('a real entry over 4 GiB', { skip: process.env.ETCDSNAP_TEST_BIG_ZIP !== '1' && 'set ETCDSNAP_TEST_BIG_ZIP=1 (writes and reads 4 GiB)' }, () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'codec-zip64-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('unzip -t, Python and yauzl read it back', async () => {
    const size = 4 * GiB + MiB + 7;
    const hash = createHash('sha256');
    async function* blocks(): AsyncGenerator<Buffer> {
      for (let at = 0, i = 0; at < size; i++) {
        const b = Buffer.alloc(Math.min(MiB, size - at));
        b.writeUInt32LE(i, 0); // not all the same
        hash.update(b);
        at += b.length;
        yield b;
      }
    }
    const file = path.join(dir, 'big.zip');
    await pipeline(zipSingleEntry(Readable.from(blocks()), 'etcd-snapshot-node1-1700000000', new Date(), { level: 1 }), createWriteStream(file));
    const sha = hash.digest('hex');

    const t = await run('unzip', ['-tq', file]);
    assert.equal(t.code, 0, t.stdout + t.stderr);
    const py = await run('python3', ['-c', PY_HASH, file]);
    assert.equal(py.code, 0, py.stderr);
    assert.equal(py.stdout.trim(), `${size} ${sha}`);
    const got = await extractSnapshotZip(file, dir);
    try {
      const h = createHash('sha256');
      await pipeline(createReadStream(got.file), h);
      assert.equal(h.digest('hex'), sha);
    } finally {
      await got.remove();
    }
  });
});
