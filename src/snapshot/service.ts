/**
 * Snapshot operations of one server: save (single-flight), list, delete, prune. Used by the
 * scheduler and by the supervisor API; knows folders and records, not HTTP.
 *
 * Contract:
 * - One operation at a time per server: save, prune, delete and upload retries run one
 *   after the other (`SerialExecutor`). A save while another save runs or waits throws
 *   `conflict` ("snapshot save already in progress"); any other operation, and a save
 *   requested during a prune or delete, waits for its turn (logged when it has to wait).
 *   Retention after a save runs inside the save's turn.
 * - A failed upload is retried from the local file through a `RetryQueue` (delays
 *   `UPLOAD_RETRY_DELAYS_MS` unless injected); `drain` cancels pending retries and waits for
 *   the running operation (aborted after its timeout) before it destroys the S3 clients.
 * - A failed save writes a failed record (shown by ls for 24 h) and throws; it never
 *   touches an earlier snapshot.
 * - Retention runs after scheduled saves only (on-demand saves are not pruned, as k3s), and
 *   selects only names of the naming scheme (`planRetention`); `list` also shows snapshots
 *   with other names (marked `foreignName`), which `delete` takes by name.
 * - A request's folder must be one the operator allowed (`folder`): the configured
 *   snapshot dir or a `--etcd-snapshot-api-dir`; save, list, delete and prune check it
 *   before touching anything.
 */
import type { Logger } from '../log/logger.js';
import type { EtcdClient } from '../etcd/client.js';
import { EtcdsnapError, messageOf } from '../errors.js';
import { LocalSnapshotDir } from '../store/local.js';
import { planRetention } from '../retention/policy.js';
import { assertSafeName, assertSafePrefix, parseSnapshotName, snapshotFileName } from '../model/naming.js';
import { resolveApiDir } from './api-dirs.js';
import { saveSnapshot } from './save.js';
import { createdAtFromName, sortRecords, type SnapshotRecord } from '../model/records.js';
import { S3Store } from '../store/s3.js';
import type { S3Options } from './s3-config.js';
import { deleteFromS3, listS3Records, pruneS3, putSidecar, reupload, type S3Skip } from './s3-ops.js';
import { RetryQueue } from './retry-queue.js';
import { SerialExecutor } from '../util/serial.js';

export interface SnapshotSettings {
  /** Default snapshot folder (`${data-dir}/server/db/snapshots` unless set). */
  dir: string;
  dirIsDefault: boolean;
  /**
   * Folders besides `dir` that a request's `dir` may name (`--etcd-snapshot-api-dir`);
   * anything else is refused (see `resolveApiDir`).
   */
  apiDirs?: readonly string[];
  /** Prefix of scheduled snapshots (`--etcd-snapshot-name`). */
  name: string;
  retention: number;
  compress: boolean;
  nodeName: string;
}

export interface SaveOptions {
  prefix: string;
  compress: boolean;
  /** An allowed folder other than the configured one (must exist; see `folder`). */
  dir?: string;
  /** Keep this many after the save (scheduled saves); 0 = no pruning. */
  retention: number;
  scheduled: boolean;
  /** Upload to S3 in the same pass (and apply S3 retention after scheduled saves). */
  s3?: S3Options;
}

export interface PruneOptions {
  prefix: string;
  retention: number;
  dir?: string;
  dryRun: boolean;
  s3?: S3Options;
}

export interface SaveResult {
  created: SnapshotRecord[];
  deleted: string[];
  /** Why the S3 upload failed (the local snapshot is kept and the upload retried). */
  s3Error?: string;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class SnapshotService {
  /** The save that runs or waits for its turn (a second one is refused). */
  private inFlight: Promise<unknown> | undefined;
  /** Aborted by `drain` after its timeout: stops a running save, refuses queued operations. */
  private readonly abort = new AbortController();
  private readonly serial = new SerialExecutor();
  /** What the serial executor runs now, for the "waits" log line. */
  private current: string | undefined;
  private readonly stores = new Map<string, S3Store>();
  /** Logs a foreign or odd bucket object once (s3-ops reports each key once per process). */
  readonly reportSkip = (k: S3Skip): void => this.logger.warn({ key: k.key, reason: k.reason }, k.message);

  constructor(
    private readonly etcd: EtcdClient,
    readonly settings: SnapshotSettings,
    private readonly logger: Logger,
    /** Upload retries; injectable so that tests need not wait the real delays. */
    private readonly retries: RetryQueue = new RetryQueue(),
  ) {}

  /**
   * Builds the S3 store of a request and checks that its bucket answers, before anything
   * is done: a request whose S3 cannot be reached is refused with the reason.
   */
  async s3Store(o: S3Options, check = true): Promise<S3Store> {
    let store: S3Store;
    try {
      store = this.cachedStore(o);
      if (check) await store.checkBucket();
    } catch (err) {
      throw new EtcdsnapError(err instanceof EtcdsnapError && err.kind === 'config' ? 'config' : 'unavailable', `failed to initialize S3 client: ${messageOf(err)}`, { cause: err });
    }
    return store;
  }

  /**
   * S3 clients are reused per settings (at most 5, least recently used dropped), as k3s
   * does: a new client per save would leak its connection pool until GC, every 2 seconds
   * on a busy schedule.
   */
  private cachedStore(o: S3Options): S3Store {
    const key = JSON.stringify(o.settings);
    const hit = this.stores.get(key);
    if (hit) {
      this.stores.delete(key);
      this.stores.set(key, hit);
      return hit;
    }
    const store = S3Store.create(o.settings);
    this.stores.set(key, store);
    if (this.stores.size > 5) {
      const [oldestKey, oldest] = this.stores.entries().next().value as [string, S3Store];
      this.stores.delete(oldestKey);
      oldest.destroy();
    }
    return store;
  }

  /**
   * Resolves a folder from a request: the configured one when `dir` is not given, else the
   * allowed folder `dir` designates (the configured one or a `--etcd-snapshot-api-dir`,
   * compared by real path); any other folder is refused before anything is touched. Only
   * the default folder is created.
   */
  async folder(dir?: string): Promise<LocalSnapshotDir> {
    const target = dir === undefined || dir === '' ? this.settings.dir : await resolveApiDir(dir, [this.settings.dir, ...(this.settings.apiDirs ?? [])]);
    const d = new LocalSnapshotDir(target);
    await d.prepare(target === this.settings.dir && this.settings.dirIsDefault);
    return d;
  }

  /** Prepares the configured folder and removes `.part` files a crash left behind. */
  async start(): Promise<void> {
    const d = await this.folder();
    const parts = await d.removeLeftoverParts();
    if (parts.length > 0) this.logger.warn({ files: parts }, 'removed partial snapshot files left by an earlier run');
  }

  get busy(): boolean {
    return this.inFlight !== undefined;
  }

  /**
   * Runs `fn` in its turn (after the operations submitted before it). Refuses with
   * `unavailable` when its turn comes after `drain` aborted.
   */
  private exclusive<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (this.serial.busy) {
      this.logger.info({ operation: what, running: this.current }, `snapshot ${what} waits for the running snapshot ${this.current ?? 'operation'} to finish`);
    }
    return this.serial.run(async () => {
      if (this.abort.signal.aborted) throw new EtcdsnapError('unavailable', `snapshot ${what} not started: the server is shutting down`);
      this.current = what;
      try {
        return await fn();
      } finally {
        this.current = undefined;
      }
    });
  }

  async save(opts: SaveOptions): Promise<SaveResult> {
    if (this.inFlight) throw new EtcdsnapError('conflict', 'snapshot save already in progress');
    const run = this.exclusive('save', () => this.doSave(opts));
    this.inFlight = run;
    try {
      return await run;
    } finally {
      this.inFlight = undefined;
    }
  }

  private async doSave(opts: SaveOptions): Promise<SaveResult> {
    const prefix = assertSafePrefix(opts.prefix);
    const dir = await this.folder(opts.dir);
    // on-demand: refuse before taking a snapshot when S3 cannot be reached; scheduled: try
    // anyway, a failed upload is recorded and retried
    const store = opts.s3 ? await this.s3Store(opts.s3, !opts.scheduled).catch((err: unknown) => {
      if (!opts.scheduled) throw err;
      this.logger.error({ err: messageOf(err) }, 'S3 is not usable for this scheduled snapshot');
      return undefined;
    }) : undefined;
    const status = await this.etcd.status();
    if (status.isLearner) {
      this.logger.warn('Unable to take snapshot: not supported for learner');
      return { created: [], deleted: [] };
    }
    let now = Math.round(Date.now() / 1000);
    let fileName = snapshotFileName(prefix, this.settings.nodeName, now, opts.compress);
    // two saves in one second would share a name: wait for the next second
    while (await dir.exists(fileName)) {
      await sleep(1000 - (Date.now() % 1000) + 10);
      now = Math.round(Date.now() / 1000);
      fileName = snapshotFileName(prefix, this.settings.nodeName, now, opts.compress);
    }
    const log = this.logger.child({ snapshot: fileName });
    log.info({ dir: dir.dir, compress: opts.compress, scheduled: opts.scheduled }, `Saving etcd snapshot to ${dir.filePath(fileName)}`);
    let record: SnapshotRecord;
    let s3Error: Error | undefined;
    try {
      const outcome = await saveSnapshot(this.etcd, {
        fileName,
        compress: opts.compress,
        nodeName: this.settings.nodeName,
        dir,
        status,
        signal: this.abort.signal,
        ...(store ? { s3: store } : {}),
      });
      record = outcome.record;
      s3Error = outcome.s3Error;
    } catch (err) {
      const message = messageOf(err);
      log.error({ err: message }, `Failed to take etcd snapshot: ${message}`);
      await dir
        .writeRecord({
          name: fileName,
          location: '',
          nodeName: this.settings.nodeName,
          createdAt: createdAtFromName(fileName, new Date(now * 1000)),
          size: 0,
          compressed: opts.compress,
          status: 'failed',
          message,
        })
        .catch((e: unknown) => log.warn({ err: messageOf(e) }, 'could not record the failed snapshot'));
      throw err;
    }
    const created: SnapshotRecord[] = [record];
    if (opts.s3 && !store) s3Error = new Error('S3 is not reachable');
    if (opts.s3) {
      const location = store ? store.location(fileName) : `s3://${opts.s3.settings.bucket}/${fileName}`;
      if (!s3Error && store) {
        try {
          await putSidecar(store, record);
        } catch (err) {
          s3Error = err instanceof Error ? err : new Error(String(err));
        }
      }
      record.s3 = { location, status: s3Error ? 'failed' : 'successful', attempts: 1, updatedAt: new Date().toISOString(), ...(s3Error ? { message: messageOf(s3Error) } : {}) };
      if (s3Error) {
        log.error({ err: messageOf(s3Error), location }, `Error received during snapshot upload to S3: ${messageOf(s3Error)}`);
        if (store) this.scheduleRetry(store, dir, record, 0);
      } else {
        log.info({ location }, `Snapshot ${fileName} uploaded to S3`);
        created.push({ ...record, location, s3: undefined });
      }
    }
    await dir.writeRecord(record);
    log.info({ bytes: record.size, durationMs: record.durationMs, sha256: record.sha256, revision: record.revision }, `Snapshot ${fileName} saved`);
    if (log.isLevelEnabled('debug')) {
      const m = process.memoryUsage();
      log.debug({ rss: m.rss, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers }, 'memory after save');
    }
    const deleted = opts.retention > 0 ? await this.applyRetention(dir, prefix, opts.retention) : [];
    // S3 retention runs even after a failed upload (the bucket may be full), as k3s
    if (opts.scheduled && opts.s3 && store && opts.s3.retention > 0) {
      try {
        const gone = await pruneS3(store, prefix, this.settings.nodeName, opts.s3.retention, false, this.reportSkip);
        for (const n of gone) log.info({ snapshot: n }, `Removing S3 snapshot ${store.location(n)}`);
        deleted.push(...gone.map((n) => store.location(n)));
      } catch (err) {
        log.warn({ err: messageOf(err) }, 'S3 snapshot retention failed');
      }
    }
    return s3Error ? { created, deleted, s3Error: `upload to ${record.s3?.location ?? 'S3'} failed: ${messageOf(s3Error)}; it will be retried` } : { created, deleted };
  }

  /**
   * Queues attempt `attempt + 2` of an upload that failed (`attempt` retries ago); logs
   * when the attempts are used up, or when the queue is closed (the record stays failed and
   * `resumeRetries` picks it up at the next start).
   */
  private scheduleRetry(store: S3Store, dir: LocalSnapshotDir, record: SnapshotRecord, attempt: number): void {
    const log = this.logger.child({ snapshot: record.name });
    const r = this.retries.schedule((signal) => this.exclusive('upload retry', () => this.retryUpload(store, dir, record, attempt, signal)), attempt);
    if (r.scheduled) {
      log.warn({ retryInMs: r.delayMs, attempt: attempt + 2 }, `will retry the S3 upload of ${record.name}`);
    } else if (r.reason === 'exhausted') {
      log.error({ attempts: attempt + 1 }, `giving up uploading ${record.name} to S3 after ${attempt + 1} attempts; the local snapshot is kept`);
    } else {
      log.info(`not retrying the S3 upload of ${record.name} now: the server is shutting down (it is retried at the next start)`);
    }
  }

  /** One retry: re-reads the local record, re-uploads the file, records the outcome. */
  private async retryUpload(store: S3Store, dir: LocalSnapshotDir, record: SnapshotRecord, attempt: number, signal: AbortSignal): Promise<void> {
    const log = this.logger.child({ snapshot: record.name });
    const current = await dir.readRecord(record.name);
    if (!current || current.status !== 'successful' || !(await dir.exists(record.name))) {
      log.info('the local snapshot is gone; not retrying its upload');
      return;
    }
    const s3 = { location: store.location(record.name), attempts: attempt + 2, updatedAt: new Date().toISOString() };
    try {
      await reupload(store, dir, current, this.settings.nodeName, signal);
      await dir.writeRecord({ ...current, s3: { ...s3, status: 'successful' } });
      log.info({ location: s3.location, attempt: attempt + 2 }, `Snapshot ${record.name} uploaded to S3 on retry`);
    } catch (err) {
      await dir.writeRecord({ ...current, s3: { ...s3, status: 'failed', message: messageOf(err) } }).catch(() => undefined);
      log.error({ err: messageOf(err), attempt: attempt + 2 }, `retry of the S3 upload of ${record.name} failed: ${messageOf(err)}`);
      this.scheduleRetry(store, dir, current, attempt + 1);
    }
  }

  /** Re-queues uploads that failed before a restart (local sidecars marked failed for S3). */
  async resumeRetries(store: S3Store): Promise<number> {
    const dir = await this.folder();
    let n = 0;
    for (const r of await dir.list(this.settings.nodeName)) {
      if (r.status === 'successful' && r.s3?.status === 'failed' && r.s3.location === store.location(r.name)) {
        this.scheduleRetry(store, dir, r, 0);
        n++;
      }
    }
    return n;
  }

  private async applyRetention(dir: LocalSnapshotDir, prefix: string, keep: number): Promise<string[]> {
    try {
      return (await this.doPrune({ prefix, retention: keep, dir: dir.dir, dryRun: false })).deleted;
    } catch (err) {
      this.logger.warn({ err: messageOf(err) }, 'snapshot retention failed');
      return [];
    }
  }

  /**
   * Local records, failed S3 uploads, and (with `s3`) the snapshots in the bucket. The
   * table needs only the listing; `withSidecars` (json/yaml) also reads S3 sidecars.
   */
  async list(dir?: string, s3?: S3Options, withSidecars = false): Promise<{ items: SnapshotRecord[]; s3Error?: string }> {
    const d = await this.folder(dir);
    const local = await d.list(this.settings.nodeName);
    let remote: SnapshotRecord[] = [];
    let s3Error: string | undefined;
    if (s3) {
      // an S3 that does not answer must not hide the local snapshots (nor the failed uploads)
      try {
        remote = await listS3Records(await this.s3Store(s3, false), withSidecars, this.reportSkip);
      } catch (err) {
        s3Error = `cannot list snapshots in S3: ${messageOf(err)}`;
        this.logger.warn({ err: messageOf(err) }, s3Error);
      }
    }
    const inS3 = new Set(remote.map((r) => r.location));
    const failedUploads: SnapshotRecord[] = local
      .filter((r) => r.s3?.status === 'failed' && !inS3.has(r.s3.location))
      .map((r) => ({ ...r, location: r.s3?.location ?? '', status: 'failed', message: r.s3?.message ?? 'upload failed', s3: undefined }));
    const items = sortRecords([...local, ...failedUploads, ...remote]);
    return s3Error ? { items, s3Error } : { items };
  }

  /**
   * Deletes snapshots by exact file name (with their sidecars): any name `list` shows. A
   * plain file name only; a local file outside the naming scheme that is not a snapshot is
   * refused before anything is deleted (`LocalSnapshotDir.assertDeletable`). In S3 only
   * names of the naming scheme are deleted (the bucket listing shows no others).
   */
  async delete(names: readonly unknown[], dir?: string, s3?: S3Options): Promise<{ deleted: string[]; notFound: string[] }> {
    if (names.length === 0) throw new EtcdsnapError('usage', 'no snapshots given for removal');
    return this.exclusive('delete', () => this.doDelete(names, dir, s3));
  }

  private async doDelete(names: readonly unknown[], dir?: string, s3?: S3Options): Promise<{ deleted: string[]; notFound: string[] }> {
    const safe = names.map((n) => assertSafeName(n));
    const d = await this.folder(dir);
    for (const name of safe) await d.assertDeletable(name);
    const store = s3 ? await this.s3Store(s3) : undefined;
    const deleted: string[] = [];
    const found = new Set<string>();
    for (const name of safe) {
      if (await d.remove(name)) {
        this.logger.info({ snapshot: name }, `Snapshot ${name} deleted locally`);
        deleted.push(name);
        found.add(name);
      } else {
        this.logger.info({ snapshot: name }, `Snapshot ${name} not found locally`);
      }
    }
    if (store) {
      for (const name of await deleteFromS3(store, safe.filter((n) => parseSnapshotName(n) !== undefined))) {
        this.logger.info({ snapshot: name }, `Snapshot ${name} deleted from S3`);
        deleted.push(store.location(name));
        found.add(name);
      }
    }
    return { deleted, notFound: safe.filter((n) => !found.has(n)) };
  }

  /** Keeps the newest `retention` snapshots of `prefix` on this node; deletes the rest. */
  async prune(opts: PruneOptions): Promise<{ deleted: string[] }> {
    return this.exclusive('prune', () => this.doPrune(opts));
  }

  private async doPrune(opts: PruneOptions): Promise<{ deleted: string[] }> {
    const prefix = assertSafePrefix(opts.prefix);
    if (!Number.isInteger(opts.retention) || opts.retention < 1) {
      throw new EtcdsnapError('usage', `invalid snapshot retention ${opts.retention}: keep at least 1`);
    }
    const d = await this.folder(opts.dir);
    const records = await d.list(this.settings.nodeName);
    const plan = planRetention(
      records.filter((r) => r.status === 'successful').map((r) => r.name),
      { prefix, nodeName: this.settings.nodeName, keep: opts.retention },
    );
    this.logger.info({ retention: opts.retention, prefix, dir: d.dir, remove: plan.remove.length, dryRun: opts.dryRun }, `Applying snapshot retention=${opts.retention} to local snapshots with prefix ${prefix} in ${d.dir}`);
    if (!opts.dryRun) {
      for (const name of plan.remove) {
        this.logger.info({ snapshot: name }, `Removing local snapshot ${name}`);
        await d.remove(name);
      }
    }
    const deleted = [...plan.remove];
    if (opts.s3 && opts.s3.retention > 0) {
      const store = await this.s3Store(opts.s3);
      this.logger.info({ retention: opts.s3.retention, prefix }, `Applying snapshot retention=${opts.s3.retention} to snapshots stored in ${store.describe()} (this node only)`);
      const gone = await pruneS3(store, prefix, this.settings.nodeName, opts.s3.retention, opts.dryRun, this.reportSkip);
      deleted.push(...gone.map((n) => store.location(n)));
    }
    return { deleted };
  }

  /**
   * Stops for shutdown: cancels pending upload retries, waits for the running operation and
   * those queued behind it; after `timeoutMs` a running save or retry is aborted and queued
   * ones are refused. Destroys the S3 clients only once nothing uses them.
   */
  async drain(timeoutMs: number): Promise<void> {
    const timer = setTimeout(() => this.abort.abort(), timeoutMs);
    try {
      await Promise.all([this.retries.drain(timeoutMs), this.serial.run(async () => undefined)]);
    } finally {
      clearTimeout(timer);
    }
    for (const st of this.stores.values()) st.destroy();
    this.stores.clear();
  }
}
