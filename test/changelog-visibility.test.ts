/**
 * Visibility of the change log (issue 16, docs/point-in-time-restore.md "Visibility"), one
 * real server and etcd: `etcd-snapshot ls` shows each chain's restorable range after k3s's
 * table and the range moves with new sealed segments; `etcd-snapshot changelog ls|status`
 * (table and json) against a server with `--etcd-changelog --etcd-changelog-period 1s`; the
 * change log's metrics move (and pass `promtool check metrics`); with the log off, status
 * says so and no change log metric exists. Conditions are polled, never slept for.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import type { ChangelogListResponse, ChangelogStatusResponse } from '../src/model/changelog-api.js';
import { apiRequest, etcdctl, killStarted, runCli, snapshotCli, startReady, waitUntil, type ServerProcess } from './helpers/server.js';

after(() => killStarted());

const CL_ARGS = ['--etcd-disable-snapshots', '--etcd-changelog', '--etcd-changelog-period', '1s'];

const ok = (r: { code: number | null; stderr: string; stdout: string }): string => {
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
};
/** `etcd-snapshot changelog <sub> ...` against `s` (flags after the subcommand). */
const changelogCli = (s: ServerProcess, args: string[]) => {
  const cfg = path.join(path.dirname(s.dataDir), `config-${s.ports.supervisor}.yaml`);
  const [sub, ...rest] = args;
  return runCli(['etcd-snapshot', 'changelog', sub ?? '', '--config', cfg, '--data-dir', s.dataDir, '--etcd-server', s.url, ...rest]);
};
const status = (s: ServerProcess): ChangelogStatusResponse => JSON.parse(ok(changelogCli(s, ['status', '-o', 'json']))) as ChangelogStatusResponse;
const list = (s: ServerProcess): ChangelogListResponse => JSON.parse(ok(changelogCli(s, ['ls', '-o', 'json']))) as ChangelogListResponse;
function revision(s: ServerProcess): number {
  return Number((JSON.parse(ok(etcdctl(s, ['get', 'no-such-key', '-w', 'json']))) as { header: { revision: number } }).header.revision);
}
/** Waits (polling the status route) until every etcd revision is sealed; answers that revision. */
async function allSealed(s: ServerProcess): Promise<number> {
  const rev = revision(s);
  await waitUntil(() => (status(s).lastSealed?.revision ?? 0) >= rev, 20_000, `revision ${rev} sealed`);
  return rev;
}

const secretOf = (s: ServerProcess): string => s.token().split('::server:')[1] ?? '';
async function scrape(s: ServerProcess): Promise<string> {
  const r = await apiRequest(`${s.url}/metrics`, { headers: { authorization: `Bearer ${secretOf(s)}` } });
  assert.equal(r.status, 200, r.body);
  return r.body;
}
function sample(text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
}
function promtoolMetrics(text: string): void {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  assert.ok(!r.error, `promtool is required (Debian package prometheus; scripts/install.sh --test): ${String(r.error)}`);
  assert.equal(r.status, 0, `promtool check metrics:\n${r.stdout}${r.stderr}`);
}
const RANGE = /^Restorable range \(change log chain ([0-9a-f]{16})\): revision (\d+) \((\S+), snapshot (\S+)\) to revision (\d+) \((\S+)\)$/m;

test('change log visibility: ls shows the range and it moves; changelog ls|status in table and json; the metrics move', async () => {
  const s = await startReady({ args: CL_ARGS });
  // the server takes a snapshot at once (no chain to resume); the chain begins after it
  await waitUntil(() => (JSON.parse(ok(snapshotCli(s, ['ls', '-o', 'json']))) as unknown[]).length === 1, 20_000, 'the first snapshot');
  ok(etcdctl(s, ['put', 'app/config', 'v1']));
  ok(etcdctl(s, ['put', 'app/replicas', '3']));
  const r1 = await allSealed(s);

  // ls: k3s's table unchanged, then a blank line and the range
  const ls1 = ok(snapshotCli(s, ['ls']));
  const lines = ls1.split('\n');
  assert.match(lines[0] ?? '', /^Name +Location +Size +Created$/);
  const records = JSON.parse(ok(snapshotCli(s, ['ls', '-o', 'json']))) as Array<{ name: string; revision?: string; createdAt: string }>;
  assert.equal(records.length, 1, 'the snapshot the change log began after');
  assert.ok(Array.isArray(records), 'ls -o json stays a list of records');
  const snap = records[0];
  assert.ok(snap);
  assert.equal(lines[records.length + 1], '', 'a blank line after the table');
  const m1 = RANGE.exec(ls1);
  assert.ok(m1, ls1);
  assert.equal(m1[4], snap.name);
  assert.equal(Number(m1[2]), Number(snap.revision));
  assert.equal(m1[3], snap.createdAt);
  // the writer commits each seal with a put of its record in etcd, a revision the next seal holds:
  // the latest sealed revision moves on every period, also with no other write
  assert.ok(Number(m1[5]) >= r1, 'latest = the last sealed revision');

  // the range moves after new sealed segments
  ok(etcdctl(s, ['put', 'app/config', 'v2']));
  ok(etcdctl(s, ['del', 'app/replicas']));
  const r2 = await allSealed(s);
  assert.ok(r2 > r1);
  const m2 = RANGE.exec(ok(snapshotCli(s, ['ls'])));
  assert.ok(m2);
  assert.ok(Number(m2[5]) >= r2, 'latest moved');
  assert.equal(m2[2], m1[2], 'earliest stays the snapshot');
  assert.ok(Date.parse(m2[6] ?? '') >= Date.parse(m1[6] ?? ''));

  // changelog ls: json, then the table with the same segments
  const l = list(s);
  assert.ok(l.dir.endsWith(path.join('server', 'db', 'changelog')));
  const sealed = l.segments.filter((x) => x.sealed);
  assert.ok(sealed.length >= 2, 'one segment per period with writes');
  for (let i = 1; i < sealed.length; i++) assert.equal(sealed[i]?.first, (sealed[i - 1]?.last ?? 0) + 1, 'contiguous');
  assert.equal(sealed[0]?.first, Number(snap.revision) + 1);
  assert.ok((sealed[sealed.length - 1]?.last ?? 0) >= r2);
  for (const x of sealed) {
    assert.ok(x.size > 0 && x.records !== undefined && x.sealedAt !== undefined && x.firstTime !== undefined && x.lastTime !== undefined);
  }
  assert.equal(l.chains.length, 1);
  assert.ok((l.chains[0]?.latest.revision ?? 0) >= r2);
  assert.equal(l.chains[0]?.earliest?.snapshot, snap.name);
  const table = ok(changelogCli(s, ['ls'])).split('\n');
  assert.match(table[0] ?? '', /^Chain +First +Last +First seen +Last seen +Size +Sealed$/);
  for (const [i, x] of sealed.entries()) {
    assert.match(table[i + 1] ?? '', new RegExp(`^${x.chain} +${x.first} +${x.last} +${x.firstTime} +${x.lastTime} +${x.size} +${x.sealedAt}$`));
  }
  assert.ok(
    table.some((t) => RANGE.test(t)),
    'the ranges after the table',
  );

  // changelog status: json, then the table
  const st = status(s);
  assert.equal(st.enabled, true);
  assert.equal(st.periodMs, 1000);
  assert.deepEqual(st.writer, { node: 'node1', elected: true });
  assert.ok((st.lastSealed?.revision ?? 0) >= r2);
  assert.ok((st.etcdRevision ?? 0) > (st.lastSealed?.revision ?? 0), "the record's put is after the last seal");
  assert.deepEqual(st.lag, { revisions: 0, seconds: 0 }, "idle: nothing but the record's own put after the last seal");
  // the record's put after each seal makes a new segment every period: one more may be sealed by now
  assert.ok(st.segments >= sealed.length && st.segments <= sealed.length + 2, `${st.segments} sealed segments, ${sealed.length} listed just before`);
  assert.equal(st.chains, 1);
  const text = ok(changelogCli(s, ['status']));
  assert.match(text, /^Change log: +on, sealed every 1s, in \S+changelog$/m);
  assert.match(text, /^Writer: +node1 \(elected through etcd\)$/m);
  assert.match(text, /^Last sealed: +revision \d+ \(seen \S+\), sealed \S+, in [0-9a-f]{16}-\d{20}-\d{20}\.jsonl$/m);
  assert.match(text, /^etcd revision: +\d+$/m);
  assert.match(text, /^Lag: +0 revisions, 0\.0 s behind etcd$/m);

  // metrics: the sealed revision, its time, the segments, the lag; they move with new seals
  let m = await scrape(s);
  promtoolMetrics(m);
  assert.ok((sample(m, 'etcdsnap_changelog_last_sealed_revision') ?? 0) >= r2);
  assert.ok((sample(m, 'etcdsnap_changelog_segments') ?? 0) >= sealed.length);
  assert.equal(sample(m, 'etcdsnap_changelog_lag_revisions'), 0);
  assert.equal(sample(m, 'etcdsnap_changelog_lag_seconds'), 0);
  const t2 = sample(m, 'etcdsnap_changelog_last_sealed_timestamp_seconds') ?? 0;
  assert.ok(t2 >= Date.parse(st.lastSealed?.sealedAt ?? '') / 1000);
  ok(etcdctl(s, ['put', 'app/config', 'v3']));
  const r3 = await allSealed(s);
  m = await scrape(s);
  promtoolMetrics(m);
  assert.ok((sample(m, 'etcdsnap_changelog_last_sealed_revision') ?? 0) >= r3);
  assert.ok((sample(m, 'etcdsnap_changelog_last_sealed_timestamp_seconds') ?? 0) > t2);
  assert.ok((sample(m, 'etcdsnap_changelog_segments') ?? 0) > sealed.length);

  // errors are one line
  const bad = changelogCli(s, ['status', '-o', 'yaml']);
  assert.equal(bad.code, 1);
  assert.equal(bad.stderr, 'error: invalid output format: yaml (use table or json)\n');
  assert.equal(await s.stop(), 0);
});

test('change log visibility with the log off: status says so, no segments, no range, no change log metrics', async () => {
  const s = await startReady({ args: ['--etcd-disable-snapshots'] });
  const st = status(s);
  assert.equal(st.enabled, false);
  assert.equal(st.writer, undefined);
  assert.equal(st.lag, undefined);
  assert.equal(st.segments, 0);
  assert.equal(st.etcdRevision, revision(s));
  const text = ok(changelogCli(s, ['status']));
  assert.match(text, /^Change log: +off \(start the server with --etcd-changelog\); folder \S+changelog$/m);
  assert.match(text, /^Writer: +none$/m);
  assert.match(text, /^Last sealed: +none$/m);
  assert.doesNotMatch(text, /^Lag:/m);
  assert.match(ok(changelogCli(s, ['ls'])), /^No change log segments in \S+changelog\.\n$/);
  ok(snapshotCli(s, ['save']));
  const ls = ok(snapshotCli(s, ['ls']));
  assert.equal(ls.split('\n').filter((x) => x !== '').length, 2, 'the table only');
  const m = await scrape(s);
  assert.doesNotMatch(m, /etcdsnap_changelog_/);
  assert.equal(await s.stop(), 0);
});
