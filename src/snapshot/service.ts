/**
 * Snapshot operations of one server: save (single-flight), list, delete, prune. Used by the
 * scheduler and by the supervisor API; knows folders and records, not HTTP.
 *
 * Contract:
 * - One save at a time per server: a save while another runs throws `conflict`
 *   ("snapshot save already in progress").
 * - A failed save writes a failed record (shown by ls for 24 h) and throws; it never
 *   touches an earlier snapshot.
 * - Retention runs after scheduled saves only (on-demand saves are not pruned, as k3s).
 */
import path from 'node:path';
import type { Logger } from '../log/logger.js';
import type { EtcdClient } from '../etcd/client.js';
import { EtcdsnapError, messageOf } from '../errors.js';
import { LocalSnapshotDir } from '../store/local.js';
import { planRetention } from '../retention/policy.js';
import { assertSafeName, assertSafePrefix, parseSnapshotName, snapshotFileName } from './naming.js';
import { saveSnapshot } from './save.js';
import { sortRecords, type SnapshotRecord } from './records.js';

export interface SnapshotSettings {
  /** Default snapshot folder (`${data-dir}/server/db/snapshots` unless set). */
  dir: string;
  dirIsDefault: boolean;
  /** Prefix of scheduled snapshots (`--etcd-snapshot-name`). */
  name: string;
  retention: number;
  compress: boolean;
  nodeName: string;
}

export interface SaveOptions {
  prefix: string;
  compress: boolean;
  /** A folder other than the configured one (must exist). */
  dir?: string;
  /** Keep this many after the save (scheduled saves); 0 = no pruning. */
  retention: number;
  scheduled: boolean;
}

export interface SaveResult {
  created: SnapshotRecord[];
  deleted: string[];
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class SnapshotService {
  private inFlight: Promise<unknown> | undefined;
  private abort = new AbortController();

  constructor(
    private readonly etcd: EtcdClient,
    readonly settings: SnapshotSettings,
    private readonly logger: Logger,
  ) {}

  /** Resolves a folder from a request: the configured one, or an existing absolute path. */
  async folder(dir?: string): Promise<LocalSnapshotDir> {
    if (dir === undefined || dir === '' || path.resolve(dir) === this.settings.dir) {
      const d = new LocalSnapshotDir(this.settings.dir);
      await d.prepare(this.settings.dirIsDefault);
      return d;
    }
    if (!path.isAbsolute(dir) || dir.includes('\0')) throw new EtcdsnapError('usage', `invalid snapshot dir "${dir}": give an absolute path`);
    const d = new LocalSnapshotDir(path.resolve(dir));
    await d.prepare(false);
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

  async save(opts: SaveOptions): Promise<SaveResult> {
    if (this.inFlight) throw new EtcdsnapError('conflict', 'snapshot save already in progress');
    const run = this.doSave(opts);
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
    try {
      record = await saveSnapshot(this.etcd, {
        fileName,
        compress: opts.compress,
        nodeName: this.settings.nodeName,
        dir,
        status,
        signal: this.abort.signal,
      });
    } catch (err) {
      const message = messageOf(err);
      log.error({ err: message }, `Failed to take etcd snapshot: ${message}`);
      await dir
        .writeRecord({
          name: fileName,
          location: '',
          nodeName: this.settings.nodeName,
          createdAt: new Date(now * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z'),
          size: 0,
          compressed: opts.compress,
          status: 'failed',
          message,
        })
        .catch((e: unknown) => log.warn({ err: messageOf(e) }, 'could not record the failed snapshot'));
      throw err;
    }
    await dir.writeRecord(record);
    log.info({ bytes: record.size, durationMs: record.durationMs, sha256: record.sha256, revision: record.revision }, `Snapshot ${fileName} saved`);
    const deleted = opts.retention > 0 ? await this.applyRetention(dir, prefix, opts.retention) : [];
    return { created: [record], deleted };
  }

  private async applyRetention(dir: LocalSnapshotDir, prefix: string, keep: number): Promise<string[]> {
    try {
      return (await this.prune({ prefix, retention: keep, dir: dir.dir, dryRun: false })).deleted;
    } catch (err) {
      this.logger.warn({ err: messageOf(err) }, 'snapshot retention failed');
      return [];
    }
  }

  async list(dir?: string): Promise<SnapshotRecord[]> {
    const d = await this.folder(dir);
    return sortRecords(await d.list(this.settings.nodeName));
  }

  /** Deletes snapshots by exact file name (with their sidecars). */
  async delete(names: readonly unknown[], dir?: string): Promise<{ deleted: string[]; notFound: string[] }> {
    if (names.length === 0) throw new EtcdsnapError('usage', 'no snapshots given for removal');
    const safe = names.map((n) => {
      const name = assertSafeName(n);
      if (!parseSnapshotName(name)) {
        throw new EtcdsnapError('usage', `invalid snapshot name "${name}": not a snapshot file name (<name>-<node>-<unix seconds>[.zip])`);
      }
      return name;
    });
    const d = await this.folder(dir);
    const deleted: string[] = [];
    const notFound: string[] = [];
    for (const name of safe) {
      if (await d.remove(name)) {
        this.logger.info({ snapshot: name }, `Snapshot ${name} deleted locally`);
        deleted.push(name);
      } else {
        this.logger.info({ snapshot: name }, `Snapshot ${name} not found locally`);
        notFound.push(name);
      }
    }
    return { deleted, notFound };
  }

  /** Keeps the newest `retention` snapshots of `prefix` on this node; deletes the rest. */
  async prune(opts: { prefix: string; retention: number; dir?: string; dryRun: boolean }): Promise<{ deleted: string[] }> {
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
    return { deleted: plan.remove };
  }

  /** Waits for a running save, at most `timeoutMs`, then cancels it. */
  async drain(timeoutMs: number): Promise<void> {
    const running = this.inFlight;
    if (!running) return;
    const timer = setTimeout(() => this.abort.abort(), timeoutMs);
    await running.catch(() => undefined);
    clearTimeout(timer);
  }
}
