/**
 * Prometheus metrics (issue 15, docs/metrics.md) against a real server, etcd and Swift:
 * /metrics with the token, the unauthenticated listener of --metrics-listen-address, the
 * counters after saves, failed uploads, prunes and a restore, and `promtool check` of the
 * scraped text and of docs/alerts/etcdsnap.rules.yml (promtool is required: Debian's
 * prometheus package, scripts/install.sh --test).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { startSwift, s3CliFlags, s3ServerFlags, type Swift } from './helpers/swift.js';
import { freePort, killStarted, ROOT, snapshotCli, startReady, waitUntil, type ServerProcess } from './helpers/server.js';
import { reset } from './helpers/restore.js';

let swift: Swift;
before(async () => {
  swift = await startSwift();
});
after(async () => {
  killStarted();
  await swift?.stop();
});

interface Answer {
  status: number;
  body: string;
  contentType: string;
}

/** GET (or another method) over http or https (CA not checked), with an optional bearer token. */
function get(url: string, token?: string, method = 'GET'): Promise<Answer> {
  const mod = url.startsWith('https:') ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request(url, { method, rejectUnauthorized: false, headers: token ? { authorization: `Bearer ${token}` } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), contentType: String(res.headers['content-type']) }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

/** The secret of the server's token (`K10<hash>::server:<secret>`): what the API takes as a bearer token. */
const secretOf = (s: ServerProcess): string => s.token().split('::server:')[1] ?? '';

const scrape = async (s: ServerProcess): Promise<string> => {
  const r = await get(`${s.url}/metrics`, secretOf(s));
  assert.equal(r.status, 200, r.body);
  assert.equal(r.contentType, 'text/plain; version=0.0.4; charset=utf-8');
  return r.body;
};

/** The value of the sample `name` whose labels include `labels`; undefined when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = new Map([...(m[2] ?? '').matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) return Number(m[3]);
  }
  return undefined;
}

/** `promtool check metrics` on `text`; a missing promtool fails. */
function promtoolMetrics(text: string): void {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  assert.ok(!r.error, `promtool is required (Debian package prometheus; scripts/install.sh --test): ${String(r.error)}`);
  assert.equal(r.status, 0, `promtool check metrics:\n${r.stdout}${r.stderr}`);
}

const savedName = (stdout: string): string => /^Snapshot (\S+) saved\./.exec(stdout)?.[1] ?? '';

test('alert rules pass promtool check rules', () => {
  const r = spawnSync('promtool', ['check', 'rules', path.join(ROOT, 'docs', 'alerts', 'etcdsnap.rules.yml')], { encoding: 'utf8' });
  assert.ok(!r.error, `promtool is required (Debian package prometheus; scripts/install.sh --test): ${String(r.error)}`);
  assert.equal(r.status, 0, r.stdout + r.stderr);
});

test('metrics with the token: saves, prune, etcd state, the unauthenticated listener; after a restore and a restart the restore time appears', async () => {
  const metricsPort = await freePort();
  const args = ['--metrics-listen-address', `127.0.0.1:${metricsPort}`];
  const s = await startReady({ args });
  const none = await get(`${s.url}/metrics`);
  assert.equal(none.status, 401, 'no token: 401');
  let text = await scrape(s);
  promtoolMetrics(text);
  assert.equal(sample(text, 'etcdsnap_etcd_member_healthy'), 1);
  assert.equal(sample(text, 'etcdsnap_etcd_has_leader'), 1);
  assert.equal(sample(text, 'etcdsnap_etcd_is_leader'), 1);
  assert.ok((sample(text, 'etcdsnap_etcd_db_size_bytes') ?? 0) > 0);
  assert.ok((sample(text, 'etcdsnap_etcd_db_size_in_use_bytes') ?? 0) > 0);
  assert.equal(sample(text, 'etcdsnap_etcd_quota_backend_bytes'), 2 * 1024 ** 3);
  assert.ok((sample(text, 'etcdsnap_snapshot_next_scheduled_timestamp_seconds') ?? 0) > Date.now() / 1000, 'next scheduled run in the future');
  assert.equal(sample(text, 'etcdsnap_snapshots', { store: 'local' }), 0);
  assert.equal(sample(text, 'etcdsnap_snapshot_last_success_timestamp_seconds', { store: 'local' }), undefined);
  assert.equal(sample(text, 'etcdsnap_restore_last_timestamp_seconds'), undefined);
  assert.ok(sample(text, 'process_cpu_seconds_total') !== undefined, "prom-client's default process metrics");

  const names: string[] = [];
  for (let i = 0; i < 3; i++) {
    const r = snapshotCli(s, ['save']);
    assert.equal(r.code, 0, r.stderr);
    names.push(savedName(r.stdout));
  }
  text = await scrape(s);
  promtoolMetrics(text);
  assert.equal(sample(text, 'etcdsnap_snapshot_save_duration_seconds_count', { trigger: 'on-demand', result: 'success' }), 3);
  assert.equal(sample(text, 'etcdsnap_snapshots', { store: 'local' }), 3);
  const last = sample(text, 'etcdsnap_snapshot_last_success_timestamp_seconds', { store: 'local' }) ?? 0;
  assert.equal(last, Number(/-(\d+)$/.exec(names[2] ?? '')?.[1]), 'the newest snapshot’s time');
  assert.ok((sample(text, 'etcdsnap_snapshot_last_success_size_bytes', { store: 'local' }) ?? 0) > 0);

  const refused = snapshotCli(s, ['save', '--dir', '/nonexistent-etcdsnap-folder']);
  assert.notEqual(refused.code, 0, 'a folder that is not allowed');
  const pruned = snapshotCli(s, ['prune', '--snapshot-retention', '1']);
  assert.equal(pruned.code, 0, pruned.stderr);
  text = await scrape(s);
  promtoolMetrics(text);
  assert.equal(
    sample(text, 'etcdsnap_snapshot_save_duration_seconds_count', { trigger: 'on-demand', result: 'failure' }),
    undefined,
    'a refused request is no failed save',
  );
  assert.equal(sample(text, 'etcdsnap_snapshot_prune_duration_seconds_count', { store: 'local', result: 'success' }), 1);
  assert.equal(sample(text, 'etcdsnap_snapshot_pruned_total', { store: 'local' }), 2);
  assert.equal(sample(text, 'etcdsnap_snapshots', { store: 'local' }), 1);

  // the unauthenticated listener: metrics, and nothing else
  const open = await get(`http://127.0.0.1:${metricsPort}/metrics`);
  assert.equal(open.status, 200);
  assert.equal(open.contentType, 'text/plain; version=0.0.4; charset=utf-8');
  assert.equal(sample(open.body, 'etcdsnap_snapshots', { store: 'local' }), 1);
  assert.equal((await get(`http://127.0.0.1:${metricsPort}/db/snapshot`)).status, 404);
  assert.equal((await get(`http://127.0.0.1:${metricsPort}/healthz`)).status, 404);
  assert.equal((await get(`http://127.0.0.1:${metricsPort}/metrics`, undefined, 'POST')).status, 405);

  // a restore (another process), then a restart: the restore time appears, the last success is kept
  assert.equal(await s.stop(), 0);
  const file = path.join(s.dataDir, 'server', 'db', 'snapshots', names[2] ?? '');
  const r = reset(s.dataDir, s.ports, ['--cluster-reset-restore-path', file]);
  assert.equal(r.code, 0, r.stderr);
  const s2 = await startReady({ dataDir: s.dataDir, ports: s.ports, args });
  text = await scrape(s2);
  promtoolMetrics(text);
  const restored = sample(text, 'etcdsnap_restore_last_timestamp_seconds') ?? 0;
  assert.ok(restored >= last, `restore time ${restored} after the snapshot's ${last}`);
  assert.equal(sample(text, 'etcdsnap_snapshot_last_success_timestamp_seconds', { store: 'local' }), last, 'kept over the restart');
  assert.equal(sample(text, 'etcdsnap_snapshot_save_duration_seconds_count', { trigger: 'on-demand', result: 'success' }), undefined, 'counters start again');
  assert.equal(await s2.stop(), 0);
});

test('metrics of S3 uploads: successes, then failed attempts and uploads given up while S3 is down; replica prune', async () => {
  await swift.createBucket('metrics');
  const env = { AWS_ACCESS_KEY_ID: swift.accessKey, AWS_SECRET_ACCESS_KEY: swift.secretKey };
  const s = await startReady({
    args: [...s3ServerFlags(swift, 'metrics'), '--etcd-snapshot-schedule-cron', '@every 2s', '--etcd-s3-retention', '2', '--etcd-s3-upload-retry-delays', '1s'],
    env,
  });
  const value = async (name: string, labels: Record<string, string> = {}): Promise<number> => sample(await scrape(s), name, labels) ?? 0;
  // a save's event comes after its upload's (the upload is settled inside the save)
  const saves = { trigger: 'scheduled', result: 'success' };
  await waitUntil(async () => (await value('etcdsnap_snapshot_save_duration_seconds_count', saves)) >= 3, 60_000, 'three scheduled saves');
  let text = await scrape(s);
  promtoolMetrics(text);
  assert.ok((sample(text, 'etcdsnap_snapshot_upload_attempts_total', { store: 's3', result: 'success' }) ?? 0) >= 3);
  assert.ok((sample(text, 'etcdsnap_snapshot_last_success_timestamp_seconds', { store: 's3' }) ?? 0) > 0);
  assert.ok((sample(text, 'etcdsnap_snapshot_last_success_size_bytes', { store: 's3' }) ?? 0) > 0);
  assert.ok((sample(text, 'etcdsnap_snapshots', { store: 's3' }) ?? 0) >= 1);
  assert.ok((sample(text, 'etcdsnap_snapshot_prune_duration_seconds_count', { store: 's3', result: 'success' }) ?? 0) >= 1);
  await waitUntil(async () => (await value('etcdsnap_snapshot_pruned_total', { store: 's3' })) >= 1, 60_000, 'an S3 snapshot pruned');
  // an on-demand save with --s3 while S3 is up counts too
  const before = await value('etcdsnap_snapshot_upload_attempts_total', { store: 's3', result: 'success' });
  await waitUntil(() => snapshotCli(s, ['save', ...s3CliFlags(swift, 'metrics')], env).code === 0, 30_000, 'an on-demand save between scheduled ones');
  assert.ok((await value('etcdsnap_snapshot_upload_attempts_total', { store: 's3', result: 'success' })) > before);
  assert.equal(await value('etcdsnap_snapshot_save_duration_seconds_count', { trigger: 'on-demand', result: 'success' }), 1);

  const savedBefore = await value('etcdsnap_snapshot_save_duration_seconds_count', saves);
  await swift.stopProxy();
  try {
    await waitUntil(async () => (await value('etcdsnap_snapshot_upload_attempts_total', { store: 's3', result: 'failure' })) >= 1, 60_000, 'a failed upload');
    // an on-demand save with --s3 is refused while S3 is down: a failed save
    // (tried again when it met a scheduled save: a conflict is refused without being counted)
    const onDemandFailed = { trigger: 'on-demand', result: 'failure' };
    await waitUntil(
      async () => {
        assert.notEqual(snapshotCli(s, ['save', ...s3CliFlags(swift, 'metrics')], env).code, 0);
        return (await value('etcdsnap_snapshot_save_duration_seconds_count', onDemandFailed)) >= 1;
      },
      30_000,
      'a failed on-demand save',
    );
    // the local snapshot is kept: the save with the failed upload succeeds
    await waitUntil(async () => (await value('etcdsnap_snapshot_save_duration_seconds_count', saves)) > savedBefore, 60_000, 'local saves going on');
    // with one retry after 1 s (--etcd-s3-upload-retry-delays 1s) an upload is soon given up
    await waitUntil(async () => (await value('etcdsnap_snapshot_upload_failures_total', { store: 's3' })) >= 1, 60_000, 'an upload given up');
    text = await scrape(s);
    promtoolMetrics(text);
    assert.ok((sample(text, 'etcdsnap_snapshot_upload_attempts_total', { store: 's3', result: 'failure' }) ?? 0) >= 2, 'the first attempt and its retry');
  } finally {
    await swift.startProxy();
  }
  assert.equal(await s.stop(), 0);
});
