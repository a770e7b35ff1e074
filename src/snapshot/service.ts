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
 * - Stores: the local folder is the primary store (`LocalStore`); the S3 settings of the
 *   request or the server give 0 or 1 replica store (`ReplicaStores`, built lazily). Save,
 *   list, delete and prune treat replicas alike through `SnapshotStore`; the replica state
 *   of a local record is handled by replica-state.ts only.
 * - A failed upload is retried from the local file through a `RetryQueue` (delays
 *   `UPLOAD_RETRY_DELAYS_MS` unless injected; upload-retries.ts); `drain` cancels pending
 *   retries and waits for the running operation (aborted after its timeout) before it
 *   closes the replica stores.
 * - The snapshot is streamed from the source's first candidate member (etcd/members.ts: the
 *   server's own member; the agent's followers first); a stream that fails (`unavailable`
 *   or `integrity`: the member went down, hung or sent a bad stream) is discarded and the
 *   save starts over from the next candidate, under the same name.
 * - A failed save writes a failed record (shown by ls for 24 h) and throws; it never
 *   touches an earlier snapshot.
 * - Retention runs after scheduled saves only (on-demand saves are not pruned, as k3s), and
 *   selects only names of the naming scheme (`planRetention`); `list` also shows snapshots
 *   with other names (marked `foreignName`), which `delete` takes by name.
 * - A request's folder must be one the operator allowed (`folder`): the configured
 *   snapshot dir or a `--etcd-snapshot-api-dir`; save, list, delete and prune check it
 *   before touching anything.
 * - Outcomes are told to the optional observer as events (events.ts: save, upload, prune);
 *   a throwing observer is logged and changes nothing.
 */
import type { Logger } from '../log/logger.js';
import type { SnapshotSource } from '../etcd/members.js';
import { streamFrom } from './failover.js';
import { EtcdsnapError, messageOf } from '../errors.js';
import { LocalStore } from '../store/local.js';
import type { S3Skip } from '../store/factory.js';
import { assertSafePrefix, snapshotFileName } from '../model/naming.js';
import { resolveApiDir } from './api-dirs.js';
import { saveSnapshot } from './save.js';
import type { SnapshotEncoding } from '../model/encoding.js';
import { failedRecord, type SnapshotRecord } from '../model/records.js';
import type { S3Options } from './s3-config.js';
import { RetryQueue } from './retry-queue.js';
import { SerialExecutor } from '../util/serial.js';
import { ReplicaStores } from './replica-stores.js';
import { UploadRetries } from './upload-retries.js';
import { type CatalogContext, deleteAll, listAll } from './catalog.js';
import { pruneReplicas, settleReplicas, type ReplicaTarget } from './save-replicas.js';
import { checkPrune, pruneAll, type PruneOutcome } from './prune.js';
import type { BucketPolicy } from '../model/retention-policy.js';
import { safeObserver, saveEvent, timed, type SnapshotObserver } from './events.js';
import type { SaveProgress } from '../model/api.js';

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
  /** `--etcd-snapshot-retention-policy`: replaces `retention` (and the replicas' counts) when set. */
  retentionPolicy?: BucketPolicy;
  /** How snapshots are written unless a request says otherwise (encode.ts `mergeEncoding`). */
  encoding: SnapshotEncoding;
  nodeName: string;
}

export interface SaveOptions {
  prefix: string;
  encoding: SnapshotEncoding;
  /** An allowed folder other than the configured one (must exist; see `folder`). */
  dir?: string;
  /** Keep this many after the save (scheduled saves); 0 = no pruning. */
  retention: number;
  /** Or keep what this time-bucket policy keeps, locally and in each replica (scheduled saves). */
  retentionPolicy?: BucketPolicy;
  scheduled: boolean;
  /** Replica stores written in the same pass (and pruned after scheduled saves). */
  replicas: readonly ReplicaOptions[];
}

export interface PruneOptions {
  prefix: string;
  retention: number;
  /** A time-bucket policy: replaces `retention` and the replicas' own counts. */
  policy?: BucketPolicy;
  dir?: string;
  dryRun: boolean;
  /** Replica stores pruned too, each by its own retention (0: not pruned). */
  replicas: readonly ReplicaOptions[];
}

/**
 * The options of one replica store. S3 (`--etcd-s3`/`--s3`, at most one per request) is the
 * only kind today; another kind becomes a union member here and a line in store/factory.ts.
 */
export type ReplicaOptions = S3Options;

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
  /** Logs a foreign or odd bucket object once (the S3 store reports each key once per process). */
  readonly reportSkip = (k: S3Skip): void => this.logger.warn({ key: k.key, reason: k.reason }, k.message);
  private readonly replicas = new ReplicaStores(this.reportSkip);
  private readonly uploads: UploadRetries;
  private readonly emit: SnapshotObserver;
  /** The running save's progress (`saveProgress`). */
  private progress: SaveProgress | undefined;

  constructor(
    /** The etcd members snapshots are streamed from (etcd/members.ts). */
    private readonly source: SnapshotSource,
    readonly settings: SnapshotSettings,
    private readonly logger: Logger,
    /** Upload retries; injectable so that tests need not wait the real delays. */
    retries: RetryQueue = new RetryQueue(),
    /** Told each save, upload and prune outcome (events.ts). */
    observer?: SnapshotObserver,
  ) {
    this.emit = safeObserver(observer, logger);
    this.uploads = new UploadRetries(retries, logger, settings.nodeName, (what, fn) => this.exclusive(what, fn), this.emit);
  }

  /**
   * Resolves a folder from a request: the configured one when `dir` is not given, else the
   * allowed folder `dir` designates (the configured one or a `--etcd-snapshot-api-dir`,
   * compared by real path); any other folder is refused before anything is touched. Only
   * the default folder is created.
   */
  async folder(dir?: string): Promise<LocalStore> {
    const target = dir === undefined || dir === '' ? this.settings.dir : await resolveApiDir(dir, [this.settings.dir, ...(this.settings.apiDirs ?? [])]);
    const d = new LocalStore(target);
    await d.prepare(target === this.settings.dir && this.settings.dirIsDefault);
    return d;
  }

  /** Prepares the configured folder and removes `.part` files a crash left behind. */
  async start(): Promise<void> {
    const d = await this.folder();
    const parts = await d.discardIncomplete({ nodeName: this.settings.nodeName });
    if (parts.length > 0) this.logger.warn({ files: parts }, 'removed partial snapshot files left by an earlier run');
  }

  /**
   * At server start, for the server's own replica: builds its store (bad settings throw),
   * checks it, removes the uploads a crash left open, and re-queues uploads that failed
   * before the restart. A store that does not answer only disables uploads until it does.
   */
  async startReplica(o: S3Options): Promise<void> {
    const store = await this.replicas.get(o, false);
    this.logger.info(`Checking if S3 bucket ${o.settings.bucket} exists`);
    try {
      await store.probe();
      this.logger.info({ s3: store.describe() }, 'S3 snapshot storage is ready');
      const aborted = await store.discardIncomplete({ nodeName: this.settings.nodeName });
      if (aborted.length > 0) this.logger.warn({ snapshots: aborted }, 'aborted S3 uploads left open by an earlier run');
    } catch (err) {
      this.logger.error(
        { err: messageOf(err), bucket: o.settings.bucket, endpoint: o.settings.endpoint },
        `S3 is not usable: ${messageOf(err)}; snapshots stay local and failed uploads are recorded`,
      );
    }
    const resumed = await this.uploads.resume(store, await this.folder());
    if (resumed > 0) this.logger.info({ count: resumed }, 're-queued S3 uploads that failed before the restart');
  }

  get busy(): boolean {
    return this.inFlight !== undefined;
  }

  /**
   * The save streaming from etcd now (a copy; undefined when none runs or it still waits for
   * its turn): bytes read of about `totalBytes` (etcd's db size before the save).
   */
  saveProgress(): SaveProgress | undefined {
    return this.progress ? { ...this.progress } : undefined;
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
    const run = this.exclusive('save', () =>
      timed(
        this.emit,
        () => this.doSave(opts),
        (r, seconds, err) => saveEvent(opts.scheduled, r, seconds, err),
      ),
    );
    this.inFlight = run;
    try {
      return await run;
    } finally {
      this.inFlight = undefined;
    }
  }

  /**
   * The replicas of a save: on-demand, refused before a snapshot is taken when one cannot be
   * reached; scheduled, tried anyway (a target without store is recorded as a failed upload).
   */
  private async saveTargets(opts: SaveOptions): Promise<ReplicaTarget[]> {
    const out: ReplicaTarget[] = [];
    for (const o of opts.replicas) {
      try {
        out.push({ opts: o, store: await this.replicas.get(o, !opts.scheduled) });
      } catch (err) {
        if (!opts.scheduled) throw err;
        this.logger.error({ err: messageOf(err) }, 'S3 is not usable for this scheduled snapshot');
        out.push({ opts: o });
      }
    }
    return out;
  }

  private async doSave(opts: SaveOptions): Promise<SaveResult> {
    const prefix = assertSafePrefix(opts.prefix);
    const dir = await this.folder(opts.dir);
    const targets = await this.saveTargets(opts);
    const candidates = (await this.source.candidates()).filter((c) => !c.status.isLearner);
    const first = candidates[0];
    if (first === undefined) {
      this.logger.warn('Unable to take snapshot: not supported for learner');
      return { created: [], deleted: [] };
    }
    const status = first.status;
    let now = Math.round(Date.now() / 1000);
    let fileName = snapshotFileName(prefix, this.settings.nodeName, now, opts.encoding);
    // two saves in one second would share a name: wait for the next second
    while (await dir.exists(fileName)) {
      await sleep(1000 - (Date.now() % 1000) + 10);
      now = Math.round(Date.now() / 1000);
      fileName = snapshotFileName(prefix, this.settings.nodeName, now, opts.encoding);
    }
    const log = this.logger.child({ snapshot: fileName });
    log.info(
      { dir: dir.dir, compression: opts.encoding.compression, encrypted: opts.encoding.recipients.length > 0, scheduled: opts.scheduled },
      `Saving etcd snapshot to ${dir.filePath(fileName)}`,
    );
    const live = targets.flatMap((t) => (t.store ? [t.store] : []));
    let record: SnapshotRecord;
    let replicaErrors: Array<Error | undefined>;
    let streamedFrom = first.member.endpoint;
    const progress: SaveProgress = {
      name: fileName,
      phase: 'streaming',
      bytes: 0,
      totalBytes: status.dbSize,
      startedAt: new Date().toISOString(),
      scheduled: opts.scheduled,
    };
    this.progress = progress;
    try {
      ({ record, replicaErrors } = await streamFrom(candidates, this.logger, this.abort.signal, (c) => {
        streamedFrom = c.member.endpoint;
        return saveSnapshot(c.member, {
          fileName,
          encoding: opts.encoding,
          nodeName: this.settings.nodeName,
          primary: dir,
          replicas: live,
          status: c.status,
          signal: this.abort.signal,
          onProgress: (bytes, phase) => {
            progress.bytes = bytes;
            progress.phase = phase;
            progress.totalBytes = c.status.dbSize;
          },
        });
      }));
    } catch (err) {
      this.progress = undefined;
      const message = messageOf(err);
      log.error({ err: message }, `Failed to take etcd snapshot: ${message}`);
      await dir
        .writeRecord(failedRecord(fileName, this.settings.nodeName, new Date(now * 1000), opts.encoding, message))
        .catch((e: unknown) => log.warn({ err: messageOf(e) }, 'could not record the failed snapshot'));
      throw err;
    }
    this.progress = undefined;
    const outcome = await settleReplicas(targets, live, replicaErrors, record, log, (store, r) => this.uploads.schedule(store, dir, r, 0), this.emit);
    record = outcome.record;
    const created: SnapshotRecord[] = [record, ...outcome.copies];
    await dir.writeRecord(record);
    log.info(
      { bytes: record.size, durationMs: record.durationMs, sha256: record.sha256, revision: record.revision, endpoint: streamedFrom },
      `Snapshot ${fileName} saved`,
    );
    if (log.isLevelEnabled('debug')) {
      const m = process.memoryUsage();
      log.debug({ rss: m.rss, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers }, 'memory after save');
    }
    const policy = opts.retentionPolicy;
    const deleted = policy !== undefined || opts.retention > 0 ? await this.applyRetention(dir, prefix, opts.retention, policy) : [];
    if (opts.scheduled) deleted.push(...(await pruneReplicas(targets, prefix, this.settings.nodeName, log, this.emit, policy)));
    return outcome.uploadError !== undefined ? { created, deleted, s3Error: outcome.uploadError } : { created, deleted };
  }

  private async applyRetention(dir: LocalStore, prefix: string, keep: number, policy: BucketPolicy | undefined): Promise<string[]> {
    try {
      return (await this.doPrune({ prefix, retention: keep, ...(policy ? { policy } : {}), dir: dir.dir, dryRun: false, replicas: [] })).deleted;
    } catch (err) {
      this.logger.warn({ err: messageOf(err) }, 'snapshot retention failed');
      return [];
    }
  }

  /** Local records, failed uploads, and the snapshots in each replica (catalog.ts `listAll`). */
  async list(dir: string | undefined, replicas: readonly ReplicaOptions[], withSidecars = false): Promise<{ items: SnapshotRecord[]; s3Error?: string }> {
    return listAll(await this.folder(dir), replicas, withSidecars, this.catalog());
  }

  /** Deletes snapshots by exact file name, with their sidecars, in its turn (catalog.ts `deleteAll`). */
  async delete(names: readonly unknown[], dir: string | undefined, replicas: readonly ReplicaOptions[]): Promise<{ deleted: string[]; notFound: string[] }> {
    if (names.length === 0) throw new EtcdsnapError('usage', 'no snapshots given for removal');
    return this.exclusive('delete', async () => deleteAll(await this.folder(dir), names, replicas, this.catalog()));
  }

  private catalog(): CatalogContext<ReplicaOptions> {
    return { nodeName: this.settings.nodeName, logger: this.logger, replicaStore: (o, check) => this.replicas.get(o, check) };
  }

  /**
   * Keeps the newest `retention` snapshots of `prefix` on this node, or what `policy` keeps;
   * deletes the rest (none with `dryRun`). Answers what went and every decision (prune.ts).
   */
  async prune(opts: PruneOptions): Promise<PruneOutcome> {
    return this.exclusive('prune', () => this.doPrune(opts));
  }

  private async doPrune(opts: PruneOptions): Promise<PruneOutcome> {
    checkPrune(opts); // before the folder is touched
    const d = await this.folder(opts.dir);
    return pruneAll(d, opts, {
      nodeName: this.settings.nodeName,
      logger: this.logger,
      emit: this.emit,
      replicaStore: (o) => this.replicas.get(o),
    });
  }

  /**
   * Stops for shutdown: cancels pending upload retries, waits for the running operation and
   * those queued behind it; after `timeoutMs` a running save or retry is aborted and queued
   * ones are refused. Closes the replica stores only once nothing uses them.
   */
  async drain(timeoutMs: number): Promise<void> {
    const timer = setTimeout(() => this.abort.abort(), timeoutMs);
    try {
      await Promise.all([this.uploads.drain(timeoutMs), this.serial.run(async () => undefined)]);
    } finally {
      clearTimeout(timer);
    }
    await this.replicas.closeAll();
  }
}
