/**
 * k3s's compressed snapshot format, written while streaming: a zip holding ONE deflated
 * entry. The entry is compressed by `ParallelDeflate` (off the main thread, several blocks at
 * once); nothing is buffered beyond its bounded blocks, nothing goes through a temp file.
 *
 * Layout (the sizes are unknown when the local header is written, so it is always ZIP64, as
 * Info-ZIP's `zip` writes a stream of unknown size):
 * - local file header: version needed 4.5, flags bit 3 (sizes and CRC in a data descriptor)
 *   and bit 11 (UTF-8 name), method 8 (deflate), DOS time of `mtime` (local time, as yazl),
 *   CRC and sizes 0, and a ZIP64 extra field (0x0001) with both sizes 0;
 * - the raw deflate data;
 * - a ZIP64 data descriptor: signature 0x08074b50, CRC-32, compressed and uncompressed size
 *   as 8-byte numbers (24 bytes; the local ZIP64 extra is what tells a streaming reader so);
 * - the central directory record, as yazl writes it with `forceZip64Format`: version made by
 *   3.63 (unix), external attributes = mode 0100600 << 16, an Info-ZIP "UT" extra (mtime in
 *   UTC seconds) and a ZIP64 extra with uncompressed size, compressed size and local header
 *   offset, their 32-bit fields set to 0xFFFFFFFF;
 * - a ZIP64 end of central directory record and locator, then the classic end record with
 *   its counts and offsets set to 0xFFFF / 0xFFFFFFFF.
 * Checked with Info-ZIP `unzip -t`, Python's `zipfile` and yauzl (test/codec-compress.test.ts).
 * Go's archive/zip (k3s) reads the sizes from the central directory's ZIP64 extra and only the
 * CRC from the data descriptor, so it is indifferent to the descriptor's 8-byte sizes.
 */
import { pipeline, Readable } from 'node:stream';
import { ParallelDeflate } from './deflate-parallel.js';
import { ZIP_DEFLATE_LEVEL } from './levels.js';

export interface ZipEntryOptions {
  /** Deflate level 1..9; default `ZIP_DEFLATE_LEVEL`. */
  level?: number;
}

const FLAG_DATA_DESCRIPTOR = 1 << 3;
const FLAG_UTF8 = 1 << 11;
const FLAGS = FLAG_DATA_DESCRIPTOR | FLAG_UTF8;
const METHOD_DEFLATE = 8;
const VERSION_NEEDED_ZIP64 = 45;
const VERSION_MADE_BY_UNIX = (3 << 8) | 63;
const MODE_FILE_0600 = 0o100600;
const MAX32 = 0xffffffff;

/** DOS date and time of `d` in local time, clamped to 1980..2107 (as yazl). */
export function dosDateTime(d: Date): { date: number; time: number } {
  const min = new Date(1980, 0, 1);
  const max = new Date(2107, 11, 31, 23, 59, 58);
  const t = Number.isNaN(d.getTime()) || d < min ? min : d > max ? max : d;
  const date = (t.getDate() & 0x1f) | (((t.getMonth() + 1) & 0xf) << 5) | (((t.getFullYear() - 1980) & 0x7f) << 9);
  const time = Math.floor(t.getSeconds() / 2) | ((t.getMinutes() & 0x3f) << 5) | ((t.getHours() & 0x1f) << 11);
  return { date, time };
}

/** The facts of the written entry that the trailer records. */
export interface ZipEntryFacts {
  name: Buffer;
  mtime: Date;
  crc32: number;
  compressedBytes: number;
  uncompressedBytes: number;
}

/** Local file header with its ZIP64 extra (sizes 0: they follow in the data descriptor). */
export function zipLocalHeader(name: Buffer, mtime: Date): Buffer {
  const { date, time } = dosDateTime(mtime);
  const b = Buffer.alloc(30 + name.length + 20);
  b.writeUInt32LE(0x04034b50, 0);
  b.writeUInt16LE(VERSION_NEEDED_ZIP64, 4);
  b.writeUInt16LE(FLAGS, 6);
  b.writeUInt16LE(METHOD_DEFLATE, 8);
  b.writeUInt16LE(time, 10);
  b.writeUInt16LE(date, 12);
  // CRC-32, compressed and uncompressed size (12 bytes at 14): 0, in the data descriptor
  b.writeUInt16LE(name.length, 26);
  b.writeUInt16LE(20, 28);
  name.copy(b, 30);
  const x = 30 + name.length;
  b.writeUInt16LE(0x0001, x); // ZIP64 extended information
  b.writeUInt16LE(16, x + 2); // original size, compressed size: 0 here
  return b;
}

/**
 * Everything after the entry's data: data descriptor, central directory, ZIP64 end of
 * central directory record and locator, end of central directory record. The local header
 * is at offset 0 and `headerBytes` long.
 */
export function zipTrailer(f: ZipEntryFacts, headerBytes: number): Buffer {
  const descriptor = Buffer.alloc(24);
  descriptor.writeUInt32LE(0x08074b50, 0);
  descriptor.writeUInt32LE(f.crc32 >>> 0, 4);
  descriptor.writeBigUInt64LE(BigInt(f.compressedBytes), 8);
  descriptor.writeBigUInt64LE(BigInt(f.uncompressedBytes), 16);

  const { date, time } = dosDateTime(f.mtime);
  const cd = Buffer.alloc(46 + f.name.length + 9 + 28);
  cd.writeUInt32LE(0x02014b50, 0);
  cd.writeUInt16LE(VERSION_MADE_BY_UNIX, 4);
  cd.writeUInt16LE(VERSION_NEEDED_ZIP64, 6);
  cd.writeUInt16LE(FLAGS, 8);
  cd.writeUInt16LE(METHOD_DEFLATE, 10);
  cd.writeUInt16LE(time, 12);
  cd.writeUInt16LE(date, 14);
  cd.writeUInt32LE(f.crc32 >>> 0, 16);
  cd.writeUInt32LE(MAX32, 20); // compressed size: in the ZIP64 extra
  cd.writeUInt32LE(MAX32, 24); // uncompressed size: in the ZIP64 extra
  cd.writeUInt16LE(f.name.length, 28);
  cd.writeUInt16LE(9 + 28, 30);
  // file comment length, disk number start, internal attributes (6 bytes at 32): 0
  cd.writeUInt32LE((MODE_FILE_0600 << 16) >>> 0, 38);
  cd.writeUInt32LE(MAX32, 42); // local header offset: in the ZIP64 extra
  f.name.copy(cd, 46);
  let x = 46 + f.name.length;
  cd.writeUInt16LE(0x5455, x); // Info-ZIP extended timestamp "UT"
  cd.writeUInt16LE(5, x + 2);
  cd.writeUInt8(0b11, x + 4); // mtime (and atime, as Info-ZIP: the central copy holds mtime only)
  const unix = Math.floor(f.mtime.getTime() / 1000);
  cd.writeInt32LE(Number.isNaN(unix) ? 0 : Math.max(-0x80000000, Math.min(0x7fffffff, unix)), x + 5);
  x += 9;
  cd.writeUInt16LE(0x0001, x); // ZIP64 extended information
  cd.writeUInt16LE(24, x + 2);
  cd.writeBigUInt64LE(BigInt(f.uncompressedBytes), x + 4);
  cd.writeBigUInt64LE(BigInt(f.compressedBytes), x + 12);
  cd.writeBigUInt64LE(0n, x + 20); // the local header is at offset 0

  const cdOffset = headerBytes + f.compressedBytes + descriptor.length;
  const eocd64Offset = cdOffset + cd.length;
  const eocd64 = Buffer.alloc(56);
  eocd64.writeUInt32LE(0x06064b50, 0);
  eocd64.writeBigUInt64LE(BigInt(56 - 12), 4);
  eocd64.writeUInt16LE(VERSION_MADE_BY_UNIX, 12);
  eocd64.writeUInt16LE(VERSION_NEEDED_ZIP64, 14);
  // this disk, disk of the central directory (8 bytes at 16): 0
  eocd64.writeBigUInt64LE(1n, 24); // entries on this disk
  eocd64.writeBigUInt64LE(1n, 32); // entries in all
  eocd64.writeBigUInt64LE(BigInt(cd.length), 40);
  eocd64.writeBigUInt64LE(BigInt(cdOffset), 48);

  const locator = Buffer.alloc(20);
  locator.writeUInt32LE(0x07064b50, 0);
  locator.writeBigUInt64LE(BigInt(eocd64Offset), 8);
  locator.writeUInt32LE(1, 16); // total number of disks

  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(0xffff, 8);
  eocd.writeUInt16LE(0xffff, 10);
  eocd.writeUInt32LE(MAX32, 12);
  eocd.writeUInt32LE(MAX32, 16);
  return Buffer.concat([descriptor, cd, eocd64, locator, eocd]);
}

async function* zipBytes(source: Readable, name: Buffer, mtime: Date, level: number): AsyncGenerator<Buffer> {
  const header = zipLocalHeader(name, mtime);
  yield header;
  const deflate = new ParallelDeflate({ level });
  // pipeline: an error of `source` fails `deflate` (and so this generator); stopping early
  // (the returned stream destroyed) destroys `deflate` below and, through pipeline, `source`.
  pipeline(source, deflate, () => undefined);
  try {
    for await (const chunk of deflate) yield chunk as Buffer;
  } finally {
    if (!deflate.readableEnded) deflate.destroy();
  }
  const { crc32, compressedBytes, uncompressedBytes } = deflate;
  yield zipTrailer({ name, mtime, crc32, compressedBytes, uncompressedBytes }, header.length);
}

/**
 * Wraps `source` as the single entry `entryName` of a zip; returns the zip byte stream.
 * An error of `source` (or of the compressor) fails the returned stream; destroying the
 * returned stream stops the compression and destroys `source`.
 */
export function zipSingleEntry(source: Readable, entryName: string, mtime: Date, opts: ZipEntryOptions = {}): Readable {
  const name = Buffer.from(entryName, 'utf8');
  if (name.length === 0 || name.length > 0xffff) throw new RangeError(`zip entry name must be 1..65535 bytes, got ${name.length}`);
  const out = Readable.from(zipBytes(source, name, mtime, opts.level ?? ZIP_DEFLATE_LEVEL), { objectMode: false });
  // Listened to at once: an error before the first read fails `out` (never an unhandled 'error').
  source.on('error', (err: Error) => out.destroy(err));
  return out;
}
