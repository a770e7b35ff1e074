/**
 * The snapshot an inspection reads (`etcd-snapshot status|keys|get|stats|diff <snapshot>`,
 * the `/v1/snapshots/...` routes, `restore-keys`), resolved to a plain snapshot file on this
 * machine plus a way to remove what it took to get there.
 *
 * What `raw` may be (the rules of `--cluster-reset-restore-path`, restore-source.ts
 * `parseRestoreSource`, reused):
 * - a path (with a `/`, or a `file:///abs` URL): that file, read where it is;
 * - a bare name: the file of that name in the snapshot folder, else (with S3 settings) the
 *   object of that name in the bucket folder, else (CLI only) the file in the current folder;
 * - `namesOnly` (the API, which reads no file a request names, docs/security.md): only a
 *   bare name, checked with `assertStoreName`, looked up in the snapshot folder and S3.
 * A missing file or a name found nowhere is a `not-found` error that says where it looked.
 *
 * Temp files: an S3 snapshot is downloaded, checked against the sha256 of its record
 * (transfer.ts `downloadToFile`, the check restore makes), into a new private folder
 * `<tempParent>/etcdsnap-inspect-XXXXXX` (mkdtemp: 0700; the file 0600, O_EXCL|O_NOFOLLOW).
 * An encoded snapshot (k3s's zip, zstd, gzip, age; recognised by its bytes) is decoded by
 * decode.ts into that folder (a zip: one entry, a plain name, sizes checked, the same
 * free-space bound as a restore; age: with `identityFile`). `close()` removes the folder (never a source file) and is safe to call twice;
 * `removeSync()` does the same synchronously, and `removeTempFoldersSync()` removes every
 * folder of the process, also one whose download or extraction is still running (signal
 * handlers). On any failure while
 * opening, the folder is removed before the error is thrown.
 */
import { promises as fsp, mkdtempSync, rmSync, type Stats } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EtcdsnapError, errnoCode, messageOf } from '../errors.js';
import { openStore } from '../store/factory.js';
import { LocalStore } from '../store/local.js';
import { assertStoreName, isStoreName, type SnapshotStore } from '../store/store.js';
import type { SnapshotRecord } from '../model/records.js';
import { exists } from '../util/fs.js';
import { parseRestoreSource, type RestoreSourceSpec } from './restore-source.js';
import type { S3Options } from './s3-config.js';
import { downloadToFile } from './transfer.js';
import type { ProgressReporter } from '../util/progress.js';
import { type DecodeContext, decodeSnapshotFile } from './decode.js';

export interface InspectSourceContext {
  /** The local snapshot folder (`--dir`, else `<data-dir>/server/db/snapshots`). */
  snapshotDir: string;
  snapshotDirIsDefault: boolean;
  /** S3 settings: a name missing locally is looked up in this bucket folder. */
  s3?: S3Options;
  /** Parent of the private temp folder (default: the OS temp folder). */
  tempParent?: string;
  /** Relative paths and the last lookup of a name (default: process.cwd()). */
  cwd?: string;
  /** Only snapshot names, never paths (the API). */
  namesOnly?: boolean;
  /** `--etcd-snapshot-decrypt-identity-file`, for an age-encrypted snapshot (decode.ts). */
  identityFile?: string;
  /** Told the bytes of an S3 download and of decoding (default: nothing shown). */
  progress?: ProgressReporter;
}

/** A plain snapshot file ready to read. */
export interface InspectSource {
  /** The plain (unzipped) snapshot file. */
  readonly file: string;
  /** What the user named, resolved: the path, or where the name was found. */
  readonly label: string;
  readonly origin: 'path' | 'local' | 's3' | 'cwd';
  /** Removes the temp folder, if any (never the source); safe to call twice. */
  close(): Promise<void>;
  /** `close()`, synchronously (signal handlers). */
  removeSync(): void;
}

const WORDING = { source: '<snapshot>', s3: '--s3' };

/** A path that must be a regular file; a missing one is `not-found`. */
async function regularFile(abs: string): Promise<string> {
  let st: Stats;
  try {
    st = await fsp.stat(abs);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') throw new EtcdsnapError('not-found', `snapshot file ${abs} does not exist`);
    throw new EtcdsnapError('config', `cannot read snapshot file ${abs}: ${errnoCode(err) ?? messageOf(err)}`);
  }
  if (!st.isFile()) throw new EtcdsnapError('config', `snapshot ${abs} is not a regular file`);
  return abs;
}

/** Every temp folder of this process that exists now (made, not yet removed). */
const live = new Set<string>();

/**
 * Removes every temp folder this process made and has not removed yet, synchronously: for
 * a signal handler that ends the process (a download or extraction may be under way).
 */
export function removeTempFoldersSync(): void {
  for (const d of live) rmSync(d, { recursive: true, force: true });
  live.clear();
}

/** The private temp folder, made on first use. */
class TempFolder {
  dir: string | undefined;
  constructor(private readonly parent: string) {}
  async get(): Promise<string> {
    if (this.dir === undefined) {
      // synchronous on purpose: made and registered in one step of the event loop, so that a
      // signal handler (removeTempFoldersSync) never runs between the two and misses the folder
      this.dir = mkdtempSync(path.join(this.parent, 'etcdsnap-inspect-'));
      live.add(this.dir);
    }
    return this.dir;
  }
  async remove(): Promise<void> {
    const d = this.dir;
    this.dir = undefined;
    if (d === undefined) return;
    await fsp.rm(d, { recursive: true, force: true });
    live.delete(d);
  }
  removeSync(): void {
    const d = this.dir;
    this.dir = undefined;
    if (d === undefined) return;
    rmSync(d, { recursive: true, force: true });
    live.delete(d);
  }
}

/** The recipients `record` says its snapshot was encrypted for (named when no identity opens it). */
const madeForOf = (record: SnapshotRecord | undefined): { madeFor?: readonly string[] } =>
  record?.encryption ? { madeFor: record.encryption.recipients } : {};

/** `madeForOf` the record of `name` in `store`, if it can be read. */
async function madeFor(store: SnapshotStore, name: string): Promise<{ madeFor?: readonly string[] }> {
  return madeForOf(await store.readRecord(name).catch(() => undefined));
}

function spec(raw: string, ctx: InspectSourceContext, cwd: string): RestoreSourceSpec {
  if (ctx.namesOnly === true) return { kind: 'name', name: assertStoreName(raw) };
  return parseRestoreSource(raw, cwd, WORDING);
}

/** Finds the (possibly zipped) file `raw` names; S3 downloads land in `temp`. */
async function locate(
  raw: string,
  ctx: InspectSourceContext,
  temp: TempFolder,
): Promise<{ file: string; label: string; origin: InspectSource['origin']; madeFor?: readonly string[] }> {
  const cwd = ctx.cwd ?? process.cwd();
  const s = spec(raw, ctx, cwd);
  if (s.kind === 'path') return { file: await regularFile(s.path), label: s.path, origin: 'path' };
  const { name } = s;
  const looked: string[] = [];
  const local = new LocalStore(ctx.snapshotDir);
  if (await exists(ctx.snapshotDir)) {
    await local.check(ctx.snapshotDirIsDefault); // a folder link another user made is refused
    const file = local.filePath(name);
    if (await exists(file)) return { file: await regularFile(file), label: file, origin: 'local', ...(await madeFor(local, name)) };
  }
  looked.push(`the snapshot folder ${ctx.snapshotDir}`);
  if (ctx.s3) {
    const store = await openStore({ kind: 's3', settings: ctx.s3.settings }); // the SDK loads only now
    try {
      if (isStoreName(name) && (await store.stat(name))) {
        const file = path.join(await temp.get(), name);
        const record = await downloadToFile(store, name, file, ctx.progress);
        return { file, label: store.location(name), origin: 's3', ...madeForOf(record) };
      }
      looked.push(`S3 (${isStoreName(name) ? store.location(name) : store.describe()})`);
    } finally {
      store.close();
    }
  }
  if (ctx.namesOnly !== true) {
    const here = path.join(cwd, name);
    if (await exists(here)) return { file: await regularFile(here), label: here, origin: 'cwd' };
    looked.push(`the current folder ${cwd}`);
  }
  const hint = ctx.s3 || ctx.namesOnly === true ? '' : ' (add --s3 and its settings to look in S3)';
  throw new EtcdsnapError('not-found', `snapshot ${JSON.stringify(name)} not found: looked in ${looked.join(', in ')}${hint}`);
}

/**
 * Resolves `raw` (see the module's rules) to a plain snapshot file; the caller calls
 * `close()` when done, whatever the outcome.
 */
export async function openInspectSource(raw: string, ctx: InspectSourceContext): Promise<InspectSource> {
  const temp = new TempFolder(ctx.tempParent ?? os.tmpdir());
  try {
    const found = await locate(raw, ctx, temp);
    const decoding: DecodeContext = {
      ...(ctx.identityFile !== undefined ? { identityFile: ctx.identityFile } : {}),
      ...(found.madeFor ? { madeFor: found.madeFor } : {}),
      ...(ctx.progress ? { progress: ctx.progress } : {}),
    };
    const decoded = await decodeSnapshotFile(found.file, await temp.get(), decoding);
    return {
      file: decoded.file,
      label: found.label,
      origin: found.origin,
      close: () => temp.remove(),
      removeSync: () => temp.removeSync(),
    };
  } catch (err) {
    await temp.remove();
    throw err;
  }
}
