/**
 * The election over an etcd lease (etcd/election.ts) against a real etcd (a server's):
 * one leader at a time, fencing of a deposed term, resign on stop with a prompt takeover,
 * a lease revoked under the leader (onLost, then another candidate leads), a dead leader's
 * lease expiring (takeover within the TTL), a stale key without a lease (as a replay
 * leaves it) and a key of the candidate's own previous incarnation taken over at once.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { EtcdClient } from '../src/etcd/client.js';
import { Election, electionHolder, type Term } from '../src/etcd/election.js';
import { tlsPaths } from '../src/etcd/tls.js';
import { createLogger } from '../src/log/logger.js';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { etcdctl, killStarted, startReady, waitUntil, type ServerProcess } from './helpers/server.js';

after(() => killStarted());

const logger = createLogger({ format: 'json', debug: false, destination: { write: () => undefined } });
const KEY = '/etcdsnap/test/election';

interface Candidate {
  name: string;
  election: Election;
  client: EtcdClient;
  terms: Term[];
  lost: string[];
}

async function candidate(s: ServerProcess, name: string, ttlSeconds: number): Promise<Candidate> {
  const client = await EtcdClient.connect({ endpoint: `https://127.0.0.1:${s.ports.client}`, tls: tlsPaths(s.dataDir) });
  const c: Candidate = { name, client, terms: [], lost: [], election: undefined as unknown as Election };
  c.election = new Election({
    etcd: client,
    key: KEY,
    value: name,
    ttlSeconds,
    logger,
    onElected: (t) => c.terms.push(t),
    onLost: (_t, why) => c.lost.push(why),
  });
  return c;
}

const children: ChildProcess[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

/** A candidate in a process of its own (helpers/candidate.ts), to be SIGKILLed. */
function spawnCandidate(s: ServerProcess, name: string, ttlSeconds: number): { child: ChildProcess; out(): string } {
  const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'helpers', 'candidate.ts');
  const child = spawn(process.execPath, ['--import', 'tsx', script, `https://127.0.0.1:${s.ports.client}`, s.dataDir, KEY, name, String(ttlSeconds)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  return { child, out: () => out };
}

const last = (c: Candidate): Term => {
  const t = c.terms[c.terms.length - 1];
  assert.ok(t, `${c.name} was elected`);
  return t;
};

test('election over an etcd lease: one leader, fencing, resign, lease loss, expiry, stale and own keys', async () => {
  const s = await startReady({ args: ['--etcd-disable-snapshots'] });
  const probe = EtcdClient.connect({ endpoint: `https://127.0.0.1:${s.ports.client}`, tls: tlsPaths(s.dataDir) });
  const holder = async (): Promise<string | undefined> => (await electionHolder(await probe, KEY))?.value;
  const a = await candidate(s, 'a', 10);
  const b = await candidate(s, 'b', 10);
  after(() => {
    for (const c of [a, b]) c.client.close();
  });

  // one leader; the other waits
  a.election.start();
  await waitUntil(() => a.terms.length === 1, 10_000, 'a elected');
  b.election.start();
  assert.equal(await holder(), 'a');
  const ta = last(a);
  assert.ok((await ta.putIfLeader('/etcdsnap/test/data', 'from-a')) !== undefined, 'the leader writes');
  assert.equal(b.terms.length, 0, 'one leader at a time');

  // resign on stop: b takes over at once (well before the 10 s TTL); a's term is fenced
  const t0 = Date.now();
  await a.election.stop();
  await waitUntil(() => b.terms.length === 1, 5_000, 'b elected after a resigned');
  assert.ok(Date.now() - t0 < 5_000, 'no wait for the TTL');
  assert.ok(ta.signal.aborted);
  assert.equal(await ta.putIfLeader('/etcdsnap/test/data', 'stale'), undefined, "a deposed term's write is refused");
  assert.deepEqual(a.lost, [], 'a stop is not a loss');
  const tb = last(b);
  // the mod-revision guard
  const rev = await tb.putIfLeader('/etcdsnap/test/data', 'b1');
  assert.ok(rev !== undefined);
  assert.equal(await tb.putIfLeader('/etcdsnap/test/data', 'b2', rev - 1), undefined, 'a changed key refuses the write');
  assert.ok((await tb.putIfLeader('/etcdsnap/test/data', 'b2', rev)) !== undefined);

  // the lease revoked under the leader: onLost, and a waiting candidate leads
  const c = await candidate(s, 'c', 10);
  after(() => c.client.close());
  c.election.start();
  const leaseHex = BigInt(tb.leaseId).toString(16);
  assert.equal(etcdctl(s, ['lease', 'revoke', leaseHex]).code, 0);
  await waitUntil(() => c.terms.length === 1 || b.terms.length === 2, 10_000, 'a new leader after the revoke');
  await waitUntil(() => b.lost.length === 1, 10_000, 'b is told it lost (etcd said its lease is gone)');
  assert.ok(tb.signal.aborted);
  assert.equal(await tb.putIfLeader('/etcdsnap/test/data', 'stale'), undefined);
  await Promise.all([b.election.stop(), c.election.stop()]);
  assert.equal(await holder(), undefined, 'stop resigns: the key is gone');

  // a dead leader (its process SIGKILLed): the other takes over once its lease expires
  const d = spawnCandidate(s, 'd', 2);
  await waitUntil(() => d.out().includes('elected'), 10_000, 'd elected');
  const e = await candidate(s, 'e', 2);
  after(() => e.client.close());
  e.election.start();
  const t1 = Date.now();
  d.child.kill('SIGKILL');
  await waitUntil(() => e.terms.length === 1, 10_000, 'e elected after d died');
  const took = Date.now() - t1;
  // etcd raises a TTL below 1.5 election timeouts (7.5 s with the servers' 5 s) to 8 s
  assert.ok(took < 8_000 + 4_000, `takeover within the (raised) TTL (${took} ms)`);
  await e.election.stop();

  // a stale key without a lease (what a replayed change log leaves) never blocks
  assert.equal(etcdctl(s, ['put', KEY, 'replayed-node']).code, 0);
  const f = await candidate(s, 'f', 10);
  after(() => f.client.close());
  f.election.start();
  await waitUntil(() => f.terms.length === 1, 5_000, 'f elected over a key without a lease');
  assert.equal(await holder(), 'f');

  // f's process crashes (its lease alive for 10 s more); f's next incarnation takes over at once
  await f.election.stop();
  const fp = spawnCandidate(s, 'f', 10);
  await waitUntil(() => fp.out().includes('elected'), 10_000, 'f (a process) elected');
  const tfRevision = Number(/elected (\d+)/.exec(fp.out())?.[1]);
  fp.child.kill('SIGKILL');
  const f2 = await candidate(s, 'f', 10);
  after(() => f2.client.close());
  const t2 = Date.now();
  f2.election.start();
  await waitUntil(() => f2.terms.length === 1, 5_000, "f's next incarnation elected");
  assert.ok(Date.now() - t2 < 5_000, 'no wait for the old lease');
  const tf2 = last(f2);
  assert.ok(tf2.createRevision > tfRevision);
  assert.ok((await tf2.putIfLeader('/etcdsnap/test/data', 'f2')) !== undefined);
  await f2.election.stop();
  (await probe).close();
  assert.equal(await s.stop(), 0);
});
