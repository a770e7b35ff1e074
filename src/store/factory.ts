/**
 * Builds a `SnapshotStore` (store.ts) from a `StoreSpec`, one line per kind. The S3 store is
 * imported lazily (`import()`), so the AWS SDK loads only when S3 is configured: a command
 * or server without S3 never loads it. Building validates the settings (S3: synchronously,
 * `config` errors, see `S3Store.create`) and does no I/O; use `probe()` for that.
 */
import type { S3Settings } from './s3/settings.js';
import type { S3SkipReporter } from './s3/records.js';
import type { SnapshotStore } from './store.js';
import type { ObjectStore } from './object-store.js';
import { LocalStore } from './local.js';
import { MemoryStore } from './memory.js';

export type StoreSpec = { kind: 'local'; dir: string } | { kind: 's3'; settings: S3Settings; onSkip?: S3SkipReporter } | { kind: 'memory'; label?: string };

export async function openStore(spec: StoreSpec): Promise<SnapshotStore> {
  switch (spec.kind) {
    case 'local':
      return new LocalStore(spec.dir);
    case 's3':
      return (await import('./s3/snapshot-store.js')).S3SnapshotStore.create(spec.settings, spec.onSkip);
    case 'memory':
      return new MemoryStore(spec.label);
  }
}

/** The `ObjectStore` of `<folder>/<sub>` in the S3 settings' bucket (loads the SDK). */
export async function openObjectStore(settings: S3Settings, sub: string): Promise<ObjectStore> {
  return (await import('./s3/object-store.js')).S3ObjectStore.create(settings, sub);
}

export type { S3Skip, S3SkipReporter } from './s3/records.js';
