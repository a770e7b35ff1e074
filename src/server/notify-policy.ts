/**
 * The notification policy (docs/notifications.md), pure: which snapshot event becomes which
 * webhook message, and what the policy remembers between events. notify.ts delivers them.
 *
 * Contract:
 * - Per kind (save, upload) a state, ok or failing. A failed save (a `save` event with result
 *   failure), or an upload given up (an `upload` failure with `final`), while ok sends
 *   `save-failed` / `upload-failed` and makes it failing; further failures while failing send
 *   nothing (they are counted). The first success of that kind while failing (any save; any
 *   upload attempt) sends `save-recovered` / `upload-recovered` once, with the count and the
 *   outage's start, and makes it ok. Every restore drill (a `drill` event) sends
 *   `drill-failed` or `drill-passed` (drills are opt-in and rare: each result is news).
 *   Everything else sends nothing. The state starts ok in each process.
 * - No secret in a message: errors are scrubbed (log/secrets.ts `scrubSecrets`: the token,
 *   S3 keys once registered), credentials in any URL they hold are masked, and they are cut
 *   to one line of at most `MAX_ERROR_CHARS`. Messages carry no settings (an error text may
 *   name the S3 endpoint and bucket, as the log does).
 */
import { scrubSecrets } from '../log/secrets.js';
import type { SnapshotEvent } from '../snapshot/events.js';

export type NotificationEvent =
  | 'save-failed'
  | 'upload-failed'
  | 'save-recovered'
  | 'upload-recovered'
  | 'drill-failed'
  | 'drill-passed'
  /** etcd upkeep's quota watcher (upkeep.ts, docs/upkeep.md): sent as its log lines are logged. */
  | 'etcd-quota-warning'
  | 'etcd-nospace'
  | 'etcd-nospace-cleared';

/** The JSON body POSTed for one notification. */
export interface Notification {
  event: NotificationEvent;
  /** The node whose save or upload it is (`--node-name`). */
  node: string;
  /** When it was noticed, RFC 3339 (UTC). */
  time: string;
  /** The snapshot that failed, or the one whose success is the recovery, when known. */
  snapshot?: string;
  /** Only with `save-*`: whether the save was scheduled (else on demand). */
  scheduled?: boolean;
  /** With `upload-*`: the replica store; with `drill-*`: where the drilled bytes came from. */
  store?: 's3' | 'local';
  /** The failure, scrubbed, one line. */
  error?: string;
  /** upload-failed: the attempts made; upload-recovered: the attempt that succeeded. */
  attempts?: number;
  /** Only with `*-recovered`: the failures (failed saves, uploads given up) since it began. */
  failures?: number;
  /** Only with `*-recovered`: when the first of those failures was noticed. */
  since?: string;
  /** A one-line summary for people (Slack's `text`; <, > and & escaped as Slack wants). */
  text: string;
}

interface Track {
  failing: boolean;
  failures: number;
  since?: string;
}

/** What the policy remembers between events. */
export interface NotifyState {
  readonly save: Track;
  readonly upload: Track;
}

export const INITIAL_NOTIFY_STATE: NotifyState = { save: { failing: false, failures: 0 }, upload: { failing: false, failures: 0 } };

/** Longest error text a message carries. */
export const MAX_ERROR_CHARS = 500;

/** `scheme://user:password@` in any URL of `text` becomes `scheme://**redacted**@`. */
export function maskURLCredentials(text: string): string {
  return text.replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^\s/@]+@/gi, '$1**redacted**@');
}

/** An error text as a message carries it: scrubbed by `scrub`, URL credentials masked, one line, bounded. */
export function cleanError(text: string, scrub: (s: string) => string = scrubSecrets): string {
  const line = maskURLCredentials(scrub(text)).replace(/\s+/g, ' ').trim();
  return line.length > MAX_ERROR_CHARS ? `${line.slice(0, MAX_ERROR_CHARS - 3)}...` : line;
}

/** Slack's escaping of message text (https://api.slack.com/reference/surfaces/formatting#escaping). */
export const slackEscape = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export const plural = (n: number, one: string, many: string): string => `${n} ${n === 1 ? one : many}`;

export interface PolicyContext {
  node: string;
  time: Date;
  /** Scrubs secrets from an error text (default `scrubSecrets`). */
  scrub?: (s: string) => string;
}

/**
 * Pure: the state after `e`, and the notification it sends, if any (see the module's
 * contract).
 */
export function notificationFor(state: NotifyState, e: SnapshotEvent, ctx: PolicyContext): { state: NotifyState; notification?: Notification } {
  if (e.kind === 'prune') return { state };
  if (e.kind === 'drill') {
    const error = e.error !== undefined ? cleanError(e.error, ctx.scrub) : undefined;
    const passed = e.result === 'success';
    const text = `etcdsnap ${ctx.node}: restore drill of ${e.snapshot} (${e.store}) ${passed ? 'passed' : `failed${error !== undefined ? `: ${error}` : ''}`}`;
    return {
      state,
      notification: {
        event: passed ? 'drill-passed' : 'drill-failed',
        node: ctx.node,
        time: ctx.time.toISOString(),
        snapshot: e.snapshot,
        scheduled: e.scheduled,
        store: e.store,
        ...(error !== undefined ? { error } : {}),
        text: slackEscape(text),
      },
    };
  }
  const kind = e.kind;
  const track = state[kind];
  const time = ctx.time.toISOString();
  const failed = e.result === 'failure' && (e.kind === 'save' || e.final);
  const base = {
    node: ctx.node,
    time,
    ...(e.snapshot !== undefined ? { snapshot: e.snapshot } : {}),
    ...(e.kind === 'save' ? { scheduled: e.scheduled } : { store: e.store }),
  };
  const who = `etcdsnap ${ctx.node}`;
  if (failed) {
    const next = { failing: true, failures: track.failures + 1, since: track.since ?? time };
    if (track.failing) return { state: { ...state, [kind]: next } };
    const error = e.error !== undefined ? cleanError(e.error, ctx.scrub) : undefined;
    const why = error !== undefined ? `: ${error}` : '';
    const text =
      e.kind === 'save'
        ? `${who}: ${e.scheduled ? 'scheduled' : 'on-demand'} snapshot save failed${why}`
        : `${who}: S3 upload${e.snapshot !== undefined ? ` of ${e.snapshot}` : ''} failed after ${plural(e.attempt, 'attempt', 'attempts')}; the local snapshot is kept${why}`;
    return {
      state: { ...state, [kind]: next },
      notification: {
        event: kind === 'save' ? 'save-failed' : 'upload-failed',
        ...base,
        ...(error !== undefined ? { error } : {}),
        ...(e.kind === 'upload' ? { attempts: e.attempt } : {}),
        text: slackEscape(text),
      },
    };
  }
  if (e.result !== 'success' || !track.failing) return { state };
  const since = track.since ?? time;
  const what = e.kind === 'save' ? 'snapshot saves work again' : 'S3 uploads work again';
  const after = e.kind === 'save' ? plural(track.failures, 'failed save', 'failed saves') : plural(track.failures, 'upload given up', 'uploads given up');
  const done =
    e.snapshot !== undefined ? `${e.snapshot} ${e.kind === 'save' ? 'saved' : 'uploaded'}` : e.kind === 'save' ? 'a snapshot saved' : 'a snapshot uploaded';
  return {
    state: { ...state, [kind]: { failing: false, failures: 0 } },
    notification: {
      event: kind === 'save' ? 'save-recovered' : 'upload-recovered',
      ...base,
      ...(e.kind === 'upload' ? { attempts: e.attempt } : {}),
      failures: track.failures,
      since,
      text: slackEscape(`${who}: ${what}: ${done} (after ${after} since ${since})`),
    },
  };
}
