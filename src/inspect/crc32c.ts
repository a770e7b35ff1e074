/**
 * A streaming CRC-32C (Castagnoli), the checksum `etcdctl snapshot status` prints as "hash",
 * computed with the native `@node-rs/crc32`. Small pieces (most bbolt keys and values) are
 * copied into a 1 MiB staging buffer and checksummed together, so a walk over millions of
 * small entries makes thousands of native calls, not millions; the result is the same, as
 * CRC-32C of a concatenation is the chain of the pieces.
 */
import { crc32c } from '@node-rs/crc32';

const STAGE = 1 << 20;
const DIRECT = 4 * 1024;

export class Crc32c {
  private crc = 0;
  private readonly stage = Buffer.allocUnsafe(STAGE);
  private used = 0;

  /** Adds `buf[start..end)`. */
  update(buf: Buffer, start = 0, end = buf.length): void {
    const len = end - start;
    if (len === 0) return;
    if (len >= DIRECT) {
      this.flush();
      this.crc = crc32c(buf.subarray(start, end), this.crc);
      return;
    }
    if (this.used + len > STAGE) this.flush();
    buf.copy(this.stage, this.used, start, end);
    this.used += len;
  }

  private flush(): void {
    if (this.used === 0) return;
    this.crc = crc32c(this.stage.subarray(0, this.used), this.crc);
    this.used = 0;
  }

  /** The checksum of everything added so far, as an unsigned 32-bit number. */
  digest(): number {
    this.flush();
    return this.crc >>> 0;
  }
}
