/**
 * sendInParts (src/store/parts.ts): cutting a stream into reused part buffers. The sink here
 * is an in-memory recorder (the S3 side is covered against Swift in s3-store.test.ts); these
 * tests pin the cutting, the bound on buffers in flight, and the failure paths.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { sendInParts, type PartSink } from '../src/store/parts.js';

interface Recorded {
  parts: Map<number, Buffer>;
  single?: Buffer;
  completed?: number;
  maxInFlight: number;
  buffersSeen: Set<ArrayBufferLike>;
}

/** A sink that copies what it gets (the views are reused) and answers after `delayMs`. */
function recorder(opts: { delayMs?: number; failPart?: number } = {}): { sink: PartSink; rec: Recorded } {
  const rec: Recorded = { parts: new Map(), maxInFlight: 0, buffersSeen: new Set() };
  let inFlight = 0;
  const sink: PartSink = {
    part: async (n, bytes) => {
      inFlight++;
      rec.maxInFlight = Math.max(rec.maxInFlight, inFlight);
      rec.buffersSeen.add(bytes.buffer);
      const copy = Buffer.from(bytes);
      await new Promise((r) => setTimeout(r, opts.delayMs ?? 1));
      inFlight--;
      if (n === opts.failPart) throw new Error(`part ${n} refused`);
      rec.parts.set(n, copy);
    },
    single: async (bytes) => {
      rec.single = Buffer.from(bytes);
    },
    complete: async (parts) => {
      rec.completed = parts;
    },
  };
  return { sink, rec };
}

/** A stream of `data` in chunks of odd sizes, so that chunks straddle part boundaries. */
function chunked(data: Buffer, sizes = [7000, 33_000, 1, 65_536]): Readable {
  const chunks: Buffer[] = [];
  for (let pos = 0, i = 0; pos < data.length; i++) {
    const n = sizes[i % sizes.length] ?? 1;
    chunks.push(data.subarray(pos, pos + n));
    pos += n;
  }
  return Readable.from(chunks, { objectMode: false });
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const joined = (rec: Recorded): Buffer => Buffer.concat([...rec.parts.keys()].sort((a, b) => a - b).map((k) => rec.parts.get(k) ?? Buffer.alloc(0)));

describe('sendInParts', () => {
  test('cuts a stream into full parts and a short last one, in order, byte-identical', async () => {
    const data = randomBytes(1_000_000);
    const { sink, rec } = recorder();
    await sendInParts(chunked(data), sink, { partSize: 150_000, buffers: 3, signal: new AbortController().signal });
    assert.equal(rec.completed, 7);
    assert.equal(rec.parts.size, 7);
    for (let n = 1; n <= 6; n++) assert.equal(rec.parts.get(n)?.length, 150_000, `part ${n}`);
    assert.equal(rec.parts.get(7)?.length, 100_000);
    assert.equal(sha(joined(rec)), sha(data));
    assert.equal(rec.single, undefined);
  });

  test('never more than `buffers` parts in flight, and only that many buffers are ever used', async () => {
    const data = randomBytes(2_000_000);
    const { sink, rec } = recorder({ delayMs: 15 });
    await sendInParts(chunked(data), sink, { partSize: 100_000, buffers: 3, signal: new AbortController().signal });
    assert.equal(rec.completed, 20);
    assert.equal(sha(joined(rec)), sha(data));
    assert.ok(rec.maxInFlight <= 3, `max in flight ${rec.maxInFlight}`);
    assert.ok(rec.maxInFlight >= 2, 'parts overlap');
    assert.ok(rec.buffersSeen.size <= 3, `buffers used ${rec.buffersSeen.size}`);
  });

  test('an exact multiple of the part size sends no empty last part', async () => {
    const data = randomBytes(300_000);
    const { sink, rec } = recorder();
    await sendInParts(chunked(data), sink, { partSize: 100_000, buffers: 2, signal: new AbortController().signal });
    assert.equal(rec.completed, 3);
    assert.equal(sha(joined(rec)), sha(data));
  });

  test('a body within one part (or empty) is sent with single()', async () => {
    const data = randomBytes(99_999);
    const a = recorder();
    await sendInParts(chunked(data), a.sink, { partSize: 100_000, buffers: 2, signal: new AbortController().signal });
    assert.equal(a.rec.parts.size, 0);
    assert.equal(a.rec.completed, undefined);
    assert.equal(sha(a.rec.single ?? Buffer.alloc(1)), sha(data));
    const b = recorder();
    await sendInParts(Readable.from([], { objectMode: false }), b.sink, { partSize: 100_000, buffers: 2, signal: new AbortController().signal });
    assert.equal(b.rec.single?.length, 0);
  });

  test('a failing part rejects with its error, after the others settled, and nothing is committed', async () => {
    const data = randomBytes(1_000_000);
    const { sink, rec } = recorder({ delayMs: 5, failPart: 3 });
    const body = chunked(data);
    await assert.rejects(sendInParts(body, sink, { partSize: 100_000, buffers: 3, signal: new AbortController().signal }), /part 3 refused/);
    assert.equal(rec.completed, undefined);
    assert.equal(rec.single, undefined);
    assert.ok(rec.parts.size < 10, 'stopped reading after the failure');
    assert.equal(body.listenerCount('data'), 0, 'listeners removed');
  });

  test('an abort rejects with the reason; reading stops', async () => {
    const ac = new AbortController();
    const body = new PassThrough();
    const { sink, rec } = recorder();
    const done = sendInParts(body, sink, { partSize: 100_000, buffers: 2, signal: ac.signal });
    body.write(randomBytes(250_000));
    setTimeout(() => ac.abort(new Error('shutting down')), 20);
    await assert.rejects(done, /shutting down/);
    assert.equal(rec.completed, undefined);
    const already = new AbortController();
    already.abort(new Error('too late'));
    await assert.rejects(sendInParts(new PassThrough(), sink, { partSize: 100_000, buffers: 2, signal: already.signal }), /too late/);
  });

  test('more parts than allowed is an error before anything is committed', async () => {
    const { sink, rec } = recorder();
    await assert.rejects(
      sendInParts(chunked(randomBytes(500_000)), sink, { partSize: 100_000, buffers: 2, signal: new AbortController().signal, maxParts: 3 }),
      /more than 3 parts of 100000 bytes/,
    );
    assert.equal(rec.completed, undefined);
  });
});
