/**
 * How a snapshot's bytes are stored: compressed (k3s's zip, zstd or gzip) and/or encrypted
 * with age for a list of recipients, and how that shows in its file name. Pure, no I/O.
 *
 * Names: `<base>` + the compression's extension (`.zip`, `.zst`, `.gz`) + `.age` when
 * encrypted, e.g. `etcd-snapshot-node1-1764460800.zst.age`. The name is a hint for people
 * and listings only: restore and inspection recognise the format by its magic bytes
 * (codec/magic.ts), whatever the name says.
 */

import { EtcdsnapError } from '../errors.js';

/** The compressions a snapshot may be stored with (`--etcd-snapshot-compression`). */
export const COMPRESSIONS = ['none', 'zip', 'zstd', 'gzip'] as const;
export type Compression = (typeof COMPRESSIONS)[number];

/** The file name extension of each compression (k3s's `.zip` for zip). */
export const COMPRESSION_EXT: { readonly [C in Compression]: string } = { none: '', zip: '.zip', zstd: '.zst', gzip: '.gz' };

/** The extension of an age-encrypted snapshot, after the compression's. */
export const AGE_EXT = '.age';

/** How one snapshot is written. */
export interface SnapshotEncoding {
  compression: Compression;
  /** age recipients (`age1...`) the snapshot is encrypted for; empty: not encrypted. */
  recipients: readonly string[];
}

/** Plain: neither compressed nor encrypted. */
export const PLAIN: SnapshotEncoding = { compression: 'none', recipients: [] };

export const isCompression = (v: unknown): v is Compression => COMPRESSIONS.some((c) => c === v);

/** The extensions a snapshot written with `enc` gets after its base name. */
export function encodingSuffix(enc: SnapshotEncoding): string {
  return `${COMPRESSION_EXT[enc.compression]}${enc.recipients.length > 0 ? AGE_EXT : ''}`;
}

/** What the extensions of a file name say: its base name, compression and encryption. */
export interface NameEncoding {
  /** The name without the extensions below. */
  base: string;
  compression: Compression;
  encrypted: boolean;
}

/** Pure: splits the encoding extensions (`[.zip|.zst|.gz][.age]`) off `file`. */
export function splitEncodedName(file: string): NameEncoding {
  const encrypted = file.endsWith(AGE_EXT) && file.length > AGE_EXT.length;
  let rest = encrypted ? file.slice(0, -AGE_EXT.length) : file;
  let compression: Compression = 'none';
  for (const c of COMPRESSIONS) {
    const ext = COMPRESSION_EXT[c];
    if (ext !== '' && rest.endsWith(ext) && rest.length > ext.length) {
      compression = c;
      rest = rest.slice(0, -ext.length);
      break;
    }
  }
  return { base: rest, compression, encrypted };
}

/** Whether a file name says the snapshot is compressed (any compression), as `compressed` in records. */
export const isCompressedName = (file: string): boolean => splitEncodedName(file).compression !== 'none';

/** The content type of a stored snapshot (S3 objects): zip as k3s, zstd, gzip, age, else octet-stream. */
export function contentTypeOf(file: string): string {
  const n = splitEncodedName(file);
  if (n.encrypted) return 'application/octet-stream';
  switch (n.compression) {
    case 'zip':
      return 'application/zip';
    case 'zstd':
      return 'application/zstd';
    case 'gzip':
      return 'application/gzip';
    default:
      return 'application/octet-stream';
  }
}

/** The flags `compressionOf` names in its errors (the server's spelling). */
const FLAG_NAMES = { compress: '--etcd-snapshot-compress', compression: '--etcd-snapshot-compression' };

/**
 * Pure: the compression that `compress` and `compression` ask for together; a `usage` error
 * when they disagree (`--etcd-snapshot-compress` with a compression other than zip). Neither
 * given: undefined.
 */
export function compressionOf(compress: boolean | undefined, compression: string | undefined, flags = FLAG_NAMES): Compression | undefined {
  if (compression !== undefined) {
    if (!isCompression(compression)) throw new EtcdsnapError('usage', `invalid ${flags.compression} "${compression}": use none, zip, zstd or gzip`);
    if (compress === true && compression !== 'zip') {
      throw new EtcdsnapError(
        'usage',
        `${flags.compress} (k3s's zip) and ${flags.compression}=${compression} disagree: give one of them (${flags.compression}=zip is the same as ${flags.compress})`,
      );
    }
    return compression;
  }
  if (compress === undefined) return undefined;
  return compress ? 'zip' : 'none';
}
