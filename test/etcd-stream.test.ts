/**
 * The Snapshot call over node:http2 (src/etcd/snapshot-stream.ts): the decoder of gRPC
 * frames and SnapshotResponse messages on crafted bytes, then the stream against a real
 * etcd (through a real etcdsnap server's member).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { SnapshotBlobDecoder, EtcdSnapshotStream } from '../src/etcd/snapshot-stream.js';
import { TrailerVerifier } from '../src/snapshot/verify.js';
import { EtcdsnapError } from '../src/errors.js';
import { tlsPaths } from '../src/etcd/tls.js';
import { startReady, killStarted, fillEtcd, type ServerProcess } from './helpers/server.js';

after(() => killStarted());

function varint(n: number): Buffer {
  const out: number[] = [];
  let v = n;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return Buffer.from(out);
}
const field = (num: number, wire: number): Buffer => varint(num * 8 + wire);
const bytesField = (num: number, b: Buffer): Buffer => Buffer.concat([field(num, 2), varint(b.length), b]);

/** A SnapshotResponse like etcd's: header (nested message), remaining_bytes, blob. */
function message(blob: Buffer, remaining: number): Buffer {
  const header = Buffer.concat([field(1, 0), varint(12345678901), field(4, 0), varint(7)]);
  return Buffer.concat([bytesField(1, header), field(2, 0), varint(remaining), bytesField(3, blob)]);
}
function frame(msg: Buffer, compressed = 0): Buffer {
  const h = Buffer.alloc(5);
  h[0] = compressed;
  h.writeUInt32BE(msg.length, 1);
  return Buffer.concat([h, msg]);
}

function decodeAll(chunks: Buffer[]): Buffer {
  const d = new SnapshotBlobDecoder();
  const out: Buffer[] = [];
  for (const c of chunks) d.push(c, (b) => out.push(Buffer.from(b)));
  d.end();
  return Buffer.concat(out);
}

test('decoder: the blobs of a stream of messages, whatever the chunk boundaries', () => {
  const blobs = [randomBytes(1000), randomBytes(0), randomBytes(300), randomBytes(77)];
  const body = Buffer.concat([
    ...blobs.map((b, i) => frame(message(b, 5000 - i))),
    frame(Buffer.concat([field(2, 0), varint(0)])), // a message without a blob
    frame(Buffer.concat([field(9, 1), Buffer.alloc(8), field(10, 5), Buffer.alloc(4), bytesField(3, Buffer.from('end'))])), // fixed-width fields skipped
  ]);
  const want = Buffer.concat([...blobs, Buffer.from('end')]);
  assert.deepEqual(decodeAll([body]), want);
  for (let cut = 1; cut < body.length; cut += 7) {
    assert.deepEqual(decodeAll([body.subarray(0, cut), body.subarray(cut)]), want, `split at ${cut}`);
  }
  const singles: Buffer[] = [];
  for (let i = 0; i < body.length; i++) singles.push(body.subarray(i, i + 1));
  assert.deepEqual(decodeAll(singles), want, 'one byte at a time');
});

test('decoder: malformed input is an integrity error', () => {
  const good = frame(message(Buffer.from('abc'), 1));
  const cases: Array<[Buffer[], RegExp]> = [
    [[frame(message(Buffer.from('abc'), 1), 1)], /compressed message/],
    [[good.subarray(0, good.length - 1)], /cut off inside a message/],
    [[good.subarray(0, 3)], /cut off inside a message/],
    [[frame(Buffer.concat([field(1, 3)]))], /wire type 3/],
    [[frame(Buffer.concat([field(3, 2), varint(50), Buffer.from('short')]))], /longer than its message/],
    [[frame(Buffer.concat([field(2, 0), Buffer.alloc(11, 0xff), Buffer.from([0])]))], /varint longer than 10 bytes/],
    [[frame(Buffer.concat([field(2, 0)]))], /ends inside a field/],
  ];
  for (const [chunks, re] of cases) {
    assert.throws(
      () => decodeAll(chunks),
      (e: unknown) => e instanceof EtcdsnapError && e.kind === 'integrity' && re.test(e.message),
      String(re),
    );
  }
});

let server: ServerProcess;
const material = (s: ServerProcess): { endpoint: string; ca: Buffer; cert: Buffer; key: Buffer; servername: string } => {
  const p = tlsPaths(s.dataDir);
  return {
    endpoint: `https://127.0.0.1:${s.ports.client}`,
    ca: readFileSync(p.etcdCa),
    cert: readFileSync(p.clientCert),
    key: readFileSync(p.clientKey),
    servername: 'localhost',
  };
};

test('against etcd: the stream is a whole snapshot (its sha256 trailer checks out)', async () => {
  server = await startReady({ args: ['--etcd-disable-snapshots'] });
  await fillEtcd(server, 200, 16 * 1024);
  const v = new TrailerVerifier();
  let bytes = 0;
  await pipeline(
    await EtcdSnapshotStream.open(material(server)),
    v,
    new Writable({
      write(chunk: Buffer, _e, cb): void {
        bytes += chunk.length;
        cb();
      },
    }),
  );
  assert.ok(v.dbSha256, 'trailer verified');
  assert.equal(bytes, v.size);
  assert.ok(bytes > 200 * 16 * 1024, `size ${bytes}`);
});

test('against etcd: cancel() fails the stream; a wrong CA or client key fails the open', async () => {
  const s = await EtcdSnapshotStream.open(material(server));
  let seen = 0;
  const done = pipeline(
    s,
    new Writable({
      write(chunk: Buffer, _e, cb): void {
        seen += chunk.length;
        if (seen > 100_000) s.cancel();
        setImmediate(cb);
      },
    }),
  );
  await assert.rejects(done, (e: unknown) => e instanceof EtcdsnapError && e.kind === 'unavailable' && /cancelled/.test(e.message));

  const other = await startReady({ args: ['--etcd-disable-snapshots'] });
  const foreign = material(other);
  await assert.rejects(
    EtcdSnapshotStream.open({ ...material(server), ca: foreign.ca }),
    (e: unknown) => e instanceof EtcdsnapError && e.kind === 'unavailable' && /cannot connect to etcd/.test(e.message),
  );
  // another cluster's client certificate: refused during the handshake or at the first read
  await assert.rejects(
    (async (): Promise<void> => {
      const st = await EtcdSnapshotStream.open({ ...material(server), cert: foreign.cert, key: foreign.key });
      await pipeline(st, new Writable({ write: (_c, _e, cb): void => cb() }));
    })(),
    (e: unknown) => e instanceof EtcdsnapError && e.kind === 'unavailable',
  );
});

/** Runs `fn` with the server's etcd stopped (SIGSTOP), then lets it go on. */
async function whileStopped<T>(s: ServerProcess, fn: () => Promise<T>): Promise<T> {
  const pid = s.etcdPid();
  assert.ok(pid, 'etcd pid');
  process.kill(pid, 'SIGSTOP');
  try {
    return await fn();
  } finally {
    process.kill(pid, 'SIGCONT');
  }
}

const sink = (onChunk: (n: number) => Promise<void> | void = () => {}): Writable =>
  new Writable({
    write(chunk: Buffer, _e, cb): void {
      Promise.resolve(onChunk(chunk.length)).then(() => cb(), cb);
    },
  });

test('against etcd: a hung member fails the stream as unavailable, at connect or mid-stream, instead of holding it forever', { timeout: 60_000 }, async () => {
  // more than the HTTP/2 window (8 MiB) and the socket buffers hold, so a stopped etcd stalls it
  await fillEtcd(server, 2400, 16 * 1024, 'big/');
  await whileStopped(server, async () => {
    // the message names the timeout that fired: the given 1 s, not the default 10 s
    await assert.rejects(
      EtcdSnapshotStream.open({ ...material(server), connectTimeoutMs: 1000 }),
      (e: unknown) => e instanceof EtcdsnapError && e.kind === 'unavailable' && /cannot connect to etcd at .*no answer within 1 s/.test(e.message),
    );
  });

  const s = await EtcdSnapshotStream.open({ ...material(server), idleTimeoutMs: 1500 });
  let seen = 0;
  await whileStopped(server, () =>
    assert.rejects(
      pipeline(
        s,
        sink((n) => {
          seen += n;
        }),
      ),
      (e: unknown) => e instanceof EtcdsnapError && e.kind === 'unavailable' && /etcd sent no snapshot data for 1\.5 s: the member is hung/.test(e.message),
    ),
  );
  assert.ok(seen < 40 * 1024 * 1024, `stalled before the end (${seen} bytes)`);
});

test('against etcd: a consumer that holds the stream back longer than the idle timeout does not fail it', async () => {
  const v = new TrailerVerifier();
  let paused = false;
  await pipeline(
    await EtcdSnapshotStream.open({ ...material(server), idleTimeoutMs: 500 }),
    v,
    sink(async () => {
      if (!paused) {
        paused = true; // once, after the first chunk: 4 idle timeouts without reading
        await new Promise((r) => setTimeout(r, 2000));
      }
    }),
  );
  assert.ok(v.dbSha256, 'the whole snapshot arrived and its trailer checks out');
});
