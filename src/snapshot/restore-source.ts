/**
 * The snapshot a restore reads (`--cluster-reset-restore-path`), as users write it:
 * - a path: absolute, or relative to the current folder when it holds a `/` (`./x.db`);
 * - a `file://` URL with an absolute path, as the Location column of `etcd-snapshot ls`
 *   prints it (`file:///var/lib/.../snapshots/<name>`; `file://localhost/...` too). The path
 *   is taken as written, not percent-decoded (ls and k3s print it so);
 * - a bare name (no `/`), as the Name column shows it: looked up in the snapshot dir
 *   (`--etcd-snapshot-dir`) first, then in S3 when S3 is configured (`--etcd-s3`; downloaded
 *   into the snapshot dir and checked against its sidecar, see `downloadSnapshot`), then in
 *   the current folder (a plain relative file name, as before).
 * Refused with one line that says what to give instead: an empty value, NUL, `file://`
 * without an absolute path, any other URL scheme (`http://`, `s3://`, ...), an unsafe bare
 * name, a path that is missing, a folder or not a regular file, a name found nowhere (the
 * message lists where it looked).
 *
 * `parseRestoreSource` is pure; `resolveRestoreSource` does the lookups. Nothing is written
 * unless the snapshot is found in S3 (then only the download into the snapshot dir, whose
 * default folder is created for it). The S3 SDK loads only when S3 is asked.
 */
import { promises as fsp, type Stats } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../log/logger.js';
import { EtcdsnapError, errnoCode, messageOf } from '../errors.js';
import { LocalStore } from '../store/local.js';
import { openStore } from '../store/factory.js';
import { isStoreName } from '../store/store.js';
import { exists } from '../util/fs.js';
import { assertSafeName } from '../model/naming.js';
import { downloadSnapshot } from './transfer.js';
import type { ProgressReporter } from '../util/progress.js';
import type { S3Options } from './s3-config.js';

export const RESTORE_FLAG = '--cluster-reset-restore-path';

/** What a restore source names: a file by path, or a snapshot by name. */
export type RestoreSourceSpec = { kind: 'path'; path: string } | { kind: 'name'; name: string };

const URL_SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//;
const HINT = 'give a path, a file:///absolute/path URL, or a snapshot name as etcd-snapshot ls shows it';

const shown = (raw: string): string => JSON.stringify(raw.length > 200 ? `${raw.slice(0, 200)}...` : raw);

/** How the messages of `parseRestoreSource` name the argument and the S3 switch. */
export interface SourceWording {
  /** The flag or argument (`--cluster-reset-restore-path`, `<snapshot>`). */
  source: string;
  /** The flag that turns S3 on (`--etcd-s3`, `--s3`). */
  s3: string;
}

const RESTORE_WORDING: SourceWording = { source: RESTORE_FLAG, s3: '--etcd-s3' };

/**
 * Pure: what `raw` names (see the module's rules); relative paths are resolved against
 * `cwd`. Throws a `config` error for what is refused; `wording` names the argument in it
 * (the same rules serve `etcd-snapshot status <snapshot>`, snapshot/inspect-source.ts).
 */
export function parseRestoreSource(raw: string, cwd: string, wording: SourceWording = RESTORE_WORDING): RestoreSourceSpec {
  if (raw.trim() === '') throw new EtcdsnapError('config', `invalid ${wording.source}: it is empty; ${HINT}`);
  if (raw.includes('\0')) throw new EtcdsnapError('config', `invalid ${wording.source} ${shown(raw)}: NUL is not allowed; ${HINT}`);
  const url = URL_SCHEME.exec(raw);
  if (url) {
    const scheme = (url[1] ?? '').toLowerCase();
    if (scheme === 'file') {
      let rest = raw.slice(url[0].length);
      if (rest.toLowerCase().startsWith('localhost/')) rest = rest.slice('localhost'.length);
      if (!rest.startsWith('/')) {
        throw new EtcdsnapError(
          'config',
          `invalid ${wording.source} ${shown(raw)}: a file:// URL needs an absolute path (file:///path/to/snapshot, as the Location column of etcd-snapshot ls); for a relative path drop file://`,
        );
      }
      return { kind: 'path', path: path.normalize(rest) };
    }
    if (scheme === 's3') {
      const name =
        raw
          .slice(url[0].length)
          .split('/')
          .filter((s) => s !== '')
          .pop() ?? '';
      throw new EtcdsnapError(
        'config',
        `invalid ${wording.source} ${shown(raw)}: s3:// locations are not read directly; give the snapshot name (${JSON.stringify(name)}) with ${wording.s3} and the bucket and folder settings`,
      );
    }
    throw new EtcdsnapError(
      'config',
      `invalid ${wording.source} ${shown(raw)}: ${scheme}:// is not supported; ${HINT} (a name is looked up in the snapshot dir, then in S3 with ${wording.s3})`,
    );
  }
  if (raw.includes('/')) return { kind: 'path', path: path.resolve(cwd, raw) };
  try {
    return { kind: 'name', name: assertSafeName(raw, `snapshot name in ${wording.source}`) };
  } catch (err) {
    throw new EtcdsnapError('config', `${messageOf(err)}; ${HINT}`);
  }
}

/** Where `resolveRestoreSource` looks for a name, and how it reports. */
export interface RestoreSourceContext {
  snapshotDir: string;
  snapshotDirIsDefault: boolean;
  s3?: S3Options;
  logger: Logger;
  /** Told the bytes of an S3 download (default: nothing shown). */
  progress?: ProgressReporter;
}

/** A path that must be a regular file; the messages are k3s's. */
export async function regularFile(abs: string): Promise<string> {
  let st: Stats;
  try {
    st = await fsp.stat(abs);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') throw new EtcdsnapError('config', `etcd: snapshot path does not exist: ${abs}`);
    throw new EtcdsnapError('config', `etcd: cannot read snapshot path ${abs}: ${messageOf(err)}`);
  }
  if (st.isDirectory()) throw new EtcdsnapError('config', `etcd: snapshot path must be a file, not a directory: ${abs}`);
  if (!st.isFile()) throw new EtcdsnapError('config', `etcd: snapshot path must be a regular file: ${abs}`);
  return abs;
}

/** `file` when something is there (it must then be a regular file), else undefined. */
async function fileIfPresent(file: string): Promise<string | undefined> {
  return (await exists(file)) ? regularFile(file) : undefined;
}

/**
 * The local file to restore for `raw` (see the module's rules): the path itself, the file in
 * the snapshot dir or the current folder, or the snapshot downloaded from S3.
 */
export async function resolveRestoreSource(raw: string, ctx: RestoreSourceContext, cwd = process.cwd()): Promise<string> {
  const spec = parseRestoreSource(raw, cwd);
  if (spec.kind === 'path') return regularFile(spec.path);
  const { name } = spec;
  const dir = new LocalStore(ctx.snapshotDir);
  const looked: string[] = [];
  if (await exists(ctx.snapshotDir)) {
    await dir.check(ctx.snapshotDirIsDefault); // not a folder, or a link another user made: refused
    const local = await fileIfPresent(dir.filePath(name));
    if (local !== undefined) {
      ctx.logger.info({ file: local }, `restoring ${name} from the snapshot dir ${ctx.snapshotDir}`);
      return local;
    }
  }
  looked.push(`the snapshot dir ${ctx.snapshotDir}`);
  if (ctx.s3) {
    const store = await openStore({ kind: 's3', settings: ctx.s3.settings }); // the SDK loads only now
    try {
      if (isStoreName(name) && (await store.stat(name))) {
        // a hidden or .part name is in no store
        await dir.prepare(ctx.snapshotDirIsDefault);
        ctx.logger.info({ snapshot: name, s3: store.describe() }, `Retrieving etcd snapshot ${name} from S3`);
        const file = await downloadSnapshot(store, name, dir, ctx.progress);
        ctx.logger.info({ file }, `S3 download complete for ${name}`);
        return file;
      }
      looked.push(`S3 (${isStoreName(name) ? store.location(name) : store.describe()})`);
    } finally {
      store.close();
    }
  }
  const here = await fileIfPresent(path.join(cwd, name));
  if (here !== undefined) {
    ctx.logger.info({ file: here }, `restoring ${name} from the current folder`);
    return here;
  }
  looked.push(`the current folder ${cwd}`);
  throw new EtcdsnapError(
    'config',
    `etcd: snapshot ${JSON.stringify(name)} not found: looked in ${looked.join(', in ')}; ${HINT}${ctx.s3 ? '' : ' (add --etcd-s3 and its settings to look in S3)'}`,
  );
}
