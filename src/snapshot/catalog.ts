/**
 * Listing and deleting snapshots across the local folder and the replica stores, for
 * `SnapshotService` (which runs delete in its turn, `exclusive`).
 *
 * Contract:
 * - `listAll`: the local records, a failed-upload entry for each local snapshot whose replica
 *   copy failed and is not in the replica, and each replica's snapshots, sorted. A replica
 *   that does not answer never hides the local part: its error comes back as `s3Error`.
 *   `withRecords` (json/yaml) also reads the replicas' records.
 * - `deleteAll`: exact file names (with their sidecars), any name `listAll` shows. Every name
 *   is checked (a plain file name; locally a file outside the naming scheme must be a
 *   snapshot, `LocalStore.assertDeletable`) and every replica store is opened before anything
 *   is deleted. In a replica only names of the naming scheme are deleted (its listing shows
 *   no others). Answers the local names and replica locations removed, and the names found
 *   nowhere.
 */
import type { Logger } from '../log/logger.js';
import { messageOf } from '../errors.js';
import type { LocalStore } from '../store/local.js';
import { isStoreName, type SnapshotStore } from '../store/store.js';
import { assertSafeName, parseSnapshotName } from '../model/naming.js';
import { sortRecords, type SnapshotRecord } from '../model/records.js';
import { failedUploads } from './replica-state.js';

/** What listing and deleting need of the service. */
export interface CatalogContext<R> {
  nodeName: string;
  logger: Logger;
  /**
   * The replica store of these settings (built lazily, shared with the service); with
   * `check`, its bucket must answer first (a delete is refused with the reason, a listing
   * reports it as `s3Error`).
   */
  replicaStore: (o: R, check: boolean) => Promise<SnapshotStore>;
}

export async function listAll<R>(
  dir: LocalStore,
  replicas: readonly R[],
  withRecords: boolean,
  ctx: CatalogContext<R>,
): Promise<{ items: SnapshotRecord[]; s3Error?: string }> {
  const local = await dir.list({ nodeName: ctx.nodeName });
  const remote: SnapshotRecord[] = [];
  let s3Error: string | undefined;
  for (const o of replicas) {
    try {
      const store = await ctx.replicaStore(o, false);
      remote.push(...(await store.list({ nodeName: ctx.nodeName, withRecords })));
    } catch (err) {
      s3Error = `cannot list snapshots in S3: ${messageOf(err)}`;
      ctx.logger.warn({ err: messageOf(err) }, s3Error);
    }
  }
  const items = sortRecords([...local, ...failedUploads(local, new Set(remote.map((r) => r.location))), ...remote]);
  return s3Error ? { items, s3Error } : { items };
}

export async function deleteAll<R>(
  dir: LocalStore,
  names: readonly unknown[],
  replicas: readonly R[],
  ctx: CatalogContext<R>,
): Promise<{ deleted: string[]; notFound: string[] }> {
  const safe = names.map((n) => assertSafeName(n));
  for (const name of safe) await dir.assertDeletable(name);
  const stores: SnapshotStore[] = [];
  for (const o of replicas) stores.push(await ctx.replicaStore(o, true));
  const deleted: string[] = [];
  const found = new Set<string>();
  for (const name of safe) {
    if (await dir.remove(name)) {
      ctx.logger.info({ snapshot: name }, `Snapshot ${name} deleted locally`);
      deleted.push(name);
      found.add(name);
    } else {
      ctx.logger.info({ snapshot: name }, `Snapshot ${name} not found locally`);
    }
  }
  for (const store of stores) {
    for (const name of await store.delete(safe.filter((n) => parseSnapshotName(n) !== undefined && isStoreName(n)))) {
      ctx.logger.info({ snapshot: name }, `Snapshot ${name} deleted from S3`);
      deleted.push(store.location(name));
      found.add(name);
    }
  }
  return { deleted, notFound: safe.filter((n) => !found.has(n)) };
}
