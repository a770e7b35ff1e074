/**
 * The agents' tick policy (server/agent-ticks.ts), table-tested: a tick is claimed only when
 * newer than the group's marker; a newly active agent takes at most the newest tick missed
 * in (marker, now] within the look-back; the marker's value round-trips; `@every` aligned
 * to the epoch gives every agent the same ticks.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatMarker, missedTick, parseMarker, shouldClaim, type TickMarker } from '../src/server/agent-ticks.js';
import { parseSchedule } from '../src/server/schedule.js';

const every4 = parseSchedule('@every 4s', { epochAligned: true });
const T = 1_700_000_000_000; // a multiple of 4000

test('shouldClaim: only a tick newer than the marker', () => {
  const cases: Array<[number, TickMarker | undefined, boolean]> = [
    [T, undefined, true],
    [T, { tick: T - 4000, node: 'a' }, true],
    [T, { tick: T, node: 'a' }, false],
    [T, { tick: T + 4000, node: 'a' }, false],
  ];
  for (const [tick, marker, want] of cases) assert.equal(shouldClaim(tick, marker), want, `${tick} over ${JSON.stringify(marker)}`);
});

test('missedTick: the newest tick in (marker, now], within the look-back, else none', () => {
  const cases: Array<[string, TickMarker | undefined, number, number, number | undefined]> = [
    ['taken tick, next not yet due', { tick: T, node: 'a' }, T + 3999, 30_000, undefined],
    ['one missed (the handover)', { tick: T, node: 'a' }, T + 5000, 30_000, T + 4000],
    ['a tick exactly now', { tick: T, node: 'a' }, T + 4000, 30_000, T + 4000],
    ['several missed: only the newest', { tick: T, node: 'a' }, T + 13_000, 30_000, T + 12_000],
    ['no marker (a new group): none', undefined, T + 1000, 30_000, undefined],
    ['missed, but longer ago than the look-back: none', { tick: T, node: 'a' }, T + 101_000, 500, undefined],
    ['group down for long: none older than the look-back', { tick: T - 1_000_000, node: 'a' }, T + 1000, 500, undefined],
    ['the marker ahead of now (clock skew): none', { tick: T + 8000, node: 'a' }, T + 5000, 30_000, undefined],
  ];
  for (const [what, marker, now, lookback, want] of cases) assert.equal(missedTick(every4, marker, now, lookback), want, what);
});

test('missedTick with a cron schedule', () => {
  const hourly = parseSchedule('CRON_TZ=UTC 0 * * * *');
  const h = Date.UTC(2026, 0, 1, 10);
  assert.equal(missedTick(hourly, { tick: h - 3_600_000, node: 'a' }, h + 20_000, 30_000), h);
  assert.equal(missedTick(hourly, { tick: h, node: 'a' }, h + 20_000, 30_000), undefined);
});

test('the marker round-trips; a value that is not one reads as none', () => {
  assert.deepEqual(parseMarker(formatMarker({ tick: T, node: 'n1' })), { tick: T, node: 'n1' });
  for (const v of [undefined, '', 'x', '{}', '{"tick":"no"}']) assert.equal(parseMarker(v), undefined, String(v));
});

test('@every aligned to the epoch: agents started at different times share the ticks', () => {
  const a = every4.next(new Date(T + 123));
  const b = every4.next(new Date(T + 3999));
  assert.equal(a?.getTime(), T + 4000);
  assert.equal(b?.getTime(), T + 4000);
  assert.equal(every4.next(new Date(T))?.getTime(), T + 4000, 'strictly after');
  const fromStart = parseSchedule('@every 4s');
  assert.equal(fromStart.next(new Date(T + 1123))?.getTime(), T + 5000, "the server's: from the start");
});
