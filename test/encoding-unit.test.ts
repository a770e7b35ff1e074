/**
 * Unit tests of the encoding vocabulary (issue 14): names with `.zip`/`.zst`/`.gz`/`.age`
 * (model/encoding.ts, model/naming.ts), the record fields that say how a snapshot is stored
 * (model/records.ts), the S3 metadata (snapshot/save.ts `encodingMetadata`), how a request
 * and the server's settings combine (snapshot/encode.ts) and the API fields
 * (snapshot/request.ts). Pure: no I/O.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EtcdsnapError } from '../src/errors.js';
import { compressionOf, contentTypeOf, encodingSuffix, isCompressedName, PLAIN, splitEncodedName } from '../src/model/encoding.js';
import { belongsTo, parseSnapshotName, snapshotFileName } from '../src/model/naming.js';
import { compressionFromName, encodingFields, encodingOfRecord, parseRecord, recordFromBucketSidecar } from '../src/model/records.js';
import { encodingMetadata } from '../src/snapshot/save.js';
import { mergeEncoding, MAX_RECIPIENTS } from '../src/snapshot/encode.js';
import { parseSnapshotRequest } from '../src/snapshot/request.js';
import { planRetention } from '../src/retention/policy.js';
import { classifySnapshotHead } from '../src/store/snapshot-kind.js';

// real X25519 recipients (age-keygen output), public keys only
const R1 = 'age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p';
const R2 = 'age1psyvw22w3vxsvvdntq5j25uappx6nweanrg4649tat0jl2z0v9tsgvp8cg';

test('names: each encoding has its extensions, and they come off again', () => {
  const cases = [
    [PLAIN, ''],
    [{ compression: 'zip', recipients: [] }, '.zip'],
    [{ compression: 'zstd', recipients: [] }, '.zst'],
    [{ compression: 'gzip', recipients: [] }, '.gz'],
    [{ compression: 'none', recipients: [R1] }, '.age'],
    [{ compression: 'zstd', recipients: [R1, R2] }, '.zst.age'],
    [{ compression: 'zip', recipients: [R1] }, '.zip.age'],
  ] as const;
  for (const [enc, suffix] of cases) {
    assert.equal(encodingSuffix(enc), suffix);
    const name = snapshotFileName('etcd-snapshot', 'node-1', 1700000000, enc);
    assert.equal(name, `etcd-snapshot-node-1-1700000000${suffix}`);
    const parsed = parseSnapshotName(name);
    assert.deepEqual(parsed, {
      base: 'etcd-snapshot-node-1-1700000000',
      compressed: enc.compression !== 'none',
      encrypted: enc.recipients.length > 0,
      timestamp: 1700000000,
    });
    assert.ok(belongsTo(name, 'etcd-snapshot', 'node-1'), `${name} is node-1's`);
    assert.equal(isCompressedName(name), enc.compression !== 'none');
  }
  // only one compression extension, before .age; an extension alone is no name
  assert.deepEqual(splitEncodedName('x.age.zst'), { base: 'x.age', compression: 'zstd', encrypted: false });
  assert.deepEqual(splitEncodedName('x.zst.zip'), { base: 'x.zst', compression: 'zip', encrypted: false });
  assert.deepEqual(splitEncodedName('.age'), { base: '.age', compression: 'none', encrypted: false });
  assert.deepEqual(splitEncodedName('.zst.age'), { base: '.zst', compression: 'none', encrypted: true });
  assert.equal(parseSnapshotName('a-1700000000.age.zip'), undefined, 'age inside zip is not a name of ours');
  assert.equal(parseSnapshotName('a-1700000000.tar.gz')?.base, undefined);
});

test('content types: zip as k3s, zstd, gzip; anything encrypted is opaque', () => {
  assert.equal(contentTypeOf('a-1700000000'), 'application/octet-stream');
  assert.equal(contentTypeOf('a-1700000000.zip'), 'application/zip');
  assert.equal(contentTypeOf('a-1700000000.zst'), 'application/zstd');
  assert.equal(contentTypeOf('a-1700000000.gz'), 'application/gzip');
  assert.equal(contentTypeOf('a-1700000000.zip.age'), 'application/octet-stream');
});

test('compressionOf: --etcd-snapshot-compression wins, --etcd-snapshot-compress means zip, conflicts are refused', () => {
  assert.equal(compressionOf(undefined, undefined), undefined);
  assert.equal(compressionOf(true, undefined), 'zip');
  assert.equal(compressionOf(false, undefined), 'none');
  assert.equal(compressionOf(false, 'zstd'), 'zstd');
  assert.equal(compressionOf(true, 'zip'), 'zip');
  assert.equal(compressionOf(undefined, 'gzip'), 'gzip');
  assert.throws(
    () => compressionOf(true, 'zstd'),
    (e: unknown) =>
      e instanceof EtcdsnapError &&
      e.kind === 'usage' &&
      /--etcd-snapshot-compress \(k3s's zip\) and --etcd-snapshot-compression=zstd disagree/.test(e.message),
  );
  assert.throws(
    () => compressionOf(undefined, 'lz4'),
    (e: unknown) =>
      e instanceof EtcdsnapError && e.kind === 'usage' && /invalid --etcd-snapshot-compression "lz4": use none, zip, zstd or gzip/.test(e.message),
  );
  assert.throws(() => compressionOf(true, 'none', { compress: '-a', compression: '-b' }), /-a \(k3s's zip\) and -b=none disagree/);
});

test('records: the encoding fields, kept from a sidecar only when well-formed', () => {
  assert.deepEqual(encodingFields(PLAIN), { compressed: false });
  assert.deepEqual(encodingFields({ compression: 'zstd', recipients: [R1] }), {
    compressed: true,
    compression: 'zstd',
    encryption: { format: 'age', recipients: [R1] },
  });
  const base = { name: 'a-1700000000.zst.age', createdAt: '2023-11-14T22:13:20Z', status: 'successful' };
  const good = parseRecord(JSON.stringify({ ...base, compressed: true, compression: 'zstd', encryption: { format: 'age', recipients: [R1, R2] } }));
  assert.equal(good?.compression, 'zstd');
  assert.deepEqual(good?.encryption, { format: 'age', recipients: [R1, R2] });
  assert.ok(good);
  assert.deepEqual(encodingOfRecord(good), { compression: 'zstd', recipients: [R1, R2] });
  for (const bad of [
    { format: 'gpg', recipients: [R1] },
    { format: 'age', recipients: [] },
    { format: 'age', recipients: ['AGE-SECRET-KEY-1XYZ'] },
    { format: 'age', recipients: [`${R1}\n`] },
    { format: 'age', recipients: Array.from({ length: 65 }, () => R1) },
    { format: 'age', recipients: R1 },
  ]) {
    assert.equal(parseRecord(JSON.stringify({ ...base, encryption: bad }))?.encryption, undefined, JSON.stringify(bad).slice(0, 60));
  }
  assert.equal(parseRecord(JSON.stringify({ ...base, compression: 'none' }))?.compression, undefined);
  assert.equal(parseRecord(JSON.stringify({ ...base, compression: 'lz4' }))?.compression, undefined);
  // k3s's records: compressed without compression is its zip
  const k3s = parseRecord(JSON.stringify({ ...base, compressed: true }));
  assert.ok(k3s);
  assert.deepEqual(encodingOfRecord(k3s), { compression: 'zip', recipients: [] });
  assert.deepEqual(compressionFromName('a-1700000000.gz.age'), { compressed: true, compression: 'gzip' });
  assert.deepEqual(compressionFromName('a-1700000000.age'), { compressed: false });
  // a bucket sidecar: the recipients are kept (shown, named in errors); the compression comes from the name
  const side = recordFromBucketSidecar(JSON.stringify({ compression: 'zip', encryption: { format: 'age', recipients: [R2] } }), {
    name: 'a-1700000000.zst.age',
    location: 's3://b/a',
    createdAt: base.createdAt,
    size: 1,
    ...compressionFromName('a-1700000000.zst.age'),
  });
  assert.equal(side?.record.compression, 'zstd');
  assert.deepEqual(side?.record.encryption, { format: 'age', recipients: [R2] });
});

test('S3 metadata: compression, encryption and the recipients, cut to fit with the count of the rest', () => {
  assert.deepEqual(encodingMetadata(PLAIN), {});
  assert.deepEqual(encodingMetadata({ compression: 'gzip', recipients: [] }), { 'etcdsnap-compression': 'gzip' });
  assert.deepEqual(encodingMetadata({ compression: 'none', recipients: [R1, R2] }), { 'etcdsnap-encryption': 'age', 'etcdsnap-recipients': `${R1},${R2}` });
  const many = Array.from({ length: 40 }, (_, i) => `${R1.slice(0, -2)}${String(i).padStart(2, '0')}`);
  const m = encodingMetadata({ compression: 'none', recipients: many });
  const shown = m['etcdsnap-recipients'] ?? '';
  assert.ok(shown.length <= 1024 + 20, `${shown.length} bytes`);
  const kept = shown.split(',').filter((x) => x.startsWith('age1'));
  assert.equal(kept.length, 16, '16 keys of 62 characters and their commas fit in 1 KiB');
  assert.ok(shown.endsWith(`,+${40 - kept.length} more`));
});

test("mergeEncoding: the request picks the compression and adds recipients, never removes the server's", () => {
  const server = { compression: 'zstd', recipients: [R1] } as const;
  assert.deepEqual(mergeEncoding(server, {}), { compression: 'zstd', recipients: [R1] });
  assert.deepEqual(mergeEncoding(server, { compression: 'none' }), { compression: 'none', recipients: [R1] });
  assert.deepEqual(mergeEncoding(server, { recipients: [R2, R1] }), { compression: 'zstd', recipients: [R1, R2] });
  const many = Array.from({ length: MAX_RECIPIENTS }, (_, i) => `${R2.slice(0, -2)}${String(i).padStart(2, '0')}`);
  assert.throws(() => mergeEncoding(server, { recipients: many }), /too many age recipients \(65\)/);
});

test('API: compression and encryptRecipients fields are checked like the flags', () => {
  assert.equal(parseSnapshotRequest({ operation: 'save', compression: 'zstd' }).compression, 'zstd');
  assert.equal(parseSnapshotRequest({ operation: 'save', compress: true }).compression, 'zip');
  assert.equal(parseSnapshotRequest({ operation: 'save' }).compression, undefined);
  assert.throws(() => parseSnapshotRequest({ operation: 'save', compression: 'lz4' }), /invalid field "compression"/);
  assert.throws(
    () => parseSnapshotRequest({ operation: 'save', compress: true, compression: 'gzip' }),
    /field "compress" .* and field "compression"=gzip disagree/,
  );
  assert.deepEqual(parseSnapshotRequest({ operation: 'save', encryptRecipients: [R1] }).recipients, [R1]);
  assert.throws(() => parseSnapshotRequest({ operation: 'save', encryptRecipients: R1 }), /invalid field "encryptRecipients"/);
  assert.throws(() => parseSnapshotRequest({ operation: 'save', encryptRecipients: [1] }), /invalid field "encryptRecipients"/);
  assert.throws(() => parseSnapshotRequest({ operation: 'save', encryptRecipients: ['age1qqqq'] }), /invalid field "encryptRecipients"/);
  // a flipped character breaks the bech32 checksum
  const flipped = `${R1.slice(0, -1)}${R1.endsWith('p') ? 'q' : 'p'}`;
  assert.throws(() => parseSnapshotRequest({ operation: 'save', encryptRecipients: [flipped] }), /invalid field "encryptRecipients"/);
});

test("retention treats every encoding of a node's snapshots alike", () => {
  const names = ['s-n-1700000001', 's-n-1700000002.zip', 's-n-1700000003.zst.age', 's-n-1700000004.gz', 'other-n-1700000005.zst'];
  const plan = planRetention(names, { prefix: 's', nodeName: 'n', keep: 2 });
  assert.deepEqual(plan.keep, ['s-n-1700000004.gz', 's-n-1700000003.zst.age']);
  assert.deepEqual(plan.remove, ['s-n-1700000002.zip', 's-n-1700000001']);
  assert.deepEqual(plan.ignored, ['other-n-1700000005.zst']);
});

test('foreign files in the snapshot folder: an encoded one is a snapshot when its name and its magic bytes agree', () => {
  const age = Buffer.from('age-encryption.org/v1\n-> X25519 abc\n');
  const zstd = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0]);
  const gzip = Buffer.from([0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0]);
  assert.equal(classifySnapshotHead('backup.db.age', 100, age), 'age');
  assert.equal(classifySnapshotHead('backup.zst.age', 100, age), 'age');
  assert.equal(classifySnapshotHead('backup.age', 100, zstd), undefined);
  assert.equal(classifySnapshotHead('backup.zst', 100, zstd), 'zstd');
  assert.equal(classifySnapshotHead('backup.zst', 100, gzip), undefined);
  assert.equal(classifySnapshotHead('backup.gz', 100, gzip), 'gzip');
  assert.equal(classifySnapshotHead('backup.gz', 100, age), undefined);
  assert.equal(classifySnapshotHead('backup', 100, age), undefined, 'an unnamed encoded file is not listed');
});
