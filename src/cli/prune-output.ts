/**
 * The table of `etcd-snapshot prune --dry-run` with a retention policy (docs/retention.md):
 * one row per snapshot of the set, each store newest first, with `keep` or `remove` and the
 * reasons (retention/buckets.ts); a header line names the policy and the time zone its
 * buckets used. Pure.
 */
import type { PruneResponse } from '../model/api.js';
import { table } from './table.js';

export function renderPruneDecisions(res: PruneResponse): string {
  const decisions = res.decisions ?? [];
  const kept = decisions.filter((d) => d.keep).length;
  const head = `Policy ${res.policy ?? '(count)'}${res.timeZone !== undefined ? ` in time zone ${res.timeZone}` : ''}: ${kept} kept, ${decisions.length - kept} would be removed.\n`;
  if (decisions.length === 0) return `${head}No snapshots of this prefix on this node.\n`;
  const rows = [['Action', 'Location', 'Local time', 'Reasons']];
  for (const d of decisions) rows.push([d.keep ? 'keep' : 'remove', d.location, d.localTime, d.reasons.join('; ')]);
  return head + table(rows);
}
