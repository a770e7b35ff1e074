/**
 * Restore drills (issue 18 part 1, docs/drills.md) against a real server, real etcd and a
 * real Swift: a good snapshot drills green (revision and key count as inspection reads them
 * from the file), a local file flipped after it was saved and an S3 object replaced (by
 * another valid snapshot, then by garbage) drill red with the reason, `ls` shows each result
 * (the Drill column, `-o json`), the metrics say it, and the live server is not disturbed
 * (its files outside the live member and the records byte-identical, its etcd's revision
 * and pid unchanged, the drills folder empty afterwards). A zstd + age snapshot drills through
 * the decode path with the server's identity file, and red without it.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { startSwift, s3CliFlags, s3ServerFlags, swiftSettings, type Swift } from './helpers/swift.js';
import { apiRequest, etcdctl, killStarted, snapshotCli, startReady, type ServerProcess } from './helpers/server.js';
import { S3Store } from '../src/store/s3.js';
import { agentReady, startAgent, startEtcdCluster } from './helpers/etcd-cluster.js';

let swift: Swift;
before(async () => {
  swift = await startSwift();
});
after(async () => {
  killStarted();
  await swift?.stop();
});

const s3Env = (): Record<string, string> => ({ AWS_ACCESS_KEY_ID: swift.accessKey, AWS_SECRET_ACCESS_KEY: swift.secretKey });
const snapDir = (s: ServerProcess): string => path.join(s.dataDir, 'server', 'db', 'snapshots');
const drillsDir = (s: ServerProcess): string => path.join(s.dataDir, 'server', 'db', 'drills');

/**
 * sha256 of every file of the data dir a drill could touch: all of it but the live etcd
 * member (etcd writes its WAL there whatever we do), the snapshot records (a drill writes
 * its result there, by design) and the drills folder itself.
 */
function dataDirFiles(dataDir: string): Map<string, string> {
  const skip = new Set(['server/db/etcd', 'server/db/drills', 'server/db/.metadata']);
  const out = new Map<string, string>();
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      const rel = path.relative(dataDir, p);
      if (skip.has(rel)) continue;
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) out.set(rel, createHash('sha256').update(readFileSync(p)).digest('hex'));
    }
  };
  walk(dataDir);
  return out;
}

const liveRevision = (s: ServerProcess): number => {
  const r = etcdctl(s, ['endpoint', 'status', '-w', 'json']);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as Array<{ Status: { header: { revision: number } } }>)[0]?.Status.header.revision ?? -1;
};

interface JsonRecord {
  name: string;
  location: string;
  drill?: { status: string; message?: string; revision?: string; keys?: number; source?: string };
}
const lsJson = (s: ServerProcess, extra: string[] = []): JsonRecord[] => {
  const r = snapshotCli(s, ['ls', '-o', 'json', ...extra], s3Env());
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as JsonRecord[];
};

const saved = (s: ServerProcess, extra: string[] = []): string => {
  const r = snapshotCli(s, ['save', ...extra], s3Env());
  assert.equal(r.code, 0, r.stderr);
  const m = /^Snapshot (\S+) saved\./.exec(r.stdout);
  assert.ok(m, r.stdout);
  return m[1] ?? '';
};

test('a good snapshot drills green with the revision and key count inspection reads, without disturbing the live server; a flipped local file drills red and ls shows both', async () => {
  await swift.createBucket('drills');
  const s = await startReady({ args: s3ServerFlags(swift, 'drills', 'green'), env: s3Env() });
  for (let i = 0; i < 50; i++) assert.equal(etcdctl(s, ['put', `app/key-${i}`, `value-${i}-${'x'.repeat(i)}`]).code, 0);
  const good = saved(s);
  const bad = saved(s);

  const status = snapshotCli(s, ['status', good, '-o', 'json']);
  assert.equal(status.code, 0, status.stderr);
  const inspected = JSON.parse(status.stdout) as { revision: number; liveKeys: number };

  const filesBefore = dataDirFiles(s.dataDir);
  const revBefore = liveRevision(s);
  const etcdPid = s.etcdPid();

  const d = snapshotCli(s, ['drill', good], s3Env());
  assert.equal(d.code, 0, d.stdout + d.stderr);
  assert.match(d.stdout, new RegExp(`^Drill of ${good} \\(local\\) passed in [\\d.]+s: revision ${inspected.revision}, ${inspected.liveKeys} keys\\.\\n$`));

  // the live server: same files, same revision (nothing written to it), same etcd
  assert.deepEqual(dataDirFiles(s.dataDir), filesBefore);
  assert.equal(liveRevision(s), revBefore);
  assert.equal(s.etcdPid(), etcdPid);
  assert.deepEqual(readdirSync(drillsDir(s)), [], 'the drill left nothing in the drills folder');

  // flip one bit in the middle of the second snapshot's file, after it was saved
  const file = path.join(snapDir(s), bad);
  const bytes = readFileSync(file);
  const at = Math.floor(bytes.length / 2);
  bytes[at] = (bytes[at] ?? 0) ^ 0x10;
  writeFileSync(file, bytes);
  const red = snapshotCli(s, ['drill', bad], s3Env());
  assert.equal(red.code, 1, red.stdout + red.stderr);
  assert.match(red.stdout, new RegExp(`^Drill of ${bad} \\(local\\) FAILED after [\\d.]+s: sha256: .*${bad} does not match the sha256 in its record`));
  assert.deepEqual(readdirSync(drillsDir(s)), []);

  // ls: the Drill column after k3s's four, and the results in -o json
  const table = snapshotCli(s, ['ls'], s3Env());
  assert.equal(table.code, 0, table.stderr);
  const lines = table.stdout.trimEnd().split('\n');
  assert.match(lines[0] ?? '', /^Name +Location +Size +Created +Drill$/);
  assert.match(lines.find((l) => l.startsWith(`${good} `)) ?? '', / passed \d{4}-\d\d-\d\dT[\d:]+Z$/);
  assert.match(lines.find((l) => l.startsWith(`${bad} `)) ?? '', / FAILED \d{4}-\d\d-\d\dT[\d:]+Z$/);
  const local = lsJson(s).filter((r) => r.location.startsWith('file://'));
  const g = local.find((r) => r.name === good)?.drill;
  assert.equal(g?.status, 'passed');
  assert.equal(g?.revision, String(inspected.revision));
  assert.equal(g?.keys, inspected.liveKeys);
  const b = local.find((r) => r.name === bad)?.drill;
  assert.equal(b?.status, 'failed');
  assert.match(b?.message ?? '', /does not match the sha256 in its record/);

  // metrics: the last drill failed, one passed before it
  const m = await apiRequest(`${s.url}/metrics`, { headers: { authorization: `Bearer ${s.token().split('::server:')[1] ?? ''}` } });
  assert.equal(m.status, 200, m.body);
  assert.match(m.body, /^etcdsnap_drill_last_result 0$/m);
  assert.match(m.body, /^etcdsnap_drill_last_success_timestamp_seconds \d+/m);
  assert.match(m.body, /^etcdsnap_drill_duration_seconds_count\{result="success"\} 1$/m);
  assert.match(m.body, /^etcdsnap_drill_duration_seconds_count\{result="failure"\} 1$/m);

  // without a name: the newest (the flipped one), still red
  const newest = snapshotCli(s, ['drill'], s3Env());
  assert.equal(newest.code, 1);
  assert.match(newest.stdout, new RegExp(`^Drill of ${bad} \\(local\\)`));
  // a bad name is refused before anything runs
  const refused = snapshotCli(s, ['drill', '.metadata'], s3Env());
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /\.metadata/);
  await s.stop();
});

test('a zstd-compressed, age-encrypted snapshot drills green through the decode path with the identity file; a server without it drills red at open, saying what to pass', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'etcdsnap-drill-age-'));
  const identity = path.join(dir, 'key.txt');
  execFileSync('age-keygen', ['-o', identity], { stdio: 'ignore' });
  const recipient = execFileSync('age-keygen', ['-y', identity]).toString().trim();
  const flags = ['--etcd-snapshot-compression', 'zstd', '--etcd-snapshot-encrypt-recipient', recipient];
  const s = await startReady({ args: [...flags, '--etcd-snapshot-decrypt-identity-file', identity] });
  for (let i = 0; i < 20; i++) assert.equal(etcdctl(s, ['put', `sealed/key-${i}`, `value-${i}`]).code, 0);
  const name = saved(s);
  assert.match(name, /\.zst\.age$/);
  const d = snapshotCli(s, ['drill', name]);
  assert.equal(d.code, 0, d.stdout + d.stderr);
  assert.match(d.stdout, new RegExp(`^Drill of ${name.replace(/\./g, '\\.')} \\(local\\) passed in [\\d.]+s: revision \\d+, \\d+ keys\\.\\n$`));
  assert.deepEqual(readdirSync(drillsDir(s)), [], 'the decrypted copy is gone');
  assert.equal(await s.stop(), 0);

  // the same data dir without the identity: the drill cannot open the snapshot
  const blind = await startReady({ dataDir: s.dataDir, args: flags });
  const red = snapshotCli(blind, ['drill', name]);
  assert.equal(red.code, 1, red.stdout + red.stderr);
  assert.match(red.stdout, /FAILED after [\d.]+s: open: .*--etcd-snapshot-decrypt-identity-file/);
  assert.deepEqual(readdirSync(drillsDir(blind)), []);
  assert.equal(await blind.stop(), 0);
});

test('an S3 copy replaced in the bucket, by another valid snapshot or by garbage, drills red with the reason; the S3 record and ls -o json show it', async () => {
  await swift.createBucket('drills-red');
  const s = await startReady({ args: s3ServerFlags(swift, 'drills-red', 'red'), env: s3Env() });
  for (let i = 0; i < 20; i++) etcdctl(s, ['put', `k${i}`, `v${i}`]);
  const first = saved(s, s3CliFlags(swift, 'drills-red', 'red'));
  etcdctl(s, ['put', 'later', 'x']);
  const second = saved(s, s3CliFlags(swift, 'drills-red', 'red'));
  const store = S3Store.create(swiftSettings(swift, 'drills-red', 'red'));
  try {
    // green from S3 first: the copy is good
    const ok = snapshotCli(s, ['drill', first, '--from', 's3'], s3Env());
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, new RegExp(`^Drill of ${first} \\(s3\\) passed`));

    // the object of `first` replaced by the (valid) bytes of `second`
    await store.upload(first, Readable.from([readFileSync(path.join(snapDir(s), second))]), { contentType: 'application/octet-stream', metadata: {} });
    const swapped = snapshotCli(s, ['drill', first, '--from', 's3'], s3Env());
    assert.equal(swapped.code, 1, swapped.stdout + swapped.stderr);
    assert.match(
      swapped.stdout,
      new RegExp(`^Drill of ${first} \\(s3\\) FAILED after [\\d.]+s: open: downloaded .*${first} does not match the sha256 in its sidecar`),
    );
    const rec = lsJson(s, s3CliFlags(swift, 'drills-red', 'red')).find((r) => r.name === first && r.location.startsWith('s3://'));
    assert.equal(rec?.drill?.status, 'failed');
    assert.equal(rec?.drill?.source, 's3');
    assert.match(rec?.drill?.message ?? '', /does not match the sha256 in its sidecar/);
    // the local copy is untouched and still drills green
    const localOk = snapshotCli(s, ['drill', first, '--from', 'local'], s3Env());
    assert.equal(localOk.code, 0, localOk.stdout);

    // garbage in place of `second`
    await store.upload(second, Readable.from([Buffer.from('not a snapshot at all\n')]), { contentType: 'application/octet-stream', metadata: {} });
    const garbage = snapshotCli(s, ['drill', second, '--from', 's3', '-o', 'json'], s3Env());
    assert.equal(garbage.code, 1, garbage.stdout + garbage.stderr);
    const res = JSON.parse(garbage.stdout) as { snapshot: string; store: string; result: { status: string; message: string } };
    assert.equal(res.snapshot, second);
    assert.equal(res.store, 's3');
    assert.equal(res.result.status, 'failed');
    assert.match(res.result.message, /does not match the sha256 in its sidecar/);
    assert.ok(!existsSync(drillsDir(s)) || readdirSync(drillsDir(s)).length === 0);
  } finally {
    store.destroy();
  }
  await s.stop();
});

test('an agent drills too, with the etcdctl variables of the cluster it backs up in its environment (they never reach the drill)', async () => {
  const cluster = await startEtcdCluster(1);
  const a = await startAgent(cluster, { args: ['--etcd-disable-snapshots'] });
  try {
    await agentReady(a);
    const r = snapshotCli(a, ['save']);
    assert.equal(r.code, 0, r.stderr);
    const d = snapshotCli(a, ['drill']);
    assert.equal(d.code, 0, d.stdout + d.stderr);
    assert.match(d.stdout, /^Drill of on-demand-agent1-\d+ \(local\) passed in [\d.]+s: revision \d+, \d+ keys\.\n$/);
    assert.deepEqual(readdirSync(drillsDir(a)), []);
  } finally {
    await a.stop();
    await cluster.stopAll();
  }
});

test('--etcd-snapshot-drill-schedule drills the newest snapshot on its own and posts the result to the webhook', async () => {
  const bodies: string[] = [];
  let arrived: () => void = () => undefined;
  const posted = new Promise<void>((resolve) => {
    arrived = resolve;
  });
  const hook = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      bodies.push(Buffer.concat(chunks).toString('utf8'));
      res.writeHead(200).end();
      arrived();
    });
  });
  await new Promise<void>((resolve) => hook.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook`;
  try {
    const s = await startReady({ args: ['--etcd-snapshot-drill-schedule', '@every 2s'], env: { ETCDSNAP_SNAPSHOT_NOTIFY_WEBHOOK: url } });
    const name = saved(s);
    const done = await s.waitFor((l) => typeof l.msg === 'string' && l.msg.startsWith('restore drill of ') && / (passed|failed)/.test(l.msg), 60_000);
    assert.equal(done.msg, `restore drill of ${name} passed`);
    await posted;
    const n = JSON.parse(bodies[0] ?? '{}') as { event?: string; snapshot?: string; scheduled?: boolean; store?: string };
    assert.deepEqual([n.event, n.snapshot, n.scheduled, n.store], ['drill-passed', name, true, 'local']);
    const rec = lsJson(s).find((r) => r.name === name);
    assert.equal(rec?.drill?.status, 'passed');
    await s.stop();
  } finally {
    hook.closeAllConnections();
    await new Promise<void>((resolve) => hook.close(() => resolve()));
  }
});
