/**
 * Which folders a `POST /db/snapshot` request may name in its `dir` field. The API runs as
 * the server's user (often root), so a token holder must not be able to make it write,
 * list or delete anywhere on the host: only the folders the operator allowed are usable.
 *
 * Contract:
 * - Allowed: the configured snapshot dir (`--etcd-snapshot-dir` or its default) and each
 *   folder given with `--etcd-snapshot-api-dir`, each exactly (not its subfolders).
 * - A request's dir must be absolute. It is compared by real path: `..` and symbolic links
 *   in any component are resolved on both sides first, so `<snapdir>/../x` and a link that
 *   leads outside are refused, whatever they are spelled like.
 * - A dir that does not exist (yet) matches only by its normalized absolute path, so the
 *   default folder can still be created and an allowed folder that is missing gets the
 *   "does not exist" error of `LocalStore.prepare`.
 * - Anything else is a `usage` error (HTTP 400) naming the flag; nothing is touched (only
 *   `realpath` is called).
 * - The result is the allowed folder as configured, never the request's spelling.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { EtcdsnapError, errnoCode } from '../errors.js';

export const API_DIR_FLAG = '--etcd-snapshot-api-dir';

async function realpathOrUndefined(p: string): Promise<string | undefined> {
  try {
    return await fsp.realpath(p);
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP' || code === 'EACCES') return undefined;
    throw err;
  }
}

/**
 * Maps a request's `dir` to the allowed folder it designates (`allowed[0]` is the
 * configured snapshot dir), or throws the refusal described above.
 */
export async function resolveApiDir(requested: string, allowed: readonly string[]): Promise<string> {
  const shown = JSON.stringify(requested.length > 200 ? `${requested.slice(0, 200)}...` : requested);
  if (!path.isAbsolute(requested) || requested.includes('\0')) {
    throw new EtcdsnapError('usage', `invalid snapshot dir ${shown}: give an absolute path`);
  }
  const lexical = path.resolve(requested);
  const real = await realpathOrUndefined(lexical);
  for (const dir of allowed) {
    if (real === undefined ? path.resolve(dir) === lexical : (await realpathOrUndefined(dir)) === real) return dir;
  }
  const via = real !== undefined && real !== lexical ? ` (it resolves to ${JSON.stringify(real)})` : '';
  throw new EtcdsnapError(
    'usage',
    `snapshot dir ${shown}${via} is not allowed: the server saves, lists and deletes snapshots only in ${allowed.join(', ')}; to allow another folder, start the server with ${API_DIR_FLAG}=<folder>`,
  );
}
