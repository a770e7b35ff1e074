/**
 * The newest position of each distinct key, keyed by the key's bytes, for the live-key count
 * of the status pass (status-seq.ts): an open-addressing hash table over typed arrays, the key
 * bytes kept once in an arena. No string and no object per key (a `Map<string, number>` with a
 * latin1 string per KeyValue cost about half a microsecond per entry); keys are compared byte
 * for byte on a hash match, so two keys never merge. Memory: the distinct keys' bytes plus
 * about 40 bytes per key.
 */
import { grown } from './grow.js';

/** FNV-1a 32 of `buf[start..end)`. */
function fnv1a32(buf: Uint8Array, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) h = Math.imul(h ^ (buf[i] as number), 0x01000193);
  return h >>> 0;
}

export class KeyPositions {
  private arena = new Uint8Array(1 << 16);
  private used = 0;
  private keyAt = new Float64Array(1024);
  private keyLen = new Uint32Array(1024);
  private hashes = new Uint32Array(1024);
  private positions = new Float64Array(1024);
  /** Entry index + 1 per slot (0: empty); a power of two, at most half full. */
  private table = new Int32Array(2048);
  private count = 0;

  /** Distinct keys seen. */
  get size(): number {
    return this.count;
  }

  /**
   * Records `position` for the key `buf[start..end)` when the key is new or its recorded
   * position is smaller in absolute value (a negative position marks a deletion).
   */
  newest(buf: Uint8Array, start: number, end: number, position: number): void {
    const h = fnv1a32(buf, start, end);
    const len = end - start;
    const mask = this.table.length - 1;
    for (let s = h & mask; ; s = (s + 1) & mask) {
      const e = (this.table[s] as number) - 1;
      if (e < 0) {
        this.insert(s, h, buf, start, end, position);
        return;
      }
      if (this.hashes[e] === h && this.keyLen[e] === len && this.same(e, buf, start, len)) {
        if (Math.abs(this.positions[e] as number) < Math.abs(position)) this.positions[e] = position;
        return;
      }
    }
  }

  /** Keys whose newest position is positive (not a deletion). */
  countPositive(): number {
    let n = 0;
    for (let e = 0; e < this.count; e++) if ((this.positions[e] as number) > 0) n++;
    return n;
  }

  private same(e: number, buf: Uint8Array, start: number, len: number): boolean {
    const at = this.keyAt[e] as number;
    const arena = this.arena;
    for (let i = 0; i < len; i++) if (arena[at + i] !== buf[start + i]) return false;
    return true;
  }

  private insert(slot: number, h: number, buf: Uint8Array, start: number, end: number, position: number): void {
    const e = this.count;
    if (e === this.hashes.length) this.growEntries();
    const len = end - start;
    if (this.used + len > this.arena.length) {
      const a = new Uint8Array(Math.max(this.arena.length * 2, this.used + len));
      a.set(this.arena.subarray(0, this.used));
      this.arena = a;
    }
    const arena = this.arena;
    for (let i = 0; i < len; i++) arena[this.used + i] = buf[start + i] as number;
    this.keyAt[e] = this.used;
    this.keyLen[e] = len;
    this.hashes[e] = h;
    this.positions[e] = position;
    this.used += len;
    this.count++;
    this.table[slot] = e + 1;
    if (this.count * 2 > this.table.length) this.rehash();
  }

  private growEntries(): void {
    const n = this.hashes.length * 2;
    this.keyAt = grown(this.keyAt, n);
    this.keyLen = grown(this.keyLen, n);
    this.hashes = grown(this.hashes, n);
    this.positions = grown(this.positions, n);
  }

  private rehash(): void {
    const table = new Int32Array(this.table.length * 2);
    const mask = table.length - 1;
    for (let e = 0; e < this.count; e++) {
      let s = (this.hashes[e] as number) & mask;
      while (table[s] !== 0) s = (s + 1) & mask;
      table[s] = e + 1;
    }
    this.table = table;
  }
}
