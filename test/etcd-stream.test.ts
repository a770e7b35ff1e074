/**
 * The Snapshot call over node:http2 (src/etcd/snapshot-stream.ts) against a real etcd
 * (through a real etcdsnap server's member). The decoder of gRPC frames and
 * SnapshotResponse messages on crafted bytes: snapshot-decoder.test.ts.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { EtcdSnapshotStream } from '../src/etcd/snapshot-stream.js';
import { TrailerVerifier } from '../src/snapshot/verify.js';
import { EtcdsnapError } from '../src/errors.js';
import { tlsPaths } from '../src/etcd/tls.js';
import { startReady, killStarted, fillEtcd, type ServerProcess } from './helpers/server.js';

after(() => killStarted());

let server: ServerProcess;
const material = (s: ServerProcess): { endpoint: string; ca: Buffer; cert: Buffer; key: Buffer; servername: string } => {
  const p = tlsPaths(s.dataDir);
  return {
    endpoint: `https://127.0.0.1:${s.ports.client}`,
    ca: readFileSync(p.etcdCa),
    cert: readFileSync(p.clientCert),
    key: readFileSync(p.clientKey),
    servername: 'localhost',
  };
};

test('against etcd: the stream is a whole snapshot (its sha256 trailer checks out)', async () => {
  server = await startReady({ args: ['--etcd-disable-snapshots'] });
  await fillEtcd(server, 200, 16 * 1024);
  const v = new TrailerVerifier();
  let bytes = 0;
  await pipeline(
    await EtcdSnapshotStream.open(material(server)),
    v,
    new Writable({
      write(chunk: Buffer, _e, cb): void {
        bytes += chunk.length;
        cb();
      },
    }),
  );
  assert.ok(v.dbSha256, 'trailer verified');
  assert.equal(bytes, v.size);
  assert.ok(bytes > 200 * 16 * 1024, `size ${bytes}`);
});

test('against etcd: cancel() fails the stream; a wrong CA or client key fails the open', async () => {
  const s = await EtcdSnapshotStream.open(material(server));
  let seen = 0;
  const done = pipeline(
    s,
    new Writable({
      write(chunk: Buffer, _e, cb): void {
        seen += chunk.length;
        if (seen > 100_000) s.cancel();
        setImmediate(cb);
      },
    }),
  );
  await assert.rejects(done, (e: unknown) => e instanceof EtcdsnapError && e.kind === 'unavailable' && /cancelled/.test(e.message));

  const other = await startReady({ args: ['--etcd-disable-snapshots'] });
  const foreign = material(other);
  await assert.rejects(
    EtcdSnapshotStream.open({ ...material(server), ca: foreign.ca }),
    (e: unknown) => e instanceof EtcdsnapError && e.kind === 'unavailable' && /cannot connect to etcd/.test(e.message),
  );
  // another cluster's client certificate: refused during the handshake or at the first read
  await assert.rejects(
    (async (): Promise<void> => {
      const st = await EtcdSnapshotStream.open({ ...material(server), cert: foreign.cert, key: foreign.key });
      await pipeline(st, new Writable({ write: (_c, _e, cb): void => cb() }));
    })(),
    (e: unknown) => e instanceof EtcdsnapError && e.kind === 'unavailable',
  );
});

/** Runs `fn` with the server's etcd stopped (SIGSTOP), then lets it go on. */
async function whileStopped<T>(s: ServerProcess, fn: () => Promise<T>): Promise<T> {
  const pid = s.etcdPid();
  assert.ok(pid, 'etcd pid');
  process.kill(pid, 'SIGSTOP');
  try {
    return await fn();
  } finally {
    process.kill(pid, 'SIGCONT');
  }
}

const sink = (onChunk: (n: number) => Promise<void> | void = () => {}): Writable =>
  new Writable({
    write(chunk: Buffer, _e, cb): void {
      Promise.resolve(onChunk(chunk.length)).then(() => cb(), cb);
    },
  });

test('against etcd: a hung member fails the stream as unavailable, at connect or mid-stream, instead of holding it forever', { timeout: 60_000 }, async () => {
  // more than the HTTP/2 window (8 MiB) and the socket buffers hold, so a stopped etcd stalls it
  await fillEtcd(server, 2400, 16 * 1024, 'big/');
  await whileStopped(server, async () => {
    // the message names the timeout that fired: the given 1 s, not the default 10 s
    await assert.rejects(
      EtcdSnapshotStream.open({ ...material(server), connectTimeoutMs: 1000 }),
      (e: unknown) => e instanceof EtcdsnapError && e.kind === 'unavailable' && /cannot connect to etcd at .*no answer within 1 s/.test(e.message),
    );
  });

  const s = await EtcdSnapshotStream.open({ ...material(server), idleTimeoutMs: 1500 });
  let seen = 0;
  await whileStopped(server, () =>
    assert.rejects(
      pipeline(
        s,
        sink((n) => {
          seen += n;
        }),
      ),
      (e: unknown) => e instanceof EtcdsnapError && e.kind === 'unavailable' && /etcd sent no snapshot data for 1\.5 s: the member is hung/.test(e.message),
    ),
  );
  assert.ok(seen < 40 * 1024 * 1024, `stalled before the end (${seen} bytes)`);
});

test('against etcd: a consumer that holds the stream back longer than the idle timeout does not fail it', async () => {
  const v = new TrailerVerifier();
  let paused = false;
  await pipeline(
    await EtcdSnapshotStream.open({ ...material(server), idleTimeoutMs: 500 }),
    v,
    sink(async () => {
      if (!paused) {
        paused = true; // once, after the first chunk: 4 idle timeouts without reading
        await new Promise((r) => setTimeout(r, 2000));
      }
    }),
  );
  assert.ok(v.dbSha256, 'the whole snapshot arrived and its trailer checks out');
});
