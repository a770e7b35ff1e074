/**
 * The streaming integrity checks of src/snapshot/verify.ts: the sha256 trailer of an etcd
 * snapshot (TrailerVerifier, verifySnapshotFile), and the counting and expected-hash
 * pass-throughs (HashCounter, ExpectSha256). Pure streams, plus one temp file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { Readable, type Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { EtcdsnapError } from '../src/errors.js';
import { ExpectSha256, HashCounter, TRAILER_BYTES, TrailerVerifier, verifySnapshotFile } from '../src/snapshot/verify.js';
import { tempDir } from './helpers/server.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
/** A database of `size` random bytes followed by its sha256, as etcd writes a snapshot. */
const snapshot = (size: number): Buffer => {
  const db = randomBytes(size);
  return Buffer.concat([db, createHash('sha256').update(db).digest()]);
};
/** Runs `bytes` through `t` in chunks of the given sizes (cycled); resolves with what came out. */
async function through(t: Transform, bytes: Buffer, sizes: number[]): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for (let pos = 0, i = 0; pos < bytes.length; i++) {
    const n = sizes[i % sizes.length] ?? 1;
    chunks.push(bytes.subarray(pos, pos + n));
    pos += n;
  }
  const out: Buffer[] = [];
  await pipeline(
    Readable.from(chunks),
    t,
    new Writable({
      write: (c: Buffer, _e, cb) => {
        out.push(c);
        cb();
      },
    }),
  );
  return Buffer.concat(out);
}
const integrity = (re: RegExp) => (e: unknown) => e instanceof EtcdsnapError && e.kind === 'integrity' && re.test(e.message);

test('the trailer check gives the same hashes whatever the chunk sizes around the 32-byte trailer', async () => {
  assert.equal(TRAILER_BYTES, 32);
  const good = snapshot(1024);
  for (const sizes of [[1], [31], [32], [33], [31, 1], [5, 40, 2, 64], [1000, 1, 1, 1, 1], [1056], [1024, 32], [1023, 33], [1025, 31]]) {
    const v = new TrailerVerifier();
    const out = await through(v, good, sizes);
    assert.deepEqual(out, good, `bytes pass unchanged (${sizes.join(',')})`);
    assert.equal(v.size, 1056);
    assert.equal(v.dbSha256, sha(good.subarray(0, 1024)), `db hash (${sizes.join(',')})`);
    assert.equal(v.streamSha256, sha(good), `stream hash (${sizes.join(',')})`);
  }
});

test('the trailer check: an empty database (32 bytes) is a snapshot; sizes other than 512n+32 and wrong trailers are not', async () => {
  const empty = createHash('sha256').digest();
  const v = new TrailerVerifier();
  await through(v, empty, [7]);
  assert.equal(v.dbSha256, empty.toString('hex'));
  assert.equal(v.streamSha256, sha(empty));
  const good = snapshot(512);
  for (const size of [0, 31, 33, 512, 543]) {
    const t = new TrailerVerifier();
    await assert.rejects(
      through(t, good.subarray(0, size), [100]),
      integrity(new RegExp(`^snapshot has no sha256 trailer \\(size ${size} is not 512\\*n\\+32\\): it is truncated or not an etcd snapshot$`)),
      `size ${size}`,
    );
    assert.equal(t.dbSha256, undefined);
  }
  for (const at of [0, 511, 512, 543]) {
    const bad = Buffer.from(good);
    bad[at] = (bad[at] ?? 0) ^ 0x80;
    const t = new TrailerVerifier();
    await assert.rejects(through(t, bad, [33]), integrity(/^snapshot sha256 trailer does not match its content: the file is corrupt$/), `byte ${at}`);
    assert.equal(t.dbSha256, undefined, 'no hash of a corrupt stream');
    assert.equal(t.streamSha256, undefined);
  }
});

test('HashCounter counts and hashes what passes; ExpectSha256 fails the stream unless the hash is the expected one', async () => {
  const bytes = randomBytes(3000);
  const h = new HashCounter();
  assert.equal(h.sha256, undefined);
  assert.deepEqual(await through(h, bytes, [1000, 7]), bytes);
  assert.equal(h.size, 3000);
  assert.equal(h.sha256, sha(bytes));
  const ok = new ExpectSha256(sha(bytes), 'the file');
  assert.deepEqual(await through(ok, bytes, [500]), bytes);
  assert.equal(ok.sha256, sha(bytes));
  const unchecked = new ExpectSha256(undefined, 'the file');
  await through(unchecked, bytes, [500]);
  assert.equal(unchecked.size, 3000);
  await assert.rejects(
    through(new ExpectSha256(sha(Buffer.from('x')), 'local copy x'), bytes, [500]),
    integrity(/^local copy x no longer matches its recorded sha256$/),
  );
  await assert.rejects(through(new ExpectSha256('', 'y'), Buffer.alloc(0), [1]), integrity(/^y no longer/), "'' matches no content, not even none");
});

test('verifySnapshotFile reads a file through the trailer check', async () => {
  const dir = tempDir();
  const good = path.join(dir, 'good');
  writeFileSync(good, snapshot(2048));
  assert.deepEqual(await verifySnapshotFile(good), { size: 2080 });
  const bad = path.join(dir, 'bad');
  writeFileSync(bad, snapshot(2048).subarray(0, 2079));
  await assert.rejects(verifySnapshotFile(bad), integrity(/no sha256 trailer \(size 2079/));
  // larger than the read and transform buffers: every byte is read through, to the trailer
  const large = path.join(dir, 'large');
  const big = snapshot(3 * 1024 * 1024);
  writeFileSync(large, big);
  assert.deepEqual(await verifySnapshotFile(large), { size: 3 * 1024 * 1024 + 32 });
  big[big.length - 1] = (big[big.length - 1] ?? 0) ^ 1;
  writeFileSync(large, big);
  await assert.rejects(verifySnapshotFile(large), integrity(/does not match/));
});
