/**
 * Bounded fuzzing of the supervisor API against one real server (and its real etcd).
 *
 * Up to FUZZ_COUNT random and malformed exchanges (bounded by FUZZ_DEADLINE_MS too), drawn
 * from a seeded PRNG so that a failure reproduces: the seed is printed, and
 * ETCDSNAP_FUZZ_SEED=<seed> replays it. Exchanges come from many loopback addresses
 * (127.0.1.x-127.0.2.x), so the per-source login throttle slows some of them without
 * holding the whole run back. Kinds: random targets (including the ones that crashed the
 * server), methods, versions and headers (huge, many, duplicated, invalid), bodies (bad JSON,
 * too large, announced and never sent, chunked garbage), pipelined requests, slow writes,
 * resets, raw garbage on a plain TCP socket, garbage after the TLS handshake, and half-open
 * connections left open until the end; with and without the token.
 *
 * Requests sent with the token never carry a body that could change the cluster or write
 * outside the snapshot folder: cluster routes get invalid bodies only, /db/snapshot gets
 * garbage or one of a few fixed bodies (list, save, a dry-run prune, a delete of a name that
 * does not exist).
 *
 * Afterwards: the server and its etcd are the same processes, /healthz answers 200, a save
 * through the CLI works, no response was a 500, no unauthenticated request got anything but
 * the public answers (health, CA, the dashboard's page and assets), the server logged no bug, and nothing changed in the data dir except
 * in the folders that legitimately change: `server/db/snapshots` and `server/db/.metadata`
 * (saves asked for by the fuzzer with the token, and their records) and `server/db/etcd`
 * (etcd's own member dir: WAL and snapshots change with every write, e.g. the server's
 * bootstrap data). Every other file (token, certificates and keys, pid files, member name)
 * is compared by mode and content.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { APP_JS } from '../src/server/dashboard/app.js';
import { PAGE_CSS, PAGE_HTML } from '../src/server/dashboard/page.js';
import { startReady, killStarted, alive, apiRequest, snapshotCliAsync, type ServerProcess } from './helpers/server.js';

const FUZZ_COUNT = 3000;
const FUZZ_DEADLINE_MS = 70_000;
const WORKERS = 16;
/** How long one exchange waits for the server before the client gives up on it. */
const EXCHANGE_BUDGET_MS = 3_000;
const MAX_HALF_OPEN = 150;

after(() => killStarted());

// ---------------------------------------------------------------------------------------
// seeded PRNG (mulberry32)

class Rng {
  constructor(private state: number) {}
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(xs: readonly T[]): T {
    const x = xs[this.int(xs.length)];
    if (x === undefined) throw new Error('pick from an empty list');
    return x;
  }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
  /** Printable ASCII, plus some control characters when `dirty`. */
  text(n: number, dirty = false): string {
    let s = '';
    for (let i = 0; i < n; i++) s += String.fromCharCode(dirty && this.chance(0.1) ? this.int(32) : 32 + this.int(95));
    return s;
  }
}

// ---------------------------------------------------------------------------------------
// what one exchange sends

type Auth = 'none' | 'valid' | 'wrong';

interface Job {
  kind: 'http' | 'tcp-garbage' | 'tls-garbage' | 'reset' | 'half-open';
  /** Chunks written one after another (a slow client writes them in several turns). */
  chunks: Buffer[];
  auth: Auth;
  /** First line, for the report. */
  summary: string;
}

const PUBLIC = ['/healthz', '/cacerts', '/', '/ui/app.js', '/ui/app.css'];
/** The dashboard's page, script and style: public, and holding no data (docs/dashboard.md). */
const DASHBOARD_ASSETS = new Set([PAGE_HTML, APP_JS, PAGE_CSS]);
const PROTECTED = [
  '/db/snapshot',
  '/v1/cluster/bootstrap',
  '/v1/cluster/members',
  '/v1/cluster/promote',
  '/v1/snapshots/status',
  '/v1/snapshots/keys',
  '/v1/snapshots/restore-keys',
  '/nothing',
  '/',
];
const NASTY_TARGETS = [
  '//a:99999',
  'http://[::1',
  '//x:65536/',
  '*',
  'http://localhost/healthz',
  'https://x:1/db/snapshot',
  '/%',
  '/%zz',
  '/%00',
  '/..',
  '/../../etc/passwd',
  '/\\evil:1/',
  '/healthz?',
  '/healthz?a=%zz&&=',
  '/./cacerts',
  '/a/../healthz',
  '//',
  '///x',
  '?x',
  '#frag',
  '/healthz#x',
  'healthz',
  '/\u00e9',
  '/db/snapshot/',
  '/DB/SNAPSHOT',
  '/v1/cluster/',
  'http://[::1]:99999/x',
  '//[::1',
  '/?'.repeat(50),
];
const METHODS = ['GET', 'POST', 'DELETE', 'PUT', 'HEAD', 'OPTIONS', 'PATCH', 'TRACE', 'CONNECT', 'get', 'G\u0000T', 'POSTX', 'M-SEARCH', ''];
const VERSIONS = ['HTTP/1.1', 'HTTP/1.1', 'HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/9.9', 'HTTP/1.1 extra', 'http/1.1', ''];

function target(r: Rng): string {
  const roll = r.int(10);
  if (roll < 3) return r.pick(PUBLIC);
  if (roll < 7) return r.pick(PROTECTED);
  if (roll < 9) return r.pick(NASTY_TARGETS);
  return r.chance(0.5) ? `/${r.text(r.int(64), true)}` : `/${'a'.repeat(r.pick([100, 9000, 20_000]))}`;
}

/** Bodies that are safe to send with the token (see the file comment). */
function authedBody(r: Rng, t: string): string {
  const garbage = [
    '{',
    '[]',
    'null',
    '"x"',
    '1',
    '{"a":',
    '{}{}',
    '\u0000\u0001',
    r.text(r.int(200), true),
    JSON.stringify({ [`zz${r.text(8)}`]: r.int(9) }),
    JSON.stringify({ operation: 'bogus' }),
    JSON.stringify({ operation: 'list', [`zz${r.text(6)}`]: 1 }),
  ];
  if (t === '/db/snapshot' && r.chance(0.5)) {
    return r.pick([
      JSON.stringify({ operation: 'list' }),
      JSON.stringify({ operation: 'list' }),
      JSON.stringify({ operation: 'prune', dryRun: true }),
      JSON.stringify({ operation: 'delete', name: ['no-such-snapshot'] }),
      JSON.stringify({ operation: 'save' }),
      JSON.stringify({ operation: 'save', name: 'fuzz', compress: true }),
    ]);
  }
  return r.pick(garbage);
}

function authHeader(r: Rng, auth: Auth, secret: string): string[] {
  if (auth === 'valid')
    return [r.chance(0.5) ? `Authorization: Bearer ${secret}` : `Authorization: Basic ${Buffer.from(`server:${secret}`).toString('base64')}`];
  if (auth === 'none') return [];
  return [
    r.pick([
      'Authorization: Bearer nope',
      `Authorization: Bearer ${secret}x`,
      `Authorization: Basic ${Buffer.from(`admin:${secret}`).toString('base64')}`,
      'Authorization: Basic %%%not-base64',
      'Authorization: Basic ',
      'Authorization: Bearer',
      `Authorization: ${r.text(40, true)}`,
      `Authorization: Bearer ${'x'.repeat(10_000)}`,
    ]),
  ];
}

function httpJob(r: Rng, secret: string): Job {
  const auth: Auth = r.pick(['none', 'none', 'valid', 'valid', 'wrong']);
  const method = r.chance(0.7) ? r.pick(['GET', 'POST']) : r.pick(METHODS);
  const t = target(r);
  const version = r.chance(0.85) ? 'HTTP/1.1' : r.pick(VERSIONS);
  const headers: string[] = [];
  if (r.chance(0.95)) headers.push('Host: x');
  if (r.chance(0.05)) headers.push('Host: y');
  headers.push(...authHeader(r, auth, secret));
  if (auth === 'valid' && r.chance(0.05)) headers.push(...authHeader(r, 'wrong', secret)); // a second Authorization
  // random, invalid, huge, many headers
  for (let i = r.int(4); i > 0; i--) headers.push(`X-${r.text(1 + r.int(10)).replace(/[^A-Za-z0-9-]/g, 'y')}: ${r.text(r.int(50), r.chance(0.05))}`);
  if (r.chance(0.03)) headers.push(`X-Huge: ${'h'.repeat(r.pick([8_000, 20_000, 70_000]))}`);
  if (r.chance(0.02)) for (let i = 0; i < 2_100; i++) headers.push(`X-Many-${i}: ${i}`);
  if (r.chance(0.03)) headers.push(`${r.text(8, true)}: bad name`);
  if (r.chance(0.03)) headers.push('Expect: 100-continue');
  if (r.chance(0.03)) headers.push('Connection: Upgrade', 'Upgrade: websocket');
  if (r.chance(0.05)) headers.push('Connection: keep-alive');

  // the body and its framing
  let body = '';
  const bodyKind = r.int(10);
  if (bodyKind >= 4) {
    body = auth === 'valid' ? authedBody(r, t) : r.pick(['{}', '{"operation":"save"}', r.text(r.int(300), true), '{']);
    if (r.chance(0.03)) body = 'x'.repeat(70 * 1024); // over the 64 KiB limit
  }
  const framing = r.int(14);
  if (body !== '' || framing >= 11) {
    const len = Buffer.byteLength(body);
    if (framing < 9) headers.push(`Content-Length: ${len}`);
    else if (framing === 9) headers.push(`Content-Length: ${len}`, `Content-Length: ${len + 5}`);
    else if (framing === 10) headers.push(`Content-Length: ${r.pick(['-1', 'abc', '1e3', '99999999999999999999', '1000000', ' 2'])}`);
    else if (framing === 11) {
      headers.push('Transfer-Encoding: chunked');
      body = r.chance(0.5)
        ? `${len.toString(16)}\r\n${body}\r\n0\r\n\r\n`
        : r.pick(['zz\r\nxx\r\n', '5\r\nab', 'ffffffffffffffff\r\n', `${r.text(30, true)}\r\n0\r\n\r\n`]);
    } else if (framing === 12) headers.push('Transfer-Encoding: chunked', `Content-Length: ${len}`);
    else headers.push(`Transfer-Encoding: ${r.pick(['gzip, chunked', 'identity', 'chunked, gzip', 'x'])}`);
  }
  let req = `${`${method} ${t} ${version}`.trimEnd()}\r\n${headers.join('\r\n')}\r\n\r\n${body}`;
  if (r.chance(0.05)) req += `GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n`; // pipelined
  if (r.chance(0.03)) req = req.replace(/\r\n/g, '\n'); // bare LF
  const all = Buffer.from(req, 'latin1');
  const chunks: Buffer[] = [];
  if (r.chance(0.1)) {
    // a slow client: the request in several writes
    let at = 0;
    while (at < all.length) {
      const n = 1 + r.int(64);
      chunks.push(all.subarray(at, at + n));
      at += n;
    }
  } else chunks.push(all);
  return { kind: 'http', chunks, auth, summary: `${method} ${t.slice(0, 60)} ${version}` };
}

function makeJob(r: Rng, secret: string): Job {
  const roll = r.int(100);
  if (roll < 4)
    return {
      kind: 'tcp-garbage',
      chunks: [r.chance(0.5) ? r.bytes(1 + r.int(2000)) : Buffer.from('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n')],
      auth: 'none',
      summary: 'plain TCP garbage',
    };
  if (roll < 8) return { kind: 'tls-garbage', chunks: [r.bytes(1 + r.int(2000))], auth: 'none', summary: 'garbage after the TLS handshake' };
  if (roll < 10)
    return {
      kind: 'reset',
      chunks: [Buffer.from('POST /db/snapshot HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{')],
      auth: 'none',
      summary: 'reset mid-request',
    };
  if (roll < 14) {
    const j = httpJob(r, secret);
    const first = j.chunks[0] ?? Buffer.alloc(0);
    return { ...j, kind: 'half-open', chunks: [first.subarray(0, r.int(first.length + 1))], summary: `half-open: ${j.summary}` };
  }
  return httpJob(r, secret);
}

// ---------------------------------------------------------------------------------------
// running one exchange

interface Outcome {
  status?: number;
  body: string;
  /** The client gave up after EXCHANGE_BUDGET_MS. */
  gaveUp: boolean;
}

/** The first final (non-1xx) response in `raw`, if its head has arrived. */
function firstResponse(raw: Buffer): { status: number; body: string; complete: boolean } | undefined {
  let text = raw.toString('latin1');
  for (;;) {
    const end = text.indexOf('\r\n\r\n');
    if (end < 0) return undefined;
    const head = text.slice(0, end);
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
    if (!m) return undefined;
    const status = Number(m[1]);
    if (status >= 100 && status < 200) {
      text = text.slice(end + 4); // an interim response (100 Continue)
      continue;
    }
    const len = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
    const body = text.slice(end + 4, end + 4 + len);
    return { status, body, complete: Buffer.byteLength(body, 'latin1') >= len };
  }
}

const halfOpen: net.Socket[] = [];

function run(port: number, job: Job, localAddress: string): Promise<Outcome> {
  return new Promise((resolve) => {
    const tcp = net.connect({ host: '127.0.0.1', port, localAddress });
    tcp.on('error', () => undefined);
    const plain = job.kind === 'tcp-garbage';
    const sock: net.Socket = plain ? tcp : tls.connect({ socket: tcp, rejectUnauthorized: false });
    sock.on('error', () => undefined);
    let raw = Buffer.alloc(0);
    let settled = false;
    const finish = (gaveUp: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const r = firstResponse(raw);
      resolve({ ...(r ? { status: r.status } : {}), body: r?.body ?? '', gaveUp });
      if (job.kind === 'half-open' && !sock.destroyed) {
        halfOpen.push(sock);
        while (halfOpen.length > MAX_HALF_OPEN) halfOpen.shift()?.destroy();
      } else sock.destroy();
    };
    const timer = setTimeout(() => finish(true), EXCHANGE_BUDGET_MS);
    sock.on('data', (d: Buffer) => {
      raw = Buffer.concat([raw, d]);
      if (firstResponse(raw)?.complete) finish(false);
    });
    sock.on('close', () => finish(false));
    sock.once(plain ? 'connect' : 'secureConnect', () => {
      void (async () => {
        for (const c of job.chunks) {
          if (sock.destroyed) return;
          sock.write(c);
          if (job.chunks.length > 1) await new Promise((r) => setImmediate(r));
        }
        if (job.kind === 'reset') tcp.resetAndDestroy();
        if (job.kind === 'half-open') finish(false); // keep it open, unanswered, until the end
      })();
    });
  });
}

// ---------------------------------------------------------------------------------------
// the data dir, outside the folders that change legitimately

const CHANGING = new Set(['server/db/snapshots', 'server/db/.metadata', 'server/db/etcd']);

function fingerprint(dataDir: string): string {
  const lines: string[] = [];
  const walk = (rel: string): void => {
    const abs = path.join(dataDir, rel);
    for (const name of readdirSync(abs).sort()) {
      const r = rel === '' ? name : `${rel}/${name}`;
      if (CHANGING.has(r)) continue;
      const st = statSync(path.join(dataDir, r));
      if (st.isDirectory()) {
        lines.push(`${r}/ ${(st.mode & 0o7777).toString(8)}`);
        walk(r);
      } else {
        lines.push(
          `${r} ${(st.mode & 0o7777).toString(8)} ${createHash('sha256')
            .update(readFileSync(path.join(dataDir, r)))
            .digest('hex')}`,
        );
      }
    }
  };
  walk('');
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------

test(`fuzz: ${FUZZ_COUNT} random and malformed exchanges leave the server, its etcd and its data dir intact`, async (t) => {
  const seed = Number(process.env.ETCDSNAP_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 32));
  t.diagnostic(`fuzz seed ${seed} (replay with ETCDSNAP_FUZZ_SEED=${seed})`);
  process.stdout.write(`api-fuzz seed ${seed} (replay with ETCDSNAP_FUZZ_SEED=${seed})\n`);
  const s: ServerProcess = await startReady();
  const secret = s.token().split('::server:')[1] ?? '';
  const etcdPid = s.etcdPid();
  const before = fingerprint(s.dataDir);
  const rng = new Rng(seed);
  // jobs are drawn up front, so the sequence depends on the seed only
  const jobs = Array.from({ length: FUZZ_COUNT }, () => ({ job: makeJob(rng, secret), from: `127.0.${1 + rng.int(2)}.${1 + rng.int(250)}` }));
  const problems: string[] = [];
  const statuses = new Map<string, number>();
  let next = 0;
  let ran = 0;
  let gaveUp = 0;
  const deadline = Date.now() + FUZZ_DEADLINE_MS;
  await Promise.all(
    Array.from({ length: WORKERS }, async () => {
      while (next < jobs.length && Date.now() < deadline) {
        const i = next++;
        const item = jobs[i];
        if (!item) break;
        const out = await run(s.ports.supervisor, item.job, item.from);
        ran++;
        if (out.gaveUp) gaveUp++;
        const key = `${item.job.kind}:${out.status ?? '-'}`;
        statuses.set(key, (statuses.get(key) ?? 0) + 1);
        const what = `#${i} ${item.job.summary} (auth ${item.job.auth})`;
        if (out.status !== undefined && out.status >= 500 && out.status !== 503) problems.push(`${what}: ${out.status} ${out.body.slice(0, 200)}`);
        if (
          item.job.auth !== 'valid' &&
          out.status !== undefined &&
          out.status < 300 &&
          out.body !== 'ok' &&
          !out.body.startsWith('-----BEGIN CERTIFICATE-----') &&
          !(out.body !== '' && [...DASHBOARD_ASSETS].some((a) => a.startsWith(out.body))) // (all of it, or as much as came)
        ) {
          problems.push(`${what}: an unauthenticated request got ${out.status} ${out.body.slice(0, 200)}`);
        }
        if (!alive(s.pid)) problems.push(`${what}: the server died`);
        if (problems.length > 0) return;
      }
    }),
  );
  for (const h of halfOpen.splice(0)) h.destroy();
  t.diagnostic(
    `ran ${ran} exchanges (${gaveUp} not answered within ${EXCHANGE_BUDGET_MS} ms by design or throttle); outcomes ${JSON.stringify(Object.fromEntries([...statuses].sort()))}`,
  );
  assert.deepEqual(problems, [], `seed ${seed}`);
  assert.ok(ran >= Math.min(FUZZ_COUNT, 1000), `seed ${seed}: only ${ran} exchanges ran before the deadline`);

  assert.ok(alive(s.pid), `seed ${seed}: server alive`);
  assert.equal(s.etcdPid(), etcdPid, `seed ${seed}: same etcd process`);
  assert.ok(alive(etcdPid), `seed ${seed}: etcd alive`);
  assert.equal(fingerprint(s.dataDir), before, `seed ${seed}: nothing changed in the data dir outside snapshots, their records and etcd's member dir`);
  const bugs = s.lines.filter((l) => /this is a bug|failed unexpectedly/.test(String(l.msg)));
  assert.deepEqual(bugs, [], `seed ${seed}: no bug logged`);
  assert.equal((await apiRequest(`${s.url}/healthz`)).status, 200);
  const save = await snapshotCliAsync(s, ['save']);
  assert.equal(save.code, 0, `seed ${seed}: ${save.stderr}`);
  assert.equal(await s.stop(), 0);
});
