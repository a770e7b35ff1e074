/** Integration tests of snapshots with a real etcdsnap server and etcd (issue: snapshots). */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, mkdirSync } from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { startServer, startReady, killStarted, etcdctl, snapshotCli, fillEtcd, apiRequest, waitUntil, tempDir, type ServerProcess } from './helpers/server.js';
import { verifySnapshotFile } from '../src/snapshot/verify.js';

after(async () => {
  killStarted();
});
const start = startReady;

const snapDir = (s: ServerProcess): string => path.join(s.dataDir, 'server', 'db', 'snapshots');
const metaDir = (s: ServerProcess): string => path.join(s.dataDir, 'server', 'db', '.metadata');
const files = (dir: string): string[] => (existsSync(dir) ? readdirSync(dir).sort() : []);
const sha256 = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');
const auth = (s: ServerProcess): Record<string, string> => ({
  authorization: `Basic ${Buffer.from(`server:${s.token().split('::server:')[1] ?? ''}`).toString('base64')}`,
  'content-type': 'application/json',
});

// biome-ignore lint/suspicious/noTemplateCurlyInString: names the data-dir option as the docs do
test('the default schedule is on, at 00:00 and 12:00 system time, keep 5, in ${data-dir}/server/db/snapshots', async () => {
  const s = await start();
  const line = await s.waitFor((l) => l.msg === 'scheduled etcd snapshots enabled');
  assert.equal(line.schedule, '0 */12 * * *');
  assert.equal(line.retention, 5);
  assert.equal(line.dir, snapDir(s));
  const next = new Date(String(line.nextRun));
  assert.equal(next.getMinutes(), 0);
  assert.equal(next.getSeconds(), 0);
  assert.ok(next.getHours() === 0 || next.getHours() === 12, `next run ${next.toString()}`);
  const delta = next.getTime() - Date.now();
  assert.ok(delta > 0 && delta <= 12 * 3600_000, 'the next run is within 12 hours');
  assert.equal(statSync(snapDir(s)).mode & 0o777, 0o700);
  assert.equal(await s.stop(), 0);
});

test('@every 2s with retention 2 leaves exactly 2 scheduled snapshots after several ticks', async () => {
  const s = await start({ args: ['--etcd-snapshot-schedule-cron', '@every 2s', '--etcd-snapshot-retention', '2'] });
  await waitUntil(
    () => s.lines.filter((l) => typeof l.msg === 'string' && /^Snapshot etcd-snapshot-node1-\d+ saved$/.test(l.msg)).length >= 4,
    40_000,
    '4 scheduled saves',
  );
  assert.equal(await s.stop(), 0);
  const left = files(snapDir(s));
  assert.equal(left.length, 2, left.join(' '));
  for (const f of left) {
    assert.match(f, /^etcd-snapshot-node1-\d+$/);
    await verifySnapshotFile(path.join(snapDir(s), f));
  }
  assert.deepEqual(files(metaDir(s)), left, 'pruned snapshots lose their sidecars too');
  assert.ok(s.lines.some((l) => typeof l.msg === 'string' && l.msg.startsWith('Removing local snapshot etcd-snapshot-node1-')));
});

test('on-demand save, ls, delete and prune through the CLI; sidecars; interop with etcdctl and unzip', async () => {
  const s = await start();
  assert.equal(etcdctl(s, ['put', 'k1', 'v1']).code, 0);

  // save
  const saved = snapshotCli(s, ['save']);
  assert.equal(saved.code, 0, saved.stderr);
  const m = /^Snapshot (on-demand-node1-(\d+)) saved\.\n$/.exec(saved.stdout);
  assert.ok(m, saved.stdout);
  const name = m[1] ?? '';
  const file = path.join(snapDir(s), name);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.ok(Math.abs(Number(m[2]) - Date.now() / 1000) < 30);

  // bare etcd-snapshot = save, with --name
  const bare = snapshotCli(s, [], {});
  assert.equal(bare.code, 0, bare.stderr);
  assert.match(bare.stdout, /^Snapshot on-demand-node1-\d+ saved\.\n$/);
  const named = snapshotCli(s, ['save', '--name', 'before-upgrade']);
  assert.match(named.stdout, /^Snapshot before-upgrade-node1-\d+ saved\.\n$/);

  // sidecar
  const sidecar = JSON.parse(readFileSync(path.join(metaDir(s), name), 'utf8')) as Record<string, unknown>;
  assert.equal(statSync(path.join(metaDir(s), name)).mode & 0o777, 0o600);
  assert.equal(sidecar.name, name);
  assert.equal(sidecar.nodeName, 'node1');
  assert.equal(sidecar.size, statSync(file).size);
  assert.equal(sidecar.sha256, sha256(file));
  assert.equal(sidecar.compressed, false);
  assert.equal(sidecar.status, 'successful');
  assert.equal(sidecar.etcdVersion, '3.4.23');
  assert.match(String(sidecar.revision), /^\d+$/);
  assert.ok(Number(sidecar.dbSize) > 0);
  assert.equal(sidecar.createdAt, new Date(Number(m[2]) * 1000).toISOString().replace('.000Z', 'Z'));

  // etcdctl accepts the file and restores it
  const st = spawnSync('etcdctl', ['snapshot', 'status', file, '-w', 'json'], { encoding: 'utf8', env: { ...process.env, ETCDCTL_API: '3' } });
  assert.equal(st.status, 0, st.stderr);
  assert.equal(String((JSON.parse(st.stdout) as { revision: number }).revision), String(sidecar.revision));
  const restoreDir = path.join(tempDir(), 'restored');
  const rs = spawnSync('etcdctl', ['snapshot', 'restore', file, '--data-dir', restoreDir], { encoding: 'utf8', env: { ...process.env, ETCDCTL_API: '3' } });
  assert.equal(rs.status, 0, rs.stderr);
  assert.ok(existsSync(path.join(restoreDir, 'member', 'snap', 'db')));

  // compressed: a zip with one entry named like the snapshot; unzip -t passes; the entry is a valid snapshot
  const z = snapshotCli(s, ['save', '--snapshot-compress']);
  const zm = /^Snapshot (on-demand-node1-\d+\.zip) saved\.\n$/.exec(z.stdout);
  assert.ok(zm, z.stdout + z.stderr);
  const zipFile = path.join(snapDir(s), zm[1] ?? '');
  const t = spawnSync('unzip', ['-t', zipFile], { encoding: 'utf8' });
  assert.equal(t.status, 0, t.stdout);
  const listing = spawnSync('unzip', ['-Z1', zipFile], { encoding: 'utf8' });
  assert.equal(listing.stdout.trim(), (zm[1] ?? '').replace(/\.zip$/, ''));
  const out = tempDir();
  assert.equal(spawnSync('unzip', ['-q', zipFile, '-d', out]).status, 0);
  const entry = path.join(out, (zm[1] ?? '').replace(/\.zip$/, ''));
  await verifySnapshotFile(entry);
  assert.equal(spawnSync('etcdctl', ['snapshot', 'status', entry], { env: { ...process.env, ETCDCTL_API: '3' } }).status, 0);
  const zsidecar = JSON.parse(readFileSync(path.join(metaDir(s), zm[1] ?? ''), 'utf8')) as Record<string, unknown>;
  assert.equal(zsidecar.compressed, true);
  assert.equal(zsidecar.sha256, sha256(zipFile));

  // ls: table sorted by created time, json/yaml with all fields, bad format refused
  const ls = snapshotCli(s, ['ls']);
  assert.equal(ls.code, 0, ls.stderr);
  const lines = ls.stdout.trimEnd().split('\n');
  assert.match(lines[0] ?? '', /^Name\s+Location\s+Size\s+Created$/);
  assert.equal(lines.length, 5);
  const rows = lines.slice(1).map((l) => l.split(/\s+/));
  for (const r of rows) {
    assert.equal(r[1], `file://${path.join(snapDir(s), r[0] ?? '')}`);
    assert.equal(Number(r[2]), statSync(path.join(snapDir(s), r[0] ?? '')).size);
    assert.match(r[3] ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  }
  const created = rows.map((r) => r[3] ?? '');
  assert.deepEqual([...created].sort(), created, 'sorted by created time');
  for (const alias of ['list', 'l']) assert.equal(snapshotCli(s, [alias]).stdout, ls.stdout);
  const js = JSON.parse(snapshotCli(s, ['ls', '-o', 'json']).stdout) as Array<Record<string, unknown>>;
  assert.equal(js.length, 4);
  assert.ok(js.every((r) => typeof r.sha256 === 'string' && typeof r.revision === 'string' && r.status === 'successful'));
  assert.match(snapshotCli(s, ['ls', '--output', 'yaml']).stdout, /^- name: /);
  const badFmt = snapshotCli(s, ['ls', '-o', 'xml']);
  assert.equal(badFmt.code, 1);
  assert.equal(badFmt.stderr.trim(), 'error: invalid output format: xml');

  // delete: file and sidecar; unknown names reported with exit 1
  const del = snapshotCli(s, ['delete', name, 'on-demand-node1-1700000000']);
  assert.equal(del.code, 1);
  assert.equal(del.stdout, `Snapshot ${name} deleted.\nSnapshot on-demand-node1-1700000000 not found.\n`);
  assert.ok(!existsSync(file));
  assert.ok(!existsSync(path.join(metaDir(s), name)));
  assert.equal(snapshotCli(s, ['delete']).stderr.trim(), 'error: no snapshots given for removal');

  // prune: keeps the newest N with the prefix on this node; never touches other files
  const before = files(snapDir(s));
  const { writeFileSync } = await import('node:fs');
  writeFileSync(path.join(snapDir(s), 'on-demand-notes.txt'), 'keep me');
  writeFileSync(path.join(snapDir(s), 'on-demand-othernode-1700000000'), 'other node');
  const dry = snapshotCli(s, ['prune', '--snapshot-retention', '1', '--dry-run']);
  assert.equal(dry.code, 0, dry.stderr);
  const wouldDelete = dry.stdout.trimEnd().split('\n');
  assert.equal(wouldDelete.length, 1);
  assert.match(wouldDelete[0] ?? '', /^Snapshot on-demand-node1-\d+ would be deleted\.$/);
  assert.deepEqual(
    files(snapDir(s)).filter((f) => before.includes(f)),
    before,
    'dry run deletes nothing',
  );
  const pr = snapshotCli(s, ['prune', '--snapshot-retention', '1']);
  assert.equal(pr.stdout, `${wouldDelete[0]?.replace('would be deleted', 'deleted')}\n`);
  const after = files(snapDir(s));
  assert.ok(after.includes('on-demand-notes.txt') && after.includes('on-demand-othernode-1700000000'), 'foreign files untouched');
  assert.ok(
    after.some((f) => f.startsWith('before-upgrade-node1-')),
    'other prefixes untouched',
  );
  assert.equal(after.filter((f) => /^on-demand-node1-/.test(f)).length, 1);
  assert.equal(await s.stop(), 0);
});

test('10 concurrent saves: one at a time, the rest get 409 "already in progress", never a broken file', async () => {
  const s = await start();
  await fillEtcd(s, 600, 64 * 1024);
  const results = await Promise.all(
    Array.from({ length: 10 }, () =>
      apiRequest(`${s.url}/db/snapshot`, { method: 'POST', headers: auth(s), body: JSON.stringify({ operation: 'save', name: ['race'] }) }),
    ),
  );
  const ok = results.filter((r) => r.status === 200);
  const conflicts = results.filter((r) => r.status === 409);
  assert.equal(ok.length + conflicts.length, 10, results.map((r) => `${r.status} ${r.body}`).join('\n'));
  assert.ok(ok.length >= 1);
  assert.ok(conflicts.length >= 1, 'at least one request overlapped');
  for (const c of conflicts) assert.deepEqual(JSON.parse(c.body), { error: 'snapshot save already in progress' });
  const saved = files(snapDir(s)).filter((f) => f.startsWith('race-'));
  assert.equal(saved.length, ok.length);
  for (const f of saved) await verifySnapshotFile(path.join(snapDir(s), f));
  assert.equal(files(snapDir(s)).filter((f) => f.endsWith('.part')).length, 0);
  assert.equal(await s.stop(), 0);
});

test('a prune requested during a save waits for it: it starts after the save has finished and sees the new snapshot', async () => {
  const s = await start();
  const first = snapshotCli(s, ['save', '--name', 'serial']);
  assert.equal(first.code, 0, first.stderr);
  const older = files(snapDir(s)).filter((f) => f.startsWith('serial-'));
  assert.equal(older.length, 1);
  await fillEtcd(s, 1600, 64 * 1024); // ~100 MiB: the next save takes a while
  const saving = apiRequest(`${s.url}/db/snapshot`, { method: 'POST', headers: auth(s), body: JSON.stringify({ operation: 'save', name: ['serial'] }) });
  await s.waitFor((l) => typeof l.msg === 'string' && l.msg.startsWith('Saving etcd snapshot to ') && l.snapshot !== older[0]);
  const pruning = apiRequest(`${s.url}/db/snapshot`, {
    method: 'POST',
    headers: auth(s),
    body: JSON.stringify({ operation: 'prune', name: ['serial'], retention: 1 }),
  });
  const [saved, pruned] = await Promise.all([saving, pruning]);
  assert.equal(saved.status, 200, saved.body);
  assert.equal(pruned.status, 200, pruned.body);
  const newer = (JSON.parse(saved.body) as { created: Array<{ name: string }> }).created[0]?.name ?? '';
  // the prune saw the new snapshot (a prune beside the save would have seen only the older
  // one and kept it), so it removed the older one
  const prunedBody = JSON.parse(pruned.body) as { deleted: string[]; retention?: number; decisions?: unknown[] };
  assert.deepEqual(prunedBody.deleted, older);
  assert.equal(prunedBody.retention, 1, 'the answer names the count it applied');
  assert.equal(prunedBody.decisions?.length, older.length + 1, 'and every snapshot of the set, kept or not');
  assert.deepEqual(
    files(snapDir(s)).filter((f) => f.startsWith('serial-')),
    [newer],
  );
  // the server log: the prune arrived during the save, waited, and began after it finished
  const at = (pred: (msg: string) => boolean): number => s.lines.findIndex((l) => typeof l.msg === 'string' && pred(l.msg));
  const waits = at((m) => m === 'snapshot prune waits for the running snapshot save to finish');
  const saveDone = at((m) => m === `Snapshot ${newer} saved`);
  const pruneBegan = at((m) => m.startsWith('Applying snapshot retention=1 to local snapshots with prefix serial '));
  assert.ok(waits >= 0, 'the prune arrived while the save ran');
  assert.ok(saveDone > waits, 'the save finished after the prune arrived');
  assert.ok(pruneBegan > saveDone, 'the prune began after the save had finished');
  await verifySnapshotFile(path.join(snapDir(s), newer));
  assert.equal(await s.stop(), 0);
});

test('etcd killed mid-stream: no file, no .part, the failure is recorded and shown by ls', async () => {
  const s = await start();
  await fillEtcd(s, 1600, 64 * 1024); // ~100 MiB
  const dir = snapDir(s);
  const pending = apiRequest(`${s.url}/db/snapshot`, { method: 'POST', headers: auth(s), body: JSON.stringify({ operation: 'save', name: ['cut'] }) });
  // kill etcd as soon as the .part file has bytes in it
  const etcdPid = s.etcdPid() ?? -1;
  await waitUntil(() => files(dir).some((f) => f.endsWith('.part') && statSync(path.join(dir, f)).size > 0), 30_000, '.part with data');
  process.kill(etcdPid, 'SIGKILL');
  const res = await pending;
  assert.ok(res.status >= 500, `${res.status} ${res.body}`);
  assert.deepEqual(
    files(dir).filter((f) => f.startsWith('cut-')),
    [],
    'no file, final or partial',
  );
  // the failure is recorded and listed
  await waitUntil(() => etcdctl(s, ['endpoint', 'health']).code === 0, 40_000, 'etcd back');
  const ls = JSON.parse(snapshotCli(s, ['ls', '-o', 'json']).stdout) as Array<Record<string, unknown>>;
  const failed = ls.filter((r) => String(r.name).startsWith('cut-'));
  assert.equal(failed.length, 1);
  assert.equal(failed[0]?.status, 'failed');
  assert.ok(String(failed[0]?.message).length > 0);
  // and the next save works
  const again = snapshotCli(s, ['save', '--name', 'after']);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(await s.stop(), 0);
});

test('traversal and bad names are refused and touch nothing', async () => {
  const s = await start();
  const outside = path.join(s.dataDir, 'server', 'db', 'victim');
  mkdirSync(outside, { recursive: true });
  const { writeFileSync } = await import('node:fs');
  writeFileSync(path.join(outside, 'file'), 'x');
  for (const bad of ['../victim/file', '..', '/etc/passwd', 'a\\b', 'x'.repeat(300)]) {
    const r = snapshotCli(s, ['delete', bad]);
    assert.equal(r.code, 1, bad);
    assert.match(r.stderr, /^error: invalid snapshot name/, bad);
  }
  // only snapshots can be deleted, and only in an allowed folder: a folder the request names
  // is refused, and a file in the snapshot dir that is not a snapshot too
  const other = snapshotCli(s, ['delete', '--dir', outside, 'file']);
  assert.equal(other.code, 1);
  assert.match(other.stderr, /^error: snapshot dir ".*victim" is not allowed/);
  writeFileSync(path.join(snapDir(s), 'file'), 'x');
  const notSnapshot = snapshotCli(s, ['delete', 'file']);
  assert.equal(notSnapshot.code, 1);
  assert.match(notSnapshot.stderr, /^error: "file" in .* is not a snapshot .*nothing was deleted\n$/);
  for (const body of [
    { operation: 'delete', name: ['../victim/file'] },
    { operation: 'save', name: ['../evil'] },
    { operation: 'prune', name: ['a/b'] },
  ]) {
    const r = await apiRequest(`${s.url}/db/snapshot`, { method: 'POST', headers: auth(s), body: JSON.stringify(body) });
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.match(r.body, /invalid snapshot name/);
  }
  assert.ok(existsSync(path.join(outside, 'file')));
  assert.deepEqual(files(snapDir(s)), ['file']);
  assert.equal(await s.stop(), 0);
});

test('snapshot flags are validated at start-up: junk cron, negative retention, missing custom dir', async () => {
  const { runCli } = await import('./helpers/server.js');
  const dir = tempDir();
  const cfg = path.join(dir, 'c.yaml');
  const { writeFileSync } = await import('node:fs');
  writeFileSync(cfg, '');
  const base = ['server', '--config', cfg, '--data-dir', path.join(dir, 'd'), '--supervisor-port', '1', '--etcd-client-port', '2', '--etcd-peer-port', '3'];
  let r = runCli([...base, '--etcd-snapshot-schedule-cron', 'every day']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^error: invalid snapshot schedule "every day" \(--etcd-snapshot-schedule-cron\)/);
  r = runCli([...base, '--etcd-snapshot-retention', '-1']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /argument '-1' is invalid\. -1 is negative; use 0 or more \(0 disables pruning\)/);
  r = runCli([...base, '--etcd-snapshot-name', '../x']);
  assert.match(r.stderr, /invalid snapshot name prefix/);
  // a custom dir must exist (checked before the server changes anything)
  const s = await startServer({ args: ['--etcd-snapshot-dir', path.join(dir, 'nope')] });
  const code = await s.wait(60_000);
  assert.equal(code, 1);
  assert.ok(
    s.raw.some((l) => l.includes(`snapshot dir ${path.join(dir, 'nope')} does not exist`)),
    s.raw.join('\n'),
  );
});
