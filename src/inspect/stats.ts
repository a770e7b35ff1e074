/**
 * `stats` of a snapshot (issue 13): keys, bytes and revisions per resource type and per
 * namespace, plus totals. Pure; memory grows with the number of groups, not of keys (the
 * revision-count map is the caller's).
 *
 * Inputs:
 *   - `entries`: the live keys (`SnapshotReader.entries`), in any order. A value's bytes are
 *     its `valueSize` when the entry has one (a reader gives it also without values, so stats
 *     never reads a value), else `value.length`.
 *   - `revisionCounts`: revisions (puts and deletes) per key: a map whose key is the etcd key
 *     as a **latin1** string (`key.toString('latin1')`: one char per byte, so any key
 *     round-trips exactly), or a function that asks the reader for counts per group
 *     (`(countBy) => reader.revisionCounts(prefix, countBy)`: one map entry per group, the
 *     way to stay in bounded memory on a snapshot with millions of keys). Revisions are counted from this map alone, so keys deleted since (their history not yet
 *     compacted) count in `revisions` of their group while adding nothing to `keys` or `bytes`;
 *     a group can therefore show 0 keys and some revisions.
 *   - `prefix` (optional): only keys starting with these bytes, in both inputs (the reader
 *     already filters; this keeps the two consistent whatever the caller passes).
 *
 * Groups (`keyGroup` in registry-key.ts): a `/registry/…` object key by its resource type
 * (`pods`, `widgets.example.com`) and namespace; any other key (k3s's `/bootstrap/<hash>`, user
 * keys) by its first path segment (`/bootstrap`; `foo` for `foo/bar`), with namespace null
 * (as cluster-scoped objects). `bytes` is key length + value length. Each list is sorted by
 * bytes descending, then keys descending, then name.
 */
import { type KeyGroup, keyGroup } from './registry-key.js';
import type { SnapshotKeyValue } from './types.js';

export interface StatsCounts {
  keys: number;
  bytes: number;
  revisions: number;
}

export interface ResourceStats extends StatsCounts {
  type: string;
  /** True for Kubernetes resources, false for groups of other keys (`/bootstrap`). */
  registry: boolean;
}

export interface NamespaceStats extends StatsCounts {
  /** null: cluster-scoped objects and keys outside the registry. */
  namespace: string | null;
}

export interface SnapshotStats {
  byResource: ResourceStats[];
  byNamespace: NamespaceStats[];
  total: StatsCounts;
}

export interface StatsOptions {
  prefix?: Buffer;
}

const zero = (): StatsCounts => ({ keys: 0, bytes: 0, revisions: 0 });

/** Map keys for the two tables; a resource and a non-registry segment of the same name stay apart. */
const resourceId = (g: KeyGroup): string => `${g.registry ? 'r' : 'o'}\0${g.type}`;
const namespaceId = (g: KeyGroup): string => (g.namespace === null ? '' : `n${g.namespace}`);

export async function computeStats(
  entries: AsyncIterable<SnapshotKeyValue>,
  revisionCounts: Map<string, number> | ((countBy: (key: Buffer) => string) => Promise<Map<string, number>>),
  opts: StatsOptions = {},
): Promise<SnapshotStats> {
  const prefix = opts.prefix;
  const resources = new Map<string, ResourceStats>();
  const namespaces = new Map<string, NamespaceStats>();
  const total = zero();
  const add = (key: Buffer, delta: StatsCounts): void => addTo(keyGroup(key), delta);
  const addTo = (g: KeyGroup, delta: StatsCounts): void => {
    let r = resources.get(resourceId(g));
    if (r === undefined) {
      r = { type: g.type, registry: g.registry, ...zero() };
      resources.set(resourceId(g), r);
    }
    let n = namespaces.get(namespaceId(g));
    if (n === undefined) {
      n = { namespace: g.namespace, ...zero() };
      namespaces.set(namespaceId(g), n);
    }
    for (const c of [r, n, total]) {
      c.keys += delta.keys;
      c.bytes += delta.bytes;
      c.revisions += delta.revisions;
    }
  };
  if (typeof revisionCounts === 'function') {
    // counted per group by the reader (one map entry per group, not one per key), before
    // `entries` (not started yet) builds its own map of the keys
    for (const [id, count] of await revisionCounts((key) => JSON.stringify(keyGroup(key))))
      addTo(JSON.parse(id) as KeyGroup, { keys: 0, bytes: 0, revisions: count });
  } else {
    for (const [k, count] of revisionCounts) {
      const key = Buffer.from(k, 'latin1');
      if (prefix !== undefined && !startsWith(key, prefix)) continue;
      add(key, { keys: 0, bytes: 0, revisions: count });
    }
  }
  for await (const kv of entries) {
    if (prefix !== undefined && !startsWith(kv.key, prefix)) continue;
    add(kv.key, { keys: 1, bytes: kv.key.length + (kv.valueSize ?? kv.value.length), revisions: 0 });
  }
  return {
    byResource: [...resources.values()].sort((a, b) => byBytes(a, b) || compareText(a.type, b.type) || Number(b.registry) - Number(a.registry)),
    byNamespace: [...namespaces.values()].sort((a, b) => byBytes(a, b) || compareText(a.namespace ?? '', b.namespace ?? '')),
    total,
  };
}

function byBytes(a: StatsCounts, b: StatsCounts): number {
  return b.bytes - a.bytes || b.keys - a.keys;
}

/** Code-unit order, the same on every locale. */
export function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function startsWith(key: Buffer, prefix: Buffer): boolean {
  return key.length >= prefix.length && key.subarray(0, prefix.length).equals(prefix);
}
