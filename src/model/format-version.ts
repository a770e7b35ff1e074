/**
 * Format versions of everything etcdsnap persists or exchanges (docs/upgrades.md), and the
 * one pure check every reader runs. Pure.
 *
 * Rules:
 * - A version is a positive integer, raised only when an older etcdsnap could misread what a
 *   newer one writes. What etcdsnap 0.1.0 wrote without a version is version 1.
 * - A reader accepts every version up to its own (a newer etcdsnap reads everything an older
 *   one wrote) and refuses a newer one with one line saying what was written by a newer
 *   etcdsnap and what to do (upgrade this node): never a guess at a format it does not know.
 */
import { EtcdsnapError } from '../errors.js';

/** The formats that carry a version, with what each reader calls them in a message. */
export const FORMATS = {
  /** Snapshot records: the JSON sidecar in `<snapshot-dir>/../.metadata/` and in S3 (`formatVersion`, written since 0.2.0; absent: 1). */
  record: { version: 1, what: 'snapshot record', from: 'was written by' },
  /** The cluster CA sealed with the token in etcd (bootstrap-data.ts, `v`; 0.1.0 already wrote 2). */
  bootstrap: { version: 2, what: 'bootstrap data (the sealed cluster CA)', from: 'was sealed by' },
  /** Change log segments (changelog/format.ts, the header's `version`; 0.1.0 already wrote 1). */
  changelog: { version: 1, what: 'change log segment', from: 'was written by' },
  /** The supervisor API (the `Etcdsnap-Api-Version` header; absent: 1). */
  api: { version: 1, what: 'API', from: 'comes from' },
} as const;

export type FormatName = keyof typeof FORMATS;

/** The current record format, written into every sidecar as `formatVersion`. */
export const RECORD_FORMAT_VERSION = FORMATS.record.version;
/** The current API version: sent in `API_VERSION_HEADER` by the server (answers) and the CLI (requests). */
export const API_VERSION = FORMATS.api.version;
/** The HTTP header (lower case, as Node gives it) that carries the API version both ways. */
export const API_VERSION_HEADER = 'etcdsnap-api-version';

/**
 * The verdict on a version read from `format`'s data: `ok` with the version (absent, i.e.
 * undefined, is 1), `newer` with the one-line message of the refusal, or `invalid` (not a
 * positive integer) with its message. `where` names the thing read (a file, an object, a
 * server) for the message.
 */
export type VersionVerdict = { ok: true; version: number } | { ok: false; reason: 'newer' | 'invalid'; message: string };

export function checkFormatVersion(format: FormatName, raw: unknown, where: string): VersionVerdict {
  const { version: mine, what, from } = FORMATS[format];
  if (raw === undefined) return { ok: true, version: 1 };
  if (typeof raw !== 'number' || !Number.isSafeInteger(raw) || raw < 1) {
    return { ok: false, reason: 'invalid', message: `${where}: ${what} format version ${JSON.stringify(raw)} is not a positive integer` };
  }
  if (raw > mine) {
    return {
      ok: false,
      reason: 'newer',
      message: `${where} ${from} a newer etcdsnap (${what} format ${raw}; this etcdsnap reads up to ${mine}): upgrade etcdsnap on this node`,
    };
  }
  return { ok: true, version: raw };
}

/** A version from an HTTP header: a number for digits, `undefined` when absent, the text otherwise (invalid). */
export function headerVersion(h: string | string[] | undefined): unknown {
  if (h === undefined) return undefined;
  const s = Array.isArray(h) ? h.join(',') : h;
  return /^\d{1,9}$/.test(s.trim()) ? Number(s.trim()) : s;
}

/** Throws the verdict's message as an EtcdsnapError (`environment`: this node's etcdsnap is too old) unless it is ok. */
export function assertReadable(verdict: VersionVerdict): number {
  if (verdict.ok) return verdict.version;
  throw new EtcdsnapError(verdict.reason === 'newer' ? 'environment' : 'integrity', verdict.message);
}
