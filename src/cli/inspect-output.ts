/**
 * Renderings of the inspection commands (docs/inspect.md shows each): etcdctl's bordered
 * `snapshot status -w table`, the stats and diff tables, the restore-keys plan. Pure.
 */
import type { DiffSummary, KeyChange } from '../inspect/diff.js';
import type { SnapshotStats, StatsCounts } from '../inspect/stats.js';
import { type InspectStatus, keyText, type RestoreKeysResponse } from '../model/inspect.js';
import { table } from './table.js';

/** Bytes as Go's humanize.Bytes (SI: 1000-based, `2.1 MB`), as etcdctl prints TOTAL SIZE. */
export function humanBytes(n: number): string {
  if (n < 10) return `${n} B`;
  const sizes = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB'];
  const e = Math.floor(Math.log(n) / Math.log(1000));
  const val = Math.floor((n / 1000 ** e) * 10 + 0.5) / 10;
  return `${val < 10 ? val.toFixed(1) : String(roundHalfEven(val))} ${sizes[e] ?? '?'}`;
}

/** Go's %.0f: halves go to the even neighbour (20.5 → 20). */
function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** A table with borders as etcdctl's tablewriter draws it: headers centered, cells right-aligned. */
export function borderedTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = `+${widths.map((w) => '-'.repeat(w + 2)).join('+')}+`;
  const center = (s: string, w: number): string => {
    const left = Math.ceil((w - s.length) / 2);
    return `${' '.repeat(left)}${s}${' '.repeat(w - s.length - left)}`;
  };
  const out = [line, `| ${header.map((h, i) => center(h, widths[i] ?? 0)).join(' | ')} |`, line];
  for (const r of rows) out.push(`| ${r.map((c, i) => c.padStart(widths[i] ?? 0)).join(' | ')} |`);
  out.push(line);
  return `${out.join('\n')}\n`;
}

/** `status -o table`: etcdctl's table, then what etcdctl does not say. */
export function renderStatusTable(s: InspectStatus): string {
  const head = borderedTable(
    ['HASH', 'REVISION', 'TOTAL KEYS', 'TOTAL SIZE'],
    [[s.hash.toString(16), String(s.revision), String(s.totalKey), humanBytes(s.totalSize)]],
  );
  const members =
    s.members.length === 0 ? ['(none recorded)'] : s.members.map((m) => `${m.id} ${m.name} ${m.peerURLs.join(',')}${m.isLearner ? ' (learner)' : ''}`);
  const compact =
    s.scheduledCompactRevision !== s.compactRevision ? `${s.compactRevision} (scheduled ${s.scheduledCompactRevision})` : String(s.compactRevision);
  const rows = [
    ['Snapshot:', s.snapshot],
    ['Trailer:', s.trailer === 'ok' ? 'sha256 ok' : 'absent (a copy of a member database: no integrity check)'],
    ['Compact revision:', compact],
    ['Live keys:', String(s.liveKeys)],
    ['Consistent index:', String(s.consistentIndex)],
    ['Total size:', `${s.totalSize} bytes (page size ${s.pageSize})`],
    ['Members:', members[0] ?? ''],
    ...members.slice(1).map((m) => ['', m]),
  ];
  return head + table(rows);
}

const countCells = (c: StatsCounts): string[] => [String(c.keys), String(c.bytes), humanBytes(c.bytes), String(c.revisions)];

/** `stats -o table`: per resource type, per namespace, then the total; largest first. */
export function renderStatsTable(s: SnapshotStats): string {
  const types = table([['TYPE', 'KEYS', 'BYTES', 'SIZE', 'REVISIONS'], ...s.byResource.map((r) => [r.type, ...countCells(r)])]);
  const namespaces = table([
    ['NAMESPACE', 'KEYS', 'BYTES', 'SIZE', 'REVISIONS'],
    ...s.byNamespace.map((n) => [n.namespace ?? '(cluster-scoped or not Kubernetes)', ...countCells(n)]),
  ]);
  return `${types}\n${namespaces}\nTotal: ${s.total.keys} keys, ${s.total.bytes} bytes (${humanBytes(s.total.bytes)}), ${s.total.revisions} revisions\n`;
}

const MARK: Record<KeyChange['change'], string> = { added: '+', removed: '-', changed: '~' };

/** One line of `diff --keys`: `+ key`, `- key`, `~ key` with the revisions. */
export function renderChangeLine(c: KeyChange): string {
  const revs = [c.before ? `rev ${c.before.modRevision}` : undefined, c.after ? `rev ${c.after.modRevision}` : undefined]
    .filter((x) => x !== undefined)
    .join(' -> ');
  return `${MARK[c.change]} ${keyText(c.key)}  (${revs})\n`;
}

/** A change as JSON (the key as text). */
export function changeJson(c: KeyChange): Record<string, unknown> {
  return { ...c, key: keyText(c.key) };
}

/** `diff -o table`: per resource type and namespace, then the totals. */
export function renderDiffTable(d: DiffSummary): string {
  const cells = (x: { added: number; removed: number; changed: number }): string[] => [String(x.added), String(x.removed), String(x.changed)];
  const total = `Total: ${d.total.added} added, ${d.total.removed} removed, ${d.total.changed} changed, ${d.total.unchanged} unchanged\n`;
  if (d.byResource.length === 0) return total;
  const types = table([['TYPE', 'ADDED', 'REMOVED', 'CHANGED'], ...d.byResource.map((r) => [r.type, ...cells(r)])]);
  const namespaces = table([
    ['NAMESPACE', 'ADDED', 'REMOVED', 'CHANGED'],
    ...d.byNamespace.map((n) => [n.namespace ?? '(cluster-scoped or not Kubernetes)', ...cells(n)]),
  ]);
  return `${types}\n${namespaces}\n${total}`;
}

/** The restore-keys plan (dry run) or its outcome (apply), key by key, then the counts. */
export function renderRestorePlan(r: RestoreKeysResponse): string {
  const conflicted = new Set(r.conflicts.map((c) => `${c.action}\0${c.key}`));
  const rows: string[][] = [];
  const add = (action: 'create' | 'overwrite' | 'delete', done: string, planned: string): void => {
    for (const k of r[action]) {
      if (conflicted.has(`${action}\0${k}`)) continue;
      rows.push([r.applied ? done : planned, k]);
    }
  };
  add('create', 'created', 'create');
  add('overwrite', 'overwrote', 'overwrite');
  add('delete', 'deleted', 'delete');
  for (const k of r.unchanged) rows.push(['unchanged', k]);
  for (const k of r.extra) rows.push(['live only', `${k}  (not in the snapshot: left alone)`]);
  for (const k of r.absent) rows.push(['absent', `${k}  (--delete-key: not in the live cluster, nothing to delete)`]);
  for (const c of r.conflicts) rows.push(['CONFLICT', `${c.key}: ${c.reason}`]);
  const head = `${r.applied ? 'Restored' : 'Plan to restore'} from ${r.snapshot} (snapshot revision ${r.snapshotRevision}) into the live cluster as of revision ${r.planRevision}:\n`;
  const written = (a: 'create' | 'overwrite' | 'delete'): number => r[a].length - r.conflicts.filter((c) => c.action === a).length;
  const counts = r.applied
    ? `${written('create')} created, ${written('overwrite')} overwritten, ${written('delete')} deleted, ${r.unchanged.length} unchanged, ${r.extra.length} live only, ${r.conflicts.length} conflict(s).\n`
    : `${r.create.length} to create, ${r.overwrite.length} to overwrite, ${r.delete.length} to delete, ${r.unchanged.length} unchanged, ${r.extra.length} live only (left alone).\nDry run: nothing was changed. To apply exactly this plan: --apply --plan-revision ${r.planRevision}\n`;
  return head + (rows.length > 0 ? table(rows) : '(no keys selected)\n') + counts;
}
