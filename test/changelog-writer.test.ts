/**
 * The change log writer (changelog/writer.ts) against a stand-in for etcd's watch: the
 * bounded queue (a burst past the high-water mark cancels the watch, which starts again
 * from the next revision once the queue drained), skipped overlaps, a skipped revision,
 * sealing, and resuming (or not) from the folder; with a commit point in memory (a commit
 * whose answer was lost cannot be produced with a real etcd): a refused commit, and a lost
 * answer completed by the next start. Real etcd runs in changelog.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { EtcdsnapError } from '../src/errors.js';
import type { EtcdClient } from '../src/etcd/client.js';
import { createLogger } from '../src/log/logger.js';
import type { ChangeRecord } from '../src/model/changelog.js';
import { decodeSegment, parseSegmentName } from '../src/changelog/format.js';
import { HIGH_WATER_BYTES, ChangeLogWriter } from '../src/changelog/writer.js';
import type { SealCommit, SealedRecord } from '../src/changelog/progress.js';
import { tempDir, waitUntil } from './helpers/server.js';
import { useDurableFs } from '../src/util/durable.js';

interface Watch {
  start: number;
  cancelled: boolean;
  on: { records(rs: ChangeRecord[]): void; end(err: EtcdsnapError): void };
}

/** The calls the writer makes, answered from memory. */
class FakeEtcd {
  readonly watches: Watch[] = [];
  cluster = '42';
  revision = 1_000_000;
  compactedBelow = 0;
  async status(): Promise<{ clusterId: string; revision: string }> {
    return { clusterId: this.cluster, revision: String(this.revision) };
  }
  async rangePage(_s: Buffer, _e: undefined, rev: number): Promise<{ revision: number; more: boolean; kvs: [] }> {
    if (rev < this.compactedBelow) throw new EtcdsnapError('conflict', `etcd has compacted revision ${rev}`);
    return { revision: rev, more: false, kvs: [] };
  }
  async watchChanges(start: number, on: Watch['on']): Promise<{ cancel(): Promise<void> }> {
    const w: Watch = { start, on, cancelled: false };
    this.watches.push(w);
    return {
      cancel: async () => {
        w.cancelled = true;
      },
    };
  }
  get current(): Watch {
    const w = this.watches[this.watches.length - 1];
    assert.ok(w, 'a watch');
    return w;
  }
}

const logger = createLogger({ format: 'json', debug: false, destination: { write: () => undefined } });
const rec = (revision: number, bytes = 10): ChangeRecord => ({
  revision,
  time: 1_800_000_000_000 + revision,
  events: [
    { type: 'put', key: Buffer.from(`k${revision}`), value: Buffer.alloc(bytes, 120), createRevision: revision, modRevision: revision, version: 1, lease: '0' },
  ],
});
const range = (from: number, n: number, bytes?: number): ChangeRecord[] => Array.from({ length: n }, (_, i) => rec(from + i, bytes));

function segments(dir: string): Array<{ first: number; last: number; chain: string }> {
  return readdirSync(dir)
    .map((n) => parseSegmentName(n))
    .filter((x) => x !== undefined)
    .map((x) => {
      decodeSegment(x.name, readFileSync(path.join(dir, x.name))); // every one verifies
      return { first: x.first, last: x.last, chain: x.chain };
    })
    .sort((a, b) => a.first - b.first);
}

function writer(etcd: FakeEtcd, dir: string, requested: { n: number } = { n: 0 }): ChangeLogWriter {
  return new ChangeLogWriter({
    etcd: etcd as unknown as EtcdClient,
    dir,
    periodMs: 60_000,
    maxSegmentBytes: 4 * 1024 * 1024,
    logger,
    requestSnapshot: () => {
      requested.n++;
    },
  });
}

test('writer: a burst past the high-water mark pauses the watch and resumes from the next revision; overlaps and skips handled', async () => {
  const etcd = new FakeEtcd();
  const dir = path.join(tempDir(), 'changelog');
  const requested = { n: 0 };
  const w = writer(etcd, dir, requested);
  await w.start();
  assert.equal(requested.n, 1, 'no chain to resume: a snapshot is asked for');
  w.onSnapshot(10);
  await waitUntil(() => etcd.watches.length === 1, 5000, 'the first watch');
  assert.equal(etcd.current.start, 11);
  // one response of 12 MiB: more than the high-water mark
  const burst = range(11, 12, 1024 * 1024);
  assert.ok(burst.length * 1024 * 1024 > HIGH_WATER_BYTES);
  const first = etcd.current;
  first.on.records(burst);
  assert.ok(first.cancelled, 'the watch is cancelled at once');
  await waitUntil(() => etcd.watches.length === 2, 10_000, 'the watch to start again');
  assert.equal(etcd.current.start, 23, 'from the revision after the last one taken');
  // an overlap (already taken) is skipped; the rest is taken
  etcd.current.on.records(range(20, 6));
  // a skipped revision stops the watch; it starts again from the expected one
  const second = etcd.current;
  second.on.records([rec(30)]);
  assert.ok(second.cancelled);
  await waitUntil(() => etcd.watches.length === 3, 10_000, 'the watch after a skipped revision');
  assert.equal(etcd.current.start, 26);
  etcd.current.on.records(range(26, 5));
  await w.stop();
  const segs = segments(dir);
  let next = 11;
  for (const s of segs) {
    assert.equal(s.first, next, 'contiguous, no overlap');
    next = s.last + 1;
  }
  assert.equal(next, 31, 'revisions 11..30, each once');
  assert.ok(segs.length >= 3, 'sealed at the size limit (4 MiB here) too');
  assert.deepEqual(
    readdirSync(dir).filter((n) => n.endsWith('.part')),
    [],
  );

  // a new writer on the folder resumes after the last sealed revision
  const etcd2 = new FakeEtcd();
  const w2 = writer(etcd2, dir);
  await w2.start();
  assert.equal(etcd2.current.start, 31);
  etcd2.current.on.records(range(31, 2));
  await w2.stop();
  assert.equal(new Set(segments(dir).map((s) => s.chain)).size, 1, 'the same chain');

  // another cluster, or a compacted resume point: no resume, a snapshot is asked for
  for (const change of [(e: FakeEtcd) => (e.cluster = '7'), (e: FakeEtcd) => (e.compactedBelow = 40)]) {
    const e = new FakeEtcd();
    change(e);
    const asked = { n: 0 };
    const w3 = writer(e, dir, asked);
    await w3.start();
    assert.equal(e.watches.length, 0);
    assert.equal(asked.n, 1);
    await w3.stop();
  }
});

test('writer: a segment gets its final name only after its last write and an fsync; the folder is fsynced after the rename', async () => {
  const calls: string[] = [];
  const pathOf = new Map<number, string>();
  const stop = useDurableFs((real) => ({
    open: async (file, flags, mode) => {
      const fh = await real.open(file, flags, mode);
      pathOf.set(fh.fd, file);
      calls.push(`open ${path.basename(file)}`);
      return fh;
    },
    writeFile: real.writeFile,
    writev: async (fh, bufs, position) => {
      const n = await real.writev(fh, bufs, position);
      calls.push(`write ${path.basename(pathOf.get(fh.fd) ?? '?')}`);
      return n;
    },
    fsync: async (fh) => {
      await real.fsync(fh);
      calls.push(`fsync ${path.basename(pathOf.get(fh.fd) ?? '?')}`);
    },
    rename: async (from, to) => {
      await real.rename(from, to);
      calls.push(`rename ${path.basename(from)} ${path.basename(to)}`);
    },
  }));
  try {
    const etcd = new FakeEtcd();
    const dir = path.join(tempDir(), 'changelog');
    const w = writer(etcd, dir);
    await w.start();
    w.onSnapshot(4);
    await waitUntil(() => etcd.watches.length === 1, 5000, 'the watch');
    etcd.current.on.records(range(5, 3));
    await w.stop();
    const sealedName = readdirSync(dir).find((n) => n.endsWith('.jsonl')) ?? '';
    const part = `${sealedName.slice(0, 16)}-${sealedName.slice(17, 37)}.part`;
    const at = (c: string): number => calls.lastIndexOf(c);
    const renamed = at(`rename ${part} ${sealedName}`);
    assert.ok(renamed > 0, calls.join('\n'));
    assert.ok(at(`write ${part}`) < at(`fsync ${part}`), 'the last write before the fsync');
    assert.ok(at(`fsync ${part}`) < renamed, 'the fsync before the rename');
    assert.ok(at('fsync changelog') > renamed, 'the folder fsynced after the rename');
    assert.equal(calls.filter((c) => c === `write ${part}`).length, 5, 'header, three records, seal');
  } finally {
    stop();
  }
});

/** A commit point in memory; `fail` makes the next commits reject after recording (etcd applied it, the answer was lost) or refuse. */
class MemoryCommit implements SealCommit {
  record: SealedRecord | undefined;
  mode: 'ok' | 'lost-answer' | 'refuse' = 'ok';
  async read(): Promise<SealedRecord | undefined> {
    return this.record;
  }
  async commit(r: Omit<SealedRecord, 'node'>): Promise<boolean> {
    if (this.mode === 'refuse') return false;
    this.record = { ...r, node: 'n1' };
    if (this.mode === 'lost-answer') throw new EtcdsnapError('unavailable', 'etcd transaction failed: deadline exceeded');
    return true;
  }
}

test('writer with a commit point: a refused commit removes the .part; one whose answer was lost is completed by the next start; the next writer resumes from the record', async () => {
  const dir = tempDir();
  const etcd = new FakeEtcd();
  const commit = new MemoryCommit();
  const fenced: string[] = [];
  const make = (): ChangeLogWriter =>
    new ChangeLogWriter({ etcd: etcd as unknown as EtcdClient, dir, periodMs: 60_000, logger, commit, onFenced: (why) => fenced.push(why) });
  let w = make();
  await w.start();
  w.onSnapshot(10);
  await waitUntil(() => etcd.watches.length === 1, 5000, 'the watch');
  assert.equal(commit.record?.last, 10, "the chain's beginning is committed");
  assert.equal(commit.record?.first, 11);
  etcd.current.on.records(range(11, 3));
  commit.mode = 'lost-answer';
  await w.stop();
  assert.equal(fenced.length, 1);
  assert.match(fenced[0] ?? '', /^the commit of [0-9a-f]{16}-\d{20}-\d{20}\.jsonl to etcd failed: /);
  assert.deepEqual(segments(dir), [], 'not renamed: the outcome was unknown');
  assert.equal(readdirSync(dir).filter((n) => n.endsWith('.part')).length, 1, 'the sealed .part stays');

  // the next writer: etcd's record is the .part's range, so it is completed; resumed after it
  commit.mode = 'ok';
  w = make();
  await w.start();
  assert.deepEqual(
    segments(dir).map((x) => [x.first, x.last]),
    [[11, 13]],
  );
  await waitUntil(() => etcd.watches.length === 2, 5000, 'the resumed watch');
  assert.equal(etcd.current.start, 14);
  etcd.current.on.records(range(14, 2));
  commit.mode = 'refuse';
  await w.stop();
  assert.equal(fenced.length, 2);
  assert.equal(readdirSync(dir).filter((n) => n.endsWith('.part')).length, 0, 'a refused commit removes the .part');
  assert.deepEqual(
    segments(dir).map((x) => [x.first, x.last]),
    [[11, 13]],
  );
  assert.equal(commit.record?.last, 13);
});
