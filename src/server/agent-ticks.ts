/**
 * Which scheduled tick an agent takes (pure; docs/agent.md "Several agents"). A tick is
 * identified by its scheduled time (ms since the epoch); the agents of one group share the
 * schedule (`@every` aligned to the epoch), so they agree on each tick's time.
 *
 * The group's tick marker (an etcd key, agent-election.ts) holds the newest tick claimed so
 * far and the node that claimed it. Rules:
 * - `shouldClaim`: a tick is claimed only when it is newer than the marker's; the claim
 *   writes the marker (compare-and-put on its mod revision, fenced by the term), so the
 *   marker only grows and each tick is claimed at most once, by one agent.
 * - `missedTick`: an agent that becomes active takes at most one missed tick: the newest
 *   tick in (marker, now], looked for no further back than `lookbackMs` (a tick that fell
 *   during a handover, not every tick of a group that was down: as cron's "run once if
 *   missed", and as the server, which never replays ticks missed while down); none without
 *   a marker (a new group has missed nothing: no snapshot at its first start).
 */
import type { Schedule } from './schedule.js';

export interface TickMarker {
  /** The tick's scheduled time (ms since the epoch). */
  tick: number;
  /** The node (agent) that claimed it. */
  node: string;
}

/** The marker's value in etcd. */
export function formatMarker(m: TickMarker): string {
  return JSON.stringify({ tick: new Date(m.tick).toISOString(), node: m.node });
}

/** The marker from its value; undefined when absent or not a marker (then any tick is newer). */
export function parseMarker(value: string | undefined): TickMarker | undefined {
  if (value === undefined) return undefined;
  try {
    const o = JSON.parse(value) as { tick?: unknown; node?: unknown };
    const tick = typeof o.tick === 'string' ? Date.parse(o.tick) : Number.NaN;
    return Number.isFinite(tick) ? { tick, node: typeof o.node === 'string' ? o.node : '' } : undefined;
  } catch {
    return undefined;
  }
}

/** Whether `tick` may be claimed over `marker`: only a newer tick. */
export function shouldClaim(tick: number, marker: TickMarker | undefined): boolean {
  return marker === undefined || tick > marker.tick;
}

/**
 * The newest tick of `schedule` in (marker, now], not older than `now - lookbackMs`;
 * undefined when there is none or no marker (nothing missed).
 */
export function missedTick(schedule: Schedule, marker: TickMarker | undefined, now: number, lookbackMs: number): number | undefined {
  if (marker === undefined) return undefined;
  const from = Math.max(marker.tick, now - lookbackMs - 1);
  let latest: number | undefined;
  let t = schedule.next(new Date(from));
  // bounded: a schedule has at most one tick a second (`@every` needs 1s at least)
  for (let i = 0; t !== null && t.getTime() <= now && i < 100_000; i++) {
    latest = t.getTime();
    t = schedule.next(t);
  }
  return latest !== undefined && shouldClaim(latest, marker) ? latest : undefined;
}
