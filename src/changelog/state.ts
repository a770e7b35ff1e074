/**
 * Read-only views of the change log's folder for visibility (docs/point-in-time-restore.md,
 * "Visibility"): the segments with their seals, each chain's restorable range, and the
 * newest seal. Nothing here writes; a seal that cannot be read is reported, never fatal.
 *
 * Contract:
 * - A chain's range is its contiguous run of sealed segments that ends with its newest
 *   one (`chainRuns`): a gap (a missing segment) cuts off what is before it.
 * - `earliest` is the oldest kept snapshot whose revision S has S + 1 in that run (or
 *   S = its last revision); `latest` is the run's last revision and the time it was seen.
 * - `lag`: 0 revisions and 0 s when every etcd revision is sealed; otherwise the revisions
 *   after the last sealed one and the seconds since its seal (the time after which writes
 *   may not be restorable yet).
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { messageOf } from '../errors.js';
import type { ChainRange } from '../model/api.js';
import type { ChangelogSegment, LastSealed } from '../model/changelog-api.js';
import type { SegmentName } from './format.js';
import { listSegments, readSeal } from './segments.js';

/** A kept local snapshot, as the range needs it. */
export interface SnapshotPoint {
  name: string;
  revision: number;
  /** RFC 3339. */
  createdAt: string;
}

export interface ChainRun {
  chain: string;
  first: number;
  last: number;
  segments: number;
  /** The run's newest segment. */
  newest: SegmentName;
}

const iso = (ms: number): string => new Date(ms).toISOString();
const PART = /^([0-9a-f]{16})-(\d{20})\.part$/;

/** Pure: per chain, the contiguous run of segments ending with its newest; newest chain last. */
export function chainRuns(names: readonly SegmentName[]): ChainRun[] {
  const byChain = new Map<string, SegmentName[]>();
  for (const n of names) byChain.set(n.chain, [...(byChain.get(n.chain) ?? []), n]);
  const runs: ChainRun[] = [];
  for (const [chain, segs] of byChain) {
    const sorted = [...segs].sort((a, b) => a.first - b.first || a.last - b.last);
    const newest = sorted[sorted.length - 1];
    if (!newest) continue;
    let first = newest.first;
    let count = 1;
    for (let i = sorted.length - 2; i >= 0; i--) {
      const s = sorted[i];
      if (!s || s.last + 1 !== first) break;
      first = s.first;
      count++;
    }
    runs.push({ chain, first, last: newest.last, segments: count, newest });
  }
  return runs.sort((a, b) => a.last - b.last);
}

/** Pure: the oldest kept snapshot a restore along `run` can start from. */
export function earliestSnapshot(run: Pick<ChainRun, 'first' | 'last'>, snapshots: readonly SnapshotPoint[]): SnapshotPoint | undefined {
  return snapshots
    .filter((s) => s.revision >= run.first - 1 && s.revision <= run.last)
    .reduce<SnapshotPoint | undefined>(
      (a, s) => (!a || s.revision < a.revision || (s.revision === a.revision && s.createdAt < a.createdAt) ? s : a),
      undefined,
    );
}

/** Pure: a run's range, given the time its last revision was seen (ms). */
export function rangeOf(run: ChainRun, lastTime: number, snapshots: readonly SnapshotPoint[]): ChainRange {
  const e = earliestSnapshot(run, snapshots);
  return {
    chain: run.chain,
    first: run.first,
    segments: run.segments,
    ...(e ? { earliest: { revision: e.revision, time: e.createdAt, snapshot: e.name } } : {}),
    latest: { revision: run.last, time: iso(lastTime) },
  };
}

/** Each chain's restorable range (reads one seal per chain); a chain whose newest seal is unreadable is left out. */
export async function chainRanges(dir: string, snapshots: readonly SnapshotPoint[]): Promise<ChainRange[]> {
  const out: ChainRange[] = [];
  for (const run of chainRuns(await listSegments(dir))) {
    const seal = await readSeal(dir, run.newest.name).catch(() => undefined);
    if (seal) out.push(rangeOf(run, seal.lastTime, snapshots));
  }
  return out;
}

/** Every segment file (sealed, with its seal; and `.part` files being written), in revision order. */
export async function readSegments(dir: string): Promise<ChangelogSegment[]> {
  const out: ChangelogSegment[] = [];
  for (const s of await listSegments(dir)) {
    const size = await fsp
      .stat(path.join(dir, s.name))
      .then((st) => st.size)
      .catch(() => 0);
    const base = { name: s.name, chain: s.chain, first: s.first, last: s.last, sealed: true, size };
    try {
      const f = await readSeal(dir, s.name);
      out.push({ ...base, records: f.records, firstTime: iso(f.firstTime), lastTime: iso(f.lastTime), sealedAt: iso(f.sealedAt) });
    } catch (err) {
      out.push({ ...base, error: messageOf(err) });
    }
  }
  for (const p of await openParts(dir)) out.push(p);
  return out.sort((a, b) => a.first - b.first);
}

async function openParts(dir: string): Promise<ChangelogSegment[]> {
  const names = await fsp.readdir(dir).catch(() => [] as string[]);
  const out: ChangelogSegment[] = [];
  for (const name of names) {
    const m = PART.exec(name);
    if (!m) continue;
    const size = await fsp
      .stat(path.join(dir, name))
      .then((st) => st.size)
      .catch(() => undefined);
    if (size !== undefined) out.push({ name, chain: m[1] ?? '', first: Number(m[2]), sealed: false, size });
  }
  return out;
}

/** What the status and the metrics need: counts, and the newest seal (one seal read). */
export interface ChangelogSummary {
  segments: number;
  chains: number;
  open: boolean;
  lastSealed?: LastSealed & { sealedAtMs: number };
}

export async function summarize(dir: string): Promise<ChangelogSummary> {
  const names = await listSegments(dir);
  const open = (await openParts(dir)).length > 0;
  const chains = new Set(names.map((n) => n.chain)).size;
  const newest = names.reduce<SegmentName | undefined>((a, s) => (!a || s.last > a.last ? s : a), undefined);
  const seal = newest ? await readSeal(dir, newest.name).catch(() => undefined) : undefined;
  if (!newest || !seal) return { segments: names.length, chains, open };
  return {
    segments: names.length,
    chains,
    open,
    lastSealed: {
      chain: newest.chain,
      segment: newest.name,
      revision: seal.last,
      time: iso(seal.lastTime),
      sealedAt: iso(seal.sealedAt),
      sealedAtMs: seal.sealedAt,
    },
  };
}

/** Pure: the lag of the sealed log behind etcd's revision (see the contract). */
export function lagOf(etcdRevision: number, lastSealed: { revision: number; sealedAtMs: number }, now: number): { revisions: number; seconds: number } {
  const revisions = Math.max(0, etcdRevision - lastSealed.revision);
  return { revisions, seconds: revisions === 0 ? 0 : Math.max(0, (now - lastSealed.sealedAtMs) / 1000) };
}
