/**
 * Extracts a k3s-format compressed snapshot: a zip with exactly one file entry whose name
 * is a plain file name. Refused: more entries, directories, names with a path, an entry
 * larger than the free space (zip bombs), sizes that do not match the header (yauzl checks).
 * Written to `<dir>/<entry>.part`, then renamed.
 */
import { createWriteStream, promises as fsp } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import yauzl from 'yauzl';
import { EtcdsnapError, messageOf } from '../errors.js';
import { assertSafeName, PART_EXT } from './naming.js';

const bad = (zip: string, why: string): EtcdsnapError => new EtcdsnapError('integrity', `${zip} is not a compressed etcd snapshot: ${why}`);

/** Extracts the single entry of `zipFile` into `dir`; resolves with the extracted path. */
export async function extractSnapshotZip(zipFile: string, dir: string): Promise<string> {
  let zip: yauzl.ZipFile;
  try {
    zip = await new Promise<yauzl.ZipFile>((resolve, reject) =>
      yauzl.open(zipFile, { lazyEntries: true, autoClose: false, validateEntrySizes: true, strictFileNames: true }, (err, z) => (err || !z ? reject(err ?? new Error('no zip')) : resolve(z))),
    );
  } catch (err) {
    throw bad(zipFile, messageOf(err));
  }
  try {
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
    const st = await fsp.statfs(dir);
    const free = Number(st.bavail) * Number(st.bsize);
    if (entry.uncompressedSize > free) {
      throw bad(zipFile, `its entry would need ${entry.uncompressedSize} bytes and only ${free} are free in ${dir}`);
    }
    const out = path.join(dir, entry.fileName);
    const part = `${out}${PART_EXT}`;
    try {
      const src = await new Promise<NodeJS.ReadableStream>((resolve, reject) => zip.openReadStream(entry, (err, s) => (err || !s ? reject(err ?? new Error('no stream')) : resolve(s))));
      await pipeline(src, createWriteStream(part, { mode: 0o600 }));
      await fsp.rename(part, out);
    } catch (err) {
      await fsp.rm(part, { force: true });
      throw err instanceof EtcdsnapError ? err : bad(zipFile, messageOf(err));
    }
    return out;
  } finally {
    zip.close();
  }
}
