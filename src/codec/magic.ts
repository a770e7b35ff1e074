/**
 * What a snapshot file holds, from its first bytes. Pure: no I/O.
 *
 * - `age`: an age-encrypted file, `age-encryption.org/v1\n` (the armored form, starting
 *   with `-----BEGIN AGE ENCRYPTED FILE-----`, is not sniffed: we never write it);
 * - `zstd`: a zstd frame, 28 B5 2F FD;
 * - `gzip`: a gzip member with deflate, 1F 8B 08;
 * - `zip`: a zip local file header, `PK\x03\x04` (k3s's compressed snapshot);
 * - `plain`: an etcd snapshot as etcd writes it, i.e. a bbolt database: its first page is a
 *   meta page with magic 0xED0CDAED and version 2 (little-endian) at bytes 16 and 20 (as
 *   src/store/snapshot-kind.ts);
 * - undefined: none of these, or fewer bytes than that format's signature needs.
 * The sniff only says what a file claims to be; the readers still check the data.
 */

export type SnapshotFormat = 'age' | 'zstd' | 'gzip' | 'zip' | 'plain';

const AGE = Buffer.from('age-encryption.org/v1\n', 'latin1');
const ZSTD = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);
const GZIP = Buffer.from([0x1f, 0x8b, 0x08]);
const ZIP = Buffer.from([0x50, 0x4b, 0x03, 0x04]);
const BBOLT_MAGIC = 0xed0cdaed;
const BBOLT_VERSION = 2;

/** Head bytes `sniffFormat` needs to tell every format (the bbolt meta page fields end at 24). */
export const SNIFF_BYTES = 24;

function startsWith(head: Uint8Array, sig: Buffer): boolean {
  if (head.length < sig.length) return false;
  for (let i = 0; i < sig.length; i++) if (head[i] !== sig[i]) return false;
  return true;
}

/** The format of a file whose first bytes are `head` (pass `SNIFF_BYTES` or more when the file has them). */
export function sniffFormat(head: Uint8Array): SnapshotFormat | undefined {
  if (startsWith(head, AGE)) return 'age';
  if (startsWith(head, ZSTD)) return 'zstd';
  if (startsWith(head, GZIP)) return 'gzip';
  if (startsWith(head, ZIP)) return 'zip';
  if (head.length >= 24) {
    const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
    if (view.getUint32(16, true) === BBOLT_MAGIC && view.getUint32(20, true) === BBOLT_VERSION) return 'plain';
  }
  return undefined;
}
