/**
 * The change log's folder (`<data-dir>/server/db/changelog`, 0700; segments 0600): listing
 * sealed segments by name, reading one (verified by `decodeSegment`), removing leftovers and
 * pruning. The format is format.ts's; nothing here writes a segment (writer.ts does).
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { EtcdsnapError, errnoCode } from '../errors.js';
import { decodeSegment, decodeSeal, MAX_LINE_BYTES, parseSegmentName, type Segment, type SegmentName } from './format.js';

/** The change log's folder under the server's `db` folder. */
export const changelogDir = (dbDir: string): string => path.join(dbDir, 'changelog');

/** The largest segment file read whole: the writer's size limit plus one longest line, with room. */
export const MAX_SEGMENT_FILE_BYTES = 2 * MAX_LINE_BYTES + 64 * 1024 * 1024;

/** The sealed segments in `dir` by name (none when the folder does not exist), in revision order. */
export async function listSegments(dir: string): Promise<SegmentName[]> {
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return [];
    throw err;
  }
  return names
    .map((n) => parseSegmentName(n))
    .filter((s): s is SegmentName => s !== undefined)
    .sort((a, b) => a.first - b.first || a.last - b.last);
}

/** Reads and verifies one sealed segment; a missing file is an `integrity` error naming it. */
export async function readSegment(dir: string, name: string): Promise<Segment> {
  const file = path.join(dir, name);
  const st = await fsp.stat(file).catch((err: unknown) => {
    if (errnoCode(err) === 'ENOENT') throw new EtcdsnapError('integrity', `change log segment ${name} is missing from ${dir}`);
    throw err;
  });
  if (st.size > MAX_SEGMENT_FILE_BYTES) throw new EtcdsnapError('integrity', `change log segment ${name}: ${st.size} bytes, more than a segment may hold`);
  return decodeSegment(name, await fsp.readFile(file));
}

/** Removes the `.part` files an interrupted writer left (their revisions are watched again); answers their names. */
export async function removeParts(dir: string): Promise<string[]> {
  const names = (await fsp.readdir(dir).catch(() => [] as string[])).filter((n) => /^[0-9a-f]{16}-\d{20}\.part$/.test(n));
  for (const n of names) await fsp.rm(path.join(dir, n), { force: true });
  return names;
}

/** A kept snapshot, as retention sees it: its revision and when it was taken (ms). */
export interface KeptSnapshot {
  revision: number;
  createdAt: number;
}

/**
 * Pure: the segments no kept snapshot needs. A segment is needed by a snapshot when it may
 * hold a revision after it: its last revision is above the snapshot's, or it was sealed after
 * the snapshot was taken. With no kept snapshot, nothing is removed.
 */
export function unneededSegments(segments: ReadonlyArray<{ name: string; last: number; sealedAt: number }>, kept: readonly KeptSnapshot[]): string[] {
  if (kept.length === 0) return [];
  return segments.filter((s) => kept.every((k) => s.last <= k.revision && s.sealedAt <= k.createdAt)).map((s) => s.name);
}

/** The seal (footer) of a sealed segment, read from its last line only; `integrity` when it has none. */
export async function readSeal(dir: string, name: string): Promise<ReturnType<typeof decodeSeal>> {
  const fh = await fsp.open(path.join(dir, name), 'r');
  try {
    const { size } = await fh.stat();
    const n = Math.min(size, 4096);
    const buf = Buffer.alloc(n);
    await fh.read(buf, 0, n, size - n);
    return decodeSeal(name, buf);
  } finally {
    await fh.close();
  }
}

/** Removes the segments no kept snapshot needs (`unneededSegments`); answers their names. */
export async function pruneSegments(dir: string, kept: readonly KeptSnapshot[]): Promise<string[]> {
  if (kept.length === 0) return [];
  const seals: Array<{ name: string; last: number; sealedAt: number }> = [];
  for (const s of await listSegments(dir)) {
    const f = await readSeal(dir, s.name).catch(() => undefined);
    if (f) seals.push({ name: s.name, last: f.last, sealedAt: f.sealedAt });
  }
  const gone = unneededSegments(seals, kept);
  for (const n of gone) await fsp.rm(path.join(dir, n), { force: true });
  return gone;
}
