/**
 * Time-bucket retention end to end (issue 18, docs/retention.md), with a real server (etcd)
 * and S3 (Swift on loopback): a year of faked snapshot names, locally (copies of a real
 * snapshot, with sidecars) and in the bucket, pruned by `etcd-snapshot prune` and by the
 * scheduled retention pass to exactly the set an independent oracle computes; `--dry-run`
 * lists every snapshot with its reasons and deletes nothing; other nodes, other prefixes and
 * foreign files are never touched; bad policies and mixed settings are refused. The server
 * and the CLI run with TZ=Europe/Berlin, so the buckets follow Berlin's clock (both DST
 * changes of 2026 are inside the year).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { startSwift, swiftSettings, s3CliFlags, s3ServerFlags, type Swift } from './helpers/swift.js';
import { apiRequest, killStarted, runCli, snapshotCli, snapshotCliAsync, startReady, tempDir, type ServerProcess } from './helpers/server.js';
import { S3Store } from '../src/store/s3.js';

const TZ = 'Europe/Berlin';
const POLICY = 'last=3,hourly=6,daily=7,weekly=4,monthly=12,yearly=2';
const COUNTS: Record<string, number> = { last: 3, hourly: 6, daily: 7, weekly: 4, monthly: 12, yearly: 2 };

let swift: Swift;
before(async () => {
  swift = await startSwift();
});
after(async () => {
  killStarted();
  await swift?.stop();
});

const snapDir = (s: ServerProcess): string => path.join(s.dataDir, 'server', 'db', 'snapshots');
const metaDir = (s: ServerProcess): string => path.join(s.dataDir, 'server', 'db', '.metadata');
const env = (): Record<string, string> => ({ TZ, AWS_ACCESS_KEY_ID: swift.accessKey, AWS_SECRET_ACCESS_KEY: swift.secretKey });
const timeOf = (name: string): number => Number(/-(\d{9,11})$/.exec(name)?.[1]);

/**
 * A year of snapshot times (unix seconds, newest first): daily at 11:00 UTC from
 * 2025-12-01 to 2026-11-28, then every 2 hours over the last two days, as a schedule that
 * was changed would leave them.
 */
function fakeYear(): number[] {
  const out = new Set<number>();
  for (let t = Date.parse('2025-12-01T11:00:00Z'); t <= Date.parse('2026-11-28T11:00:00Z'); t += 86_400_000) out.add(t / 1000);
  for (let t = Date.parse('2026-11-29T00:00:00Z'); t <= Date.parse('2026-11-30T22:00:00Z'); t += 7_200_000) out.add(t / 1000);
  return [...out].sort((a, b) => b - a);
}

/**
 * The oracle: restic's rules written as "group, then take" (not the streaming of
 * retention/buckets.ts): per rule the newest snapshot of each of its N newest buckets, plus
 * the oldest snapshot when the rule has fewer than N buckets. Buckets by Berlin wall clock,
 * read with Intl's sv-SE format; the ISO week by the ordinal-day formula.
 */
function oracle(times: readonly number[]): Set<number> {
  const fmt = new Intl.DateTimeFormat('sv-SE', { timeZone: TZ, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', hourCycle: 'h23' });
  const wall = (t: number): { y: number; m: number; d: number; h: number } => {
    const [date = '', hour = ''] = fmt.format(new Date(t * 1000)).split(' ');
    const [y, m, d] = date.split('-').map(Number);
    return { y: y ?? 0, m: m ?? 0, d: d ?? 0, h: Number(hour) };
  };
  const isoWeekKey = (y: number, m: number, d: number): string => {
    const ordinal = (Date.UTC(y, m - 1, d) - Date.UTC(y, 0, 1)) / 86_400_000 + 1;
    const weekday = new Date(Date.UTC(y, m - 1, d)).getUTCDay() || 7;
    const weeksIn = (year: number): number => {
      const p = (yy: number): number => (yy + Math.floor(yy / 4) - Math.floor(yy / 100) + Math.floor(yy / 400)) % 7;
      return p(year) === 4 || p(year - 1) === 3 ? 53 : 52;
    };
    let week = Math.floor((ordinal - weekday + 10) / 7);
    let year = y;
    if (week < 1) {
      year = y - 1;
      week = weeksIn(year);
    } else if (week > weeksIn(y)) {
      year = y + 1;
      week = 1;
    }
    return `${year}-${week}`;
  };
  const key: Record<string, (t: number, i: number) => string> = {
    last: (_t, i) => String(i),
    hourly: (t) => {
      const w = wall(t);
      return `${w.y}-${w.m}-${w.d} ${w.h}`;
    },
    daily: (t) => {
      const w = wall(t);
      return `${w.y}-${w.m}-${w.d}`;
    },
    weekly: (t) => {
      const w = wall(t);
      return isoWeekKey(w.y, w.m, w.d);
    },
    monthly: (t) => {
      const w = wall(t);
      return `${w.y}-${w.m}`;
    },
    yearly: (t) => String(wall(t).y),
  };
  const sorted = [...times].sort((a, b) => b - a);
  const kept = new Set<number>();
  for (const [rule, n] of Object.entries(COUNTS)) {
    const newestOfBucket = new Map<string, number>();
    sorted.forEach((t, i) => {
      const k = key[rule]?.(t, i) ?? '';
      if (!newestOfBucket.has(k)) newestOfBucket.set(k, t);
    });
    const buckets = [...newestOfBucket.values()];
    for (const t of buckets.slice(0, n)) kept.add(t);
    const oldest = sorted[sorted.length - 1];
    if (buckets.length < n && oldest !== undefined) kept.add(oldest);
  }
  return kept;
}

/** Local copies of one real snapshot under the faked names, each with a sidecar like the real one's. */
function seedLocal(s: ServerProcess, real: string, names: readonly string[]): void {
  const side = JSON.parse(readFileSync(path.join(metaDir(s), real), 'utf8')) as Record<string, unknown>;
  for (const name of names) {
    copyFileSync(path.join(snapDir(s), real), path.join(snapDir(s), name));
    const createdAt = new Date(timeOf(name) * 1000).toISOString().replace('.000Z', 'Z');
    writeFileSync(path.join(metaDir(s), name), `${JSON.stringify({ ...side, name, location: `file://${path.join(snapDir(s), name)}`, createdAt }, null, 2)}\n`);
  }
}

/** Objects under the faked names (and a sidecar for every tenth), 16 at a time. */
async function seedS3(store: S3Store, names: readonly string[]): Promise<void> {
  for (let i = 0; i < names.length; i += 16) {
    await Promise.all(
      names
        .slice(i, i + 16)
        .flatMap((n, j) => [
          store.putText(store.key(n), 'not really a snapshot: retention reads names only', 'application/octet-stream'),
          ...((i + j) % 10 === 0 ? [store.putText(store.metadataKey(n), JSON.stringify({ name: n }), 'application/json')] : []),
        ]),
    );
  }
}

async function keys(store: S3Store): Promise<string[]> {
  const out: string[] = [];
  for await (const o of store.list()) out.push(o.name);
  return out.sort();
}

const names = (prefix: string, node: string, times: readonly number[]): string[] => times.map((t) => `${prefix}-${node}-${t}`);
const sortedNames = (xs: Iterable<string>): string[] => [...xs].sort();

test('prune with a policy: a faked year goes to exactly the expected set locally and in S3; --dry-run shows every reason first', async () => {
  await swift.createBucket('ret');
  const store = S3Store.create(swiftSettings(swift, 'ret', 'c1'));
  const s = await startReady({ args: ['--etcd-disable-snapshots', '--etcd-snapshot-retention-policy', POLICY], env: { TZ } });
  const saved = snapshotCli(s, ['save', '--name', 'seed'], { TZ });
  assert.equal(saved.code, 0, saved.stderr);
  const real = /^Snapshot (seed-node1-\d+) saved\.$/m.exec(saved.stdout)?.[1] ?? '';

  const times = fakeYear();
  const mine = names('etcd-snapshot', 'node1', times);
  const t0 = Date.now();
  seedLocal(s, real, mine);
  await seedS3(store, [...mine, ...names('etcd-snapshot', 'node2', times.slice(0, 40)), 'on-demand-node1-1790000000']);
  writeFileSync(path.join(snapDir(s), 'notes.txt'), 'not a snapshot');
  const seedSeconds = (Date.now() - t0) / 1000;
  const expected = sortedNames(names('etcd-snapshot', 'node1', [...oracle(times)]));
  // a sanity bound on the oracle (at most 3 + 6 + 7 + 4 + 12 + 2 = 34, fewer where rules pick the same
  // snapshot); the exact sets are checked against it below (25 with this year)
  assert.ok(expected.length > 20 && expected.length <= 34, `expected ${expected.length}`);

  // without blocking this process: the server logs a line per removal into our pipe
  const prune = (extra: string[]): ReturnType<typeof snapshotCliAsync> =>
    snapshotCliAsync(s, ['prune', '--name', 'etcd-snapshot', ...s3CliFlags(swift, 'ret', 'c1'), ...extra], env());

  // dry run, table: one row per snapshot of the set (local and S3), with keep/remove and reasons; nothing deleted
  const dry = await prune(['--dry-run']);
  assert.equal(dry.code, 0, dry.stderr);
  const lines = dry.stdout.trimEnd().split('\n');
  assert.equal(lines[0], `Policy ${POLICY} in time zone ${TZ}: ${expected.length * 2} kept, ${(mine.length - expected.length) * 2} would be removed.`);
  assert.match(lines[1] ?? '', /^Action +Location +Local time +Reasons$/);
  assert.equal(lines.length, 2 + mine.length * 2);
  const want = new Set(expected);
  for (const n of mine) {
    for (const loc of [`file://${path.join(snapDir(s), n)}`, `s3://ret/c1/${n}`]) {
      const row = lines.find((l) => l.includes(` ${loc} `));
      assert.ok(row, `a row for ${loc}`);
      assert.ok(row.startsWith(want.has(n) ? 'keep ' : 'remove '), row);
    }
  }
  // a row read as a person would: the newest is kept by last, hourly, daily, weekly, monthly and yearly
  const newest = mine[0] ?? '';
  assert.match(
    lines.find((l) => l.includes(`file://${path.join(snapDir(s), newest)} `)) ?? '',
    /^keep +file:\S+ +2026-11-30 23:00:00 \+01:00 +last \(1\/3\); hourly 2026-11-30 23h \(1\/6\); daily 2026-11-30 \(1\/7\); weekly 2026-W49 \(1\/4\); monthly 2026-11 \(1\/12\); yearly 2026 \(1\/2\)$/,
  );
  assert.equal(readdirSync(snapDir(s)).filter((f) => f.startsWith('etcd-snapshot-')).length, mine.length, 'the dry run deleted nothing');
  assert.equal((await keys(store)).filter((k) => k.startsWith('etcd-snapshot-node1-')).length, mine.length);

  // dry run, JSON: the same decisions, every one with reasons
  const js = await prune(['--dry-run', '-o', 'json']);
  assert.equal(js.code, 0, js.stderr);
  const res = JSON.parse(js.stdout) as {
    deleted: string[];
    policy: string;
    timeZone: string;
    decisions: Array<{ store: string; name: string; keep: boolean; reasons: string[]; time: string }>;
  };
  assert.equal(res.policy, POLICY);
  assert.equal(res.timeZone, TZ);
  for (const st of ['local', 's3']) {
    const ds = res.decisions.filter((d) => d.store === st);
    assert.deepEqual(
      ds.map((d) => d.name),
      mine,
      `${st}: every snapshot of the set, newest first`,
    );
    assert.deepEqual(sortedNames(ds.filter((d) => d.keep).map((d) => d.name)), expected, `${st}: kept as the oracle says`);
    assert.ok(ds.every((d) => d.reasons.length > 0 && d.time === new Date(timeOf(d.name) * 1000).toISOString().replace('.000Z', 'Z')));
  }

  // the real prune: exactly the expected set in both places, sidecars with their snapshots
  const t1 = Date.now();
  const pr = await prune([]);
  const pruneSeconds = (Date.now() - t1) / 1000;
  assert.equal(pr.code, 0, pr.stderr);
  assert.equal(pr.stdout.trimEnd().split('\n').length, (mine.length - expected.length) * 2);
  assert.deepEqual(sortedNames(readdirSync(snapDir(s)).filter((f) => f.startsWith('etcd-snapshot-'))), expected, 'local: exactly the expected set');
  assert.deepEqual(sortedNames(readdirSync(metaDir(s)).filter((f) => f.startsWith('etcd-snapshot-'))), expected, 'local sidecars follow');
  const left = await keys(store);
  assert.deepEqual(
    left.filter((k) => k.startsWith('etcd-snapshot-node1-')),
    expected,
    'S3: exactly the expected set',
  );
  assert.ok(
    left.filter((k) => k.startsWith('.metadata/etcd-snapshot-node1-')).every((k) => want.has(k.slice('.metadata/'.length))),
    'S3 sidecars follow',
  );
  assert.equal(left.filter((k) => k.startsWith('etcd-snapshot-node2-')).length, 40, "another node's snapshots are never candidates");
  assert.ok(left.includes('on-demand-node1-1790000000'), 'another prefix is never a candidate');
  assert.ok(existsSync(path.join(snapDir(s), 'notes.txt')) && existsSync(path.join(snapDir(s), real)));

  // a second pass removes nothing: the kept set is stable
  const again = await prune([]);
  assert.equal(again.stdout, `No snapshots to prune (prefix etcd-snapshot, policy ${POLICY}).\n`);
  console.log(
    `# seeded ${mine.length} local + ${mine.length + 41} S3 in ${seedSeconds.toFixed(1)} s; prune removed ${pr.stdout.trimEnd().split('\n').length} in ${pruneSeconds.toFixed(1)} s`,
  );
  assert.equal(await s.stop(), 0);
});

test('the scheduled retention pass applies the server policy locally and in S3 (this node only)', async () => {
  await swift.createBucket('ret2');
  const store = S3Store.create(swiftSettings(swift, 'ret2', ''));
  const dataDir = path.join(tempDir(), 'data');
  // seed before the first scheduled save: a first server only to take the snapshot the copies are made of
  const seeder = await startReady({ dataDir, args: ['--etcd-disable-snapshots'], env: { TZ } });
  const saved = snapshotCli(seeder, ['save', '--name', 'seed'], { TZ });
  assert.equal(saved.code, 0, saved.stderr);
  const real = /^Snapshot (seed-node1-\d+) saved\.$/m.exec(saved.stdout)?.[1] ?? '';
  const times = fakeYear();
  const mine = names('etcd-snapshot', 'node1', times);
  seedLocal(seeder, real, mine);
  await seedS3(store, [...mine, ...names('etcd-snapshot', 'node2', times.slice(0, 10))]);
  assert.equal(await seeder.stop(), 0);

  const s = await startReady({
    dataDir,
    args: ['--etcd-snapshot-schedule-cron', '@every 4s', '--etcd-snapshot-retention-policy', POLICY, ...s3ServerFlags(swift, 'ret2')],
    env: env(),
  });
  const savedLine = await s.waitFor((l) => typeof l.msg === 'string' && /^Snapshot etcd-snapshot-node1-\d+ saved$/.test(l.msg), 120_000);
  const first = /(etcd-snapshot-node1-\d+)/.exec(String(savedLine.msg))?.[1] ?? '';
  await s.waitFor((l) => typeof l.msg === 'string' && l.msg.startsWith('Applied snapshot retention policy') && l.msg.includes('s3://ret2'), 240_000);
  // the dashboard shows the policy, not the (unused) counts
  const secret = s.token().split('::server:')[1] ?? '';
  const login = await apiRequest(`${s.url}/ui/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-etcdsnap-csrf': 'login', origin: s.url },
    body: JSON.stringify({ token: secret }),
  });
  assert.equal(login.status, 200, login.body);
  const cookie = /__Host-etcdsnap-session=[^;]+/.exec(login.headers['set-cookie']?.join(';') ?? '')?.[0] ?? '';
  const ui = await apiRequest(`${s.url}/ui/state`, { headers: { cookie } });
  assert.equal((JSON.parse(ui.body) as { schedule: { retentionPolicy?: string } }).schedule.retentionPolicy, POLICY);
  await s.stop();

  // the first pass: what it removed, from the log between its markers
  const msgs = s.lines.map((l) => String(l.msg ?? ''));
  const start = msgs.findIndex((m) =>
    m.startsWith(`Applying snapshot retention policy ${POLICY} (time zone ${TZ}) to local snapshots with prefix etcd-snapshot`),
  );
  assert.ok(start >= 0, 'the local pass is logged with the policy and the zone');
  // the S3 pass logs its line, then its removals, up to the next pass's first line
  const applied = msgs.findIndex((m, i) => i > start && m.startsWith('Applied snapshot retention policy'));
  const next = msgs.findIndex((m, i) => i > applied && (m.startsWith('Applying snapshot retention') || m.startsWith('Saving etcd snapshot')));
  const removedLocal = msgs
    .slice(start, applied)
    .filter((m) => m.startsWith('Removing local snapshot '))
    .map((m) => m.slice('Removing local snapshot '.length));
  const removedS3 = msgs
    .slice(applied, next < 0 ? msgs.length : next)
    .filter((m) => m.startsWith('Removing S3 snapshot s3://ret2/'))
    .map((m) => m.slice('Removing S3 snapshot s3://ret2/'.length));
  const all = [timeOf(first), ...times];
  const keep = oracle(all);
  const expectedGone = sortedNames(
    names(
      'etcd-snapshot',
      'node1',
      all.filter((t) => !keep.has(t)),
    ),
  );
  assert.deepEqual(sortedNames(removedLocal), expectedGone, 'local: the first pass removed exactly what the oracle says');
  assert.deepEqual(sortedNames(removedS3), expectedGone, 'S3: the same');
  const left = await keys(store);
  assert.equal(left.filter((k) => k.startsWith('etcd-snapshot-node2-')).length, 10, "another node's snapshots stay");
  for (const n of expectedGone) {
    assert.ok(!existsSync(path.join(snapDir(s), n)), n);
    assert.ok(!left.includes(n), n);
  }
});

test('bad policies and a policy with a count are refused with one line, and nothing changes', async () => {
  const dir = tempDir();
  const server = (extra: string[], e: Record<string, string> = {}): ReturnType<typeof runCli> =>
    runCli(['server', '--data-dir', path.join(dir, 'data'), '--config', path.join(dir, 'none.yaml'), ...extra], e, 30_000);
  writeFileSync(path.join(dir, 'none.yaml'), '');
  const cases: Array<[string[], Record<string, string>, string]> = [
    [['--etcd-snapshot-retention-policy', 'daily=-1'], {}, 'daily=-1: the count is negative; use 0 to 100000 (0 turns the rule off)'],
    [['--etcd-snapshot-retention-policy', 'minutely=5'], {}, 'unknown rule "minutely": use last, hourly, daily, weekly, monthly, yearly'],
    [['--etcd-snapshot-retention-policy', 'daily=7,,weekly=1'], {}, 'empty item in "daily=7,,weekly=1"'],
    [[], { ETCDSNAP_ETCD_SNAPSHOT_RETENTION_POLICY: 'daily' }, '"daily" is not <rule>=<count>'],
    [
      ['--etcd-snapshot-retention-policy', 'daily=7', '--etcd-snapshot-retention', '3'],
      {},
      'error: --etcd-snapshot-retention-policy replaces --etcd-snapshot-retention: remove it (flag, config key or environment), or the policy',
    ],
  ];
  for (const [args, e, want] of cases) {
    const r = server(args, e);
    assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
    assert.ok(r.stderr.includes(want), `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
  assert.ok(!existsSync(path.join(dir, 'data', 'server')), 'nothing was created');

  // the CLI and the API refuse the same, before anything is touched
  const s = await startReady({ args: ['--etcd-disable-snapshots'], env: { TZ } });
  const both = snapshotCli(s, ['prune', '--snapshot-retention-policy', 'daily=7', '--snapshot-retention', '2']);
  assert.equal(both.code, 1);
  assert.equal(both.stderr.trim().split('\n').length, 1);
  assert.match(both.stderr, /^error: --snapshot-retention-policy replaces --snapshot-retention: give one/);
  const badCli = snapshotCli(s, ['prune', '--snapshot-retention-policy', 'weekly=x']);
  assert.equal(badCli.code, 1);
  assert.match(badCli.stderr, /weekly=x: the count must be a whole number \(0 to 100000\)/);
  const auth = { authorization: `Bearer ${s.token().split('::server:')[1] ?? ''}`, 'content-type': 'application/json' };
  const api = async (body: Record<string, unknown>): Promise<{ status: number; body: string }> =>
    apiRequest(`${s.url}/db/snapshot`, { method: 'POST', headers: auth, body: JSON.stringify(body) });
  const mixed = await api({ operation: 'prune', retention: 2, retentionPolicy: 'daily=7', dryRun: true });
  assert.equal(mixed.status, 400, mixed.body);
  assert.match(mixed.body, /give \\"retention\\" or \\"retentionPolicy\\", not both/);
  const badApi = await api({ operation: 'prune', retentionPolicy: 'yearly=1,yearly=2', dryRun: true });
  assert.equal(badApi.status, 400);
  assert.match(badApi.body, /invalid field \\"retentionPolicy\\": rule yearly given twice/);
  const wrongType = await api({ operation: 'prune', retentionPolicy: 7 });
  assert.equal(wrongType.status, 400);
  assert.equal(await s.stop(), 0);
});
