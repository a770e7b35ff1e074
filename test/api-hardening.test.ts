/**
 * Hardening of the supervisor API (src/server/api.ts): one test per finding, each replaying
 * the attack against a real server (or a real SupervisorApi on loopback for the parts that
 * need small timeouts or a small connection cap), plus unit tests of the pure policies
 * (request targets, login throttle, connection cap).
 *
 * Attack traffic comes from its own loopback addresses (127.0.0.x; Linux routes all of
 * 127/8 to lo), so that the per-source login throttle of one test does not slow another.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { startReady, killStarted, alive, apiRequest, snapshotCliAsync, tempDir, type ServerProcess } from './helpers/server.js';
import { parseRequestTarget } from '../src/server/request-target.js';
import { LoginThrottle, sourceKey } from '../src/server/login-throttle.js';
import { maxConnectionsFor, softFdLimit } from '../src/server/connection-guard.js';
import { SupervisorApi, type SupervisorApiOptions } from '../src/server/api.js';
import { createCa, issueLeaf } from '../src/etcd/pki.js';
import { createLogger, registerSecret } from '../src/log/logger.js';
import { EtcdsnapError } from '../src/errors.js';

// ---------------------------------------------------------------------------------------
// raw HTTP/1.1 over TLS (or plain TCP), so that malformed requests reach the server as sent

interface Exchange {
  /** Status of the first response, if one came. */
  status: number | undefined;
  headers: Record<string, string>;
  /** True when the server closed (or reset) the connection. */
  closed: boolean;
  raw: string;
}

interface ExchangeOptions {
  localAddress?: string;
  /** Resolve once the first response is complete, without waiting for the server to close. */
  responseOnly?: boolean;
  /** A bound, so that a server that never answers fails the test instead of hanging it. */
  timeoutMs?: number;
}

function parseResponse(raw: string): { status: number; headers: Record<string, string>; complete: boolean } | undefined {
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const [statusLine = '', ...lines] = raw.slice(0, end).split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
  if (!m) return undefined;
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  const len = Number(headers['content-length'] ?? 0);
  return { status: Number(m[1]), headers, complete: Buffer.byteLength(raw.slice(end + 4)) >= len };
}

/** A TLS connection to the server on loopback, from `localAddress` when given (server cert not checked). */
function tlsTo(port: number, localAddress?: string): tls.TLSSocket {
  const tcp = net.connect({ host: '127.0.0.1', port, ...(localAddress ? { localAddress } : {}) });
  tcp.on('error', () => undefined); // reported by the TLS socket too
  return tls.connect({ socket: tcp, rejectUnauthorized: false });
}

/** Connects over TLS, writes `data` and collects what comes back until the server closes. */
function exchange(port: number, data: string, o: ExchangeOptions = {}): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    const sock = tlsTo(port, o.localAddress);
    let raw = '';
    let settled = false;
    const timer = setTimeout(() => {
      settled = true;
      sock.destroy();
      reject(
        new Error(
          `no ${o.responseOnly ? 'response' : 'close'} from the server within ${o.timeoutMs ?? 20_000} ms for ${JSON.stringify(data.slice(0, 80))}; got ${JSON.stringify(raw.slice(0, 200))}`,
        ),
      );
    }, o.timeoutMs ?? 20_000);
    const done = (closed: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const r = parseResponse(raw);
      resolve({ status: r?.status, headers: r?.headers ?? {}, closed, raw });
      if (!closed) sock.destroy();
    };
    sock.once('secureConnect', () => sock.write(data));
    sock.on('data', (d: Buffer) => {
      raw += d.toString('latin1');
      if (o.responseOnly && parseResponse(raw)?.complete) done(false);
    });
    sock.on('error', () => done(true));
    sock.on('close', () => done(true));
  });
}

const deferred = <T = void>(): { promise: Promise<T>; resolve: (v: T) => void } => {
  let resolve: (v: T) => void = () => undefined;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
};

const secretOf = (s: ServerProcess): string => s.token().split('::server:')[1] ?? '';
const bearer = (secret: string): string => `Authorization: Bearer ${secret}\r\n`;

// ---------------------------------------------------------------------------------------
// one real server for the findings that do not need a low fd limit. It is started with a
// preload that injects one bug on SIGUSR2 (an unhandled rejection and an uncaught
// exception): no request can produce one any more, so the last-resort handler is tested
// with an injected fault.

let s: ServerProcess;
before(async () => {
  const inject = path.join(tempDir(), 'inject-bug.mjs');
  writeFileSync(
    inject,
    [
      "process.on('SIGUSR2', () => {",
      "  Promise.reject(new Error('injected rejection for the test'));",
      "  setImmediate(() => { throw new Error('injected exception for the test'); });",
      '});',
    ].join('\n'),
  );
  s = await startReady({ args: ['--etcd-disable-snapshots'], env: { NODE_OPTIONS: `--import=${inject}` } });
});
after(() => killStarted());

async function healthy(server: ServerProcess): Promise<void> {
  assert.ok(alive(server.pid), 'the server process is alive');
  assert.ok(alive(server.etcdPid()), 'its etcd is alive');
  assert.equal((await apiRequest(`${server.url}/healthz`)).status, 200);
}

test('finding 1: the request targets that crashed the server are answered 400; server and etcd stay up', async () => {
  const etcdPid = s.etcdPid();
  for (const target of ['//a:99999', 'http://[::1', '//x:65536/']) {
    const r = await exchange(s.ports.supervisor, `GET ${target} HTTP/1.1\r\nHost: x\r\n\r\n`, { localAddress: '127.0.0.11' });
    assert.equal(r.status, 400, `${target}: ${r.raw}`);
    assert.ok(r.closed, `${target}: connection closed after the 400`);
    assert.ok(alive(s.pid), `server alive after ${target}`);
  }
  // the same targets with the token: still 400, before any routing
  for (const target of ['//a:99999', '//x:65536/', '/\\evil.example:1/']) {
    const r = await exchange(s.ports.supervisor, `GET ${target} HTTP/1.1\r\nHost: x\r\n${bearer(secretOf(s))}\r\n`, { localAddress: '127.0.0.11' });
    assert.equal(r.status, 400, `${target} with the token: ${r.raw}`);
  }
  assert.equal(s.etcdPid(), etcdPid, 'etcd was not restarted');
  await healthy(s);
});

test('last resort: an unhandled rejection and an uncaught exception are logged as bugs with their stacks; server and etcd keep running', async () => {
  const etcdPid = s.etcdPid();
  process.kill(s.pid, 'SIGUSR2');
  const rejection = await s.waitFor((l) => typeof l.msg === 'string' && l.msg.startsWith('unhandled promise rejection: this is a bug, please report it'));
  const exception = await s.waitFor((l) => typeof l.msg === 'string' && l.msg.startsWith('uncaught exception: this is a bug, please report it'));
  for (const [line, text] of [
    [rejection, 'injected rejection for the test'],
    [exception, 'injected exception for the test'],
  ] as const) {
    assert.equal(line.level, 'error');
    const err = line.err as { message?: string; stack?: string } | undefined;
    assert.equal(err?.message, text);
    assert.match(err?.stack ?? '', /inject-bug\.mjs/, 'the stack is logged');
  }
  assert.equal(s.etcdPid(), etcdPid);
  await healthy(s);
});

test('public routes take no body: 413 without reading it, and the connection is closed', async () => {
  for (const head of ['Content-Length: 1000000\r\n', 'Transfer-Encoding: chunked\r\n']) {
    for (const p of ['/healthz', '/cacerts']) {
      // the announced body never comes: the old code waited for it forever
      const r = await exchange(s.ports.supervisor, `GET ${p} HTTP/1.1\r\nHost: x\r\n${head}\r\n`, { localAddress: '127.0.0.12' });
      assert.equal(r.status, 413, `${p} ${head.trim()}: ${r.raw}`);
      assert.ok(r.closed);
    }
  }
  const ok = await exchange(s.ports.supervisor, 'GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n', {
    localAddress: '127.0.0.12',
    responseOnly: true,
  });
  assert.equal(ok.status, 200, 'an empty body is no body');
  await healthy(s);
});

test('finding 2, part 1: an unauthenticated request is answered 401 at once without its body, and its connection is closed', async () => {
  const r = await exchange(s.ports.supervisor, 'POST /db/snapshot HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n', {
    localAddress: '127.0.0.13',
  });
  assert.equal(r.status, 401, r.raw);
  assert.equal(r.headers.connection, 'close');
  assert.ok(r.closed, 'the server closed the connection (the old code kept it open, waiting for the body)');
});

test('finding 3: failed logins are slowed per source (Retry-After) and their WARN lines are bounded; the credential is never logged', async () => {
  const warnsBefore = s.lines.filter((l) => l.msg === 'unauthorized API request').length;
  const guess = 'guessed-secret-value-0123456789';
  const results = await Promise.all(
    Array.from({ length: 200 }, () =>
      exchange(s.ports.supervisor, `POST /db/snapshot HTTP/1.1\r\nHost: x\r\n${bearer(guess)}Content-Length: 2\r\n\r\n{}`, { localAddress: '127.0.0.14' }),
    ),
  );
  assert.deepEqual([...new Set(results.map((r) => r.status))], [401]);
  const retryAfter = results.map((r) => Number(r.headers['retry-after'] ?? 0));
  assert.equal(retryAfter.filter((n) => n === 0).length, 5, 'the first 5 failures are answered at once, the rest are held back');
  assert.equal(Math.max(...retryAfter), 4, 'the delay grows to its cap of 4 s');
  const warns = s.lines.filter((l) => l.msg === 'unauthorized API request').slice(warnsBefore);
  assert.ok(warns.length <= 6, `at most a handful of WARN lines for 200 failures, got ${warns.length}`);
  assert.ok(warns.every((l) => l.level === 'warn' && l.remote === '127.0.0.14'));
  assert.equal(Math.max(...warns.map((l) => Number(l.failures))), warns.length, 'the lines count the failures of the streak');
  assert.ok(!s.raw.join('\n').includes(guess), 'the guessed secret is not logged');
  // the throttle slows failures only: the right token from the same source is served at once
  const ok = await exchange(s.ports.supervisor, `GET /nothing HTTP/1.1\r\nHost: x\r\n${bearer(secretOf(s))}\r\n`, {
    localAddress: '127.0.0.14',
    responseOnly: true,
  });
  assert.equal(ok.status, 404);
  assert.equal(ok.headers['retry-after'], undefined);
  // and another source is not slowed by this one
  const other = await exchange(s.ports.supervisor, `GET /nothing HTTP/1.1\r\nHost: x\r\n${bearer(guess)}\r\n`, { localAddress: '127.0.0.15' });
  assert.equal(other.status, 401);
  assert.equal(other.headers['retry-after'], undefined);
});

// ---------------------------------------------------------------------------------------
// finding 2 with the reported fd limit

/** Opens `n` connections of one kind; resolves once each has sent its part or was closed by the server. */
function attack(port: number, n: number, kind: 'no-body' | 'partial-headers' | 'no-handshake', held: net.Socket[]): Promise<void> {
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const sock: net.Socket =
        kind === 'no-handshake'
          ? net.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.21' }, () => resolve())
          : tlsTo(port, '127.0.0.22').once('secureConnect', () => {
              sock.write(
                kind === 'no-body'
                  ? 'POST /db/snapshot HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n'
                  : 'POST /db/snapshot HTTP/1.1\r\nHost: x\r\nContent-Le',
                () => resolve(),
              );
            });
      sock.on('error', () => resolve());
      sock.on('close', () => resolve());
      held.push(sock);
    });
  return Promise.all(Array.from({ length: n }, one)).then(() => undefined);
}

test('finding 2, part 2: under ulimit -n 256, 750 stalled anonymous connections do not keep /healthz and an authenticated save from being answered', async () => {
  const low = await startReady({ fdLimit: 256 });
  const held: net.Socket[] = [];
  try {
    // the reported attack (a body announced and never sent), plus the two that a 401 at once
    // does not answer: headers never finished, and TLS never started
    await Promise.all([
      attack(low.ports.supervisor, 250, 'no-body', held),
      attack(low.ports.supervisor, 250, 'partial-headers', held),
      attack(low.ports.supervisor, 250, 'no-handshake', held),
    ]);
    const open = held.filter((x) => !x.destroyed).length;
    const health = await exchange(low.ports.supervisor, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n', { responseOnly: true });
    assert.equal(health.status, 200, health.raw);
    const save = await snapshotCliAsync(low, ['save']);
    assert.equal(save.code, 0, save.stderr);
    assert.match(save.stdout, /^Snapshot on-demand-node1-\d+ saved\.\n$/);
    assert.ok(open > 0, 'attack connections were still open when the server was asked');
    assert.ok(
      low.lines.some((l) => l.msg === 'supervisor API at its connection cap: closed idle or incomplete connections to make room' && l.maxConnections === 128),
    );
    assert.ok(!low.raw.join('\n').includes('EMFILE'), 'the server never ran out of file descriptors');
    await healthy(low);
  } finally {
    for (const x of held) x.destroy();
  }
  assert.equal(await low.stop(), 0);
});

// ---------------------------------------------------------------------------------------
// a real SupervisorApi on loopback, with small timeouts and a small cap

const SECRET = 'unit-test-secret-0123456789abcdef';
let certs: { certPem: string; keyPem: string } | undefined;
async function unitApi(o: Partial<SupervisorApiOptions>): Promise<{ api: SupervisorApi; port: number; logs: string[] }> {
  if (!certs) {
    const ca = await createCa('hardening-test-ca');
    certs = await issueLeaf(ca, { commonName: 'supervisor', usage: 'server', hosts: ['127.0.0.1'] });
  }
  const logs: string[] = [];
  const logger = createLogger({ format: 'json', debug: false, destination: { write: (l: string) => void logs.push(l) } });
  const api = new SupervisorApi({ host: '127.0.0.1', port: 0, certPem: certs.certPem, keyPem: certs.keyPem, secret: SECRET, logger, ...o });
  api.route({ method: 'GET', path: '/healthz', auth: 'public', handle: () => ({ status: 200, body: 'ok' }) });
  const port = await api.listen();
  return { api, port, logs };
}

test('requestTimeout cuts a request whose body never comes (408), but not a handler that runs longer than it', async () => {
  const { api, port } = await unitApi({ timeouts: { handshakeMs: 2_000, headersMs: 300, requestMs: 400, checkIntervalMs: 50 } });
  const started = deferred();
  const release = deferred();
  let aborted: boolean | undefined;
  api.route({
    method: 'POST',
    path: '/slow',
    handle: async (req) => {
      started.resolve();
      await release.promise;
      aborted = req.signal.aborted;
      return { status: 200, body: { done: true } };
    },
  });
  const slow = exchange(port, `POST /slow HTTP/1.1\r\nHost: x\r\n${bearer(SECRET)}Content-Length: 2\r\n\r\n{}`, { responseOnly: true, timeoutMs: 60_000 });
  await started.promise;
  // started after the slow request was received: once it is cut, the slow handler has been
  // running for longer than requestTimeout
  const stalled = await exchange(port, `POST /slow HTTP/1.1\r\nHost: x\r\n${bearer(SECRET)}Content-Length: 100\r\n\r\n{`);
  assert.equal(stalled.status, 408, stalled.raw);
  assert.ok(stalled.closed);
  release.resolve();
  const r = await slow;
  assert.equal(r.status, 200, r.raw);
  assert.equal(aborted, false, 'the slow handler was not aborted');
  await api.close();
});

test('error answers mask registered secrets, in a JSON error and in the last line of a stream', async () => {
  const leaked = `s3-secret-${process.pid}-Kp2`;
  registerSecret(leaked);
  const { api, port } = await unitApi({});
  api.route({
    method: 'GET',
    path: '/fails',
    handle: () => {
      throw new EtcdsnapError('usage', `bucket refused the key ${leaked}`);
    },
  });
  api.route({
    method: 'GET',
    path: '/stream',
    handle: () => ({
      status: 200,
      ndjson: (async function* () {
        yield { n: 1 };
        throw new EtcdsnapError('unavailable', `lost the connection with ${leaked}`);
      })(),
    }),
  });
  const plain = await exchange(port, `GET /fails HTTP/1.1\r\nHost: x\r\n${bearer(SECRET)}Connection: close\r\n\r\n`);
  assert.equal(plain.status, 400, plain.raw);
  assert.ok(!plain.raw.includes(leaked), plain.raw);
  assert.match(plain.raw, /"error":"bucket refused the key \*\*redacted\*\*"/);
  const streamed = await exchange(port, `GET /stream HTTP/1.1\r\nHost: x\r\n${bearer(SECRET)}Connection: close\r\n\r\n`);
  assert.equal(streamed.status, 200, streamed.raw);
  assert.ok(!streamed.raw.includes(leaked), streamed.raw);
  assert.match(streamed.raw, /"error":"lost the connection with \*\*redacted\*\*"/);
  await api.close();
});

test('connection cap: anonymous connections are evicted (the noisiest source first), an authenticated request in flight never', async () => {
  const { api, port, logs } = await unitApi({ maxConnections: 4 });
  assert.equal(api.maxConnections, 4);
  const started = deferred();
  const release = deferred();
  api.route({
    method: 'GET',
    path: '/slow',
    handle: async () => {
      started.resolve();
      await release.promise;
      return { status: 200, body: { done: true } };
    },
  });
  const slow = exchange(port, `GET /slow HTTP/1.1\r\nHost: x\r\n${bearer(SECRET)}\r\n`, { localAddress: '127.0.0.31', responseOnly: true });
  await started.promise;
  // 10 connections that never start TLS, at a cap of 4 with one busy: 7 of them are evicted
  let evicted = 0;
  const waiters: Array<() => void> = [];
  const untilEvicted = async (n: number): Promise<void> => {
    while (evicted < n) await new Promise<void>((resolve) => waiters.push(resolve));
  };
  const noisy: net.Socket[] = [];
  const connectNoisy = (): net.Socket => {
    const sock = net.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.32' });
    sock.on('error', () => undefined);
    sock.once('close', () => {
      evicted++;
      for (const w of waiters.splice(0)) w();
    });
    noisy.push(sock);
    return sock;
  };
  for (let i = 0; i < 10; i++) await new Promise((resolve) => connectNoisy().once('connect', resolve));
  await untilEvicted(7);
  // a quiet source joins (its TLS handshake done, so the server has admitted it), then the
  // noisy one again: the noisy source gives up a connection, the quiet one keeps its own
  const quiet = tlsTo(port, '127.0.0.33');
  await new Promise((resolve) => quiet.once('secureConnect', resolve));
  connectNoisy();
  await untilEvicted(9); // one for the quiet one's admission, one for the newcomer's
  assert.equal(noisy.filter((x) => !x.destroyed).length, 2);
  const answer = await new Promise<string>((resolve, reject) => {
    let raw = '';
    quiet.on('data', (d: Buffer) => {
      raw += d.toString();
      if (parseResponse(raw)?.complete) resolve(raw);
    });
    quiet.once('close', () => reject(new Error('the quiet source was evicted')));
    quiet.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
  });
  assert.equal(parseResponse(answer)?.status, 200);
  quiet.destroy();
  release.resolve();
  assert.equal((await slow).status, 200, 'the authenticated request in flight was served');
  assert.ok(
    logs.some((l) => l.includes('supervisor API at its connection cap')),
    'evictions are logged',
  );
  for (const x of noisy) x.destroy();
  await api.close();
});

// ---------------------------------------------------------------------------------------
// pure policies

test('request targets: only origin-form paths with a single leading slash are accepted', () => {
  assert.deepEqual(parseRequestTarget('/healthz')?.path, '/healthz');
  assert.equal(parseRequestTarget('/db/snapshot?x=1&y=2')?.query.get('y'), '2');
  assert.equal(parseRequestTarget('/a/../healthz')?.path, '/healthz');
  for (const bad of [
    '//a:99999',
    'http://[::1',
    '//x:65536/',
    '*',
    'http://h/x',
    'healthz',
    '',
    '/\\evil:1/',
    '/a b',
    '/a\u0000',
    `/${'a'.repeat(9000)}`,
    undefined,
  ]) {
    assert.equal(parseRequestTarget(bad), undefined, JSON.stringify(bad));
  }
});

test('login throttle: 5 free failures, then 0.25 s doubling to 4 s; logs bounded per source and overall; state bounded', () => {
  const t = new LoginThrottle();
  const d = Array.from({ length: 12 }, (_, i) => t.failure('a', i));
  assert.deepEqual(
    d.map((x) => x.delayMs),
    [0, 0, 0, 0, 0, 250, 500, 1000, 2000, 4000, 4000, 4000],
  );
  assert.deepEqual(
    d.map((x) => x.log),
    [true, true, true, true, true, false, false, false, false, false, false, false],
  );
  // a minute after the last line: one line carrying the failures not logged
  const later = t.failure('a', 4 + 60_000);
  assert.deepEqual({ log: later.log, unlogged: later.unlogged, failures: later.failures }, { log: true, unlogged: 7, failures: 13 });
  // a quiet minute starts the streak over; so does a success
  assert.equal(t.failure('a', 4 + 60_000 + 60_000).delayMs, 0);
  for (let i = 0; i < 8; i++) t.failure('b', i);
  t.success('b');
  assert.equal(t.failure('b', 10).delayMs, 0);
  // many sources: at most maxLinesPerInterval lines per minute in all, and a bounded map
  const many = new LoginThrottle({ maxSources: 100, maxLinesPerInterval: 20 });
  let lines = 0;
  for (let i = 0; i < 1000; i++) if (many.failure(`10.0.${i >> 8}.${i & 255}`, i).log) lines++;
  assert.equal(lines, 20);
  assert.equal(many.size, 100);
});

test('login throttle sources: IPv4 as is, IPv4-mapped as IPv4, IPv6 by /64', () => {
  assert.equal(sourceKey('10.1.2.3'), '10.1.2.3');
  assert.equal(sourceKey('::ffff:10.1.2.3'), '10.1.2.3');
  assert.equal(sourceKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
  assert.equal(sourceKey('2001:db8:1:2:bbbb:cccc:dddd:eeee'), '2001:db8:1:2::/64');
  assert.equal(sourceKey('2001:db8::1'), '2001:db8:0:0::/64');
  assert.equal(sourceKey('::1'), '0:0:0:0::/64');
  assert.equal(sourceKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
  assert.equal(sourceKey(undefined), 'unknown');
});

test('connection cap: half the soft open-files limit, between 32 and 1024', () => {
  assert.equal(
    softFdLimit(
      'Limit                     Soft Limit           Hard Limit           Units\nMax open files            256                  4096                 files\n',
    ),
    256,
  );
  assert.equal(softFdLimit('Max open files            unlimited            unlimited            files\n'), undefined);
  assert.equal(maxConnectionsFor(256), 128);
  assert.equal(maxConnectionsFor(1024), 512);
  assert.equal(maxConnectionsFor(1_048_576), 1024);
  assert.equal(maxConnectionsFor(20), 32);
  assert.equal(maxConnectionsFor(undefined), 1024);
  assert.ok(typeof softFdLimit() === 'number', 'this process has a soft limit');
});

// Kept last: the server must still be healthy after all the tests above.
test('after all of it, the shared server is healthy', async () => {
  await healthy(s);
  const save = await snapshotCliAsync(s, ['save']);
  assert.equal(save.code, 0, save.stderr);
});
