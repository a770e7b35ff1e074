/** Unit tests of the pure parts of the snapshot reader (issue 13): varints, KeyValue protobuf, revision keys, meta pages, CRC-32C staging, the live-key table. No etcd. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { crc32c } from '@node-rs/crc32';
import { Damage, fnv1a64, PAGE_HEADER, parseMeta } from '../src/inspect/bbolt-page.js';
import { Crc32c, crc32cCombine } from '../src/inspect/crc32c.js';
import { KeyPositions } from '../src/inspect/key-positions.js';
import { beUint, decodeKeyValue, decodeRevision, encodeRevision, readVarint } from '../src/inspect/protobuf.js';

/** Protobuf varint encoding of a uint64 (reference, written independently of the decoder). */
function varint(v: bigint): Buffer {
  const out: number[] = [];
  let x = BigInt.asUintN(64, v);
  do {
    let b = Number(x & 0x7fn);
    x >>= 7n;
    if (x > 0n) b |= 0x80;
    out.push(b);
  } while (x > 0n);
  return Buffer.from(out);
}

const tag = (field: number, wire: number): Buffer => varint(BigInt(field * 8 + wire));
const bytesField = (field: number, b: Buffer): Buffer => Buffer.concat([tag(field, 2), varint(BigInt(b.length)), b]);
const intField = (field: number, v: bigint): Buffer => Buffer.concat([tag(field, 0), varint(v)]);

test('varints: 0, 1, 127, 128, 2^49 boundaries, 2^53-1, 2^53 and 2^64-1 decode exactly', () => {
  for (const v of [0n, 1n, 127n, 128n, 300n, 2n ** 49n - 1n, 2n ** 49n, 2n ** 53n - 1n]) {
    const b = varint(v);
    assert.deepEqual(readVarint(b, 0, b.length), { value: Number(v), next: b.length }, String(v));
  }
  for (const v of [2n ** 53n, 2n ** 63n, 2n ** 64n - 1n]) {
    const b = varint(v);
    assert.deepEqual(readVarint(b, 0, b.length), { value: v, next: b.length }, String(v));
  }
  // at an offset, followed by other bytes
  const b = Buffer.concat([Buffer.from([9, 9]), varint(300n), Buffer.from([7])]);
  assert.deepEqual(readVarint(b, 2, b.length), { value: 300, next: 4 });
});

test('varints: truncated, longer than 10 bytes, or beyond 64 bits are Damage', () => {
  assert.throws(() => readVarint(Buffer.from([0x80]), 0, 1), Damage);
  assert.throws(() => readVarint(Buffer.from([0x80, 0x80]), 0, 1), /past the end/);
  assert.throws(() => readVarint(Buffer.alloc(11, 0x80), 0, 11), /overflows 64 bits/);
  const over = Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]);
  assert.throws(() => readVarint(over, 0, over.length), /overflows 64 bits/);
  assert.throws(() => readVarint(Buffer.alloc(0), 0, 0), Damage);
});

test('KeyValue: fields in any order, unknown fields skipped, negative lease as a signed int64', () => {
  const kv = Buffer.concat([
    intField(4, 3n),
    bytesField(1, Buffer.from('/registry/a')),
    intField(2, 5n),
    intField(9, 77n), // unknown varint
    bytesField(12, Buffer.from('skip me')), // unknown bytes
    intField(3, 9n),
    bytesField(5, Buffer.from('value')),
    intField(6, -2n),
  ]);
  const framed = Buffer.concat([Buffer.from('xx'), kv, Buffer.from('yy')]);
  const f = decodeKeyValue(framed, 2, 2 + kv.length);
  assert.equal(framed.toString('utf8', f.keyStart, f.keyEnd), '/registry/a');
  assert.equal(framed.toString('utf8', f.valueStart, f.valueEnd), 'value');
  assert.equal(f.createRevision, 5);
  assert.equal(f.modRevision, 9);
  assert.equal(f.version, 3);
  assert.equal(f.lease, '-2');
  const leased = Buffer.concat([bytesField(1, Buffer.from('k')), intField(6, 7587880966046418948n)]);
  assert.equal(decodeKeyValue(leased, 0, leased.length).lease, '7587880966046418948');
  // a tombstone's KeyValue holds only the key: value empty, revisions 0
  const tomb = bytesField(1, Buffer.from('k'));
  const t = decodeKeyValue(tomb, 0, tomb.length);
  assert.equal(t.valueEnd - t.valueStart, 0);
  assert.equal(t.lease, '0');
});

test('KeyValue: no key, a length past the end, a wrong wire type, a revision beyond 2^53 or a group are Damage', () => {
  const noKey = intField(2, 1n);
  assert.throws(() => decodeKeyValue(noKey, 0, noKey.length), /without a key/);
  const long = Buffer.concat([tag(1, 2), varint(10n), Buffer.from('abc')]);
  assert.throws(() => decodeKeyValue(long, 0, long.length), /past the end/);
  const wrongWire = Buffer.concat([bytesField(1, Buffer.from('k')), bytesField(2, Buffer.from('x'))]);
  assert.throws(() => decodeKeyValue(wrongWire, 0, wrongWire.length), /field 2 has wire type 2/);
  const huge = Buffer.concat([bytesField(1, Buffer.from('k')), intField(3, 2n ** 60n)]);
  assert.throws(() => decodeKeyValue(huge, 0, huge.length), /mod_revision .* beyond 2\^53/);
  const negative = Buffer.concat([bytesField(1, Buffer.from('k')), intField(2, -1n)]);
  assert.throws(() => decodeKeyValue(negative, 0, negative.length), /create_revision -1 is negative/);
  const group = Buffer.concat([bytesField(1, Buffer.from('k')), tag(7, 3)]);
  assert.throws(() => decodeKeyValue(group, 0, group.length), /wire type 3/);
  const fixed = Buffer.concat([bytesField(1, Buffer.from('k')), tag(8, 1), Buffer.alloc(3)]);
  assert.throws(() => decodeKeyValue(fixed, 0, fixed.length), /past the end/);
  const fieldZero = Buffer.concat([tag(0, 0), varint(1n)]);
  assert.throws(() => decodeKeyValue(fieldZero, 0, fieldZero.length), /field number 0/);
});

test('revision keys: main and sub big-endian, the tombstone mark, malformed lengths and separators', () => {
  const r = encodeRevision(0x0102030405, 7);
  assert.equal(r.toString('hex'), `00000001020304055f0000000000000007`);
  assert.deepEqual(decodeRevision(r, 0, r.length), { main: 0x0102030405, sub: 7, tombstone: false });
  const t = encodeRevision(42, 0, true);
  assert.equal(t.length, 18);
  assert.deepEqual(decodeRevision(t, 0, t.length), { main: 42, sub: 0, tombstone: true });
  assert.deepEqual(decodeRevision(encodeRevision(2 ** 53 - 1, 0), 0, 17).main, 2 ** 53 - 1);
  assert.throws(() => decodeRevision(encodeRevision(1, 1), 0, 16), /malformed revision key/);
  const badSep = encodeRevision(1, 1);
  badSep[8] = 0x2d;
  assert.throws(() => decodeRevision(badSep, 0, 17), /malformed/);
  const badMark = Buffer.concat([encodeRevision(1, 1), Buffer.from('x')]);
  assert.throws(() => decodeRevision(badMark, 0, 18), /malformed/);
  const big = Buffer.alloc(8, 0xff);
  assert.throws(() => beUint(big, 0), /beyond 2\^53/);
});

test('FNV-1a 64 matches the published test vectors', () => {
  assert.equal(fnv1a64(Buffer.alloc(0)), 0xcbf29ce484222325n);
  assert.equal(fnv1a64(Buffer.from('a')), 0xaf63dc4c8601ec8cn);
  assert.equal(fnv1a64(Buffer.from('foobar')), 0x85944171f73967e8n);
});

/** A meta page as bbolt writes it (little-endian), with a correct checksum unless told. */
function metaPage(o: { pageSize?: number; root?: number; pgid?: number; txid?: number; magic?: number; version?: number; freelist?: bigint } = {}): Buffer {
  const p = Buffer.alloc(4096);
  p.writeUInt16LE(0x04, 8);
  const m = p.subarray(PAGE_HEADER);
  m.writeUInt32LE(o.magic ?? 0xed0cdaed, 0);
  m.writeUInt32LE(o.version ?? 2, 4);
  m.writeUInt32LE(o.pageSize ?? 4096, 8);
  m.writeBigUInt64LE(BigInt(o.root ?? 3), 16);
  m.writeBigUInt64LE(o.freelist ?? 2n, 32);
  m.writeBigUInt64LE(BigInt(o.pgid ?? 4), 40);
  m.writeBigUInt64LE(BigInt(o.txid ?? 1), 48);
  m.writeBigUInt64LE(fnv1a64(m.subarray(0, 56)), 56);
  return p;
}

test('meta pages: a valid one parses; wrong magic, version, checksum, page size or root is named', () => {
  assert.deepEqual(parseMeta(metaPage({ txid: 9, pgid: 10, root: 5 })), { pageSize: 4096, root: 5, freelist: 2n, pgid: 10, txid: 9n });
  assert.equal(parseMeta(metaPage({ magic: 1 })), 'no bbolt magic number');
  assert.equal(parseMeta(metaPage({ version: 1 })), 'unsupported bbolt version 1');
  const flipped = metaPage();
  flipped[PAGE_HEADER + 20] = (flipped[PAGE_HEADER + 20] ?? 0) ^ 1;
  assert.equal(parseMeta(flipped), 'meta checksum mismatch');
  assert.equal(parseMeta(metaPage({ pageSize: 3000 })), 'implausible page size 3000');
  assert.equal(parseMeta(metaPage({ root: 7, pgid: 5 })), 'root page id 7 is outside 2..4');
  assert.equal(parseMeta(metaPage({ freelist: 9n, pgid: 5 })), 'freelist page id 9 is outside 2..4');
  assert.equal(typeof parseMeta(metaPage({ freelist: 0xffffffffffffffffn })), 'object', 'no freelist written is valid');
  assert.equal(parseMeta(Buffer.alloc(10)), 'too short for a meta page');
});

test('CRC-32C staging gives the same checksum as one native call over the concatenation', () => {
  const pieces = [0, 1, 7, 100, 65535, 65536, 70000, 3, 1 << 20, 5, (1 << 20) - 3, 4].map((n) => randomBytes(n));
  const c = new Crc32c();
  for (const p of pieces) c.update(p);
  assert.equal(c.digest(), crc32c(Buffer.concat(pieces)) >>> 0);
  // a range of a buffer
  const buf = randomBytes(1000);
  const d = new Crc32c();
  d.update(buf, 10, 990);
  assert.equal(d.digest(), crc32c(buf.subarray(10, 990)) >>> 0);
  // the check value of CRC-32C
  const e = new Crc32c();
  e.update(Buffer.from('123456789'));
  assert.equal(e.digest(), 0xe3069283);
});

test('CRC-32C combine: the checksum of A and B chained from their own checksums, lengths 0 to 2^20 and beyond 2^32 bits', () => {
  for (const [a, b] of [
    [0, 0],
    [0, 7],
    [7, 0],
    [1, 1],
    [17, 4079],
    [4096, 70_000],
    [3, 1 << 20],
  ] as const) {
    const A = randomBytes(a);
    const B = randomBytes(b);
    assert.equal(crc32cCombine(crc32c(A) >>> 0, crc32c(B) >>> 0, b), crc32c(Buffer.concat([A, B])) >>> 0, `${a}+${b}`);
  }
  // pieces chained out of order of computation give the checksum of the whole
  const pieces = [5, 100, 4096, 0, 65_537].map((n) => randomBytes(n));
  let crc = 0;
  for (const p of pieces) crc = crc32cCombine(crc, crc32c(p) >>> 0, p.length);
  assert.equal(crc, crc32c(Buffer.concat(pieces)) >>> 0);
  // a length of 2^32 bytes (2^35 bits): x^(8n) from the table beyond 32 entries, checked against chaining two 2^31 steps
  const one = crc32c(Buffer.from('x')) >>> 0;
  const big = crc32cCombine(crc32cCombine(one, 0, 2 ** 31), 0, 2 ** 31);
  assert.equal(crc32cCombine(one, 0, 2 ** 32), big);
});

test('live-key table: the newest position per key wins, deletions count as not live, equal to a Map over 60,000 updates', () => {
  const t = new KeyPositions();
  const ref = new Map<string, number>();
  // keys of many lengths (empty, one byte, long, sharing prefixes) at offsets inside a larger buffer, updated out of order
  const keys = Array.from({ length: 20_000 }, (_, i) => Buffer.concat([Buffer.from(`/registry/ns-${i % 37}/`), randomBytes(i % 50)]));
  keys.push(Buffer.alloc(0), Buffer.from([0]), Buffer.from([0, 0]), Buffer.alloc(3000, 7));
  for (let n = 0; n < 60_000; n++) {
    const k = keys[(n * 7919) % keys.length] as Buffer;
    const at = ((n * 104_729) % 1_000_003) + 1;
    const pos = n % 5 === 0 ? -at : at;
    const buf = Buffer.concat([randomBytes(n % 13), k, randomBytes(3)]);
    t.newest(buf, n % 13, (n % 13) + k.length, pos);
    const key = k.toString('latin1');
    const was = ref.get(key);
    if (was === undefined || Math.abs(was) < at) ref.set(key, pos);
  }
  assert.equal(t.size, ref.size);
  assert.equal(t.countPositive(), [...ref.values()].filter((p) => p > 0).length);
});
