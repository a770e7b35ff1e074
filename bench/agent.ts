/**
 * `npm run bench:agent`: times `etcdsnap etcd-snapshot save` against an `etcdsnap agent`
 * backing up an external etcd cluster (three plain etcd members with client and peer TLS,
 * test/helpers/etcd-cluster.ts) against `etcdctl snapshot save` from the same member. The
 * agent streams from a follower (docs/agent.md, "Which member a snapshot streams from"); each
 * pair gives etcdctl the member the agent's rule picks at that moment (the first follower in
 * `--endpoints` order), and the agent's "Snapshot ... saved" log line is checked to name that
 * same endpoint, so both read the same member's database. Otherwise as bench:save: the cluster
 * is filled with 64 KiB values up to each size in turn, the two commands alternate (and which
 * goes first alternates), medians, ratio, and the agent's peak RSS with Prometheus scraping
 * `/metrics` and a dashboard session polling (bench/lib.ts `watchServer`).
 *   BENCH_SIZES=50,300,1024 BENCH_RUNS=3 npm run bench:agent
 * BENCH_RUNS is the number of runs at the largest size (at least 3); smaller sizes get 9 at
 * least. The CPU that other processes used during the run (bench/lib.ts `OtherCpu`) goes into
 * the section, with the load averages: on a shared machine the wall times are not comparable
 * with a quiet run.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { EtcdClient } from '../src/etcd/client.js';
import { agentReady, type EtcdCluster, startAgent, startEtcdCluster } from '../test/helpers/etcd-cluster.js';
import { BIN, cleanEnv, type ServerProcess, tempDir } from '../test/helpers/server.js';
import { machine, median, OtherCpu, saveGoalLine, rssSampler, timeCommand, watchServer, writeSection } from './lib.js';

const SIZES = (process.env.BENCH_SIZES ?? '50,300,1024')
  .split(',')
  .map((s) => Number(s.trim()))
  .filter((n) => Number.isFinite(n) && n > 0)
  .sort((a, b) => a - b);
if (SIZES.length === 0) throw new Error('BENCH_SIZES gives no size in MiB');
const RUNS = Math.max(3, Number(process.env.BENCH_RUNS ?? 3));
const LARGEST = SIZES[SIZES.length - 1] ?? 0;
const runsAt = (mib: number): number => (mib === LARGEST ? RUNS : Math.max(9, RUNS));
const VALUE = 64 * 1024;
const QUOTA = 8 * 2 ** 30;
const keysFor = (mib: number): number => Math.round((mib * 1024 * 1024) / VALUE);
const loadavg = (): string => readFileSync('/proc/loadavg', 'utf8').trim().split(/\s+/).slice(0, 3).join(' ');

interface SizeResult {
  mib: number;
  bytes: number;
  ours: number[];
  theirs: number[];
  /** The agent's own `durationMs` (stream, verify, fsync, rename, sidecar), per run. */
  agentMs: number[];
  peakRss: number;
  /** Member names the pairs read from (the agent's and etcdctl's, equal in every pair). */
  members: string[];
}

/** Puts `count` keys of `bytes` random bytes (one value, 16 in flight) through `endpoint`. */
async function fill(cluster: EtcdCluster, endpoint: string, prefix: string, count: number, bytes: number): Promise<void> {
  const c = await EtcdClient.connect({
    endpoint,
    tls: { etcdCa: cluster.tls.ca, clientCert: cluster.tls.cert, clientKey: cluster.tls.key },
    serverName: '127.0.0.1',
  });
  try {
    const value = randomBytes(bytes);
    for (let i = 0; i < count; i += 16) {
      await Promise.all(
        Array.from({ length: Math.min(16, count - i) }, (_, j) =>
          c.kv
            .put(`${prefix}${String(i + j).padStart(8, '0')}`)
            .value(value)
            .exec(),
        ),
      );
    }
  } finally {
    c.close();
  }
}

/** The member the agent's rule picks now: the first follower in `--endpoints` order (the leader if none). */
function agentsPick(cluster: EtcdCluster): string {
  const st = cluster.status();
  const follower = cluster.endpoints.find((ep) => {
    const s = st.find((x) => x.endpoint === ep);
    return s !== undefined && s.memberId !== s.leader;
  });
  return follower ?? cluster.endpoints[cluster.leaderIndex()] ?? '';
}

const started = Date.now();
const otherCpu = new OtherCpu();
let others = 0;
const loadStart = loadavg();
console.log(`load average at the start: ${loadStart}`);
const dir = tempDir('etcdsnap-bench-agent-');
const cluster = await startEtcdCluster(3, [`--quota-backend-bytes=${QUOTA}`]);
const nameOf = (ep: string): string => cluster.specs[cluster.endpoints.indexOf(ep)]?.name ?? ep;
let agent: ServerProcess | undefined;
const results: SizeResult[] = [];
try {
  const leaderAtFill = cluster.endpoints[cluster.leaderIndex()] ?? '';
  agent = await startAgent(cluster, {
    dataDir: path.join(dir, 'agent'),
    args: [
      '--endpoints',
      cluster.endpoints.join(','),
      '--cacert',
      cluster.tls.ca,
      '--cert',
      cluster.tls.cert,
      '--key',
      cluster.tls.key,
      '--etcd-disable-snapshots',
    ],
  });
  await agentReady(agent);
  const a = agent;
  const cfg = path.join(dir, `config-${a.ports.supervisor}.yaml`);
  const snapDir = path.join(a.dataDir, 'server', 'db', 'snapshots');
  const ctlOut = path.join(dir, 'etcdctl.db');
  let keys = 0;

  const ours = async (expect: string): Promise<{ ms: number; rss: number; bytes: number; agentMs: number }> => {
    const seen = a.lines.length;
    const rss = rssSampler(a.pid);
    const watch = await watchServer(a);
    const r = await timeCommand(process.execPath, [BIN, 'etcd-snapshot', 'save', '--config', cfg, '--data-dir', a.dataDir, '--etcd-server', a.url], cleanEnv());
    const peak = rss.stop();
    if ((await watch.stop()) === 0) throw new Error('no /metrics scrape nor dashboard poll was answered during the save');
    if (r.code !== 0) throw new Error(`etcdsnap save failed: ${r.stderr}`);
    const name = /^Snapshot (\S+) saved\./m.exec(r.stdout)?.[1] ?? '';
    const line = await a.waitFor((l) => l.msg === `Snapshot ${name} saved` && a.lines.indexOf(l) >= seen, 10_000);
    if (line.endpoint !== expect) throw new Error(`the agent streamed from ${String(line.endpoint)}, etcdctl was given ${expect} (leader changed?)`);
    let bytes = 0;
    for (const f of readdirSync(snapDir)) {
      bytes = statSync(path.join(snapDir, f)).size;
      rmSync(path.join(snapDir, f));
    }
    return { ms: r.ms, rss: peak, bytes, agentMs: Number(line.durationMs) };
  };
  const theirs = async (endpoint: string): Promise<number> => {
    const r = await timeCommand(
      'etcdctl',
      [`--endpoints=${endpoint}`, `--cacert=${cluster.tls.ca}`, `--cert=${cluster.tls.cert}`, `--key=${cluster.tls.key}`, 'snapshot', 'save', ctlOut],
      { PATH: process.env.PATH ?? '/usr/bin:/bin', ETCDCTL_API: '3' },
    );
    if (r.code !== 0) throw new Error(`etcdctl snapshot save failed: ${r.stderr}`);
    rmSync(ctlOut, { force: true });
    return r.ms;
  };

  for (const mib of SIZES) {
    const want = keysFor(mib);
    if (want > keys) {
      const t0 = Date.now();
      // new keys (a prefix per step) through the leader: the database grows by the difference
      await fill(cluster, cluster.endpoints[cluster.leaderIndex()] ?? leaderAtFill, `fill-${mib}/`, want - keys, VALUE);
      await cluster.healthy();
      console.log(`filled up to ${mib} MiB in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      keys = want;
    }
    const r: SizeResult = { mib, bytes: 0, ours: [], theirs: [], agentMs: [], peakRss: 0, members: [] };
    for (let i = 0; i < runsAt(mib); i++) {
      const member = agentsPick(cluster);
      // alternate which command goes first, so neither always runs on a warmer cache
      let x: { ms: number; rss: number; bytes: number; agentMs: number };
      let y: number;
      if (i % 2 === 0) {
        x = await ours(member);
        y = await theirs(member);
      } else {
        y = await theirs(member);
        x = await ours(member);
      }
      r.ours.push(x.ms);
      r.theirs.push(y);
      r.agentMs.push(x.agentMs);
      r.peakRss = Math.max(r.peakRss, x.rss);
      r.bytes = x.bytes;
      r.members.push(nameOf(member));
      console.log(
        `${mib} MiB run ${i + 1} (${nameOf(member)}): etcdsnap ${(x.ms / 1000).toFixed(2)} s (agent ${(x.agentMs / 1000).toFixed(2)} s), etcdctl ${(y / 1000).toFixed(2)} s, agent RSS ${x.rss.toFixed(0)} MiB`,
      );
    }
    results.push(r);
  }
} finally {
  // read before they stop: the members' and the agent's CPU count as the benchmark's own
  others = otherCpu.cores([...cluster.members.flatMap((m) => (m?.child.pid !== undefined ? [m.child.pid] : [])), ...(agent ? [agent.pid] : [])]);
  await agent?.stop();
  await cluster.stopAll();
  rmSync(dir, { recursive: true, force: true });
  rmSync(cluster.dir, { recursive: true, force: true });
}

const loadEnd = loadavg();
console.log(`load average at the end: ${loadEnd}`);
console.log(`CPU used by other processes during the run: ${others.toFixed(2)} cores`);
const shared = others > 0.2;
const fmt = (xs: number[]): string => xs.map((x) => (x / 1000).toFixed(2)).join(', ');
const sizeOf = (bytes: number): string => (bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(2)} GiB` : `${(bytes / 2 ** 20).toFixed(0)} MiB`);
const membersOf = (r: SizeResult): string => {
  const counts = new Map<string, number>();
  for (const m of r.members) counts.set(m, (counts.get(m) ?? 0) + 1);
  return [...counts].map(([m, n]) => `${m} ×${n}`).join(', ');
};
const rows = results.map((r) => {
  const mo = median(r.ours);
  const mt = median(r.theirs);
  return `| ${sizeOf(r.bytes)} (${keysFor(r.mib)} keys) | ${membersOf(r)} | ${(mo / 1000).toFixed(2)} | ${(median(r.agentMs) / 1000).toFixed(2)} | ${(mt / 1000).toFixed(2)} | **${(mo / mt).toFixed(2)}** | ${r.peakRss.toFixed(0)} MiB | ${fmt(r.ours)} | ${fmt(r.theirs)} |`;
});
const goalLine = saveGoalLine(results.map((r) => ({ mib: r.mib, ratio: median(r.ours) / median(r.theirs) })));
const peak = Math.max(...results.map((r) => r.peakRss));
const minutes = ((Date.now() - started) / 60_000).toFixed(1);
const body = `Snapshots of an external etcd cluster (three plain etcd members on loopback, client and peer TLS with client certificates required; \`test/helpers/etcd-cluster.ts\`, \`--quota-backend-bytes=${QUOTA}\`) filled with 64 KiB values to ${SIZES.join(', ')} MiB in turn, local disk, uncompressed.
Command: \`npm run bench:agent\` (BENCH_SIZES=${SIZES.join(',')}, BENCH_RUNS=${RUNS}: ${RUNS} alternating pairs at the largest size, ${Math.max(9, RUNS)} at the smaller ones, the first command of a pair alternating; ${minutes} min in all). Machine: ${machine()}; etcd 3.4.23 (Debian).
Load average (1, 5, 15 min) at the start: ${loadStart}; at the end: ${loadEnd} (the benchmark's own etcd members and agent keep it above 1). CPU used by processes other than the benchmark's during the run (/proc/stat's busy time minus the benchmark's processes): ${others.toFixed(2)} cores.${shared ? ' **The machine was shared** with other jobs during this run (more than 0.2 of a core): the wall times and ratios are not comparable with a quiet run.' : ' The machine was otherwise idle.'}
etcdsnap: \`etcdsnap etcd-snapshot save --etcd-server <agent> --data-dir <agent data dir>\` against \`etcdsnap agent --endpoints <all three> --cacert --cert --key --etcd-disable-snapshots\` (CLI → agent → member stream, verify, fsync, rename, sidecar); etcdctl: \`etcdctl --endpoints=<member> snapshot save\`. In each pair etcdctl was given the member the agent streamed from (its rule: the first follower in \`--endpoints\` order; the agent's log line was checked to name it); the member column counts the pairs per member. "agent" is the agent's own \`durationMs\` of the save (from its log), the rest of the etcdsnap time is the CLI's start-up and the API round trip.

| snapshot size | member (pairs) | etcdsnap median (s) | of which agent (s) | etcdctl median (s) | ratio (goal <= 1.0 at 1 GiB) | agent peak RSS (goal < 150 MB) | etcdsnap runs (s) | etcdctl runs (s) |
|---|---|---|---|---|---|---|---|---|
${rows.join('\n')}

${goalLine} Agent peak RSS while streaming: **${peak.toFixed(0)} MiB** (goal < 150 MB), with Prometheus scraping \`/metrics\` and a dashboard session polling \`/ui/state\` and \`/ui/progress\` every 0.5 s (bench/lib.ts \`watchServer\`).
Measured ${new Date().toISOString()}.`;
console.log(body);
writeSection('Save from an external cluster (bench:agent)', body);
