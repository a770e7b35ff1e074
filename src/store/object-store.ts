/**
 * `ObjectStore`: the narrow sibling of `SnapshotStore` (store.ts) for objects that are not
 * snapshots and live in a sub-folder of the snapshots' bucket folder (the change log's
 * segments, `<folder>/changelog/`). Whole objects only (each is small: a segment is at most
 * a few tens of MiB), with user metadata as its record. Only the S3 implementation exists
 * (`s3/object-store.ts`, built by `openObjectStore` in factory.ts, which loads the SDK).
 *
 * Contract:
 * - Names are checked with `assertStoreName` (store.ts) before any I/O.
 * - `put` makes the object visible whole or not at all (one PutObject, or a multipart upload
 *   completed only when every part arrived), with its metadata (lower-case keys).
 * - `get` reads at most `maxBytes` (`integrity` when the object is bigger) and answers the
 *   metadata it was put with; a missing name rejects `not-found`.
 * - `list` answers the objects directly in the sub-folder (never deeper), names checked.
 * - `delete` answers the names deleted (a missing one counts as deleted, as S3 does).
 */
export interface StoredObject {
  name: string;
  size: number;
}

export interface ObjectStore {
  put(name: string, body: Buffer, opts: { contentType: string; metadata: Record<string, string> }): Promise<void>;
  get(name: string, maxBytes: number): Promise<{ body: Buffer; metadata: Record<string, string> }>;
  list(): Promise<StoredObject[]>;
  delete(names: readonly string[]): Promise<string[]>;
  /** `s3://<bucket>/<key>`. */
  location(name: string): string;
  /** For logs; never holds credentials. */
  describe(): string;
  close(): void;
}
