/**
 * The read operations on one snapshot, shared by the CLI (which reads the file itself, as
 * etcdutl does) and the supervisor API (which reads snapshots it knows by name): open a
 * source and its reader, status, the keys, one key Kubernetes-aware (inspect/k8s.ts), stats
 * (inspect/stats.ts) and diff (inspect/diff.ts). Status and keys return the wire types of
 * model/inspect.ts, the others the types of their modules; the file is read by the reader of src/inspect/
 * (page by page, never whole), and values are read only where an answer needs them.
 *
 * `withSnapshot` opens a source (inspect-source.ts) and its reader and always closes both,
 * also when the callback throws; `onOpen` lets a caller remove the temp files on a signal.
 */
import { openSnapshotReader } from '../inspect/mvcc.js';
import type { SnapshotReader } from '../inspect/types.js';
import { type InspectStatus, type KeyInfo, keyText } from '../model/inspect.js';
import { type DecodedEntry, decodeEntry } from '../inspect/k8s.js';
import { computeStats, type SnapshotStats } from '../inspect/stats.js';
import { diffSnapshots, type DiffSummary, type KeyChange } from '../inspect/diff.js';
import { type InspectSource, type InspectSourceContext, openInspectSource } from './inspect-source.js';

/** An opened snapshot: its source (temp files) and its reader. */
export interface OpenedInspection {
  source: InspectSource;
  reader: SnapshotReader;
}

/**
 * Opens `raw` (inspect-source.ts rules), runs `fn` on it and closes reader and source
 * whatever happens. `onOpen`/`onClose` bracket the time temp files exist (signal handlers).
 */
export async function withSnapshot<T>(
  raw: string,
  ctx: InspectSourceContext,
  fn: (s: OpenedInspection) => Promise<T>,
  hooks: { onOpen?: (s: InspectSource) => void; onClose?: (s: InspectSource) => void } = {},
): Promise<T> {
  const source = await openInspectSource(raw, ctx);
  hooks.onOpen?.(source);
  try {
    const reader = await openSnapshotReader(source.file);
    try {
      return await fn({ source, reader });
    } finally {
      await reader.close();
    }
  } finally {
    await source.close();
    hooks.onClose?.(source);
  }
}

/**
 * Like `withSnapshot` for a stream: the snapshot is opened at the first `next()` and closed
 * when `fn`'s values are exhausted, on an error, or when the consumer stops early (`return`).
 */
export async function* streamSnapshot<T>(raw: string, ctx: InspectSourceContext, fn: (s: OpenedInspection) => AsyncIterable<T>): AsyncGenerator<T> {
  const source = await openInspectSource(raw, ctx);
  try {
    const reader = await openSnapshotReader(source.file);
    try {
      yield* fn({ source, reader });
    } finally {
      await reader.close();
    }
  } finally {
    await source.close();
  }
}

/** `status` of a snapshot: etcdctl's four fields, then ours. */
export async function inspectStatus(reader: SnapshotReader, label: string): Promise<InspectStatus> {
  const s = await reader.status();
  return {
    hash: s.hash,
    revision: s.revision,
    totalKey: s.totalKey,
    totalSize: s.totalSize,
    snapshot: label,
    pageSize: s.pageSize,
    trailer: s.trailer,
    compactRevision: s.compactRevision,
    scheduledCompactRevision: s.scheduledCompactRevision,
    consistentIndex: s.consistentIndex,
    liveKeys: s.liveKeys,
    members: s.members.map((m) => ({ id: m.id, name: m.name, peerURLs: m.peerURLs, isLearner: m.isLearner })),
  };
}

export interface KeysQuery {
  prefix?: Buffer;
  revision?: number;
  /** At most this many (default: all). */
  limit?: number;
}

/** The keys alive at the revision, in key order, streamed (no value is read). */
export async function* keyInfos(reader: SnapshotReader, q: KeysQuery): AsyncGenerator<KeyInfo> {
  let n = 0;
  if (q.limit !== undefined && q.limit <= 0) return;
  for await (const kv of reader.entries({
    values: false,
    ...(q.prefix ? { prefix: q.prefix } : {}),
    ...(q.revision !== undefined ? { revision: q.revision } : {}),
  })) {
    yield { key: keyText(kv.key), createRevision: kv.createRevision, modRevision: kv.modRevision, version: kv.version, lease: kv.lease };
    if (q.limit !== undefined && ++n >= q.limit) return;
  }
}

/** One key of `get`: revisions, registry coordinates and the decoded value (inspect/k8s.ts), plus the value's size. */
export type KeyDetail = DecodedEntry & { size: number };

/** One key at the revision, with its value decoded (Kubernetes-aware); undefined when absent there. */
export async function keyDetail(reader: SnapshotReader, key: Buffer, revision?: number): Promise<KeyDetail | undefined> {
  const kv = await reader.get(key, revision);
  if (kv === undefined) return undefined;
  return { ...decodeEntry(kv), size: kv.value.length };
}

/** `stats` (inspect/stats.ts) over the keys under `prefix`; value sizes come from the scan, no value is read. */
export async function snapshotStats(reader: SnapshotReader, prefix?: Buffer): Promise<SnapshotStats> {
  return computeStats(
    reader.entries({ values: false, ...(prefix ? { prefix } : {}) }),
    (countBy) => reader.revisionCounts(prefix, countBy),
    prefix ? { prefix } : {},
  );
}

/**
 * `diff` (inspect/diff.ts) from `before` to `after` under `prefix`; each change goes to
 * `onChange` as it is found (awaited: a slow consumer holds the walk back).
 */
export function snapshotDiff(
  before: SnapshotReader,
  after: SnapshotReader,
  prefix: Buffer | undefined,
  onChange?: (c: KeyChange) => Promise<void> | void,
): Promise<DiffSummary> {
  const q = { values: true, ...(prefix ? { prefix } : {}) };
  return diffSnapshots(before.entries(q), after.entries(q), { ...(prefix ? { prefix } : {}), ...(onChange ? { onChange } : {}) });
}
