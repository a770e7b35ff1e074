/**
 * What the snapshot layer tells an observer (the server's metrics, server/metrics.ts): one
 * typed event per finished operation. Events describe outcomes; they carry no record or
 * store object, and nothing waits for an observer.
 *
 * Contract:
 * - `save`: once per save that ran (`SnapshotService.save`), success or failure, after its
 *   turn came. A refused second save (`conflict`), a request refused as invalid (`usage`
 *   or `config`: a folder that is not allowed, a bad prefix) and a learner's skipped save
 *   emit nothing. `seconds` covers the save with its replicas' records and retention; `bytes`
 *   and `createdAt` (the snapshot's timestamp, RFC 3339) come with a success, `snapshot` (its
 *   name) and `revision` (etcd's revision just before the snapshot, the change log's start:
 *   changelog/writer.ts) too; `error` (the message, unscrubbed: observers that send it
 *   elsewhere scrub it, log/secrets.ts) with a failure.
 * - `upload`: once per replica upload attempt: attempt 1 in the save's pass
 *   (save-replicas.ts `settleReplicas`), then each retry (upload-retries.ts). `final` is
 *   true on a failure after which no further attempt is queued in this process (retries
 *   exhausted, no store, or shutting down: a failed record is retried at the next start);
 *   `seconds` is measured for retries only (attempt 1 runs inside the save's single pass).
 *   `snapshot` names the snapshot uploaded; `error` comes with a failure (unscrubbed).
 * - `prune`: once per retention pass over one store that was not a dry run: local (after a
 *   scheduled save or a prune request) and each replica (`s3`). `deleted` counts the
 *   snapshots removed (0 on failure).
 * - `drill`: once per restore drill that ran (snapshot/drill.ts, server/drills.ts), passed
 *   (`success`) or failed (`failure`, with `error`); a drill refused before it started (no
 *   snapshot, a bad name) emits nothing.
 * - An observer must not throw; `safeObserver` wraps it so that a throwing observer is
 *   logged and can never fail a save, an upload or a prune. `fanOut` tells several
 *   observers (metrics, notifications), each wrapped, in the order given.
 */
import type { Logger } from '../log/logger.js';
import { EtcdsnapError, messageOf } from '../errors.js';

export type EventResult = 'success' | 'failure';

export type SnapshotEvent =
  | {
      kind: 'save';
      scheduled: boolean;
      result: EventResult;
      seconds: number;
      bytes?: number;
      createdAt?: string;
      snapshot?: string;
      error?: string;
      revision?: number;
    }
  | {
      kind: 'upload';
      store: 's3';
      result: EventResult;
      seconds?: number;
      attempt: number;
      final: boolean;
      bytes?: number;
      createdAt?: string;
      snapshot?: string;
      error?: string;
    }
  | { kind: 'prune'; store: 'local' | 's3'; result: EventResult; seconds: number; deleted: number }
  | {
      kind: 'drill';
      scheduled: boolean;
      result: EventResult;
      seconds: number;
      /** The snapshot drilled and the store its bytes came from. */
      snapshot: string;
      store: 'local' | 's3';
      /** What failed (unscrubbed), with a failure. */
      error?: string;
    };

/** Receives snapshot events; must not throw (see the module's contract). */
export type SnapshotObserver = (e: SnapshotEvent) => void;

/** Emits to `observer` (if any); a throw is logged at warn level and swallowed. */
export function safeObserver(observer: SnapshotObserver | undefined, logger: Logger): SnapshotObserver {
  if (!observer) return () => undefined;
  return (e) => {
    try {
      observer(e);
    } catch (err) {
      logger.warn({ err: messageOf(err), event: e.kind }, 'snapshot event observer failed');
    }
  };
}

/** One observer that tells each of `observers` (undefined ones skipped), each through `safeObserver`. */
export function fanOut(logger: Logger, ...observers: ReadonlyArray<SnapshotObserver | undefined>): SnapshotObserver {
  const each = observers.filter((o): o is SnapshotObserver => o !== undefined).map((o) => safeObserver(o, logger));
  return (e) => {
    for (const o of each) o(e);
  };
}

/**
 * Runs `fn`, then emits the event `make` builds from its value (undefined when it threw,
 * with the error as `err`) and its duration in seconds; `make` may answer undefined to emit
 * nothing. Rethrows.
 */
export async function timed<T>(
  emit: SnapshotObserver,
  fn: () => Promise<T>,
  make: (value: T | undefined, seconds: number, err?: unknown) => SnapshotEvent | undefined,
): Promise<T> {
  const t0 = performance.now();
  const done = (v: T | undefined, err?: unknown): void => {
    const e = make(v, (performance.now() - t0) / 1000, err);
    if (e) emit(e);
  };
  let value: T;
  try {
    value = await fn();
  } catch (err) {
    done(undefined, err);
    throw err;
  }
  done(value);
  return value;
}

/**
 * Pure: the `save` event of a save that ended with `r` (or threw `err`) after `seconds`;
 * undefined for what the contract says emits nothing (a learner's skipped save, a request
 * refused as invalid).
 */
export function saveEvent(
  scheduled: boolean,
  r: { created: ReadonlyArray<{ name?: string; size: number; createdAt: string; revision?: string }> } | undefined,
  seconds: number,
  err?: unknown,
): SnapshotEvent | undefined {
  const made = r?.created[0];
  if (r && !made) return undefined;
  if (err instanceof EtcdsnapError && (err.kind === 'usage' || err.kind === 'config')) return undefined;
  const base = { kind: 'save', scheduled, seconds } as const;
  if (!made) return { ...base, result: 'failure', ...(err !== undefined ? { error: messageOf(err) } : {}) };
  const ok = { ...base, result: 'success', bytes: made.size, createdAt: made.createdAt, ...(made.name !== undefined ? { snapshot: made.name } : {}) } as const;
  return made.revision !== undefined ? { ...ok, revision: Number(made.revision) } : ok;
}

/** Pure: the `prune` event of one store's retention pass (`gone`: the names removed; undefined when it threw); none for a dry run. */
export function pruneEvent(store: 'local' | 's3', dryRun: boolean, gone: readonly string[] | undefined, seconds: number): SnapshotEvent | undefined {
  return dryRun ? undefined : { kind: 'prune', store, result: gone ? 'success' : 'failure', seconds, deleted: gone?.length ?? 0 };
}
