/**
 * Fault injection (issue: reliability): real etcd, real Swift, real processes. Each test is
 * bounded in time. RELIABILITY.md maps each promise to the test that checks it.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import yauzl from 'yauzl';
import { constants as zlibConstants, crc32, deflateRawSync } from 'node:zlib';
import path from 'node:path';
import { s3CliFlags, s3ServerFlags, startSwift, swiftSettings, type Swift } from './helpers/swift.js';
import {
  startReady,
  killStarted,
  snapshotCli,
  snapshotCliAsync,
  fillEtcd,
  waitUntil,
  apiRequest,
  runCli,
  tempDir,
  alive,
  type ServerProcess,
} from './helpers/server.js';
import { S3Store } from '../src/store/s3.js';
import { verifySnapshotFile } from '../src/snapshot/verify.js';

let swift: Swift;
const mounts: string[] = [];
before(async () => {
  swift = await startSwift();
});
after(async () => {
  killStarted();
  for (const m of mounts) spawnSync('umount', ['-l', m]);
  await swift?.stop();
});

const start = startReady;
const s3Env = (): Record<string, string> => ({ AWS_ACCESS_KEY_ID: swift.accessKey, AWS_SECRET_ACCESS_KEY: swift.secretKey });
const serverS3 = (bucket: string): string[] => s3ServerFlags(swift, bucket);
const cliS3 = (bucket: string): string[] => s3CliFlags(swift, bucket);
const store = (bucket: string): S3Store => S3Store.create(swiftSettings(swift, bucket));
async function objectNames(st: S3Store): Promise<string[]> {
  const out: string[] = [];
  for await (const o of st.list()) out.push(o.name);
  return out.sort();
}
const snapDir = (s: ServerProcess): string => path.join(s.dataDir, 'server', 'db', 'snapshots');
const files = (d: string): string[] => (existsSync(d) ? readdirSync(d).sort() : []);
const sha = (f: string): string => createHash('sha256').update(readFileSync(f)).digest('hex');
const auth = (s: ServerProcess, secret = s.token().split('::server:')[1] ?? ''): Record<string, string> => ({
  authorization: `Basic ${Buffer.from(`server:${secret}`).toString('base64')}`,
  'content-type': 'application/json',
});
const msgs = (s: ServerProcess, re: RegExp): string[] => s.lines.map((l) => String(l.msg ?? '')).filter((m) => re.test(m));

test('etcd killed at several points of the stream: no file, no object, failure recorded; the next scheduled snapshot succeeds', async () => {
  await swift.createBucket('killed');
  const s = await start({
    args: [
      ...serverS3('killed'),
      '--etcd-snapshot-schedule-cron',
      '@every 3s',
      '--etcd-snapshot-retention',
      '10',
      '--etcd-arg',
      'quota-backend-bytes=8589934592',
    ],
    env: s3Env(),
  });
  await fillEtcd(s, 1600, 64 * 1024); // ~100 MiB
  const dir = snapDir(s);
  const cut: string[] = [];
  const thresholds = [1, 15, 35].map((m) => m * 1024 * 1024);
  for (let attempt = 0; cut.length < thresholds.length && attempt < 8; attempt++) {
    const threshold = thresholds[cut.length] ?? 0;
    let part = '';
    await waitUntil(
      () => {
        part = files(dir).find((f) => f.endsWith('.part') && (statSync(path.join(dir, f), { throwIfNoEntry: false })?.size ?? 0) > threshold) ?? '';
        return part !== '';
      },
      90_000,
      `a .part beyond ${threshold} bytes`,
    );
    const name = part.replace(/\.part$/, '');
    process.kill(s.etcdPid() ?? -1, 'SIGKILL');
    const outcome = await s.waitFor(
      (l) => l.snapshot === name && (l.msg === `Failed to take etcd snapshot: ${String(l.err ?? '')}` || l.msg === `Snapshot ${name} saved`),
      30_000,
    );
    if (outcome.msg === `Snapshot ${name} saved`) continue; // the stream ended before the kill landed: try again
    cut.push(name);
    assert.ok(!existsSync(path.join(dir, name)) && !existsSync(path.join(dir, part)), `no file for ${name}`);
  }
  assert.equal(cut.length, thresholds.length, 'etcd was killed mid-stream at each point');
  // the next scheduled snapshot after the last cut succeeds, locally and in S3
  const lastCut = cut[cut.length - 1] ?? '';
  await waitUntil(
    () => msgs(s, /^Snapshot etcd-snapshot-node1-\d+ uploaded to S3$/).some((m) => m > `Snapshot ${lastCut}`),
    120_000,
    'a good scheduled snapshot after the faults',
  );
  const objects = await objectNames(store('killed'));
  for (const name of cut) {
    assert.ok(!objects.includes(name), `no S3 object for the cut snapshot ${name}`);
    assert.ok(!existsSync(path.join(dir, name)));
  }
  assert.deepEqual(await store('killed').listMultipartUploads(), [], 'no multipart upload left');
  const ls = JSON.parse(snapshotCli(s, ['ls', '-o', 'json']).stdout) as Array<{ name: string; status: string }>;
  for (const name of cut) assert.equal(ls.find((r) => r.name === name)?.status, 'failed', `${name} is recorded as failed`);
  for (const r of ls.filter((x) => x.status === 'successful')) await verifySnapshotFile(path.join(dir, r.name));
  assert.equal(await s.stop(), 0);
});

test('disk full (a small tmpfs as the snapshot dir): clear error naming the dir, no partial file, earlier snapshot intact, server alive', async () => {
  const root = tempDir();
  const mnt = path.join(root, 'small');
  mkdirSync(mnt);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=6m,mode=0700', 'tmpfs', mnt]);
  mounts.push(mnt);
  const s = await start({ dataDir: path.join(root, 'data'), args: ['--etcd-snapshot-dir', mnt, '--etcd-disable-snapshots'] });
  const first = snapshotCli(s, ['save']);
  assert.equal(first.code, 0, first.stderr);
  const good = files(mnt)[0] ?? '';
  const goodSha = sha(path.join(mnt, good));
  await fillEtcd(s, 200, 64 * 1024); // ~13 MiB: does not fit
  const full = snapshotCli(s, ['save']);
  assert.equal(full.code, 1);
  assert.match(full.stderr, new RegExp(`^error: no space left in snapshot dir ${mnt} while writing on-demand-node1-\\d+\\n$`));
  assert.deepEqual(files(mnt), [good], 'no partial file');
  assert.equal(sha(path.join(mnt, good)), goodSha, 'the earlier snapshot is intact');
  assert.equal((await apiRequest(`${s.url}/healthz`)).status, 200, 'server alive');
  const ls = JSON.parse(snapshotCli(s, ['ls', '-o', 'json']).stdout) as Array<{ status: string; message?: string }>;
  assert.ok(
    ls.some((r) => r.status === 'failed' && /no space left/.test(r.message ?? '')),
    'the failure is recorded',
  );
  assert.equal(await s.stop(), 0);
  execFileSync('umount', [mnt]);
  mounts.pop();
});

test('etcdsnap server killed with SIGKILL mid-save: after a restart no .part, no half object, no open upload, the schedule resumes', async () => {
  await swift.createBucket('sigkill');
  const s = await start({ args: [...serverS3('sigkill'), '--etcd-disable-snapshots', '--etcd-arg', 'quota-backend-bytes=8589934592'], env: s3Env() });
  await fillEtcd(s, 1600, 64 * 1024);
  const dir = snapDir(s);
  const pending = snapshotCliAsync(s, ['save', '--name', 'killed', ...cliS3('sigkill')], s3Env());
  await waitUntil(
    () => files(dir).some((f) => f.endsWith('.part') && (statSync(path.join(dir, f), { throwIfNoEntry: false })?.size ?? 0) > 40 * 1024 * 1024),
    60_000,
    'save under way',
  );
  const etcdPid = s.etcdPid();
  s.child.kill('SIGKILL');
  await s.wait();
  const cli = await pending;
  assert.notEqual(cli.code, 0);
  await waitUntil(() => !alive(etcdPid), 10_000, 'etcd gone with the server');
  assert.ok(
    files(dir).some((f) => f.endsWith('.part')),
    'the crash left a .part behind',
  );
  const again = await start({ dataDir: s.dataDir, ports: s.ports, args: [...serverS3('sigkill'), '--etcd-snapshot-schedule-cron', '@every 2s'], env: s3Env() });
  assert.deepEqual(
    files(dir).filter((f) => f.endsWith('.part') || f.startsWith('killed-')),
    [],
    'no .part and no half file',
  );
  assert.ok(again.lines.some((l) => l.msg === 'removed partial snapshot files left by an earlier run'));
  await again.waitFor((l) => typeof l.msg === 'string' && /^Snapshot etcd-snapshot-node1-\d+ uploaded to S3$/.test(l.msg), 60_000);
  assert.deepEqual(
    (await objectNames(store('sigkill'))).filter((n) => n.startsWith('killed-')),
    [],
    'no half object',
  );
  assert.deepEqual(await store('sigkill').listMultipartUploads(), [], 'no open multipart upload');
  assert.equal(await again.stop(), 0);
});

test('a save whose local rename fails after the S3 parts were sent leaves no object, no parts and no record in the bucket', async () => {
  await swift.createBucket('rename-fails');
  const s = await start({ args: [...serverS3('rename-fails'), '--etcd-disable-snapshots'], env: s3Env() });
  await fillEtcd(s, 400, 64 * 1024); // ~26 MiB: two 16 MiB parts, a real multipart upload
  const dir = snapDir(s);
  const pending = snapshotCliAsync(s, ['save', '--name', 'renamefail', ...cliS3('rename-fails')], s3Env());
  // a folder at the final name makes the rename of the .part fail for real (EISDIR)
  let part = '';
  const deadline = Date.now() + 60_000;
  while (part === '' && Date.now() < deadline) {
    part = files(dir).find((f) => f.startsWith('renamefail-') && f.endsWith('.part')) ?? '';
    if (part === '') await new Promise((r) => setTimeout(r, 5));
  }
  assert.ok(part, 'the save started');
  const name = part.replace(/\.part$/, '');
  mkdirSync(path.join(dir, name));
  const cli = await pending;
  assert.equal(cli.code, 1, cli.stdout + cli.stderr);
  assert.match(cli.stderr, /^error: cannot write renamefail-node1-\d+ in .*: .*(EISDIR|directory)/m);
  await s.waitFor((l) => l.snapshot === name && typeof l.msg === 'string' && l.msg.startsWith('Failed to take etcd snapshot'), 10_000);
  const bucket = store('rename-fails');
  assert.deepEqual(
    (await objectNames(bucket)).filter((n) => n.includes('renamefail-')),
    [],
    'no object and no sidecar in the bucket',
  );
  assert.deepEqual(await bucket.listMultipartUploads(), [], 'no multipart upload (no parts) left');
  assert.deepEqual(
    files(dir).filter((f) => f.endsWith('.part')),
    [],
    'no .part left',
  );
  const ls = JSON.parse(snapshotCli(s, ['ls', '-o', 'json', ...cliS3('rename-fails')], s3Env()).stdout) as Array<{
    name: string;
    status: string;
    location: string;
  }>;
  assert.ok(!ls.some((r) => r.location.startsWith('s3://')), JSON.stringify(ls));
  assert.ok(
    ls.some((r) => r.name === name && r.status === 'failed'),
    'the failure is recorded locally',
  );
  assert.equal(await s.stop(), 0);
});

test('20 concurrent saves with a prune and a delete racing: only "already in progress" errors, every listed snapshot verifies', async () => {
  const s = await start({ args: ['--etcd-disable-snapshots'] });
  await fillEtcd(s, 300, 64 * 1024);
  assert.equal(snapshotCli(s, ['save', '--name', 'race']).code, 0);
  const victim = files(snapDir(s))[0] ?? '';
  const call = (body: unknown): Promise<{ status: number; body: string }> =>
    apiRequest(`${s.url}/db/snapshot`, { method: 'POST', headers: auth(s), body: JSON.stringify(body) });
  const results = await Promise.all([
    ...Array.from({ length: 20 }, () => call({ operation: 'save', name: ['race'] })),
    call({ operation: 'prune', name: ['race'], retention: 1 }),
    call({ operation: 'delete', name: [victim] }),
  ]);
  for (const r of results) {
    if (r.status !== 200) assert.deepEqual([r.status, JSON.parse(r.body)], [409, { error: 'snapshot save already in progress' }]);
  }
  assert.ok(results.slice(0, 20).some((r) => r.status === 200));
  const ls = JSON.parse(snapshotCli(s, ['ls', '-o', 'json']).stdout) as Array<{ name: string; status: string; sha256?: string }>;
  assert.ok(ls.length >= 1);
  for (const r of ls) {
    assert.equal(r.status, 'successful');
    const f = path.join(snapDir(s), r.name);
    await verifySnapshotFile(f);
    if (r.sha256) assert.equal(sha(f), r.sha256);
  }
  assert.deepEqual(
    files(snapDir(s)).filter((f) => f.endsWith('.part')),
    [],
  );
  assert.equal(await s.stop(), 0);
});

/**
 * Writes a zip whose single entry is `bytes` zeros (a multiple of 64 MiB), deflated, with
 * honest sizes and CRC, without the zeros ever being on disk or deflated one by one: 64 MiB
 * of zeros is deflated once with a full flush (a byte-aligned block that refers to nothing
 * before it), that block is written `bytes / 64 MiB` times, then an empty final block. The
 * sizes are in zip64 fields (4 GiB is one more than the 32-bit fields hold).
 */
async function writeZeroBomb(file: string, bytes: number): Promise<void> {
  const unit = 64 * 1024 * 1024;
  assert.equal(bytes % unit, 0);
  const zeros = Buffer.alloc(unit);
  const block = deflateRawSync(zeros, { level: 9, finishFlush: zlibConstants.Z_FULL_FLUSH });
  const last = Buffer.from([0x03, 0x00]); // a final fixed-Huffman block with no data
  let crc = 0;
  for (let i = 0; i < bytes / unit; i++) crc = crc32(zeros, crc);
  const compressed = block.length * (bytes / unit) + last.length;
  const name = Buffer.from('bomb');
  const u64 = (n: number): Buffer => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(n));
    return b;
  };
  const zip64 = (...sizes: number[]): Buffer => Buffer.concat([Buffer.from([0x01, 0x00, sizes.length * 8, 0x00]), ...sizes.map(u64)]);
  const dosTime = 0,
    dosDate = ((2024 - 1980) << 9) | (1 << 5) | 1;
  const local = Buffer.alloc(30);
  local.writeUInt32LE(0x04034b50, 0);
  local.writeUInt16LE(45, 4); // version needed: zip64
  local.writeUInt16LE(8, 8); // deflate
  local.writeUInt16LE(dosTime, 10);
  local.writeUInt16LE(dosDate, 12);
  local.writeUInt32LE(crc, 14);
  local.writeUInt32LE(0xffffffff, 18); // sizes in the zip64 extra field (both, as a local header must)
  local.writeUInt32LE(0xffffffff, 22);
  const localExtra = zip64(bytes, compressed);
  local.writeUInt16LE(name.length, 26);
  local.writeUInt16LE(localExtra.length, 28);
  const central = Buffer.alloc(46);
  central.writeUInt32LE(0x02014b50, 0);
  central.writeUInt16LE((3 << 8) | 45, 4); // made by: unix
  central.writeUInt16LE(45, 6);
  central.writeUInt16LE(8, 10);
  central.writeUInt16LE(dosTime, 12);
  central.writeUInt16LE(dosDate, 14);
  central.writeUInt32LE(crc, 16);
  central.writeUInt32LE(compressed, 20);
  central.writeUInt32LE(0xffffffff, 24); // uncompressed size: in the zip64 extra field
  const centralExtra = zip64(bytes);
  central.writeUInt16LE(name.length, 28);
  central.writeUInt16LE(centralExtra.length, 30);
  central.writeUInt32LE((0o100600 << 16) >>> 0, 38);
  central.writeUInt32LE(0, 42); // the local header's offset
  const centralOffset = local.length + name.length + localExtra.length + compressed;
  const centralSize = central.length + name.length + centralExtra.length;
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(1, 8);
  end.writeUInt16LE(1, 10);
  end.writeUInt32LE(centralSize, 12);
  end.writeUInt32LE(centralOffset, 16);
  async function* parts(): AsyncGenerator<Buffer> {
    yield Buffer.concat([local, name, localExtra]);
    for (let i = 0; i < bytes / unit; i++) yield block;
    yield Buffer.concat([last, central, name, centralExtra, end]);
  }
  await pipeline(Readable.from(parts()), createWriteStream(file));
}

/** Reads the zip as the restore does (yauzl, same checks) and counts the entry's inflated bytes. */
async function inflatedSize(file: string): Promise<{ declared: number; inflated: number; entries: number }> {
  const zip = await new Promise<yauzl.ZipFile>((resolve, reject) =>
    yauzl.open(file, { lazyEntries: true, autoClose: false, validateEntrySizes: true, strictFileNames: true }, (err, z) =>
      err || !z ? reject(err ?? new Error('no zip')) : resolve(z),
    ),
  );
  try {
    const entry = await new Promise<yauzl.Entry>((resolve, reject) => {
      zip.once('entry', resolve);
      zip.once('error', reject);
      zip.readEntry();
    });
    const src = await new Promise<NodeJS.ReadableStream>((resolve, reject) =>
      zip.openReadStream(entry, (err, st) => (err || !st ? reject(err ?? new Error('no stream')) : resolve(st))),
    );
    let inflated = 0;
    await pipeline(
      src,
      new Writable({
        write: (c: Buffer, _enc, done) => {
          inflated += c.length;
          done();
        },
      }),
    );
    return { declared: entry.uncompressedSize, inflated, entries: zip.entryCount };
  } finally {
    zip.close();
  }
}

/** sha256 over every path, mode and file content under `root` (folders included). */
function treeHash(root: string): string {
  const h = createHash('sha256');
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(d, e.name);
      h.update(`${path.relative(root, p)}\0${statSync(p).mode}\0`);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) h.update(readFileSync(p));
    }
  };
  walk(root);
  return h.digest('hex');
}

test("a real zip bomb (4 GiB of zeros in a 4 MB zip, honest sizes) passes the zip library's checks and is refused by the free-space check alone; nothing extracted, the data dir byte-identical", async () => {
  // the entry is extracted under the data dir: a 256 MiB tmpfs there leaves no room for it
  const dataMnt = tempDir();
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256m,mode=0700', 'tmpfs', dataMnt]);
  mounts.push(dataMnt);
  const s = await start({ dataDir: path.join(dataMnt, 'data'), args: ['--etcd-disable-snapshots'] });
  assert.equal(snapshotCli(s, ['save']).code, 0);
  assert.equal(await s.stop(), 0);

  const GiB = 1024 ** 3;
  const bombBytes = 4 * GiB; // over 4 GiB - 1: the sizes are in the zip64 fields
  const bombDir = tempDir();
  const bomb = path.join(bombDir, 'bomb.zip');
  await writeZeroBomb(bomb, bombBytes);
  const zipBytes = statSync(bomb).size;
  assert.ok(zipBytes < 8 * 1024 * 1024, `a small zip (${zipBytes} bytes)`);
  // another reader (Info-ZIP) sees the same single 4 GiB entry
  assert.match(execFileSync('unzip', ['-l', bomb], { encoding: 'utf8' }), new RegExp(`^\\s*${bombBytes}\\s+\\S+ \\S+\\s+bomb$`, 'm'));
  // genuine: with yauzl's own checks on (as unzip.ts opens it), it really inflates to what it declares
  assert.deepEqual(await inflatedSize(bomb), { declared: bombBytes, inflated: bombBytes, entries: 1 });

  const hash = treeHash(s.dataDir);
  const cfg = path.join(path.dirname(s.dataDir), `config-${s.ports.supervisor}.yaml`);
  const r = runCli([
    'server',
    '--config',
    cfg,
    '--data-dir',
    s.dataDir,
    '--supervisor-port',
    String(s.ports.supervisor),
    '--etcd-client-port',
    String(s.ports.client),
    '--etcd-peer-port',
    String(s.ports.peer),
    '--cluster-reset',
    `--cluster-reset-restore-path=${bomb}`,
  ]);
  assert.equal(r.code, 1, r.stderr);
  const parent = path.join(s.dataDir, 'server', 'db');
  const esc = (t: string): string => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const m = new RegExp(
    `^error: ${esc(bomb)} is not a compressed etcd snapshot: its entry would need ${bombBytes} bytes and only (\\d+) are free in ${esc(parent)}; a restore needs twice the entry size plus 128 MiB free there \\(${2 * bombBytes + 128 * 1024 * 1024} bytes\\): free some space or use another --data-dir$`,
    'm',
  ).exec(r.stderr);
  assert.ok(m, `the free-space check refused it: ${r.stderr}`);
  assert.ok(Number(m[1]) > 0 && Number(m[1]) <= 256 * 1024 * 1024, `free bytes of the tmpfs: ${m[1]}`);
  assert.equal(treeHash(s.dataDir), hash, 'the data dir is byte-identical (no restore-* folder, no partial file)');
  assert.deepEqual(readdirSync(bombDir), ['bomb.zip'], 'nothing extracted beside the zip');
  execFileSync('umount', [dataMnt]);
  mounts.splice(mounts.indexOf(dataMnt), 1);
});

test('bad API input: invalid JSON, oversized and non-object bodies, wrong field types, traversal and huge names: clear 4xx, nothing changed', async () => {
  const s = await start({ args: ['--etcd-disable-snapshots'] });
  assert.equal(snapshotCli(s, ['save']).code, 0);
  const before = files(snapDir(s));
  const post = (body: string): Promise<{ status: number; body: string }> => apiRequest(`${s.url}/db/snapshot`, { method: 'POST', headers: auth(s), body });
  const cases: Array<[string, number, RegExp]> = [
    ['{not json', 400, /request body is not valid JSON/],
    ['[1,2]', 400, /must be a JSON object/],
    [JSON.stringify({ operation: 'save', name: ['x'.repeat(100 * 1024)] }), 413, /larger than 65536 bytes/],
    [JSON.stringify({ operation: 'drop' }), 400, /invalid operation/],
    [JSON.stringify({ operation: 'prune', retention: -1 }), 400, /invalid field "retention"/],
    [JSON.stringify({ operation: 'prune', retention: '5' }), 400, /invalid field "retention"/],
    [JSON.stringify({ operation: 'save', compress: 1 }), 400, /invalid field "compress"/],
    [JSON.stringify({ operation: 'save', name: ['../../etc/x'] }), 400, /invalid snapshot name prefix/],
    [JSON.stringify({ operation: 'save', name: ['n'.repeat(300)] }), 400, /longer than/],
    [JSON.stringify({ operation: 'delete', name: ['../../server/token'] }), 400, /invalid snapshot name/],
    [JSON.stringify({ operation: 'delete', name: [before[0]], dir: 'relative/dir' }), 400, /give an absolute path/],
    [JSON.stringify({ operation: 'list', s3: { bucket: '' } }), 400, /"bucket" is required/],
    [JSON.stringify({ operation: 'list', s3: { bucket: 'b', secretKey: 5 } }), 400, /"secretKey" must be a string/],
    [JSON.stringify({ operation: 'save', surprise: true }), 400, /unknown field "surprise"/],
  ];
  for (const [body, status, re] of cases) {
    const r = await post(body);
    assert.equal(r.status, status, `${body.slice(0, 60)} → ${r.status} ${r.body}`);
    assert.match((JSON.parse(r.body) as { error: string }).error, re);
  }
  const wrongMethod = await apiRequest(`${s.url}/db/snapshot`, { headers: auth(s) });
  assert.equal(wrongMethod.status, 405);
  assert.deepEqual(files(snapDir(s)), before, 'nothing changed');
  // CLI flags
  for (const [args, re] of [
    [['prune', '--snapshot-retention', '-1'], /-1 is negative/],
    [['ls', '--etcd-server', 'ftp://x'], /invalid --etcd-server "ftp:\/\/x"/],
    [['save', '--s3', '--s3-bucket', 'b', '--s3-timeout', 'soon'], /is not a duration/],
    [['save', '--name', 'a/b'], /invalid snapshot name prefix/],
  ] as Array<[string[], RegExp]>) {
    const r = snapshotCli(s, args);
    assert.equal(r.code, 1, args.join(' '));
    assert.match(r.stderr, re);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
  assert.deepEqual(files(snapDir(s)), before, 'nothing changed');
  assert.equal(await s.stop(), 0);
});

test("the API refuses a missing token, a wrong one and another cluster's token; the CLI will not send a token to a server with another CA", async () => {
  const a = await start({ args: ['--etcd-disable-snapshots'] });
  const b = await start({ args: ['--etcd-disable-snapshots'] });
  const save = JSON.stringify({ operation: 'save' });
  for (const headers of [{}, auth(a, 'wrong'), auth(a, b.token().split('::server:')[1] ?? '')]) {
    const r = await apiRequest(`${a.url}/db/snapshot`, { method: 'POST', headers, body: save });
    assert.equal(r.status, 401);
  }
  assert.deepEqual(files(snapDir(a)), [], 'nothing done');
  // b's token against a: the CA pinned by the token is not a's
  const r = snapshotCli(a, ['save', '--etcd-token', b.token()]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /does not present the CA the token pins/);
  assert.ok(!a.raw.join('\n').includes(b.token().split('::server:')[1] ?? 'x'), "b's secret never reached a");
  assert.equal(await a.stop(), 0);
  assert.equal(await b.stop(), 0);
});
