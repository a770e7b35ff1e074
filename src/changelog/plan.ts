/**
 * Planning a restore to a point, pure (docs/point-in-time-restore.md, "Restore to a point"):
 * the target as given, which sealed segments carry the revisions after a snapshot, and which
 * of their records to replay.
 *
 * - `parseRestoreTo`: a revision (digits), an RFC 3339 time with a zone, or `latest` (the
 *   last revision of the contiguous run after the snapshot: after a lost host, the newest
 *   point the log can give).
 * - `planSegments`: from the segment names alone, the contiguous run of one chain that starts
 *   at the segment holding revision `base + 1` (the snapshot's revision + 1), cut at the
 *   target revision. Several chains can hold `base + 1` (a chain broken by compaction and a
 *   new one from a later snapshot hold the same history); the one reaching furthest wins.
 * - `summarize` + `targetRevision`: over the decoded segments, one at a time, the revision to
 *   end at, checked contiguous from `base + 1`; a time maps to the last revision seen at or
 *   before it. `recordsBetween` gives a segment's records to replay; `selectRecords` does
 *   it all in memory.
 * Every refusal is an `integrity` (a gap, a missing segment) or `usage` (a target the
 * snapshot cannot reach) error naming what is missing.
 */
import { EtcdsnapError } from '../errors.js';
import type { ChangeRecord } from '../model/changelog.js';
import type { Segment, SegmentName } from './format.js';

/** A revision, a time (ms), or the latest revision the log holds contiguously after the snapshot. */
export type RestoreTo = { revision: number } | { time: number } | { latest: true };

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;

/** `--cluster-reset-restore-to`: a revision (digits) or an RFC 3339 time with a zone; `usage` otherwise. */
export function parseRestoreTo(text: string): RestoreTo {
  const t = text.trim();
  if (t === 'latest') return { latest: true };
  if (/^\d{1,16}$/.test(t)) {
    const revision = Number(t);
    if (Number.isSafeInteger(revision) && revision >= 1) return { revision };
  }
  if (RFC3339.test(t)) {
    const time = Date.parse(t.replace(' ', 'T'));
    if (Number.isFinite(time)) return { time };
  }
  throw new EtcdsnapError(
    'usage',
    `invalid --cluster-reset-restore-to ${JSON.stringify(text)}: give an etcd revision (e.g. 1234), an RFC 3339 time with its zone (e.g. 2026-11-30T14:02:00Z) or latest`,
  );
}

export const describeTarget = (t: RestoreTo): string =>
  'revision' in t ? `revision ${t.revision}` : 'time' in t ? new Date(t.time).toISOString() : 'the latest logged revision';

/** The contiguous segments of one chain from `from`, in revision order. */
function runFrom(byChain: SegmentName[], from: SegmentName): SegmentName[] {
  const run = [from];
  let last = from.last;
  for (const s of byChain) {
    if (s.first === last + 1) {
      run.push(s);
      last = s.last;
    }
  }
  return run;
}

const ranges = (names: readonly SegmentName[]): string => {
  if (names.length === 0) return 'there are no segments';
  const sorted = [...names].sort((a, b) => a.first - b.first);
  const shown = sorted.slice(0, 5).map((s) => `${s.first}..${s.last}`);
  return `the segments hold revisions ${shown.join(', ')}${sorted.length > 5 ? `, ... (${sorted.length} segments)` : ''}`;
};

/**
 * The segments to read, in order, to replay from `base + 1` to `target` (all of the run for a
 * time target, whose revision is known only from the records). Empty when the target is the
 * snapshot's own revision.
 */
export function planSegments(names: readonly SegmentName[], base: number, target: RestoreTo): SegmentName[] {
  if ('revision' in target) {
    if (target.revision < base)
      throw new EtcdsnapError('usage', `the snapshot is at revision ${base}, after the target revision ${target.revision}: restore an older snapshot`);
    if (target.revision === base) return [];
  }
  const next = base + 1;
  const sorted = [...names].sort((a, b) => a.first - b.first || a.last - b.last);
  let best: SegmentName[] | undefined;
  for (const s of sorted) {
    if (s.first > next || s.last < next) continue;
    const run = runFrom(
      sorted.filter((x) => x.chain === s.chain),
      s,
    );
    if (!best || (run[run.length - 1]?.last ?? 0) > (best[best.length - 1]?.last ?? 0)) best = run;
  }
  if (!best) {
    if (!('revision' in target)) return [];
    throw new EtcdsnapError('integrity', `no change log segment holds revision ${next}, the first after the snapshot (revision ${base}): ${ranges(names)}`);
  }
  if (!('revision' in target)) return best;
  const end = best[best.length - 1]?.last ?? base;
  if (end < target.revision) {
    const after = sorted.filter((s) => s.first > end).map((s) => s.first);
    const missing = after.length > 0 ? `${end + 1}..${Math.min(Math.min(...after) - 1, target.revision)}` : `${end + 1}..${target.revision}`;
    throw new EtcdsnapError(
      'integrity',
      `the change log has no revisions ${missing}: its segments from revision ${next} end at revision ${end}${after.length > 0 ? ', and the next segment starts later' : ''} (target revision ${target.revision})`,
    );
  }
  return best.filter((s) => s.first <= target.revision);
}

/** What planning keeps of one decoded segment (not its records: a restore holds one segment at a time). */
export interface SegmentSummary {
  name: string;
  first: number;
  last: number;
  sealedAt: number;
  /** Time target: the last revision after the base seen at or before the target time. */
  lastAtOrBefore?: number;
  /** Time target: whether a revision after the base was seen after the target time. */
  seenAfter: boolean;
  /** When the base revision itself was seen, if this segment holds it. */
  baseTime?: number;
}

/** Pure: the summary of a decoded segment for a replay onto `base` towards `target`. */
export function summarize(seg: Segment, base: number, target: RestoreTo): SegmentSummary {
  const out: SegmentSummary = { name: seg.name, first: seg.footer.first, last: seg.footer.last, sealedAt: seg.footer.sealedAt, seenAfter: false };
  for (const r of seg.records) {
    if (r.revision === base) out.baseTime = r.time;
    if (r.revision <= base || !('time' in target)) continue;
    if (r.time <= target.time) out.lastAtOrBefore = r.revision;
    else out.seenAfter = true;
  }
  return out;
}

const usageAfter = (what: string, t: number): EtcdsnapError =>
  new EtcdsnapError('usage', `${what}, after the target time ${new Date(t).toISOString()}: restore an older snapshot`);

/**
 * Pure: the revision a replay onto a snapshot at `base` ends at, from the summaries of the
 * segments `planSegments` chose (in its order), checked contiguous from `base + 1`.
 * `snapshotTime` (ms, when known) must not be after a time target.
 */
export function targetRevision(sums: readonly SegmentSummary[], base: number, target: RestoreTo, snapshotTime?: number): number {
  let expected = base + 1;
  let coveredUntil = -1;
  for (const s of sums) {
    if (s.first > expected)
      throw new EtcdsnapError('integrity', `the change log has no revisions ${expected}..${s.first - 1} (segment ${s.name} starts at ${s.first})`);
    expected = Math.max(expected, s.last + 1);
    coveredUntil = Math.max(coveredUntil, s.sealedAt);
  }
  if ('revision' in target) {
    if (target.revision < base)
      throw new EtcdsnapError('usage', `the snapshot is at revision ${base}, after the target revision ${target.revision}: restore an older snapshot`);
    if (expected - 1 < target.revision) throw new EtcdsnapError('integrity', `the change log has no revisions ${expected}..${target.revision}`);
    return target.revision;
  }
  if (!('time' in target)) return expected - 1;
  const t = target.time;
  if (snapshotTime !== undefined && snapshotTime > t) throw usageAfter(`the snapshot was taken at ${new Date(snapshotTime).toISOString()}`, t);
  const baseTime = sums.find((s) => s.baseTime !== undefined)?.baseTime;
  if (baseTime !== undefined && baseTime > t) throw usageAfter(`the snapshot holds revision ${base}, seen at ${new Date(baseTime).toISOString()}`, t);
  if (!sums.some((s) => s.seenAfter) && coveredUntil <= t) {
    const until = coveredUntil >= 0 ? `what was seen before ${new Date(coveredUntil).toISOString()}` : 'nothing after the snapshot';
    throw new EtcdsnapError(
      'integrity',
      `the change log covers ${until} (last sealed segment), not the target time ${new Date(t).toISOString()}: revisions seen after it may be missing; restore to a revision or an earlier time`,
    );
  }
  return Math.max(base, ...sums.map((s) => s.lastAtOrBefore ?? base));
}

/** Pure: the records of `seg` in (after, upTo], in order. */
export const recordsBetween = (seg: Segment, after: number, upTo: number): ChangeRecord[] =>
  seg.records.filter((r) => r.revision > after && r.revision <= upTo);

/** What to replay: the records of (base, revision], and the revision the restore ends at. */
export interface Replay {
  revision: number;
  records: ChangeRecord[];
}

/** Pure, all in memory (for tests and small logs): `targetRevision` and the records to replay. */
export function selectRecords(segments: readonly Segment[], base: number, target: RestoreTo, snapshotTime?: number): Replay {
  const revision = targetRevision(
    segments.map((seg) => summarize(seg, base, target)),
    base,
    target,
    snapshotTime,
  );
  let after = base;
  const records: ChangeRecord[] = [];
  for (const seg of segments) {
    const rs = recordsBetween(seg, after, revision);
    records.push(...rs);
    after = rs[rs.length - 1]?.revision ?? after;
  }
  return { revision, records };
}
