/** Unit tests of the snapshot events (snapshot/events.ts): a throwing observer changes nothing; what is emitted when. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from '../src/log/logger.js';
import { pruneEvent, safeObserver, saveEvent, timed, type SnapshotEvent } from '../src/snapshot/events.js';
import { settleReplicas } from '../src/snapshot/save-replicas.js';
import { MemoryStore } from '../src/store/memory.js';
import type { SnapshotRecord } from '../src/model/records.js';
import type { S3Options } from '../src/snapshot/s3-config.js';
import { EtcdsnapError } from '../src/errors.js';

function quietLogger(lines: string[]): ReturnType<typeof createLogger> {
  return createLogger({ format: 'json', debug: false, destination: { write: (l: string) => lines.push(l) } });
}

const record: SnapshotRecord = {
  name: 'etcd-snapshot-node1-1700000000',
  location: 'file:///snapshots/etcd-snapshot-node1-1700000000',
  nodeName: 'node1',
  createdAt: '2023-11-14T22:13:20Z',
  size: 4128,
  compressed: false,
  status: 'successful',
};
const s3opts = { settings: { bucket: 'b' }, retention: 0 } as unknown as S3Options;

test('safeObserver: a throwing observer is logged and swallowed; no observer is a no-op', () => {
  const lines: string[] = [];
  const emit = safeObserver(() => {
    throw new Error('boom');
  }, quietLogger(lines));
  assert.doesNotThrow(() => emit({ kind: 'prune', store: 'local', result: 'success', seconds: 0, deleted: 0 }));
  assert.match(lines.join(''), /snapshot event observer failed/);
  assert.doesNotThrow(() => safeObserver(undefined, quietLogger([]))({ kind: 'prune', store: 'local', result: 'success', seconds: 0, deleted: 0 }));
});

test('timed: emits with the value on success, with undefined on failure (and rethrows), nothing when make answers undefined', async () => {
  const seen: Array<SnapshotEvent> = [];
  const make = (v: number[] | undefined, seconds: number): SnapshotEvent => ({
    kind: 'prune',
    store: 'local',
    result: v ? 'success' : 'failure',
    seconds,
    deleted: v?.length ?? 0,
  });
  assert.deepEqual(
    await timed(
      (e) => seen.push(e),
      async () => [1, 2],
      make,
    ),
    [1, 2],
  );
  await assert.rejects(
    timed(
      (e) => seen.push(e),
      async (): Promise<number[]> => {
        throw new Error('x');
      },
      make,
    ),
    /x/,
  );
  await timed(
    (e) => seen.push(e),
    async () => 1,
    () => undefined,
  );
  assert.deepEqual(
    seen.map((e) => (e.kind === 'prune' ? [e.result, e.deleted] : [])),
    [
      ['success', 2],
      ['failure', 0],
    ],
  );
  assert.ok(seen.every((e) => e.kind === 'prune' && e.seconds >= 0));
});

test('settleReplicas: one upload event per replica (attempt 1); final when no retry is queued; a throwing observer does not break it', async () => {
  const store = new MemoryStore();
  const log = quietLogger([]);
  const seen: SnapshotEvent[] = [];
  const ok = await settleReplicas(
    [{ opts: s3opts, store }],
    [store],
    [undefined],
    record,
    log,
    () => true,
    (e) => seen.push(e),
  );
  assert.equal(ok.copies.length, 1);
  const failed = await settleReplicas(
    [{ opts: s3opts, store }],
    [store],
    [new Error('refused')],
    record,
    log,
    () => true,
    (e) => seen.push(e),
  );
  assert.match(failed.uploadError ?? '', /refused/);
  await settleReplicas(
    [{ opts: s3opts }],
    [],
    [],
    record,
    log,
    () => true,
    (e) => seen.push(e),
  );
  assert.deepEqual(
    seen.map((e) => (e.kind === 'upload' ? [e.result, e.attempt, e.final] : [])),
    [
      ['success', 1, false],
      ['failure', 1, false],
      ['failure', 1, true],
    ],
  );
  const up = seen[0];
  assert.ok(up?.kind === 'upload' && up.bytes === record.size && up.createdAt === record.createdAt);
  const lines: string[] = [];
  const throwing = safeObserver(() => {
    throw new Error('observer bug');
  }, quietLogger(lines));
  const again = await settleReplicas([{ opts: s3opts, store }], [store], [undefined], record, log, () => true, throwing);
  assert.equal(again.record.s3?.status, 'successful');
});

test('saveEvent and pruneEvent: what each outcome emits, and what emits nothing', () => {
  const made = { created: [{ name: 'etcd-snapshot-node1-1', size: 42, createdAt: '2026-11-30T00:00:00Z' }] };
  assert.deepEqual(saveEvent(true, made, 1.5), {
    kind: 'save',
    scheduled: true,
    seconds: 1.5,
    result: 'success',
    bytes: 42,
    createdAt: '2026-11-30T00:00:00Z',
    snapshot: 'etcd-snapshot-node1-1',
  });
  assert.deepEqual(saveEvent(false, undefined, 2, new EtcdsnapError('unavailable', 'etcd down')), {
    kind: 'save',
    scheduled: false,
    seconds: 2,
    result: 'failure',
    error: 'etcd down',
  });
  assert.equal(saveEvent(false, { created: [] }, 0.1), undefined, 'a learner takes no snapshot');
  assert.equal(saveEvent(false, undefined, 0.1, new EtcdsnapError('usage', 'bad prefix')), undefined, 'a refused request is no failed save');
  assert.equal(saveEvent(false, undefined, 0.1, new EtcdsnapError('config', 'folder not allowed')), undefined);
  assert.deepEqual(pruneEvent('s3', false, ['a', 'b'], 3), { kind: 'prune', store: 's3', result: 'success', seconds: 3, deleted: 2 });
  assert.deepEqual(pruneEvent('local', false, undefined, 3), { kind: 'prune', store: 'local', result: 'failure', seconds: 3, deleted: 0 });
  assert.equal(pruneEvent('local', true, ['a'], 3), undefined, 'a dry run deletes nothing');
});
