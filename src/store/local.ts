/**
 * `LocalStore`: the local snapshot folder and its sidecars, a `SnapshotStore` (store.ts).
 *
 * Contract (besides store.ts's):
 * - `beginWrite`/`openWriter` creates `<dir>/<name>.part` (0600, exclusive); `commit` fsyncs it, renames
 *   it to `<dir>/<name>` and fsyncs the folder; `discard` removes it. Only committed files
 *   carry a final name.
 * - Names passed in are checked with `assertSafeName`: nothing here can address a path
 *   outside the folder.
 * - Sidecars live at `<dir>/../.metadata/<name>` (0600, folder 0700) and are written
 *   atomically.
 * - `list` shows the files that are snapshots by the rule of `snapshot-kind.ts` (our names,
 *   and other names whose first bytes are an etcd snapshot's or a zip's, marked
 *   `foreignName`); `assertDeletable` refuses any other existing file.
 * - Neither the snapshot folder nor `.metadata` may be a symbolic link made by another
 *   user: `prepare` refuses both (so no later read, write or delete goes through such a
 *   link); links our own user made (the operator's) are followed, see `foreignLinkOwner`.
 *   `.metadata` is created only by a write into a prepared folder. An existing folder
 *   owned by another user is never chmodded (see `ensurePrivateDir`).
 */
import { promises as fsp, type Stats } from 'node:fs';
import type { Readable } from 'node:stream';
import path from 'node:path';
import { EtcdsnapError, errnoCode, messageOf } from '../errors.js';
import { ensurePrivateDir, foreignLinkOwner } from '../util/fs.js';
import { BatchedFileWriter, commitFile, createExclusive, isAtomicTemp, writeFileAtomic } from '../util/durable.js';
import { assertSafeName, parseSnapshotName, PART_EXT } from '../model/naming.js';
import { compressionFromName, createdAtFromName, FAILED_RECORD_TTL_MS, parseRecord, sidecarText, type SnapshotRecord } from '../model/records.js';
import { isCandidateName, snapshotKind } from './snapshot-kind.js';
import { assertStoreName, type IncompleteFilter, type ListOptions, type SnapshotSink, type SnapshotStore, type StoreStat, type WriteOptions } from './store.js';

export interface PartWriter {
  /** Writes the `.part` file (in batches; see `BatchedFileWriter`). */
  stream: BatchedFileWriter;
  /** fsync, rename to the final name, fsync the folder. */
  commit(): Promise<string>;
  /** Remove the `.part` file (safe to call after a failed commit). */
  discard(): Promise<void>;
}

export class LocalStore implements SnapshotStore {
  readonly kind = 'local';
  readonly metadataDir: string;

  constructor(readonly dir: string) {
    this.metadataDir = path.join(path.dirname(dir), '.metadata');
  }

  /**
   * Makes sure the folder exists: the default one is created 0700; a folder the user chose
   * must already exist. Refused: a folder or a `.metadata` sibling that is a symbolic link
   * made by another user, and a `.metadata` that is not a folder.
   */
  async prepare(isDefault: boolean): Promise<void> {
    await this.inspect(isDefault, true);
  }

  /**
   * The checks of `prepare` without any change to the disk, for a start-up check before
   * anything is created: the default folder may be missing or unreadable (it is created
   * later, after the data dir's own checks), any other must exist and be a folder.
   */
  async check(isDefault: boolean): Promise<void> {
    await this.inspect(isDefault, false);
  }

  private async inspect(isDefault: boolean, create: boolean): Promise<void> {
    try {
      const dirLink = await foreignLinkOwner(this.dir);
      if (dirLink !== undefined) {
        throw new EtcdsnapError(
          'config',
          `snapshot dir ${this.dir} is a symbolic link owned by uid ${dirLink}, not by etcdsnap's user; give the folder it points to`,
        );
      }
      if (isDefault && create) await ensurePrivateDir(this.dir);
      const st = await fsp.stat(this.dir).catch((err: unknown) => {
        // the default folder is made at start, under the data dir, whose own checks report
        // a data dir that cannot be used (missing, under a file, not ours to write)
        if (isDefault && !create) return undefined;
        throw err;
      });
      if (!st) return;
      if (!st.isDirectory()) throw new EtcdsnapError('config', `${this.dir} is not a directory; point --etcd-snapshot-dir at a folder`);
      const metaLink = await foreignLinkOwner(this.metadataDir);
      if (metaLink !== undefined) {
        throw new EtcdsnapError(
          'config',
          `${this.metadataDir} (the snapshot records of ${this.dir}) is a symbolic link owned by uid ${metaLink}; remove the link, etcdsnap creates the folder itself (mode 0700)`,
        );
      }
      const meta = await fsp.stat(this.metadataDir).catch((err: unknown) => {
        if (errnoCode(err) === 'ENOENT') return undefined;
        throw err;
      });
      if (meta && !meta.isDirectory()) {
        throw new EtcdsnapError(
          'config',
          `${this.metadataDir} (the snapshot records of ${this.dir}) is not a folder; remove it, etcdsnap creates the folder itself (mode 0700)`,
        );
      }
    } catch (err) {
      if (err instanceof EtcdsnapError) throw err;
      if (errnoCode(err) === 'ENOENT') {
        throw new EtcdsnapError('config', `snapshot dir ${this.dir} does not exist; create it (mode 0700) or use the default`);
      }
      throw new EtcdsnapError('environment', `cannot use snapshot dir ${this.dir}: ${messageOf(err)}`, { cause: err });
    }
  }

  filePath(name: string): string {
    return path.join(this.dir, assertSafeName(name));
  }

  sidecarPath(name: string): string {
    return path.join(this.metadataDir, assertSafeName(name));
  }

  location(name: string): string {
    return `file://${this.filePath(assertStoreName(name))}`;
  }

  async exists(name: string): Promise<boolean> {
    try {
      await fsp.lstat(this.filePath(name));
      return true;
    } catch {
      return false;
    }
  }

  async openWriter(name: string): Promise<PartWriter> {
    const final = this.filePath(name);
    const part = `${final}${PART_EXT}`;
    let fh: Awaited<ReturnType<typeof fsp.open>>;
    try {
      fh = await createExclusive(part, 0o600);
    } catch (err) {
      throw new EtcdsnapError('environment', `cannot create ${part}: ${errnoCode(err) ?? messageOf(err)}`, { cause: err });
    }
    const stream = new BatchedFileWriter(fh);
    const closed = (): Promise<void> => (stream.closed ? Promise.resolve() : new Promise<void>((resolve) => stream.once('close', () => resolve())));
    return {
      stream,
      commit: async () => {
        await closed();
        await commitFile(part, final);
        return final;
      },
      discard: async () => {
        stream.destroy();
        await closed();
        await fsp.rm(part, { force: true });
      },
    };
  }

  /** Removes `.part` files and record temp files (`.metadata/.<name>.<hex>.tmp`) left by a crash; returns their names. */
  async removeLeftoverParts(): Promise<string[]> {
    const names = await fsp.readdir(this.dir).catch(() => [] as string[]);
    const parts = names.filter((n) => n.endsWith(PART_EXT));
    await Promise.all(parts.map((n) => fsp.rm(path.join(this.dir, n), { force: true })));
    // a crash inside writeFileAtomic leaves its hidden temp file beside the record
    const records = await fsp.readdir(this.metadataDir).catch(() => [] as string[]);
    const temps = records.filter(isAtomicTemp);
    await Promise.all(temps.map((n) => fsp.rm(path.join(this.metadataDir, n), { force: true })));
    return [...parts, ...temps.map((n) => path.join('.metadata', n))];
  }

  async beginWrite(name: string, opts: WriteOptions): Promise<SnapshotSink> {
    const w = await this.openWriter(assertStoreName(name));
    const onAbort = (): void => void w.discard();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    const done = (): void => opts.signal?.removeEventListener('abort', onAbort);
    let committed = false;
    return {
      stream: w.stream,
      commit: async () => {
        opts.signal?.throwIfAborted();
        const final = await w.commit();
        committed = true;
        done();
        return `file://${final}`;
      },
      abort: async () => {
        done();
        if (!committed) await w.discard();
      },
    };
  }

  async openRead(name: string): Promise<Readable> {
    const file = this.filePath(assertStoreName(name));
    const fh = await fsp.open(file, 'r').catch((err: unknown) => {
      if (errnoCode(err) === 'ENOENT') throw new EtcdsnapError('not-found', `snapshot ${file} does not exist`);
      throw err;
    });
    return fh.createReadStream({ highWaterMark: 1 << 20 });
  }

  async stat(name: string): Promise<StoreStat | undefined> {
    const st = await fsp.lstat(this.filePath(assertStoreName(name))).catch(() => undefined);
    return st?.isFile() ? { size: st.size, modified: st.mtime } : undefined;
  }

  /** Deletes snapshots and their sidecars one by one (see `remove`); answers the names found. */
  async delete(names: readonly string[]): Promise<string[]> {
    const checked = names.map((n) => assertStoreName(n));
    const out: string[] = [];
    for (const n of checked) if (await this.remove(n)) out.push(n);
    return out;
  }

  describe(): string {
    return this.dir;
  }

  async probe(): Promise<void> {
    await this.check(false);
  }

  /** `.part` files: of `name`, or all of them (at start no write runs); answers their names. */
  async discardIncomplete(filter: IncompleteFilter): Promise<string[]> {
    if ('name' in filter) {
      const part = `${this.filePath(assertStoreName(filter.name))}${PART_EXT}`;
      return (await fsp.rm(part).then(
        () => true,
        () => false,
      ))
        ? [path.basename(part)]
        : [];
    }
    return this.removeLeftoverParts();
  }

  close(): void {
    /* nothing held */
  }

  async writeRecord(record: SnapshotRecord): Promise<void> {
    assertStoreName(record.name);
    await ensurePrivateDir(this.metadataDir);
    await writeFileAtomic(this.sidecarPath(record.name), sidecarText(record), 0o600);
  }

  /** The sidecar's record; undefined when there is none or it cannot be read; throws for one of a newer format (records.ts). */
  async readRecord(name: string): Promise<SnapshotRecord | undefined> {
    assertStoreName(name);
    let text: string;
    try {
      text = await fsp.readFile(this.sidecarPath(name), 'utf8');
    } catch {
      return undefined;
    }
    return parseRecord(text, this.location(name));
  }

  /** `readRecord` for the listing: a record of a newer format is the reason, shown as `newerRecord`. */
  private async listedRecord(name: string): Promise<{ rec?: SnapshotRecord; newer?: string }> {
    try {
      const rec = await this.readRecord(name);
      return rec ? { rec } : {};
    } catch (err) {
      if (err instanceof EtcdsnapError && err.kind === 'environment') return { newer: err.message };
      throw err;
    }
  }

  /**
   * Every snapshot in the folder (see store/snapshot-kind.ts: names that follow the naming
   * scheme, and other names whose content is a snapshot, marked `foreignName`; never `.part`
   * or hidden files), with its sidecar when there is one, plus failed records younger than
   * 24 h. Expired failed records are deleted.
   */
  async list(opts: ListOptions): Promise<SnapshotRecord[]> {
    const { nodeName, now = new Date() } = opts;
    const out: SnapshotRecord[] = [];
    const names = await fsp.readdir(this.dir).catch((err: unknown) => {
      if (errnoCode(err) === 'ENOENT') return [] as string[];
      throw err;
    });
    const seen = new Set<string>();
    for (const name of names) {
      if (!isCandidateName(name)) continue;
      let st: Stats;
      try {
        st = await fsp.lstat(path.join(this.dir, name));
      } catch {
        continue;
      }
      const kind = await snapshotKind(this.dir, name, st);
      if (kind === undefined) continue;
      seen.add(name);
      const { rec, newer } = await this.listedRecord(name);
      const { foreignName: _fromSidecar, ...kept } = rec?.status === 'successful' ? rec : ({} as Partial<SnapshotRecord>);
      out.push({
        ...kept,
        name,
        location: this.location(name),
        nodeName: rec?.nodeName ?? nodeName,
        createdAt: rec?.createdAt ?? createdAtFromName(name, st.mtime),
        size: st.size,
        ...compressionFromName(name),
        status: 'successful',
        ...(kind === 'foreign' ? { foreignName: true } : {}),
        ...(newer !== undefined ? { newerRecord: newer } : {}),
      });
    }
    const sidecars = await fsp.readdir(this.metadataDir).catch(() => [] as string[]);
    for (const name of sidecars) {
      if (seen.has(name) || !parseSnapshotName(name) || !isCandidateName(name)) continue;
      const { rec } = await this.listedRecord(name);
      if (rec?.status !== 'failed' || rec.location.startsWith('s3://')) continue;
      if (now.getTime() - Date.parse(rec.createdAt) > FAILED_RECORD_TTL_MS) {
        await fsp.rm(this.sidecarPath(name), { force: true });
        continue;
      }
      out.push(rec);
    }
    return out;
  }

  /**
   * Refuses (`usage`, nothing deleted) a name outside the naming scheme whose file exists but
   * is not a snapshot (`list` does not show it): `delete` takes only what `ls` lists. A
   * scheme name, or a name with no file, passes (`remove` then reports it not found).
   */
  async assertDeletable(name: string): Promise<void> {
    assertSafeName(name);
    if (parseSnapshotName(name) || !(await this.exists(name))) return;
    if ((await snapshotKind(this.dir, name)) === undefined) {
      throw new EtcdsnapError(
        'usage',
        `${JSON.stringify(name)} in ${this.dir} is not a snapshot (neither an etcd snapshot nor a .zip of one, or a hidden or .part file); delete removes only what etcd-snapshot ls lists, nothing was deleted`,
      );
    }
  }

  /** Deletes a snapshot and its sidecar; false when neither existed. */
  async remove(name: string): Promise<boolean> {
    const file = this.filePath(name);
    let found = true;
    try {
      await fsp.unlink(file);
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
      found = false;
    }
    const sidecar = this.sidecarPath(name);
    const hadSidecar = await fsp.rm(sidecar).then(
      () => true,
      () => false,
    );
    return found || hadSidecar;
  }
}
