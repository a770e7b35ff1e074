/**
 * The change log on this server (`--etcd-changelog`, docs/point-in-time-restore.md): starts
 * the writer (changelog/writer.ts) beside the snapshot service and feeds it the service's
 * events: a successful save begins a chain (when none runs), a local retention pass removes
 * the segments no kept snapshot needs. When no chain can be resumed (none yet, another
 * cluster's, or broken by compaction) the writer asks for a snapshot now, which begins one.
 */
import type { Logger } from '../log/logger.js';
import { messageOf } from '../errors.js';
import type { EtcdClient } from '../etcd/client.js';
import { ChangeLogWriter } from '../changelog/writer.js';
import { changelogDir, pruneSegments, type KeptSnapshot } from '../changelog/segments.js';
import type { SnapshotEvent } from '../snapshot/events.js';
import { LocalStore } from '../store/local.js';

export interface ChangeLogFeature {
  /** Takes the snapshot service's events (a `SnapshotObserver`). */
  observe(e: SnapshotEvent): void;
  stop(): Promise<void>;
}

export interface ChangeLogSetup {
  etcd: EtcdClient;
  dbDir: string;
  periodMs: number;
  /** The local snapshot folder, whose kept snapshots retention keeps segments for. */
  snapshotDir: string;
  nodeName: string;
  logger: Logger;
  /** Takes a snapshot now (no chain to resume, or a chain broken by compaction). */
  snapshotNow: () => Promise<unknown>;
}

export async function startChangeLog(s: ChangeLogSetup): Promise<ChangeLogFeature> {
  const dir = changelogDir(s.dbDir);
  const writer = new ChangeLogWriter({
    etcd: s.etcd,
    dir,
    periodMs: s.periodMs,
    logger: s.logger,
    requestSnapshot: () => {
      s.snapshotNow().catch((err: unknown) =>
        s.logger.error({ err: messageOf(err) }, `change log: the snapshot that begins a new chain failed: ${messageOf(err)}`),
      );
    },
  });
  await writer.start();
  s.logger.info({ dir, period: s.periodMs }, 'etcd change log enabled (--etcd-changelog)');
  const prune = async (): Promise<void> => {
    const records = await new LocalStore(s.snapshotDir).list({ nodeName: s.nodeName });
    const kept: KeptSnapshot[] = records.flatMap((r) =>
      r.status === 'successful' && r.revision !== undefined ? [{ revision: Number(r.revision), createdAt: Date.parse(r.createdAt) }] : [],
    );
    const gone = await pruneSegments(dir, kept);
    if (gone.length > 0) s.logger.info({ segments: gone.length }, `change log: removed ${gone.length} segments older than the oldest kept snapshot`);
  };
  return {
    observe: (e) => {
      if (e.kind === 'save' && e.result === 'success' && e.revision !== undefined) writer.onSnapshot(e.revision);
      if (e.kind === 'prune' && e.store === 'local' && e.result === 'success') {
        prune().catch((err: unknown) => s.logger.warn({ err: messageOf(err) }, `change log: retention failed: ${messageOf(err)}`));
      }
    },
    stop: () => writer.stop(),
  };
}
