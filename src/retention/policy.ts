/**
 * Retention as a pure policy: which snapshot files to delete, and why the others stay.
 * Only names of this exact prefix and node (`<prefix>-<node>-<unix seconds>` plus encoding extensions, model/encoding.ts) are
 * candidates; anything else is never selected. Newest first by the timestamp in the name,
 * same-second names by name, descending (so the order never depends on the listing's).
 * Count-based (`keep`, `--etcd-snapshot-retention`) unless `buckets` is given: then the
 * time-bucket policy of buckets.ts decides, in `calendar`'s zone, and `keep` is not used.
 */
import { belongsTo, parseSnapshotName } from '../model/naming.js';
import type { BucketPolicy } from '../model/retention-policy.js';
import { planBuckets, type BucketDecision } from './buckets.js';
import { formatLocalTime, zoneCalendar, type Calendar } from './calendar.js';

export interface RetentionPolicy {
  prefix: string;
  nodeName: string;
  /** How many to keep; below 1 means keep everything (pruning disabled). Unused with `buckets`. */
  keep: number;
  /** The time-bucket policy (`--etcd-snapshot-retention-policy`); replaces `keep`. */
  buckets?: BucketPolicy;
  /** The zone the buckets use (default: UTC; the server passes its own, calendar.ts `systemTimeZone`). */
  calendar?: Calendar;
}

export type RetentionDecision = BucketDecision;

export interface RetentionPlan {
  keep: string[];
  remove: string[];
  /** Names that are not candidates (other prefix, other node, not a snapshot name). */
  ignored: string[];
  /** Every candidate, newest first, with whether it stays and why. */
  decisions: RetentionDecision[];
}

export function planRetention(names: readonly string[], policy: RetentionPolicy): RetentionPlan {
  const candidates: Array<{ name: string; time: number }> = [];
  const ignored: string[] = [];
  for (const name of names) {
    const parsed = parseSnapshotName(name);
    if (parsed && belongsTo(name, policy.prefix, policy.nodeName)) candidates.push({ name, time: parsed.timestamp });
    else ignored.push(name);
  }
  // Stryker disable next-line ConditionalExpression,EqualityOperator: equivalent; only `x` and `x.zip` share a timestamp, and the sort cannot tell their order from the name tie-break (docs/mutation-testing.md)
  candidates.sort((a, b) => b.time - a.time || (a.name < b.name ? 1 : a.name > b.name ? -1 : 0));
  const calendar = policy.calendar ?? zoneCalendar('UTC');
  const decisions = policy.buckets ? planBuckets(candidates, policy.buckets, calendar) : byCount(candidates, policy.keep, calendar);
  return {
    keep: decisions.filter((d) => d.keep).map((d) => d.name),
    remove: decisions.filter((d) => !d.keep).map((d) => d.name),
    ignored,
    decisions,
  };
}

/** Count-based retention: the newest `keep` (all when `keep` < 1). */
function byCount(candidates: ReadonlyArray<{ name: string; time: number }>, keep: number, calendar: Calendar): RetentionDecision[] {
  return candidates.map((c, i) => {
    const base = { name: c.name, time: c.time, localTime: formatLocalTime(calendar(c.time)) };
    if (keep < 1) return { ...base, keep: true, reasons: ['retention 0: pruning disabled'] };
    return i < keep ? { ...base, keep: true, reasons: [`newest ${i + 1}/${keep}`] } : { ...base, keep: false, reasons: [`beyond the newest ${keep}`] };
  });
}
