/**
 * Retention as a pure policy: which snapshot files to delete, and why the others stay.
 * Only names of this exact prefix and node (`<prefix>-<node>-<unix seconds>` plus encoding extensions, model/encoding.ts) are
 * candidates; anything else is never selected. Newest first by the timestamp in the name.
 */
import { belongsTo, parseSnapshotName } from '../model/naming.js';

export interface RetentionPolicy {
  prefix: string;
  nodeName: string;
  /** How many to keep; below 1 means keep everything (pruning disabled). */
  keep: number;
}

export interface RetentionPlan {
  keep: string[];
  remove: string[];
  /** Names that are not candidates (other prefix, other node, not a snapshot name). */
  ignored: string[];
}

export function planRetention(names: readonly string[], policy: RetentionPolicy): RetentionPlan {
  const candidates: Array<{ name: string; ts: number }> = [];
  const ignored: string[] = [];
  for (const name of names) {
    const parsed = parseSnapshotName(name);
    if (parsed && belongsTo(name, policy.prefix, policy.nodeName)) candidates.push({ name, ts: parsed.timestamp });
    else ignored.push(name);
  }
  // Stryker disable next-line ConditionalExpression,EqualityOperator: equivalent; only `x` and `x.zip` share a timestamp, and the sort cannot tell their order from the name tie-break (docs/mutation-testing.md)
  candidates.sort((a, b) => b.ts - a.ts || (a.name < b.name ? 1 : a.name > b.name ? -1 : 0));
  if (policy.keep < 1) return { keep: candidates.map((c) => c.name), remove: [], ignored };
  return {
    keep: candidates.slice(0, policy.keep).map((c) => c.name),
    remove: candidates.slice(policy.keep).map((c) => c.name),
    ignored,
  };
}
