/**
 * bench/k8s-dataset.ts, the Kubernetes-shaped dataset of the compression benchmark: it is
 * deterministic, sized as asked, made of registry keys whose values our own decoder
 * (src/inspect/k8s.ts) reads back to the kind, namespace and name of the key, mixed as
 * DATASET_MIX says, and compressible (the random dataset is not). No etcd; no timing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { deflateSync } from 'node:zlib';
import { DATASET_MIX, type DatasetEntry, generateK8sDataset, inWorker, type Kind, mixTable, randomDataset } from '../bench/k8s-dataset.js';
import { decodeValue, parseRegistryKey } from '../src/inspect/k8s.js';

const MIB = 2 ** 20;
const size = (e: DatasetEntry): number => Buffer.byteLength(e.key) + e.value.length;
const digest = (entries: Iterable<DatasetEntry>): string => {
  const h = createHash('sha256');
  for (const e of entries) h.update(e.key).update('\0').update(e.value);
  return h.digest('hex');
};

const TOTAL = 24 * MIB;
const entries = [...generateK8sDataset({ totalBytes: TOTAL, seed: 42 })];

/** The mix row an entry belongs to, from its key (and, for built-ins, the kind the decoder read). */
function kindOf(key: string, kind: string | undefined): Kind {
  if (key.startsWith('/registry/apiextensions.k8s.io/customresourcedefinitions/')) return 'CustomResourceDefinition';
  const k = parseRegistryKey(key);
  if (k?.group !== undefined) return 'CustomResource';
  const row = DATASET_MIX.find((m) => m.kind === kind);
  assert.ok(row, `no mix row for kind ${kind} of ${key}`);
  return row.kind;
}

test('the same seed gives the same bytes; another seed other bytes', () => {
  const a = digest(generateK8sDataset({ totalBytes: 2 * MIB, seed: 7 }));
  assert.equal(digest(generateK8sDataset({ totalBytes: 2 * MIB, seed: 7 })), a);
  assert.notEqual(digest(generateK8sDataset({ totalBytes: 2 * MIB, seed: 8 })), a);
  assert.equal(digest(randomDataset(MIB, 3)), digest(randomDataset(MIB, 3)));
  assert.notEqual(digest(randomDataset(MIB, 3)), digest(randomDataset(MIB, 4)));
});

test('inWorker yields the same puts as the generators, in batches from a worker thread', async () => {
  const collect = async (it: AsyncIterable<DatasetEntry>): Promise<DatasetEntry[]> => {
    const out: DatasetEntry[] = [];
    for await (const e of it) out.push(e);
    return out;
  };
  const k8s = await collect(inWorker('k8s', 3 * MIB, 9, 256 * 1024));
  assert.equal(digest(k8s), digest(generateK8sDataset({ totalBytes: 3 * MIB, seed: 9 })));
  const random = await collect(inWorker('random', MIB, 9, 256 * 1024));
  assert.equal(digest(random), digest(randomDataset(MIB, 9)));
});

test('the total is the requested one within 3 %, for the realistic and the random dataset', () => {
  const total = entries.reduce((a, e) => a + size(e), 0);
  assert.ok(Math.abs(total / TOTAL - 1) < 0.03, `total ${total} for ${TOTAL}`);
  for (const want of [MIB, 5 * MIB]) {
    const got = [...randomDataset(want)].reduce((a, e) => a + size(e), 0);
    assert.ok(Math.abs(got / want - 1) < 0.03, `random: ${got} for ${want}`);
  }
});

test('every key is a registry key; every value decodes to the kind, namespace and name of its key', () => {
  for (const e of entries) {
    const k = parseRegistryKey(e.key);
    assert.ok(k, `not a registry key: ${e.key}`);
    const d = decodeValue(e.value);
    const row = DATASET_MIX.find((m) => m.kind === kindOf(e.key, d.kind));
    assert.ok(row);
    assert.equal(d.encoding, row.encoding, `${e.key}: ${d.undecodable ?? ''}`);
    if (d.encoding === 'json') assert.doesNotThrow(() => JSON.parse(e.value.toString('utf8')), e.key);
    assert.equal(d.metadata?.name, k.name, e.key);
    assert.equal(d.metadata?.namespace, k.namespace, e.key);
    assert.ok(d.metadata?.uid, `${e.key} has no uid`);
    assert.match(d.metadata?.creationTimestamp ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, e.key);
  }
  // the built-ins' kinds, as stored in the envelope, and the key layouts of the renamed prefixes
  const kinds = new Set(entries.map((e) => decodeValue(e.value).kind));
  for (const k of ['Pod', 'ReplicaSet', 'Deployment', 'Service', 'Endpoints', 'EndpointSlice', 'ConfigMap', 'Secret', 'Event', 'Lease', 'Node', 'Namespace'])
    assert.ok(kinds.has(k), `no ${k}`);
  assert.ok(entries.some((e) => e.key.startsWith('/registry/services/specs/')));
  assert.ok(entries.some((e) => e.key.startsWith('/registry/minions/') && parseRegistryKey(e.key)?.resource === 'nodes'));
});

test('the shares of puts and bytes per kind are near DATASET_MIX; Leases and Nodes have several revisions', () => {
  const by = new Map<Kind, { puts: number; bytes: number }>();
  let bytes = 0;
  for (const e of entries) {
    const kind = kindOf(e.key, decodeValue(e.value).kind);
    const s = by.get(kind) ?? { puts: 0, bytes: 0 };
    s.puts++;
    s.bytes += size(e);
    by.set(kind, s);
    bytes += size(e);
  }
  const shares = DATASET_MIX.reduce((a, m) => [a[0] + m.keyShare, a[1] + m.byteShare], [0, 0]);
  assert.ok(Math.abs((shares[0] ?? 0) - 1) < 1e-9 && Math.abs((shares[1] ?? 0) - 1) < 1e-9, 'shares add up to 1');
  for (const m of DATASET_MIX) {
    const s = by.get(m.kind) ?? { puts: 0, bytes: 0 };
    const byteShare = s.bytes / bytes;
    const keyShare = s.puts / entries.length;
    // bytes are scheduled to the share (one large ConfigMap is up to 900 KiB of 24 MiB); puts follow the mean sizes
    assert.ok(Math.abs(byteShare - m.byteShare) < 0.04, `${m.kind}: byte share ${byteShare} vs ${m.byteShare}`);
    assert.ok(Math.abs(keyShare - m.keyShare) < Math.max(0.01, m.keyShare * 0.25), `${m.kind}: key share ${keyShare} vs ${m.keyShare}`);
  }
  for (const prefix of ['/registry/leases/', '/registry/minions/']) {
    const puts = entries.filter((e) => e.key.startsWith(prefix));
    assert.ok(puts.length >= 2 * new Set(puts.map((e) => e.key)).size, `${prefix}: ${puts.length} puts`);
  }
  const others = entries.filter((e) => !e.key.startsWith('/registry/leases/') && !e.key.startsWith('/registry/minions/'));
  assert.equal(new Set(others.map((e) => e.key)).size, others.length, 'other keys are written once');
  // many small keys and some large ones
  assert.ok(entries.filter((e) => size(e) < 2048).length > entries.length * 0.4);
  assert.ok(entries.some((e) => e.key.startsWith('/registry/configmaps/') && e.value.length > 100 * 1024));
  assert.match(mixTable(), /\| ConfigMap \| protobuf \|/);
});

test('the realistic data compresses (deflate > 2x), the random data does not', () => {
  const realistic = Buffer.concat(entries.slice(0, 4000).map((e) => e.value));
  const ratio = realistic.length / deflateSync(realistic).length;
  assert.ok(ratio > 2, `deflate ratio ${ratio.toFixed(2)}`);
  const random = Buffer.concat([...randomDataset(4 * MIB)].map((e) => e.value));
  assert.ok(random.length / deflateSync(random).length < 1.01);
});
