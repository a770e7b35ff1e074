/**
 * The time-bucket policy (restic's `forget --keep-*` semantics, docs/retention.md) as a
 * pure function over snapshot times: which to keep, which to remove, and why.
 *
 * Contract:
 * - `snapshots` are taken newest first as given (the caller sorts, policy.ts: by the time in
 *   the name, same-second names by name, descending); nothing here reorders them.
 * - `last=N` keeps the N newest. Each calendar rule (`hourly`, `daily`, `weekly`, `monthly`,
 *   `yearly`) puts a snapshot in the bucket of its wall-clock hour, date, ISO week, month or
 *   year in the calendar's zone; going from the newest, the first snapshot of each bucket
 *   not seen before is kept, until the rule has kept N. Buckets without snapshots do not
 *   count: `daily=7` keeps the newest snapshot of each of the 7 most recent days that have
 *   one, however far back they go.
 * - When a rule still has counts left at the oldest snapshot, that snapshot is kept too
 *   (as restic: the longest history while counts are left).
 * - A snapshot is kept when any rule keeps it; `reasons` name every rule that keeps it
 *   (`daily 2026-11-30 (1/7)`, `last (2/3)`), and for a removed one why each rule passed it
 *   over (`daily 2026-11-30 has a newer one`, `daily: all 7 used`).
 * - Every rule at 0 keeps everything (no policy; the parser refuses such a text).
 */
import { RETENTION_RULES, type BucketPolicy, type RetentionRule } from '../model/retention-policy.js';
import { bucketLabels, formatLocalTime, type Calendar } from './calendar.js';

/** One snapshot's outcome. */
export interface BucketDecision {
  name: string;
  /** Unix seconds (from the name). */
  time: number;
  /** The local time the buckets used (`2026-11-30 14:05:00 +01:00`). */
  localTime: string;
  keep: boolean;
  reasons: string[];
}

/** Applies `policy` to `snapshots` (newest first) in `calendar`'s zone; one decision each, same order. */
export function planBuckets(snapshots: ReadonlyArray<{ name: string; time: number }>, policy: BucketPolicy, calendar: Calendar): BucketDecision[] {
  const active = RETENTION_RULES.filter((r) => policy[r] > 0);
  const left = new Map<RetentionRule, number>(active.map((r) => [r, policy[r]]));
  const lastKey = new Map<RetentionRule, string>();
  return snapshots.map((s, i) => {
    const local = calendar(s.time);
    const labels = bucketLabels(local);
    const oldest = i === snapshots.length - 1;
    const kept: string[] = [];
    const passed: string[] = [];
    if (active.length === 0) kept.push('no policy');
    for (const rule of active) {
      const count = policy[rule];
      const remaining = left.get(rule) ?? 0;
      const key = rule === 'last' ? `#${i}` : labels[rule];
      const label = rule === 'last' ? 'last' : `${rule} ${key}`;
      if (remaining > 0 && (key !== lastKey.get(rule) || oldest)) {
        const nth = count - remaining + 1;
        kept.push(key === lastKey.get(rule) ? `${label} (${nth}/${count}, the oldest snapshot)` : `${label} (${nth}/${count})`);
        left.set(rule, remaining - 1);
        lastKey.set(rule, key);
      } else if (key === lastKey.get(rule)) {
        passed.push(`${label} has a newer one`);
      } else {
        passed.push(`${rule}: all ${count} used`);
      }
    }
    return { name: s.name, time: s.time, localTime: formatLocalTime(local), keep: kept.length > 0, reasons: kept.length > 0 ? kept : passed };
  });
}
