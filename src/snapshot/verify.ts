/**
 * etcd's snapshot integrity check, done while the bytes stream past (no second read).
 * An etcd snapshot is a bbolt database followed by a 32-byte sha256 of that database, so
 * a valid stream has `size % 512 == 32` and its last 32 bytes equal the sha256 of the rest.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { EtcdsnapError } from '../errors.js';

export const TRAILER_BYTES = 32;

/**
 * A pass-through Transform that checks the sha256 trailer. Bytes flow on unchanged; at the
 * end it fails the stream with an `integrity` error unless the trailer is right, so a
 * pipeline that ends in a `.part` file rejects before the file gets a final name.
 */
export class TrailerVerifier extends Transform {
  private readonly hash: Hash = createHash('sha256');
  private tail: Buffer = Buffer.alloc(0);
  /** Bytes seen so far. */
  size = 0;
  /** Hex sha256 of the database part, once verified. */
  dbSha256: string | undefined;
  /** Hex sha256 of the whole stream (database and trailer), once verified. */
  streamSha256: string | undefined;

  /** @param onBytes told `size` after each chunk (a save's progress); must not throw. */
  constructor(private readonly onBytes?: (size: number) => void) {
    // Stryker disable next-line ObjectLiteral: a throughput setting (buffer size), not behaviour
    super({ highWaterMark: 1 << 20 });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.size += chunk.length;
    this.onBytes?.(this.size);
    // Stryker disable next-line ConditionalExpression,EqualityOperator: equivalent; the copying path below gives the same hashes
    if (chunk.length >= TRAILER_BYTES) {
      // everything but the last 32 bytes seen so far is database: hash it without copying
      // Stryker disable next-line ConditionalExpression,EqualityOperator: equivalent; hashing an empty tail is a no-op
      if (this.tail.length > 0) this.hash.update(this.tail);
      this.hash.update(chunk.subarray(0, chunk.length - TRAILER_BYTES));
      this.tail = Buffer.from(chunk.subarray(chunk.length - TRAILER_BYTES));
    } else {
      const all = Buffer.concat([this.tail, chunk]);
      const cut = Math.max(0, all.length - TRAILER_BYTES);
      // Stryker disable next-line ConditionalExpression,EqualityOperator: equivalent; hashing an empty slice is a no-op
      if (cut > 0) this.hash.update(all.subarray(0, cut));
      this.tail = all.subarray(cut);
    }
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    if (this.size % 512 !== TRAILER_BYTES) {
      cb(new EtcdsnapError('integrity', `snapshot has no sha256 trailer (size ${this.size} is not 512*n+32): it is truncated or not an etcd snapshot`));
      return;
    }
    // the same pass also yields the hash of the whole stream (the stored file when uncompressed)
    const whole = this.hash.copy().update(this.tail);
    const digest = this.hash.digest();
    if (!digest.equals(this.tail)) {
      cb(new EtcdsnapError('integrity', 'snapshot sha256 trailer does not match its content: the file is corrupt'));
      return;
    }
    this.dbSha256 = digest.toString('hex');
    this.streamSha256 = whole.digest('hex');
    cb();
  }
}

/** A pass-through Transform that counts bytes and computes their sha256. */
export class HashCounter extends Transform {
  private readonly hash: Hash = createHash('sha256');
  size = 0;
  sha256: string | undefined;

  constructor() {
    // Stryker disable next-line ObjectLiteral: a throughput setting (buffer size), not behaviour
    super({ highWaterMark: 1 << 20 });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.size += chunk.length;
    this.hash.update(chunk);
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    this.sha256 = this.hash.digest('hex');
    cb();
  }
}

/**
 * A HashCounter that fails the stream at its end unless the sha256 of what passed is
 * `expected`: a consumer of its output (an upload) never completes with other bytes.
 */
export class ExpectSha256 extends HashCounter {
  constructor(
    private readonly expected: string | undefined,
    private readonly what: string,
  ) {
    super();
  }

  override _flush(cb: TransformCallback): void {
    super._flush((err) => {
      // Stryker disable next-line ConditionalExpression: equivalent; HashCounter's flush never passes an error
      if (err) return cb(err);
      if (this.expected !== undefined && this.sha256 !== this.expected) {
        return cb(new EtcdsnapError('integrity', `${this.what} no longer matches its recorded sha256`));
      }
      cb();
    });
  }
}

/** Verifies an uncompressed snapshot file on disk; resolves with its size, or throws `integrity`. */
export async function verifySnapshotFile(file: string): Promise<{ size: number }> {
  const v = new TrailerVerifier();
  await pipeline(createReadStream(file), v, async (src: AsyncIterable<Buffer>) => {
    for await (const _chunk of src) {
      /* drain: the verifier does the work */
    }
  });
  return { size: v.size };
}
