/**
 * Renderings of the change log's visibility (docs/point-in-time-restore.md, "Visibility"):
 * the restorable range lines (after `etcd-snapshot ls`'s table and `changelog ls`'s), the
 * segment table, and the status. JSON prints the server's answer as it came.
 */
import type { ChainRange } from '../model/api.js';
import type { ChangelogListResponse, ChangelogStatusResponse } from '../model/changelog-api.js';
import { table } from './table.js';

/** One line per chain: the range a restore to a point can reach, or why it cannot. */
export function renderRanges(chains: readonly ChainRange[]): string {
  return chains
    .map((c) =>
      c.earliest
        ? `Restorable range (change log chain ${c.chain}): revision ${c.earliest.revision} (${c.earliest.time}, snapshot ${c.earliest.snapshot}) to revision ${c.latest.revision} (${c.latest.time})\n`
        : `Not restorable (change log chain ${c.chain}, revisions ${c.first} to ${c.latest.revision}): no kept snapshot at revision ${c.first - 1} to ${c.latest.revision} to start from\n`,
    )
    .join('');
}

/** `ls`'s table, then a blank line and the range lines when the server sent some. */
export function withRanges(tableText: string, chains: readonly ChainRange[] | undefined): string {
  return chains && chains.length > 0 ? `${tableText}\n${renderRanges(chains)}` : tableText;
}

export function renderChangelogList(res: ChangelogListResponse, json: boolean): string {
  if (json) return `${JSON.stringify(res, null, 2)}\n`;
  if (res.segments.length === 0) return `No change log segments in ${res.dir}.\n`;
  const rows = res.segments.map((s) => [
    s.chain,
    String(s.first),
    s.last !== undefined ? String(s.last) : '-',
    s.firstTime ?? '-',
    s.lastTime ?? '-',
    String(s.size),
    s.sealed ? (s.sealedAt ?? `(unreadable seal: ${s.error ?? ''})`) : 'no (being written)',
  ]);
  const head = ['Chain', 'First', 'Last', 'First seen', 'Last seen', 'Size', 'Sealed'];
  return withRanges(table([head, ...rows]), res.chains);
}

const period = (ms: number): string => (ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`);
const plural = (n: number, one: string, many: string): string => `${n} ${n === 1 ? one : many}`;

export function renderChangelogStatus(s: ChangelogStatusResponse, json: boolean): string {
  if (json) return `${JSON.stringify(s, null, 2)}\n`;
  const rows: string[][] = [
    ['Change log:', s.enabled ? `on, sealed every ${period(s.periodMs ?? 0)}, in ${s.dir}` : `off (start the server with --etcd-changelog); folder ${s.dir}`],
    [
      'Writer:',
      s.writer
        ? s.writer.elected
          ? `${s.writer.node} (elected through etcd)`
          : 'none elected now (a server with --etcd-changelog takes over within the lease TTL)'
        : 'none',
    ],
    ['Segments:', `${plural(s.segments, 'sealed', 'sealed')} in ${plural(s.chains, 'chain', 'chains')}${s.open ? ', 1 being written' : ''}`],
    [
      'Last sealed:',
      s.lastSealed ? `revision ${s.lastSealed.revision} (seen ${s.lastSealed.time}), sealed ${s.lastSealed.sealedAt}, in ${s.lastSealed.segment}` : 'none',
    ],
    ['etcd revision:', s.etcdRevision !== undefined ? String(s.etcdRevision) : 'unknown (etcd did not answer)'],
  ];
  if (s.lag) rows.push(['Lag:', `${plural(s.lag.revisions, 'revision', 'revisions')}, ${s.lag.seconds.toFixed(1)} s behind etcd`]);
  else if (s.enabled) rows.push(['Lag:', 'unknown (no sealed segment yet, or etcd did not answer)']);
  return table(rows);
}
