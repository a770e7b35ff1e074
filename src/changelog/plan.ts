/**
 * Planning a restore to a point, pure (docs/point-in-time-restore.md, "Restore to a point"):
 * the target as given, which sealed segments carry the revisions after a snapshot, and which
 * of their records to replay.
 *
 * - `parseRestoreTo`: a revision (digits) or an RFC 3339 time with a zone.
 * - `planSegments`: from the segment names alone, the contiguous run of one chain that starts
 *   at the segment holding revision `base + 1` (the snapshot's revision + 1), cut at the
 *   target revision. Several chains can hold `base + 1` (a chain broken by compaction and a
 *   new one from a later snapshot hold the same history); the one reaching furthest wins.
 * - `selectRecords`: over the decoded segments, the records of (base, target], checked
 *   contiguous from `base + 1`; a time maps to the last revision seen at or before it.
 * Every refusal is an `integrity` (a gap, a missing segment) or `usage` (a target the
 * snapshot cannot reach) error naming what is missing.
 */
import { EtcdsnapError } from '../errors.js';
import type { ChangeRecord } from '../model/changelog.js';
import type { Segment, SegmentName } from './format.js';

export type RestoreTo = { revision: number } | { time: number };

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;

/** `--cluster-reset-restore-to`: a revision (digits) or an RFC 3339 time with a zone; `usage` otherwise. */
export function parseRestoreTo(text: string): RestoreTo {
  const t = text.trim();
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
    `invalid --cluster-reset-restore-to ${JSON.stringify(text)}: give an etcd revision (e.g. 1234) or an RFC 3339 time with its zone (e.g. 2026-11-30T14:02:00Z)`,
  );
}

export const describeTarget = (t: RestoreTo): string => ('revision' in t ? `revision ${t.revision}` : new Date(t.time).toISOString());

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
    if ('time' in target) return [];
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

/** What to replay: the records of (base, revision], and the revision the restore ends at. */
export interface Replay {
  revision: number;
  records: ChangeRecord[];
}

/**
 * The records of the decoded `segments` (in `planSegments`' order) to replay onto a snapshot
 * at revision `base`, checked contiguous from `base + 1`. `snapshotTime` (ms, when known)
 * must not be after a time target.
 */
export function selectRecords(segments: readonly Segment[], base: number, target: RestoreTo, snapshotTime?: number): Replay {
  let expected = base + 1;
  const records: ChangeRecord[] = [];
  let coveredUntil = -1;
  for (const seg of segments) {
    if (seg.footer.first > expected)
      throw new EtcdsnapError(
        'integrity',
        `the change log has no revisions ${expected}..${seg.footer.first - 1} (segment ${seg.name} starts at ${seg.footer.first})`,
      );
    for (const r of seg.records) {
      if (r.revision < expected) continue;
      records.push(r);
      expected = r.revision + 1;
    }
    coveredUntil = Math.max(coveredUntil, seg.footer.sealedAt);
  }
  if ('revision' in target) {
    if (target.revision < base)
      throw new EtcdsnapError('usage', `the snapshot is at revision ${base}, after the target revision ${target.revision}: restore an older snapshot`);
    const upTo = records.filter((r) => r.revision <= target.revision);
    const last = upTo[upTo.length - 1]?.revision ?? base;
    if (last !== target.revision) throw new EtcdsnapError('integrity', `the change log has no revisions ${last + 1}..${target.revision}`);
    return { revision: target.revision, records: upTo };
  }
  const t = target.time;
  if (snapshotTime !== undefined && snapshotTime > t)
    throw new EtcdsnapError(
      'usage',
      `the snapshot was taken at ${new Date(snapshotTime).toISOString()}, after the target time ${new Date(t).toISOString()}: restore an older snapshot`,
    );
  const atBase = segments.flatMap((seg) => seg.records).find((r) => r.revision === base);
  if (atBase && atBase.time > t)
    throw new EtcdsnapError(
      'usage',
      `the snapshot holds revision ${base}, seen at ${new Date(atBase.time).toISOString()}, after the target time ${new Date(t).toISOString()}: restore an older snapshot`,
    );
  const upTo = records.filter((r) => r.time <= t);
  const seenAfter = records.length > upTo.length;
  if (!seenAfter && coveredUntil <= t) {
    const until = coveredUntil >= 0 ? `what was seen before ${new Date(coveredUntil).toISOString()}` : 'nothing after the snapshot';
    throw new EtcdsnapError(
      'integrity',
      `the change log covers ${until} (last sealed segment), not the target time ${new Date(t).toISOString()}: revisions seen after it may be missing; restore to a revision or an earlier time`,
    );
  }
  return { revision: upTo[upTo.length - 1]?.revision ?? base, records: upTo };
}
