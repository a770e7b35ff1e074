/**
 * The change log's routes on the wire (docs/point-in-time-restore.md, "Visibility"), shared
 * by the server (server/changelog-routes.ts) and the CLI (`etcd-snapshot changelog ls|status`).
 * Both routes take the token. Pure; the decoders check every field the CLI prints and
 * return the object as it came (a `ResponseShapeError` names the first wrong field).
 *
 * - `GET /v1/changelog`: `ChangelogListResponse`, the segments in the server's change log
 *   folder (sealed ones and the one being written) and each chain's restorable range.
 * - `GET /v1/changelog/status`: `ChangelogStatusResponse`.
 */
import { array, bool, chainRange, type ChainRange, type Decoder, fail, num, object, optional, revision, shaped, str } from './api.js';

export const CHANGELOG_PATH = '/v1/changelog';
export const CHANGELOG_STATUS_PATH = '/v1/changelog/status';

/** A segment file: sealed (`<chain>-<first>-<last>.jsonl`, its seal's fields) or being written (`.part`). */
export interface ChangelogSegment {
  name: string;
  chain: string;
  first: number;
  sealed: boolean;
  /** Bytes on disk. */
  size: number;
  /** Sealed only: the seal's fields (times RFC 3339). */
  last?: number;
  records?: number;
  firstTime?: string;
  lastTime?: string;
  sealedAt?: string;
  /** Sealed only, when its seal could not be read (the file is damaged). */
  error?: string;
}

export interface ChangelogListResponse {
  /** The change log folder on the server. */
  dir: string;
  segments: ChangelogSegment[];
  chains: ChainRange[];
}

/** The newest sealed revision: every revision the writer saw before `sealedAt` is in a sealed segment. */
export interface LastSealed {
  chain: string;
  segment: string;
  revision: number;
  /** When the writer saw `revision` (RFC 3339). */
  time: string;
  sealedAt: string;
}

export interface ChangelogStatusResponse {
  /** `--etcd-changelog` on this server. */
  enabled: boolean;
  /** `--etcd-changelog-period` in ms (when enabled). */
  periodMs?: number;
  dir: string;
  /**
   * With the log on: the server elected through etcd to write the cluster's log (`node`, its
   * node name) and whether one is elected now (`elected: false`, `node: ''`: none holds the
   * lease, as between a writer's death and its successor's election).
   */
  writer?: { node: string; elected: boolean };
  /** Sealed segments and chains in the folder, and whether a segment is being written. */
  segments: number;
  chains: number;
  open: boolean;
  lastSealed?: LastSealed;
  /** etcd's revision now (absent when etcd did not answer). */
  etcdRevision?: number;
  /**
   * How far the sealed log is behind etcd (when enabled, a segment was sealed and etcd
   * answered): the revisions after the last sealed one, and the seconds since the seal when
   * there are any (0 when every revision is sealed).
   */
  lag?: { revisions: number; seconds: number };
}

const segment: Decoder<ChangelogSegment> = (v, at) => {
  const o = shaped<Pick<ChangelogSegment, 'name' | 'chain' | 'first' | 'sealed' | 'size'>>({ name: str, chain: str, first: revision, sealed: bool, size: num })(
    v,
    at,
  );
  const r = object(o, at);
  for (const k of ['last', 'records'] as const) optional(revision)(r[k], `${at}.${k}`);
  for (const k of ['firstTime', 'lastTime', 'sealedAt', 'error'] as const) optional(str)(r[k], `${at}.${k}`);
  return o as ChangelogSegment; // every field was checked above
};

/** The answer to `GET /v1/changelog`, typed. */
export const decodeChangelogList = (v: unknown): ChangelogListResponse =>
  shaped<ChangelogListResponse>({ dir: str, segments: array(segment), chains: array(chainRange) })(v, 'the answer');

const lastSealed: Decoder<LastSealed> = (v, at) => shaped<LastSealed>({ chain: str, segment: str, revision, time: str, sealedAt: str })(v, at);
const writer: Decoder<{ node: string; elected: boolean }> = (v, at) => shaped<{ node: string; elected: boolean }>({ node: str, elected: bool })(v, at);
const lag: Decoder<{ revisions: number; seconds: number }> = (v, at) =>
  shaped<{ revisions: number; seconds: number }>({ revisions: revision, seconds: num })(v, at);

/** The answer to `GET /v1/changelog/status`, typed. */
export function decodeChangelogStatus(v: unknown): ChangelogStatusResponse {
  const o = object(v, 'the answer');
  if (typeof o.enabled !== 'boolean') fail('the answer.enabled', 'true or false');
  return shaped<ChangelogStatusResponse>({
    enabled: bool,
    periodMs: optional(num),
    dir: str,
    writer: optional(writer),
    segments: revision,
    chains: revision,
    open: bool,
    lastSealed: optional(lastSealed),
    etcdRevision: optional(revision),
    lag: optional(lag),
  })(o, 'the answer');
}
