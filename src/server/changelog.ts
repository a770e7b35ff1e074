/**
 * The change log on this server (`--etcd-changelog`, docs/point-in-time-restore.md): one
 * writer per cluster. Every server with the flag campaigns for `WRITER_KEY` (etcd/election.ts,
 * lease TTL `LEASE_TTL_S`); the elected one runs a writer (changelog/writer.ts) for its term,
 * committing each seal to etcd's record (changelog/progress.ts) before its rename, and feeds
 * it the snapshot service's events: a successful save begins a chain (when none runs). When
 * no chain can be resumed (none yet, another cluster's, or broken by compaction) the writer
 * asks for a snapshot now, which begins one. A lost term aborts the writer (its unsealed
 * revisions are logged again by the next one); a fenced commit ends the term.
 * Every server prunes its own local segments when its local retention runs; with S3
 * (`--etcd-s3`) each sealed segment is uploaded too (changelog/upload.ts), and only the
 * writer prunes S3 (upload.ts `prune`, by its kept snapshots and the current chain).
 */
import type { Logger } from '../log/logger.js';
import { messageOf } from '../errors.js';
import type { EtcdClient } from '../etcd/client.js';
import { ChangeLogWriter } from '../changelog/writer.js';
import { changelogDir, pruneSegments, type KeptSnapshot } from '../changelog/segments.js';
import type { SnapshotEvent } from '../snapshot/events.js';
import { LocalStore } from '../store/local.js';
import { ensurePrivateDir } from '../util/fs.js';
import { openObjectStore } from '../store/factory.js';
import { CHANGELOG_PREFIX } from '../changelog/remote.js';
import { SegmentUploader } from '../changelog/upload.js';
import { Election, type Term } from '../etcd/election.js';
import { completeCommittedParts, etcdSealCommit, readSealedRecord, WRITER_KEY } from '../changelog/progress.js';
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

/**
 * The writer's lease TTL (s): a dead writer's successor starts at most this long after the
 * last keepalive etcd saw (plus an etcd leader election when the writer's etcd was the
 * leader); a writer that had no keepalive answer for 2/3 of it stops by itself.
 */
export const LEASE_TTL_S = 10;

export async function startChangeLog(s: ChangeLogSetup): Promise<ChangeLogFeature> {
  const dir = changelogDir(s.dbDir);
  await ensurePrivateDir(dir);
  const uploader = s.s3
    ? new SegmentUploader({
        store: await openObjectStore(s.s3.settings, CHANGELOG_PREFIX),
        dir,
        encoding: s.s3.encoding,
        retryDelaysMs: s.s3.retryDelaysMs,
        logger: s.logger,
      })
    : undefined;
  try {
    for (const name of await completeCommittedParts(dir, (await readSealedRecord(s.etcd)).record)) {
      s.logger.info({ segment: name }, `change log: completed ${name}, committed just before this server stopped`);
      uploader?.enqueue(name);
    }
  } catch (err) {
    s.logger.warn({ err: messageOf(err) }, `change log: could not read etcd's change log record at start: ${messageOf(err)}`);
  }
  let writer: ChangeLogWriter | undefined;
  const election: Election = new Election({
    etcd: s.etcd,
    key: WRITER_KEY,
    value: s.nodeName,
    ttlSeconds: LEASE_TTL_S,
    logger: s.logger,
    onElected: (term: Term) => {
      s.logger.info({ node: s.nodeName }, 'change log: this server is the writer of the cluster');
      const w = new ChangeLogWriter({
        etcd: s.etcd,
        dir,
        periodMs: s.periodMs,
        logger: s.logger,
        commit: etcdSealCommit(s.etcd, term, s.nodeName),
        onFenced: (why) => election.restart(why),
        ...(uploader ? { onSealed: (name: string) => uploader.enqueue(name) } : {}),
        requestSnapshot: () => {
          if (term.signal.aborted) return;
          s.snapshotNow().catch((err: unknown) =>
            s.logger.error({ err: messageOf(err) }, `change log: the snapshot that begins a new chain failed: ${messageOf(err)}`),
          );
        },
      });
      writer = w;
      w.start().catch((err: unknown) => {
        s.logger.error({ err: messageOf(err) }, `change log: the writer could not start: ${messageOf(err)}; trying again`);
        election.restart(`the writer could not start: ${messageOf(err)}`);
      });
    },
    onLost: () => {
      const w = writer;
      writer = undefined;
      w?.abort().catch((err: unknown) => s.logger.warn({ err: messageOf(err) }, `change log: stopping the writer failed: ${messageOf(err)}`));
    },
  });
  uploader?.start();
  election.start();
  s.logger.info({ dir, period: s.periodMs, ...(uploader ? { s3: CHANGELOG_PREFIX } : {}) }, 'etcd change log enabled (--etcd-changelog)');
  const prune = async (): Promise<void> => {
    const records = await new LocalStore(s.snapshotDir).list({ nodeName: s.nodeName });
    const kept: KeptSnapshot[] = records.flatMap((r) =>
      r.status === 'successful' && r.revision !== undefined ? [{ revision: Number(r.revision), createdAt: Date.parse(r.createdAt) }] : [],
    );
    const gone = await pruneSegments(dir, kept);
    const current = writer?.current();
    if (uploader && current) uploader.prune(gone, kept, current);
    if (gone.length > 0) s.logger.info({ segments: gone.length }, `change log: removed ${gone.length} segments older than the oldest kept snapshot`);
  };
  return {
    observe: (e) => {
      if (e.kind === 'save' && e.result === 'success' && e.revision !== undefined)
        writer?.onSnapshot(e.revision, e.createdAt !== undefined ? Date.parse(e.createdAt) : Date.now());
      if (e.kind === 'prune' && e.store === 'local' && e.result === 'success') {
        prune().catch((err: unknown) => s.logger.warn({ err: messageOf(err) }, `change log: retention failed: ${messageOf(err)}`));
      }
    },
    stop: async () => {
      await writer?.stop();
      await election.stop();
      await uploader?.stop();
    },
  };
}
