/**
 * Issue 14, end to end with real tools: snapshots saved by a real server in every encoding
 * (none, zip, zstd, gzip × plain, age-encrypted), written locally and to S3 (Swift) in the
 * same pass, read back with their keys intact; files proven with the tools that own the
 * formats (`age`, `zstd`, `gzip`, `unzip`, `etcdctl snapshot restore`).
 * Restores by cluster reset and the refusals are in encoding-restore.test.ts.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { etcdctl, killStarted, runCli, snapshotCli, startReady, tempDir, type ServerProcess } from './helpers/server.js';
import { s3CliFlags, startSwift, swiftSettings, type Swift } from './helpers/swift.js';
import { S3Store } from '../src/store/s3.js';

let swift: Swift;
let server: ServerProcess;
let work: string;
let env: Record<string, string>;
let keyFile: string;
let recipient: string;
let otherKeyFile: string;
let s3cli: string[];

/** Runs a tool; its stdout as a Buffer. */
function tool(cmd: string, args: string[], input?: Buffer): { code: number | null; stdout: Buffer; stderr: string } {
  const r = spawnSync(cmd, args, { input, maxBuffer: 1 << 30, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ETCDCTL_API: '3' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr.toString() };
}

function newKey(name: string): { file: string; recipient: string } {
  const file = path.join(work, name);
  const r = tool('age-keygen', ['-o', file]);
  assert.equal(r.code, 0, r.stderr);
  const pub = /age1[0-9a-z]+/.exec(readFileSync(file, 'utf8'))?.[0];
  assert.ok(pub, 'age-keygen wrote a public key comment');
  return { file, recipient: pub };
}

before(async () => {
  work = tempDir('etcdsnap-encoding-');
  swift = await startSwift();
  await swift.createBucket('enc');
  env = { AWS_ACCESS_KEY_ID: swift.accessKey, AWS_SECRET_ACCESS_KEY: swift.secretKey };
  s3cli = s3CliFlags(swift, 'enc', 'f');
  ({ file: keyFile, recipient } = newKey('key.txt'));
  ({ file: otherKeyFile } = newKey('other.txt'));
  server = await startReady({ args: ['--etcd-disable-snapshots'], env });
  for (let i = 0; i < 20; i++) assert.equal(etcdctl(server, ['put', `a/${i}`, `value-${i}-${'x'.repeat(200)}`]).code, 0);
});

after(async () => {
  await server?.stop();
  killStarted();
  await swift?.stop();
});

const COMPRESSIONS = ['none', 'zip', 'zstd', 'gzip'] as const;
const EXT = { none: '', zip: '.zip', zstd: '.zst', gzip: '.gz' } as const;

interface Saved {
  name: string;
  compression: (typeof COMPRESSIONS)[number];
  encrypted: boolean;
  file: string;
}
const saved: Saved[] = [];

test('saves in every encoding, local and S3 in one pass: names, records and S3 metadata say how they are stored', async () => {
  for (const compression of COMPRESSIONS) {
    for (const encrypted of [false, true]) {
      const args = ['save', ...s3cli, '--name', `${compression}-${encrypted ? 'enc' : 'plain'}`, '--snapshot-compression', compression];
      if (encrypted) args.push('--etcd-snapshot-encrypt-recipient', recipient);
      const r = snapshotCli(server, args, env);
      assert.equal(r.code, 0, r.stderr);
      const name = /^Snapshot (\S+) saved\./.exec(r.stdout)?.[1] ?? '';
      assert.ok(name.endsWith(`${EXT[compression]}${encrypted ? '.age' : ''}`), `${name} has the extensions of ${compression}${encrypted ? ' + age' : ''}`);
      const file = path.join(server.dataDir, 'server', 'db', 'snapshots', name);
      const side = JSON.parse(readFileSync(path.join(server.dataDir, 'server', 'db', '.metadata', name), 'utf8')) as Record<string, unknown>;
      assert.equal(side.compressed, compression !== 'none');
      assert.equal(side.compression, compression === 'none' ? undefined : compression);
      assert.deepEqual(side.encryption, encrypted ? { format: 'age', recipients: [recipient] } : undefined);
      assert.equal(side.size, statSync(file).size);
      const bucket = S3Store.create(swiftSettings(swift, 'enc', 'f'));
      const head = await bucket.head(bucket.key(name)).finally(() => bucket.destroy());
      assert.ok(head, `${name} is in S3`);
      assert.equal(head.metadata['etcdsnap-encryption'], encrypted ? 'age' : undefined);
      assert.equal(head.metadata['etcdsnap-recipients'], encrypted ? recipient : undefined);
      assert.equal(head.metadata['etcdsnap-compression'], compression === 'none' ? undefined : compression);
      assert.equal(head.size, statSync(file).size, 'the S3 object has the same bytes');
      saved.push({ name, compression, encrypted, file });
    }
  }
  const listed = snapshotCli(server, ['ls', '-o', 'json'], env);
  assert.equal(listed.code, 0, listed.stderr);
  const items = JSON.parse(listed.stdout) as Array<{ name: string; encryption?: { recipients: string[] } }>;
  for (const s of saved) assert.equal(items.find((i) => i.name === s.name)?.encryption?.recipients[0], s.encrypted ? recipient : undefined, s.name);
  const plain = saved.find((s) => s.compression === 'none' && !s.encrypted);
  const zstd = saved.find((s) => s.compression === 'zstd' && !s.encrypted);
  assert.ok(plain && zstd);
  assert.ok(statSync(zstd.file).size < statSync(plain.file).size / 2, 'zstd makes the snapshot smaller');
});

/** The keys a/0..19 of a snapshot, read by `etcd-snapshot keys` (decoded as a restore decodes it). */
function keysOf(snapshot: string, extra: string[]): string[] {
  const r = runCli(['etcd-snapshot', 'keys', snapshot, '--data-dir', server.dataDir, '--prefix', 'a/', ...extra], env);
  assert.equal(r.code, 0, `keys ${snapshot}: ${r.stderr}`);
  return r.stdout.trim().split('\n').sort();
}

const EXPECTED = Array.from({ length: 20 }, (_, i) => `a/${i}`).sort();

test('every encoding reads back with its keys intact, from the snapshot folder and from S3', () => {
  assert.equal(saved.length, 8);
  for (const s of saved) {
    const id = s.encrypted ? ['--etcd-snapshot-decrypt-identity-file', keyFile] : [];
    assert.deepEqual(keysOf(s.name, id), EXPECTED, `${s.name} from the snapshot folder`);
    // a folder without it: the name is found in S3, downloaded, checked and decoded
    assert.deepEqual(keysOf(s.name, [...id, '--dir', work, ...s3cli]), EXPECTED, `${s.name} from S3`);
  }
});

test('our files open with the standard tools: age -d, zstd -d, gzip -d, unzip; the result restores with etcdctl', () => {
  for (const s of saved) {
    let bytes: Buffer = readFileSync(s.file);
    if (s.encrypted) {
      const d = tool('age', ['-d', '-i', keyFile], bytes);
      assert.equal(d.code, 0, `age -d ${s.name}: ${d.stderr}`);
      bytes = d.stdout;
    }
    if (s.compression === 'zstd') bytes = tool('zstd', ['-d', '-c', '-q'], bytes).stdout;
    if (s.compression === 'gzip') bytes = tool('gzip', ['-d', '-c'], bytes).stdout;
    if (s.compression === 'zip') {
      const z = path.join(work, `${s.name}.zip`);
      writeFileSync(z, bytes);
      assert.equal(tool('unzip', ['-tq', z]).code, 0, `unzip -t ${s.name}`);
      bytes = tool('unzip', ['-p', z]).stdout;
    }
    const db = path.join(work, `${s.name}.db`);
    writeFileSync(db, bytes);
    const restored = tool('etcdctl', ['snapshot', 'restore', db, `--data-dir=${path.join(work, `${s.name}.etcd`)}`]);
    assert.equal(restored.code, 0, `etcdctl snapshot restore of ${s.name} decoded by the tools: ${restored.stderr}`);
  }
});

test('a file encrypted by age -r (over zstd, over a plain etcdctl snapshot) reads back with our identity', () => {
  const db = path.join(work, 'etcdctl.db');
  assert.equal(etcdctl(server, ['snapshot', 'save', db]).code, 0);
  const plainAge = path.join(work, 'by-age.db.age');
  assert.equal(tool('age', ['-r', recipient, '-o', plainAge, db]).code, 0);
  assert.deepEqual(keysOf(plainAge, ['--etcd-snapshot-decrypt-identity-file', keyFile]), EXPECTED);
  const zst = tool('zstd', ['-c', '-q', db]).stdout;
  const zstAge = path.join(work, 'by-age.db.zst.age');
  const enc = tool('age', ['-r', recipient, '-o', zstAge], zst);
  assert.equal(enc.code, 0, enc.stderr);
  // named like nothing in particular: the format is read from the bytes
  const odd = path.join(work, 'renamed.bin');
  writeFileSync(odd, readFileSync(zstAge));
  assert.deepEqual(keysOf(odd, ['--etcd-snapshot-decrypt-identity-file', keyFile]), EXPECTED);
});

test('an encrypted snapshot without the identity, or with another one, is refused in one line naming its recipients', () => {
  const s = saved.find((x) => x.encrypted && x.compression === 'zstd');
  assert.ok(s);
  const none = runCli(['etcd-snapshot', 'keys', s.name, '--data-dir', server.dataDir], env);
  assert.notEqual(none.code, 0);
  assert.match(none.stderr, new RegExp(`encrypted with age for ${recipient}.*--etcd-snapshot-decrypt-identity-file`));
  assert.equal(none.stderr.trim().split('\n').length, 1, none.stderr);
  const wrong = runCli(['etcd-snapshot', 'keys', s.name, '--data-dir', server.dataDir, '--etcd-snapshot-decrypt-identity-file', otherKeyFile], env);
  assert.notEqual(wrong.code, 0);
  assert.match(wrong.stderr, new RegExp(`made for ${recipient}`));
  assert.equal(wrong.stderr.trim().split('\n').length, 1, wrong.stderr);
  assert.doesNotMatch(wrong.stderr + none.stderr, /AGE-SECRET-KEY/);
});

test('bad encoding flags are refused before anything is saved', () => {
  const before = snapshotCli(server, ['ls'], env).stdout;
  const bad = snapshotCli(server, ['save', '--etcd-snapshot-encrypt-recipient', 'age1notakey'], env);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /age1notakey/);
  const secret = snapshotCli(server, ['save', '--etcd-snapshot-encrypt-recipient', readFileSync(keyFile, 'utf8').match(/AGE-SECRET-KEY-\S+/)?.[0] ?? ''], env);
  assert.notEqual(secret.code, 0);
  assert.doesNotMatch(secret.stderr, /AGE-SECRET-KEY-1[0-9A-Z]{10}/, 'the secret key is not echoed');
  const conflict = snapshotCli(server, ['save', '--snapshot-compress', '--snapshot-compression', 'zstd'], env);
  assert.notEqual(conflict.code, 0);
  assert.match(conflict.stderr, /--snapshot-compress .* and --snapshot-compression=zstd disagree/);
  const choice = snapshotCli(server, ['save', '--snapshot-compression', 'lz4'], env);
  assert.notEqual(choice.code, 0);
  assert.match(choice.stderr, /lz4/);
  assert.equal(snapshotCli(server, ['ls'], env).stdout, before, 'nothing was saved');
});
