/**
 * `MemoryStore`: a `SnapshotStore` (store.ts) in memory, for fast unit tests of what sits on
 * top of a store. It holds every snapshot in Buffers (fine for a test store, never for a
 * real one) and keeps records as given (a structured clone). It follows the contract of
 * store.ts exactly, names included, and is checked by test/store-conformance.test.ts.
 */
import { Readable, Writable } from 'node:stream';
import { EtcdsnapError } from '../errors.js';
import { compressionFromName, createdAtFromName, type SnapshotRecord } from '../model/records.js';
import { assertStoreName, type IncompleteFilter, type ListOptions, type SnapshotSink, type SnapshotStore, type StoreStat, type WriteOptions } from './store.js';

interface Entry {
  bytes: Buffer;
  modified: Date;
}

export class MemoryStore implements SnapshotStore {
  readonly kind = 'memory';
  private readonly objects = new Map<string, Entry>();
  private readonly records = new Map<string, SnapshotRecord>();
  /** Writes begun and neither committed nor aborted, by name. */
  readonly pending = new Map<string, Buffer[]>();

  constructor(private readonly label = 'memory') {}

  async beginWrite(name: string, opts: WriteOptions): Promise<SnapshotSink> {
    const n = assertStoreName(name);
    if (this.pending.has(n)) throw new EtcdsnapError('conflict', `a write of ${n} is already in progress`);
    const chunks: Buffer[] = [];
    this.pending.set(n, chunks);
    let state: 'open' | 'committed' | 'aborted' = 'open';
    const drop = (): void => {
      if (state === 'open') state = 'aborted';
      if (this.pending.get(n) === chunks) this.pending.delete(n);
    };
    opts.signal?.addEventListener('abort', drop, { once: true });
    const stream = new Writable({
      write(chunk: Buffer, _enc, cb) {
        if (state !== 'open') return cb(new Error(`the write of ${n} was aborted`));
        chunks.push(Buffer.from(chunk));
        cb();
      },
    });
    return {
      stream,
      commit: async () => {
        if (state === 'committed') return this.location(n);
        if (state === 'aborted') throw new EtcdsnapError('unavailable', `the write of ${n} was aborted`);
        if (!stream.writableFinished) throw new EtcdsnapError('usage', `commit of ${n} before its stream finished`);
        state = 'committed';
        opts.signal?.removeEventListener('abort', drop);
        this.pending.delete(n);
        this.objects.set(n, { bytes: Buffer.concat(chunks), modified: new Date() });
        return this.location(n);
      },
      abort: async () => {
        opts.signal?.removeEventListener('abort', drop);
        drop();
        if (!stream.destroyed) stream.destroy();
      },
    };
  }

  async list(opts: ListOptions): Promise<SnapshotRecord[]> {
    return [...this.objects.entries()].map(([name, e]) => {
      const rec = this.records.get(name);
      return {
        ...(rec?.status === 'successful' ? rec : {}),
        name,
        location: this.location(name),
        nodeName: rec?.nodeName ?? opts.nodeName,
        createdAt: rec?.createdAt ?? createdAtFromName(name, e.modified),
        size: e.bytes.length,
        ...compressionFromName(name),
        status: 'successful' as const,
      };
    });
  }

  async openRead(name: string): Promise<Readable> {
    const e = this.objects.get(assertStoreName(name));
    if (!e) throw new EtcdsnapError('not-found', `${this.location(name)} does not exist`);
    return Readable.from([e.bytes]);
  }

  async stat(name: string): Promise<StoreStat | undefined> {
    const e = this.objects.get(assertStoreName(name));
    return e ? { size: e.bytes.length, modified: e.modified } : undefined;
  }

  async delete(names: readonly string[]): Promise<string[]> {
    const checked = names.map((n) => assertStoreName(n));
    const out: string[] = [];
    for (const n of checked) {
      const had = this.objects.delete(n);
      if (this.records.delete(n) || had) out.push(n);
    }
    return out;
  }

  async readRecord(name: string): Promise<SnapshotRecord | undefined> {
    const r = this.records.get(assertStoreName(name));
    return r ? structuredClone(r) : undefined;
  }

  async writeRecord(record: SnapshotRecord): Promise<void> {
    this.records.set(assertStoreName(record.name), structuredClone(record));
  }

  location(name: string): string {
    return `memory://${this.label}/${assertStoreName(name)}`;
  }

  describe(): string {
    return `memory://${this.label}`;
  }

  async probe(): Promise<void> {
    /* always there */
  }

  async discardIncomplete(filter: IncompleteFilter): Promise<string[]> {
    const names = [...this.pending.keys()].filter((n) => ('name' in filter ? n === filter.name : true));
    for (const n of names) this.pending.delete(n);
    return names;
  }

  close(): void {
    /* nothing held */
  }
}
