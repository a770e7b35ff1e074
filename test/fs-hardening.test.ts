/**
 * File-system hardening (issue: security): each test reproduces an attack on the server's
 * writes with real processes and checks that it is refused and changes nothing.
 * (A) the API's `dir` reaches only folders the operator allowed (`--etcd-snapshot-api-dir`);
 * (B) restore extraction neither follows planted links nor fills the disk;
 * (C) snapshot folders and `.metadata` are never links and are not chmodded when not ours.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  lchownSync,
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  statfsSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { startReady, startServer, killStarted, snapshotCli, runCli, etcdctl, apiRequest, tempDir, type ServerProcess } from './helpers/server.js';
import { reset } from './helpers/restore.js';

/** uid and gid of `nobody`: the other local user who plants links in the tests. */
const NOBODY = Number(execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).trim());

const mounts: string[] = [];
after(() => {
  killStarted();
  for (const m of mounts) spawnSync('umount', ['-l', m]);
});

const files = (dir: string): string[] => (existsSync(dir) ? readdirSync(dir).sort() : []);
const snapDir = (s: ServerProcess): string => path.join(s.dataDir, 'server', 'db', 'snapshots');
const dbDir = (s: { dataDir: string }): string => path.join(s.dataDir, 'server', 'db');
const mode = (p: string): number => statSync(p).mode & 0o777;
const savedName = (stdout: string): string => /^Snapshot (\S+) saved/.exec(stdout)?.[1] ?? '';
const auth = (s: ServerProcess): Record<string, string> => ({
  authorization: `Basic ${Buffer.from(`server:${s.token().split('::server:')[1] ?? ''}`).toString('base64')}`,
  'content-type': 'application/json',
});

/** sha256 over every file (path and content) under `dir`. */
function treeHash(dir: string): string {
  const h = createHash('sha256');
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else h.update(path.relative(dir, p)).update(e.isSymbolicLink() ? readlinkSync(p) : readFileSync(p));
    }
  };
  walk(dir);
  return h.digest('hex');
}

const extractionDirs = (s: { dataDir: string }): string[] => files(dbDir(s)).filter((f) => f.startsWith('restore-'));

test('(A) the API saves, lists, deletes and prunes only in allowed folders: a foreign folder, a link out of the snapshot dir and <snapdir>/../x are refused naming --etcd-snapshot-api-dir; with the flag the folder works', async () => {
  const root = tempDir();
  // stands in for /etc/cron.d: a root-owned folder whose files look like snapshots
  const cron = path.join(root, 'cron.d');
  mkdirSync(cron);
  const planted = 'on-demand-node1-1700000000';
  writeFileSync(path.join(cron, planted), '* * * * * root true\n');
  const s = await startReady({ args: ['--etcd-disable-snapshots'] });
  const link = path.join(snapDir(s), 'link');
  symlinkSync(cron, link);
  const sibling = path.join(dbDir(s), 'x');
  mkdirSync(sibling);
  const dbBefore = files(dbDir(s));
  for (const dir of [cron, link, `${snapDir(s)}/../x`, `${snapDir(s)}/link/../../x`]) {
    for (const args of [
      ['save', '--dir', dir],
      ['ls', '--dir', dir],
      ['delete', '--dir', dir, planted],
      ['prune', '--dir', dir, '--snapshot-retention', '1', '--name', 'on-demand'],
    ]) {
      const r = snapshotCli(s, args);
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.match(
        r.stderr,
        /^error: snapshot dir ".*" (\(it resolves to ".*"\) )?is not allowed: the server saves, lists and deletes snapshots only in .*; to allow another folder, start the server with --etcd-snapshot-api-dir=<folder>\n$/,
        args.join(' '),
      );
    }
  }
  // the same over the raw API: HTTP 400 with the flag named
  const raw = await apiRequest(`${s.url}/db/snapshot`, {
    method: 'POST',
    headers: auth(s),
    body: JSON.stringify({ operation: 'save', dir: `${snapDir(s)}/../../../${path.relative(dbDir(s), cron)}` }),
  });
  assert.equal(raw.status, 400, raw.body);
  assert.match(raw.body, /is not allowed: .*--etcd-snapshot-api-dir/);
  assert.deepEqual(files(cron), [planted], 'nothing created in the foreign folder');
  assert.equal(readFileSync(path.join(cron, planted), 'utf8'), '* * * * * root true\n', 'the planted file is neither deleted nor changed');
  assert.ok(!existsSync(path.join(root, '.metadata')), 'no .metadata beside the foreign folder');
  assert.deepEqual(files(sibling), []);
  assert.deepEqual(files(dbDir(s)), dbBefore, 'nothing new in server/db');
  assert.deepEqual(files(snapDir(s)), ['link'], 'no snapshot through the link');
  // the configured folder itself is allowed however it is spelled
  const spelled = snapshotCli(s, ['save', '--dir', `${snapDir(s)}/../snapshots/`]);
  assert.equal(spelled.code, 0, spelled.stderr);
  assert.ok(existsSync(path.join(snapDir(s), savedName(spelled.stdout))));
  assert.equal(await s.stop(), 0);

  // a relative --etcd-snapshot-api-dir is refused at start-up
  const bad = runCli([
    'server',
    '--config',
    path.join(path.dirname(s.dataDir), `config-${s.ports.supervisor}.yaml`),
    '--data-dir',
    s.dataDir,
    '--etcd-snapshot-api-dir',
    'relative/dir',
    '--supervisor-port',
    String(s.ports.supervisor),
  ]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^error: invalid value for --etcd-snapshot-api-dir: "relative\/dir" is not an absolute path/);

  // allowed by the operator: now it works there, with its .metadata beside it
  const other = path.join(tempDir(), 'also');
  mkdirSync(other);
  const again = await startReady({ dataDir: s.dataDir, ports: s.ports, args: ['--etcd-disable-snapshots', '--etcd-snapshot-api-dir', `${other},${cron}`] });
  const saved = snapshotCli(again, ['save', '--dir', cron]);
  assert.equal(saved.code, 0, saved.stderr);
  const name = savedName(saved.stdout);
  assert.ok(existsSync(path.join(cron, name)));
  assert.ok(existsSync(path.join(root, '.metadata', name)), 'its record beside it');
  const ls = JSON.parse(snapshotCli(again, ['ls', '--dir', cron, '-o', 'json']).stdout) as Array<{ name: string }>;
  assert.deepEqual(ls.map((r) => r.name).sort(), [planted, name].sort());
  const del = snapshotCli(again, ['delete', '--dir', link, name]);
  assert.equal(del.code, 0, `a link that leads to an allowed folder is that folder: ${del.stderr}`);
  assert.deepEqual(files(cron), [planted]);
  const otherSave = snapshotCli(again, ['save', '--dir', other]);
  assert.equal(otherSave.code, 0, otherSave.stderr);
  // still refused: a folder not in the list
  const refused = snapshotCli(again, ['save', '--dir', sibling]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /is not allowed: .*--etcd-snapshot-api-dir/);
  assert.deepEqual(files(sibling), []);
  assert.equal(await again.stop(), 0);
});

test('(B) a restore from a zip beside a planted <entry>.part link and an existing <entry> follows no link and overwrites nothing; no temp folder is left', async () => {
  const s = await startReady({ args: ['--etcd-disable-snapshots'] });
  assert.equal(etcdctl(s, ['put', 'k', 'before']).code, 0);
  const saved = snapshotCli(s, ['save']);
  assert.equal(saved.code, 0, saved.stderr);
  assert.equal(etcdctl(s, ['put', 'k', 'after']).code, 0);
  assert.equal(await s.stop(), 0);
  const src = path.join(tempDir(), 'snap.db');
  copyFileSync(path.join(snapDir(s), savedName(saved.stdout)), src);
  const zdir = tempDir();
  assert.equal(spawnSync('zip', ['-q', '-j', path.join(zdir, 'snap.zip'), src]).status, 0);
  const victim = path.join(tempDir(), 'victim');
  writeFileSync(victim, 'victim data\n');
  symlinkSync(victim, path.join(zdir, 'snap.db.part'));
  writeFileSync(path.join(zdir, 'snap.db'), 'existing file\n');
  const r = reset(s.dataDir, s.ports, ['--cluster-reset-restore-path', path.join(zdir, 'snap.zip')]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(readFileSync(victim, 'utf8'), 'victim data\n', 'the link target is untouched');
  assert.ok(lstatSync(path.join(zdir, 'snap.db')).isFile());
  assert.equal(readFileSync(path.join(zdir, 'snap.db'), 'utf8'), 'existing file\n', 'the existing file is untouched');
  assert.equal(readlinkSync(path.join(zdir, 'snap.db.part')), victim);
  assert.deepEqual(files(zdir), ['snap.db', 'snap.db.part', 'snap.zip'], 'nothing extracted beside the zip');
  assert.deepEqual(extractionDirs(s), [], 'the temp folder is removed');
  // and the restore used the zip's content
  const back = await startReady({ dataDir: s.dataDir, ports: s.ports, args: ['--etcd-disable-snapshots'] });
  assert.equal(etcdctl(back, ['get', 'k', '--print-value-only']).stdout.trim(), 'before');
  assert.equal(await back.stop(), 0);
});

test('(B) an entry that fits in the free space but leaves less than 2 x its size + 128 MiB is refused before a byte is written; with room the same zip restores', async () => {
  const root = tempDir();
  const mnt = path.join(root, 'data');
  mkdirSync(mnt);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=320m,mode=0700', 'tmpfs', mnt]);
  mounts.push(mnt);
  const s = await startReady({ dataDir: mnt, args: ['--etcd-disable-snapshots'] });
  const saved = snapshotCli(s, ['save']);
  assert.equal(saved.code, 0, saved.stderr);
  assert.equal(await s.stop(), 0);
  const src = path.join(tempDir(), 'snap.db');
  copyFileSync(path.join(snapDir(s), savedName(saved.stdout)), src);
  rmSync(path.join(snapDir(s), savedName(saved.stdout)));
  const zdir = tempDir();
  assert.equal(spawnSync('zip', ['-q', '-j', path.join(zdir, 'snap.zip'), src]).status, 0);
  const size = statSync(src).size;
  const free = (): number => {
    const st = statfsSync(mnt);
    return st.bavail * st.bsize;
  };
  // leave room for the entry and 4 MiB more: it fits, the restore after it would not
  const filler = path.join(mnt, 'filler');
  const fill = Math.floor((free() - (size + 4 * 1024 * 1024)) / 4096) * 4096;
  assert.ok(fill > 0);
  execFileSync('fallocate', ['-l', String(fill), filler]);
  const left = free();
  assert.ok(left > size && left < 2 * size + 128 * 1024 * 1024, `${left} free for an entry of ${size}`);
  const before = treeHash(dbDir(s));
  const r = reset(mnt, s.ports, ['--cluster-reset-restore-path', path.join(zdir, 'snap.zip')]);
  assert.equal(r.code, 1, r.stderr);
  const errors = r.stderr.split('\n').filter((l) => l.startsWith('error: '));
  assert.equal(errors.length, 1, r.stderr);
  assert.match(
    errors[0] ?? '',
    new RegExp(
      `snap\\.zip is not a compressed etcd snapshot: its entry would need ${size} bytes and only \\d+ are free in ${dbDir(s)}; a restore needs twice the entry size plus 128 MiB free there \\(${2 * size + 128 * 1024 * 1024} bytes\\)`,
    ),
  );
  assert.equal(treeHash(dbDir(s)), before, 'server/db unchanged');
  assert.deepEqual(extractionDirs(s), []);
  assert.ok(Math.abs(free() - left) < 1024 * 1024, `free space unchanged (${left} before, ${free()} after)`);
  assert.deepEqual(files(zdir), ['snap.zip'], 'nothing extracted beside the zip');
  // with the room back, the same zip restores
  rmSync(filler);
  const ok = reset(mnt, s.ports, ['--cluster-reset-restore-path', path.join(zdir, 'snap.zip')]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.deepEqual(extractionDirs(s), []);
  execFileSync('umount', [mnt]);
  mounts.pop();
});

test('(C) a .metadata that is a symbolic link is refused, at start-up and when planted later: nothing written, chmodded or deleted through it', async () => {
  // a custom snapshot dir whose .metadata sibling links to a victim folder: the server refuses to start
  const root = tempDir();
  const snaps = path.join(root, 'snaps');
  mkdirSync(snaps, { mode: 0o700 });
  const victim = path.join(tempDir(), 'victim');
  mkdirSync(victim);
  chmodSync(victim, 0o755);
  writeFileSync(path.join(victim, 'keep'), 'x');
  symlinkSync(victim, path.join(root, '.metadata'));
  lchownSync(path.join(root, '.metadata'), NOBODY, NOBODY); // planted by another local user
  const s = await startServer({ args: ['--etcd-snapshot-dir', snaps, '--etcd-disable-snapshots'] });
  const ready = await s.ready().then(
    () => true,
    () => false,
  );
  if (ready) {
    snapshotCli(s, ['save']); // the old behaviour: the record goes through the link
    await s.stop();
  }
  assert.equal(ready, false, 'the server must not start');
  assert.equal(s.exitCode, 1);
  assert.ok(
    s.raw.some((l) =>
      l.includes(`${path.join(root, '.metadata')} (the snapshot records of ${snaps}) is a symbolic link owned by uid ${NOBODY}; remove the link`),
    ),
    s.raw.join('\n'),
  );
  assert.deepEqual(files(victim), ['keep']);
  assert.equal(mode(victim), 0o755, 'the victim folder is not chmodded');
  assert.deepEqual(files(snaps), []);

  // the default folder's .metadata swapped for a link while the server runs: save, ls and delete refused
  const t = await startReady({ args: ['--etcd-disable-snapshots'] });
  assert.equal(snapshotCli(t, ['save']).code, 0);
  const meta = path.join(dbDir(t), '.metadata');
  renameSync(meta, `${meta}.moved`);
  const victim2 = path.join(tempDir(), 'victim2');
  mkdirSync(victim2);
  chmodSync(victim2, 0o755);
  const planted = 'on-demand-node1-1700000000';
  writeFileSync(path.join(victim2, planted), 'keep me\n');
  symlinkSync(victim2, meta);
  lchownSync(meta, NOBODY, NOBODY);
  for (const args of [['save'], ['ls'], ['delete', planted]]) {
    const r = snapshotCli(t, args);
    assert.equal(r.code, 1, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
    assert.match(
      r.stderr,
      /^error: .*\.metadata \(the snapshot records of .*\) is a symbolic link owned by uid 65534; remove the link, etcdsnap creates the folder itself \(mode 0700\)\n$/,
    );
  }
  assert.deepEqual(files(victim2), [planted], 'no record written, nothing deleted through the link');
  assert.equal(mode(victim2), 0o755);
  assert.equal(files(snapDir(t)).length, 1, 'no new snapshot');
  assert.equal(await t.stop(), 0);
});

test('(C) existing snapshot folders owned by another user are not chmodded; our own are tightened to 0700', async () => {
  const dataDir = path.join(tempDir(), 'data');
  const db = path.join(dataDir, 'server', 'db');
  const snaps = path.join(db, 'snapshots');
  const meta = path.join(db, '.metadata');
  mkdirSync(snaps, { recursive: true });
  mkdirSync(meta);
  const nobody = Number(execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).trim());
  const nogroup = Number(execFileSync('id', ['-g', 'nobody'], { encoding: 'utf8' }).trim());
  for (const d of [snaps, meta]) {
    chownSync(d, nobody, nogroup);
    chmodSync(d, 0o755);
  }
  chmodSync(db, 0o755); // ours: tightened as before
  const s = await startReady({ dataDir, args: ['--etcd-disable-snapshots'] });
  const saved = snapshotCli(s, ['save']);
  assert.equal(saved.code, 0, saved.stderr);
  assert.ok(existsSync(path.join(meta, savedName(saved.stdout))), 'the record is written');
  for (const d of [snaps, meta]) {
    assert.equal(mode(d), 0o755, `${d} keeps its mode`);
    assert.equal(statSync(d).uid, nobody, `${d} keeps its owner`);
  }
  assert.equal(mode(db), 0o700, 'a folder we own is tightened');
  assert.equal(await s.stop(), 0);
});

test('(C) links our own user made are followed (server/db and the snapshot dir moved to another disk, as k3s users do)', async () => {
  const dataDir = path.join(tempDir(), 'data');
  const disk = tempDir(); // stands in for another disk
  mkdirSync(path.join(dataDir, 'server'), { recursive: true });
  mkdirSync(path.join(disk, 'db'));
  symlinkSync(path.join(disk, 'db'), path.join(dataDir, 'server', 'db'));
  const snaps = path.join(tempDir(), 'snaps-real');
  mkdirSync(snaps, { mode: 0o700 });
  const snapsLink = path.join(tempDir(), 'snaps');
  symlinkSync(snaps, snapsLink);
  const s = await startReady({ dataDir, args: ['--etcd-disable-snapshots', '--etcd-snapshot-dir', snapsLink] });
  const saved = snapshotCli(s, ['save']);
  assert.equal(saved.code, 0, saved.stderr);
  assert.ok(existsSync(path.join(snaps, savedName(saved.stdout))), 'the snapshot is in the folder the link points to');
  assert.ok(existsSync(path.join(disk, 'db', 'etcd', 'member')), 'etcd data is on the other disk');
  assert.equal(await s.stop(), 0);
});
