/**
 * Extracts a k3s-format compressed snapshot for a restore: a zip with exactly one file entry
 * whose name is a plain file name. Refused: more entries, directories, names with a path,
 * sizes that do not match the header (yauzl checks), and an entry that would leave too
 * little free space (below).
 *
 * Where: a new private folder `<parent>/restore-XXXXXX` (mkdtemp, 0700; the caller passes
 * the data dir's `server/db`), never beside the source zip. The file is created with
 * O_CREAT|O_EXCL|O_NOFOLLOW (0600), so it never follows a link nor replaces an existing
 * file. On any failure the folder is removed before the error is thrown; on success the
 * caller removes it with `remove()` once the restore is done.
 *
 * Free-space rule: the entry is extracted only when the file system of `<parent>` has at
 * least 2 × the entry's size + 128 MiB free (`requiredFreeBytes`): the extracted file, the
 * member database that etcd's restore tool writes next to it on the same file system (about
 * as large again), the 64 MB WAL segment that tool preallocates, and 64 MiB left over so that
 * etcd can still start and write after the restore. Checked against the size in the zip's
 * header before a byte is written; yauzl stops the extraction if the data is longer.
 */
import { promises as fsp, constants as fsc } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import yauzl from 'yauzl';
import { EtcdsnapError, errnoCode, messageOf } from '../errors.js';
import { assertSafeName } from '../model/naming.js';

const MiB = 1024 * 1024;
/** Room kept beyond the two copies: etcd's preallocated WAL segment (64 MB) + 64 MiB to run. */
export const RESTORE_FREE_MARGIN_BYTES = 128 * MiB;

/** Free bytes a restore of an entry of `entryBytes` needs on the data dir's file system. */
export function requiredFreeBytes(entryBytes: number): number {
  return 2 * entryBytes + RESTORE_FREE_MARGIN_BYTES;
}

export interface ExtractedSnapshot {
  /** The extracted snapshot file. */
  file: string;
  /** The private temp folder holding it. */
  dir: string;
  /** Removes the temp folder and the file (safe to call twice). */
  remove(): Promise<void>;
}

const bad = (zip: string, why: string): EtcdsnapError => new EtcdsnapError('integrity', `${zip} is not a compressed etcd snapshot: ${why}`);

function openZip(zipFile: string): Promise<yauzl.ZipFile> {
  return new Promise<yauzl.ZipFile>((resolve, reject) =>
    yauzl.open(zipFile, { lazyEntries: true, autoClose: false, validateEntrySizes: true, strictFileNames: true }, (err, z) =>
      err || !z ? reject(err ?? new Error('no zip')) : resolve(z),
    ),
  );
}

/** Reads and checks the zip's single entry (count, folder, name). */
async function singleEntry(zipFile: string, zip: yauzl.ZipFile): Promise<yauzl.Entry> {
  if (zip.entryCount !== 1) throw bad(zipFile, `it has ${zip.entryCount} entries, expected 1`);
  const entry = await new Promise<yauzl.Entry>((resolve, reject) => {
    zip.once('entry', resolve);
    zip.once('error', reject);
    zip.readEntry();
  }).catch((err: unknown) => {
    throw err instanceof EtcdsnapError ? err : bad(zipFile, messageOf(err));
  });
  if (entry.fileName.endsWith('/')) throw bad(zipFile, 'its entry is a folder');
  try {
    assertSafeName(entry.fileName, 'zip entry name');
  } catch (err) {
    throw bad(zipFile, messageOf(err));
  }
  return entry;
}

/**
 * Extracts the single entry of `zipFile` into a new private folder under `parent` (which
 * must exist); resolves with the file and a way to remove the folder.
 */
export async function extractSnapshotZip(zipFile: string, parent: string): Promise<ExtractedSnapshot> {
  let zip: yauzl.ZipFile;
  try {
    zip = await openZip(zipFile);
  } catch (err) {
    throw bad(zipFile, messageOf(err));
  }
  try {
    const entry = await singleEntry(zipFile, zip);
    const dir = await fsp.mkdtemp(path.join(parent, 'restore-'));
    const remove = (): Promise<void> => fsp.rm(dir, { recursive: true, force: true });
    try {
      const st = await fsp.statfs(dir);
      const free = Number(st.bavail) * Number(st.bsize);
      const need = requiredFreeBytes(entry.uncompressedSize);
      if (need > free) {
        throw bad(
          zipFile,
          `its entry would need ${entry.uncompressedSize} bytes and only ${free} are free in ${parent}; a restore needs twice the entry size plus ${RESTORE_FREE_MARGIN_BYTES / MiB} MiB free there (${need} bytes): free some space or use another --data-dir`,
        );
      }
      const file = path.join(dir, entry.fileName);
      const src = await new Promise<NodeJS.ReadableStream>((resolve, reject) =>
        zip.openReadStream(entry, (err, s) => (err || !s ? reject(err ?? new Error('no stream')) : resolve(s))),
      );
      const fh = await fsp.open(file, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
      await pipeline(src, fh.createWriteStream());
      return { file, dir, remove };
    } catch (err) {
      await remove();
      if (err instanceof EtcdsnapError) throw err;
      // a system error (ENOSPC, EACCES...) is the machine's, not the zip's
      if (errnoCode(err) !== undefined)
        throw new EtcdsnapError('environment', `cannot extract ${zipFile} into ${parent}: ${messageOf(err)}; nothing was changed`, { cause: err });
      throw bad(zipFile, messageOf(err));
    }
  } finally {
    zip.close();
  }
}
