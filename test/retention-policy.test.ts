/**
 * Table tests of the time-bucket retention policy (issue 18, docs/retention.md): the policy
 * text, the calendar (named zones, DST, ISO weeks) and `planRetention` with buckets. Pure:
 * the zone is injected (`zoneCalendar`), never the process's TZ.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatRetentionPolicy, parseRetentionPolicy, type BucketPolicy } from '../src/model/retention-policy.js';
import { bucketLabels, isoWeek, zoneCalendar } from '../src/retention/calendar.js';
import { planRetention } from '../src/retention/policy.js';
import { EtcdsnapError } from '../src/errors.js';
import { parseSnapshotRequest } from '../src/snapshot/request.js';
import { renderPruneDecisions } from '../src/cli/prune-output.js';

const NONE: BucketPolicy = { last: 0, hourly: 0, daily: 0, weekly: 0, monthly: 0, yearly: 0 };
const policy = (p: Partial<BucketPolicy>): BucketPolicy => ({ ...NONE, ...p });
/** Unix seconds of an ISO time with its zone (`2026-10-25T02:30+02:00`). */
const at = (iso: string): number => Date.parse(iso) / 1000;
const name = (t: number, ext = ''): string => `etcd-snapshot-n1-${t}${ext}`;
const BERLIN = zoneCalendar('Europe/Berlin');
const UTC = zoneCalendar('UTC');

/** The names kept, newest first, and the reasons by name. */
function plan(times: number[], p: Partial<BucketPolicy>, calendar = BERLIN): { kept: number[]; reasons: Map<number, string[]> } {
  const r = planRetention(
    times.map((t) => name(t)),
    { prefix: 'etcd-snapshot', nodeName: 'n1', keep: 5, buckets: policy(p), calendar },
  );
  const time = (n: string): number => Number(/-(\d+)$/.exec(n)?.[1]);
  return { kept: r.keep.map(time), reasons: new Map(r.decisions.map((d) => [d.time, d.reasons])) };
}

test('policy text: every accepted spelling parses to the same counts, and formats back', () => {
  const cases: Array<[string, Partial<BucketPolicy> | undefined]> = [
    ['last=3,hourly=24,daily=7,weekly=4,monthly=12,yearly=2', { last: 3, hourly: 24, daily: 7, weekly: 4, monthly: 12, yearly: 2 }],
    ['daily=7', { daily: 7 }],
    [' yearly=1 , last=2 ', { last: 2, yearly: 1 }],
    ['keep-daily=7,keep-last=1', { daily: 7, last: 1 }],
    ['DAILY=7,weekly=0', { daily: 7 }],
    ['', undefined],
    ['   ', undefined],
  ];
  for (const [text, want] of cases) {
    const got = parseRetentionPolicy(text);
    assert.deepEqual(got, want === undefined ? undefined : policy(want), text);
    if (got) assert.deepEqual(parseRetentionPolicy(formatRetentionPolicy(got)), got, `round trip of ${text}`);
  }
  assert.equal(formatRetentionPolicy(policy({ yearly: 2, last: 3, daily: 7 })), 'last=3,daily=7,yearly=2');
});

test('policy text: each bad input is refused with one line that says what to write', () => {
  const cases: Array<[string, RegExp]> = [
    ['daily=7,,weekly=4', /^empty item in "daily=7,,weekly=4": write <rule>=<count> items separated by single commas/],
    ['daily=7,', /^empty item/],
    ['daily', /^"daily" is not <rule>=<count>: write e\.g\. last=3,daily=7,weekly=4,monthly=12$/],
    ['minutely=5', /^unknown rule "minutely": use last, hourly, daily, weekly, monthly, yearly$/],
    ['within=7d', /^unknown rule "within"/],
    ['daily=7,daily=3', /^rule daily given twice: give each rule once$/],
    ['daily=-1', /^daily=-1: the count is negative; use 0 to 100000 \(0 turns the rule off\)$/],
    ['daily=seven', /^daily=seven: the count must be a whole number \(0 to 100000\)$/],
    ['daily=1.5', /^daily=1\.5: the count must be a whole number/],
    ['daily=', /^daily=: the count must be a whole number/],
    ['daily=100001', /^daily=100001: the count is above 100000$/],
    ['last=0,daily=0', /^"last=0,daily=0" keeps nothing: give at least one count above 0/],
    ['daily=7 weekly=4', /is not <rule>=<count>/],
  ];
  for (const [text, re] of cases) {
    assert.throws(
      () => parseRetentionPolicy(text),
      (err: unknown) => err instanceof EtcdsnapError && err.kind === 'usage' && re.test(err.message) && !err.message.includes('\n'),
      text,
    );
  }
});

test('ISO weeks: Monday starts the week, the Thursday decides the year', () => {
  const cases: Array<[[number, number, number], string]> = [
    [[2026, 11, 30], '2026-W49'], // a Monday
    [[2026, 11, 29], '2026-W48'], // the Sunday before
    [[2020, 12, 31], '2020-W53'],
    [[2021, 1, 1], '2020-W53'], // a Friday: still 2020's last week
    [[2021, 1, 4], '2021-W01'],
    [[2024, 12, 30], '2025-W01'], // a Monday in December: 2025's first week
    [[2026, 12, 31], '2026-W53'],
    [[2027, 1, 3], '2026-W53'],
    [[2027, 1, 4], '2027-W01'],
  ];
  for (const [[y, m, d], want] of cases) {
    const w = isoWeek(y, m, d);
    assert.equal(`${w.year}-W${String(w.week).padStart(2, '0')}`, want, `${y}-${m}-${d}`);
  }
});

test('calendar: wall clock of a named zone, across both DST changes', () => {
  const cases: Array<[string, string, string, number]> = [
    // instant, zone, hourly bucket, offset
    ['2026-10-25T00:30:00Z', 'Europe/Berlin', '2026-10-25 02h', 120], // 02:30 CEST
    ['2026-10-25T01:30:00Z', 'Europe/Berlin', '2026-10-25 02h', 60], // 02:30 CET: the same wall-clock hour again
    ['2026-03-29T00:59:59Z', 'Europe/Berlin', '2026-03-29 01h', 60],
    ['2026-03-29T01:00:00Z', 'Europe/Berlin', '2026-03-29 03h', 120], // 02h never happens
    ['2026-11-29T23:30:00Z', 'Europe/Berlin', '2026-11-30 00h', 60],
    ['2026-11-29T23:30:00Z', 'UTC', '2026-11-29 23h', 0],
    ['2026-11-30T12:00:00Z', 'America/St_Johns', '2026-11-30 08h', -210],
  ];
  for (const [iso, zone, hourly, offset] of cases) {
    const t = zoneCalendar(zone)(at(iso));
    assert.equal(bucketLabels(t).hourly, hourly, `${iso} in ${zone}`);
    assert.equal(t.offsetMinutes, offset, `${iso} in ${zone}`);
  }
  assert.throws(() => zoneCalendar('Mars/Olympus'), /^EtcdsnapError: unknown time zone "Mars\/Olympus": set TZ to an IANA zone such as UTC or Europe\/Berlin$/);
});

/** One row of the policy table: snapshot times, the policy, the zone, the times kept (newest first). */
interface Row {
  what: string;
  times: string[];
  policy: Partial<BucketPolicy>;
  zone?: 'UTC';
  kept: string[];
}

const hoursFrom = (startIso: string, n: number, stepHours = 1): string[] =>
  Array.from({ length: n }, (_, i) => new Date(Date.parse(startIso) + i * stepHours * 3_600_000).toISOString());

const ROWS: Row[] = [
  { what: 'nothing to do', times: [], policy: { daily: 7 }, kept: [] },
  {
    what: 'last=3 keeps the three newest',
    times: hoursFrom('2026-11-30T00:00:00Z', 5),
    policy: { last: 3 },
    kept: ['2026-11-30T04:00:00.000Z', '2026-11-30T03:00:00.000Z', '2026-11-30T02:00:00.000Z'],
  },
  {
    what: 'daily keeps the newest snapshot of each day (Berlin days)',
    times: ['2026-11-28T10:00:00Z', '2026-11-28T20:00:00Z', '2026-11-29T10:00:00Z', '2026-11-29T22:30:00Z', '2026-11-30T09:00:00Z'],
    policy: { daily: 2 },
    // 2026-11-29T22:30Z is 23:30 on the 29th in Berlin: the 29th's newest
    kept: ['2026-11-30T09:00:00Z', '2026-11-29T22:30:00Z'],
  },
  {
    what: 'a snapshot after 23:00 UTC belongs to the next Berlin day',
    times: ['2026-11-29T10:00:00Z', '2026-11-29T23:30:00Z', '2026-11-30T09:00:00Z'],
    policy: { daily: 2 },
    // in Berlin 23:30Z is 00:30 on the 30th, so the 30th's newest is 09:00Z and the 29th's is 10:00Z
    kept: ['2026-11-30T09:00:00Z', '2026-11-29T10:00:00Z'],
  },
  {
    what: 'the same in UTC buckets',
    times: ['2026-11-29T10:00:00Z', '2026-11-29T23:30:00Z', '2026-11-30T09:00:00Z'],
    policy: { daily: 2 },
    zone: 'UTC',
    kept: ['2026-11-30T09:00:00Z', '2026-11-29T23:30:00Z'],
  },
  {
    what: 'days without snapshots do not count: daily=3 reaches back over a gap',
    times: ['2026-11-20T12:00:00Z', '2026-11-25T12:00:00Z', '2026-11-26T12:00:00Z', '2026-11-30T12:00:00Z'],
    policy: { daily: 3 },
    kept: ['2026-11-30T12:00:00Z', '2026-11-26T12:00:00Z', '2026-11-25T12:00:00Z'],
  },
  {
    what: 'counts left at the oldest snapshot keep it too (fewer days than daily=7)',
    times: ['2026-11-29T08:00:00Z', '2026-11-29T12:00:00Z', '2026-11-30T08:00:00Z', '2026-11-30T12:00:00Z'],
    policy: { daily: 7 },
    kept: ['2026-11-30T12:00:00Z', '2026-11-29T12:00:00Z', '2026-11-29T08:00:00Z'],
  },
  {
    what: 'fall back (Berlin, 2026-10-25): the repeated 02h is one hourly bucket',
    times: ['2026-10-24T23:30:00Z', '2026-10-25T00:30:00Z', '2026-10-25T01:30:00Z', '2026-10-25T02:30:00Z'],
    policy: { hourly: 10 },
    // 00:30Z (02:30 CEST) and 01:30Z (02:30 CET) share 02h: the newer stays
    kept: ['2026-10-25T02:30:00Z', '2026-10-25T01:30:00Z', '2026-10-24T23:30:00Z'],
  },
  {
    what: 'fall back in UTC buckets: four hours, four buckets',
    times: ['2026-10-24T23:30:00Z', '2026-10-25T00:30:00Z', '2026-10-25T01:30:00Z', '2026-10-25T02:30:00Z'],
    policy: { hourly: 10 },
    zone: 'UTC',
    kept: ['2026-10-25T02:30:00Z', '2026-10-25T01:30:00Z', '2026-10-25T00:30:00Z', '2026-10-24T23:30:00Z'],
  },
  {
    what: 'fall back: the 25-hour day is still one daily bucket',
    times: hoursFrom('2026-10-24T22:00:00Z', 25),
    policy: { daily: 1 },
    kept: ['2026-10-25T22:00:00.000Z'], // 23:00 CET, the last hour of the 25-hour day
  },
  {
    what: 'spring forward (Berlin, 2026-03-29): the missing 02h takes no count',
    times: hoursFrom('2026-03-28T23:00:00Z', 5), // 00h, 01h, 03h, 04h, 05h local
    policy: { hourly: 4 },
    kept: ['2026-03-29T03:00:00.000Z', '2026-03-29T02:00:00.000Z', '2026-03-29T01:00:00.000Z', '2026-03-29T00:00:00.000Z'],
  },
  {
    what: 'spring forward: the 23-hour day is one daily bucket',
    times: hoursFrom('2026-03-28T23:00:00Z', 23),
    policy: { daily: 2 },
    // 23:00 CEST is the day's newest; a daily count is left at the oldest (00:00 CET), which stays as the oldest
    kept: ['2026-03-29T21:00:00.000Z', '2026-03-28T23:00:00.000Z'],
  },
  {
    what: 'a missing scheduled hour: hourly=3 reaches one hour further back',
    times: ['2026-11-30T09:00:00Z', '2026-11-30T10:00:00Z', '2026-11-30T12:00:00Z', '2026-11-30T13:00:00Z'],
    policy: { hourly: 3 },
    kept: ['2026-11-30T13:00:00Z', '2026-11-30T12:00:00Z', '2026-11-30T10:00:00Z'],
  },
  {
    what: 'weekly uses ISO weeks across the new year',
    times: ['2026-12-27T12:00:00Z', '2026-12-28T12:00:00Z', '2026-12-31T12:00:00Z', '2027-01-03T12:00:00Z', '2027-01-04T12:00:00Z'],
    policy: { weekly: 3 },
    // 2027-W01, 2026-W53 (Dec 28 to Jan 3), 2026-W52
    kept: ['2027-01-04T12:00:00Z', '2027-01-03T12:00:00Z', '2026-12-27T12:00:00Z'],
  },
  {
    what: 'monthly and yearly: the newest of each month and year',
    times: ['2025-06-15T12:00:00Z', '2025-12-31T22:00:00Z', '2026-01-31T12:00:00Z', '2026-02-01T12:00:00Z', '2026-02-20T12:00:00Z'],
    policy: { monthly: 2, yearly: 2 },
    // 2025-12-31T22:00Z is 23:00 on Dec 31 in Berlin: 2025's newest
    kept: ['2026-02-20T12:00:00Z', '2026-01-31T12:00:00Z', '2025-12-31T22:00:00Z'],
  },
  {
    what: 'yearly counts left at the oldest keep it',
    times: ['2025-06-15T12:00:00Z', '2025-12-31T22:00:00Z', '2026-02-20T12:00:00Z'],
    policy: { yearly: 5 },
    kept: ['2026-02-20T12:00:00Z', '2025-12-31T22:00:00Z', '2025-06-15T12:00:00Z'],
  },
  {
    what: 'rules add up: a snapshot stays when any rule keeps it',
    times: hoursFrom('2026-11-28T00:00:00Z', 12, 6), // every 6 h for 3 days
    policy: { last: 2, daily: 3 },
    // three Berlin days, so the daily counts are used up before the oldest
    kept: ['2026-11-30T18:00:00.000Z', '2026-11-30T12:00:00.000Z', '2026-11-29T18:00:00.000Z', '2026-11-28T18:00:00.000Z'],
  },
];

test('the policy table: which snapshots each policy keeps', () => {
  for (const row of ROWS) {
    const got = plan(row.times.map(at), row.policy, row.zone === 'UTC' ? UTC : BERLIN);
    assert.deepEqual(got.kept, row.kept.map(at), row.what);
  }
});

test('the reasons name every rule that keeps a snapshot and why the others go', () => {
  const times = hoursFrom('2026-11-28T00:00:00Z', 12, 6).map(at);
  const { reasons } = plan(times, { last: 2, daily: 3 });
  assert.deepEqual(reasons.get(at('2026-11-30T18:00:00Z')), ['last (1/2)', 'daily 2026-11-30 (1/3)']);
  assert.deepEqual(reasons.get(at('2026-11-30T12:00:00Z')), ['last (2/2)']);
  assert.deepEqual(reasons.get(at('2026-11-30T06:00:00Z')), ['last: all 2 used', 'daily 2026-11-30 has a newer one']);
  assert.deepEqual(reasons.get(at('2026-11-28T18:00:00Z')), ['daily 2026-11-28 (3/3)']);
  // 00:00Z is 01:00 in Berlin: the 28th, whose newest is kept; no counts left
  assert.deepEqual(reasons.get(at('2026-11-28T06:00:00Z')), ['last: all 2 used', 'daily 2026-11-28 has a newer one']);
  // the oldest rule
  const few = plan([at('2026-11-30T08:00:00Z'), at('2026-11-30T12:00:00Z')], { daily: 7 });
  assert.deepEqual(few.reasons.get(at('2026-11-30T08:00:00Z')), ['daily 2026-11-30 (2/7, the oldest snapshot)']);
  const gone = plan(hoursFrom('2026-11-30T00:00:00Z', 4).map(at), { hourly: 1, weekly: 1 });
  assert.deepEqual(gone.reasons.get(at('2026-11-30T01:00:00Z')), ['hourly: all 1 used', 'weekly 2026-W49 has a newer one']);
});

test('snapshots of the same second are ordered by name, whatever the listing order', () => {
  const t = at('2026-11-30T12:00:00Z');
  const names = [name(t), name(t, '.zip'), name(t - 3600)];
  for (const order of [names, [...names].reverse(), [names[1] ?? '', names[2] ?? '', names[0] ?? '']]) {
    const r = planRetention(order, { prefix: 'etcd-snapshot', nodeName: 'n1', keep: 0, buckets: policy({ hourly: 5 }), calendar: BERLIN });
    assert.deepEqual(
      r.decisions.map((d) => [d.name, d.keep]),
      [
        [name(t, '.zip'), true],
        [name(t), false],
        [name(t - 3600), true],
      ],
    );
    assert.deepEqual(r.decisions[1]?.reasons, ['hourly 2026-11-30 13h has a newer one']);
    assert.equal(r.decisions[0]?.localTime, '2026-11-30 13:00:00 +01:00');
  }
});

test('only this prefix and node are candidates; every rule at 0 keeps everything', () => {
  const t = at('2026-11-30T12:00:00Z');
  const names = [name(t), name(t - 60), 'etcd-snapshot-n2-1795000000', 'on-demand-n1-1795000000', 'manual.db'];
  const r = planRetention(names, { prefix: 'etcd-snapshot', nodeName: 'n1', keep: 1, buckets: policy({ last: 1 }), calendar: UTC });
  assert.deepEqual(r.keep, [name(t)]);
  assert.deepEqual(r.remove, [name(t - 60)]);
  assert.deepEqual(r.ignored.sort(), ['etcd-snapshot-n2-1795000000', 'manual.db', 'on-demand-n1-1795000000']);
  const all = planRetention(names, { prefix: 'etcd-snapshot', nodeName: 'n1', keep: 1, buckets: NONE, calendar: UTC });
  assert.deepEqual(all.remove, []);
  assert.deepEqual(all.decisions[0]?.reasons, ['no policy']);
});

test('count-based retention is unchanged without a policy, and says why', () => {
  const ts = [100, 200, 300, 400].map((x) => 1_795_000_000 + x);
  const r = planRetention(
    ts.map((t) => name(t)),
    { prefix: 'etcd-snapshot', nodeName: 'n1', keep: 2 },
  );
  assert.deepEqual(r.keep, [name(ts[3] ?? 0), name(ts[2] ?? 0)]);
  assert.deepEqual(r.remove, [name(ts[1] ?? 0), name(ts[0] ?? 0)]);
  assert.deepEqual(
    r.decisions.map((d) => d.reasons),
    [['newest 1/2'], ['newest 2/2'], ['beyond the newest 2'], ['beyond the newest 2']],
  );
  const off = planRetention([name(ts[0] ?? 0)], { prefix: 'etcd-snapshot', nodeName: 'n1', keep: 0 });
  assert.deepEqual(off.remove, []);
});

test('the prune request field: parsed by the option spec, exclusive with the count', () => {
  assert.deepEqual(parseSnapshotRequest({ operation: 'prune', retentionPolicy: 'daily=7,last=1' }).retentionPolicy, policy({ daily: 7, last: 1 }));
  const none = parseSnapshotRequest({ operation: 'prune', retentionPolicy: '', retention: 3 });
  assert.equal(none.retentionPolicy, undefined, "'' is no policy");
  assert.equal(none.retention, 3);
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ operation: 'prune', retentionPolicy: 'daily=7', retention: 2 }, /give "retention" or "retentionPolicy", not both: the policy replaces the count$/],
    [{ operation: 'prune', retentionPolicy: 'daily=-1' }, /invalid field "retentionPolicy": daily=-1: the count is negative/],
    [{ operation: 'prune', retentionPolicy: 7 }, /invalid field "retentionPolicy"/],
  ];
  for (const [body, re] of cases) assert.throws(() => parseSnapshotRequest(body), re, JSON.stringify(body));
});

test('the dry-run table: a header with the policy and zone, then one row per snapshot', () => {
  const res = {
    deleted: ['p-n-1'],
    policy: 'daily=1',
    timeZone: 'UTC',
    decisions: [
      {
        store: 'local' as const,
        name: 'p-n-2',
        location: 'file:///s/p-n-2',
        time: 'x',
        localTime: '2026-11-30 12:00:00 +00:00',
        keep: true,
        reasons: ['daily 2026-11-30 (1/1)'],
      },
      {
        store: 's3' as const,
        name: 'p-n-1',
        location: 's3://b/p-n-1',
        time: 'x',
        localTime: '2026-11-30 11:00:00 +00:00',
        keep: false,
        reasons: ['daily 2026-11-30 has a newer one', 'last: all 1 used'],
      },
    ],
  };
  assert.equal(
    renderPruneDecisions(res),
    [
      'Policy daily=1 in time zone UTC: 1 kept, 1 would be removed.',
      'Action Location        Local time                 Reasons',
      'keep   file:///s/p-n-2 2026-11-30 12:00:00 +00:00 daily 2026-11-30 (1/1)',
      'remove s3://b/p-n-1    2026-11-30 11:00:00 +00:00 daily 2026-11-30 has a newer one; last: all 1 used',
      '',
    ].join('\n'),
  );
  assert.equal(
    renderPruneDecisions({ deleted: [], policy: 'daily=1', timeZone: 'UTC', decisions: [] }),
    'Policy daily=1 in time zone UTC: 0 kept, 0 would be removed.\nNo snapshots of this prefix on this node.\n',
  );
});
