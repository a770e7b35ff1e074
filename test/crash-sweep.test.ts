/**
 * Crash consistency, whole process: a real server (bin/etcdsnap, real etcd) is killed with
 * SIGKILL at a fixed list of points of a save, then restarted on the same data dir, and each
 * time every file with a final name must verify, no `.part` may survive the restart, and
 * every successful record must describe its file. The points are phases of the save seen from
 * the test through the file system (inotify, with a short poll as a backstop): the `.part`
 * created, the `.part` at ¼, ½, ¾ and all of the final size, the final name present, the
 * sidecar present. The server is stopped (SIGSTOP) the moment a phase is seen, its files are
 * noted (what the kill actually hit), then it is killed. No hook in the server: the sweep is
 * deterministic in its list of phases, not in the exact byte the kill lands on.
 *
 * A process crash keeps the page cache, so this checks that nothing gets a final name before
 * it is complete and that restarts clean up; the fsync order that a power cut needs is checked
 * by test/fs-order.test.ts.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, watch, type FSWatcher } from 'node:fs';
import path from 'node:path';
import { alive, fillEtcd, killStarted, snapshotCli, snapshotCliAsync, startReady, waitUntil, type ServerProcess } from './helpers/server.js';
import { verifySnapshotFile } from '../src/snapshot/verify.js';
import { LocalStore } from '../src/store/local.js';
import { parseRecord } from '../src/model/records.js';

after(() => killStarted());

const ARGS = ['--etcd-disable-snapshots'];

interface SaveState {
  /** Size of the save's `.part`, when there is one. */
  part?: number;
  final: boolean;
  sidecar: boolean;
}

interface KillPoint {
  label: string;
  when(s: SaveState, fullSize: number): boolean;
}

const partAt = (fraction: number) => (s: SaveState, full: number) => s.final || (s.part ?? -1) >= Math.floor(full * fraction);
const POINTS: KillPoint[] = [
  { label: '.part created', when: (s) => s.final || s.part !== undefined },
  { label: '.part at 1/4', when: partAt(0.25) },
  { label: '.part at 1/2', when: partAt(0.5) },
  { label: '.part at 3/4', when: partAt(0.75) },
  { label: '.part complete (fsync and rename to come)', when: partAt(1) },
  { label: 'final name (after the rename, sidecar to come)', when: (s) => s.final },
  { label: 'sidecar written', when: (s) => s.sidecar },
];

const snapDir = (s: ServerProcess): string => path.join(s.dataDir, 'server', 'db', 'snapshots');
const metaDir = (s: ServerProcess): string => path.join(s.dataDir, 'server', 'db', '.metadata');
const ls = (d: string): string[] => (existsSync(d) ? readdirSync(d).sort() : []);

function stateOf(s: ServerProcess, prefix: string): SaveState {
  const names = ls(snapDir(s)).filter((n) => n.startsWith(prefix));
  const part = names.find((n) => n.endsWith('.part'));
  const partSize = part === undefined ? undefined : statSync(path.join(snapDir(s), part), { throwIfNoEntry: false })?.size;
  return {
    ...(partSize !== undefined ? { part: partSize } : {}),
    final: names.some((n) => !n.endsWith('.part')),
    sidecar: ls(metaDir(s)).some((n) => n.startsWith(prefix)),
  };
}

/** Resolves once `pred` holds for the save of `prefix`, having stopped the server (SIGSTOP) at that moment. */
function stopWhen(s: ServerProcess, prefix: string, pred: (st: SaveState) => boolean, timeoutMs: number): Promise<SaveState> {
  return new Promise((resolve, reject) => {
    const watchers: FSWatcher[] = [];
    let done = false;
    const finish = (err: Error | undefined, st?: SaveState): void => {
      if (done) return;
      done = true;
      clearInterval(poll);
      clearTimeout(timer);
      for (const w of watchers) w.close();
      if (err) reject(err);
      else if (st) resolve(st);
    };
    const check = (): void => {
      if (done) return;
      const st = stateOf(s, prefix);
      if (!pred(st)) return;
      s.child.kill('SIGSTOP');
      finish(undefined, stateOf(s, prefix)); // what the kill hits (the server is frozen now)
    };
    for (const d of [snapDir(s), metaDir(s)]) if (existsSync(d)) watchers.push(watch(d, check));
    const poll = setInterval(check, 2);
    const timer = setTimeout(() => finish(new Error(`timed out waiting for ${prefix} to reach the kill point`)), timeoutMs);
    check();
  });
}

/** Checks the promises after a restart. Returns the names of the files with a final name. */
async function checkAfterRestart(s: ServerProcess): Promise<string[]> {
  const dir = snapDir(s);
  const names = ls(dir);
  assert.deepEqual(
    names.filter((n) => n.endsWith('.part')),
    [],
    'no .part survives the restart',
  );
  for (const n of names) {
    const file = path.join(dir, n);
    const { size } = await verifySnapshotFile(file);
    assert.equal(size, statSync(file).size);
    assert.equal(size % 512, 32, `${n}: a whole snapshot (size % 512 == 32)`);
    const status = spawnSync('etcdctl', ['snapshot', 'status', file, '-w', 'json'], { encoding: 'utf8', env: { ...process.env, ETCDCTL_API: '3' } });
    assert.equal(status.status, 0, `etcdctl snapshot status ${n}: ${status.stderr}`);
  }
  // every record that says "successful" describes its file exactly
  for (const n of ls(metaDir(s)).filter((m) => !m.startsWith('.'))) {
    const rec = parseRecord(readFileSync(path.join(metaDir(s), n), 'utf8'));
    assert.ok(rec, `${n}: a readable record`);
    if (rec.status !== 'successful') continue;
    const bytes = readFileSync(path.join(dir, n));
    assert.equal(rec.size, bytes.length, `${n}: the record's size`);
    assert.equal(rec.sha256, createHash('sha256').update(bytes).digest('hex'), `${n}: the record's sha256`);
  }
  // ls shows every file with a final name (those without a sidecar from the file itself)
  const listed = (await new LocalStore(dir).list({ nodeName: 'node1' })).map((r) => r.name).sort();
  assert.deepEqual(listed, names);
  return names;
}

test('SIGKILL at each phase of a save: after a restart every file with a final name verifies, no .part is left, records match their files', async () => {
  const t0 = Date.now();
  let s = await startReady({ args: ARGS });
  await fillEtcd(s, 200, 64 * 1024); // a snapshot of ~13 MiB: 13 batches of 1 MiB
  const base = snapshotCli(s, ['save', '--name', 'base']);
  assert.equal(base.code, 0, base.stderr);
  const [baseName] = ls(snapDir(s));
  assert.ok(baseName);
  const fullSize = statSync(path.join(snapDir(s), baseName)).size;
  const hit: string[] = [];
  for (const [i, point] of POINTS.entries()) {
    const prefix = `kill${i}-`;
    const cli = snapshotCliAsync(s, ['save', '--name', `kill${i}`]);
    const seen = await stopWhen(s, prefix, (st) => point.when(st, fullSize), 60_000);
    const etcdPid = s.etcdPid();
    s.child.kill('SIGKILL');
    await s.wait();
    await cli;
    await waitUntil(() => !alive(etcdPid), 10_000, 'etcd gone with the server');
    hit.push(
      `${point.label}: ${seen.part !== undefined ? `.part ${seen.part} of ${fullSize} bytes` : 'no .part'}, final name ${seen.final ? 'present' : 'absent'}, sidecar ${seen.sidecar ? 'present' : 'absent'}`,
    );
    s = await startReady({ dataDir: s.dataDir, ports: s.ports, args: ARGS });
    const names = await checkAfterRestart(s);
    assert.ok(names.includes(baseName), 'the earlier snapshot is untouched');
    if (seen.part !== undefined && !seen.final) {
      assert.ok(!names.some((n) => n.startsWith(prefix)), `${point.label}: a save killed before its rename leaves no file with a final name`);
      assert.ok(
        s.lines.some((l) => l.msg === 'removed partial snapshot files left by an earlier run'),
        'the restart removed the .part',
      );
    }
  }
  // the server saves normally after all that
  const last = snapshotCli(s, ['save', '--name', 'after']);
  assert.equal(last.code, 0, last.stderr);
  await checkAfterRestart(s);
  assert.equal(await s.stop(), 0);
  console.log(`kill points (${Math.round((Date.now() - t0) / 1000)} s):\n  ${hit.join('\n  ')}`);
  // the .part phases are wide (13 batches): each of them must have been hit as planned
  for (const [i, line] of hit.slice(1, 4).entries()) assert.match(line, /\.part \d+ of \d+ bytes, final name absent/, `point ${i + 1}`);
});
