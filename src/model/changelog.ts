/**
 * The change log's vocabulary (issue 16, docs/point-in-time-restore.md): one record per etcd
 * revision, as etcd committed it, with the events of that revision. Pure types.
 */
import type { KeyValue } from './key-value.js';

/**
 * A put as etcd's watch reports it: the key at its new revision (`KeyValue`, the shape live
 * ranges and snapshot readers answer too); `modRevision` is always the record's revision,
 * and `lease` is kept for the record, never restored.
 */
export interface PutEvent extends KeyValue {
  type: 'put';
}

export interface DeleteEvent {
  type: 'delete';
  key: Buffer;
}

export type ChangeEvent = PutEvent | DeleteEvent;

/** One etcd revision: its events in the order etcd reported them, and when it was seen. */
export interface ChangeRecord {
  revision: number;
  /** Wall-clock time (ms since the epoch) the writer received the revision. */
  time: number;
  events: ChangeEvent[];
}
