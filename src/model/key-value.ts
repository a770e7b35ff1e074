/**
 * One etcd key at one revision, as etcd's mvccpb.KeyValue says it: the shape both a live
 * range (etcd/client.ts `LiveKeyValue`) and a snapshot reader (inspect/types.ts
 * `SnapshotKeyValue`) answer, so that a plan can compare the two sides directly.
 * Revisions are JS numbers: readers refuse one above Number.MAX_SAFE_INTEGER instead of rounding it.
 */
export interface KeyValue {
  key: Buffer;
  value: Buffer;
  createRevision: number;
  modRevision: number;
  /** 1 for the first revision of a key since it was created; 0 never appears for a live key. */
  version: number;
  /** Lease ID as a decimal string (int64), '0' when the key has none. */
  lease: string;
}
