/**
 * How much a lost host loses with the change log in S3 (issue 16), real etcd and Swift: a
 * server with `--etcd-changelog --etcd-changelog-period 1s` and `--etcd-s3` while a client
 * keeps writing; right after a segment upload completes, the server and its etcd are
 * SIGKILLed (the writes go on failing) and the data dir is removed. `--cluster-reset
 * --cluster-reset-restore-to=latest` from S3 alone must bring back every write acknowledged
 * more than one period plus that upload's time (the object's `sealed-at` to the upload's
 * log line) before the kill, each with its value, and end at the newest revision in S3.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { parseSegmentName } from '../src/changelog/format.js';
import { CHANGELOG_PREFIX, segmentOfObject } from '../src/changelog/remote.js';
import { EtcdClient } from '../src/etcd/client.js';
import { tlsPaths } from '../src/etcd/tls.js';
import { S3ObjectStore } from '../src/store/s3/object-store.js';
import { alive, etcdctl, killStarted, startReady, waitUntil, type LogLine } from './helpers/server.js';
import { reset, RESET_MESSAGE } from './helpers/restore.js';
import { s3ServerFlags, startSwift, swiftSettings, type Swift } from './helpers/swift.js';

let swift: Swift | undefined;
after(async () => {
  killStarted();
  await swift?.stop();
});

const PERIOD_MS = 1000;
const uploaded = (l: LogLine): string | undefined => (typeof l.msg === 'string' ? /^change log: uploaded (\S+)$/.exec(l.msg)?.[1] : undefined);

test('change log in S3: after a SIGKILL mid-write and the data dir removed, restore to latest from S3 alone loses no write acknowledged more than one period plus the upload time before the kill', async () => {
  swift = await startSwift();
  await swift.createBucket('rpo');
  const env = { AWS_ACCESS_KEY_ID: swift.accessKey, AWS_SECRET_ACCESS_KEY: swift.secretKey };
  const s3 = s3ServerFlags(swift, 'rpo', 'f');
  const args = ['--etcd-disable-snapshots', '--etcd-changelog', '--etcd-changelog-period', `${PERIOD_MS}ms`, '--debug', ...s3];
  const bucket = S3ObjectStore.create(swiftSettings(swift, 'rpo', 'f'), CHANGELOG_PREFIX);
  after(() => bucket.close());
  const s = await startReady({ args, env });
  await s.waitFor((l) => typeof l.msg === 'string' && /^change log: chain [0-9a-f]{16} begins at revision \d+/.test(l.msg));

  // a client writing without pause, each write's acknowledgement time kept
  const client = await EtcdClient.connect({ endpoint: `https://127.0.0.1:${s.ports.client}`, tls: tlsPaths(s.dataDir) });
  const acked: Array<{ key: string; value: string; at: number }> = [];
  let writing = true;
  const writer = (async () => {
    for (let i = 0; writing; i++) {
      const key = `w/${String(i).padStart(6, '0')}`;
      const value = `v${i}-${Date.now()}`;
      try {
        await client.kv.put(key).value(value).exec();
        acked.push({ key, value, at: Date.now() });
      } catch {
        return; // etcd was killed: this write was not acknowledged
      }
    }
  })();

  // let a few segments go up, then kill right after an upload completes
  const seen = s.lines.length;
  await waitUntil(() => s.lines.slice(seen).filter((l) => uploaded(l) !== undefined).length >= 3, 60_000, 'three segment uploads while writing');
  const mark = s.lines.length;
  const last = await s.waitFor((l) => s.lines.indexOf(l) >= mark && uploaded(l) !== undefined, 30_000);
  const etcdPid = s.etcdPid();
  s.child.kill('SIGKILL');
  if (etcdPid !== undefined) process.kill(etcdPid, 'SIGKILL');
  const killedAt = Date.now();
  writing = false;
  await writer;
  client.close();
  await s.wait();
  await waitUntil(() => !alive(etcdPid), 10_000, 'etcd to die');
  const token = s.token();
  rmSync(s.dataDir, { recursive: true, force: true });

  // the bound: one period plus the last upload's time (its object's sealed-at to its log line)
  const lastName = uploaded(last) ?? '';
  const object = (await bucket.list()).find((o) => o.name.startsWith(lastName));
  assert.ok(object, `the last uploaded segment ${lastName} is in the bucket`);
  const sealedAt = Number((await bucket.get(object.name, 1 << 26)).metadata['sealed-at']);
  const uploadMs = Date.parse(String(last.time)) - sealedAt;
  assert.ok(Number.isFinite(uploadMs) && uploadMs >= 0, `upload time ${uploadMs} ms`);
  const bound = killedAt - (PERIOD_MS + uploadMs);
  const mustSurvive = acked.filter((w) => w.at <= bound);
  assert.ok(mustSurvive.length > 10, `writes acknowledged before the bound: ${mustSurvive.length} of ${acked.length}`);
  const newest = Math.max(...(await bucket.list()).map((o) => parseSegmentName(segmentOfObject(o.name) ?? '')?.last ?? 0));

  // restore to the latest point from S3 alone
  const r = reset(s.dataDir, s.ports, [...s3, '--cluster-reset-restore-to=latest'], { ...env, ETCDSNAP_TOKEN: token });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${RESET_MESSAGE(s.dataDir)}\n`);
  assert.match(r.stderr, /restoring to the latest logged revision from the snapshot/);
  const restored = await startReady({ dataDir: s.dataDir, ports: s.ports, args: ['--etcd-disable-snapshots'] });
  const out = JSON.parse(etcdctl(restored, ['get', '--prefix', 'w/', '-w', 'json']).stdout) as {
    header: { revision: number };
    kvs?: Array<{ key: string; value: string }>;
  };
  assert.equal(Number(out.header.revision), newest, 'the restore ends at the newest revision in S3');
  const got = new Map((out.kvs ?? []).map((kv) => [Buffer.from(kv.key, 'base64').toString(), Buffer.from(kv.value, 'base64').toString()]));
  const lost = mustSurvive.filter((w) => got.get(w.key) !== w.value);
  assert.deepEqual(
    lost.map((w) => `${w.key} acknowledged ${killedAt - w.at} ms before the kill`),
    [],
    `bound: ${PERIOD_MS} ms period + ${uploadMs} ms upload`,
  );
  const newestAck = acked.filter((w) => got.get(w.key) === w.value).at(-1);
  console.log(
    `restored ${got.size} of ${acked.length} acknowledged writes; the newest restored was acknowledged ${killedAt - (newestAck?.at ?? 0)} ms before the kill (bound ${PERIOD_MS + uploadMs} ms)`,
  );
  assert.equal(await restored.stop(), 0);
});
