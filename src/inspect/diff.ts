/**
 * `diff` of two snapshots (issue 13): which keys were added, removed or changed between
 * `before` and `after`. Pure; a merge-join of two streams, so memory is one entry per side
 * plus one counter row per group, whatever the number of keys.
 *
 * Inputs: two `AsyncIterable<SnapshotKeyValue>` in key byte order, as
 * `SnapshotReader.entries({ values: true })` yields them (values are needed: read without
 * them, every common key compares equal). A side whose keys are not strictly ascending is
 * refused with an `integrity` error, since a merge-join over it would give a wrong answer.
 *
 * Verdicts: a key only in `after` is added, only in `before` removed; in both, it is changed
 * when the value bytes differ. Same value bytes with a different revision (rewritten with the
 * same content, or deleted and recreated) count as unchanged: `diff` compares content, not
 * history. Changes carry each side's revisions and value size.
 *
 * `diffEntries` streams every change in key order; `diffSnapshots` summarises them per resource
 * type and namespace (the groups of `stats`, `keyGroup` in registry-key.ts; only groups with a
 * change are listed, sorted by number of changes descending, then name) and passes each change
 * to `onChange` (awaited, so a slow printer holds the join back instead of piling up changes).
 */
import { EtcdsnapError } from '../errors.js';
import { type KeyGroup, keyGroup } from './registry-key.js';
import { compareText, startsWith } from './stats.js';
import type { SnapshotKeyValue } from './types.js';

export type ChangeKind = 'added' | 'removed' | 'changed';

export interface KeySide {
  createRevision: number;
  modRevision: number;
  version: number;
  valueBytes: number;
}

export interface KeyChange extends KeyGroup {
  change: ChangeKind;
  key: Buffer;
  /** Absent when added. */
  before?: KeySide;
  /** Absent when removed. */
  after?: KeySide;
}

export interface DiffCounts {
  added: number;
  removed: number;
  changed: number;
}

export interface DiffSummary {
  byResource: (DiffCounts & { type: string; registry: boolean })[];
  byNamespace: (DiffCounts & { namespace: string | null })[];
  total: DiffCounts & { unchanged: number };
}

export interface DiffOptions {
  /** Only keys starting with these bytes, on both sides. */
  prefix?: Buffer;
  /** Called once per key present on both sides with equal value bytes (they are not yielded). */
  onUnchanged?: () => void;
}

export interface DiffSummaryOptions extends DiffOptions {
  onChange?: (change: KeyChange) => void | Promise<void>;
}

/** One side of the join: the next entry in strict key order, or undefined at the end. */
class Side {
  private readonly it: AsyncIterator<SnapshotKeyValue>;
  private last: Buffer | undefined;
  current: SnapshotKeyValue | undefined;

  constructor(
    source: AsyncIterable<SnapshotKeyValue>,
    private readonly name: string,
    private readonly prefix: Buffer | undefined,
  ) {
    this.it = source[Symbol.asyncIterator]();
  }

  async advance(): Promise<void> {
    for (;;) {
      const r = await this.it.next();
      if (r.done === true) {
        this.current = undefined;
        return;
      }
      const kv = r.value;
      if (this.last !== undefined && Buffer.compare(this.last, kv.key) >= 0) {
        throw new EtcdsnapError(
          'integrity',
          `diff: the ${this.name} snapshot's keys are not in ascending order (${JSON.stringify(kv.key.toString('latin1'))} after ${JSON.stringify(this.last.toString('latin1'))})`,
        );
      }
      this.last = kv.key;
      if (this.prefix !== undefined && !startsWith(kv.key, this.prefix)) continue;
      this.current = kv;
      return;
    }
  }

  async close(): Promise<void> {
    await this.it.return?.();
  }
}

const side = (kv: SnapshotKeyValue): KeySide => ({
  createRevision: kv.createRevision,
  modRevision: kv.modRevision,
  version: kv.version,
  valueBytes: kv.value.length,
});

/** Every change between the two, in key order. */
export async function* diffEntries(
  before: AsyncIterable<SnapshotKeyValue>,
  after: AsyncIterable<SnapshotKeyValue>,
  opts: DiffOptions = {},
): AsyncGenerator<KeyChange> {
  const a = new Side(before, 'first', opts.prefix);
  const b = new Side(after, 'second', opts.prefix);
  try {
    await Promise.all([a.advance(), b.advance()]);
    for (;;) {
      const x = a.current;
      const y = b.current;
      if (x === undefined && y === undefined) return;
      const order = x === undefined ? 1 : y === undefined ? -1 : Buffer.compare(x.key, y.key);
      if (order < 0 && x !== undefined) {
        yield { change: 'removed', key: x.key, ...keyGroup(x.key), before: side(x) };
        await a.advance();
      } else if (order > 0 && y !== undefined) {
        yield { change: 'added', key: y.key, ...keyGroup(y.key), after: side(y) };
        await b.advance();
      } else if (x !== undefined && y !== undefined) {
        if (x.value.equals(y.value)) opts.onUnchanged?.();
        else yield { change: 'changed', key: x.key, ...keyGroup(x.key), before: side(x), after: side(y) };
        await Promise.all([a.advance(), b.advance()]);
      }
    }
  } finally {
    await Promise.allSettled([a.close(), b.close()]);
  }
}

export async function diffSnapshots(
  before: AsyncIterable<SnapshotKeyValue>,
  after: AsyncIterable<SnapshotKeyValue>,
  opts: DiffSummaryOptions = {},
): Promise<DiffSummary> {
  const resources = new Map<string, DiffCounts & { type: string; registry: boolean }>();
  const namespaces = new Map<string, DiffCounts & { namespace: string | null }>();
  const total = { added: 0, removed: 0, changed: 0, unchanged: 0 };
  const onUnchanged = (): void => {
    total.unchanged++;
    opts.onUnchanged?.();
  };
  for await (const c of diffEntries(before, after, { ...opts, onUnchanged })) {
    const rid = `${c.registry ? 'r' : 'o'}\0${c.type}`;
    let r = resources.get(rid);
    if (r === undefined) {
      r = { type: c.type, registry: c.registry, added: 0, removed: 0, changed: 0 };
      resources.set(rid, r);
    }
    const nid = c.namespace === null ? '' : `n${c.namespace}`;
    let n = namespaces.get(nid);
    if (n === undefined) {
      n = { namespace: c.namespace, added: 0, removed: 0, changed: 0 };
      namespaces.set(nid, n);
    }
    r[c.change]++;
    n[c.change]++;
    total[c.change]++;
    if (opts.onChange !== undefined) await opts.onChange(c);
  }
  const size = (d: DiffCounts): number => d.added + d.removed + d.changed;
  return {
    byResource: [...resources.values()].sort((p, q) => size(q) - size(p) || compareText(p.type, q.type) || Number(q.registry) - Number(p.registry)),
    byNamespace: [...namespaces.values()].sort((p, q) => size(q) - size(p) || compareText(p.namespace ?? '', q.namespace ?? '')),
    total,
  };
}
