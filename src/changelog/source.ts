/**
 * Where a restore to a point reads the change log from (`SegmentSource`): the local folder
 * (`localSegments`), or the local folder and the server's S3 (`withS3Segments`): every
 * segment of either, a local one read locally; one only in S3 downloaded once, verified
 * (remote.ts `fetchSegmentObject`: the object's sha256 against its record, then the seal),
 * and kept plain in a private scratch folder under `db` (0700, `changelog-s3-XXXXXX`) for
 * the second read of the replay. `close()` removes the scratch folder, so a refused restore
 * leaves nothing behind.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { ObjectStore } from '../store/object-store.js';
import type { Segment, SegmentName } from './format.js';
import { parseSegmentName } from './format.js';
import { fetchSegmentObject, segmentOfObject } from './remote.js';
import { listSegments, readSegment } from './segments.js';

export interface SegmentSource {
  /** The sealed segments by name. */
  list(): Promise<SegmentName[]>;
  /** One segment, read whole and verified. */
  read(name: string): Promise<Segment>;
  /** Releases what reading took (scratch files, clients). */
  close(): Promise<void>;
}

/** The segments of the local change log folder `dir`. */
export const localSegments = (dir: string): SegmentSource => ({
  list: () => listSegments(dir),
  read: (name) => readSegment(dir, name),
  close: () => Promise.resolve(),
});

/** The local folder's segments and the S3 store's (the local copy preferred); see the module. */
export async function withS3Segments(dir: string, store: ObjectStore, dbDir: string, identityFile: string | undefined): Promise<SegmentSource> {
  const local = new Set((await listSegments(dir)).map((s) => s.name));
  const remote = new Map<string, string>();
  for (const o of await store.list()) {
    const seg = segmentOfObject(o.name);
    if (seg !== undefined && !local.has(seg) && !remote.has(seg)) remote.set(seg, o.name);
  }
  const scratch = await fsp.mkdtemp(path.join(dbDir, 'changelog-s3-'));
  const staged = new Set<string>();
  return {
    list: () => Promise.resolve([...local, ...remote.keys()].map((n) => parseSegmentName(n)).filter((s): s is SegmentName => s !== undefined)),
    read: async (name) => {
      const objectName = remote.get(name);
      if (objectName === undefined) return readSegment(dir, name);
      if (staged.has(name)) return readSegment(scratch, name);
      const { segment, plain } = await fetchSegmentObject(store, objectName, scratch, identityFile);
      await fsp.writeFile(path.join(scratch, name), plain, { mode: 0o600 });
      staged.add(name);
      return segment;
    },
    close: async () => {
      store.close();
      await fsp.rm(scratch, { recursive: true, force: true });
    },
  };
}
