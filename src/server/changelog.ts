/**
 * The change log on this server (`--etcd-changelog`, docs/point-in-time-restore.md): starts
 * the writer (changelog/writer.ts) beside the snapshot service and feeds it the service's
 * events: a successful save begins a chain (when none runs), a local retention pass removes
 * the segments no kept snapshot needs. When no chain can be resumed (none yet, another
 * cluster's, or broken by compaction) the writer asks for a snapshot now, which begins one.
 * With S3 (`--etcd-s3`) each sealed segment is uploaded too (changelog/upload.ts), and
 * retention removes from S3 what it removes locally.
 */
import type { Logger } from '../log/logger.js';
import { messageOf } from '../errors.js';
import type { EtcdClient } from '../etcd/client.js';
import { ChangeLogWriter } from '../changelog/writer.js';
import { changelogDir, pruneSegments, type KeptSnapshot } from '../changelog/segments.js';
import type { SnapshotEvent } from '../snapshot/events.js';
import { LocalStore } from '../store/local.js';
import { openObjectStore } from '../store/factory.js';
import { CHANGELOG_PREFIX } from '../changelog/remote.js';
import { SegmentUploader } from '../changelog/upload.js';
import type { SnapshotEncoding } from '../model/encoding.js';
import type { S3Settings } from '../store/s3/settings.js';

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
  /** The server's S3 (`--etcd-s3`): each sealed segment is uploaded to `<folder>/changelog/` too. */
  s3?: { settings: S3Settings; encoding: SnapshotEncoding; retryDelaysMs: readonly number[] };
}

export async function startChangeLog(s: ChangeLogSetup): Promise<ChangeLogFeature> {
  const dir = changelogDir(s.dbDir);
  const uploader = s.s3
    ? new SegmentUploader({
        store: await openObjectStore(s.s3.settings, CHANGELOG_PREFIX),
        dir,
        encoding: s.s3.encoding,
        retryDelaysMs: s.s3.retryDelaysMs,
        logger: s.logger,
      })
    : undefined;
  const writer = new ChangeLogWriter({
    etcd: s.etcd,
    dir,
    periodMs: s.periodMs,
    logger: s.logger,
    ...(uploader ? { onSealed: (name: string) => uploader.enqueue(name) } : {}),
    requestSnapshot: () => {
      s.snapshotNow().catch((err: unknown) =>
        s.logger.error({ err: messageOf(err) }, `change log: the snapshot that begins a new chain failed: ${messageOf(err)}`),
      );
    },
  });
  uploader?.start();
  await writer.start();
  s.logger.info({ dir, period: s.periodMs, ...(uploader ? { s3: CHANGELOG_PREFIX } : {}) }, 'etcd change log enabled (--etcd-changelog)');
  const prune = async (): Promise<void> => {
    const records = await new LocalStore(s.snapshotDir).list({ nodeName: s.nodeName });
    const kept: KeptSnapshot[] = records.flatMap((r) =>
      r.status === 'successful' && r.revision !== undefined ? [{ revision: Number(r.revision), createdAt: Date.parse(r.createdAt) }] : [],
    );
    const gone = await pruneSegments(dir, kept);
    uploader?.prune(gone);
    if (gone.length > 0) s.logger.info({ segments: gone.length }, `change log: removed ${gone.length} segments older than the oldest kept snapshot`);
  };
  return {
    observe: (e) => {
      if (e.kind === 'save' && e.result === 'success' && e.revision !== undefined) writer.onSnapshot(e.revision);
      if (e.kind === 'prune' && e.store === 'local' && e.result === 'success') {
        prune().catch((err: unknown) => s.logger.warn({ err: messageOf(err) }, `change log: retention failed: ${messageOf(err)}`));
      }
    },
    stop: async () => {
      await writer.stop();
      await uploader?.stop();
    },
  };
}
