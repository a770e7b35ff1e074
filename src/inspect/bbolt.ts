/**
 * A read-only bbolt database file, read by page with positional reads (never whole): picks the
 * meta page (valid magic, version and FNV-1a checksum; the higher txid of the two valid ones),
 * lists the top-level buckets and walks a bucket's B+tree in key order.
 *
 * Reads go through a small cache of aligned 256 KiB windows (a full walk reads the file in a
 * few thousand syscalls, not one per page); a page larger than a window (a long overflow) is
 * read in one read into a scratch buffer. Memory stays bounded: 16 windows, one scratch as big
 * as the largest page, the copies of the branch pages on the current path.
 *
 * Every step is checked: a page id below the high-water mark and inside the file, the page's
 * header naming its own id, the page type its parent expects, element offsets inside the page,
 * keys strictly increasing in a walk, and — with a `Walk` — no page reached twice. A violation
 * throws `Damage` (bbolt-page.ts); the caller names the file in the `integrity` error.
 *
 * Visitors get views into buffers that are reused after they return, and must not read pages
 * of the same file themselves.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import {
  BRANCH,
  BUCKET_LEAF,
  type BucketRef,
  branchChild,
  checkElements,
  Damage,
  LEAF,
  type LeafElement,
  leafElement,
  type Meta,
  PAGE_HEADER,
  pageHeader,
  parseBucket,
  parseMeta,
} from './bbolt-page.js';

export { Damage, type BucketRef, type LeafElement, type Meta } from './bbolt-page.js';

const WINDOW = 512 * 1024;
const WINDOWS = 16;
const SMALL_READ = 16 * 1024;
const MAX_DEPTH = 64;
export const SHA256_TRAILER = 32;

/** Called for each element in key order; `buf[el.keyStart..el.keyEnd]` is the key, `buf[el.keyEnd..el.valueEnd]` the value. */
export type Visitor = (buf: Buffer, el: LeafElement) => void;

/** The pages reached by one full walk: a bitmap over page ids. */
export class Walk {
  private readonly seen: Uint8Array;
  constructor(pages: number) {
    this.seen = new Uint8Array(Math.ceil(pages / 8));
  }
  mark(id: number, overflow: number): void {
    for (let p = id; p <= id + overflow; p++) {
      const bit = 1 << (p & 7);
      const byte = p >>> 3;
      if (((this.seen[byte] ?? 0) & bit) !== 0) throw new Damage(`page ${p} is reached twice`);
      this.seen[byte] = (this.seen[byte] ?? 0) | bit;
    }
  }
}

interface Window {
  start: number;
  buf: Buffer;
  len: number;
  used: number;
}

export class BoltFile {
  readonly meta: Meta;
  readonly pageSize: number;
  /** Bytes of the file. */
  readonly fileSize: number;
  /** Bytes before the sha256 trailer (the whole file when it has none). */
  readonly dataSize: number;
  readonly hasTrailer: boolean;
  private readonly fd: number;
  private readonly windows: Window[] = [];
  private tick = 0;
  private lastMiss = -1;
  private scratch: Buffer = Buffer.alloc(0);
  private prevKey: Buffer = Buffer.alloc(256);
  private readonly el: LeafElement = { page: 0, index: 0, flags: 0, keyStart: 0, keyEnd: 0, valueEnd: 0 };

  /** Opens and checks the meta pages and the file size; throws `Damage` when they are wrong. */
  constructor(readonly file: string) {
    this.fd = openSync(file, 'r');
    try {
      this.fileSize = fstatSync(this.fd).size;
      this.meta = this.pickMeta();
      this.pageSize = this.meta.pageSize;
      const rest = this.fileSize % this.pageSize;
      if (rest !== 0 && rest !== SHA256_TRAILER) {
        throw new Damage(`size ${this.fileSize} is not a whole number of ${this.pageSize}-byte pages (nor that plus a 32-byte sha256): the file is truncated`);
      }
      this.hasTrailer = rest === SHA256_TRAILER;
      this.dataSize = this.fileSize - rest;
      const need = this.meta.pgid * this.pageSize;
      if (this.dataSize < need)
        throw new Damage(`the database needs ${need} bytes (${this.meta.pgid} pages) but the file holds ${this.dataSize}: it is truncated`);
    } catch (err) {
      closeSync(this.fd);
      throw err;
    }
  }

  close(): void {
    closeSync(this.fd);
  }

  /** bbolt's Tx.Size(): high-water page id × page size. */
  get size(): number {
    return this.meta.pgid * this.pageSize;
  }

  /** Reads exactly `len` bytes at `pos` into `buf` (Damage when the file ends first). */
  readAt(buf: Buffer, len: number, pos: number): void {
    let done = 0;
    while (done < len) {
      const n = readSync(this.fd, buf, done, len - done, pos + done);
      if (n === 0) throw new Damage(`the file ends at ${pos + done}, inside a page`);
      done += n;
    }
  }

  private pickMeta(): Meta {
    const size = this.fileSize;
    const first = Buffer.alloc(Math.min(size, 4096));
    this.readAt(first, first.length, 0);
    const m0 = parseMeta(first);
    const candidates = typeof m0 === 'string' ? [512, 1024, 2048, 4096, 8192, 16384, 32768, 65536] : [m0.pageSize];
    let m1: Meta | string = 'missing';
    for (const ps of candidates) {
      if (ps + 80 > size) continue;
      const page = Buffer.alloc(Math.min(4096, size - ps));
      this.readAt(page, page.length, ps);
      const m = parseMeta(page);
      if (typeof m !== 'string' && m.pageSize !== ps) continue;
      // when page 0 gives no page size, the reason reported is the one at 4096 (the usual size)
      if (typeof m !== 'string' || m1 === 'missing' || ps === 4096) m1 = m;
      if (typeof m !== 'string') break;
    }
    if (typeof m0 === 'string' && typeof m1 === 'string')
      throw new Damage(`no valid meta page (page 0: ${m0}; page 1: ${m1}): not a bbolt database, or both meta pages are corrupt`);
    if (typeof m0 === 'string') return m1 as Meta;
    if (typeof m1 === 'string') return m0;
    return m1.txid > m0.txid ? m1 : m0;
  }

  /**
   * Bytes `[pos, pos+len)` of the file: a buffer and the offset where they start in it. A miss
   * reads a window starting at `pos` (not aligned: a page that runs past an aligned boundary
   * would otherwise be read twice), evicting the least recently used one.
   */
  private range(pos: number, len: number, exact = false): { buf: Buffer; off: number } {
    const end = pos + len;
    if (end > this.dataSize) throw new Damage(`bytes ${pos}..${end} are beyond the database`);
    for (const w of this.windows) {
      if (pos >= w.start && end <= w.start + w.len) {
        w.used = ++this.tick;
        return { buf: w.buf, off: pos - w.start };
      }
    }
    if (len > WINDOW || exact) {
      if (this.scratch.length < len) this.scratch = Buffer.allocUnsafe(Math.max(len, this.scratch.length * 2));
      this.readAt(this.scratch, len, pos);
      return { buf: this.scratch, off: 0 };
    }
    // the most recently used window: when it holds the start of the range, that part is copied, not read again
    let last: Window | undefined;
    for (const x of this.windows) if (last === undefined || x.used > last.used) last = x;
    let w: Window | undefined;
    if (this.windows.length < WINDOWS) {
      w = { start: 0, buf: Buffer.allocUnsafe(WINDOW), len: 0, used: 0 };
      this.windows.push(w);
    } else {
      for (const x of this.windows) if (w === undefined || x.used < w.used) w = x;
    }
    const win = w as Window;
    // read ahead a whole window only when reading forward near the last miss (a run of pages);
    // a jump elsewhere reads just a few pages, not a window that would mostly go unused
    const ahead = pos >= this.lastMiss && pos <= this.lastMiss + 2 * WINDOW;
    this.lastMiss = pos;
    win.start = pos;
    win.len = Math.min(ahead ? WINDOW : Math.max(len, SMALL_READ), this.dataSize - pos);
    win.used = ++this.tick;
    let have = 0;
    if (last !== undefined && last !== win && pos >= last.start && pos < last.start + last.len) {
      have = Math.min(last.start + last.len - pos, win.len);
      last.buf.copy(win.buf, 0, pos - last.start, pos - last.start + have);
    }
    if (have < win.len) this.readAt(win.buf.subarray(have), win.len - have, pos + have);
    return { buf: win.buf, off: 0 };
  }

  /**
   * Page `id` with its overflow, checked: in bounds, self-identified, of the type wanted.
   * The view is valid until the next read. `exact`: a miss reads just the page (random
   * access), not a window.
   */
  private page(id: number, walk: Walk | null, exact = false): { buf: Buffer; off: number; end: number; flags: number; count: number } {
    if (id < 2 || id >= this.meta.pgid) throw new Damage(`page id ${id} is outside 2..${this.meta.pgid - 1}`);
    const pos = id * this.pageSize;
    const head = exact ? this.range(pos, this.pageSize, true) : this.range(pos, PAGE_HEADER);
    const h = pageHeader(head.buf, head.off);
    if (h.id !== id) throw new Damage(`page ${id} says it is page ${h.id}`);
    if (h.flags !== BRANCH && h.flags !== LEAF) throw new Damage(`page ${id} is not a branch or leaf page (flags 0x${h.flags.toString(16)})`);
    if (id + h.overflow >= this.meta.pgid) throw new Damage(`page ${id} overflows (${h.overflow} pages) past the high-water mark ${this.meta.pgid}`);
    walk?.mark(id, h.overflow);
    const len = (h.overflow + 1) * this.pageSize;
    const r = h.overflow === 0 && exact ? head : this.range(pos, len, exact);
    checkElements(r.off, r.off + len, h.count, `page ${id}`);
    return { buf: r.buf, off: r.off, end: r.off + len, flags: h.flags, count: h.count };
  }

  /** The checked header of page `id` (id in bounds, self-identified, branch or leaf, overflow in bounds). */
  header(id: number, buf?: Buffer, off = 0): { flags: number; count: number; overflow: number } {
    if (id < 2 || id >= this.meta.pgid) throw new Damage(`page id ${id} is outside 2..${this.meta.pgid - 1}`);
    const r = buf === undefined ? this.range(id * this.pageSize, PAGE_HEADER, true) : { buf, off };
    const h = pageHeader(r.buf, r.off);
    if (h.id !== id) throw new Damage(`page ${id} says it is page ${h.id}`);
    if (h.flags !== BRANCH && h.flags !== LEAF) throw new Damage(`page ${id} is not a branch or leaf page (flags 0x${h.flags.toString(16)})`);
    if (id + h.overflow >= this.meta.pgid) throw new Damage(`page ${id} overflows (${h.overflow} pages) past the high-water mark ${this.meta.pgid}`);
    return h;
  }

  /**
   * The leaf pages of a bucket's tree in key order, reading only its branch pages (marked in
   * `walk`) and one header per level: a bbolt B+tree is balanced, so when a branch's first
   * child is a leaf, all its children are taken as leaves (the caller checks each).
   */
  leafPages(root: number, walk: Walk): number[] {
    const out: number[] = [];
    const descend = (id: number, depth: number, knownBranch: boolean): void => {
      if (depth > MAX_DEPTH) throw new Damage(`the tree is deeper than ${MAX_DEPTH} at page ${id}`);
      if (!knownBranch && this.header(id).flags === LEAF) {
        out.push(id);
        return;
      }
      // branch pages lie anywhere in the file: read just the page, no window ahead
      const p = this.page(id, walk, true);
      if (p.flags !== BRANCH) throw new Damage(`page ${id} is not a branch page`);
      if (p.count === 0) throw new Damage(`branch page ${id} is empty`);
      const copy = Buffer.from(p.buf.subarray(p.off, p.end));
      const children: number[] = [];
      for (let i = 0; i < p.count; i++) children.push(branchChild(copy, 0, copy.length, i, `page ${id}`));
      if (this.header(children[0] as number).flags === LEAF) out.push(...children);
      else for (const c of children) descend(c, depth + 1, true);
    };
    descend(root, 0, false);
    return out;
  }

  /** The top-level buckets, in name order. */
  buckets(walk: Walk | null = null): Array<{ name: Buffer; ref: BucketRef }> {
    const out: Array<{ name: Buffer; ref: BucketRef }> = [];
    this.forEach({ root: this.meta.root, inline: null }, walk, (buf, el) => {
      const name = Buffer.from(buf.subarray(el.keyStart, el.keyEnd));
      if ((el.flags & BUCKET_LEAF) === 0) throw new Damage(`top-level entry "${name.toString('latin1')}" is not a bucket`);
      out.push({ name, ref: parseBucket(buf.subarray(el.keyEnd, el.valueEnd), `bucket "${name.toString('latin1')}"`) });
    });
    return out;
  }

  /**
   * Every element of a bucket in key order (nested buckets come with BUCKET_LEAF in `el.flags`);
   * `endPage` is called after the last element of each leaf page, while its buffer still holds it.
   */
  forEach(bucket: BucketRef, walk: Walk | null, visit: Visitor, endPage?: () => void): void {
    let prevLen = -1;
    const leaf = (buf: Buffer, off: number, end: number, count: number, page: number): void => {
      const what = page === 0 ? 'inline bucket' : `page ${page}`;
      // keys strictly increase: within the page against the previous element in place, across pages against a copy
      let ps = -1;
      let pe = -1;
      for (let i = 0; i < count; i++) {
        const el = leafElement(buf, off, end, i, what, this.el);
        el.page = page;
        const before =
          ps >= 0 ? buf.compare(buf, ps, pe, el.keyStart, el.keyEnd) : prevLen >= 0 ? buf.compare(this.prevKey, 0, prevLen, el.keyStart, el.keyEnd) : 1;
        if (before <= 0) throw new Damage(`${what}: keys out of order at element ${i}`);
        ps = el.keyStart;
        pe = el.keyEnd;
        visit(buf, el);
      }
      if (ps >= 0) {
        if (this.prevKey.length < pe - ps) this.prevKey = Buffer.alloc(Math.max(pe - ps, this.prevKey.length * 2));
        buf.copy(this.prevKey, 0, ps, pe);
        prevLen = pe - ps;
      }
      endPage?.();
    };
    const descend = (id: number, depth: number): void => {
      if (depth > MAX_DEPTH) throw new Damage(`the tree is deeper than ${MAX_DEPTH} at page ${id}`);
      const p = this.page(id, walk);
      if (p.flags === LEAF) {
        leaf(p.buf, p.off, p.end, p.count, id);
        return;
      }
      if (p.count === 0) throw new Damage(`branch page ${id} is empty`);
      // the children's reads reuse the buffers: keep a copy of this page while they run
      const copy = Buffer.from(p.buf.subarray(p.off, p.end));
      for (let i = 0; i < p.count; i++) descend(branchChild(copy, 0, copy.length, i, `page ${id}`), depth + 1);
    };
    if (bucket.inline !== null) {
      const page = bucket.inline;
      const h = pageHeader(page);
      if (h.flags !== LEAF) throw new Damage(`inline bucket page is not a leaf page (flags 0x${h.flags.toString(16)})`);
      checkElements(0, page.length, h.count, 'inline bucket');
      leaf(page, 0, page.length, h.count, 0);
      return;
    }
    descend(bucket.root, 0);
  }

  /** Element `index` of leaf page `page` of a bucket (0: the bucket's inline page), as a visitor sees it. */
  element(bucket: BucketRef, page: number, index: number, visit: Visitor): void {
    let buf: Buffer;
    let off = 0;
    let end: number;
    let count: number;
    if (page === 0) {
      if (bucket.inline === null) throw new Damage('an inline position in a bucket that is not inline');
      buf = bucket.inline;
      end = buf.length;
      count = pageHeader(buf).count;
      checkElements(0, end, count, 'inline bucket');
    } else {
      // reads by position come in key order, i.e. anywhere in the file: read just the page, no window
      const p = this.page(page, null, true);
      if (p.flags !== LEAF) throw new Damage(`page ${page} is not a leaf page`);
      ({ buf, off, end, count } = p);
    }
    if (index >= count) throw new Damage(`page ${page} has no element ${index}`);
    const el = leafElement(buf, off, end, index, `page ${page}`, this.el);
    el.page = page;
    visit(buf, el);
  }
}
