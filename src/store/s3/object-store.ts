/**
 * `S3ObjectStore`: the `ObjectStore` (store/object-store.ts) of a sub-folder of the
 * configured bucket folder (`<folder>/<sub>`), on its own `S3Store` client.
 */
import { Readable } from 'node:stream';
import { EtcdsnapError } from '../../errors.js';
import type { ObjectStore, StoredObject } from '../object-store.js';
import { assertStoreName, isStoreName } from '../store.js';
import type { S3Settings } from './settings.js';
import { S3Store } from './store.js';

export class S3ObjectStore implements ObjectStore {
  private constructor(private readonly bucket: S3Store) {}

  /** The store of `<settings.folder>/<sub>`; validates the settings (no I/O), see `S3Store.create`. */
  static create(settings: S3Settings, sub: string): S3ObjectStore {
    const folder = settings.folder.replace(/\/+$/, '');
    return new S3ObjectStore(S3Store.create({ ...settings, folder: folder === '' ? sub : `${folder}/${sub}` }));
  }

  async put(name: string, body: Buffer, opts: { contentType: string; metadata: Record<string, string> }): Promise<void> {
    await this.bucket.upload(assertStoreName(name), Readable.from([body]), { contentType: opts.contentType, metadata: opts.metadata });
  }

  async get(name: string, maxBytes: number): Promise<{ body: Buffer; metadata: Record<string, string> }> {
    const key = this.bucket.key(assertStoreName(name));
    const head = await this.bucket.head(key);
    if (!head) throw new EtcdsnapError('not-found', `${this.location(name)} does not exist`);
    if (head.size > maxBytes) throw new EtcdsnapError('integrity', `${this.location(name)}: ${head.size} bytes, more than the ${maxBytes} allowed`);
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of await this.bucket.getStream(key)) {
      const b = Buffer.isBuffer(c) ? c : Buffer.from(c as Uint8Array);
      size += b.length;
      if (size > maxBytes) throw new EtcdsnapError('integrity', `${this.location(name)}: more than the ${maxBytes} bytes allowed`);
      chunks.push(b);
    }
    return { body: Buffer.concat(chunks), metadata: head.metadata };
  }

  async list(): Promise<StoredObject[]> {
    const out: StoredObject[] = [];
    for await (const o of this.bucket.list()) if (!o.name.includes('/') && isStoreName(o.name)) out.push({ name: o.name, size: o.size });
    return out;
  }

  async delete(names: readonly string[]): Promise<string[]> {
    if (names.length === 0) return [];
    const keys = names.map((n) => this.bucket.key(assertStoreName(n)));
    const { deleted, errors } = await this.bucket.deleteMany(keys);
    if (errors.length > 0) throw new EtcdsnapError('unavailable', `could not delete ${errors.map((e) => `${e.key} (${e.message})`).join(', ')}`);
    const set = new Set(deleted);
    return names.filter((_, i) => set.has(keys[i] ?? ''));
  }

  location(name: string): string {
    return this.bucket.location(assertStoreName(name));
  }

  describe(): string {
    return this.bucket.describe();
  }

  close(): void {
    this.bucket.destroy();
  }
}
