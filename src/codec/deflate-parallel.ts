/**
 * Raw deflate (RFC 1951) compressed off the main thread, several blocks at a time, the way
 * pigz does it: the input is cut into independent blocks of `blockSize` bytes, each block is
 * deflated by `zlib.deflateRaw` (libuv's thread pool) with `Z_SYNC_FLUSH`, so that it ends
 * byte-aligned and not final, and primed with the last 32 KiB of the block before it as a
 * dictionary (back-references may reach into it: the decoder's window holds those bytes, so
 * the ratio is almost that of one stream). The outputs are emitted in input order and, after
 * the last block, the empty final block `03 00`: the concatenation is ONE valid raw deflate
 * stream, readable by any inflater (zip method 8, gzip members).
 *
 * Memory is bounded: at most `maxInFlight` blocks are being compressed or waiting to be
 * emitted; the writable side waits (backpressure) until the oldest one is emitted, and the
 * readable side's backpressure holds the writable side as usual for a Transform.
 *
 * Also computed, readable once the stream has emitted 'end' (or 'finish'): the CRC-32 of the
 * uncompressed bytes (`crc32`, as zip and gzip want it), `uncompressedBytes` and
 * `compressedBytes` (what was pushed, final block included). Numbers, exact up to 2^53.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { promisify } from 'node:util';
import zlib from 'node:zlib';

const deflateRaw = promisify(zlib.deflateRaw);

/** The final, empty, fixed-Huffman block that ends the stream (BFINAL=1, BTYPE=01, EOB). */
export const FINAL_EMPTY_BLOCK: Buffer = Buffer.from([0x03, 0x00]);

/** Bytes of input per independent block (1 MiB: see the measurements in codec/levels.ts). */
export const DEFAULT_BLOCK_SIZE = 1024 * 1024;
/** Blocks compressed at once: the thread pool has 4 threads; 2 cores keep 2 busy, 4 hides latency. */
export const DEFAULT_MAX_IN_FLIGHT = 4;
/** Deflate's window: the dictionary carried from one block to the next. */
const WINDOW = 32 * 1024;

export interface ParallelDeflateOptions {
  /** zlib level 1..9 (0 stores); default 6 as zlib's own default, callers pass theirs. */
  level?: number;
  /** Bytes per block (≥ 64 KiB). */
  blockSize?: number;
  /** Blocks in flight at most (≥ 1). */
  maxInFlight?: number;
}

export class ParallelDeflate extends Transform {
  /** CRC-32 of the uncompressed bytes seen so far; final after 'end'. */
  crc32 = 0;
  /** Uncompressed bytes seen so far; final after 'end'. */
  uncompressedBytes = 0;
  /** Compressed bytes pushed so far; final after 'end'. */
  compressedBytes = 0;

  private readonly level: number;
  private readonly blockSize: number;
  private readonly maxInFlight: number;
  /** Pending input of the block being filled. */
  private parts: Buffer[] = [];
  private partsBytes = 0;
  /** The last WINDOW bytes of the previous block, the next block's dictionary. */
  private dictionary: Buffer | undefined;
  /** Blocks being compressed, oldest first. */
  private readonly queue: Promise<Buffer>[] = [];

  constructor(opts: ParallelDeflateOptions = {}) {
    super();
    this.level = opts.level ?? 6;
    this.blockSize = opts.blockSize ?? DEFAULT_BLOCK_SIZE;
    this.maxInFlight = opts.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
    if (!Number.isInteger(this.level) || this.level < 0 || this.level > 9) throw new RangeError(`deflate level must be 0..9, got ${this.level}`);
    if (!Number.isInteger(this.blockSize) || this.blockSize < 64 * 1024) throw new RangeError(`deflate block size must be ≥ 64 KiB, got ${this.blockSize}`);
    if (!Number.isInteger(this.maxInFlight) || this.maxInFlight < 1) throw new RangeError(`blocks in flight must be ≥ 1, got ${this.maxInFlight}`);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.crc32 = zlib.crc32(chunk, this.crc32);
    this.uncompressedBytes += chunk.length;
    this.cut(chunk).then(() => callback(), callback);
  }

  /** Cuts `chunk` into blocks; never more than `maxInFlight` of them in flight, however large it is. */
  private async cut(chunk: Buffer): Promise<void> {
    let rest = chunk;
    while (rest.length > 0) {
      const take = Math.min(rest.length, this.blockSize - this.partsBytes);
      this.parts.push(take === rest.length ? rest : rest.subarray(0, take));
      this.partsBytes += take;
      rest = rest.subarray(take);
      if (this.partsBytes === this.blockSize) {
        this.startBlock();
        await this.settle(this.maxInFlight - 1);
        if (this.destroyed) return;
      }
    }
  }

  override _flush(callback: TransformCallback): void {
    if (this.partsBytes > 0) this.startBlock();
    this.settle(0).then(() => {
      if (!this.destroyed) this.emitBytes(FINAL_EMPTY_BLOCK);
      callback();
    }, callback);
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.parts = [];
    // The blocks in flight finish in the thread pool; their results (or errors) are dropped.
    for (const p of this.queue.splice(0)) p.catch(() => undefined);
    callback(err);
  }

  /** Starts compressing the pending input as one block. */
  private startBlock(): void {
    const block = this.parts.length === 1 ? (this.parts[0] as Buffer) : Buffer.concat(this.parts, this.partsBytes);
    this.parts = [];
    this.partsBytes = 0;
    // chunkSize ≥ deflate's worst case for the block: one thread-pool call per block, not one per 16 KiB of output.
    const chunkSize = block.length + (block.length >> 8) + 1024;
    const opts: zlib.ZlibOptions = { level: this.level, finishFlush: zlib.constants.Z_SYNC_FLUSH, chunkSize };
    if (this.dictionary !== undefined) opts.dictionary = this.dictionary;
    const job = deflateRaw(block, opts);
    job.catch(() => undefined); // awaited in order by settle(); never an unhandled rejection meanwhile
    this.queue.push(job);
    // A copy: `block` may be a caller's chunk, which the caller may reuse once we are done with it.
    this.dictionary = Buffer.from(block.subarray(Math.max(0, block.length - WINDOW)));
  }

  /** Emits finished blocks in order until at most `keep` are left in flight. */
  private async settle(keep: number): Promise<void> {
    while (this.queue.length > keep) {
      const out = await (this.queue[0] as Promise<Buffer>);
      this.queue.shift();
      if (this.destroyed) return;
      // zlib's output is a view of a block-sized buffer (chunkSize): copied when much smaller,
      // so that consumers holding many chunks (an upload part) do not hold 4× their bytes.
      this.emitBytes(out.length * 2 < out.buffer.byteLength ? Buffer.from(out) : out);
    }
  }

  private emitBytes(buf: Buffer): void {
    this.compressedBytes += buf.length;
    this.push(buf);
  }
}
