/** User-facing renderings of snapshot records: k3s's table, JSON and YAML. */
import YAML from 'yaml';
import type { SnapshotRecord } from '../snapshot/records.js';

export type OutputFormat = 'table' | 'json' | 'yaml';

export function parseOutputFormat(raw: string | undefined): OutputFormat {
  const v = raw ?? '';
  if (v === '' || v === 'table') return 'table';
  if (v === 'json' || v === 'yaml') return v;
  throw new Error(`invalid output format: ${v}`);
}

/** Columns padded like Go's tabwriter with padding 1. */
export function table(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd((widths[i] ?? 0) + 1))).join('')).join('\n') + '\n';
}

export function renderRecords(records: readonly SnapshotRecord[], format: OutputFormat): string {
  if (format === 'json') return `${JSON.stringify(records, null, 2)}\n`;
  if (format === 'yaml') return YAML.stringify(records);
  return table([
    ['Name', 'Location', 'Size', 'Created'],
    ...records.map((r) => [r.name, r.status === 'failed' ? `(failed: ${r.message ?? ''})` : r.location, String(r.size), r.createdAt]),
  ]);
}
