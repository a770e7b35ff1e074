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

/** CRC-32C's polynomial, reflected. */
const POLY = 0x82f63b78;

/** a × b modulo the CRC polynomial (reflected bit order), as zlib's multmodp. */
function multmodp(a: number, b: number): number {
  let m = 0x80000000;
  let p = 0;
  for (;;) {
    if ((a & m) !== 0) {
      p ^= b;
      if ((a & (m - 1)) === 0) break;
    }
    m >>>= 1;
    b = b & 1 ? (b >>> 1) ^ POLY : b >>> 1;
  }
  return p >>> 0;
}

/** x^(2^k) modulo the polynomial, k = 0..63. */
const X2N: number[] = [];
{
  let p = 0x40000000; // x^1
  for (let k = 0; k < 64; k++) {
    X2N.push(p);
    p = multmodp(p, p);
  }
}

/**
 * Per k, the map c ↦ c·x^(2^k) modulo the polynomial as four 256-entry tables, one per byte of
 * c (the map is linear over GF(2)); built on first use.
 */
const SHIFT: Array<Uint32Array | undefined> = [];

function shiftTable(k: number): Uint32Array {
  let t = SHIFT[k];
  if (t === undefined) {
    t = new Uint32Array(1024);
    const a = X2N[k] as number;
    for (let byte = 0; byte < 4; byte++) for (let v = 0; v < 256; v++) t[byte * 256 + v] = multmodp(a, (v << (8 * byte)) >>> 0);
    SHIFT[k] = t;
  }
  return t;
}

/**
 * CRC-32C of A‖B from CRC-32C(A), CRC-32C(B) and the length of B (as zlib's crc32_combine):
 * lets checksums of pieces computed in one order be chained in another. CRC(A) is multiplied
 * by x^(8·lenB), one table lookup per byte for each bit of 8·lenB.
 */
export function crc32cCombine(crcA: number, crcB: number, lenB: number): number {
  let c = crcA >>> 0;
  let k = 3;
  for (let n = lenB; n > 0; n = Math.floor(n / 2), k++) {
    if (n % 2 === 1) {
      const t = shiftTable(k & 63);
      c = ((t[c & 255] as number) ^ (t[256 + ((c >>> 8) & 255)] as number) ^ (t[512 + ((c >>> 16) & 255)] as number) ^ (t[768 + (c >>> 24)] as number)) >>> 0;
    }
  }
  return (c ^ (crcB >>> 0)) >>> 0;
}
