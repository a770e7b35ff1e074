/**
 * Where each key's newest revision (≤ R) is, for the key-bucket scans of `mvcc-scan.ts`, kept
 * in columns (typed arrays grown by doubling) instead of an object per key: about 43 bytes per
 * key plus the key string and its Map entry, so a scan of a snapshot with a million keys
 * stays near 100 MB. Leases are rare and kept in a side Map.
 */
import { grown } from './grow.js';

/** Where a key's newest revision ≤ R is, and its small fields. */
export interface Slot {
  page: number;
  index: number;
  tombstone: boolean;
  createRevision: number;
  modRevision: number;
  version: number;
  lease: string;
  /** Bytes of the value (known from the scan, without reading the value again). */
  valueSize: number;
}

export class SlotTable {
  private readonly ids = new Map<string, number>();
  private page = new Float64Array(256);
  private index = new Uint16Array(256);
  private tomb = new Uint8Array(256);
  private create = new Float64Array(256);
  private mod = new Float64Array(256);
  private version = new Float64Array(256);
  private size_ = new Float64Array(256);
  private readonly leases = new Map<number, string>();

  get size(): number {
    return this.ids.size;
  }

  private grow(): void {
    const n = this.page.length * 2;
    this.page = grown(this.page, n);
    this.create = grown(this.create, n);
    this.mod = grown(this.mod, n);
    this.version = grown(this.version, n);
    this.size_ = grown(this.size_, n);
    this.index = grown(this.index, n);
    this.tomb = grown(this.tomb, n);
  }

  set(key: string, s: Slot): void {
    let id = this.ids.get(key);
    if (id === undefined) {
      id = this.ids.size;
      if (id === this.page.length) this.grow();
      this.ids.set(key, id);
    }
    this.page[id] = s.page;
    this.index[id] = s.index;
    this.tomb[id] = s.tombstone ? 1 : 0;
    this.create[id] = s.createRevision;
    this.mod[id] = s.modRevision;
    this.version[id] = s.version;
    this.size_[id] = s.valueSize;
    if (s.lease !== '0') this.leases.set(id, s.lease);
    else this.leases.delete(id);
  }

  get(key: string): Slot | undefined {
    const id = this.ids.get(key);
    if (id === undefined) return undefined;
    return {
      page: this.page[id] ?? 0,
      index: this.index[id] ?? 0,
      tombstone: this.tomb[id] === 1,
      createRevision: this.create[id] ?? 0,
      modRevision: this.mod[id] ?? 0,
      version: this.version[id] ?? 0,
      lease: this.leases.get(id) ?? '0',
      valueSize: this.size_[id] ?? 0,
    };
  }

  /** The keys whose newest revision is not a tombstone, in byte order (latin1 strings compare byte by byte). */
  liveKeys(): string[] {
    const out: string[] = [];
    for (const [k, id] of this.ids) if (this.tomb[id] === 0) out.push(k);
    return out.sort();
  }
}
