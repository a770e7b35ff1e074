/**
 * Selective restore (`etcd-snapshot restore-keys`, `POST /v1/snapshots/restore-keys`): puts
 * chosen keys of a snapshot back into the live cluster, without a cluster reset.
 *
 * How (docs/inspect.md says it for users):
 * 1. The plan. The selection (a prefix, or a list of keys) is read from the snapshot at its
 *    latest revision (or `revision`) and from the live cluster at one revision R: the latest
 *    when planning anew, or `planRevision` when applying a plan a dry run printed (etcd reads
 *    at R: every page of the live range is read at the same R, so the plan is one consistent
 *    view). Both sides are walked in key order together (a merge, nothing collected but the
 *    key names): a snapshot key absent live is `create`, one whose live value differs is
 *    `overwrite`, one whose live value is identical is `unchanged`; a live key under the
 *    prefix the snapshot does not hold is `extra` (left alone). Each `deleteKeys` key alive
 *    at R is `delete`, else `absent`. A delete key that the snapshot holds inside the
 *    selection is refused (`usage`): it would be both restored and deleted.
 * 2. The apply (only with `apply`), during the same walk: each `create` is a transaction
 *    `if mod_revision(key) == 0 then put`, each `overwrite` and `delete`
 *    `if mod_revision(key) == <its mod revision at R> then put|delete`. A key written by
 *    anyone after R fails its compare: it is reported in `conflicts` and not written, and
 *    nothing is retried. One transaction per key: a conflict on one key never holds back
 *    another. Values are put without a lease (the snapshot's leases do not exist in the live
 *    cluster), so a restored key that had a lease (events, leader leases) never expires.
 * 3. R compacted by etcd since the dry run: a `conflict` error "the plan is too old", nothing
 *    written (the first read at R fails before any write).
 *
 * Nothing is written without `apply`; nothing is ever deleted but `deleteKeys`.
 */
import { EtcdsnapError } from '../errors.js';
import type { EtcdClient, LiveKeyValue } from '../etcd/client.js';
import type { SnapshotKeyValue, SnapshotReader } from '../inspect/types.js';
import { keyText, type RestoreConflict, type RestoreKeysResponse } from '../model/inspect.js';

/** What to restore. */
export interface RestoreSelection {
  /** Keys under this prefix (may be empty: every key) ... */
  prefix?: Buffer;
  /** ... or exactly these keys. */
  keys?: Buffer[];
  deleteKeys: Buffer[];
  /** The snapshot's revision to read (default: its latest). */
  revision?: number;
}

export interface RestoreOptions {
  apply: boolean;
  /** The live revision to plan at (default: the latest). */
  planRevision?: number;
  /** The snapshot's name or location, for the answer. */
  label: string;
}

const NUL = Buffer.from([0]);

/** Keys a live page holds; etcd's default limit of a range is none, we page. */
const PAGE = 500;

/** The first key after every key that starts with `prefix` (etcd's range_end); '\0' (all keys) for an empty prefix. */
export function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    const b = end[i] ?? 0;
    if (b < 0xff) {
      end[i] = b + 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]); // no key is greater: etcd's "to the end"
}

/** The live keys under `prefix` at one revision, page by page, in key order. */
class LiveCursor {
  revision: number | undefined;
  constructor(
    private readonly etcd: EtcdClient,
    revision: number | undefined,
  ) {
    this.revision = revision;
  }

  /** Reads the revision first (a one-key read), so that every later read is at it. */
  async pin(probe: Buffer): Promise<number> {
    if (this.revision === undefined) this.revision = (await this.read(probe, undefined, 1)).revision;
    else await this.read(probe, undefined, 1); // a compacted or future R fails here, before any write
    return this.revision;
  }

  async one(key: Buffer): Promise<LiveKeyValue | undefined> {
    return (await this.read(key, undefined, 1)).kvs[0];
  }

  async *under(prefix: Buffer): AsyncGenerator<LiveKeyValue> {
    const end = prefixEnd(prefix);
    let start = prefix.length > 0 ? prefix : NUL; // etcd refuses an empty key; "\0" is the first
    for (;;) {
      const page = await this.read(start, end, PAGE);
      yield* page.kvs;
      const last = page.kvs[page.kvs.length - 1];
      if (!page.more || last === undefined) return;
      start = Buffer.concat([last.key, Buffer.from([0])]);
    }
  }

  private async read(start: Buffer, end: Buffer | undefined, limit: number): ReturnType<EtcdClient['rangePage']> {
    try {
      return await this.etcd.rangePage(start, end, this.revision, limit);
    } catch (err) {
      if (err instanceof EtcdsnapError && err.kind === 'conflict' && this.revision !== undefined) {
        throw new EtcdsnapError(
          'conflict',
          `the plan is too old: etcd has compacted its revision ${this.revision}; run the dry run again (without --plan-revision) and apply the new plan`,
          { cause: err },
        );
      }
      throw err;
    }
  }
}

/** Keys of `keys` sorted by bytes, without repeats. */
function sortedUnique(keys: readonly Buffer[]): Buffer[] {
  const sorted = [...keys].sort(Buffer.compare);
  return sorted.filter((k, i) => i === 0 || !k.equals(sorted[i - 1] ?? Buffer.alloc(0)));
}

const inSelection = (key: Buffer, sel: RestoreSelection): boolean =>
  sel.keys !== undefined ? sel.keys.some((k) => k.equals(key)) : key.subarray(0, sel.prefix?.length ?? 0).equals(sel.prefix ?? Buffer.alloc(0));

/** Plans (and with `apply` performs) the restore of `sel` from `reader` into `etcd`; see the module. */
export async function restoreKeys(reader: SnapshotReader, etcd: EtcdClient, sel: RestoreSelection, opts: RestoreOptions): Promise<RestoreKeysResponse> {
  if ((sel.prefix === undefined) === (sel.keys === undefined)) throw new EtcdsnapError('usage', 'restore-keys needs --prefix or --key (one of the two)');
  if (sel.keys?.length === 0) throw new EtcdsnapError('usage', 'restore-keys needs at least one --key');
  const status = await reader.status();
  const snapshotRevision = sel.revision ?? status.revision;
  const deletes = sortedUnique(sel.deleteKeys);
  for (const k of deletes) {
    if (inSelection(k, sel) && (await reader.get(k, sel.revision)) !== undefined) {
      throw new EtcdsnapError(
        'usage',
        `--delete-key ${keyText(k)} is in the snapshot's selection: it would be both restored and deleted; leave it out of one of them`,
      );
    }
  }
  const live = new LiveCursor(etcd, opts.planRevision);
  const first = sel.prefix ?? sel.keys?.[0] ?? Buffer.alloc(0);
  const planRevision = await live.pin(first.length > 0 ? first : NUL); // etcd refuses an empty key
  const out: RestoreKeysResponse = {
    snapshot: opts.label,
    snapshotRevision,
    planRevision,
    applied: opts.apply,
    create: [],
    overwrite: [],
    unchanged: [],
    extra: [],
    delete: [],
    absent: [],
    conflicts: [],
  };
  const isDelete = (k: Buffer): boolean => deletes.some((d) => d.equals(k));

  /** One planned write; with apply, its transaction. */
  const write = async (action: RestoreConflict['action'], key: Buffer, liveMod: number, value: Buffer | undefined): Promise<void> => {
    out[action].push(keyText(key));
    if (!opts.apply) return;
    if (await etcd.putIfModRevision(key, liveMod, value)) return;
    const reason =
      liveMod === 0
        ? `created by someone after the plan (revision ${planRevision}); not written`
        : `changed after the plan (its mod revision was ${liveMod} at revision ${planRevision}); not ${action === 'delete' ? 'deleted' : 'written'}`;
    out.conflicts.push({ key: keyText(key), action, reason });
  };

  /** One snapshot key against its live counterpart (undefined: absent at R). */
  const restoreOne = async (snap: SnapshotKeyValue, cur: LiveKeyValue | undefined): Promise<void> => {
    if (cur === undefined) await write('create', snap.key, 0, snap.value);
    else if (cur.value.equals(snap.value)) out.unchanged.push(keyText(snap.key));
    else await write('overwrite', snap.key, cur.modRevision, snap.value);
  };

  if (sel.keys !== undefined) {
    for (const key of sortedUnique(sel.keys)) {
      if (isDelete(key)) continue;
      const snap = await reader.get(key, sel.revision);
      if (snap === undefined) continue; // not in the snapshot: nothing to restore (and never deleted)
      await restoreOne(snap, await live.one(key));
    }
  } else {
    const prefix = sel.prefix ?? Buffer.alloc(0);
    const liveKeys = live.under(prefix)[Symbol.asyncIterator]();
    let cur = await liveKeys.next();
    const liveOnly = (kv: LiveKeyValue): void => {
      if (!isDelete(kv.key)) out.extra.push(keyText(kv.key));
    };
    const opts2 = { prefix, values: true, ...(sel.revision !== undefined ? { revision: sel.revision } : {}) };
    for await (const snap of reader.entries(opts2)) {
      while (!cur.done && Buffer.compare(cur.value.key, snap.key) < 0) {
        liveOnly(cur.value);
        cur = await liveKeys.next();
      }
      const same = !cur.done && cur.value.key.equals(snap.key);
      await restoreOne(snap, same && !cur.done ? cur.value : undefined);
      if (same) cur = await liveKeys.next();
    }
    for (; !cur.done; cur = await liveKeys.next()) liveOnly(cur.value);
  }

  for (const key of deletes) {
    const cur = await live.one(key);
    if (cur === undefined) out.absent.push(keyText(key));
    else await write('delete', key, cur.modRevision, undefined);
  }
  return out;
}
