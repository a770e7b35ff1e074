/**
 * Conformance tests of src/store/s3.ts against a real S3 implementation: Debian's OpenStack
 * Swift with the s3api middleware, started on loopback by test/helpers/swift.ts (SigV4 is
 * checked, multipart/abort/paging are real). No skips: without Swift these tests fail; run
 * `sudo bash scripts/install.sh --test` first.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { EtcdsnapError } from '../src/errors.js';
import { S3Store, type S3Settings } from '../src/store/s3.js';
import { startSwift, type Swift } from './helpers/swift.js';

const MiB = 1024 * 1024;
const T = { timeout: 90_000 };

/** A non-seekable stream of `total` random bytes in 256 KiB chunks; sha256 of what it produced. */
function randomStream(
  total: number,
  opts: { failAt?: number; error?: Error; onProgress?: (produced: number) => void } = {},
): {
  stream: Readable;
  sha256: () => string;
} {
  const hash = createHash('sha256');
  let produced = 0;
  const stream = new Readable({
    highWaterMark: 256 * 1024,
    read() {
      if (opts.failAt !== undefined && produced >= opts.failAt) {
        this.destroy(opts.error ?? new Error('etcd snapshot stream broke'));
        return;
      }
      if (produced >= total) {
        this.push(null);
        return;
      }
      const chunk = randomBytes(Math.min(256 * 1024, total - produced));
      hash.update(chunk);
      produced += chunk.length;
      opts.onProgress?.(produced);
      // Asynchronous like a network stream.
      setImmediate(() => this.push(chunk));
    },
  });
  return { stream, sha256: () => hash.digest('hex') };
}

async function sha256Of(stream: Readable): Promise<{ sha256: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  for await (const chunk of stream) {
    h.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { sha256: h.digest('hex'), size };
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

async function rejectsWith(p: Promise<unknown>, check: (e: EtcdsnapError) => void): Promise<EtcdsnapError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof EtcdsnapError, `expected EtcdsnapError, got ${String(err)}`);
    check(err);
    return err;
  }
  assert.fail('expected a rejection');
}

function baseSettings(swift: Swift, overrides: Partial<S3Settings> = {}): S3Settings {
  return {
    endpoint: swift.endpoint,
    skipSslVerify: false,
    accessKey: swift.accessKey,
    secretKey: swift.secretKey,
    bucket: 'snaps',
    region: swift.region,
    folder: '',
    insecure: true,
    timeoutMs: 20_000,
    bucketLookup: 'auto',
    proxy: 'none',
    ...overrides,
  };
}

describe('S3Store against Swift (http)', () => {
  let swift: Swift;
  const stores: S3Store[] = [];
  const store = (overrides: Partial<S3Settings> = {}): S3Store => {
    const s = S3Store.create(baseSettings(swift, overrides));
    stores.push(s);
    return s;
  };

  before(async () => {
    swift = await startSwift();
    await swift.createBucket('snaps');
  });
  after(async () => {
    for (const s of stores) s.destroy();
    await swift?.stop();
  });

  test('bucket check passes', T, async () => {
    await store().checkBucket();
  });

  test('20 MiB streamed multipart upload round-trips with metadata', T, async () => {
    const s = store({ folder: 'roundtrip' });
    const src = randomStream(20 * MiB);
    const name = 'etcd-snapshot-node-1-1700000000';
    await s.upload(name, src.stream, {
      contentType: 'application/octet-stream',
      metadata: { 'k3s-node-name': 'node-1', 'etcdsnap-sha256': 'placeholder' },
      partSizeBytes: 5 * MiB,
    });
    const sent = src.sha256();
    const head = await s.head(s.key(name));
    assert.ok(head, 'object exists');
    assert.equal(head.size, 20 * MiB);
    assert.equal(head.metadata['k3s-node-name'], 'node-1');
    assert.equal(head.metadata['etcdsnap-sha256'], 'placeholder');
    const back = await sha256Of(await s.getStream(s.key(name)));
    assert.equal(back.size, 20 * MiB);
    assert.equal(back.sha256, sent);
    assert.deepEqual(await s.listMultipartUploads(), []);
  });

  test('default part size (16 MiB) and a single-part body', T, async () => {
    const s = store({ folder: 'parts' });
    const big = randomStream(17 * MiB);
    await s.upload('big', big.stream, { contentType: 'application/octet-stream', metadata: {} });
    assert.equal((await sha256Of(await s.getStream(s.key('big')))).sha256, big.sha256());
    const small = randomStream(100_000);
    await s.upload('small.zip', small.stream, { contentType: 'application/zip', metadata: { a: 'b' } });
    assert.equal((await s.head(s.key('small.zip')))?.size, 100_000);
    assert.equal((await sha256Of(await s.getStream(s.key('small.zip')))).sha256, small.sha256());
  });

  test('putText/getText, missing keys', T, async () => {
    const s = store({ folder: 'text' });
    const key = s.metadataKey('snap-1');
    await s.putText(key, '{"hello":"world"}', 'application/json');
    assert.equal(await s.getText(key), '{"hello":"world"}');
    assert.equal(await s.getText(s.metadataKey('missing')), undefined);
    assert.equal(await s.head(s.key('missing')), undefined);
    await rejectsWith(s.getStream(s.key('missing')), (e) => {
      assert.equal(e.kind, 'not-found');
      assert.match(e.message, /text\/missing/);
    });
  });

  test('folder prefixing: objects at folder/name, sidecars at folder/.metadata/name', T, async () => {
    const s = store({ folder: '/etcd//cluster-a/' });
    assert.equal(s.folder, 'etcd/cluster-a');
    assert.equal(s.key('snap-1'), 'etcd/cluster-a/snap-1');
    assert.equal(s.metadataKey('snap-1'), 'etcd/cluster-a/.metadata/snap-1');
    assert.equal(s.location('snap-1'), 's3://snaps/etcd/cluster-a/snap-1');
    assert.equal(s.describe(), `s3://snaps/etcd/cluster-a at ${swift.endpoint}`);
    assert.throws(
      () => s.key('../x'),
      (e: unknown) => e instanceof EtcdsnapError && e.kind === 'usage',
    );
    const src = randomStream(4096);
    await s.upload('snap-1', src.stream, { contentType: 'application/octet-stream', metadata: {} });
    await s.putText(s.metadataKey('snap-1'), 'sidecar', 'application/json');
    const root = store({ folder: '' });
    assert.equal(root.key('x'), 'x');
    assert.equal(root.metadataKey('x'), '.metadata/x');
    const all = (await collect(root.list('etcd/'))).map((o) => o.key).sort();
    assert.deepEqual(all, ['etcd/cluster-a/.metadata/snap-1', 'etcd/cluster-a/snap-1']);
    const inFolder = await collect(s.list());
    assert.deepEqual(inFolder.map((o) => o.name).sort(), ['.metadata/snap-1', 'snap-1']);
    const obj = inFolder.find((o) => o.name === 'snap-1');
    assert.equal(obj?.size, 4096);
    assert.ok(obj && obj.lastModified.getTime() > Date.now() - 600_000);
  });

  test('list pages through continuation tokens (page size 2 over 5 objects)', T, async () => {
    const s = store({ folder: 'paging' });
    const names = ['a-1', 'a-2', 'a-3', 'a-4', 'a-5'];
    await Promise.all(names.map((n) => s.putText(s.key(n), n, 'text/plain')));
    await s.putText(store({ folder: 'pagingx' }).key('other'), 'x', 'text/plain'); // a sibling folder is not listed
    const listed = await collect(s.list('', { pageSize: 2 }));
    assert.deepEqual(
      listed.map((o) => o.name),
      names,
    );
    assert.deepEqual(
      listed.map((o) => o.key),
      names.map((n) => `paging/${n}`),
    );
    assert.deepEqual((await collect(s.list('a-', { pageSize: 1000 }))).length, 5);
  });

  test('deleteMany deletes several keys (Content-MD5 on Swift), in batches', T, async () => {
    const s = store({ folder: 'delete' });
    const keys = ['d-1', 'd-2', 'd-3'].map((n) => s.key(n));
    await Promise.all(keys.map((k) => s.putText(k, k, 'text/plain')));
    await s.putText(s.metadataKey('d-1'), 'meta', 'application/json');
    const r = await s.deleteMany([...keys, s.metadataKey('d-1')]);
    assert.deepEqual(r.errors, []);
    assert.deepEqual(r.deleted.sort(), [...keys, s.metadataKey('d-1')].sort());
    assert.deepEqual(await collect(s.list()), []);
    // Batches (1000 by default; 2 here): 5 keys in 3 requests; missing keys count as deleted, as on S3.
    await s.putText(s.key('last'), 'x', 'text/plain');
    const many = Array.from({ length: 4 }, (_, i) => s.key(`missing-${i}`)).concat(s.key('last'));
    const r2 = await s.deleteMany(many, { batchSize: 2 });
    assert.deepEqual(r2.errors, []);
    assert.deepEqual(r2.deleted.sort(), many.sort());
    assert.equal(await s.head(s.key('last')), undefined);
    assert.deepEqual(await s.deleteMany([]), { deleted: [], errors: [] });
  });

  test('a body that errors midway: rejects, no object, no multipart upload left', T, async () => {
    const s = store({ folder: 'body-error' });
    const src = randomStream(30 * MiB, { failAt: 12 * MiB });
    await rejectsWith(s.upload('broken', src.stream, { contentType: 'application/octet-stream', metadata: {}, partSizeBytes: 5 * MiB }), (e) => {
      assert.equal(e.kind, 'unavailable');
      assert.equal(e.retryable, false);
      assert.match(e.message, /etcd snapshot stream broke/);
      assert.match(e.message, /s3:\/\/snaps\/body-error\/broken/);
    });
    assert.equal(await s.head(s.key('broken')), undefined);
    assert.deepEqual(await s.listMultipartUploads(), []);

    // An integrity failure of the stream keeps its kind; a short body never creates an object.
    const bad = randomStream(10 * MiB, { failAt: 1 * MiB, error: new EtcdsnapError('integrity', 'sha256 mismatch') });
    await rejectsWith(s.upload('bad', bad.stream, { contentType: 'application/octet-stream', metadata: {}, partSizeBytes: 5 * MiB }), (e) => {
      assert.equal(e.kind, 'integrity');
      assert.match(e.message, /sha256 mismatch/);
    });
    assert.equal(await s.head(s.key('bad')), undefined);
    // Destroyed without an error before its end: also no object.
    const cut = randomStream(30 * MiB, { onProgress: (n) => n >= 7 * MiB && setImmediate(() => cut.stream.destroy()) });
    await rejectsWith(s.upload('cut', cut.stream, { contentType: 'application/octet-stream', metadata: {}, partSizeBytes: 5 * MiB }), (e) => {
      assert.match(e.message, /closed before its end|destroyed|premature/i);
    });
    assert.equal(await s.head(s.key('cut')), undefined);
    assert.deepEqual(await s.listMultipartUploads(), []);
    assert.deepEqual(await collect(s.list()), []);
  });

  test('an upload aborted by its signal: rejects, no object, no multipart upload left', T, async () => {
    const s = store({ folder: 'abort' });
    const ac = new AbortController();
    const src = randomStream(40 * MiB, { onProgress: (n) => n >= 12 * MiB && ac.abort(new Error('shutting down')) });
    await rejectsWith(
      s.upload('aborted', src.stream, { contentType: 'application/octet-stream', metadata: {}, signal: ac.signal, partSizeBytes: 5 * MiB }),
      (e) => {
        assert.equal(e.retryable, false);
        assert.match(e.message, /aborted: shutting down/);
      },
    );
    assert.equal(await s.head(s.key('aborted')), undefined);
    assert.deepEqual(await s.listMultipartUploads(), []);
    // Already aborted before the start.
    const ac2 = new AbortController();
    ac2.abort(new Error('too late'));
    await rejectsWith(s.upload('aborted2', randomStream(MiB).stream, { contentType: 'x', metadata: {}, signal: ac2.signal }), (e) =>
      assert.match(e.message, /too late/),
    );
    assert.equal(await s.head(s.key('aborted2')), undefined);
  });

  test('S3 going away mid-upload: unavailable error; a retry after it returns succeeds', T, async () => {
    const s = store({ folder: 'outage', timeoutMs: 10_000 });
    let stopping: Promise<void> | undefined;
    const src = randomStream(30 * MiB, {
      onProgress: (n) => {
        if (n >= 17 * MiB) stopping ??= swift.stopProxy();
      },
    });
    const err = await rejectsWith(s.upload('snap', src.stream, { contentType: 'application/octet-stream', metadata: {}, partSizeBytes: 5 * MiB }), (e) => {
      assert.equal(e.kind, 'unavailable');
      assert.equal(e.retryable, true);
      assert.match(e.message, new RegExp(swift.endpoint.replace(/\./g, '\\.')));
    });
    await stopping;
    await swift.startProxy();
    // The abort could not reach S3, so the message says parts may remain; they can be cleaned up.
    const left = await s.listMultipartUploads();
    if (left.length > 0) assert.match(err.message, /aborting the multipart upload failed too/);
    for (const u of left) await s.abortMultipartUpload(u.key, u.uploadId);
    assert.deepEqual(await s.listMultipartUploads(), []);
    await s.abortMultipartUpload(s.key('snap'), 'no-such-upload-id'); // idempotent
    assert.equal(await s.head(s.key('snap')), undefined);
    const retry = randomStream(12 * MiB);
    await s.upload('snap', retry.stream, { contentType: 'application/octet-stream', metadata: {}, partSizeBytes: 5 * MiB });
    assert.equal((await sha256Of(await s.getStream(s.key('snap')))).sha256, retry.sha256());
  });

  test('wrong secret: auth error without the secret or the access key in the message', T, async () => {
    const secret = 'not-the-right-secret-9f3a';
    const s = store({ secretKey: secret, sessionToken: undefined });
    const calls: Array<() => Promise<unknown>> = [
      () => s.checkBucket(),
      () => s.putText('x', 'y', 'text/plain'),
      () => s.getText('x'),
      () => collect(s.list()),
    ];
    for (const call of calls) {
      await rejectsWith(call(), (e) => {
        assert.equal(e.kind, 'auth', e.message);
        assert.ok(!e.message.includes(secret), e.message);
        assert.ok(!e.message.includes(swift.accessKey), e.message);
        assert.ok(!JSON.stringify(e.cause ?? {}).includes(secret));
      });
    }
    const up = randomStream(6 * MiB);
    await rejectsWith(s.upload('x', up.stream, { contentType: 'x', metadata: {}, partSizeBytes: 5 * MiB }), (e) => {
      assert.equal(e.kind, 'auth');
      assert.ok(!e.message.includes(secret) && !e.message.includes(swift.accessKey), e.message);
    });
  });

  test('missing bucket: checkBucket names the bucket and the endpoint', T, async () => {
    const s = store({ bucket: 'no-such-bucket-here' });
    await rejectsWith(s.checkBucket(), (e) => {
      assert.equal(e.kind, 'not-found');
      assert.match(e.message, /no-such-bucket-here/);
      assert.ok(e.message.includes(swift.endpoint), e.message);
      assert.match(e.message, /404/);
    });
  });

  test('unreachable endpoint: unavailable, retryable', T, async () => {
    const s = store({ endpoint: '127.0.0.1:1', timeoutMs: 5_000 });
    await rejectsWith(s.checkBucket(), (e) => {
      assert.equal(e.kind, 'unavailable');
      assert.equal(e.retryable, true);
      assert.match(e.message, /ECONNREFUSED/);
    });
  });

  test('invalid settings are config errors', () => {
    const bad = (o: Partial<S3Settings>, re: RegExp): void =>
      assert.throws(
        () => S3Store.create(baseSettings(swift, o)),
        (e: unknown) => e instanceof EtcdsnapError && e.kind === 'config' && re.test(e.message),
      );
    bad({ endpoint: 'http://127.0.0.1:9000' }, /--etcd-s3-endpoint must be host\[:port\] without a scheme; use --etcd-s3-insecure for http/);
    bad({ endpoint: 'https://s3.example.com' }, /without a scheme/);
    bad({ endpoint: 'host:9000/path' }, /host\[:port\] only/);
    bad({ bucket: '' }, /^s3 bucket name was not set$/);
    bad({ proxy: 'not a url' }, /proxy URL must include scheme and host/);
    bad({ proxy: 'socks5://127.0.0.1:1080' }, /not supported/);
    bad({ insecure: false, endpointCA: '/nonexistent/ca.pem' }, /no certificates loaded from etcd-s3-endpoint-ca/);
    bad({ insecure: false, endpointCA: Buffer.from('not a pem').toString('base64') }, /no certificates loaded from etcd-s3-endpoint-ca/);
    bad({ secretKey: undefined }, /must be given together/);
    bad({ folder: '../up' }, /must not start with '\.\.'/);
  });
});

describe('S3Store against Swift (https, custom CA, proxy)', () => {
  let swift: Swift;
  let dir: string;
  let caFile: string;
  let caPem: string;
  let port: string;
  const stores: S3Store[] = [];
  const store = (overrides: Partial<S3Settings>): S3Store => {
    const s = S3Store.create(baseSettings(swift, { insecure: false, endpoint: `localhost:${port}`, ...overrides }));
    stores.push(s);
    return s;
  };

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'etcdsnap-s3tls-'));
    const key = path.join(dir, 'key.pem');
    caFile = path.join(dir, 'cert.pem');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        key,
        '-out',
        caFile,
        '-days',
        '2',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=DNS:localhost,IP:127.0.0.1',
      ],
      { stdio: 'ignore' },
    );
    caPem = readFileSync(caFile, 'utf8');
    swift = await startSwift({ tls: { certPem: caPem, keyPem: readFileSync(key, 'utf8') } });
    port = swift.endpoint.split(':')[1] ?? '';
    await swift.createBucket('snaps');
  });
  after(async () => {
    for (const s of stores) s.destroy();
    await swift?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('untrusted self-signed certificate: config error with a hint', T, async () => {
    await rejectsWith(store({}).checkBucket(), (e) => {
      assert.equal(e.kind, 'config');
      assert.match(e.message, /etcd-s3-endpoint-ca|skip-ssl-verify/);
    });
  });

  test('endpoint CA as a file path, as base64, and as a list; IP endpoint with IP SAN', T, async () => {
    const b64 = Buffer.from(caPem).toString('base64');
    for (const endpointCA of [caFile, b64, `/nonexistent.pem ${b64}`]) {
      const s = store({ endpointCA, folder: 'tls' });
      await s.checkBucket();
      await s.putText(s.key('t'), endpointCA.slice(0, 20), 'text/plain');
      assert.equal(await s.getText(s.key('t')), endpointCA.slice(0, 20));
    }
    const ip = store({ endpoint: swift.endpoint, endpointCA: caFile });
    await ip.checkBucket();
    const up = randomStream(6 * MiB);
    await ip.upload('tls-multipart', up.stream, { contentType: 'x', metadata: {}, partSizeBytes: 5 * MiB });
    assert.equal((await sha256Of(await ip.getStream(ip.key('tls-multipart')))).sha256, up.sha256());
    const del = await ip.deleteMany([ip.key('tls-multipart')]);
    assert.deepEqual(del.errors, []);
  });

  test('skipSslVerify accepts the self-signed certificate (CA ignored)', T, async () => {
    const s = store({ skipSslVerify: true, endpointCA: '/nonexistent.pem' });
    await s.checkBucket();
  });

  test('through an HTTP CONNECT proxy, with the CA applied to the target connection', T, async () => {
    const targets: string[] = [];
    const sockets = new Set<net.Socket>();
    const proxy = http.createServer((_req, res) => res.writeHead(405).end());
    proxy.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
      targets.push(req.url ?? '');
      sockets.add(client);
      const [host, p] = (req.url ?? '').split(':');
      const upstream = net.connect(Number(p), host ?? 'localhost', () => {
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        upstream.write(head);
        upstream.pipe(client);
        client.pipe(upstream);
      });
      sockets.add(upstream);
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const addr = proxy.address() as net.AddressInfo;
    try {
      const s = store({ endpointCA: caFile, proxy: `http://127.0.0.1:${addr.port}`, folder: 'proxied' });
      await s.checkBucket();
      await s.putText(s.key('p'), 'via proxy', 'text/plain');
      assert.equal(await s.getText(s.key('p')), 'via proxy');
      assert.deepEqual((await s.deleteMany([s.key('p')])).errors, []);
      assert.ok(targets.length > 0 && targets.every((t) => t === `localhost:${port}`), targets.join(','));
      // Without the CA the target TLS is rejected even through the proxy.
      await rejectsWith(store({ proxy: `http://127.0.0.1:${addr.port}` }).checkBucket(), (e) => assert.equal(e.kind, 'config'));
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
    }
  });
});
