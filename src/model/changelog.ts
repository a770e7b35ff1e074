/**
 * The change log's vocabulary (issue 16, docs/point-in-time-restore.md): one record per etcd
 * revision, as etcd committed it, with the events of that revision. Pure types.
 */

/** A put as etcd's watch reports it; `modRevision` is always the record's revision. */
export interface PutEvent {
  type: 'put';
  key: Buffer;
  value: Buffer;
  createRevision: number;
  modRevision: number;
  version: number;
  /** The lease ID (decimal, '0' for none); kept for the record, never restored. */
  lease: string;
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
