/**
 * The decoder of the Snapshot call's response body (SnapshotBlobDecoder in
 * src/etcd/snapshot-stream.ts) on crafted bytes: gRPC frames of SnapshotResponse messages.
 * Pure: no etcd (the stream against a real etcd is in etcd-stream.test.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { SnapshotBlobDecoder } from '../src/etcd/snapshot-stream.js';
import { EtcdsnapError } from '../src/errors.js';

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

const malformed = (re: RegExp) => (e: unknown) => e instanceof EtcdsnapError && e.kind === 'integrity' && re.test(e.message);

test('decoder: counts messages; blobs come out as views of the input, in order, split where the chunks split', () => {
  const d = new SnapshotBlobDecoder();
  const body = Buffer.concat([frame(message(Buffer.from('hello'), 2)), frame(message(Buffer.from('world!'), 1))]);
  const runs: Buffer[] = [];
  const cut = body.indexOf('world!') + 5;
  d.push(body.subarray(0, cut), (b) => runs.push(b));
  assert.equal(d.messages, 2, 'the second frame header is in the first chunk');
  d.push(body.subarray(cut), (b) => runs.push(b));
  d.end();
  assert.equal(d.messages, 2);
  assert.deepEqual(
    runs.map((b) => b.toString()),
    ['hello', 'world', '!'],
  );
  assert.ok(
    runs.every((b) => b.buffer === body.buffer),
    'views, not copies',
  );
  const empty = new SnapshotBlobDecoder();
  empty.end(); // no message at all is a clean end
  assert.equal(empty.messages, 0);
});

test('decoder: multi-byte lengths and tags, a 10-byte varint, fields that end exactly with their message', () => {
  const big = randomBytes(20_000); // a 3-byte length varint
  const body = Buffer.concat([
    frame(message(big, 2 ** 40)),
    // field 20 (a 2-byte tag) of each skipped kind, then the blob
    frame(Buffer.concat([field(20, 0), varint(1), field(21, 2), varint(3), Buffer.from('abc'), field(3, 2), varint(2), Buffer.from('ok')])),
    // a varint of 10 bytes (the most there is), then a fixed64 and a fixed32 that end the message
    frame(Buffer.concat([field(2, 0), Buffer.alloc(9, 0xff), Buffer.from([0x01]), field(9, 1), Buffer.alloc(8, 7), field(10, 5), Buffer.alloc(4, 7)])),
    // an empty header message and an empty blob, each the last field of its message
    frame(Buffer.concat([bytesField(1, Buffer.alloc(0))])),
    frame(Buffer.concat([bytesField(3, Buffer.alloc(0))])),
    frame(bytesField(3, Buffer.from('z'))),
  ]);
  const want = Buffer.concat([big, Buffer.from('ok'), Buffer.from('z')]);
  assert.deepEqual(decodeAll([body]), want);
  for (const size of [1, 2, 3, 5, 6, 4096]) {
    const chunks: Buffer[] = [];
    for (let i = 0; i < body.length; i += size) chunks.push(body.subarray(i, i + size));
    assert.deepEqual(decodeAll(chunks), want, `chunks of ${size}`);
  }
});

test('decoder: each malformation names itself', () => {
  const cases: Array<[Buffer, RegExp]> = [
    [frame(message(Buffer.from('abc'), 1), 2), /^etcd snapshot stream is malformed: a compressed message \(etcd was not asked for compression\)$/],
    [frame(Buffer.concat([field(5, 4)])), /: protobuf wire type 4 in field 5$/],
    [frame(Buffer.concat([field(6, 6)])), /: protobuf wire type 6 in field 6$/],
    [frame(Buffer.concat([field(17, 7)])), /: protobuf wire type 7 in field 17$/],
    [frame(Buffer.concat([field(3, 2), varint(4), Buffer.from('abc')])), /: field 3 longer than its message$/],
    [frame(Buffer.concat([field(1, 2), varint(4), Buffer.from('abc')])), /: field 1 longer than its message$/],
    [frame(Buffer.concat([field(9, 1), Buffer.alloc(7)])), /: field 9 longer than its message$/],
    [frame(Buffer.concat([field(10, 5), Buffer.alloc(3)])), /: field 10 longer than its message$/],
    [frame(Buffer.concat([field(2, 0), Buffer.alloc(10, 0x80), Buffer.from([0])])), /: a varint longer than 10 bytes$/],
    [frame(Buffer.concat([field(2, 0), Buffer.from([0x80])])), /: a message that ends inside a field$/],
    [frame(Buffer.concat([field(3, 2)])), /: a message that ends inside a field$/],
    [Buffer.concat([frame(bytesField(3, Buffer.from('a'))), Buffer.from([0, 0, 0, 0])]), /: a response cut off inside a message$/],
    [Buffer.concat([frame(bytesField(3, Buffer.from('a'))), Buffer.from([0, 0, 0, 0, 9, 0x1a])]), /: a response cut off inside a message$/],
  ];
  for (const [body, re] of cases) {
    assert.throws(() => decodeAll([body]), malformed(re), String(re));
  }
  // a frame's declared length bounds its fields: the next frame's bytes are not read into it
  const short = Buffer.concat([frame(Buffer.concat([field(3, 2), varint(5)])), frame(Buffer.from('abcde'))]);
  assert.throws(() => decodeAll([short]), malformed(/field 3 longer than its message|ends inside a field/));
});

test('decoder: an empty message (every field at its default) is complete with its header, also as the last thing in the body', () => {
  const body = Buffer.concat([frame(message(Buffer.from('abc'), 0)), frame(Buffer.alloc(0))]);
  assert.deepEqual(decodeAll([body]), Buffer.from('abc'));
  assert.deepEqual(decodeAll([frame(Buffer.alloc(0))]), Buffer.alloc(0));
  assert.deepEqual(decodeAll([frame(Buffer.alloc(0)), frame(message(Buffer.from('x'), 0))]), Buffer.from('x'));
});
