/**
 * k3s's compressed snapshot format: a zip with one deflated entry named like the snapshot
 * without `.zip`. Built while streaming (yazl), never from a temp file.
 */
import type { Readable } from 'node:stream';
import yazl from 'yazl';

/**
 * Wraps `source` as the single entry `entryName` of a zip; returns the zip byte stream.
 * An error of `source` (or of the zip writer) fails the returned stream.
 */
export function zipSingleEntry(source: Readable, entryName: string, mtime: Date): Readable {
  const zip = new yazl.ZipFile();
  const output = zip.outputStream as unknown as Readable;
  const fail = (err: Error): void => {
    output.destroy(err);
  };
  source.once('error', fail);
  zip.once('error', fail);
  zip.addReadStream(source, entryName, { mtime, mode: 0o100600, compress: true });
  zip.end();
  return output;
}
