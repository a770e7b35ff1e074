/**
 * etcd upkeep's pure rules (server/upkeep-plan.ts, docs/upkeep.md): the order members are
 * defragmented in (followers by name, the leader last, asked again before each member), the
 * quota watcher's lines (one warning per crossing, one error per NOSPACE occurrence, with
 * the fixing commands), the warning ratio's parsing, and the alarm names of etcd3's enum.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { alarmName, snapshotStreamsInFlight } from '../src/etcd/maintenance.js';
import { formatBytes, INITIAL_QUOTA_STATE, nextToDefrag, NOSPACE_FIX, parseWarningRatio, quotaStep, type QuotaState } from '../src/server/upkeep-plan.js';

const m = (id: string, name: string): { id: string; name: string } => ({ id, name });

test('defragmentation order: followers by name (then ID), the leader last, even when the leader changes during the run', () => {
  const all = [m('c3', 'node-c'), m('a1', 'node-a'), m('b2', 'node-b')];
  const order: string[] = [];
  const remaining = [...all];
  // the leader is node-a at first, then moves to node-c after the first member
  const leaders = ['a1', 'c3', 'c3'];
  for (const leader of leaders) {
    const next = nextToDefrag(remaining, leader);
    assert.ok(next);
    order.push(next.name);
    remaining.splice(remaining.indexOf(next), 1);
  }
  assert.deepEqual(order, ['node-b', 'node-a', 'node-c']);
  assert.equal(nextToDefrag([], 'a1'), undefined);
  // no leader known: by name; a leader alone is taken
  assert.equal(nextToDefrag(all, undefined)?.name, 'node-a');
  assert.equal(nextToDefrag([m('a1', 'node-a')], 'a1')?.name, 'node-a');
  // equal names: by ID
  assert.equal(nextToDefrag([m('f', 'x'), m('e', 'x')], 'zz')?.id, 'e');
});

test('quota watcher: one warning per crossing of the ratio, an info line when back under, nothing while unchanged', () => {
  const opts = { quota: 100, ratio: 0.8 };
  let s: QuotaState = INITIAL_QUOTA_STATE;
  const step = (dbSize: number): string[] => {
    const r = quotaStep(s, { dbSize, alarms: [] }, opts);
    s = r.state;
    return r.lines.map((l) => `${l.level}:${l.event}`);
  };
  assert.deepEqual(step(50), []);
  assert.deepEqual(step(79), []);
  assert.deepEqual(step(80), ['warn:quota-warning']);
  assert.deepEqual(step(95), []);
  assert.deepEqual(step(40), ['info:quota-ok']);
  assert.deepEqual(step(90), ['warn:quota-warning']);
  // a failed status changes nothing
  assert.deepEqual(quotaStep(s, {}, opts).state, s);
  // ratio 0: never a warning
  assert.deepEqual(quotaStep(INITIAL_QUOTA_STATE, { dbSize: 100 }, { quota: 100, ratio: 0 }).lines, []);
  const w = quotaStep(INITIAL_QUOTA_STATE, { dbSize: 14 * 1024 * 1024 }, { quota: 16 * 1024 * 1024, ratio: 0.8 }).lines[0];
  assert.match(w?.msg ?? '', /^etcd database size 14\.0 MiB is 88% of its quota 16\.0 MiB \(quota-backend-bytes\)/);
  assert.match(w?.msg ?? '', /etcdsnap etcd-snapshot compact, then etcdsnap etcd-snapshot defrag\)/);
});

test('quota watcher: one error per NOSPACE occurrence, naming the members and the commands; cleared once disarmed', () => {
  const opts = { quota: 16 * 1024 * 1024, ratio: 0.8, memberName: (id: string) => `n-${id}` };
  const nospace = [
    { memberId: '1', alarm: 'NOSPACE' },
    { memberId: '2', alarm: 'NOSPACE' },
  ];
  let s: QuotaState = INITIAL_QUOTA_STATE;
  const step = (alarms: Array<{ memberId: string; alarm: string }> | undefined): Array<{ level: string; event: string; msg: string }> => {
    const r = quotaStep(s, alarms ? { alarms } : {}, opts);
    s = r.state;
    return r.lines;
  };
  const first = step(nospace);
  assert.equal(first.length, 1);
  assert.equal(first[0]?.level, 'error');
  assert.equal(
    first[0]?.msg,
    `etcd raised the NOSPACE alarm (member n-1, n-2): the database reached its quota of 16.0 MiB (quota-backend-bytes) and etcd now refuses every write until the alarm is disarmed; to recover run: ${NOSPACE_FIX} (or raise the quota with --etcd-arg quota-backend-bytes=<bytes> on every server, restart them, then disarm)`,
  );
  assert.deepEqual(step(nospace), []);
  assert.deepEqual(step(undefined), []); // the list failed: unchanged
  assert.deepEqual(
    step([]).map((l) => l.event),
    ['nospace-cleared'],
  );
  assert.deepEqual(
    step(nospace).map((l) => l.event),
    ['nospace'],
  );
  // over the ratio and NOSPACE at the same look: the error only, and no warning later while over
  const both = quotaStep(INITIAL_QUOTA_STATE, { dbSize: 16 * 1024 * 1024, alarms: nospace }, opts);
  assert.deepEqual(
    both.lines.map((l) => l.event),
    ['nospace'],
  );
  assert.deepEqual(
    quotaStep(both.state, { dbSize: 16 * 1024 * 1024, alarms: [] }, opts).lines.map((l) => l.event),
    ['nospace-cleared'],
  );
  // another alarm kind is not NOSPACE
  assert.deepEqual(quotaStep(INITIAL_QUOTA_STATE, { alarms: [{ memberId: '1', alarm: 'CORRUPT' }] }, opts).lines, []);
});

test('warning ratio, byte formatting and alarm names', () => {
  assert.equal(parseWarningRatio('0.8'), 0.8);
  assert.equal(parseWarningRatio('0'), 0);
  for (const bad of ['', '1', '1.5', '-0.1', 'x']) assert.throws(() => parseWarningRatio(bad), /is not a ratio/);
  assert.equal(formatBytes(512), '512 B');
  assert.equal(formatBytes(1536), '1.5 KiB');
  assert.equal(formatBytes(16 * 1024 * 1024), '16.0 MiB');
  assert.equal(alarmName('NOSPACE'), 'NOSPACE');
  assert.equal(alarmName('Nospace'), 'NOSPACE');
  assert.equal(alarmName(1), 'NOSPACE');
  assert.equal(alarmName(2), 'CORRUPT');
});

test('snapshotStreamsInFlight: started minus handled Maintenance.Snapshot calls, from etcd 3.4 /metrics text', () => {
  const line = (name: string, labels: string, v: number): string => `${name}{${labels}grpc_service="etcdserverpb.Maintenance",grpc_type="server_stream"} ${v}`;
  const text = [
    '# TYPE grpc_server_started_total counter',
    line('grpc_server_started_total', 'grpc_method="Snapshot",', 5),
    line('grpc_server_handled_total', 'grpc_code="OK",grpc_method="Snapshot",', 3),
    line('grpc_server_handled_total', 'grpc_code="Canceled",grpc_method="Snapshot",', 1),
    line('grpc_server_handled_total', 'grpc_code="Unavailable",grpc_method="Snapshot",', 0),
    line('grpc_server_started_total', 'grpc_method="Status",', 40),
    line('grpc_server_handled_total', 'grpc_code="OK",grpc_method="Status",', 39),
    'grpc_server_msg_sent_total{grpc_method="Snapshot",grpc_service="etcdserverpb.Maintenance",grpc_type="server_stream"} 9',
  ].join('\n');
  assert.equal(snapshotStreamsInFlight(text), 1);
  assert.equal(snapshotStreamsInFlight(text.replace(' 5\n', ' 4\n')), 0);
  assert.equal(snapshotStreamsInFlight('etcd_server_has_leader 1\n'), undefined, 'no counter: unknown, not zero');
});
