/**
 * Datasets for the benchmarks (issue 14): a Kubernetes-shaped etcd, as kube-apiserver stores
 * it, and random bytes (the incompressible worst case); plus a fast loader into a test etcd.
 *
 * `generateK8sDataset({ totalBytes, seed })` yields `{ key, value }` puts, in write order, whose
 * key and value bytes add up to `totalBytes` (within one object). Keys follow the API server's
 * layout (`/registry/<resource>/<namespace>/<name>`, cluster-scoped without the namespace,
 * `/registry/<group>/<plural>/...` for custom resources; see src/inspect/registry-key.ts).
 * Values:
 *   - built-in kinds in the protobuf storage format: the magic `k8s\0`, then a runtime.Unknown
 *     {typeMeta{apiVersion=1, kind=2}=1, raw=2, contentEncoding=3 '', contentType=4 ''} whose
 *     raw object has ObjectMeta at field 1 (name, generateName, namespace, uid, creation time,
 *     labels, annotations, ownerReferences, managedFields with fieldsV1 blobs) and a spec and
 *     status with the type's real field numbers (k8s.io/api generated.proto) for the main
 *     fields. As in etcd, metadata.resourceVersion is stored empty (the API server clears it
 *     before writing: the revision is the resource version);
 *   - custom resources and CRDs as JSON, as apiextensions-apiserver stores them.
 * The byte share of each kind is fixed (`DATASET_MIX`); sizes are drawn around each kind's
 * mean, so the key shares follow. Leases and Nodes are written several times (heartbeats and
 * status updates: several revisions of one key). Text (config files, managedFields, messages)
 * comes from seeded pools of words, so it compresses about as real objects do; uids, IPs and
 * Secret data (PEM keys and certificates, tokens, Helm release blobs) are random: base64 of
 * random bytes, which no compressor shrinks below 3/4. Everything derives from the seed: the
 * same options give the same bytes.
 *
 * `randomDataset(totalBytes, seed)` yields random values (16-112 KiB) under `/bench/random/`.
 * `inWorker(kind, totalBytes, seed)` yields the same puts, generated in a worker thread.
 * `fillEtcdWith(target, entries)` writes puts in batched transactions, several in flight.
 */
import { createCipheriv, createHash } from 'node:crypto';
import path from 'node:path';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

export interface DatasetEntry {
  key: string;
  value: Buffer;
}

export type Kind =
  | 'Event'
  | 'Lease'
  | 'Pod'
  | 'ReplicaSet'
  | 'Deployment'
  | 'Service'
  | 'Endpoints'
  | 'EndpointSlice'
  | 'ConfigMap'
  | 'Secret'
  | 'Node'
  | 'Namespace'
  | 'CustomResource'
  | 'CustomResourceDefinition';

export interface MixRow {
  kind: Kind;
  /** How the value is stored. */
  encoding: 'protobuf' | 'json';
  /** Where its keys are, e.g. `/registry/pods/<ns>/<name>`. */
  keys: string;
  /** Share of the dataset's bytes (keys plus values), 0-1. */
  byteShare: number;
  /** Share of the puts (one put per key, except Leases and Nodes, written several times), 0-1. */
  keyShare: number;
  /** Mean bytes of one put (key plus value). */
  meanBytes: number;
  /** Sizes, in words, for the docs. */
  sizes: string;
}

const KIB = 1024;

/** Mean of a uniform draw in [lo, hi]. */
const mid = (lo: number, hi: number): number => (lo + hi) / 2;

interface KindSpec {
  kind: Kind;
  encoding: 'protobuf' | 'json';
  keys: string;
  weight: number;
  /** Draws the target size of the `i`-th put of the kind. */
  size: (r: Rng, i: number) => number;
  mean: number;
  sizes: string;
}

const uniform =
  (lo: number, hi: number) =>
  (r: Rng): number =>
    Math.round(lo + (hi - lo) * r.next());
/**
 * A share `p` of the puts in [lo2, hi2], the rest in [lo1, hi1]. Which ones are large is spread
 * evenly (not drawn), so that even a small dataset has its share of large objects.
 */
const mixture =
  (lo1: number, hi1: number, p: number, lo2: number, hi2: number) =>
  (r: Rng, i: number): number =>
    Math.floor((i + 1) * p) > Math.floor(i * p) ? uniform(lo2, hi2)(r) : uniform(lo1, hi1)(r);

const SPECS: KindSpec[] = [
  {
    kind: 'Event',
    encoding: 'protobuf',
    keys: '/registry/events/<ns>/<name>',
    weight: 0.0968,
    size: uniform(600, 1200),
    mean: mid(600, 1200),
    sizes: '0.6-1.2 KiB',
  },
  {
    kind: 'Lease',
    encoding: 'protobuf',
    keys: '/registry/leases/kube-node-lease/<node>, /registry/leases/kube-system/<controller>',
    weight: 0.003,
    size: uniform(300, 420),
    mean: mid(300, 420),
    sizes: '0.3-0.4 KiB, rewritten (many revisions)',
  },
  { kind: 'Pod', encoding: 'protobuf', keys: '/registry/pods/<ns>/<name>', weight: 0.22, size: uniform(3000, 7000), mean: mid(3000, 7000), sizes: '3-7 KiB' },
  {
    kind: 'ReplicaSet',
    encoding: 'protobuf',
    keys: '/registry/replicasets/<ns>/<name>',
    weight: 0.07,
    size: uniform(2500, 4500),
    mean: mid(2500, 4500),
    sizes: '2.5-4.5 KiB',
  },
  {
    kind: 'Deployment',
    encoding: 'protobuf',
    keys: '/registry/deployments/<ns>/<name>',
    weight: 0.04,
    size: uniform(4000, 6000),
    mean: mid(4000, 6000),
    sizes: '4-6 KiB',
  },
  {
    kind: 'Service',
    encoding: 'protobuf',
    keys: '/registry/services/specs/<ns>/<name>',
    weight: 0.015,
    size: uniform(1200, 2400),
    mean: mid(1200, 2400),
    sizes: '1.2-2.4 KiB',
  },
  {
    kind: 'Endpoints',
    encoding: 'protobuf',
    keys: '/registry/services/endpoints/<ns>/<name>',
    weight: 0.015,
    size: uniform(500, 1300),
    mean: mid(500, 1300),
    sizes: '0.5-1.3 KiB',
  },
  {
    kind: 'EndpointSlice',
    encoding: 'protobuf',
    keys: '/registry/endpointslices/<ns>/<name>',
    weight: 0.02,
    size: uniform(800, 1600),
    mean: mid(800, 1600),
    sizes: '0.8-1.6 KiB',
  },
  {
    kind: 'ConfigMap',
    encoding: 'protobuf',
    keys: '/registry/configmaps/<ns>/<name>',
    weight: 0.25,
    size: mixture(500, 6 * KIB, 0.08, 100 * KIB, 900 * KIB),
    mean: 0.92 * mid(500, 6 * KIB) + 0.08 * mid(100 * KIB, 900 * KIB),
    sizes: '92 % 0.5-6 KiB, 8 % 100-900 KiB',
  },
  {
    kind: 'Secret',
    encoding: 'protobuf',
    keys: '/registry/secrets/<ns>/<name>',
    weight: 0.15,
    size: mixture(2 * KIB, 6 * KIB, 0.3, 20 * KIB, 120 * KIB),
    mean: 0.7 * mid(2 * KIB, 6 * KIB) + 0.3 * mid(20 * KIB, 120 * KIB),
    sizes: '70 % 2-6 KiB (TLS, tokens), 30 % 20-120 KiB (Helm releases); data is random base64',
  },
  {
    kind: 'Node',
    encoding: 'protobuf',
    keys: '/registry/minions/<node>',
    weight: 0.01,
    size: uniform(10 * KIB, 18 * KIB),
    mean: mid(10 * KIB, 18 * KIB),
    sizes: '10-18 KiB, rewritten (status updates)',
  },
  {
    kind: 'Namespace',
    encoding: 'protobuf',
    keys: '/registry/namespaces/<ns>',
    weight: 0.0002,
    size: uniform(350, 550),
    mean: mid(350, 550),
    sizes: '0.35-0.55 KiB',
  },
  {
    kind: 'CustomResource',
    encoding: 'json',
    keys: '/registry/<group>/<plural>/<ns>/<name> (cert-manager, monitoring, helm.cattle.io, traefik)',
    weight: 0.09,
    size: uniform(1000, 4000),
    mean: mid(1000, 4000),
    sizes: '1-4 KiB',
  },
  {
    kind: 'CustomResourceDefinition',
    encoding: 'json',
    keys: '/registry/apiextensions.k8s.io/customresourcedefinitions/<name>',
    weight: 0.02,
    size: uniform(20 * KIB, 140 * KIB),
    mean: mid(20 * KIB, 140 * KIB),
    sizes: '20-140 KiB (OpenAPI schemas)',
  },
];

const WEIGHTS = SPECS.reduce((a, s) => a + s.weight, 0);
const PER_BYTE = SPECS.reduce((a, s) => a + s.weight / WEIGHTS / s.mean, 0);

/** The mix of `generateK8sDataset` (shares of bytes are exact within one object; shares of puts follow from the mean sizes). */
export const DATASET_MIX: readonly MixRow[] = SPECS.map((s) => ({
  kind: s.kind,
  encoding: s.encoding,
  keys: s.keys,
  byteShare: s.weight / WEIGHTS,
  keyShare: s.weight / WEIGHTS / s.mean / PER_BYTE,
  meanBytes: s.mean,
  sizes: s.sizes,
}));

/** DATASET_MIX as a Markdown table. */
export function mixTable(): string {
  const pct = (x: number): string => `${(x * 100).toFixed(1)} %`;
  const rows = DATASET_MIX.map(
    (m) => `| ${m.kind} | ${m.encoding} | \`${m.keys}\` | ${pct(m.keyShare)} | ${pct(m.byteShare)} | ${(m.meanBytes / KIB).toFixed(1)} KiB | ${m.sizes} |`,
  );
  return ['| kind | encoding | keys | share of puts | share of bytes | mean put | sizes |', '|---|---|---|---|---|---|---|', ...rows].join('\n');
}

// ---------------------------------------------------------------- randomness

/** Seeded PRNG (mulberry32) for choices, and an AES-128-CTR keystream for random bytes. */
export class Rng {
  private s: number;
  private readonly stream: ReturnType<typeof createCipheriv>;
  private reservoir = Buffer.alloc(0);
  private at = 0;
  constructor(seed: number) {
    this.s = seed >>> 0;
    const key = createHash('sha256').update(`etcdsnap-bench-${seed}`).digest();
    this.stream = createCipheriv('aes-128-ctr', key.subarray(0, 16), key.subarray(16, 32));
  }
  /** A float in [0, 1). */
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)] as T;
  }
  /** Skewed towards the start of `xs` (a few words are common, most rare). */
  zipf<T>(xs: readonly T[]): T {
    const u = this.next();
    return xs[Math.floor(xs.length * u * u * u)] as T;
  }
  /** `n` bytes of the keystream (small requests are served from a 64 KiB reservoir: one cipher call per 64 KiB). */
  bytes(n: number): Buffer {
    if (n > 4096) return this.stream.update(Buffer.alloc(n));
    if (this.at + n > this.reservoir.length) {
      this.reservoir = this.stream.update(Buffer.alloc(64 * 1024));
      this.at = 0;
    }
    this.at += n;
    return this.reservoir.subarray(this.at - n, this.at);
  }
  hex(n: number): string {
    return this.bytes(Math.ceil(n / 2))
      .toString('hex')
      .slice(0, n);
  }
  uid(): string {
    const h = this.hex(32);
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
  }
  ip(prefix = '10.42'): string {
    return `${prefix}.${this.int(256)}.${1 + this.int(254)}`;
  }
}

/** A bijection of 0..36^len-1 shown as `len` base-36 digits: unique, random-looking name suffixes. */
function suffix(i: number, len: number): string {
  const m = 36 ** len;
  return ((i * 2654435761 + 12345) % m).toString(36).padStart(len, '0');
}

const WORDS = (
  'app web api server worker cache redis postgres mysql kafka zookeeper nginx envoy proxy gateway ingress controller manager operator agent ' +
  'metrics prometheus grafana loki tempo alertmanager exporter node kube system monitoring logging tracing cert issuer webhook admission ' +
  'config data volume storage backup restore snapshot database queue stream event batch job cron schedule scheduler frontend backend ' +
  'auth user session token login account billing payment order cart catalog search index report analytics ml model inference training ' +
  'service endpoint port protocol http https grpc tcp udp timeout retry limit max min size buffer pool thread connection host path ' +
  'level debug info warn error enabled disabled true false default name value key label selector replicas image tag version release ' +
  'namespace cluster region zone east west primary secondary leader follower read write sync async interval period threshold rate'
).split(' ');
const NAMESPACES_SYSTEM = ['default', 'kube-system', 'kube-public', 'kube-node-lease'];

/** A pool of config-file-like text (key = value lines, YAML, comments, URLs). */
function textPool(r: Rng, bytes: number): string {
  const out: string[] = [];
  let n = 0;
  const value = (): string => {
    switch (r.int(6)) {
      case 0:
        return String(r.int(10000));
      case 1:
        return `https://${r.zipf(WORDS)}.${r.zipf(WORDS)}.svc.cluster.local:${1000 + r.int(9000)}/${r.zipf(WORDS)}`;
      case 2:
        return r.next() < 0.5 ? 'true' : 'false';
      case 3:
        return `${1 + r.int(300)}s`;
      default:
        return `${r.zipf(WORDS)}-${r.zipf(WORDS)}`;
    }
  };
  while (n < bytes) {
    let line: string;
    switch (r.int(5)) {
      case 0:
        line = `# ${r.zipf(WORDS)} ${r.zipf(WORDS)} ${r.zipf(WORDS)} ${r.zipf(WORDS)} ${r.zipf(WORDS)} ${r.zipf(WORDS)}`;
        break;
      case 1:
        line = `${r.zipf(WORDS)}.${r.zipf(WORDS)}.${r.zipf(WORDS)} = ${value()}`;
        break;
      case 2:
        line = `${'  '.repeat(r.int(4))}${r.zipf(WORDS)}_${r.zipf(WORDS)}: ${value()}`;
        break;
      case 3:
        line = `  - name: ${r.zipf(WORDS)}-${r.zipf(WORDS)}\n    ${r.zipf(WORDS)}: ${value()}`;
        break;
      default:
        line = `[${r.zipf(WORDS)}.${r.zipf(WORDS)}]`;
    }
    out.push(line);
    n += line.length + 1;
  }
  return out.join('\n');
}

/** A pool of managedFields fieldsV1-like JSON (`{"f:spec":{"f:containers":{"k:{...}":{".":{},…}}}}`). */
function fieldsPool(r: Rng, bytes: number): string {
  const out: string[] = [];
  let n = 0;
  const obj = (depth: number): string => {
    const parts: string[] = ['".":{}'];
    const k = 1 + r.int(depth > 2 ? 2 : 5);
    for (let i = 0; i < k; i++) {
      const name = r.next() < 0.15 ? `k:{\\"name\\":\\"${r.zipf(WORDS)}\\"}` : `f:${r.zipf(WORDS)}${r.next() < 0.3 ? `.${r.zipf(WORDS)}` : ''}`;
      parts.push(`"${name}":${depth < 4 && r.next() < 0.45 ? obj(depth + 1) : '{}'}`);
    }
    return `{${parts.join(',')}}`;
  };
  while (n < bytes) {
    const s = `"f:${r.zipf(WORDS)}":${obj(0)},`;
    out.push(s);
    n += s.length;
  }
  return out.join('');
}

class Pool {
  constructor(
    private readonly text: string,
    private readonly r: Rng,
  ) {}
  /** `n` characters from a random place (wrapping). */
  take(n: number): string {
    if (n <= 0) return '';
    const len = this.text.length;
    let out = '';
    let at = this.r.int(len);
    while (out.length < n) {
      out += this.text.slice(at, at + n - out.length);
      at = 0;
    }
    return out;
  }
}

// ---------------------------------------------------------------- protobuf writer

const SMALL = Array.from({ length: 128 }, (_, i) => Buffer.from([i]));
function varintLen(n: number): number {
  let len = 1;
  for (let v = n; v >= 0x80; v = Math.floor(v / 0x80)) len++;
  return len;
}
function writeVarint(buf: Buffer, at: number, n: number): number {
  let pos = at;
  let v = n;
  while (v >= 0x80) {
    buf[pos++] = (v % 0x80) | 0x80;
    v = Math.floor(v / 0x80);
  }
  buf[pos++] = v;
  return pos;
}
function varint(n: number): Buffer {
  if (n < 128) return SMALL[n] as Buffer;
  const out = Buffer.allocUnsafe(varintLen(n));
  writeVarint(out, 0, n);
  return out;
}
const tag = (field: number, wire: number): Buffer => varint(field * 8 + wire);
/** A length-delimited field (string, bytes or message), written in one allocation. */
function ld(field: number, b: Buffer | string): Buffer {
  const len = typeof b === 'string' ? Buffer.byteLength(b) : b.length;
  const head = varintLen(field * 8 + 2) + varintLen(len);
  const out = Buffer.allocUnsafe(head + len);
  writeVarint(out, writeVarint(out, 0, field * 8 + 2), len);
  if (typeof b === 'string') out.write(b, head, 'utf8');
  else b.copy(out, head);
  return out;
}
/** An embedded message made of already-encoded fields, copied once. */
function msg(field: number, ...parts: Buffer[]): Buffer {
  let len = 0;
  for (const p of parts) len += p.length;
  const head = varintLen(field * 8 + 2) + varintLen(len);
  const out = Buffer.allocUnsafe(head + len);
  let pos = writeVarint(out, writeVarint(out, 0, field * 8 + 2), len);
  for (const p of parts) {
    p.copy(out, pos);
    pos += p.length;
  }
  return out;
}
const int = (field: number, n: number): Buffer => Buffer.concat([tag(field, 0), varint(n)]);
const bool = (field: number, b: boolean): Buffer => int(field, b ? 1 : 0);
const time = (field: number, seconds: number): Buffer => msg(field, int(1, seconds));
const microTime = (field: number, seconds: number, nanos: number): Buffer => msg(field, int(1, seconds), int(2, nanos));
const mapOf = (field: number, m: ReadonlyArray<readonly [string, string | Buffer]>): Buffer[] =>
  [...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, v]) => msg(field, ld(1, k), ld(2, v)));

const MAGIC = Buffer.from([0x6b, 0x38, 0x73, 0x00]);
function envelope(apiVersion: string, kind: string, object: Buffer): Buffer {
  return Buffer.concat([MAGIC, msg(1, ld(1, apiVersion), ld(2, kind)), ld(2, object), ld(3, ''), ld(4, '')]);
}

interface MetaOpts {
  name: string;
  generateName?: string;
  namespace?: string;
  uid: string;
  generation?: number;
  created: number;
  labels?: Array<[string, string]>;
  annotations?: Array<[string, string]>;
  owner?: { kind: string; name: string; uid: string; apiVersion: string };
  finalizers?: string[];
  /** managedFields: [manager, operation, apiVersion, time, fieldsV1 JSON, subresource]. */
  managed?: Array<[string, string, string, number, string, string?]>;
}

/** ObjectMeta as the API server's gogo marshaller writes it (fields in order, empty strings written). */
function objectMeta(m: MetaOpts): Buffer {
  return Buffer.concat([
    ld(1, m.name),
    ld(2, m.generateName ?? ''),
    ld(3, m.namespace ?? ''),
    ld(4, ''),
    ld(5, m.uid),
    ld(6, ''),
    int(7, m.generation ?? 0),
    time(8, m.created),
    ...mapOf(11, m.labels ?? []),
    ...mapOf(12, m.annotations ?? []),
    ...(m.owner === undefined
      ? []
      : [msg(13, ld(1, m.owner.kind), ld(3, m.owner.name), ld(4, m.owner.uid), ld(5, m.owner.apiVersion), bool(6, true), bool(7, true))]),
    ...(m.finalizers ?? []).map((f) => ld(14, f)),
    ...(m.managed ?? []).map(([manager, op, apiVersion, t, fields, sub]) =>
      msg(17, ld(1, manager), ld(2, op), ld(3, apiVersion), time(4, t), ld(6, 'FieldsV1'), msg(7, ld(1, `{${fields}}`)), ld(8, sub ?? '')),
    ),
  ]);
}

// ---------------------------------------------------------------- the generator

export interface K8sDatasetOptions {
  totalBytes: number;
  seed?: number;
}

interface State {
  r: Rng;
  text: Pool;
  fields: Pool;
  t0: number;
  namespaces: string[];
  nodes: string[];
  leases: Array<[string, string]>;
  counters: Map<Kind, number>;
  /** Bytes of a value of the kind besides its padding (see `fit`). */
  overhead: Map<Kind, number>;
}

/** The puts of a Kubernetes-shaped etcd of about `totalBytes` (keys plus values), in write order. */
export function* generateK8sDataset(opts: K8sDatasetOptions): Generator<DatasetEntry> {
  const total = Math.max(0, Math.floor(opts.totalBytes));
  const r = new Rng(opts.seed ?? 1);
  const poolBytes = Math.min(8 * 2 ** 20, Math.max(256 * KIB, Math.floor(total / 16)));
  const expected = (k: Kind): number => {
    const m = DATASET_MIX.find((x) => x.kind === k);
    return m === undefined ? 0 : (total * m.byteShare) / m.meanBytes;
  };
  const nsCount = Math.max(2, Math.round(expected('Namespace')));
  const nodeCount = Math.max(1, Math.ceil(expected('Node') / 8));
  const st: State = {
    r,
    text: new Pool(textPool(r, poolBytes), r),
    fields: new Pool(fieldsPool(r, poolBytes / 2), r),
    t0: Date.UTC(2026, 0, 5, 8, 0, 0) / 1000,
    namespaces: [
      ...NAMESPACES_SYSTEM,
      ...Array.from({ length: nsCount }, (_, i) => `${WORDS[(i * 7) % WORDS.length]}-${WORDS[(i * 13 + 5) % WORDS.length]}-${suffix(i, 3)}`),
    ],
    nodes: Array.from({ length: nodeCount }, (_, i) => `node-${String(i + 1).padStart(3, '0')}`),
    leases: [],
    counters: new Map(),
    overhead: new Map(),
  };
  st.leases = [
    ...st.nodes.map((n): [string, string] => ['kube-node-lease', n]),
    ...[
      'kube-controller-manager',
      'kube-scheduler',
      'cloud-controller-manager',
      'cert-manager-controller',
      'traefik',
      'coredns',
      'metrics-server',
      'local-path-provisioner',
    ].map((n): [string, string] => ['kube-system', n]),
  ];
  const spent = new Map<Kind, number>(DATASET_MIX.map((m) => [m.kind, 0]));
  let produced = 0;
  while (produced < total) {
    // the kind furthest behind its share goes next, so the shares hold at every point of the stream
    let best = DATASET_MIX[0] as MixRow;
    let bestRatio = Number.POSITIVE_INFINITY;
    for (const m of DATASET_MIX) {
      const ratio = (spent.get(m.kind) ?? 0) / m.byteShare;
      if (ratio < bestRatio) {
        bestRatio = ratio;
        best = m;
      }
    }
    const spec = SPECS.find((s) => s.kind === best.kind) as KindSpec;
    const i = st.counters.get(spec.kind) ?? 0;
    st.counters.set(spec.kind, i + 1);
    // the last put is cut to what is left, so that a large one does not overshoot the total
    const e = make(st, spec.kind, i, Math.min(spec.size(r, i), Math.max(256, total - produced)));
    const n = Buffer.byteLength(e.key) + e.value.length;
    spent.set(spec.kind, (spent.get(spec.kind) ?? 0) + n);
    produced += n;
    yield e;
  }
}

/**
 * Builds the value with the padding that brings the put to `target` bytes (key included): the
 * bytes around the padding are estimated from the previous objects of the kind (`overhead`),
 * so each object is built once. The first one of a kind is built twice to learn it.
 */
function fit(st: State, kind: Kind, key: string, target: number, build: (pad: number) => Buffer): DatasetEntry {
  const room = target - Buffer.byteLength(key);
  let estimate = st.overhead.get(kind);
  if (estimate === undefined) {
    estimate = build(0).length;
  }
  const pad = Math.max(0, Math.round(room - estimate));
  const value = build(pad);
  const seen = value.length - pad;
  st.overhead.set(kind, Math.round(0.8 * estimate + 0.2 * seen));
  return { key, value };
}

const APPS = WORDS.slice(0, 60);

function make(st: State, kind: Kind, i: number, target: number): DatasetEntry {
  const { r } = st;
  const ns = (): string => (r.next() < 0.05 ? r.pick(NAMESPACES_SYSTEM) : r.pick(st.namespaces));
  const created = st.t0 + r.int(86400 * 60);
  const app = r.zipf(APPS);
  const labels = (extra: Array<[string, string]> = []): Array<[string, string]> => [
    ['app.kubernetes.io/name', app],
    ['app.kubernetes.io/instance', `${app}-${r.zipf(WORDS)}`],
    ...(r.next() < 0.5 ? [['app.kubernetes.io/managed-by', 'Helm'] as [string, string]] : []),
    ...extra,
  ];
  /** managedFields entries that carry `pad` bytes of fieldsV1. */
  const managed = (pad: number, managers: string[], apiVersion: string): MetaOpts['managed'] => {
    const each = Math.floor(pad / managers.length);
    return managers.map((m, j) => [
      m,
      j === 0 ? 'Update' : r.pick(['Update', 'Apply']),
      apiVersion,
      created + j * 30 + r.int(3000),
      st.fields.take(Math.max(0, each - 60)),
      m === 'kubelet' || m.endsWith('controller') ? 'status' : '',
    ]);
  };
  switch (kind) {
    case 'Pod': {
      const n = ns();
      const rs = `${app}-${suffix(r.int(5000), 10)}`;
      const name = `${rs}-${suffix(i, 5)}`;
      return fit(st, kind, `/registry/pods/${n}/${name}`, target, (pad) => {
        const env = Array.from({ length: 2 + r.int(6) }, () =>
          msg(7, ld(1, `${r.zipf(WORDS).toUpperCase()}_${r.zipf(WORDS).toUpperCase()}`), ld(2, st.text.take(8 + r.int(40)).replace(/\n/g, ' '))),
        );
        const container = msg(
          2,
          ld(1, app),
          ld(2, `registry.example.com/${app}:v1.${r.int(40)}.${r.int(10)}`),
          ld(4, st.text.take(Math.floor(pad / 3)).replace(/\n/g, ' ')),
          msg(6, ld(1, 'http'), int(3, 8080), ld(4, 'TCP')),
          ...env,
          msg(9, ld(1, 'kube-api-access'), bool(2, true), ld(3, '/var/run/secrets/kubernetes.io/serviceaccount')),
          ld(14, 'IfNotPresent'),
        );
        const spec = msg(2, container, ld(3, 'Always'), int(4, 30), ld(6, 'ClusterFirst'), ld(8, 'default'), ld(10, r.pick(st.nodes)));
        const cond = (t: string): Buffer => msg(2, ld(1, t), ld(2, 'True'), time(4, created + 5));
        const status = msg(
          3,
          ld(1, 'Running'),
          cond('Initialized'),
          cond('Ready'),
          cond('ContainersReady'),
          cond('PodScheduled'),
          ld(5, r.ip('192.168')),
          ld(6, r.ip()),
          time(7, created),
          msg(8, ld(1, app), bool(4, true), int(5, r.int(3)), ld(6, `registry.example.com/${app}`), ld(8, `containerd://${r.hex(64)}`)),
        );
        const meta = objectMeta({
          name,
          generateName: `${rs}-`,
          namespace: n,
          uid: r.uid(),
          created,
          labels: labels([['pod-template-hash', rs.slice(-10)]]),
          owner: { kind: 'ReplicaSet', name: rs, uid: r.uid(), apiVersion: 'apps/v1' },
          managed: managed(pad - Math.floor(pad / 3), ['kube-controller-manager', 'kubelet'], 'v1'),
        });
        return envelope('v1', 'Pod', Buffer.concat([msg(1, meta), spec, status]));
      });
    }
    case 'ReplicaSet':
    case 'Deployment': {
      const n = ns();
      const name = kind === 'Deployment' ? `${app}-${suffix(i, 4)}` : `${app}-${suffix(i, 10)}`;
      const res = kind === 'Deployment' ? 'deployments' : 'replicasets';
      return fit(st, kind, `/registry/${res}/${n}/${name}`, target, (pad) => {
        const replicas = 1 + r.int(5);
        const template = msg(
          3,
          msg(1, objectMeta({ name: '', uid: '', created: 0, labels: labels() })),
          msg(2, msg(2, ld(1, app), ld(2, `registry.example.com/${app}:v1.${r.int(40)}.${r.int(10)}`), msg(6, ld(1, 'http'), int(3, 8080), ld(4, 'TCP')))),
        );
        const spec = msg(2, int(1, replicas), msg(2, ...mapOf(1, [['app.kubernetes.io/name', app]])), template);
        const status = msg(3, int(1, replicas), int(2, replicas), int(3, 1 + r.int(20)), int(4, replicas), int(5, replicas));
        const half = kind === 'Deployment' ? Math.floor(pad / 2) : 0;
        const meta = objectMeta({
          name,
          namespace: n,
          uid: r.uid(),
          generation: 1 + r.int(20),
          created,
          labels: labels(),
          annotations: [
            [kind === 'Deployment' ? 'deployment.kubernetes.io/revision' : 'deployment.kubernetes.io/desired-replicas', String(1 + r.int(9))],
            ...(half > 0
              ? [
                  ['kubectl.kubernetes.io/last-applied-configuration', `{"apiVersion":"apps/v1","kind":"Deployment",${st.fields.take(half)}}`] as [
                    string,
                    string,
                  ],
                ]
              : []),
          ],
          ...(kind === 'ReplicaSet' ? { owner: { kind: 'Deployment', name: app, uid: r.uid(), apiVersion: 'apps/v1' } } : {}),
          managed: managed(pad - half, ['kube-controller-manager', 'helm'], 'apps/v1'),
        });
        return envelope('apps/v1', kind, Buffer.concat([msg(1, meta), spec, status]));
      });
    }
    case 'Service':
    case 'Endpoints':
    case 'EndpointSlice': {
      const n = ns();
      const svc = `${app}-${suffix(i, 4)}`;
      const key =
        kind === 'Service'
          ? `/registry/services/specs/${n}/${svc}`
          : kind === 'Endpoints'
            ? `/registry/services/endpoints/${n}/${svc}`
            : `/registry/endpointslices/${n}/${svc}-${suffix(i, 5)}`;
      const name = key.slice(key.lastIndexOf('/') + 1);
      return fit(st, kind, key, target, (pad) => {
        const addresses = 1 + r.int(4);
        let body: Buffer[];
        if (kind === 'Service') {
          body = [
            msg(
              2,
              msg(1, ld(1, 'http'), ld(2, 'TCP'), int(3, 80), msg(4, int(1, 0), int(2, 8080))),
              ...mapOf(2, [['app.kubernetes.io/name', app]]),
              ld(3, r.ip('10.43')),
              ld(4, 'ClusterIP'),
            ),
            msg(3),
          ];
        } else if (kind === 'Endpoints') {
          const addr = Array.from({ length: addresses }, () =>
            msg(1, ld(1, r.ip()), msg(2, ld(1, 'Pod'), ld(2, n), ld(3, `${app}-${r.hex(10)}-${r.hex(5)}`), ld(4, r.uid())), ld(4, r.pick(st.nodes))),
          );
          body = [msg(2, ...addr, msg(3, ld(1, 'http'), int(2, 8080), ld(3, 'TCP')))];
        } else {
          const eps = Array.from({ length: addresses }, () =>
            msg(
              2,
              ld(1, r.ip()),
              msg(2, bool(1, true), bool(2, true), bool(3, false)),
              msg(4, ld(1, 'Pod'), ld(2, n), ld(3, `${app}-${r.hex(5)}`), ld(4, r.uid())),
              ld(6, r.pick(st.nodes)),
            ),
          );
          body = [...eps, msg(3, ld(1, 'http'), ld(2, 'TCP'), int(3, 8080)), ld(4, 'IPv4')];
        }
        const meta = objectMeta({
          name,
          ...(kind === 'EndpointSlice' ? { generateName: `${svc}-` } : {}),
          namespace: n,
          uid: r.uid(),
          created,
          labels: kind === 'EndpointSlice' ? labels([['kubernetes.io/service-name', svc]]) : labels(),
          ...(kind === 'EndpointSlice' ? { owner: { kind: 'Service', name: svc, uid: r.uid(), apiVersion: 'v1' } } : {}),
          managed: managed(pad, [kind === 'Service' ? 'helm' : 'kube-controller-manager'], kind === 'EndpointSlice' ? 'discovery.k8s.io/v1' : 'v1'),
        });
        return envelope(kind === 'EndpointSlice' ? 'discovery.k8s.io/v1' : 'v1', kind, Buffer.concat([msg(1, meta), ...body]));
      });
    }
    case 'ConfigMap': {
      const n = ns();
      const name = `${app}-${r.pick(['config', 'env', 'dashboards', 'rules', 'scripts', 'settings'])}-${suffix(i, 5)}`;
      return fit(st, kind, `/registry/configmaps/${n}/${name}`, target, (pad) => {
        const files = pad > 64 * KIB ? 1 + r.int(8) : 1 + r.int(3);
        const data = Array.from({ length: files }, (_, j): [string, string] => [
          `${r.zipf(WORDS)}-${j}.${r.pick(['yaml', 'conf', 'json', 'properties', 'ini'])}`,
          st.text.take(Math.floor(pad / files) - 24),
        ]);
        const meta = objectMeta({ name, namespace: n, uid: r.uid(), created, labels: labels(), managed: managed(120, ['helm'], 'v1') });
        return envelope('v1', 'ConfigMap', Buffer.concat([msg(1, meta), ...mapOf(2, data)]));
      });
    }
    case 'Secret': {
      const n = ns();
      const helm = target > 16 * KIB;
      const tls = !helm && r.next() < 0.6;
      const name = helm ? `sh.helm.release.v1.${app}.v${1 + (i % 20)}-${suffix(i, 4)}` : tls ? `${app}-tls-${suffix(i, 5)}` : `${app}-token-${suffix(i, 5)}`;
      return fit(st, kind, `/registry/secrets/${n}/${name}`, target, (pad) => {
        const b64 = (bytes: number): string => r.bytes(Math.max(0, Math.floor((bytes * 3) / 4))).toString('base64');
        const pem = (label: string, bytes: number): string =>
          `-----BEGIN ${label}-----\n${(b64(bytes).match(/.{1,64}/g) ?? []).join('\n')}\n-----END ${label}-----\n`;
        let data: Array<[string, string]>;
        let type: string;
        if (helm) {
          data = [['release', b64(pad)]];
          type = 'helm.sh/release.v1';
        } else if (tls) {
          const key = Math.floor(pad / 3);
          data = [
            ['tls.key', pem('PRIVATE KEY', key)],
            ['tls.crt', pem('CERTIFICATE', Math.floor((pad - key) / 2))],
            ['ca.crt', pem('CERTIFICATE', pad - key - Math.floor((pad - key) / 2))],
          ];
          type = 'kubernetes.io/tls';
        } else {
          data = [
            ['token', b64(pad - 200)],
            ['namespace', n],
            ['username', app],
          ];
          type = 'Opaque';
        }
        const meta = objectMeta({
          name,
          namespace: n,
          uid: r.uid(),
          created,
          labels: helm
            ? [
                ['name', app],
                ['owner', 'helm'],
                ['status', 'deployed'],
                ['version', String(1 + (i % 20))],
              ]
            : labels(),
          managed: managed(100, [helm ? 'helm' : 'cert-manager-certificates-issuing'], 'v1'),
        });
        return envelope('v1', 'Secret', Buffer.concat([msg(1, meta), ...mapOf(2, data), ld(3, type)]));
      });
    }
    case 'Event': {
      const n = ns();
      const obj = `${app}-${r.hex(10)}-${r.hex(5)}`;
      const name = `${obj}.${r.hex(16)}`;
      const reason = r.zipf([
        'Pulled',
        'Created',
        'Started',
        'Scheduled',
        'Killing',
        'BackOff',
        'Unhealthy',
        'SuccessfulCreate',
        'ScalingReplicaSet',
        'FailedMount',
      ]);
      return fit(st, kind, `/registry/events/${n}/${name}`, target, (pad) => {
        const message = `${reason === 'Pulled' ? `Container image "registry.example.com/${app}" already present on machine` : `${reason} ${obj}`} ${st.text.take(pad).replace(/\n/g, ' ')}`;
        const meta = objectMeta({ name, namespace: n, uid: r.uid(), created });
        const body = [
          msg(2, ld(1, 'Pod'), ld(2, n), ld(3, obj), ld(4, r.uid()), ld(5, 'v1'), ld(6, String(100000 + r.int(9000000))), ld(7, `spec.containers{${app}}`)),
          ld(3, reason),
          ld(4, message),
          msg(5, ld(1, 'kubelet'), ld(2, r.pick(st.nodes))),
          time(6, created),
          time(7, created + r.int(600)),
          int(8, 1 + r.int(30)),
          ld(9, reason === 'BackOff' || reason === 'Unhealthy' || reason === 'FailedMount' ? 'Warning' : 'Normal'),
          microTime(10, 0, 0),
          ld(14, 'kubelet'),
          ld(15, r.pick(st.nodes)),
        ];
        return envelope('v1', 'Event', Buffer.concat([msg(1, meta), ...body]));
      });
    }
    case 'Lease': {
      const [n, name] = st.leases[i % st.leases.length] as [string, string];
      const round = Math.floor(i / st.leases.length);
      return fit(st, kind, `/registry/leases/${n}/${name}`, target, (pad) => {
        const meta = objectMeta({
          name,
          namespace: n,
          uid: `00000000-0000-4000-a000-${String(i % st.leases.length).padStart(12, '0')}`,
          created: st.t0,
          ...(n === 'kube-node-lease'
            ? { owner: { kind: 'Node', name, uid: `00000000-0000-4000-b000-${name.slice(-3).padStart(12, '0')}`, apiVersion: 'v1' } }
            : {}),
          managed: managed(pad, ['kubelet'], 'coordination.k8s.io/v1'),
        });
        const spec = msg(
          2,
          ld(1, n === 'kube-node-lease' ? name : `${name}_${r.uid()}`),
          int(2, 40),
          microTime(3, st.t0, 0),
          microTime(4, st.t0 + round * 10, r.int(1e9)),
          int(5, 0),
        );
        return envelope('coordination.k8s.io/v1', 'Lease', Buffer.concat([msg(1, meta), spec]));
      });
    }
    case 'Node': {
      const name = st.nodes[i % st.nodes.length] as string;
      return fit(st, kind, `/registry/minions/${name}`, target, (pad) => {
        const images = Array.from({ length: Math.max(1, Math.floor(pad / 2 / 160)) }, () =>
          msg(
            8,
            ld(1, `registry.example.com/${r.zipf(WORDS)}@sha256:${r.hex(64)}`),
            ld(1, `registry.example.com/${r.zipf(WORDS)}:v${r.int(9)}.${r.int(40)}`),
            int(2, r.int(2e9)),
          ),
        );
        const cond = (t: string, s: string): Buffer =>
          msg(4, ld(1, t), ld(2, s), time(3, st.t0 + i * 10), time(4, st.t0), ld(5, `Kubelet${s === 'True' ? 'Ready' : 'HasSufficient'}`));
        const status = msg(
          3,
          ...mapOf(1, [
            ['cpu', msg(1, ld(1, '8'))],
            ['memory', msg(1, ld(1, '32871148Ki'))],
            ['pods', msg(1, ld(1, '110'))],
          ]),
          cond('MemoryPressure', 'False'),
          cond('DiskPressure', 'False'),
          cond('Ready', 'True'),
          msg(5, ld(1, 'InternalIP'), ld(2, `192.168.1.${(i % st.nodes.length) + 10}`)),
          msg(7, ld(1, r.hex(32)), ld(5, '6.1.0-28-amd64'), ld(6, 'Debian GNU/Linux 12 (bookworm)'), ld(7, 'containerd://1.7.23-k3s2'), ld(8, 'v1.31.4+k3s1')),
          ...images,
        );
        const meta = objectMeta({
          name,
          uid: `00000000-0000-4000-b000-${name.slice(-3).padStart(12, '0')}`,
          created: st.t0,
          labels: [
            ['kubernetes.io/hostname', name],
            ['kubernetes.io/os', 'linux'],
            ['node-role.kubernetes.io/control-plane', 'true'],
          ],
          annotations: [
            ['k3s.io/node-args', '["server","--cluster-init"]'],
            ['flannel.alpha.coreos.com/public-ip', `192.168.1.${(i % st.nodes.length) + 10}`],
          ],
          managed: managed(pad - Math.floor(pad / 2), ['k3s', 'kubelet'], 'v1'),
        });
        return envelope('v1', 'Node', Buffer.concat([msg(1, meta), msg(2, ld(1, `10.42.${i % st.nodes.length}.0/24`), ld(3, `k3s://${name}`)), status]));
      });
    }
    case 'Namespace': {
      const name = st.namespaces[i % st.namespaces.length] as string;
      return fit(st, kind, `/registry/namespaces/${name}`, target, (pad) => {
        const meta = objectMeta({
          name,
          uid: r.uid(),
          created,
          labels: [['kubernetes.io/metadata.name', name]],
          managed: managed(pad, ['kubectl-create'], 'v1'),
        });
        return envelope('v1', 'Namespace', Buffer.concat([msg(1, meta), msg(2, ld(1, 'kubernetes')), msg(3, ld(1, 'Active'))]));
      });
    }
    case 'CustomResource': {
      const n = ns();
      const [group, plural, crKind, version] = r.pick([
        ['cert-manager.io', 'certificates', 'Certificate', 'v1'],
        ['monitoring.coreos.com', 'servicemonitors', 'ServiceMonitor', 'v1'],
        ['helm.cattle.io', 'helmcharts', 'HelmChart', 'v1'],
        ['traefik.io', 'ingressroutes', 'IngressRoute', 'v1alpha1'],
        ['cert-manager.io', 'clusterissuers', 'ClusterIssuer', 'v1'],
      ] as const);
      const clusterScoped = plural === 'clusterissuers';
      const name = `${app}-${suffix(i, 5)}`;
      const key = clusterScoped ? `/registry/${group}/${plural}/${name}` : `/registry/${group}/${plural}/${n}/${name}`;
      return fit(st, kind, key, target, (pad) => {
        const iso = (s: number): string => new Date(s * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
        const object = {
          apiVersion: `${group}/${version}`,
          kind: crKind,
          metadata: {
            name,
            ...(clusterScoped ? {} : { namespace: n }),
            uid: r.uid(),
            generation: 1 + r.int(5),
            creationTimestamp: iso(created),
            labels: Object.fromEntries(labels()),
            managedFields: [
              { manager: 'helm', operation: 'Update', apiVersion: `${group}/${version}`, time: iso(created), fieldsType: 'FieldsV1', fieldsV1: {} },
            ],
          },
          spec: {
            [r.zipf(WORDS)]: r.zipf(WORDS),
            selector: { matchLabels: { 'app.kubernetes.io/name': app } },
            valuesContent: st.text.take(pad),
          },
          status: {
            conditions: [
              { type: 'Ready', status: 'True', lastTransitionTime: iso(created + 60), reason: 'Ready', message: `${crKind} is ready`, observedGeneration: 1 },
            ],
          },
        };
        return Buffer.from(`${JSON.stringify(object)}\n`);
      });
    }
    case 'CustomResourceDefinition': {
      const plural = `${r.zipf(WORDS)}${r.zipf(WORDS)}s`;
      const group = `${r.zipf(WORDS)}.${r.pick(['example.com', 'io', 'dev', 'cattle.io', 'coreos.com'])}`;
      const name = `${plural}-${suffix(i, 4)}.${group}`;
      return fit(st, kind, `/registry/apiextensions.k8s.io/customresourcedefinitions/${name}`, target, (pad) => {
        const properties: Record<string, unknown> = {};
        let left = pad;
        while (left > 0) {
          const d = st.text.take(Math.min(left, 60 + r.int(400))).replace(/\n/g, ' ');
          properties[`${r.zipf(WORDS)}${r.zipf(WORDS).replace(/^./, (c) => c.toUpperCase())}${suffix(Object.keys(properties).length, 2)}`] = {
            description: d,
            type: r.pick(['string', 'integer', 'boolean', 'object', 'array']),
          };
          left -= d.length + 60;
        }
        const object = {
          apiVersion: 'apiextensions.k8s.io/v1',
          kind: 'CustomResourceDefinition',
          metadata: { name, uid: r.uid(), generation: 1, creationTimestamp: new Date(created * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z') },
          spec: {
            group,
            names: { kind: plural.replace(/s$/, ''), listKind: `${plural}List`, plural, singular: plural.replace(/s$/, '') },
            scope: 'Namespaced',
            versions: [
              {
                name: 'v1',
                served: true,
                storage: true,
                schema: { openAPIV3Schema: { type: 'object', properties: { spec: { type: 'object', properties } } } },
              },
            ],
          },
          status: { acceptedNames: { kind: plural, plural }, storedVersions: ['v1'] },
        };
        return Buffer.from(`${JSON.stringify(object)}\n`);
      });
    }
  }
}

/** Random values (16-112 KiB) under `/bench/random/`: the incompressible worst case. */
export function* randomDataset(totalBytes: number, seed = 1): Generator<DatasetEntry> {
  const r = new Rng(seed);
  let produced = 0;
  for (let i = 0; produced < totalBytes; i++) {
    const key = `/bench/random/${String(i).padStart(8, '0')}`;
    const size = Math.min(16 * KIB + r.int(96 * KIB), Math.max(1, totalBytes - produced - key.length));
    const value = r.bytes(size);
    produced += key.length + value.length;
    yield { key, value };
  }
}

// ---------------------------------------------------------------- loading into etcd

export interface EtcdTarget {
  endpoint: string;
  tls: { etcdCa: string; clientCert: string; clientKey: string };
}

export interface FillOptions {
  /** Transactions in flight at once (default 6). */
  concurrency?: number;
  /** Puts per transaction (default 128, etcd's default --max-txn-ops). */
  maxOps?: number;
  /** Bytes per transaction (default 1 MiB, under etcd's default --max-request-bytes of 1.5 MiB). */
  maxBytes?: number;
}

export interface FillResult {
  puts: number;
  bytes: number;
  ms: number;
}

/** A test server's etcd (test/helpers/server.ts: its data dir and ports) as an EtcdTarget. */
export function serverTarget(server: { dataDir: string; ports: { client: number } }): EtcdTarget {
  const tls = path.join(server.dataDir, 'server', 'tls');
  return {
    endpoint: `https://127.0.0.1:${server.ports.client}`,
    tls: {
      etcdCa: path.join(tls, 'etcd', 'server-ca.crt'),
      clientCert: path.join(tls, 'etcd', 'server-client.crt'),
      clientKey: path.join(tls, 'etcd', 'server-client.key'),
    },
  };
}

/**
 * Writes the puts over mTLS in transactions of up to `maxOps` puts and `maxBytes` bytes, with
 * `concurrency` transactions in flight. A key is never put twice in one transaction (etcd
 * refuses that), so the revisions of rewritten keys stay in order of the stream.
 */
export async function fillEtcdWith(
  target: EtcdTarget,
  entries: Iterable<DatasetEntry> | AsyncIterable<DatasetEntry>,
  opts: FillOptions = {},
): Promise<FillResult> {
  const { EtcdClient } = await import('../src/etcd/client.js');
  const concurrency = opts.concurrency ?? 6;
  const maxOps = opts.maxOps ?? 128;
  const maxBytes = opts.maxBytes ?? 2 ** 20;
  const t0 = process.hrtime.bigint();
  const client = await EtcdClient.connect({ endpoint: target.endpoint, tls: target.tls });
  const inFlight = new Set<Promise<void>>();
  let failure: unknown;
  let puts = 0;
  let bytes = 0;
  let batch: DatasetEntry[] = [];
  let batchKeys = new Set<string>();
  let batchBytes = 0;
  const send = async (): Promise<void> => {
    if (batch.length === 0) return;
    const ops = batch.map((e) => ({ request_put: { key: Buffer.from(e.key), value: e.value } }));
    batch = [];
    batchKeys = new Set();
    batchBytes = 0;
    const p: Promise<void> = client.kv.kv
      .txn({ success: ops })
      .then(
        () => undefined,
        (err: unknown) => {
          failure ??= err;
        },
      )
      .finally(() => inFlight.delete(p));
    inFlight.add(p);
    // let the event loop write this request and read answers before generating the next batch
    await new Promise<void>((resolve) => setImmediate(resolve));
    while (inFlight.size >= concurrency) await Promise.race(inFlight);
    if (failure !== undefined) throw failure;
  };
  try {
    for await (const e of entries) {
      const n = Buffer.byteLength(e.key) + e.value.length;
      if (batch.length >= maxOps || batchKeys.has(e.key) || (batch.length > 0 && batchBytes + n > maxBytes)) await send();
      batch.push(e);
      batchKeys.add(e.key);
      batchBytes += n;
      puts++;
      bytes += n;
    }
    await send();
    await Promise.all(inFlight);
    if (failure !== undefined) throw failure;
  } finally {
    await Promise.allSettled(inFlight);
    client.close();
  }
  return { puts, bytes, ms: Number(process.hrtime.bigint() - t0) / 1e6 };
}

// ---------------------------------------------------------------- generating in a worker thread

interface WorkerJob {
  k8sDatasetJob: { kind: 'k8s' | 'random'; totalBytes: number; seed: number; batchBytes: number };
}
interface WorkerBatch {
  keys: string[];
  /** End offset of each value in `data`. */
  ends: number[];
  data: ArrayBuffer;
  last: boolean;
}

/**
 * The same puts as `generateK8sDataset` (or `randomDataset`), made in a worker thread: the
 * loader's thread only sends them, so generation and loading overlap. Batches of about
 * `batchBytes` come over, at most 4 ahead of the consumer.
 */
export async function* inWorker(kind: 'k8s' | 'random', totalBytes: number, seed = 1, batchBytes = 4 * 2 ** 20): AsyncGenerator<DatasetEntry> {
  const job: WorkerJob = { k8sDatasetJob: { kind, totalBytes, seed, batchBytes } };
  // run from TypeScript (node --import tsx): the worker registers tsx itself before loading this module
  const self = JSON.stringify(import.meta.url);
  const boot = import.meta.url.endsWith('.ts') ? `import('tsx/esm/api').then((t) => { t.register(); return import(${self}); })` : `import(${self})`;
  const worker = new Worker(boot, { eval: true, workerData: job });
  const queue: WorkerBatch[] = [];
  let wake: (() => void) | undefined;
  let failure: unknown;
  worker.on('message', (b: WorkerBatch) => {
    queue.push(b);
    wake?.();
  });
  worker.on('error', (err) => {
    failure = err;
    wake?.();
  });
  worker.on('exit', (code) => {
    failure ??= new Error(`dataset worker exited (${code}) before the last batch`);
    wake?.();
  });
  try {
    for (let i = 0; i < 4; i++) worker.postMessage('more');
    for (;;) {
      while (queue.length === 0 && failure === undefined) await new Promise<void>((resolve) => (wake = resolve));
      const b = queue.shift();
      if (b === undefined) throw failure;
      worker.postMessage('more');
      const data = Buffer.from(b.data);
      let start = 0;
      for (let i = 0; i < b.keys.length; i++) {
        const end = b.ends[i] as number;
        yield { key: b.keys[i] as string, value: data.subarray(start, end) };
        start = end;
      }
      if (b.last) return;
    }
  } finally {
    await worker.terminate();
  }
}

if (!isMainThread && parentPort !== null && (workerData as Partial<WorkerJob> | null)?.k8sDatasetJob !== undefined) {
  const port = parentPort;
  const { kind, totalBytes, seed, batchBytes } = (workerData as WorkerJob).k8sDatasetJob;
  const it = kind === 'k8s' ? generateK8sDataset({ totalBytes, seed }) : randomDataset(totalBytes, seed);
  port.on('message', () => {
    const keys: string[] = [];
    const values: Buffer[] = [];
    const ends: number[] = [];
    let size = 0;
    let last = false;
    while (size < batchBytes) {
      const n = it.next();
      if (n.done === true) {
        last = true;
        break;
      }
      keys.push(n.value.key);
      values.push(n.value.value);
      size += n.value.value.length;
      ends.push(size);
    }
    const data = Buffer.concat(values, size);
    const ab = data.buffer.slice(data.byteOffset, data.byteOffset + data.length) as ArrayBuffer;
    const batch: WorkerBatch = { keys, ends, data: ab, last };
    port.postMessage(batch, [ab]);
  });
}
