/**
 * gzip (RFC 1952) streams.
 *
 * `createGzipStream` writes ONE member: a 10-byte header (no name, mtime 0, OS 3 = unix), the
 * body compressed by `ParallelDeflate` (off the main thread, several blocks at once), then
 * the CRC-32 and the size mod 2^32 of the uncompressed data. `gzip -d`, `zcat`, `pigz` and
 * zlib read it.
 *
 * `createGunzipStream` reads what `gzip -c` writes, with zlib (which checks every member's
 * CRC-32 and ISIZE). Decisions, all failing the stream with an `integrity` EtcdsnapError:
 * - several members one after the other (`cat a.gz b.gz`) are accepted and their data
 *   concatenated, as RFC 1952 and `gzip -d` do;
 * - anything else after the last member is refused, zero padding included (zlib would skip
 *   zeros silently; `gzip -d` warns about "trailing garbage"): a snapshot file holds one
 *   compressed snapshot and nothing else;
 * - a truncated stream, a damaged one (bad header, bad deflate data, CRC or size mismatch)
 *   and an empty one are refused.
 */
import { Transform, type TransformCallback } from 'node:stream';
import zlib from 'node:zlib';
import { EtcdsnapError, messageOf } from '../errors.js';
import { ParallelDeflate } from './deflate-parallel.js';
import { GZIP_DEFLATE_LEVEL } from './levels.js';

export interface GzipOptions {
  /** Deflate level 1..9; default `GZIP_DEFLATE_LEVEL`. */
  level?: number;
}

const OS_UNIX = 3;

/** The 10-byte member header: magic, method 8, no flags, mtime 0, XFL, OS. */
function gzipHeader(level: number): Buffer {
  const h = Buffer.from([0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, OS_UNIX]);
  h[8] = level >= 9 ? 2 : level <= 1 ? 4 : 0; // XFL: slowest / fastest / other
  return h;
}

/** One gzip member around a ParallelDeflate body. */
class GzipStream extends ParallelDeflate {
  private headerSent = false;
  private readonly header: Buffer;

  constructor(level: number) {
    super({ level });
    this.header = gzipHeader(level);
  }

  private sendHeader(): void {
    if (this.headerSent) return;
    this.headerSent = true;
    this.push(this.header);
  }

  override _transform(chunk: Buffer, encoding: BufferEncoding, callback: TransformCallback): void {
    this.sendHeader();
    super._transform(chunk, encoding, callback);
  }

  override _flush(callback: TransformCallback): void {
    this.sendHeader();
    super._flush((err) => {
      if (err) return callback(err);
      const trailer = Buffer.alloc(8);
      trailer.writeUInt32LE(this.crc32 >>> 0, 0);
      trailer.writeUInt32LE(this.uncompressedBytes % 2 ** 32, 4);
      this.push(trailer);
      callback();
    });
  }
}

/** A gzip compressor: uncompressed bytes in, one gzip member out. */
export function createGzipStream(opts: GzipOptions = {}): Transform {
  return new GzipStream(opts.level ?? GZIP_DEFLATE_LEVEL);
}

const damaged = (why: string, cause?: unknown): EtcdsnapError =>
  new EtcdsnapError('integrity', `gzip data is damaged or truncated (${why}): the file is not a complete gzip file; use another copy`, { cause });

/** zlib's gunzip with the checks of the module comment; errors are `integrity` EtcdsnapErrors. */
class GunzipStream extends Transform {
  private readonly inner = zlib.createGunzip();
  private fed = 0;
  private flushed: TransformCallback | undefined;

  constructor() {
    super();
    this.inner.on('data', (d: Buffer) => {
      if (!this.push(d)) this.inner.pause();
    });
    this.inner.on('error', (err: Error) => this.destroy(damaged(messageOf(err), err)));
    this.inner.on('end', () => {
      const done = this.flushed;
      if (done === undefined) return;
      if (this.fed === 0) return done(damaged('no data'));
      const extra = this.fed - this.inner.bytesWritten;
      done(extra > 0 ? damaged(`${extra} bytes after the end of the compressed data`) : null);
    });
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.fed += chunk.length;
    if (this.inner.write(chunk)) callback();
    else this.inner.once('drain', () => callback());
  }

  override _flush(callback: TransformCallback): void {
    this.flushed = callback;
    this.inner.end();
  }

  override _read(size: number): void {
    this.inner.resume();
    super._read(size);
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.inner.destroy();
    callback(err);
  }
}

/** A gzip decompressor: gzip bytes in, uncompressed bytes out (see the module comment). */
export function createGunzipStream(): Transform {
  return new GunzipStream();
}
