/**
 * Day-2 polish (issue "A restore that cannot be undone by a stale peer, and day-2 polish a k3s
 * operator would expect", points 4-6), against real servers, etcd and Swift:
 * (4) snapshots with foreign names (etcdctl's, a renamed k3s zip) are listed, marked, and
 *     deletable; other files are not listed; retention never touches them;
 * (5) a refused start or reset changes nothing: a fresh data dir stays absent, an existing
 *     one byte-identical;
 * (6) restore sources as users write them: a file:// URL, a bare name (snapshot dir, then S3),
 *     and clear refusals.
 * Plus unit tests of the pure parts (restore source parsing, the snapshot content rule, the
 * ls table's Note column).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { startReady, startServer, killStarted, etcdctl, snapshotCli, tempDir, freePorts, type ServerProcess, type Ports } from './helpers/server.js';
import { reset } from './helpers/restore.js';
import { startSwift, type Swift } from './helpers/swift.js';
import { parseRestoreSource } from '../src/snapshot/restore-source.js';
import { classifySnapshotHead } from '../src/store/snapshot-kind.js';
import { renderRecords } from '../src/cli/output.js';
import { planRetention } from '../src/retention/policy.js';
import type { SnapshotRecord } from '../src/model/records.js';

let swift: Swift | undefined;
after(async () => {
  killStarted();
  await swift?.stop();
});
const start = startReady;

const snapDir = (s: { dataDir: string }): string => path.join(s.dataDir, 'server', 'db', 'snapshots');
const errorLines = (text: string): string[] => text.split('\n').filter((l) => l.startsWith('error: '));
/** `t` escaped for a RegExp. */
const esc = (t: string): string => t.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/** sha256 over the whole tree under `dir`: every entry's relative path, type and mode, file contents, link targets. */
function treeHash(dir: string): string {
  const h = createHash('sha256');
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = path.join(d, name);
      const st = lstatSync(p);
      h.update(`${path.relative(dir, p)}\0${st.mode}\0`);
      if (st.isDirectory()) walk(p);
      else if (st.isSymbolicLink()) h.update(readlinkSync(p));
      else h.update(readFileSync(p));
    }
  };
  walk(dir);
  return h.digest('hex');
}

/** Listens on 127.0.0.1:`port` until the returned function is called. */
async function occupy(port: number): Promise<() => Promise<void>> {
  const srv = net.createServer();
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(port, '127.0.0.1', () => resolve());
  });
  return () => new Promise<void>((resolve) => srv.close(() => resolve()));
}

const saveName = (r: { stdout: string }): string => /^Snapshot (\S+) saved\./.exec(r.stdout)?.[1] ?? '';
const lsJson = (s: ServerProcess): SnapshotRecord[] => {
  const r = snapshotCli(s, ['ls', '-o', 'json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as SnapshotRecord[];
};

// ---------------------------------------------------------------------------------------------
// unit tests of the pure parts

test('unit: restore sources are parsed as users write them (path, file:// URL, bare name) and the rest is refused', () => {
  const cwd = '/work/here';
  assert.deepEqual(parseRestoreSource('/var/snap.db', cwd), { kind: 'path', path: '/var/snap.db' });
  assert.deepEqual(parseRestoreSource('sub/snap.db', cwd), { kind: 'path', path: '/work/here/sub/snap.db' });
  assert.deepEqual(parseRestoreSource('./snap.db', cwd), { kind: 'path', path: '/work/here/snap.db' });
  assert.deepEqual(parseRestoreSource('file:///var/lib/x/snapshots/on-demand-n-1700000000', cwd), {
    kind: 'path',
    path: '/var/lib/x/snapshots/on-demand-n-1700000000',
  });
  assert.deepEqual(parseRestoreSource('FILE://localhost/var/a b.db', cwd), { kind: 'path', path: '/var/a b.db' }, 'as ls prints it: not percent-decoded');
  assert.deepEqual(parseRestoreSource('on-demand-n-1700000000.zip', cwd), { kind: 'name', name: 'on-demand-n-1700000000.zip' });
  assert.deepEqual(parseRestoreSource('manual-backup.db', cwd), { kind: 'name', name: 'manual-backup.db' });
  assert.deepEqual(parseRestoreSource('backup:1.db', cwd), { kind: 'name', name: 'backup:1.db' }, 'a colon without // is no URL');
  const refused: Array<[string, RegExp]> = [
    ['', /it is empty/],
    ['  ', /it is empty/],
    ['file://relative/x.db', /a file:\/\/ URL needs an absolute path/],
    ['file://', /a file:\/\/ URL needs an absolute path/],
    ['http://example.com/snap.db', /http:\/\/ is not supported; give a path, a file:\/\/\/absolute\/path URL, or a snapshot name/],
    ['HTTPS://example.com/snap.db', /https:\/\/ is not supported/],
    [
      's3://bucket/folder/on-demand-n-1700000000',
      /s3:\/\/ locations are not read directly; give the snapshot name \("on-demand-n-1700000000"\) with --etcd-s3/,
    ],
    ['..', /invalid snapshot name in --cluster-reset-restore-path "\.\.": path separators/],
    ['a\\b', /invalid snapshot name in --cluster-reset-restore-path/],
    ['x\0y', /NUL is not allowed/],
  ];
  for (const [raw, re] of refused) {
    assert.throws(
      () => parseRestoreSource(raw, cwd),
      (err: unknown) => {
        assert.ok(err instanceof Error);
        assert.match(err.message, re, JSON.stringify(raw));
        assert.ok(!err.message.includes('\n'), 'one line');
        return true;
      },
    );
  }
});

test('unit: a file is a snapshot by content when it is an etcd snapshot (bbolt meta page, size 512n+32) or a zip named .zip', () => {
  const head = Buffer.alloc(24);
  head.writeUInt32LE(0xed0cdaed, 16);
  head.writeUInt32LE(2, 20);
  assert.equal(classifySnapshotHead('manual-backup.db', 4096 * 6 + 32, head), 'plain');
  assert.equal(classifySnapshotHead('manual-backup.db', 4096 * 6, head), undefined, 'no room for the sha256 trailer');
  const wrong = Buffer.from(head);
  wrong.writeUInt32LE(0xdeadbeef, 16);
  assert.equal(classifySnapshotHead('manual-backup.db', 4096 * 6 + 32, wrong), undefined);
  assert.equal(classifySnapshotHead('manual-backup.db', 4096 * 6 + 32, head.subarray(0, 10)), undefined, 'too short');
  const zip = Buffer.from('PK\x03\x04rest-of-header......', 'latin1');
  assert.equal(classifySnapshotHead('backup.zip', 1234, zip), 'zip');
  assert.equal(classifySnapshotHead('backup', 1234, zip), undefined, 'ls lists a zip only under a .zip name (restore reads the format from the bytes)');
  assert.equal(classifySnapshotHead('backup.zip', 4096 * 6 + 32, head), undefined);
  assert.equal(classifySnapshotHead('notes.txt', 15, Buffer.from('not a snapshot\n')), undefined);
});

test('unit: the ls table adds a Note column only when a row has a foreign name', () => {
  const ours: SnapshotRecord = {
    name: 'on-demand-n-1700000000',
    location: 'file:///s/on-demand-n-1700000000',
    nodeName: 'n',
    createdAt: '2023-11-14T22:13:20Z',
    size: 5,
    compressed: false,
    status: 'successful',
  };
  const theirs: SnapshotRecord = { ...ours, name: 'manual-backup.db', location: 'file:///s/manual-backup.db', foreignName: true };
  assert.match(renderRecords([ours], 'table'), /^Name\s+Location\s+Size Created\non-demand-n-1700000000 /, 'no Note column without a foreign name');
  const lines = renderRecords([ours, theirs], 'table').trimEnd().split('\n');
  assert.match(lines[0] ?? '', /^Name\s+Location\s+Size\s+Created\s+Note$/);
  assert.match(lines[1] ?? '', /^on-demand-n-1700000000\s+file:\/\/\/s\/on-demand-n-1700000000\s+5\s+2023-11-14T22:13:20Z$/, 'no trailing blanks');
  assert.match(lines[2] ?? '', /^manual-backup\.db\s+file:\/\/\/s\/manual-backup\.db\s+5\s+2023-11-14T22:13:20Z foreign name$/);
  assert.equal((JSON.parse(renderRecords([theirs], 'json')) as SnapshotRecord[])[0]?.foreignName, true);
  assert.match(renderRecords([theirs], 'yaml'), /foreignName: true/);
});

// ---------------------------------------------------------------------------------------------
// (4) snapshots made by others

test('(4) ls lists snapshots with foreign names (etcdctl snapshot save, a k3s-style zip), marked; delete takes them by name; other files are not listed; prune never deletes them', async () => {
  const s = await start({ args: ['--etcd-disable-snapshots'] });
  assert.equal(etcdctl(s, ['put', 'k', 'v']).code, 0);
  const dir = snapDir(s);
  const manual = path.join(dir, 'manual-backup.db');
  assert.equal(etcdctl(s, ['snapshot', 'save', manual]).code, 0);
  // a k3s-style zip (one entry named like the file) under a name of someone else's choosing
  const work = tempDir();
  copyFileSync(manual, path.join(work, 'before-upgrade'));
  assert.equal(spawnSync('zip', ['-q', '-j', path.join(dir, 'before-upgrade.zip'), path.join(work, 'before-upgrade')]).status, 0);
  // files that are not snapshots, or not finished ones: never listed
  writeFileSync(path.join(dir, 'notes.txt'), 'not a snapshot\n');
  copyFileSync(manual, path.join(dir, 'copy-in-progress.db.part'));
  copyFileSync(manual, path.join(dir, '.hidden-copy.db'));
  writeFileSync(path.join(dir, 'fake.zip'), 'no zip at all');
  const first = saveName(snapshotCli(s, ['save']));
  const second = saveName(snapshotCli(s, ['save']));
  assert.ok(first && second && first !== second);

  // table: k3s's columns plus Note for the foreign names
  const ls = snapshotCli(s, ['ls']);
  assert.equal(ls.code, 0, ls.stderr);
  const lines = ls.stdout.trimEnd().split('\n');
  assert.match(lines[0] ?? '', /^Name\s+Location\s+Size\s+Created\s+Note$/);
  const rows = new Map(lines.slice(1).map((l) => [l.split(/\s+/)[0] ?? '', l]));
  assert.deepEqual([...rows.keys()].sort(), ['before-upgrade.zip', first, 'manual-backup.db', second].sort(), ls.stdout);
  assert.match(rows.get('manual-backup.db') ?? '', new RegExp(`^manual-backup\\.db\\s+${esc(`file://${manual}`)}\\s+\\d+\\s+\\S+Z foreign name$`));
  assert.match(rows.get('before-upgrade.zip') ?? '', / foreign name$/);
  assert.doesNotMatch(rows.get(first) ?? '', /foreign/);

  // json and yaml: the field
  const js = lsJson(s);
  const byName = new Map(js.map((r) => [r.name, r]));
  assert.equal(byName.get('manual-backup.db')?.foreignName, true);
  assert.equal(byName.get('manual-backup.db')?.location, `file://${manual}`);
  assert.equal(byName.get('before-upgrade.zip')?.foreignName, true);
  assert.equal(byName.get('before-upgrade.zip')?.compressed, true);
  assert.equal(byName.get(first)?.foreignName, undefined);
  assert.equal(js.length, 4);
  const yaml = snapshotCli(s, ['ls', '-o', 'yaml']).stdout;
  assert.equal(yaml.match(/foreignName: true/g)?.length, 2, yaml);

  // prune with retention 1: only the older of our own snapshots goes
  const pr = snapshotCli(s, ['prune', '--snapshot-retention', '1']);
  assert.equal(pr.code, 0, pr.stderr);
  assert.equal(pr.stdout, `Snapshot ${first} deleted.\n`);
  for (const f of ['manual-backup.db', 'before-upgrade.zip', 'notes.txt', second]) assert.ok(existsSync(path.join(dir, f)), f);

  // delete: a listed foreign name goes; a file that is not a snapshot is refused, nothing deleted
  const refused = snapshotCli(s, ['delete', 'manual-backup.db', 'notes.txt']);
  assert.equal(refused.code, 1);
  assert.deepEqual(errorLines(refused.stderr), [
    `error: "notes.txt" in ${dir} is not a snapshot (neither an etcd snapshot nor a .zip of one, or a hidden or .part file); delete removes only what etcd-snapshot ls lists, nothing was deleted`,
  ]);
  assert.ok(existsSync(manual) && existsSync(path.join(dir, 'notes.txt')), 'nothing deleted');
  for (const hidden of ['.hidden-copy.db', 'copy-in-progress.db.part', 'fake.zip']) {
    const r = snapshotCli(s, ['delete', hidden]);
    assert.equal(r.code, 1, hidden);
    assert.equal(errorLines(r.stderr).length, 1, r.stderr);
    assert.ok(existsSync(path.join(dir, hidden)), hidden);
  }
  const del = snapshotCli(s, ['delete', 'manual-backup.db', 'before-upgrade.zip']);
  assert.equal(del.code, 0, del.stderr);
  assert.equal(del.stdout, 'Snapshot manual-backup.db deleted.\nSnapshot before-upgrade.zip deleted.\n');
  assert.ok(!existsSync(manual) && !existsSync(path.join(dir, 'before-upgrade.zip')));
  assert.deepEqual(
    lsJson(s).map((r) => r.name),
    [second],
  );
  assert.equal(await s.stop(), 0);
});

// ---------------------------------------------------------------------------------------------
// (5) checks before any side effect

test('(5) a refused start changes nothing: missing --etcd-snapshot-dir, supervisor or etcd client port in use, an unreachable --server (fresh data dir stays absent, an existing one byte-identical); a reset with the etcd port in use too', async () => {
  const refused = async (dataDir: string, ports: Ports, args: string[], re: RegExp): Promise<void> => {
    const s = await startServer({ dataDir, ports, args: ['--etcd-disable-snapshots', ...args] });
    assert.equal(await s.wait(60_000), 1, s.raw.join('\n'));
    const errs = errorLines(s.raw.join('\n'));
    assert.equal(errs.length, 1, s.raw.join('\n'));
    assert.match(errs[0] ?? '', re);
  };
  const missing = path.join(tempDir(), 'nope');
  const missingRe = new RegExp(`^error: snapshot dir ${missing} does not exist; create it \\(mode 0700\\) or use the default$`);
  const inUse = (port: number, flag: string): RegExp =>
    new RegExp(`^error: port ${port} \\(${flag}\\) on 127\\.0\\.0\\.1 is already in use; stop the process using it or choose another port with ${flag}$`);

  // a fresh data dir path: absent afterwards
  const fresh = path.join(tempDir(), 'data');
  let ports = await freePorts();
  await refused(fresh, ports, ['--etcd-snapshot-dir', missing], missingRe);
  assert.ok(!existsSync(fresh), 'missing snapshot dir: no data dir made');
  let release = await occupy(ports.supervisor);
  try {
    await refused(fresh, ports, [], inUse(ports.supervisor, '--supervisor-port'));
  } finally {
    await release();
  }
  assert.ok(!existsSync(fresh), 'supervisor port in use: no data dir made');
  release = await occupy(ports.client);
  try {
    await refused(fresh, ports, [], inUse(ports.client, '--etcd-client-port'));
  } finally {
    await release();
  }
  assert.ok(!existsSync(fresh), 'etcd client port in use: no data dir made');
  // joining a server that does not answer: the handshake comes before the data dir
  const nobody = (await freePorts()).supervisor;
  await refused(
    fresh,
    ports,
    ['--server', `https://127.0.0.1:${nobody}`, '--token', `K10${'0'.repeat(64)}::server:${'s'.repeat(32)}`],
    /^error: .*127\.0\.0\.1:\d+/,
  );
  assert.ok(!existsSync(fresh), 'unreachable --server: no data dir made');

  // an existing data dir: byte-identical afterwards (a snapshot in it for the reset below)
  const s = await start({ args: ['--etcd-disable-snapshots'] });
  const file = path.join(snapDir(s), saveName(snapshotCli(s, ['save'])));
  assert.ok(existsSync(file));
  assert.equal(await s.stop(), 0);
  ports = s.ports;
  const before = treeHash(s.dataDir);
  await refused(s.dataDir, ports, ['--etcd-snapshot-dir', missing], missingRe);
  assert.equal(treeHash(s.dataDir), before, 'missing snapshot dir');
  release = await occupy(ports.supervisor);
  try {
    await refused(s.dataDir, ports, [], inUse(ports.supervisor, '--supervisor-port'));
  } finally {
    await release();
  }
  assert.equal(treeHash(s.dataDir), before, 'supervisor port in use');
  release = await occupy(ports.client);
  try {
    await refused(s.dataDir, ports, [], inUse(ports.client, '--etcd-client-port'));
    const r = reset(s.dataDir, ports, ['--cluster-reset-restore-path', file]);
    assert.equal(r.code, 1, r.stderr);
    assert.deepEqual(errorLines(r.stderr).length, 1, r.stderr);
    assert.match(errorLines(r.stderr)[0] ?? '', inUse(ports.client, '--etcd-client-port'));
  } finally {
    await release();
  }
  assert.equal(treeHash(s.dataDir), before, 'etcd client port in use (server and reset)');

  // and the same data dir still starts
  const again = await start({ dataDir: s.dataDir, ports, args: ['--etcd-disable-snapshots'] });
  assert.equal(etcdctl(again, ['get', 'nothing']).code, 0);
  assert.equal(await again.stop(), 0);
});

// ---------------------------------------------------------------------------------------------
// (6) restore sources

test('(6) restore from a file:// URL (ls Location), a bare name in the snapshot dir (a .zip leaves no extracted copy), a bare name from S3; refusals say what to give', async () => {
  swift ??= await startSwift();
  await swift.createBucket('day2');
  const env = { AWS_ACCESS_KEY_ID: swift.accessKey, AWS_SECRET_ACCESS_KEY: swift.secretKey };
  const s3cli = ['--s3', '--s3-endpoint', swift.endpoint, '--s3-insecure', '--s3-bucket', 'day2', '--s3-folder', 'f', '--s3-bucket-lookup-type', 'path'];
  const s3server = [
    '--etcd-s3',
    '--etcd-s3-endpoint',
    swift.endpoint,
    '--etcd-s3-insecure',
    '--etcd-s3-bucket',
    'day2',
    '--etcd-s3-folder',
    'f',
    '--etcd-s3-bucket-lookup-type',
    'path',
  ];

  const s = await start({ args: ['--etcd-disable-snapshots'], env });
  for (let i = 0; i < 10; i++) assert.equal(etcdctl(s, ['put', `a/${i}`, `A${i}`]).code, 0);
  const plain = saveName(snapshotCli(s, ['save']));
  const zipped = saveName(snapshotCli(s, ['save', '--snapshot-compress']));
  const inS3 = saveName(snapshotCli(s, ['save', ...s3cli], env));
  assert.ok(plain && zipped.endsWith('.zip') && inS3, `${plain} ${zipped} ${inS3}`);
  const location = lsJson(s).find((r) => r.name === plain)?.location ?? '';
  assert.equal(location, `file://${path.join(snapDir(s), plain)}`);
  for (let i = 0; i < 10; i++) assert.equal(etcdctl(s, ['put', `b/${i}`, `B${i}`]).code, 0);
  assert.equal(await s.stop(), 0);
  const listed = [plain, zipped, inS3].sort();

  const restoredAndListed = async (): Promise<void> => {
    const back = await start({ dataDir: s.dataDir, ports: s.ports, args: ['--etcd-disable-snapshots'], env });
    assert.equal(etcdctl(back, ['get', 'a/7', '--print-value-only']).stdout.trim(), 'A7');
    assert.equal(etcdctl(back, ['get', 'b/7', '--print-value-only']).stdout.trim(), '', 'keys written after the snapshot are gone');
    // exactly the snapshots that were there before: no extracted copy, nothing downloaded twice
    assert.deepEqual(
      lsJson(back)
        .map((r) => r.name)
        .sort(),
      listed,
    );
    const dry = snapshotCli(back, ['prune', '--snapshot-retention', '1', '--dry-run']);
    assert.equal(dry.code, 0, dry.stderr);
    // the two older by the time in their names (two saves may share a second: then by name)
    const older = planRetention(listed, { prefix: 'on-demand', nodeName: 'node1', keep: 1 }).remove;
    assert.equal(older.length, 2);
    assert.deepEqual(dry.stdout.trimEnd().split('\n').sort(), older.map((n) => `Snapshot ${n} would be deleted.`).sort());
    assert.equal(await back.stop(), 0);
  };

  // refusals first: nothing changes
  const before = treeHash(s.dataDir);
  const refused = (args: string[], re: RegExp, withEnv: Record<string, string> = {}): void => {
    const r = reset(s.dataDir, s.ports, args, withEnv);
    assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
    const errs = errorLines(r.stderr);
    assert.equal(errs.length, 1, r.stderr);
    assert.match(errs[0] ?? '', re);
    assert.equal(treeHash(s.dataDir), before, `data dir untouched after: ${args.join(' ')}`);
  };
  refused(
    ['--cluster-reset-restore-path=file://relative/snap.db'],
    /^error: invalid --cluster-reset-restore-path "file:\/\/relative\/snap\.db": a file:\/\/ URL needs an absolute path/,
  );
  refused(
    [`--cluster-reset-restore-path=http://127.0.0.1:1/${plain}`],
    /^error: invalid --cluster-reset-restore-path "http:.*": http:\/\/ is not supported; give a path, a file:\/\/\/absolute\/path URL, or a snapshot name/,
  );
  const nowhere = 'on-demand-node1-1600000000';
  refused(
    [`--cluster-reset-restore-path=${nowhere}`],
    new RegExp(
      `^error: etcd: snapshot "${nowhere}" not found: looked in the snapshot dir ${esc(snapDir(s))}, in the current folder ${esc(process.cwd())}; .*add --etcd-s3`,
    ),
  );
  refused(
    [...s3server, `--cluster-reset-restore-path=${nowhere}`],
    new RegExp(
      `^error: etcd: snapshot "${nowhere}" not found: looked in the snapshot dir ${esc(snapDir(s))}, in S3 \\(s3://day2/f/${nowhere}\\), in the current folder `,
    ),
    env,
  );

  // the Location column of ls, pasted as is
  let r = reset(s.dataDir, s.ports, [`--cluster-reset-restore-path=${location}`]);
  assert.equal(r.code, 0, r.stderr);
  await restoredAndListed();

  // a bare name found in the snapshot dir, a .zip: extracted under server/db, removed after
  r = reset(s.dataDir, s.ports, [`--cluster-reset-restore-path=${zipped}`]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`restoring ${esc(zipped)} from the snapshot dir`));
  assert.deepEqual(
    readdirSync(path.join(s.dataDir, 'server', 'db')).filter((f) => f.startsWith('restore-')),
    [],
    'no extraction folder left',
  );
  await restoredAndListed();

  // a bare name only in S3 (S3 configured): downloaded into the snapshot dir and restored
  rmSync(path.join(snapDir(s), inS3));
  rmSync(path.join(s.dataDir, 'server', 'db', '.metadata', inS3));
  r = reset(s.dataDir, s.ports, [...s3server, `--cluster-reset-restore-path=${inS3}`], env);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`Retrieving etcd snapshot ${esc(inS3)} from S3`));
  assert.ok(existsSync(path.join(snapDir(s), inS3)), 'downloaded into the snapshot dir');
  await restoredAndListed();
});
