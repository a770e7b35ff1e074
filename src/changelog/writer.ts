/**
 * The change log's writer on one server (docs/point-in-time-restore.md, "The writer").
 *
 * Contract:
 * - A chain begins after a successful snapshot (`onSnapshot(revision)`): every key is watched
 *   from the snapshot's revision + 1; each revision becomes one record, appended to
 *   `<chain>-<first>.part` (0600) in the change log folder (0700).
 * - A segment is sealed every `periodMs` (when it holds records) and at `maxSegmentBytes`:
 *   footer (format.ts), fsync, rename to `<chain>-<first>-<last>.jsonl`, fsync of the folder.
 *   Records seen strictly before a segment's `sealedAt` are in it or in an earlier segment.
 * - Revisions are taken exactly once and in order: a revision below the next expected one is
 *   skipped (a resumed watch), one above it stops the watch, which starts again from the
 *   next expected revision.
 * - Memory is bounded: records go to the file through one queue; past `HIGH_WATER_BYTES`
 *   queued the watch is cancelled and starts again from the next revision once the queue
 *   has drained (etcd keeps the history meanwhile).
 * - `start` resumes from the last sealed revision + 1 (a `.part` left by a crash is removed
 *   and watched again) when the last segment belongs to this cluster, is not ahead of etcd
 *   and its next revision is not compacted; otherwise it logs why and asks for a snapshot at
 *   once (`requestSnapshot`), which begins a new chain. A watch that ends on a compacted
 *   revision ends the chain the same way.
 * - A failed write ends the chain (its `.part` removed) and logs why; the next snapshot
 *   begins a new one.
 * - With `commit` (the cluster's commit point in etcd, progress.ts; one writer per cluster):
 *   `start` resumes from etcd's record (its chain, last + 1, cluster and compaction checked
 *   as above), and from the local segments only when etcd has no record (an older version's
 *   log). A seal is committed before its rename: footer, fsync, `commit` (a txn fenced by
 *   the election), and only then the rename and `onSealed`. A commit that fails or cannot
 *   be made stops the writer and tells `onFenced(why)`: the next leader resumes from the
 *   record, so nothing is logged twice and nothing is skipped. A refused commit removes the
 *   `.part`; one whose outcome is unknown leaves it sealed, and `start` completes it when
 *   etcd's record is its range (progress.ts `completeCommittedParts`), else removes it.
 * - `abort()` (leadership lost) stops at once: nothing more is sealed, the `.part` removed.
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../log/logger.js';
import type { EtcdClient } from '../etcd/client.js';
import { type EtcdsnapError, messageOf } from '../errors.js';
import type { ChangeRecord } from '../model/changelog.js';
import { commitFile, renameDurably } from '../util/durable.js';
import { ensurePrivateDir } from '../util/fs.js';
import { encodeRecord } from './format.js';
import { type Chain, SegmentFile } from './segment-file.js';
import { removeParts } from './segments.js';
import { completeCommittedParts, type SealCommit } from './progress.js';
import { isCompacted, resumePoint } from './resume.js';

/** Queued bytes past which the watch pauses. */
export const HIGH_WATER_BYTES = 8 * 1024 * 1024;
/** Default size at which a segment is sealed before its period ends. */
export const DEFAULT_SEGMENT_BYTES = 16 * 1024 * 1024;
const RETRY_MS = 1000;

export interface ChangeLogWriterOptions {
  etcd: EtcdClient;
  dir: string;
  periodMs: number;
  maxSegmentBytes?: number;
  logger: Logger;
  /** Asked for a snapshot when the chain broke on compaction (the new chain begins after it). */
  requestSnapshot?: () => void;
  /** Told the name of each segment once it is sealed (durable); must not throw or block. */
  onSealed?: (name: string) => void;
  /** The cluster's commit point (progress.ts): seals are committed there before their rename. */
  commit?: SealCommit;
  /** Told once when a commit was fenced or failed (the writer has stopped). */
  onFenced?: (why: string) => void;
}

export class ChangeLogWriter {
  private chain: Chain | undefined;
  /** The next revision to log (meaningful while `chain` is set). */
  private next = 0;
  private lastTime = 0;
  private part: SegmentFile | undefined;
  private watch: { cancel(): Promise<void> } | undefined;
  private io: Promise<void> = Promise.resolve();
  private queued = 0;
  private paused = false;
  private starting = false;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private retry: NodeJS.Timeout | undefined;
  /** The last revision in a sealed segment (0: none yet in this process). */
  sealedThrough = 0;

  constructor(private readonly o: ChangeLogWriterOptions) {}

  private get log(): Logger {
    return this.o.logger;
  }

  /** Prepares the folder and resumes the last chain when it can (see the module's contract). */
  async start(): Promise<void> {
    await ensurePrivateDir(this.o.dir);
    if (this.o.commit) {
      // a seal whose commit's outcome was unknown (etcd did not answer) or a crash between commit and rename
      for (const name of await completeCommittedParts(this.o.dir, await this.o.commit.read())) {
        this.log.info({ segment: name }, `change log: completed ${name}: etcd's record shows its commit`);
        this.o.onSealed?.(name);
      }
    }
    const parts = await removeParts(this.o.dir);
    if (parts.length > 0) this.log.info({ files: parts }, 'change log: removed unsealed segments of an earlier run; their revisions are watched again');
    this.timer = setInterval(() => this.enqueueSeal(Date.now()), this.o.periodMs);
    this.timer.unref();
    const why = await this.resume();
    if (why !== undefined) {
      this.log.info(`change log: ${why}; a new chain begins after a snapshot taken now`);
      this.o.requestSnapshot?.();
    }
  }

  /** Resumes the newest chain (resume.ts); answers why it cannot (undefined when it resumed). */
  private async resume(): Promise<string | undefined> {
    const p = await resumePoint(this.o.etcd, this.o.dir, this.o.commit);
    if ('why' in p) return p.why;
    this.chain = { id: p.chain, cluster: p.cluster, since: p.since };
    this.next = p.next;
    this.lastTime = p.lastTime;
    this.sealedThrough = p.next - 1;
    this.log.info(
      { chain: p.chain, revision: p.next, ...(p.from !== undefined ? { from: p.from } : {}) },
      `change log: resuming chain ${p.chain} at revision ${p.next}${p.from !== undefined ? ` (etcd's record, committed by ${p.from})` : ''}`,
    );
    await this.startWatch();
    return undefined;
  }

  /** The chain being written and when it began (undefined: none now). */
  current(): { chain: string; since: number } | undefined {
    return this.chain && !this.chain.failed ? { chain: this.chain.id, since: this.chain.since } : undefined;
  }

  /** A snapshot at `revision` was saved: begins a chain after it unless one runs. */
  onSnapshot(revision: number, takenAt = Date.now()): void {
    if (this.stopped || this.chain || this.starting) return;
    this.starting = true;
    void this.begin(revision, takenAt)
      .catch((err: unknown) => this.log.error({ err: messageOf(err) }, `change log: could not begin a chain: ${messageOf(err)}`))
      .finally(() => {
        this.starting = false;
      });
  }

  private async begin(revision: number, takenAt: number): Promise<void> {
    const status = await this.o.etcd.status();
    if (this.stopped) return;
    const chain = { id: randomBytes(8).toString('hex'), cluster: status.clusterId, since: takenAt };
    if (this.o.commit) {
      // the chain's beginning is committed too (an empty range: resume at revision + 1), so
      // a writer that stops before its first seal is resumed, not restarted after a snapshot
      const begun = { cluster: chain.cluster, chain: chain.id, first: revision + 1, last: revision, lastTime: takenAt, sealedAt: takenAt, since: takenAt };
      const why = await this.o.commit.commit(begun).then(
        (ok) => (ok ? undefined : 'another server writes the change log now (the commit was fenced)'),
        (err: unknown) => `the commit of chain ${chain.id}'s beginning to etcd failed: ${messageOf(err)}`,
      );
      if (why !== undefined) {
        this.log.warn(`change log: this server stops writing: ${why}`);
        await this.halt();
        this.o.onFenced?.(why);
        return;
      }
    }
    this.chain = chain;
    this.next = revision + 1;
    this.log.info(
      { chain: this.chain.id, revision: this.next },
      `change log: chain ${this.chain.id} begins at revision ${this.next}, after the snapshot at revision ${revision}`,
    );
    await this.startWatch();
  }

  private compacted(revision: number): Promise<boolean> {
    return isCompacted(this.o.etcd, revision);
  }

  private async startWatch(): Promise<void> {
    if (this.stopped || !this.chain || this.watch) return;
    try {
      this.watch = await this.o.etcd.watchChanges(this.next, { records: (rs) => this.accept(rs), end: (err) => this.onEnd(err) });
    } catch (err) {
      this.log.warn({ err: messageOf(err) }, 'change log: watch failed; retrying');
      this.later();
    }
  }

  private later(): void {
    if (this.stopped || this.retry) return;
    this.retry = setTimeout(() => {
      this.retry = undefined;
      void this.startWatch();
    }, RETRY_MS);
  }

  private accept(rs: readonly ChangeRecord[]): void {
    const chain = this.chain;
    for (const r of rs) {
      if (!chain || r.revision < this.next) continue;
      if (r.revision > this.next) {
        this.log.warn({ expected: this.next, got: r.revision }, 'change log: the watch skipped a revision; watching again from the expected one');
        this.restartWatch();
        return;
      }
      const time = Math.max(r.time, this.lastTime);
      this.lastTime = time;
      this.next = r.revision + 1;
      const line = encodeRecord({ ...r, time });
      this.queued += line.length;
      const rev = r.revision;
      this.io = this.io.then(() => this.append(chain, rev, time, line)).catch((err: unknown) => this.fail(err));
    }
    if (this.queued > HIGH_WATER_BYTES && !this.paused) {
      this.paused = true;
      this.restartWatch();
    }
  }

  /** Stops the watch and starts it again from `next` once the queue has drained. */
  private restartWatch(): void {
    const w = this.watch;
    this.watch = undefined;
    void (async () => {
      await w?.cancel();
      await this.io;
      this.paused = false;
      await this.startWatch();
    })();
  }

  private onEnd(err: EtcdsnapError): void {
    this.watch = undefined;
    if (this.stopped || !this.chain) return;
    void this.compacted(this.next).then((gone) => {
      if (!gone || !this.chain) {
        this.log.warn({ err: err.message }, 'change log: the watch ended; watching again');
        this.later();
        return;
      }
      this.log.warn(
        { chain: this.chain.id, revision: this.next },
        `change log: revision ${this.next} was compacted before it was logged; chain ${this.chain.id} ends at revision ${this.next - 1}, and a new chain begins after a snapshot taken now`,
      );
      this.endChain();
      this.o.requestSnapshot?.();
    });
  }

  /** Ends the chain: what was received is sealed, nothing more is watched. */
  private endChain(): void {
    this.chain = undefined;
    this.enqueueSeal(Date.now());
  }

  private async append(chain: Chain, rev: number, time: number, line: Buffer): Promise<void> {
    try {
      await this.appendLine(chain, rev, time, line);
    } finally {
      this.queued = Math.max(0, this.queued - line.length);
    }
  }

  /** Appends a record of `chain` (taken when it was received: a chain that ended since still gets its records). */
  private async appendLine(chain: Chain, rev: number, time: number, line: Buffer): Promise<void> {
    if (chain.failed) return;
    if (this.part && this.part.chain !== chain) await this.seal(this.part.lastTime);
    this.part ??= await SegmentFile.create(this.o.dir, chain, rev, time);
    const p = this.part;
    await p.append(line, rev, time);
    if (p.bytes >= (this.o.maxSegmentBytes ?? DEFAULT_SEGMENT_BYTES)) await this.seal(time);
  }

  /** Queues the seal of the open segment: records seen before `sealedAt` are in it. */
  private enqueueSeal(sealedAt: number): void {
    this.io = this.io.then(() => (this.part ? this.seal(sealedAt) : undefined)).catch((err: unknown) => this.fail(err));
  }

  private async seal(sealedAt: number): Promise<void> {
    const p = this.part;
    if (!p) return;
    const at = await p.writeFooter(sealedAt);
    const name = p.sealedName;
    if (this.o.commit) {
      await p.sync();
      await p.close();
      const rec = { cluster: p.chain.cluster, chain: p.chain.id, first: p.first, last: p.last, lastTime: p.lastTime, sealedAt: at, since: p.chain.since };
      const outcome = await this.o.commit.commit(rec).then(
        (ok) => (ok ? undefined : { why: 'another server writes the change log now (the commit was fenced)', known: true }),
        (err: unknown) => ({ why: `the commit of ${name} to etcd failed: ${messageOf(err)}`, known: false }),
      );
      if (outcome !== undefined) return this.fenced(p, outcome.why, outcome.known);
      await renameDurably(p.file, path.join(this.o.dir, name));
    } else {
      await p.close();
      await commitFile(p.file, path.join(this.o.dir, name));
    }
    this.part = undefined;
    this.sealedThrough = p.last;
    this.log.debug({ segment: name, records: p.records }, `change log: sealed ${name}`);
    this.o.onSealed?.(name);
  }

  /**
   * A commit was refused (`known`: the `.part` is removed) or its outcome is unknown (etcd did
   * not answer: the sealed `.part` stays, and the next start, of a term or of the server,
   * completes it when etcd's record shows its commit, else removes it).
   */
  private async fenced(p: SegmentFile, why: string, known: boolean): Promise<void> {
    this.part = undefined;
    if (known) await fsp.rm(p.file, { force: true });
    this.log.warn(
      { segment: p.file, first: p.first, last: p.last },
      known
        ? `change log: this server stops writing: ${why}; the segment's revisions are left to the next writer`
        : `change log: this server stops writing: ${why}; the sealed segment stays until etcd's record says whether it was committed`,
    );
    await this.halt();
    this.o.onFenced?.(why);
  }

  /** Stops everything without sealing: the chain ends, queued records are dropped, the watch cancelled. */
  private async halt(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.retry) clearTimeout(this.retry);
    if (this.chain) this.chain.failed = true;
    this.chain = undefined;
    const w = this.watch;
    this.watch = undefined;
    await w?.cancel();
  }

  /**
   * Leadership was lost: stops at once without sealing; the open `.part` is removed (its
   * revisions belong to the next writer).
   */
  async abort(): Promise<void> {
    if (this.part) this.part.chain.failed = true;
    await this.halt();
    await this.io.catch(() => undefined);
    const p = this.part;
    this.part = undefined;
    await p?.discard();
  }

  private async fail(err: unknown): Promise<void> {
    this.log.error({ err: messageOf(err) }, `change log: writing failed, the chain ends here: ${messageOf(err)}; a new chain begins after the next snapshot`);
    const p = this.part;
    this.part = undefined;
    if (this.chain) this.chain.failed = true;
    if (p) p.chain.failed = true;
    this.chain = undefined;
    this.queued = 0;
    const w = this.watch;
    this.watch = undefined;
    await w?.cancel();
    await p?.discard();
  }

  /** Stops watching and seals what was received. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.retry) clearTimeout(this.retry);
    const w = this.watch;
    this.watch = undefined;
    await w?.cancel();
    this.enqueueSeal(Date.now());
    await this.io;
  }
}
