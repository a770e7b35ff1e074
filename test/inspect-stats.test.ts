/**
 * `stats` and `diff` aggregation over snapshot entries (src/inspect/stats.ts, diff.ts). Pure:
 * in-memory async iterables stand in for `SnapshotReader.entries`, a Map for
 * `revisionCounts` (keyed by the key as a latin1 string).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EtcdsnapError } from '../src/errors.js';
import { computeStats } from '../src/inspect/stats.js';
import { diffEntries, diffSnapshots, type KeyChange } from '../src/inspect/diff.js';
import type { SnapshotKeyValue } from '../src/inspect/types.js';

function kv(key: string | Buffer, value: string, modRevision = 1, createRevision = 1): SnapshotKeyValue {
  return { key: typeof key === 'string' ? Buffer.from(key) : key, value: Buffer.from(value), createRevision, modRevision, version: 1, lease: '0' };
}

async function* from(list: SnapshotKeyValue[]): AsyncGenerator<SnapshotKeyValue> {
  for (const e of list) yield e;
}

const bytesOf = (...e: SnapshotKeyValue[]): number => e.reduce((n, x) => n + x.key.length + x.value.length, 0);

test('stats: per resource and per namespace, sorted by bytes descending, totals; revisions include deleted keys', async () => {
  const p1 = kv('/registry/pods/a/p1', 'x'.repeat(100));
  const p2 = kv('/registry/pods/b/p2', 'x'.repeat(100));
  const s1 = kv('/registry/secrets/a/s1', 'y'.repeat(500));
  const api = kv('/registry/apiregistration.k8s.io/apiservices/v1.apps', 'z'.repeat(50));
  const cr = kv('/registry/example.com/widgets/b/w', 'w'.repeat(10));
  const boot = kv('/bootstrap/abc123', 'b'.repeat(2000));
  const user = kv('foo/bar', 'u');
  const revisions = new Map<string, number>([
    ['/registry/pods/a/p1', 3],
    ['/registry/pods/b/p2', 1],
    ['/registry/pods/a/gone', 4], // deleted since: revisions only
    ['/registry/secrets/a/s1', 2],
    ['/registry/apiregistration.k8s.io/apiservices/v1.apps', 1],
    ['/registry/example.com/widgets/b/w', 1],
    ['/bootstrap/abc123', 5],
    ['foo/bar', 1],
  ]);
  const st = await computeStats(from([boot, api, cr, p1, p2, s1, user]), revisions);
  assert.deepEqual(st.byResource, [
    { type: '/bootstrap', registry: false, keys: 1, bytes: bytesOf(boot), revisions: 5 },
    { type: 'secrets', registry: true, keys: 1, bytes: bytesOf(s1), revisions: 2 },
    { type: 'pods', registry: true, keys: 2, bytes: bytesOf(p1, p2), revisions: 8 },
    { type: 'apiservices.apiregistration.k8s.io', registry: true, keys: 1, bytes: bytesOf(api), revisions: 1 },
    { type: 'widgets.example.com', registry: true, keys: 1, bytes: bytesOf(cr), revisions: 1 },
    { type: 'foo', registry: false, keys: 1, bytes: bytesOf(user), revisions: 1 },
  ]);
  assert.deepEqual(st.byNamespace, [
    { namespace: null, keys: 3, bytes: bytesOf(boot, api, user), revisions: 7 },
    { namespace: 'a', keys: 2, bytes: bytesOf(p1, s1), revisions: 9 },
    { namespace: 'b', keys: 2, bytes: bytesOf(p2, cr), revisions: 2 },
  ]);
  assert.deepEqual(st.total, { keys: 7, bytes: bytesOf(boot, api, cr, p1, p2, s1, user), revisions: 18 });
});

test('stats: ties sort by keys then name; a registry resource and a plain key segment of the same name stay apart', async () => {
  const st = await computeStats(
    from([kv('/registry/pods/n/a', 'xx'), kv('pods/x/yy', 'xx'), kv('/registry/b/c', 'xxxxxx'), kv('/registry/c/d', 'xxxxxx')]),
    new Map(),
  );
  assert.deepEqual(
    st.byResource.map((r) => [r.type, r.registry, r.bytes]),
    [
      ['pods', true, 20],
      ['b', true, 19],
      ['c', true, 19],
      ['pods', false, 11],
    ],
  );
  const tie = await computeStats(from([kv('/x/1', 'aaaaa'), kv('/y/1', 'a'), kv('/y/2', '')]), new Map());
  assert.deepEqual(
    tie.byResource.map((r) => r.type),
    ['/y', '/x'],
    'same bytes: more keys first',
  );
  const tie2 = await computeStats(from([kv('/b/1', 'a'), kv('/a/1', 'a')]), new Map());
  assert.deepEqual(
    tie2.byResource.map((r) => r.type),
    ['/a', '/b'],
  );
});

test('stats: a prefix filters both the entries and the revision counts; latin1 revision keys match binary keys', async () => {
  const bin = Buffer.from([0x2f, 0x72, 0xff, 0x00]); // "/r\xff\0"
  const revisions = new Map<string, number>([
    ['/registry/pods/a/p', 2],
    ['/registry/secrets/a/s', 9],
    [bin.toString('latin1'), 3],
  ]);
  const st = await computeStats(from([kv('/registry/pods/a/p', 'v'), kv('/registry/secrets/a/s', 'v')]), revisions, { prefix: Buffer.from('/registry/pods/') });
  assert.deepEqual(st.total, { keys: 1, bytes: '/registry/pods/a/p'.length + 1, revisions: 2 });
  assert.deepEqual(
    st.byResource.map((r) => r.type),
    ['pods'],
  );
  const b = await computeStats(from([{ ...kv(bin, 'vv') }]), revisions, { prefix: Buffer.from([0x2f, 0x72, 0xff]) });
  assert.deepEqual(b.total, { keys: 1, bytes: 6, revisions: 3 });
});

test('stats: an entry read without its value counts its valueSize, not its empty value', async () => {
  const sized: SnapshotKeyValue = { ...kv('/registry/configmaps/a/big', ''), valueSize: 65536 };
  const st = await computeStats(from([sized]), new Map([['/registry/configmaps/a/big', 1]]));
  assert.deepEqual(st.total, { keys: 1, bytes: '/registry/configmaps/a/big'.length + 65536, revisions: 1 });
});

test('stats: revision counts asked per group give the same answer as counts per key', async () => {
  const perKey = new Map<string, number>([
    ['/registry/pods/a/p', 2],
    ['/registry/pods/a/gone', 3],
    ['/registry/secrets/b/s', 9],
    ['/other/x', 4],
  ]);
  const entries = (): AsyncIterable<SnapshotKeyValue> => from([kv('/registry/pods/a/p', 'vv'), kv('/registry/secrets/b/s', 'v'), kv('/other/x', 'xyz')]);
  let calls = 0;
  const perGroup = async (countBy: (key: Buffer) => string): Promise<Map<string, number>> => {
    calls++;
    const out = new Map<string, number>();
    for (const [k, n] of perKey) out.set(countBy(Buffer.from(k, 'latin1')), (out.get(countBy(Buffer.from(k, 'latin1'))) ?? 0) + n);
    assert.ok(out.size < perKey.size, 'the groups are fewer than the keys');
    return out;
  };
  assert.deepEqual(await computeStats(entries(), perGroup), await computeStats(entries(), perKey));
  assert.equal(calls, 1);
});

test('diff: added, removed, changed with both revisions; same value at another revision is unchanged; summary per group', async () => {
  const before = [
    kv('/bootstrap/x', 'same', 3),
    kv('/registry/configmaps/a/c1', 'old', 4),
    kv('/registry/configmaps/a/c2', 'v', 5),
    kv('/registry/pods/a/gone', 'p', 6),
    kv('/registry/pods/b/same', 'keep', 7),
  ];
  const after = [
    kv('/bootstrap/x', 'same', 30, 30), // recreated with the same content
    kv('/registry/configmaps/a/c1', 'new!', 40),
    kv('/registry/configmaps/a/c2', 'v', 5),
    kv('/registry/pods/b/new', 'n', 41, 41),
    kv('/registry/pods/b/same', 'keep', 7),
  ];
  const seen: KeyChange[] = [];
  let unchangedSeen = 0;
  const sum = await diffSnapshots(from(before), from(after), { onChange: (c) => void seen.push(c), onUnchanged: () => unchangedSeen++ });
  assert.equal(unchangedSeen, 3);
  assert.deepEqual(
    seen.map((c) => [c.change, c.key.toString(), c.before?.modRevision, c.after?.modRevision]),
    [
      ['changed', '/registry/configmaps/a/c1', 4, 40],
      ['removed', '/registry/pods/a/gone', 6, undefined],
      ['added', '/registry/pods/b/new', undefined, 41],
    ],
  );
  const changed = seen.find((c) => c.change === 'changed');
  assert.deepEqual(changed?.before, { createRevision: 1, modRevision: 4, version: 1, valueBytes: 3 });
  assert.deepEqual(changed?.after, { createRevision: 1, modRevision: 40, version: 1, valueBytes: 4 });
  assert.equal(changed?.type, 'configmaps');
  assert.equal(changed?.namespace, 'a');
  assert.deepEqual(sum.total, { added: 1, removed: 1, changed: 1, unchanged: 3 });
  assert.deepEqual(sum.byResource, [
    { type: 'pods', registry: true, added: 1, removed: 1, changed: 0 },
    { type: 'configmaps', registry: true, added: 0, removed: 0, changed: 1 },
  ]);
  assert.deepEqual(sum.byNamespace, [
    { namespace: 'a', added: 0, removed: 1, changed: 1 },
    { namespace: 'b', added: 1, removed: 0, changed: 0 },
  ]);
});

test('diff: one side empty, prefix on both sides, byte order (not UTF-16 order) for the merge', async () => {
  const only = await diffSnapshots(from([]), from([kv('/a', '1'), kv('/b', '2')]));
  assert.deepEqual(only.total, { added: 2, removed: 0, changed: 0, unchanged: 0 });
  const gone = await diffSnapshots(from([kv('/a', '1')]), from([]));
  assert.deepEqual(gone.total, { added: 0, removed: 1, changed: 0, unchanged: 0 });
  const pre = await diffSnapshots(from([kv('/a/1', 'x'), kv('/b/1', 'x')]), from([kv('/a/1', 'y'), kv('/b/1', 'y'), kv('/b/2', 'y')]), {
    prefix: Buffer.from('/b/'),
  });
  assert.deepEqual(pre.total, { added: 1, removed: 0, changed: 1, unchanged: 0 });
  assert.deepEqual(pre.byResource, [{ type: '/b', registry: false, added: 1, removed: 0, changed: 1 }]);
  // U+FFFF (EF BF BF) sorts before U+1F600 (F0 9F 98 80) in bytes, after it in UTF-16.
  const k1 = '/k/\uffff';
  const k2 = '/k/\u{1f600}';
  const both = await diffSnapshots(from([kv(k1, 'a'), kv(k2, 'a')]), from([kv(k1, 'a'), kv(k2, 'b')]));
  assert.deepEqual(both.total, { added: 0, removed: 0, changed: 1, unchanged: 1 });
  const across = await diffSnapshots(from([kv(k1, 'a'), kv(k2, 'a')]), from([kv(k2, 'a')]));
  assert.deepEqual(across.total, { added: 0, removed: 1, changed: 0, unchanged: 1 });
});

test('diff: a side out of key order is refused (integrity), not merged wrongly', async () => {
  await assert.rejects(
    diffSnapshots(from([kv('/b', '1'), kv('/a', '1')]), from([kv('/a', '1')])),
    (e: unknown) => e instanceof EtcdsnapError && e.kind === 'integrity' && /first snapshot's keys are not in ascending order/.test(e.message),
  );
  await assert.rejects(
    diffSnapshots(from([]), from([kv('/a', '1'), kv('/a', '1')])),
    (e: unknown) => e instanceof EtcdsnapError && e.kind === 'integrity' && /second/.test(e.message),
  );
});

test('diffEntries streams: the first change comes before the inputs are read to the end, and stopping closes both inputs', async () => {
  let read = 0;
  const closed: string[] = [];
  async function* many(name: string, value: string): AsyncGenerator<SnapshotKeyValue> {
    try {
      for (let i = 0; i < 1_000_000; i++) {
        read++;
        yield kv(`/k/${String(i).padStart(7, '0')}`, value);
      }
    } finally {
      closed.push(name);
    }
  }
  const got: string[] = [];
  for await (const c of diffEntries(many('before', 'a'), many('after', 'b'))) {
    got.push(c.key.toString());
    if (got.length === 3) break;
  }
  assert.deepEqual(got, ['/k/0000000', '/k/0000001', '/k/0000002']);
  assert.ok(read < 20, `read ${read} entries for 3 changes`);
  assert.deepEqual(closed.sort(), ['after', 'before']);
});
