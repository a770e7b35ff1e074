/**
 * Which files in a snapshot folder are snapshots. k3s lists every regular file in the folder;
 * etcdsnap lists the files that are snapshots, whatever their names, and nothing else.
 *
 * The rule (cheap: one `lstat` and, for a name outside the naming scheme, the first 24 bytes):
 * - Never a snapshot: a name ending in `.part` (a save or download in progress), a hidden
 *   name (starting with `.`, like our temp files), a name `isSafeName` refuses (it could not
 *   be shown or deleted safely), anything but a regular file (links, folders, sockets).
 * - A name that follows the naming scheme (`<name>-<node>-<unix seconds>[.zip]`, see
 *   naming.ts) is ours: a snapshot whatever its content (our saves were verified when written).
 * - Any other name (a file from `etcdctl snapshot save`, a copy, a k3s snapshot renamed) is a
 *   snapshot when its first bytes say so (`classifySnapshotHead`):
 *   - plain: an etcd snapshot is a bbolt database plus a 32-byte sha256, so its size is
 *     `512·n + 32`, and its first page is a bbolt meta page (magic `0xED0CDAED`, version 2,
 *     little-endian, at bytes 16-23 after the 16-byte page header);
 *   - encoded: the name ends in an encoding's extension and the file starts with that
 *     format's magic bytes (codec/magic.ts): `.zip` and a zip local file header
 *     (`PK\x03\x04`), `.zst` and a zstd frame, `.gz` and a gzip member, `.age` (after any
 *     compression's extension) and an age header. The name must agree with the bytes, so
 *     that `ls` shows what a file is at a glance; restore reads the format from the bytes.
 *   Such a snapshot is listed as `foreignName` and can be deleted by its name; retention never
 *   selects it (it has no timestamp of ours in its name).
 * The content test does not prove a snapshot is intact: restore still checks the sha256.
 */
import { constants as fsc, promises as fsp, type Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { isSafeName, parseSnapshotName, PART_EXT } from '../model/naming.js';
import { splitEncodedName } from '../model/encoding.js';
import { SNIFF_BYTES, type SnapshotFormat, sniffFormat } from '../codec/magic.js';

/** How a file in a snapshot folder counts: ours by name, or foreign by content. */
export type SnapshotKind = 'scheme' | 'foreign';

/** The format each compression's extension promises. */
const FORMAT_OF = { zip: 'zip', zstd: 'zstd', gzip: 'gzip' } as const;

/**
 * Pure: whether a file named `name` of `size` bytes whose first bytes are `head` is an etcd
 * snapshot by content: its format (`'plain'`, `'zip'`, `'zstd'`, `'gzip'`, `'age'`), or
 * undefined (see the module's rule).
 */
export function classifySnapshotHead(name: string, size: number, head: Uint8Array): SnapshotFormat | undefined {
  const format = sniffFormat(head);
  const n = splitEncodedName(name);
  if (n.encrypted) return format === 'age' ? format : undefined;
  if (n.compression !== 'none') return format === FORMAT_OF[n.compression] ? format : undefined;
  return size % 512 === 32 && format === 'plain' ? format : undefined;
}

/** Names never listed, whatever the file: `.part`, hidden names, unsafe names. */
export function isCandidateName(name: string): boolean {
  return !name.endsWith(PART_EXT) && !name.startsWith('.') && isSafeName(name);
}

/**
 * Reads the first bytes of `file` (without following a link) and classifies them; undefined
 * when it cannot be read or is not a regular file any more.
 */
async function sniff(file: string, name: string): Promise<SnapshotFormat | undefined> {
  let fh: FileHandle;
  try {
    // O_NONBLOCK: a FIFO swapped in after the lstat must not hang the listing
    fh = await fsp.open(file, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) return undefined;
    const head = Buffer.alloc(SNIFF_BYTES);
    const { bytesRead } = await fh.read(head, 0, SNIFF_BYTES, 0);
    return classifySnapshotHead(name, st.size, head.subarray(0, bytesRead));
  } catch {
    return undefined;
  } finally {
    await fh.close();
  }
}

/**
 * Whether `name` in `dir` is a snapshot by the module's rule: `'scheme'`, `'foreign'`, or
 * undefined (not a snapshot, or gone). `st` is the entry's `lstat`, when the caller has it.
 */
export async function snapshotKind(dir: string, name: string, st?: Stats): Promise<SnapshotKind | undefined> {
  if (!isCandidateName(name)) return undefined;
  const file = path.join(dir, name);
  let stats = st;
  if (!stats) {
    try {
      stats = await fsp.lstat(file);
    } catch {
      return undefined;
    }
  }
  if (!stats.isFile()) return undefined;
  if (parseSnapshotName(name)) return 'scheme';
  return (await sniff(file, name)) ? 'foreign' : undefined;
}
