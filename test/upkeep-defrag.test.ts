/**
 * Defragmentation of a three-server cluster (issue 18, docs/upkeep.md), real etcd:
 * - after 12 MiB written, deleted and compacted, `etcd-snapshot defrag` (through another
 *   server than the writer's) takes the members one at a time, the followers first (by name)
 *   and the leader last; every member's database shrinks (its own status before and after),
 *   and a writer putting keys through S1's member all along has no failed write;
 * - a defragmentation is refused while another holds the cluster's lock, naming the holder;
 * - a defragmentation waits for a snapshot stream the member serves (etcd's own count of
 *   open Maintenance.Snapshot calls), and a save waits for the defragmentation of its
 *   member (a marker no lease holds is ignored), writing nothing to etcd itself;
 * - with `--etcd-defrag-schedule @every 20s` on all three, each tick is taken by one server only.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { EtcdClient } from '../src/etcd/client.js';
import { snapshotsInFlight } from '../src/etcd/maintenance.js';
import { EtcdSnapshotStream } from '../src/etcd/snapshot-stream.js';
import { tlsPaths } from '../src/etcd/tls.js';
import { etcdctl, fillEtcd, killStarted, snapshotCli, snapshotCliAsync, waitUntil, type LogLine, type ServerProcess } from './helpers/server.js';
import { startHa } from './helpers/restore.js';

after(() => killStarted());

const hex = (decimal: string): string => BigInt(decimal).toString(16);
const msg = (re: RegExp) => (l: LogLine) => typeof l.msg === 'string' && re.test(l.msg);

/** A lease held by etcdctl for `seconds`, and a key put on it; resolves with the lease ID (hex). */
function leasedPut(s: ServerProcess, key: string, value: string): string {
  const g = etcdctl(s, ['lease', 'grant', '120']);
  assert.equal(g.code, 0, g.stderr);
  const id = /lease ([0-9a-f]+) granted/.exec(g.stdout)?.[1] ?? '';
  assert.equal(etcdctl(s, ['put', key, value, `--lease=${id}`]).code, 0);
  return id;
}

test('three servers: defrag one member at a time, followers first, the leader last; every db shrinks; writes never fail; the lock and the save markers', async () => {
  const ha = await startHa();
  const servers = [ha.s1, ha.s2, ha.s3];
  const clients = await Promise.all(servers.map((s) => EtcdClient.connect({ endpoint: `https://127.0.0.1:${s.ports.client}`, tls: tlsPaths(s.dataDir) })));
  after(() => {
    for (const c of clients) c.close();
  });
  const [c1] = clients;
  assert.ok(c1);

  // 12 MiB written, deleted, compacted: the files keep their size until defragmented
  await fillEtcd(ha.s1, 192, 64 * 1024);
  await c1.kv.delete().prefix('fill/').exec();
  const compacted = snapshotCli(ha.s2, ['compact']);
  assert.equal(compacted.code, 0, compacted.stderr);
  const before = await Promise.all(clients.map(async (c) => (await c.status()).dbSize));
  for (const b of before) assert.ok(b > 12 * 1024 * 1024, `db size ${b}`);

  // a writer through S1's member all along
  let writing = true;
  let writes = 0;
  const failures: string[] = [];
  const writer = (async () => {
    while (writing) {
      try {
        await c1.kv
          .put(`writer/${writes % 10}`)
          .value(String(writes))
          .options({ deadline: Date.now() + 30_000 })
          .exec();
        writes++;
      } catch (err) {
        failures.push(String(err));
      }
    }
  })();
  const run = await snapshotCliAsync(ha.s2, ['defrag']);
  const writesDuring = writes;
  writing = false;
  await writer;
  assert.equal(run.code, 0, run.stderr);
  assert.deepEqual(failures, []);
  assert.ok(writesDuring > 0);

  // the order: followers by name, the leader last (etcd's own leader)
  const status = await c1.status();
  const members = await c1.members();
  const leaderName = members.find((m) => hex(m.id) === hex(status.leader))?.name ?? '';
  const followerNames = members
    .map((m) => m.name)
    .filter((n) => n !== leaderName)
    .sort();
  const lines = run.stdout.trim().split('\n');
  assert.equal(lines.length, 4, run.stdout);
  const taken = lines
    .slice(0, 3)
    .map((l) => /^Defragmented member (\S+) \((follower|leader)\) https:\/\/127\.0\.0\.1:\d+: .* -> .*, reclaimed .* in \d+\.\ds$/.exec(l));
  assert.deepEqual(
    taken.map((t) => `${t?.[1]} ${t?.[2]}`),
    [...followerNames.map((n) => `${n} follower`), `${leaderName} leader`],
    run.stdout,
  );
  assert.match(lines[3] ?? '', /^Defragmented 3 of 3 members, reclaimed \d+\.\d MiB\.$/);
  // the log of the server that ran it: one line per member, sizes from that member
  // (the server logs before it answers, but its log may reach us after the answer)
  await ha.s2.waitFor(msg(/^defragmentation done: 3 of 3 members/));
  const logged = ha.s2.lines.filter(msg(/^defragmented etcd member /));
  assert.deepEqual(
    logged.map((l) => l.member),
    [...followerNames, leaderName],
  );
  for (const l of logged) assert.ok(Number(l.reclaimedBytes) > 10 * 1024 * 1024, JSON.stringify(l));
  const afterSizes = await Promise.all(clients.map(async (c) => (await c.status()).dbSize));
  afterSizes.forEach((a, i) => {
    assert.ok(a < (before[i] ?? 0) / 4, `member ${i + 1}: ${before[i]} -> ${a}`);
  });

  // the cluster's lock: held by someone else, the run is refused naming the holder
  const lockLease = leasedPut(ha.s1, '/etcdsnap/upkeep/defrag/lock', 'server-x');
  const refused = snapshotCli(ha.s3, ['defrag']);
  assert.equal(refused.code, 1, refused.stdout);
  assert.match(refused.stderr, /a defragmentation is already running on server-x; try again when it is done/);
  assert.equal(etcdctl(ha.s1, ['lease', 'revoke', lockLease]).code, 0);

  // a snapshot stream of the first follower, held open (read by nobody: etcd's flow control
  // stops it, the call stays open): the defragmentation waits for it, by etcd's own count
  const firstFollower = members.find((m) => m.name === followerNames[0]);
  assert.ok(firstFollower);
  const ids = await Promise.all(clients.map(async (c) => hex((await c.status()).memberId)));
  const followerClient = clients[ids.indexOf(hex(firstFollower.id))];
  assert.ok(followerClient);
  // 2 MiB in the db, far more than the 64 KiB window the held stream grants
  await fillEtcd(ha.s1, 32, 64 * 1024, 'held/');
  const tls = tlsPaths(ha.s1.dataDir);
  const [ca, cert, key] = await Promise.all([tls.etcdCa, tls.clientCert, tls.clientKey].map((f) => readFile(f)));
  const stream = await EtcdSnapshotStream.open({ endpoint: followerClient.endpoint, ca, cert, key, windowBytes: 64 * 1024 });
  stream.pause();
  await waitUntil(async () => (await snapshotsInFlight(followerClient)) === 1, 15_000, 'etcd to count the held stream');
  const waiting = snapshotCliAsync(ha.s3, ['defrag']);
  await ha.s3.waitFor(msg(/^defragmentation of etcd member \S+ waits for the snapshot streams it serves \(1 open\)$/), 60_000);
  assert.equal(ha.s3.lines.filter(msg(/^defragmented etcd member /)).length, 0);
  stream.destroy();
  const done = await waiting;
  assert.equal(done.code, 0, done.stderr);
  await ha.s3.waitFor(msg(/^defragmentation done: 3 of 3 members/));
  assert.equal(ha.s3.lines.filter(msg(/^defragmented etcd member /)).length, 3);

  // a save from S1's member waits while that member is marked as being defragmented, and a
  // marker no lease holds (as restore-keys or a change log replay would put one back) is ignored
  const [s1Id, s2Id] = ids;
  assert.equal(etcdctl(ha.s1, ['put', `/etcdsnap/upkeep/defragmenting/${s2Id}`, 'ghost']).code, 0);
  const ghostSave = snapshotCli(ha.s2, ['save']);
  assert.equal(ghostSave.code, 0, ghostSave.stderr);
  assert.equal(ha.s2.lines.filter(msg(/^snapshot waits for the defragmentation/)).length, 0, 'a dead marker holds no save');
  const defragLease = leasedPut(ha.s1, `/etcdsnap/upkeep/defragmenting/${s1Id}`, 'server-z');
  const saving = snapshotCliAsync(ha.s1, ['save']);
  await ha.s1.waitFor(msg(/^snapshot waits for the defragmentation of etcd member [0-9a-f]+ to finish$/), 60_000);
  assert.equal(ha.s1.lines.filter(msg(/^Snapshot \S+ saved$/)).length, 0, 'the save waits before it streams');
  const revisionBefore = (await c1.status()).revision;
  assert.equal(etcdctl(ha.s1, ['lease', 'revoke', defragLease]).code, 0);
  const saved = await saving;
  assert.equal(saved.code, 0, saved.stderr);
  assert.match(saved.stdout, /^Snapshot \S+ saved\.\n$/);
  // the save wrote nothing to etcd: the revocation was the last write
  assert.equal(Number((await c1.status()).revision), Number(revisionBefore) + 1);
  for (const s of servers) assert.equal(await s.stop(), 0);
});

test('--etcd-defrag-schedule on three servers: each tick is taken by one server, the two others skip it', async () => {
  const ha = await startHa({ args: ['--etcd-defrag-schedule', '@every 20s'] });
  const servers = [ha.s1, ha.s2, ha.s3];
  const allReady = Date.now();
  const tickOf = (l: LogLine): string => String(l.tick);
  /** The runs of ticks after all three were ready, by tick: the servers that ran it. */
  const runs = (): Map<string, number[]> => {
    const out = new Map<string, number[]>();
    servers.forEach((s, i) => {
      for (const l of s.lines.filter(msg(/^defragmenting 3 etcd members one at a time/)))
        if (Date.parse(tickOf(l)) > allReady) out.set(tickOf(l), [...(out.get(tickOf(l)) ?? []), i]);
    });
    return out;
  };
  const skipped = (tick: string): number[] =>
    servers.flatMap((s, i) =>
      s.lines.some(
        (l) =>
          tickOf(l) === tick &&
          msg(
            /^(scheduled defragmentation of this tick was done by another node|skipping scheduled defragmentation: a defragmentation is already running on server-\d)/,
          )(l),
      )
        ? [i]
        : [],
    );
  await waitUntil(() => runs().size >= 2, 120_000, 'two scheduled defragmentations');
  for (const [tick, ran] of [...runs()].slice(0, 2)) {
    assert.equal(ran.length, 1, `tick ${tick} taken by servers ${ran.join(', ')}`);
    await waitUntil(() => skipped(tick).length === 2, 30_000, `the other servers skipping ${tick}`);
    assert.deepEqual([...ran, ...skipped(tick)].sort(), [0, 1, 2]);
  }
  for (const s of servers) assert.equal(await s.stop(), 0);
});
