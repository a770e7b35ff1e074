/**
 * Several agents, one backup (docs/agent.md "Several agents"): two `etcdsnap agent`s of one
 * group against a real 3-member TLS etcd cluster (helpers/etcd-cluster.ts), `@every 4s`,
 * election TTL 3 s. A stale election key without a lease does not block the election;
 * each scheduled tick is taken exactly once across both agents; an on-demand save against
 * either agent makes exactly one snapshot (not elected); SIGKILL of the active agent hands
 * over within the TTL plus a bound, and the ticks around the handover are each taken
 * exactly once (no gap, no double), counted both by claims and by snapshot files. The
 * election's status route and the `etcdsnap_agent_active` gauge show the active agent.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { agentReady, type EtcdCluster, startAgent, startEtcdCluster } from './helpers/etcd-cluster.js';
import { apiRequest, type LogLine, type ServerProcess, snapshotCli } from './helpers/server.js';

const TTL_S = 3;
const TICK_MS = 4000;
/**
 * Handover bound after a SIGKILL: the lease expires at most TTL after the last keepalive
 * etcd saw (etcd checks expiry every 500 ms), the standby hears the key's deletion through
 * its watch; 2 s for both plus a loaded 2-core machine.
 */
const HANDOVER_BOUND_MS = TTL_S * 1000 + 2000;

let cluster: EtcdCluster | undefined;
const agents: ServerProcess[] = [];

after(async () => {
  for (const a of agents) if (a.exitCode === undefined) a.child.kill('SIGKILL');
  await cluster?.stopAll();
});

const files = (dir: string, prefix: string): string[] => (existsSync(dir) ? readdirSync(dir).filter((n) => n.startsWith(prefix)) : []);
const snapshotDir = (a: ServerProcess): string => path.join(a.dataDir, 'server', 'db', 'snapshots');
const at = (l: LogLine): number => Date.parse(String(l.time));
const isClaim = (l: LogLine): boolean => typeof l.msg === 'string' && l.msg.startsWith('taking the scheduled snapshot of tick ');
const claims = (a: ServerProcess): LogLine[] => a.lines.filter(isClaim);
const elected = (l: LogLine): boolean => l.msg === 'this agent is now the active one';

test('two agents: one snapshot per tick, on-demand saves once, SIGKILL of the active hands over without a gap or a double', async () => {
  cluster = await startEtcdCluster(3);
  const c = cluster;
  // (d) a stale election key without a lease (as a restored etcd or a crashed tool leaves it)
  assert.equal(c.etcdctl(['put', '/etcdsnap/agent/g1/active', 'ghost']).code, 0);
  const args = (node: string): string[] => [
    '--node-name',
    node,
    '--etcd-snapshot-schedule-cron',
    `@every ${TICK_MS / 1000}s`,
    '--etcd-snapshot-retention',
    '100',
    '--election-name',
    'g1',
    '--election-ttl',
    `${TTL_S}s`,
  ];
  const [a1, a2] = await Promise.all([startAgent(c, { args: args('a1') }), startAgent(c, { args: args('a2') })]);
  agents.push(a1, a2);
  await Promise.all([agentReady(a1), agentReady(a2)]);

  // one of them is active soon: the stale key is removed at once, not after a TTL
  const first = await Promise.race([a1.waitFor(elected, 10_000).then(() => a1), a2.waitFor(elected, 10_000).then(() => a2)]);
  const standby = first === a1 ? a2 : a1;
  const campaign = first.lines.find((l) => typeof l.msg === 'string' && l.msg.startsWith('campaigning'));
  const electedLine = first.lines.find(elected);
  assert.ok(campaign && electedLine);
  assert.ok(at(electedLine) - at(campaign) < TTL_S * 1000, `elected ${at(electedLine) - at(campaign)} ms after campaigning, despite the stale key`);

  // (a) several ticks: only the active agent claims and saves
  await first.waitFor(() => claims(first).length >= 3, 30_000);
  assert.equal(claims(standby).length, 0, 'the standby takes no tick');
  await standby.waitFor((l) => typeof l.msg === 'string' && l.msg.startsWith('standing by, '), 10_000);

  // the election's status in the API
  const secret = (a: ServerProcess): string =>
    readFileSync(path.join(a.dataDir, 'server', 'token'), 'utf8')
      .trim()
      .split('::server:')[1] ?? '';
  const status = async (a: ServerProcess): Promise<{ active: boolean; holder?: string }> =>
    JSON.parse((await apiRequest(`${a.url}/v1/agent/election`, { headers: { authorization: `Bearer ${secret(a)}` } })).body) as {
      active: boolean;
      holder?: string;
    };
  const firstName = first === a1 ? 'a1' : 'a2';
  assert.deepEqual([(await status(first)).active, (await status(standby)).active, (await status(standby)).holder], [true, false, firstName]);

  const activeGauge = async (a: ServerProcess): Promise<string | undefined> =>
    /^etcdsnap_agent_active (\d)$/m.exec((await apiRequest(`${a.url}/metrics`, { headers: { authorization: `Bearer ${secret(a)}` } })).body)?.[1];
  assert.deepEqual([await activeGauge(first), await activeGauge(standby)], ['1', '0'], 'etcdsnap_agent_active');

  // (b) on demand, against either agent: exactly one snapshot each, not elected
  for (const a of [first, standby]) {
    const r = snapshotCli(a, ['save', '--name', 'od']);
    assert.equal(r.code, 0, r.stderr);
  }
  assert.equal(files(snapshotDir(first), 'od-').length, 1);
  assert.equal(files(snapshotDir(standby), 'od-').length, 1);

  // (c) SIGKILL of the active agent right after one of its scheduled saves
  const savedCount = (a: ServerProcess): number => a.lines.filter((l) => /^Snapshot etcd-snapshot-a\d-\d+ saved$/.test(String(l.msg))).length;
  const before = savedCount(first);
  await first.waitFor(() => savedCount(first) > before && savedCount(first) === claims(first).length, 30_000);
  // and just before its next tick (a time, not an event: the next tick then falls while its
  // lease is still alive and nobody is active, the case a handover must not miss)
  const lastTick = Date.parse(String(claims(first).at(-1)?.tick));
  const nextTick = lastTick + TICK_MS;
  await new Promise((r) => setTimeout(r, Math.max(0, nextTick - 300 - Date.now())));
  const killedAt = Date.now();
  first.child.kill('SIGKILL');
  const took = await standby.waitFor(elected, HANDOVER_BOUND_MS + 10_000);
  const handoverMs = at(took) - killedAt;
  console.log(`# handover after SIGKILL: ${handoverMs} ms (TTL ${TTL_S} s)`);
  assert.ok(handoverMs <= HANDOVER_BOUND_MS, `handover took ${handoverMs} ms, more than ${HANDOVER_BOUND_MS} ms`);
  await standby.waitFor(() => claims(standby).length >= 2, 30_000);
  const savedOf = (a: ServerProcess): number => savedCount(a);
  await standby.waitFor(() => savedOf(standby) >= claims(standby).length, 30_000);
  assert.equal(await standby.stop(), 0);
  assert.equal(
    claims(first).some((l) => Date.parse(String(l.tick)) === nextTick),
    false,
    'the killed agent did not claim the next tick',
  );
  assert.ok(
    claims(standby).some((l) => Date.parse(String(l.tick)) === nextTick),
    `the tick that fell while nobody was active (${new Date(nextTick).toISOString()}) was taken by the new active agent`,
  );
  const excerpt = standby.raw.filter((l) => /active|tick|Snapshot etcd-snapshot/.test(l)).slice(0, 14);
  console.log(`# the standby's log:\n${excerpt.map((l) => `#   ${l}`).join('\n')}`);

  // each tick exactly once, and no tick missing between the first and the last
  const all = [...claims(first), ...claims(standby)].map((l) => Date.parse(String(l.tick)));
  const ticks = [...new Set(all)].sort((x, y) => x - y);
  assert.equal(all.length, ticks.length, `a tick was claimed twice: ${all.map((t) => new Date(t).toISOString()).join(' ')}`);
  const lo = ticks[0] ?? 0;
  const hi = ticks[ticks.length - 1] ?? 0;
  assert.equal(ticks.length, (hi - lo) / TICK_MS + 1, `a tick is missing: ${ticks.map((t) => new Date(t).toISOString()).join(' ')}`);
  // and as many scheduled snapshot files as ticks
  const scheduledFiles = files(snapshotDir(first), 'etcd-snapshot-').length + files(snapshotDir(standby), 'etcd-snapshot-').length;
  assert.equal(scheduledFiles, ticks.length);
  const after = claims(standby).map((l) => String(l.tick));
  console.log(`# ticks: ${ticks.length}, by ${firstName}: ${claims(first).length}, after the handover: ${after.join(' ')}`);
});
