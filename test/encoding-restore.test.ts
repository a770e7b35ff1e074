/**
 * Issue 14: restores (cluster reset) of encoded snapshots with real etcd, S3 (Swift) and
 * Debian's `age`: compressed and encrypted snapshots restore from the snapshot folder, from
 * S3 and from a file `age -r` made; a wrong or missing identity, a truncated encrypted file
 * and a flipped byte are refused with the data dir byte-identical.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { etcdctl, killStarted, startReady, tempDir, type Ports, type ServerProcess } from './helpers/server.js';
import { assertRefused, prepared, reset, RESET_MESSAGE, treeHash } from './helpers/restore.js';
import { s3CliFlags, s3ServerFlags, startSwift, type Swift } from './helpers/swift.js';

let swift: Swift | undefined;
after(async () => {
  killStarted();
  await swift?.stop();
});

const work = tempDir('etcdsnap-encoding-restore-');

function newKey(name: string): { file: string; recipient: string } {
  const file = path.join(work, name);
  const r = spawnSync('age-keygen', ['-o', file], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const pub = /age1[0-9a-z]+/.exec(readFileSync(file, 'utf8'))?.[0];
  assert.ok(pub);
  return { file, recipient: pub };
}
const key = newKey('key.txt');
const other = newKey('other.txt');
const identity = ['--etcd-snapshot-decrypt-identity-file', key.file];

const get = (s: { dataDir: string; ports: Ports }, k: string): string => etcdctl(s, ['get', k, '--print-value-only']).stdout.trim();

/** After a successful reset: a/* of the snapshot are back, b/* written after it are gone. */
async function checkRestored(s0: ServerProcess): Promise<void> {
  const s = await startReady({ dataDir: s0.dataDir, ports: s0.ports, args: ['--etcd-disable-snapshots'] });
  try {
    for (const i of [0, 7, 19]) assert.equal(get(s, `a/${i}`), `A${i}`);
    assert.equal(get(s, 'b/7'), '', 'keys written after the snapshot are gone');
  } finally {
    assert.equal(await s.stop(), 0);
  }
}

const CASES = [
  { compression: 'zstd', encrypted: true },
  { compression: 'zip', encrypted: true },
  { compression: 'gzip', encrypted: true },
  { compression: 'none', encrypted: true },
  { compression: 'zstd', encrypted: false },
  { compression: 'gzip', encrypted: false },
] as const;

for (const { compression, encrypted } of CASES) {
  test(`cluster reset from a${encrypted ? 'n age-encrypted' : ''} ${compression} snapshot in the snapshot folder`, async () => {
    const { s, name, file } = await prepared([], {}, [
      '--snapshot-compression',
      compression,
      ...(encrypted ? ['--etcd-snapshot-encrypt-recipient', key.recipient] : []),
    ]);
    assert.equal(name.endsWith('.age'), encrypted, name);
    const r = reset(s.dataDir, s.ports, [`--cluster-reset-restore-path=${name}`, ...(encrypted ? identity : [])]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${RESET_MESSAGE(s.dataDir)}\n`);
    const layers = [...(encrypted ? ['age'] : []), ...(compression === 'none' ? [] : [compression])].join(' \\+ ');
    assert.match(r.stderr, new RegExp(`Decoded etcd snapshot file \\(${layers}\\)`));
    // the summary names the snapshot as found in the snapshot dir (a bare name), not the decoded temp file nor the current folder
    assert.ok(r.stderr.includes(`restored etcd from ${file} at revision`), r.stderr);
    const leftovers = spawnSync('find', [path.join(s.dataDir, 'server', 'db'), '-maxdepth', '1', '-name', 'restore-*'], { encoding: 'utf8' }).stdout.trim();
    assert.equal(leftovers, '', 'the decoding folder is removed');
    await checkRestored(s);
  });
}

test('cluster reset from a zstd + age snapshot in S3 (downloaded, checked, decoded)', async () => {
  swift ??= await startSwift();
  await swift.createBucket('encrestore');
  const env = { AWS_ACCESS_KEY_ID: swift.accessKey, AWS_SECRET_ACCESS_KEY: swift.secretKey };
  const s3cli = s3CliFlags(swift, 'encrestore');
  const { s, file, name } = await prepared([], env, [...s3cli, '--snapshot-compression', 'zstd', '--etcd-snapshot-encrypt-recipient', key.recipient]);
  rmSync(file);
  rmSync(path.join(s.dataDir, 'server', 'db', '.metadata', name));
  const s3server = s3ServerFlags(swift, 'encrestore');
  const r = reset(s.dataDir, s.ports, [...s3server, `--cluster-reset-restore-path=${name}`, ...identity], env);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(existsSync(file), 'downloaded into the snapshot dir, as stored (encrypted)');
  assert.equal(readFileSync(file).subarray(0, 22).toString(), 'age-encryption.org/v1\n');
  await checkRestored(s);
});

test('cluster reset from a plain snapshot file that the age tool encrypted (age -r)', async () => {
  const { s, file } = await prepared();
  const encrypted = path.join(work, 'by-age-tool.db.age');
  const enc = spawnSync('age', ['-r', key.recipient, '-o', encrypted, file], { encoding: 'utf8' });
  assert.equal(enc.status, 0, enc.stderr);
  const r = reset(s.dataDir, s.ports, [`--cluster-reset-restore-path=${encrypted}`, ...identity]);
  assert.equal(r.code, 0, r.stderr);
  await checkRestored(s);
});

test('refused with the data dir byte-identical: no identity, a wrong identity, a truncated file, flipped bytes', async () => {
  const { s, file, name } = await prepared([], {}, ['--snapshot-compression', 'zstd', '--etcd-snapshot-encrypt-recipient', key.recipient]);
  const db = path.join(s.dataDir, 'server', 'db');
  const before = treeHash(db);
  const fail = (args: string[], re: RegExp): void => {
    const r = reset(s.dataDir, s.ports, args);
    assertRefused(r, re, args.join(' '));
    assert.doesNotMatch(r.stderr, /AGE-SECRET-KEY/);
    assert.equal(treeHash(db), before, `data dir untouched after: ${args.join(' ')}`);
  };
  fail([`--cluster-reset-restore-path=${name}`], new RegExp(`encrypted with age for ${key.recipient}: give --etcd-snapshot-decrypt-identity-file`));
  fail([`--cluster-reset-restore-path=${name}`, '--etcd-snapshot-decrypt-identity-file', other.file], new RegExp(`made for ${key.recipient}`));
  fail([`--cluster-reset-restore-path=${name}`, '--etcd-snapshot-decrypt-identity-file', path.join(work, 'missing.txt')], /missing\.txt/);
  const bad = tempDir('etcdsnap-bad-');
  const size = statSync(file).size;
  const truncated = path.join(bad, 'truncated.zst.age');
  copyFileSync(file, truncated);
  truncateSync(truncated, size - 100);
  fail([`--cluster-reset-restore-path=${truncated}`, ...identity], /cannot decode .*truncated/);
  const bytes = readFileSync(file);
  for (const [what, at] of [
    ['payload', Math.floor(size / 2)],
    ['header', 40],
    ['last tag', size - 3],
  ] as const) {
    const flipped = Buffer.from(bytes);
    flipped[at] = (flipped[at] ?? 0) ^ 0x01;
    const f = path.join(bad, `flipped-${what.replace(' ', '-')}.zst.age`);
    writeFileSync(f, flipped);
    fail([`--cluster-reset-restore-path=${f}`, ...identity], /cannot decode /);
  }
});
