/**
 * The change log in S3 (docs/point-in-time-restore.md, "In S3"): each sealed segment is
 * also an object `<folder>/changelog/<segment>[.gz|.zst][.age]` of the server's bucket,
 * encoded like the snapshots (the server's compression, zip written as gzip since a segment
 * needs no k3s compatibility; age for the server's recipients), with its record as user
 * metadata: `sha256` of the object's bytes, `segment-sha256` (the seal's hash of the plain
 * content) and `sealed-at`.
 *
 * - `encodeSegmentObject`: the object of a sealed local segment (pure apart from the codecs).
 * - `fetchSegmentObject`: an object back to a verified plain segment: the object's sha256
 *   against its record, then decoded (snapshot/decode.ts) and the segment's own seal checked
 *   (format.ts `decodeSegment`), and the seal's hash against the record.
 * - `segmentOfObject`: the segment name an object name holds.
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { EtcdsnapError, messageOf } from '../errors.js';
import { contentTypeOf, encodingSuffix, splitEncodedName, type SnapshotEncoding } from '../model/encoding.js';
import type { ObjectStore } from '../store/object-store.js';
import { decodeSnapshotFile } from '../snapshot/decode.js';
import { encodeStages } from '../snapshot/encode.js';
import { decodeSegment, parseSegmentName, type Segment } from './format.js';
import { MAX_SEGMENT_FILE_BYTES } from './segments.js';

/** The sub-folder of the bucket folder that holds the segments. */
export const CHANGELOG_PREFIX = 'changelog';

/** The encoding a segment object gets: the snapshots', zip written as gzip. */
export const segmentEncoding = (enc: SnapshotEncoding): SnapshotEncoding => ({ ...enc, compression: enc.compression === 'zip' ? 'gzip' : enc.compression });

/** The segment name an object name holds (its encoding extensions off), when it is one. */
export function segmentOfObject(objectName: string): string | undefined {
  const base = splitEncodedName(objectName).base;
  return parseSegmentName(base) ? base : undefined;
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** The object of the sealed segment `seg` (its file's bytes `plain`): name, bytes and metadata. */
export async function encodeSegmentObject(
  seg: Segment,
  plain: Buffer,
  enc: SnapshotEncoding,
): Promise<{ name: string; body: Buffer; contentType: string; metadata: Record<string, string> }> {
  const e = segmentEncoding(enc);
  const name = `${seg.name}${encodingSuffix(e)}`;
  const chunks: Buffer[] = [];
  const stages = await encodeStages(e, name, new Date(seg.footer.sealedAt));
  const sink = new Writable({
    write(c: Buffer, _enc, cb) {
      chunks.push(c);
      cb();
    },
  });
  await pipeline([Readable.from([plain]), ...stages, sink]);
  const body = Buffer.concat(chunks);
  return {
    name,
    body,
    contentType: e.compression === 'none' && e.recipients.length === 0 ? 'application/x-ndjson' : contentTypeOf(name),
    metadata: { sha256: sha256(body), 'segment-sha256': seg.footer.sha256, 'sealed-at': String(seg.footer.sealedAt) },
  };
}

/**
 * Downloads `objectName` and answers its verified plain segment (and its bytes). `scratch`
 * is a private folder for the decoding (files removed before returning). Every failure is an
 * `integrity` error naming the object (`not-found` when it is missing), or the decoder's.
 */
export async function fetchSegmentObject(
  store: ObjectStore,
  objectName: string,
  scratch: string,
  identityFile: string | undefined,
): Promise<{ segment: Segment; plain: Buffer }> {
  const name = segmentOfObject(objectName);
  const where = store.location(objectName);
  if (name === undefined) throw new EtcdsnapError('integrity', `${where} is not a change log segment`);
  const { body, metadata } = await store.get(objectName, MAX_SEGMENT_FILE_BYTES);
  const want = metadata.sha256;
  if (want === undefined || !/^[0-9a-f]{64}$/.test(want)) throw new EtcdsnapError('integrity', `change log segment ${where} has no sha256 in its record`);
  const got = sha256(body);
  if (got !== want)
    throw new EtcdsnapError('integrity', `change log segment ${where}: sha256 ${got} does not match its record's ${want}: the object is corrupt`);
  if (splitEncodedName(objectName).encrypted && (identityFile === undefined || identityFile === '')) {
    throw new EtcdsnapError(
      'config',
      `change log segment ${where} is encrypted with age: give --etcd-snapshot-decrypt-identity-file with an identity that opens it`,
    );
  }
  const file = path.join(scratch, 'object');
  await fsp.writeFile(file, body, { mode: 0o600 });
  let plain: Buffer;
  try {
    const decoded = await decodeSnapshotFile(file, scratch, identityFile !== undefined ? { identityFile } : {});
    try {
      plain = await fsp.readFile(decoded.file);
    } finally {
      await decoded.remove();
    }
  } catch (err) {
    throw new EtcdsnapError(
      err instanceof EtcdsnapError ? err.kind : 'integrity',
      `change log segment ${where}: ${messageOf(err).replace(/; nothing was changed$/, '')}`,
      { cause: err },
    );
  } finally {
    await fsp.rm(file, { force: true });
  }
  const segment = decodeSegment(name, plain);
  if (metadata['segment-sha256'] !== undefined && metadata['segment-sha256'] !== segment.footer.sha256) {
    throw new EtcdsnapError('integrity', `change log segment ${where}: its seal's sha256 does not match its record's`);
  }
  return { segment, plain };
}
