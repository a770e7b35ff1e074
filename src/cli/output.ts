/** User-facing renderings of snapshot records: k3s's table, JSON and YAML. */
import YAML from 'yaml';
import { recordNote, type SnapshotRecord } from '../model/records.js';
import { table } from './table.js';
import { drillCell } from '../snapshot/drill-plan.js';

export type OutputFormat = 'table' | 'json' | 'yaml';

export function parseOutputFormat(raw: string | undefined): OutputFormat {
  const v = raw ?? '';
  if (v === '' || v === 'table') return 'table';
  if (v === 'json' || v === 'yaml') return v;
  throw new Error(`invalid output format: ${v}`);
}

/**
 * JSON and YAML print the records as they are (`foreignName: true` marks a snapshot whose
 * name is not etcdsnap's scheme). The table has k3s's four columns, plus a last column
 * `Note` only when some row has one (`foreign name`, or NEWER_RECORD_NOTE for a record a
 * newer etcdsnap wrote), so the first four stay where k3s has them. A `Drill` column (the
 * last restore drill: `passed <time>`, `FAILED <time>`, docs/drills.md) follows them, only
 * when some row was drilled; the Note comes last.
 */
export function renderRecords(records: readonly SnapshotRecord[], format: OutputFormat): string {
  if (format === 'json') return `${JSON.stringify(records, null, 2)}\n`;
  if (format === 'yaml') return YAML.stringify(records);
  const noted = records.some((r) => recordNote(r) !== '');
  const drilled = records.some((r) => r.drill !== undefined);
  const row = (r: SnapshotRecord): string[] => {
    const cells = [r.name, r.status === 'failed' ? `(failed: ${r.message ?? ''})` : r.location, String(r.size), r.createdAt];
    if (drilled) cells.push(drillCell(r.drill));
    return noted ? [...cells, recordNote(r)] : cells;
  };
  const head = ['Name', 'Location', 'Size', 'Created', ...(drilled ? ['Drill'] : []), ...(noted ? ['Note'] : [])];
  return table([head, ...records.map(row)]);
}
