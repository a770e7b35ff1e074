/**
 * `SegmentUploader` (changelog/upload.ts) against an in-memory `ObjectStore`: a failed upload
 * is retried (bounded) and then left for the next start, which uploads what is missing; the
 * objects round-trip through `fetchSegmentObject` (gzip for `zip`, the record checked);
 * retention deletes what local retention removed and this node's older objects, never
 * another chain's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { encodeFooter, encodeHeader, encodeRecord, segmentName } from '../src/changelog/format.js';
import { fetchSegmentObject } from '../src/changelog/remote.js';
import { s3Unneeded, SegmentUploader } from '../src/changelog/upload.js';
import { createLogger } from '../src/log/logger.js';
import { EtcdsnapError } from '../src/errors.js';
import type { ObjectStore, StoredObject } from '../src/store/object-store.js';

const logger = createLogger({ format: 'json', debug: false, destination: { write: () => undefined } });

class MemoryObjects implements ObjectStore {
  readonly objects = new Map<string, { body: Buffer; metadata: Record<string, string> }>();
  failPuts = 0;
  puts = 0;
  async put(name: string, body: Buffer, opts: { metadata: Record<string, string> }): Promise<void> {
    this.puts++;
    if (this.failPuts > 0) {
      this.failPuts--;
      throw new EtcdsnapError('unavailable', 'S3 is down');
    }
    this.objects.set(name, { body: Buffer.from(body), metadata: { ...opts.metadata } });
  }
  async get(name: string): Promise<{ body: Buffer; metadata: Record<string, string> }> {
    const o = this.objects.get(name);
    if (!o) throw new EtcdsnapError('not-found', `${name} does not exist`);
    return o;
  }
  async list(): Promise<StoredObject[]> {
    return [...this.objects].map(([name, o]) => ({ name, size: o.body.length }));
  }
  async delete(names: readonly string[]): Promise<string[]> {
    for (const n of names) this.objects.delete(n);
    return [...names];
  }
  location(name: string): string {
    return `memory://${name}`;
  }
  describe(): string {
    return 'memory';
  }
  close(): void {}
}

function writeSegment(dir: string, chain: string, first: number, n: number): string {
  const records = Array.from({ length: n }, (_, i) =>
    encodeRecord({ revision: first + i, time: 1000 + first + i, events: [{ type: 'delete', key: Buffer.from(`k${i}`) }] }),
  );
  const body = Buffer.concat([encodeHeader({ chain, cluster: '42', first }), ...records]);
  const last = first + n - 1;
  const footer = encodeFooter({
    first,
    last,
    records: n,
    firstTime: 1000 + first,
    lastTime: 1000 + last,
    sealedAt: 1000 + last,
    sha256: createHash('sha256').update(body).digest('hex'),
  });
  const name = segmentName(chain, first, last);
  writeFileSync(path.join(dir, name), Buffer.concat([body, footer]));
  return name;
}

const A = 'aaaaaaaaaaaaaaaa';
const B = 'bbbbbbbbbbbbbbbb';

test('uploader: retried after a failure, then left for the next start; objects round-trip; retention only of our chains', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'cl-upload-'));
  try {
    const store = new MemoryObjects();
    const opts = { store, dir, encoding: { compression: 'zip' as const, recipients: [] }, logger };
    // one retry allowed: two failures exhaust it
    let failed: string[] = [];
    let u = new SegmentUploader({ ...opts, retryDelaysMs: [10], onFailure: (n) => void failed.push(n) });
    u.start();
    const s1 = writeSegment(dir, A, 3, 2);
    store.failPuts = 1;
    u.enqueue(s1);
    await new Promise((r) => setTimeout(r, 100));
    await u.idle();
    assert.equal(store.puts, 2, 'one failure, one retry');
    assert.deepEqual([...store.objects.keys()], [`${s1}.gz`], 'zip is written as gzip');
    const s2 = writeSegment(dir, A, 5, 3);
    store.failPuts = 2;
    u.enqueue(s2);
    await new Promise((r) => setTimeout(r, 100));
    await u.idle();
    assert.deepEqual(failed, [s2], 'retries exhausted: reported once');
    await u.stop();

    // the next start uploads what is missing, and only that
    failed = [];
    u = new SegmentUploader({ ...opts, retryDelaysMs: [] });
    u.start();
    await u.idle();
    await u.idle();
    assert.deepEqual([...store.objects.keys()].sort(), [`${s1}.gz`, `${s2}.gz`]);
    const scratch = mkdtempSync(path.join(tmpdir(), 'cl-scratch-'));
    const got = await fetchSegmentObject(store, `${s2}.gz`, scratch, undefined);
    assert.equal(got.segment.footer.first, 5);
    assert.equal(got.segment.footer.last, 7);
    const o = store.objects.get(`${s2}.gz`);
    assert.ok(o);
    o.body[o.body.length - 3] = (o.body[o.body.length - 3] ?? 0) ^ 1;
    await assert.rejects(fetchSegmentObject(store, `${s2}.gz`, scratch, undefined), /sha256 .* does not match its record's/);
    rmSync(scratch, { recursive: true, force: true });

    // retention (on the writer): of the current chain (A, begun at 5000), the objects at or below
    // every kept snapshot taken since it began; other chains once every kept snapshot is newer
    const other = `${segmentName(B, 1, 2)}.gz`;
    store.objects.set(other, { body: Buffer.from('x'), metadata: {} });
    const current = { chain: A, since: 5000 };
    u.prune([], [], current);
    await u.idle();
    assert.equal(store.objects.size, 3, 'no kept snapshot: nothing is removed');
    u.prune(
      [],
      [
        { revision: 2, createdAt: 4000 },
        { revision: 4, createdAt: 6000 },
      ],
      current,
    );
    await u.idle();
    assert.deepEqual([...store.objects.keys()].sort(), [`${s2}.gz`, other].sort(), "chain A up to 4; B kept: a snapshot older than A's start may need it");
    u.prune([], [{ revision: 6, createdAt: 7000 }], current);
    await u.idle();
    assert.deepEqual([...store.objects.keys()], [`${s2}.gz`], 's2 holds 7, after the snapshot at 6; B is no longer needed');
    u.prune([s2], [{ revision: 6, createdAt: 7000 }], current);
    await u.idle();
    assert.deepEqual([...store.objects.keys()], [], 'what local retention removed');
    assert.deepEqual(s3Unneeded([`${s2}.gz`, 'not-a-segment'], [], [{ revision: 9, createdAt: 1 }], { chain: B, since: 0 }), [`${s2}.gz`]);
    await u.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
