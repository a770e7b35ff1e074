/**
 * Kubernetes-aware decoding of etcd values and keys (src/inspect/k8s.ts, protobuf-k8s.ts,
 * registry-key.ts). Pure; no etcd.
 *
 * Source of truth for the wire format (checked, not remembered):
 *   - kubernetes/apimachinery @ eed236ceee2c19c2753a3d93ac0631dc20750454
 *     pkg/runtime/generated.proto (Unknown: typeMeta=1, raw=2, contentEncoding=3,
 *     contentType=4; runtime.TypeMeta: apiVersion=1, kind=2 — note meta/v1 TypeMeta has them the
 *     other way round, kind=1, apiVersion=2, and is not what the envelope uses),
 *     pkg/runtime/generated.pb.go (Unknown always writes contentEncoding and contentType, empty),
 *     pkg/runtime/serializer/protobuf/protobuf.go (magic 0x6b 0x38 0x73 0x00),
 *     pkg/apis/meta/v1/generated.proto (ObjectMeta: name=1 … managedFields=17; OwnerReference:
 *     kind=1, name=3, uid=4, apiVersion=5, controller=6, blockOwnerDeletion=7; Time: seconds=1,
 *     nanos=2; ManagedFieldsEntry: manager=1, operation=2, apiVersion=3, time=4, fieldsType=6,
 *     fieldsV1=7, subresource=8),
 *     pkg/apis/meta/v1/time_proto.go (empty Time = zero time; nanos dropped on read) and time.go
 *     (MarshalJSON: UTC, time.RFC3339, so whole seconds).
 *   - kubernetes/kubernetes pkg/kubeapiserver/default_storage_factory_builder.go
 *     (SpecialDefaultResourcePrefixes), staging/src/k8s.io/apiserver/pkg/server/storage/
 *     storage_factory.go (ResourcePrefix: lower-case resource when not overridden),
 *     apiextensions-apiserver customresource_handler.go (ResourcePrefix: group + "/" + plural).
 *
 * Inputs are built with the small protobuf *writer* below, byte for byte as the API server's
 * gogo-generated marshallers write them (ascending field order, empty strings written), never
 * with the decoder under test.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse as parseYaml } from 'yaml';
import { decodeEntry, decodeValue, formatTime, parseRegistryKey, renderJson, renderYaml, resourceType } from '../src/inspect/k8s.js';
import { readMessage, readVarint } from '../src/inspect/protobuf-k8s.js';
import { keyGroup } from '../src/inspect/registry-key.js';

// ---- a tiny protobuf writer (test-only) ----
function varint(n: bigint | number): Buffer {
  let v = BigInt.asUintN(64, BigInt(n));
  const out: number[] = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v !== 0n) b |= 0x80;
    out.push(b);
  } while (v !== 0n);
  return Buffer.from(out);
}
const tag = (field: number, wire: number): Buffer => varint((field << 3) | wire);
const bytes = (field: number, b: Buffer | string): Buffer => {
  const buf = typeof b === 'string' ? Buffer.from(b, 'utf8') : b;
  return Buffer.concat([tag(field, 2), varint(buf.length), buf]);
};
const msg = (field: number, ...parts: Buffer[]): Buffer => bytes(field, Buffer.concat(parts));
const int = (field: number, n: bigint | number): Buffer => Buffer.concat([tag(field, 0), varint(n)]);
const mapEntries = (field: number, m: Record<string, string | Buffer>): Buffer[] =>
  Object.keys(m)
    .sort()
    .map((k) => msg(field, bytes(1, k), bytes(2, m[k] as string | Buffer)));
const time = (field: number, seconds: number, nanos = 0): Buffer => msg(field, int(1, seconds), ...(nanos === 0 ? [] : [int(2, nanos)]));

interface Meta {
  name: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number | bigint;
  created?: number;
  deleted?: number;
  grace?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  owners?: Buffer[];
  finalizers?: string[];
  managed?: Buffer[];
}

/** ObjectMeta as gogo's MarshalToSizedBuffer writes it: strings 1-6 and generation always, Time 8 always (empty when zero). */
function objectMeta(m: Meta): Buffer {
  return Buffer.concat([
    bytes(1, m.name),
    bytes(2, m.generateName ?? ''),
    bytes(3, m.namespace ?? ''),
    bytes(4, ''),
    bytes(5, m.uid ?? ''),
    bytes(6, m.resourceVersion ?? ''),
    int(7, m.generation ?? 0),
    m.created === undefined ? bytes(8, Buffer.alloc(0)) : time(8, m.created, 123456789),
    ...(m.deleted === undefined ? [] : [time(9, m.deleted)]),
    ...(m.grace === undefined ? [] : [int(10, m.grace)]),
    ...mapEntries(11, m.labels ?? {}),
    ...mapEntries(12, m.annotations ?? {}),
    ...(m.owners ?? []),
    ...(m.finalizers ?? []).map((f) => bytes(14, f)),
    ...(m.managed ?? []),
  ]);
}

const ownerRef = (kind: string, name: string, uid: string, apiVersion: string, controller?: boolean, block?: boolean): Buffer =>
  msg(
    13,
    bytes(1, kind),
    bytes(3, name),
    bytes(4, uid),
    bytes(5, apiVersion),
    ...(controller === undefined ? [] : [int(6, controller ? 1 : 0)]),
    ...(block === undefined ? [] : [int(7, block ? 1 : 0)]),
  );

/** The value the API server stores: magic, runtime.Unknown{typeMeta, raw, contentEncoding '', contentType ''}. */
function k8sValue(apiVersion: string, kind: string, object: Buffer): Buffer {
  const unknown = Buffer.concat([msg(1, bytes(1, apiVersion), bytes(2, kind)), bytes(2, object), bytes(3, ''), bytes(4, '')]);
  return Buffer.concat([Buffer.from([0x6b, 0x38, 0x73, 0x00]), unknown]);
}

const T0 = Date.UTC(2024, 4, 1, 10, 0, 0) / 1000; // 2024-05-01T10:00:00Z

test('a Pod: kind, namespace, labels sorted, ownerReferences, finalizers, RFC 3339 creationTimestamp without nanos', () => {
  const meta = objectMeta({
    name: 'web-7d4b9-abcde',
    generateName: 'web-7d4b9-',
    namespace: 'default',
    uid: '5f0c-1',
    resourceVersion: '',
    created: T0,
    labels: { 'pod-template-hash': '7d4b9', app: 'web' },
    owners: [ownerRef('ReplicaSet', 'web-7d4b9', 'rs-uid', 'apps/v1', true, true)],
    finalizers: ['example.com/hold'],
  });
  const spec = msg(2, msg(2, bytes(1, 'nginx'), bytes(2, 'nginx:1.27')), int(4, 30)); // spec.containers[0], terminationGracePeriodSeconds
  const d = decodeValue(k8sValue('v1', 'Pod', Buffer.concat([msg(1, meta), spec, msg(3, bytes(1, 'Running'))])));
  assert.deepEqual(d, {
    encoding: 'protobuf',
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: 'web-7d4b9-abcde',
      generateName: 'web-7d4b9-',
      namespace: 'default',
      uid: '5f0c-1',
      creationTimestamp: '2024-05-01T10:00:00Z',
      labels: { app: 'web', 'pod-template-hash': '7d4b9' },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-7d4b9', uid: 'rs-uid', controller: true, blockOwnerDeletion: true }],
      finalizers: ['example.com/hold'],
    },
  });
  assert.deepEqual(Object.keys(d.metadata?.labels ?? {}), ['app', 'pod-template-hash']);
});

test('a Secret: metadata decoded, its data is not shown; deletionTimestamp, grace period and a zero creationTimestamp', () => {
  const meta = objectMeta({ name: 'db-pass', namespace: 'prod', resourceVersion: '42', deleted: T0 + 61, grace: 30, annotations: { a: 'x' } });
  const obj = Buffer.concat([msg(1, meta), msg(2, bytes(1, 'password'), bytes(2, Buffer.from('s3cr3t'))), bytes(3, 'Opaque')]);
  const v = k8sValue('v1', 'Secret', obj);
  const d = decodeValue(v);
  assert.equal(d.encoding, 'protobuf');
  assert.equal(d.kind, 'Secret');
  assert.deepEqual(d.metadata, {
    name: 'db-pass',
    namespace: 'prod',
    resourceVersion: '42',
    deletionTimestamp: '2024-05-01T10:01:01Z',
    deletionGracePeriodSeconds: 30,
    annotations: { a: 'x' },
  });
  assert.ok(!('creationTimestamp' in (d.metadata ?? {})), 'an empty Time is the zero time, left out as the API server does');
  assert.ok(!renderJson(d).includes('s3cr3t'));
  assert.equal(d.base64, undefined);
});

test('a ConfigMap with labels and annotations whose keys need quoting; a Deployment (apps/v1) with generation and managedFields', () => {
  const cm = objectMeta({
    name: 'kube-root-ca.crt',
    namespace: 'kube-system',
    created: T0,
    labels: { 'app.kubernetes.io/name': 'x', 'k8s-app': 'dns' },
    annotations: { 'kubernetes.io/description': 'line1\nline2', empty: '' },
  });
  const dcm = decodeValue(k8sValue('v1', 'ConfigMap', Buffer.concat([msg(1, cm), ...mapEntries(2, { 'ca.crt': '-----BEGIN-----' })])));
  assert.deepEqual(dcm.metadata?.labels, { 'app.kubernetes.io/name': 'x', 'k8s-app': 'dns' });
  assert.deepEqual(dcm.metadata?.annotations, { empty: '', 'kubernetes.io/description': 'line1\nline2' });

  const mf = msg(
    17,
    bytes(1, 'kube-controller-manager'),
    bytes(2, 'Update'),
    bytes(3, 'apps/v1'),
    time(4, T0 + 3600),
    bytes(6, 'FieldsV1'),
    msg(7, bytes(1, '{"f:status":{}}')),
    bytes(8, 'status'),
  );
  const dep = objectMeta({
    name: 'web',
    namespace: 'default',
    generation: 7,
    created: T0,
    annotations: { 'deployment.kubernetes.io/revision': '3' },
    managed: [mf],
  });
  const d = decodeValue(k8sValue('apps/v1', 'Deployment', Buffer.concat([msg(1, dep), msg(2, int(1, 3))])));
  assert.equal(d.encoding, 'protobuf');
  assert.equal(d.apiVersion, 'apps/v1');
  assert.equal(d.kind, 'Deployment');
  assert.equal(d.metadata?.generation, 7);
  assert.deepEqual(d.metadata?.managedFields, [
    {
      manager: 'kube-controller-manager',
      operation: 'Update',
      apiVersion: 'apps/v1',
      time: '2024-05-01T11:00:00Z',
      fieldsType: 'FieldsV1',
      subresource: 'status',
    },
  ]);
});

test('a kind the code does not know (FooBar, example.com/v1, protobuf) still shows its kind and metadata', () => {
  const meta = objectMeta({ name: 'foo-1', namespace: 'team-a', uid: 'u-1', generation: 2n ** 60n, created: T0 });
  // Metadata fields this code does not know (16, once clusterName; 99) are skipped, as protobuf readers do.
  const extra = Buffer.concat([bytes(16, 'old-cluster'), int(99, 7)]);
  const d = decodeValue(k8sValue('example.com/v1', 'FooBar', Buffer.concat([msg(1, meta, extra), msg(2, int(9, 1), bytes(10, 'x'))])));
  assert.equal(d.encoding, 'protobuf');
  assert.equal(d.apiVersion, 'example.com/v1');
  assert.equal(d.kind, 'FooBar');
  assert.equal(d.metadata?.name, 'foo-1');
  assert.equal(d.metadata?.namespace, 'team-a');
  assert.equal(d.metadata?.generation, '1152921504606846976', 'an int64 above 2^53 is a decimal string, never rounded');
  assert.equal(d.metadata?.creationTimestamp, '2024-05-01T10:00:00Z');
});

test('a label named __proto__ stays a label', () => {
  const d = decodeValue(k8sValue('v1', 'Pod', msg(1, objectMeta({ name: 'p', labels: JSON.parse('{"__proto__":"x","a":"b"}') as Record<string, string> }))));
  const labels = d.metadata?.labels ?? {};
  assert.deepEqual(Object.keys(labels), ['__proto__', 'a']);
  assert.equal(Object.getPrototypeOf(labels), Object.prototype);
  assert.match(renderJson(labels), /"__proto__": "x"/);
});

test('a JSON custom resource is decoded whole, with its metadata', () => {
  const obj = {
    apiVersion: 'helm.cattle.io/v1',
    kind: 'HelmChart',
    metadata: {
      name: 'traefik',
      namespace: 'kube-system',
      uid: 'abc',
      generation: 1,
      creationTimestamp: '2024-05-01T10:00:00Z',
      labels: { b: '2', a: '1' },
      finalizers: ['wrangler'],
      ownerReferences: [{ apiVersion: 'k3s.cattle.io/v1', kind: 'Addon', name: 'traefik', uid: 'u', controller: true, extra: 1 }],
      managedFields: [],
    },
    spec: { chart: 'traefik', set: { 'a.b': 'c' } },
  };
  const d = decodeValue(Buffer.from(JSON.stringify(obj)));
  assert.equal(d.encoding, 'json');
  assert.equal(d.kind, 'HelmChart');
  assert.equal(d.apiVersion, 'helm.cattle.io/v1');
  assert.deepEqual(d.object, obj);
  assert.deepEqual(d.metadata, {
    name: 'traefik',
    namespace: 'kube-system',
    uid: 'abc',
    generation: 1,
    creationTimestamp: '2024-05-01T10:00:00Z',
    labels: { a: '1', b: '2' },
    ownerReferences: [{ apiVersion: 'k3s.cattle.io/v1', kind: 'Addon', name: 'traefik', uid: 'u', controller: true }],
    finalizers: ['wrangler'],
  });
  assert.ok(!('managedFields' in (d.metadata ?? {})), 'an empty list is left out');
  // JSON that is not a Kubernetes object stays text.
  assert.deepEqual(decodeValue(Buffer.from('{"a":1}')), { encoding: 'text', text: '{"a":1}' });
  assert.deepEqual(decodeValue(Buffer.from('{"apiVersion":1,"kind":"X"}')).encoding, 'text');
});

test('plain text is text, binary and control characters are base64: nothing dropped', () => {
  assert.deepEqual(decodeValue(Buffer.from('hello\twörld\n')), { encoding: 'text', text: 'hello\twörld\n' });
  assert.deepEqual(decodeValue(Buffer.alloc(0)), { encoding: 'text', text: '' });
  const bin = Buffer.from([0xff, 0x00, 0x01, 0x80]);
  assert.deepEqual(decodeValue(bin), { encoding: 'base64', base64: bin.toString('base64') });
  const ctl = Buffer.from('a\u0000b');
  assert.deepEqual(decodeValue(ctl), { encoding: 'base64', base64: ctl.toString('base64') });
  const c1 = Buffer.from('a\u0085b');
  assert.equal(decodeValue(c1).encoding, 'base64');
});

test('malformed protobuf is shown as base64 with the reason, never thrown, never a guessed field', () => {
  const good = objectMeta({ name: 'x', namespace: 'ns' });
  const cases: [string, Buffer, RegExp][] = [
    [
      'truncated varint',
      Buffer.concat([Buffer.from([0x6b, 0x38, 0x73, 0x00]), msg(1, bytes(1, 'v1'), bytes(2, 'Pod')), Buffer.from([0x12, 0x80])]),
      /truncated varint/,
    ],
    ['length beyond the end', Buffer.concat([Buffer.from([0x6b, 0x38, 0x73, 0x00]), Buffer.from([0x0a, 0x7f, 0x0a])]), /beyond the end/],
    ['raw object truncated', k8sValue('v1', 'Pod', msg(1, good).subarray(0, 5)), /beyond the end/],
    ['name is a varint', k8sValue('v1', 'Pod', msg(1, int(1, 5))), /metadata\.name: field 1: wire type 0/],
    ['name is not UTF-8', k8sValue('v1', 'Pod', msg(1, bytes(1, Buffer.from([0xc3, 0x28])))), /not valid UTF-8/],
    ['no ObjectMeta', k8sValue('v1', 'Pod', msg(2, bytes(1, 'x'))), /no ObjectMeta/],
    ['ObjectMeta without a name', k8sValue('v1', 'Pod', msg(1, bytes(3, 'ns'))), /no ObjectMeta with a name/],
    ['group wire type', k8sValue('v1', 'Pod', Buffer.concat([msg(1, good), Buffer.from([0x1b])])), /wire type 3/],
    ['field 0', k8sValue('v1', 'Pod', Buffer.from([0x02, 0x00])), /field number 0/],
    ['timestamp beyond year 9999', k8sValue('v1', 'Pod', msg(1, bytes(1, 'x'), time(8, 253402300800))), /outside years 1 to 9999/],
    [
      'content encoding',
      Buffer.concat([Buffer.from([0x6b, 0x38, 0x73, 0x00]), msg(1, bytes(1, 'v1'), bytes(2, 'Pod')), bytes(2, msg(1, good)), bytes(3, 'gzip')]),
      /content encoding "gzip"/,
    ],
    ['no raw', Buffer.concat([Buffer.from([0x6b, 0x38, 0x73, 0x00]), msg(1, bytes(1, 'v1'), bytes(2, 'Pod'))]), /no raw object/],
  ];
  for (const [what, value, reason] of cases) {
    const d = decodeValue(value);
    assert.equal(d.encoding, 'base64', what);
    assert.equal(d.base64, value.toString('base64'), what);
    assert.match(d.undecodable ?? '', reason, what);
    assert.equal(d.metadata, undefined, what);
  }
  // When the envelope was readable, kind and apiVersion are still shown.
  const d = decodeValue(k8sValue('v1', 'Pod', msg(1, int(1, 5))));
  assert.equal(d.kind, 'Pod');
  assert.equal(d.apiVersion, 'v1');
});

test('a value encrypted at rest is base64 and says by which provider and key', () => {
  const v = Buffer.concat([Buffer.from('k8s:enc:aescbc:v1:key1:'), Buffer.from([0x01, 0xfe, 0x00, 0x33])]);
  assert.deepEqual(decodeValue(v), { encoding: 'base64', base64: v.toString('base64'), encryption: 'aescbc:v1:key1', undecodable: 'encrypted at rest' });
});

test('the protobuf reader: 64-bit varints, fixed fields skipped, bounds', () => {
  const max = readVarint(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), 0);
  assert.deepEqual(max, { ok: true, value: { value: 2n ** 64n - 1n, next: 10 } });
  assert.equal(readVarint(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]), 0).ok, false);
  assert.equal(readVarint(Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00]), 0).ok, false);
  const m = Buffer.concat([tag(1, 1), Buffer.alloc(8, 7), tag(2, 5), Buffer.alloc(4, 9), int(3, -1), bytes(4, 'x')]);
  const r = readMessage(m);
  assert.ok(r.ok);
  assert.deepEqual(
    r.value.map((f) => [f.field, f.wire]),
    [
      [1, 1],
      [2, 5],
      [3, 0],
      [4, 2],
    ],
  );
  assert.equal(r.value[2]?.value, 2n ** 64n - 1n);
  assert.equal(readMessage(Buffer.concat([tag(1, 1), Buffer.alloc(7)])).ok, false);
  assert.equal(readMessage(Buffer.concat([tag(1, 5), Buffer.alloc(3)])).ok, false);
  // Negative int64 (10-byte two's complement) reads back as a negative number.
  const neg = decodeValue(k8sValue('v1', 'Pod', msg(1, bytes(1, 'x'), int(10, -5))));
  assert.equal(neg.metadata?.deletionGracePeriodSeconds, -5);
});

test('timestamps print as Go time.RFC3339 in UTC: whole seconds, Z', () => {
  assert.equal(formatTime(BigInt(T0)), '2024-05-01T10:00:00Z');
  assert.equal(formatTime(0n), '1970-01-01T00:00:00Z');
  assert.equal(formatTime(-62135596800n), '0001-01-01T00:00:00Z');
  assert.throws(() => formatTime(-62135596801n));
});

test('registry keys: namespaced, cluster-scoped, grouped, renamed prefixes, and non-registry keys', () => {
  assert.deepEqual(parseRegistryKey('/registry/pods/default/web-1'), { resource: 'pods', prefix: 'pods', namespace: 'default', name: 'web-1' });
  assert.deepEqual(parseRegistryKey('/registry/deployments/kube-system/coredns'), {
    resource: 'deployments',
    prefix: 'deployments',
    namespace: 'kube-system',
    name: 'coredns',
  });
  assert.deepEqual(parseRegistryKey('/registry/namespaces/default'), { resource: 'namespaces', prefix: 'namespaces', name: 'default' });
  assert.deepEqual(parseRegistryKey('/registry/minions/node-1'), { resource: 'nodes', prefix: 'minions', name: 'node-1' });
  assert.deepEqual(parseRegistryKey('/registry/controllers/ns/rc'), { resource: 'replicationcontrollers', prefix: 'controllers', namespace: 'ns', name: 'rc' });
  assert.deepEqual(parseRegistryKey('/registry/services/specs/default/kubernetes'), {
    resource: 'services',
    prefix: 'services/specs',
    namespace: 'default',
    name: 'kubernetes',
  });
  assert.deepEqual(parseRegistryKey('/registry/services/endpoints/default/kubernetes'), {
    resource: 'endpoints',
    prefix: 'services/endpoints',
    namespace: 'default',
    name: 'kubernetes',
  });
  const api = parseRegistryKey('/registry/apiregistration.k8s.io/apiservices/v1.apps');
  assert.deepEqual(api, { resource: 'apiservices', group: 'apiregistration.k8s.io', prefix: 'apiregistration.k8s.io/apiservices', name: 'v1.apps' });
  assert.equal(resourceType(api as NonNullable<typeof api>), 'apiservices.apiregistration.k8s.io');
  assert.deepEqual(parseRegistryKey('/registry/helm.cattle.io/helmcharts/kube-system/traefik'), {
    resource: 'helmcharts',
    group: 'helm.cattle.io',
    prefix: 'helm.cattle.io/helmcharts',
    namespace: 'kube-system',
    name: 'traefik',
  });
  // An event's name has dots; only the first segment decides.
  assert.equal(parseRegistryKey('/registry/events/default/web.17a2b3c4')?.name, 'web.17a2b3c4');
  assert.deepEqual(parseRegistryKey(Buffer.from('/registry/ranges/serviceips')), { resource: 'ranges', prefix: 'ranges', name: 'serviceips' });
  for (const k of [
    '/bootstrap/abc',
    'user/key',
    '/registry',
    '/registry/',
    '/registry/pods',
    '/registry/pods//x',
    '/registry/example.com/widgets',
    '/registryx/pods/a',
  ]) {
    assert.equal(parseRegistryKey(k), undefined, k);
  }
  assert.equal(parseRegistryKey(Buffer.from([0x2f, 0x72, 0x65, 0x67, 0x69, 0x73, 0x74, 0x72, 0x79, 0x2f, 0xff, 0x2f, 0x61])), undefined);
  assert.deepEqual(keyGroup(Buffer.from('/bootstrap/abc')), { type: '/bootstrap', registry: false, namespace: null });
  assert.deepEqual(keyGroup(Buffer.from('user/key')), { type: 'user', registry: false, namespace: null });
  assert.deepEqual(keyGroup(Buffer.from('/registry/pods/ns/p')), { type: 'pods', registry: true, namespace: 'ns' });
});

test('decodeEntry: key as text (or base64 when not printable), registry position, revisions and value', () => {
  const value = k8sValue('v1', 'ConfigMap', msg(1, objectMeta({ name: 'c', namespace: 'n' })));
  const e = decodeEntry({ key: Buffer.from('/registry/configmaps/n/c'), value, createRevision: 5, modRevision: 9, version: 3, lease: '0' });
  assert.deepEqual(e, {
    key: '/registry/configmaps/n/c',
    registry: { resource: 'configmaps', prefix: 'configmaps', namespace: 'n', name: 'c' },
    createRevision: 5,
    modRevision: 9,
    version: 3,
    lease: '0',
    value: { encoding: 'protobuf', apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', namespace: 'n' } },
  });
  const odd = decodeEntry({ key: Buffer.from([0x00, 0xff]), value: Buffer.from('v'), createRevision: 1, modRevision: 1, version: 1, lease: '7' });
  assert.equal(odd.keyBase64, 'AP8=');
  assert.equal(odd.key, undefined);
  assert.equal(odd.registry, undefined);
});

test('renderJson and renderYaml: readable, round-trip, YAML 1.1 strings stay strings, no folding', () => {
  const x = { metadata: { name: 'a', labels: { enabled: 'yes', code: '0123', on: 'on' } }, long: 'x'.repeat(200), list: [1, 2] };
  assert.equal(renderJson(x), `${JSON.stringify(x, null, 2)}\n`);
  const y = renderYaml(x);
  assert.ok(y.endsWith('\n'));
  assert.ok(!y.includes('%YAML'), y);
  assert.deepEqual(parseYaml(y, { version: '1.1' }), x);
  assert.match(y, /enabled: "yes"/);
  assert.match(y, /code: "0123"/);
  assert.ok(y.includes(`long: ${'x'.repeat(200)}\n`));
  const shared = { a: 1 };
  assert.ok(!renderYaml({ p: shared, q: shared }).includes('&'));
});

test('no input throws: every truncation and every single-byte change of a Pod, and seeded random bytes, decode to a result', () => {
  const meta = objectMeta({ name: 'p', namespace: 'n', created: T0, labels: { a: 'b' }, owners: [ownerRef('ReplicaSet', 'r', 'u', 'apps/v1', true)] });
  const pod = k8sValue('v1', 'Pod', Buffer.concat([msg(1, meta), msg(2, bytes(1, 'x'))]));
  let base64 = 0;
  const check = (v: Buffer): void => {
    const d = decodeValue(v);
    assert.ok(['protobuf', 'json', 'text', 'base64'].includes(d.encoding));
    if (d.encoding === 'base64') {
      base64++;
      assert.equal(d.base64, v.toString('base64'), 'the bytes are never dropped');
    } else if (d.encoding === 'protobuf') assert.ok(d.metadata?.name !== undefined);
  };
  for (let n = 0; n <= pod.length; n++) check(pod.subarray(0, n));
  for (let i = 0; i < pod.length; i++) {
    for (const x of [0x00, 0x7f, 0x80, 0xff]) {
      const v = Buffer.from(pod);
      v[i] = x;
      check(v);
    }
  }
  let seed = 1;
  const rand = (): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed;
  };
  for (let i = 0; i < 2000; i++) {
    const v = Buffer.alloc(4 + (rand() % 64));
    for (let j = 0; j < v.length; j++) v[j] = rand() & 0xff;
    v.set([0x6b, 0x38, 0x73, 0x00]);
    check(v);
  }
  assert.ok(base64 > 2000, `${base64} undecodable inputs shown as base64`);
});
