/**
 * sendInParts (src/store/parts.ts): cutting a stream into reused part buffers. The sink here
 * is an in-memory recorder (the S3 side is covered against Swift in s3-store.test.ts); these
 * tests pin the cutting, the bound on buffers in flight, and the failure paths.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { getEventListeners } from 'node:events';
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
  // first in the file: the pool of spare buffers is still empty here
  test('tiny parts (16 bytes) are cut and sent like any other', async () => {
    const data = randomBytes(100);
    const { sink, rec } = recorder();
    await sendInParts(chunked(data, [3, 40, 1]), sink, { partSize: 16, buffers: 2, signal: new AbortController().signal });
    assert.equal(rec.completed, 7);
    assert.equal(rec.parts.get(7)?.length, 4);
    assert.equal(sha(joined(rec)), sha(data));
  });

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

interface Slow {
  sink: PartSink;
  parts: Map<number, Buffer>;
  buffers: Set<ArrayBufferLike>;
  /** parts whose promise settled, in order */
  settled: number[];
  maxInFlight: number;
  single?: Buffer;
  completed?: number;
}

/**
 * A sink that reads each part only when it answers (the contract allows reading the view
 * until the promise settles), so two parts sharing a buffer show up as wrong bytes.
 * `delay(n)` is part n's time in ms; `fail` maps a part (or 'single'/'complete') to an error.
 */
function slowSink(opts: { delay?: (n: number) => number; fail?: Map<number | 'single' | 'complete', string> } = {}): Slow {
  const s: Slow = { parts: new Map(), buffers: new Set(), settled: [], maxInFlight: 0, sink: undefined as unknown as PartSink };
  let inFlight = 0;
  s.sink = {
    part: async (n, bytes) => {
      inFlight++;
      s.maxInFlight = Math.max(s.maxInFlight, inFlight);
      s.buffers.add(bytes.buffer);
      await new Promise((r) => setTimeout(r, opts.delay?.(n) ?? 5));
      inFlight--;
      s.settled.push(n);
      const err = opts.fail?.get(n);
      if (err) throw new Error(err);
      s.parts.set(n, Buffer.from(bytes));
    },
    single: async (bytes) => {
      await new Promise((r) => setTimeout(r, 2));
      const err = opts.fail?.get('single');
      if (err) throw new Error(err);
      s.single = Buffer.from(bytes);
    },
    complete: async (parts) => {
      await new Promise((r) => setTimeout(r, 2));
      const err = opts.fail?.get('complete');
      if (err) throw new Error(err);
      s.completed = parts;
    },
  };
  return s;
}

const slowJoined = (s: Slow): Buffer => Buffer.concat([...s.parts.keys()].sort((a, b) => a - b).map((k) => s.parts.get(k) ?? Buffer.alloc(0)));
const sig = (): AbortSignal => new AbortController().signal;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Sends `data` as one chunk; resolves with the sink's record. */
async function sendOne(data: Buffer, partSize: number, buffers: number, s = slowSink()): Promise<Slow> {
  const body = new PassThrough();
  const done = sendInParts(body, s.sink, { partSize, buffers, signal: sig() });
  body.end(data);
  await done;
  return s;
}

describe('sendInParts: buffers', () => {
  test('uses exactly `buffers` buffers when the sink is slower than the stream', async () => {
    const size = 10_007;
    const data = randomBytes(size * 8);
    const s = await sendOne(data, size, 4, slowSink({ delay: () => 20 }));
    assert.equal(s.maxInFlight, 4);
    assert.equal(s.buffers.size, 4);
    assert.equal(s.completed, 8);
    assert.equal(sha(slowJoined(s)), sha(data));
    const three = await sendOne(data, 10_009, 3, slowSink({ delay: () => 20 }));
    assert.equal(three.maxInFlight, 3);
    assert.equal(sha(slowJoined(three)), sha(data));
  });

  test('fewer than 2 buffers means 2 (one to fill while one is sent)', async () => {
    for (const buffers of [1, 0, -3]) {
      const data = randomBytes(10_011 * 5 + 17);
      const s = await sendOne(data, 10_011, buffers, slowSink({ delay: () => 15 }));
      assert.equal(s.maxInFlight, 2, `buffers ${buffers}`);
      assert.equal(s.completed, 6);
      assert.equal(sha(slowJoined(s)), sha(data));
    }
  });

  test('the buffers of an upload are reused by the next upload of the same part size', async () => {
    const size = 10_013;
    const a = await sendOne(randomBytes(size * 8), size, 4, slowSink({ delay: () => 20 }));
    assert.equal(a.buffers.size, 4);
    // four reused buffers in flight together: none is handed out twice
    const data = randomBytes(size * 8);
    const b = await sendOne(data, size, 4, slowSink({ delay: () => 20 }));
    assert.deepEqual([...b.buffers].filter((x) => a.buffers.has(x)).length, 4);
    assert.equal(sha(slowJoined(b)), sha(data));
    // a body within one part reuses one of them too
    let seen: ArrayBufferLike | undefined;
    const body = new PassThrough();
    const done = sendInParts(
      body,
      {
        part: async () => {},
        single: async (bytes) => {
          seen = bytes.buffer;
        },
        complete: async () => {},
      },
      { partSize: size, buffers: 2, signal: sig() },
    );
    body.end(randomBytes(100));
    await done;
    assert.ok(seen && a.buffers.has(seen), 'single() got a reused buffer');
  });

  test('at most 4 buffers are kept between uploads, the most recent ones', async () => {
    const p = 10_019;
    const a = await sendOne(randomBytes(p * 8), p, 4, slowSink({ delay: () => 20 }));
    assert.equal(a.buffers.size, 4);
    // one buffer of another size pushes out the oldest of a's
    await sendOne(randomBytes(50), 10_021, 2);
    const c = await sendOne(randomBytes(p * 8), p, 4, slowSink({ delay: () => 20 }));
    assert.equal([...c.buffers].filter((x) => a.buffers.has(x)).length, 3);
  });

  test('a failed upload hands its buffers back once: the next upload gets distinct ones', async () => {
    const p = 10_031;
    const s = slowSink({ fail: new Map([[1, 'part 1 refused']]) });
    const body = new PassThrough();
    const failed = sendInParts(body, s.sink, { partSize: p, buffers: 2, signal: sig() });
    body.write(randomBytes(p + p / 2 + 1));
    await assert.rejects(failed, /part 1 refused/);
    const data = randomBytes(p * 8);
    const next = await sendOne(data, p, 4, slowSink({ delay: () => 20 }));
    assert.equal(next.buffers.size, 4);
    assert.equal(sha(slowJoined(next)), sha(data));
  });
});

describe('sendInParts: the end and the part limit', () => {
  test('exactly `maxParts` parts is allowed', async () => {
    const data = randomBytes(30_000);
    const s = await sendOne(data, 10_000, 4, slowSink());
    assert.equal(s.completed, 3);
    const limited = slowSink();
    const body = new PassThrough();
    const done = sendInParts(body, limited.sink, { partSize: 10_000, buffers: 4, signal: sig(), maxParts: 3 });
    body.end(data);
    await done;
    assert.equal(limited.completed, 3);
    assert.equal(sha(slowJoined(limited)), sha(data));
  });

  test('a last part over the limit, with nothing else in flight, commits nothing', async () => {
    const s = slowSink();
    const body = new PassThrough();
    const done = sendInParts(body, s.sink, { partSize: 10_000, buffers: 4, signal: sig(), maxParts: 3 });
    body.write(randomBytes(30_000));
    await sleep(40);
    assert.equal(s.parts.size, 3);
    body.end(randomBytes(500));
    await assert.rejects(done, /more than 3 parts/);
    await sleep(10);
    assert.equal(s.completed, undefined);
    assert.ok(body.isPaused(), 'left paused');
  });

  test('an exact multiple with a free buffer at the end sends no empty part', async () => {
    const data = randomBytes(30_000);
    const s = await sendOne(data, 10_000, 8, slowSink());
    assert.equal(s.completed, 3);
    assert.equal(s.parts.size, 3);
    assert.equal(sha(slowJoined(s)), sha(data));
  });

  test('a part that answers while the next one is half full keeps what was copied', async () => {
    const data = randomBytes(25_000);
    const s = slowSink({ delay: () => 2 });
    const body = new PassThrough();
    const done = sendInParts(body, s.sink, { partSize: 10_000, buffers: 2, signal: sig() });
    body.write(data.subarray(0, 15_000));
    await sleep(30);
    assert.equal(s.parts.size, 1);
    body.end(data.subarray(15_000));
    await done;
    assert.equal(s.completed, 3);
    assert.equal(sha(slowJoined(s)), sha(data));
  });

  test('a chunk of many parts waits for buffers, and the chunks after it are not lost', async () => {
    const data = randomBytes(10_000 * 7 + 1234);
    const s = slowSink({ delay: () => 10 });
    const body = new PassThrough();
    const done = sendInParts(body, s.sink, { partSize: 10_000, buffers: 2, signal: sig() });
    body.write(data.subarray(0, 50_000));
    body.write(data.subarray(50_000, 60_000));
    body.write(data.subarray(60_000, 65_000));
    body.end(data.subarray(65_000));
    await done;
    assert.equal(s.completed, 8);
    assert.equal(sha(slowJoined(s)), sha(data));
  });
});

describe('sendInParts: failures', () => {
  test('a failing single() rejects with its error and nothing else is called', async () => {
    const s = slowSink({ fail: new Map([['single', 'single refused']]) });
    const body = new PassThrough();
    const done = sendInParts(body, s.sink, { partSize: 10_000, buffers: 2, signal: sig() });
    body.end(randomBytes(100));
    await assert.rejects(done, /single refused/);
    assert.equal(s.parts.size, 0);
    assert.equal(s.completed, undefined);
  });

  test('a failing complete() rejects with its error', async () => {
    const s = slowSink({ fail: new Map([['complete', 'complete refused']]) });
    const body = new PassThrough();
    const done = sendInParts(body, s.sink, { partSize: 10_000, buffers: 2, signal: sig() });
    body.end(randomBytes(25_000));
    await assert.rejects(done, /complete refused/);
    assert.equal(s.parts.size, 3);
  });

  test('the first failure is the one reported, once every part in flight settled', async () => {
    const s = slowSink({
      delay: (n) => (n === 1 ? 5 : 40),
      fail: new Map([
        [1, 'part 1 refused'],
        [2, 'part 2 refused'],
      ]),
    });
    const ok = slowSink({ delay: (n) => (n === 1 ? 5 : 40), fail: new Map([[1, 'part 1 refused']]) });
    for (const sink of [s, ok]) {
      const body = new PassThrough();
      const done = sendInParts(body, sink.sink, { partSize: 10_000, buffers: 2, signal: sig() });
      body.write(randomBytes(25_000));
      await assert.rejects(done, /part 1 refused/);
      assert.deepEqual(sink.settled, [1, 2], 'part 2 settled before the rejection');
      assert.ok(body.isPaused(), 'left paused');
    }
  });

  test('our listeners are gone after success and after failure', async () => {
    const cases: Array<{ size: number; fail?: Map<number | 'single' | 'complete', string> }> = [
      { size: 100 },
      { size: 25_000 },
      { size: 100, fail: new Map([['single', 'no']]) },
      { size: 25_000, fail: new Map([['complete', 'no']]) },
      { size: 25_000, fail: new Map([[2, 'no']]) },
    ];
    for (const c of cases) {
      const ac = new AbortController();
      const body = new PassThrough();
      const before = { data: body.listenerCount('data'), end: body.listenerCount('end') };
      const s = slowSink(c.fail ? { fail: c.fail } : {});
      const done = sendInParts(body, s.sink, { partSize: 10_000, buffers: 2, signal: ac.signal });
      body.end(randomBytes(c.size));
      if (c.fail) await assert.rejects(done);
      else await done;
      const what = `${c.size} ${c.fail ? 'failing' : 'ok'}`;
      assert.equal(body.listenerCount('data'), before.data, `data: ${what}`);
      assert.equal(body.listenerCount('end'), before.end, `end: ${what}`);
      assert.equal(getEventListeners(ac.signal, 'abort').length, 0, `abort: ${what}`);
    }
    // and after an abort
    const ac = new AbortController();
    const body = new PassThrough();
    const done = sendInParts(body, slowSink().sink, { partSize: 10_000, buffers: 2, signal: ac.signal });
    body.write(randomBytes(100));
    ac.abort(new Error('stop'));
    await assert.rejects(done, /stop/);
    assert.equal(body.listenerCount('end'), 0);
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
  });
});
