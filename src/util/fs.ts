/**
 * File-system helpers that enforce the project's modes: folders 0700, private files 0600.
 * Durable writes (temp name, fsync, rename, fsync of the folder) are in durable.ts.
 * Folders we write into are folders: a symbolic link is followed only when our own user
 * made it (`foreignLinkOwner`); a link planted by anyone else is refused.
 */
import { promises as fsp, constants as fsc } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { EtcdsnapError, errnoCode } from '../errors.js';
import path from 'node:path';
import { fsyncDir } from './durable.js';

/**
 * Whose symbolic links are followed: a link owned by this process's user was made by the
 * operator (k3s users move `server/db` or the snapshot dir to another disk that way) and
 * is followed; a link owned by anyone else was planted (e.g. in a shared folder such as
 * /tmp next to a snapshot dir, where `.metadata` lives) and is refused, never followed.
 * Another user cannot make a link that we own, and cannot replace ours in a sticky folder.
 * @returns the link's owner uid when `p` is a link of another user, else undefined.
 */
export async function foreignLinkOwner(p: string): Promise<number | undefined> {
  const st = await fsp.lstat(p).catch(() => undefined);
  return st?.isSymbolicLink() && st.uid !== process.getuid?.() ? st.uid : undefined;
}

/**
 * Opens the folder `dir` for reading. A symbolic link in its last component is followed
 * only when our own user made it (see `foreignLinkOwner`); otherwise it is opened with
 * O_DIRECTORY|O_NOFOLLOW, so a link swapped in after the check is refused by the kernel.
 * A foreign link or a non-folder is a clear `environment` error. The handle pins the
 * folder, so checks made on it cannot be raced.
 */
export async function openOwnDir(dir: string): Promise<FileHandle> {
  const st = await fsp.lstat(dir).catch(() => undefined);
  const follow = st?.isSymbolicLink() === true;
  if (follow && st.uid !== process.getuid?.()) throw linkRefused(dir, st.uid);
  try {
    return await fsp.open(dir, fsc.O_RDONLY | fsc.O_DIRECTORY | (follow ? 0 : fsc.O_NOFOLLOW));
  } catch (err) {
    const code = errnoCode(err);
    if (code !== 'ELOOP' && code !== 'ENOTDIR') throw err;
    const now = await foreignLinkOwner(dir);
    throw now !== undefined
      ? linkRefused(dir, now, err)
      : new EtcdsnapError('environment', `${dir} is not a folder; remove it or choose another path`, { cause: err });
  }
}

/** The refusal of a link made by another user (the wording tests and docs quote). */
export const linkRefused = (dir: string, owner: number, cause?: unknown): EtcdsnapError =>
  new EtcdsnapError(
    'environment',
    `${dir} is a symbolic link owned by uid ${owner}, not by etcdsnap's user; etcdsnap follows only links its own user made: replace the link with a folder`,
    { cause },
  );

/**
 * Creates `dir` (and missing parents) with mode 0700 and checks that it is a folder: a
 * symbolic link made by another user (also a dangling one) or a non-folder is refused,
 * never followed (see `openOwnDir`). An existing folder owned by this process's user is
 * tightened to 0700; one owned by another user is left exactly as it is (never chmodded).
 * Each folder it creates is made durable: its parent is fsynced after the mkdir.
 */
export async function ensurePrivateDir(dir: string): Promise<void> {
  const owner = await foreignLinkOwner(dir);
  if (owner !== undefined) throw linkRefused(dir, owner);
  let created: string | undefined;
  try {
    created = await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    if (errnoCode(err) !== 'EEXIST') throw err;
  }
  // a new folder's entry is durable only once its parent is fsynced (each level that was made)
  if (created !== undefined) {
    for (let d = path.resolve(dir); ; d = path.dirname(d)) {
      await fsyncDir(path.dirname(d));
      if (d === path.resolve(created) || path.dirname(d) === d) break;
    }
  }
  const fh = await openOwnDir(dir);
  try {
    const st = await fh.stat();
    if (st.uid === process.getuid?.() && (st.mode & 0o777) !== 0o700) await fh.chmod(0o700);
  } finally {
    await fh.close();
  }
}

/** True when `p` exists (any type). */
export async function exists(p: string): Promise<boolean> {
  try {
    await fsp.lstat(p);
    return true;
  } catch {
    return false;
  }
}

/** Reads a small text file, or returns undefined when it does not exist. */
export async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await fsp.readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw err;
  }
}
