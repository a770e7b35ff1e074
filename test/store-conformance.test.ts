/**
 * One conformance suite for every `SnapshotStore` (src/store/store.ts), in the manner of
 * restic's backend tests: `conformance(name, open)` runs the same checks against the local
 * folder (a temp dir), S3 (the test Swift) and the memory store. Each test opens a fresh,
 * empty store; `leftovers()` shows what the backend holds besides committed snapshots
 * (local `.part` files, S3 multipart uploads, the memory store's pending writes).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { EtcdsnapError } from '../src/errors.js';
import type { SnapshotRecord } from '../src/model/records.js';
import { LocalStore } from '../src/store/local.js';
import { MemoryStore } from '../src/store/memory.js';
import { S3SnapshotStore } from '../src/store/s3.js';
import type { SnapshotStore } from '../src/store/store.js';
import { startSwift, swiftSettings, type Swift } from './helpers/swift.js';
import { tempDir } from './helpers/server.js';

interface Harness {
  store: SnapshotStore;
  /** Incomplete writes the backend still holds. */
  leftovers(): Promise<string[]>;
}

const opts = { contentType: 'application/octet-stream', metadata: { 'etcdsnap-node-name': 'node1' } };
const NAME = 'conf-node1-1700000001';
const OTHER = 'conf-node1-1700000002';
/** More than one 16 MiB S3 part, so that S3 writes are real multipart uploads. */
const BIG = randomBytes(17 * 1024 * 1024);

async function writeAll(stream: Writable, bytes: Buffer): Promise<void> {
  const done = once(stream, 'finish');
  stream.end(bytes);
  await done;
}

async function readAll(store: SnapshotStore, name: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of await store.openRead(name)) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c as Uint8Array));
  return Buffer.concat(chunks);
}

const names = async (s: SnapshotStore): Promise<string[]> => (await s.list({ nodeName: 'node1' })).map((r) => r.name).sort();
const isUsage = (e: unknown): boolean => e instanceof EtcdsnapError && e.kind === 'usage';

function conformance(kind: string, open: () => Promise<Harness>): void {
  describe(`SnapshotStore conformance: ${kind}`, () => {
    test('a write is invisible until commit, then listed, stat-able and readable as written', async () => {
      const { store, leftovers } = await open();
      const sink = await store.beginWrite(NAME, opts);
      await writeAll(sink.stream, BIG);
      assert.deepEqual(await names(store), []);
      assert.equal(await store.stat(NAME), undefined);
      await assert.rejects(store.openRead(NAME), (e: unknown) => e instanceof EtcdsnapError && e.kind === 'not-found');
      assert.equal((await leftovers()).length, 1, 'the finished write is held, invisible');
      assert.equal(await sink.commit(), store.location(NAME));
      assert.deepEqual(await names(store), [NAME]);
      assert.equal((await store.stat(NAME))?.size, BIG.length);
      assert.ok((await readAll(store, NAME)).equals(BIG));
      assert.deepEqual(await leftovers(), []);
      await sink.abort(); // after a commit: nothing happens
      assert.deepEqual(await names(store), [NAME]);
    });

    test('abort after the stream finished leaves nothing; twice is fine', async () => {
      const { store, leftovers } = await open();
      const sink = await store.beginWrite(NAME, opts);
      await writeAll(sink.stream, BIG);
      await sink.abort();
      await sink.abort();
      assert.deepEqual(await names(store), []);
      assert.deepEqual(await leftovers(), []);
      assert.equal(await store.stat(NAME), undefined);
      await assert.rejects(sink.commit());
      assert.deepEqual(await names(store), []);
    });

    test('a stream destroyed with an error mid-write, then abort: nothing left', async () => {
      const { store, leftovers } = await open();
      const sink = await store.beginWrite(NAME, opts);
      sink.stream.on('error', () => undefined);
      sink.stream.write(BIG.subarray(0, 9 * 1024 * 1024));
      sink.stream.write(BIG.subarray(9 * 1024 * 1024));
      await new Promise((r) => setTimeout(r, 200));
      sink.stream.destroy(new Error('the source failed'));
      await sink.abort();
      assert.deepEqual(await names(store), []);
      assert.deepEqual(await leftovers(), []);
    });

    test('aborting the signal aborts the write', async () => {
      const { store, leftovers } = await open();
      const ctl = new AbortController();
      const sink = await store.beginWrite(NAME, { ...opts, signal: ctl.signal });
      sink.stream.on('error', () => undefined);
      sink.stream.write(BIG);
      ctl.abort(new Error('stop'));
      await sink.abort();
      assert.deepEqual(await names(store), []);
      assert.deepEqual(await leftovers(), []);
    });

    test('listing and deletion: delete answers the names that existed, with their records', async () => {
      const { store } = await open();
      for (const n of [NAME, OTHER]) {
        const sink = await store.beginWrite(n, opts);
        await writeAll(sink.stream, Buffer.from(`bytes of ${n}`));
        await sink.commit();
      }
      assert.deepEqual(await names(store), [NAME, OTHER]);
      await store.writeRecord({
        name: NAME,
        location: store.location(NAME),
        nodeName: 'node1',
        createdAt: '2023-11-14T22:13:21Z',
        size: 1,
        compressed: false,
        status: 'successful',
      });
      assert.deepEqual(await store.delete([NAME, 'conf-node1-1700000009']), [NAME]);
      assert.deepEqual(await names(store), [OTHER]);
      assert.equal(await store.readRecord(NAME), undefined);
      assert.deepEqual(await store.delete([NAME]), []);
    });

    test('records round trip', async () => {
      const { store } = await open();
      const sink = await store.beginWrite(NAME, opts);
      await writeAll(sink.stream, Buffer.from('x'.repeat(100)));
      const location = await sink.commit();
      assert.equal(await store.readRecord(NAME), undefined);
      const rec: SnapshotRecord = {
        name: NAME,
        location,
        nodeName: 'node1',
        createdAt: '2023-11-14T22:13:21Z',
        size: 100,
        sha256: 'a'.repeat(64),
        compressed: false,
        status: 'successful',
        revision: '42',
        etcdVersion: '3.5.9',
      };
      await store.writeRecord(rec);
      const back = await store.readRecord(NAME);
      assert.ok(back);
      for (const k of ['name', 'location', 'nodeName', 'createdAt', 'sha256', 'compressed', 'status', 'revision', 'etcdVersion'] as const)
        assert.equal(back[k], rec[k], k);
      const listed = (await store.list({ nodeName: 'other', withRecords: true })).find((r) => r.name === NAME);
      assert.equal(listed?.revision, '42');
      assert.equal(listed?.size, 100);
    });

    test('names that must be refused are refused by every method, before any I/O', async () => {
      const { store, leftovers } = await open();
      const bad = ['', '../x', 'a/b', 'a\\b', '..', '.metadata', '.hidden-node1-1700000001', 'x\0y', 'x\u001b[2J', 'x'.repeat(256), `${NAME}.part`];
      for (const n of bad) {
        const what = JSON.stringify(n.slice(0, 20));
        await assert.rejects(store.beginWrite(n, opts), isUsage, `beginWrite ${what}`);
        await assert.rejects(store.stat(n), isUsage, `stat ${what}`);
        await assert.rejects(store.openRead(n), isUsage, `openRead ${what}`);
        await assert.rejects(store.delete([NAME, n]), isUsage, `delete ${what}`);
        await assert.rejects(store.readRecord(n), isUsage, `readRecord ${what}`);
        await assert.rejects(
          store.writeRecord({ name: n, location: '', nodeName: 'node1', createdAt: '2023-11-14T22:13:21Z', size: 0, compressed: false, status: 'successful' }),
          isUsage,
          `writeRecord ${what}`,
        );
        assert.throws(() => store.location(n), isUsage, `location ${what}`);
      }
      assert.deepEqual(await names(store), []);
      assert.deepEqual(await leftovers(), []);
    });
  });
}

conformance('LocalStore (temp dir)', async () => {
  const store = new LocalStore(path.join(tempDir(), 'snapshots'));
  await store.prepare(true);
  return { store, leftovers: async () => readdirSync(store.dir).filter((f) => f.endsWith('.part')) };
});

conformance('MemoryStore', async () => {
  const store = new MemoryStore();
  return { store, leftovers: async () => [...store.pending.keys()] };
});

let swift: Swift | undefined;
const s3Stores: S3SnapshotStore[] = [];
before(async () => {
  swift = await startSwift();
  await swift.createBucket('conformance');
});
after(async () => {
  for (const s of s3Stores) s.close();
  await swift?.stop();
});
let folders = 0;
conformance('S3SnapshotStore (Swift)', async () => {
  if (!swift) throw new Error('Swift is not running');
  const store = S3SnapshotStore.create(swiftSettings(swift, 'conformance', `f${++folders}`));
  s3Stores.push(store);
  // objects in the folder that are not snapshots count too: nothing may be left
  const leftovers = async (): Promise<string[]> => (await store.bucket.listMultipartUploads()).map((u) => u.key);
  return { store, leftovers };
});
