/**
 * The change log's progress in etcd (docs/point-in-time-restore.md, "One writer per
 * cluster"): the commit point of each seal, shared by every server of the cluster.
 *
 * Contract:
 * - `WRITER_KEY` is the election key of the writer (etcd/election.ts); `SEALED_KEY` holds the
 *   last committed seal, JSON `SealedRecord`. Both are ordinary keys, so they are in etcd's
 *   history and in the change log itself (a restore replays them without a lease: the
 *   election treats such a key as dead, and a record of another cluster ID is never resumed).
 * - `etcdSealCommit(etcd, term, node)` is the writer's `SealCommit` for one term: `read()`
 *   answers the record (and remembers its mod revision); `commit(r)` puts the next record
 *   only while the term lasts and the record is still the one read or last committed
 *   (fenced twice: by the election key's create revision and by the record's mod revision).
 *   It resolves false when fenced (another writer leads: nothing was written), and rejects
 *   when etcd could not be asked (the outcome is unknown: the caller treats it as fenced).
 * - `completeCommittedParts` finishes a seal a crash interrupted between its commit and its
 *   rename (below).
 * - `parseSealedRecord` is strict: any other shape is undefined (a foreign or damaged value
 *   is never resumed from).
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { EtcdClient } from '../etcd/client.js';
import type { Term } from '../etcd/election.js';
import { renameDurably } from '../util/durable.js';
import { decodeSegment, partName, segmentName } from './format.js';

export const WRITER_KEY = '/etcdsnap/changelog/writer';
export const SEALED_KEY = '/etcdsnap/changelog/sealed';

/** The last committed seal of the cluster's change log. */
export interface SealedRecord {
  /** etcd's cluster ID (decimal). */
  cluster: string;
  chain: string;
  /** The committed segment's first and last revision (`last` = `first` - 1: a chain that begins, nothing sealed yet). */
  first: number;
  last: number;
  /** When the writer saw `last` (ms). */
  lastTime: number;
  sealedAt: number;
  /** When the chain began (ms): retention's "every kept snapshot is newer than the chain". */
  since: number;
  /** The node that sealed it. */
  node: string;
}

/** What the writer needs of the commit point. */
export interface SealCommit {
  read(): Promise<SealedRecord | undefined>;
  /** Commits a seal (the record's `node` is filled in): true when recorded, false when fenced. */
  commit(r: Omit<SealedRecord, 'node'>): Promise<boolean>;
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

export function parseSealedRecord(text: string): SealedRecord | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const o = v as Record<string, unknown>;
  if (typeof o.cluster !== 'string' || !/^\d+$/.test(o.cluster)) return undefined;
  if (typeof o.chain !== 'string' || !/^[0-9a-f]{16}$/.test(o.chain)) return undefined;
  if (typeof o.node !== 'string') return undefined;
  const { first, last, lastTime, sealedAt, since } = o;
  if (!isCount(first) || !isCount(last) || !isCount(lastTime) || !isCount(sealedAt) || !isCount(since) || first < 1 || last < first - 1) return undefined;
  return { cluster: o.cluster, chain: o.chain, first, last, lastTime, sealedAt, since, node: o.node };
}

/** The record and its mod revision (0 and undefined when absent or not a record). */
export async function readSealedRecord(etcd: EtcdClient): Promise<{ record: SealedRecord | undefined; modRevision: number }> {
  const kv = (await etcd.rangePage(Buffer.from(SEALED_KEY), undefined, undefined, 1, 5000)).kvs[0];
  if (!kv) return { record: undefined, modRevision: 0 };
  return { record: parseSealedRecord(kv.value.toString('utf8')), modRevision: kv.modRevision };
}

export function etcdSealCommit(etcd: EtcdClient, term: Term, node: string): SealCommit {
  let modRevision: number | undefined;
  return {
    read: async () => {
      const r = await readSealedRecord(etcd);
      modRevision = r.modRevision;
      return r.record;
    },
    commit: async (r) => {
      if (modRevision === undefined) modRevision = (await readSealedRecord(etcd)).modRevision;
      const rev = await term.putIfLeader(SEALED_KEY, JSON.stringify({ ...r, node }), modRevision);
      if (rev === undefined) return false;
      modRevision = rev;
      return true;
    },
  };
}

/**
 * At start, before campaigning: a `.part` in `dir` whose seal (verified whole, as a sealed
 * segment) is exactly etcd's record (same chain, first and last) was committed by this
 * server just before a crash, and is given its sealed name (answered, for the uploader).
 * Any other `.part` is left for the writer, which removes it (its revisions were never
 * committed, so the next writer logs them again).
 */
export async function completeCommittedParts(dir: string, record: SealedRecord | undefined): Promise<string[]> {
  if (!record) return [];
  const part = partName(record.chain, record.first);
  const file = path.join(dir, part);
  const bytes = await fsp.readFile(file).catch(() => undefined);
  if (bytes === undefined) return [];
  const name = segmentName(record.chain, record.first, record.last);
  try {
    const seg = decodeSegment(name, bytes);
    if (seg.header.cluster !== record.cluster) return [];
  } catch {
    return []; // not sealed, or another range: not the committed segment
  }
  await renameDurably(file, path.join(dir, name));
  return [name];
}
