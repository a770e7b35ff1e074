/**
 * Notifications (issue 15, docs/notifications.md, server/notify.ts): the pure policy (what
 * each event sends), delivery (retries, bounds, timeout, drain) against a local receiver,
 * the option checks, and a real server (etcd, Swift) whose S3 goes down and comes back:
 * exactly one upload-failed, save-failed, save-recovered and upload-recovered, none holding
 * a secret, and the webhook's secret never in the server's log.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { createLogger } from '../src/log/logger.js';
import { registerSecret } from '../src/log/secrets.js';
import { isLoopbackHost, WebhookSender, webhookNotifier } from '../src/server/notify.js';
import { cleanError, INITIAL_NOTIFY_STATE, maskURLCredentials, type Notification, notificationFor, type NotifyState } from '../src/server/notify-policy.js';
import { parseRetryDelays, parseWebhookURL } from '../src/config/checks.js';
import { fanOut, type SnapshotEvent } from '../src/snapshot/events.js';
import { UPLOAD_RETRY_DELAYS_MS } from '../src/snapshot/retry-queue.js';
import { selfSignedCert, startSwift, s3CliFlags, s3ServerFlags, type Swift } from './helpers/swift.js';
import { killStarted, runCli, snapshotCliAsync, startReady, tempDir, waitUntil } from './helpers/server.js';

function quietLogger(lines: string[] = []): ReturnType<typeof createLogger> {
  return createLogger({ format: 'json', debug: true, destination: { write: (l: string) => lines.push(l) } });
}

// ---------------------------------------------------------------------------------------
// the policy

const T = new Date('2026-11-30T23:00:00Z');
const saveFail = (scheduled: boolean, error = 'etcd is down'): SnapshotEvent => ({ kind: 'save', scheduled, result: 'failure', seconds: 1, error });
const saveOk = (snapshot = 'etcd-snapshot-node1-1764543600'): SnapshotEvent => ({
  kind: 'save',
  scheduled: true,
  result: 'success',
  seconds: 1,
  bytes: 10,
  createdAt: '2026-11-30T23:00:00Z',
  snapshot,
});
const upload = (result: 'success' | 'failure', attempt: number, final: boolean, error?: string): SnapshotEvent => ({
  kind: 'upload',
  store: 's3',
  result,
  attempt,
  final,
  snapshot: 'etcd-snapshot-node1-1764543600',
  ...(error !== undefined ? { error } : {}),
});

/** Runs the policy over `events`; answers what it sent. */
function run(events: SnapshotEvent[], scrub?: (s: string) => string): Notification[] {
  let state: NotifyState = INITIAL_NOTIFY_STATE;
  const sent: Notification[] = [];
  events.forEach((e, i) => {
    const r = notificationFor(state, e, { node: 'node1', time: new Date(T.getTime() + i * 1000), ...(scrub ? { scrub } : {}) });
    state = r.state;
    if (r.notification) sent.push(r.notification);
  });
  return sent;
}

test('policy: a failed save sends save-failed once per outage; the next success sends save-recovered once, with the count and the start', () => {
  const sent = run([saveOk(), saveFail(true), saveFail(false), saveFail(true), saveOk('s2'), saveOk('s3'), saveFail(false), saveOk('s4')]);
  assert.deepEqual(
    sent.map((n) => n.event),
    ['save-failed', 'save-recovered', 'save-failed', 'save-recovered'],
  );
  assert.deepEqual(sent[0], {
    event: 'save-failed',
    node: 'node1',
    time: '2026-11-30T23:00:01.000Z',
    scheduled: true,
    error: 'etcd is down',
    text: 'etcdsnap node1: scheduled snapshot save failed: etcd is down',
  });
  assert.deepEqual(sent[1], {
    event: 'save-recovered',
    node: 'node1',
    time: '2026-11-30T23:00:04.000Z',
    snapshot: 's2',
    scheduled: true,
    failures: 3,
    since: '2026-11-30T23:00:01.000Z',
    text: 'etcdsnap node1: snapshot saves work again: s2 saved (after 3 failed saves since 2026-11-30T23:00:01.000Z)',
  });
  assert.equal(sent[2]?.text, 'etcdsnap node1: on-demand snapshot save failed: etcd is down');
  assert.equal(sent[3]?.failures, 1);
});

test('policy: only an upload given up (final) sends upload-failed; any later upload success sends upload-recovered; prunes and non-final failures send nothing', () => {
  const sent = run([
    upload('success', 1, false),
    upload('failure', 1, false, 'connection refused'),
    upload('failure', 2, false, 'connection refused'),
    { kind: 'prune', store: 's3', result: 'failure', seconds: 1, deleted: 0 },
    upload('failure', 3, true, 'connection refused'),
    upload('failure', 1, true, 'S3 is not reachable'),
    saveOk(),
    upload('success', 2, false),
    upload('success', 1, false),
  ]);
  assert.deepEqual(
    sent.map((n) => n.event),
    ['upload-failed', 'upload-recovered'],
  );
  assert.deepEqual(sent[0], {
    event: 'upload-failed',
    node: 'node1',
    time: '2026-11-30T23:00:04.000Z',
    snapshot: 'etcd-snapshot-node1-1764543600',
    store: 's3',
    error: 'connection refused',
    attempts: 3,
    text: 'etcdsnap node1: S3 upload of etcd-snapshot-node1-1764543600 failed after 3 attempts; the local snapshot is kept: connection refused',
  });
  assert.equal(sent[1]?.failures, 2);
  assert.equal(sent[1]?.attempts, 2);
  assert.equal(sent[1]?.since, '2026-11-30T23:00:04.000Z');
  assert.match(sent[1]?.text ?? '', /^etcdsnap node1: S3 uploads work again: etcd-snapshot-node1-1764543600 uploaded \(after 2 uploads given up since /);
});

test('policy: errors are scrubbed, URL credentials masked, cut to one bounded line; text is escaped for Slack', () => {
  const secret = 'n0tify-test-s3cret-value-77';
  registerSecret(secret);
  const sent = run([saveFail(true, `auth failed for ${secret}\n at https://user:pa55@s3.example:9000/b <x> & y`)]);
  const n = sent[0];
  assert.ok(n);
  assert.equal(n.error, 'auth failed for **redacted** at https://**redacted**@s3.example:9000/b <x> & y');
  assert.equal(
    n.text,
    'etcdsnap node1: scheduled snapshot save failed: auth failed for **redacted** at https://**redacted**@s3.example:9000/b &lt;x&gt; &amp; y',
  );
  assert.ok(!JSON.stringify(n).includes(secret) && !JSON.stringify(n).includes('pa55'));
  assert.equal(cleanError('x'.repeat(2000)).length, 500);
  assert.equal(maskURLCredentials('s3://AKIA:secret@host/x and http://plain/'), 's3://**redacted**@host/x and http://plain/');
});

test('fanOut: each observer gets each event; a throwing one is logged and does not stop the others', () => {
  const seen: string[] = [];
  const lines: string[] = [];
  const emit = fanOut(
    quietLogger(lines),
    (e) => seen.push(`a:${e.kind}`),
    () => {
      throw new Error('observer bug');
    },
    undefined,
    (e) => seen.push(`b:${e.kind}`),
  );
  emit(saveOk());
  assert.deepEqual(seen, ['a:save', 'b:save']);
  assert.match(lines.join(''), /snapshot event observer failed/);
});

test('option checks: retry delays (default, 0, bounds) and webhook URLs (http/https, no user info, value never echoed)', () => {
  assert.deepEqual(UPLOAD_RETRY_DELAYS_MS, [5000, 15000, 45000, 120000, 300000]);
  assert.deepEqual(parseRetryDelays('1s, 2m,1h'), [1000, 120000, 3600000]);
  assert.deepEqual(parseRetryDelays('0'), []);
  assert.deepEqual(parseRetryDelays(''), []);
  assert.throws(() => parseRetryDelays('0s'), /less than 1s/);
  assert.throws(() => parseRetryDelays('2h'), /more than 1h/);
  assert.throws(() => parseRetryDelays('5s,,5s'), /empty item/);
  assert.throws(() => parseRetryDelays('5x'), /not a duration/);
  assert.throws(() => parseRetryDelays(Array(21).fill('1s').join(',')), /at most 20/);
  assert.equal(parseWebhookURL('https://hooks.slack.com/services/T0/B0/xyz')?.host, 'hooks.slack.com');
  assert.equal(parseWebhookURL(''), undefined);
  for (const [bad, why] of [
    ['ftp://h/x', /scheme ftp is not http or https/],
    ['https://u:hunter2@h/x', /user name or password/],
    ['hooks.slack.com/services/abc', /not a URL/],
  ] as const) {
    assert.throws(
      () => parseWebhookURL(bad),
      (err: Error) => why.test(err.message) && !err.message.includes('hunter2') && !err.message.includes('services'),
    );
  }
  assert.ok(isLoopbackHost(new URL('http://127.0.0.1:1/')) && isLoopbackHost(new URL('http://[::1]:1/')) && isLoopbackHost(new URL('http://localhost/')));
  assert.ok(!isLoopbackHost(new URL('http://10.0.0.1/')) && !isLoopbackHost(new URL('http://example.com/')));
});

test('webhookNotifier: logs the origin only; warns once about plain http to another host, not to loopback or over https; the URL is then scrubbed from logs', async () => {
  const lines: string[] = [];
  const log = quietLogger(lines);
  await webhookNotifier('http://10.0.0.1:8065/hooks/plain-http-s3cr3t', 'node1', log).drain(0);
  await webhookNotifier('http://127.0.0.1:8065/hooks/loopback-s3cr3t', 'node1', log).drain(0);
  await webhookNotifier('https://hooks.example/services/T0/B0/tls-s3cr3t', 'node1', log).drain(0);
  const text = lines.join('');
  assert.equal(text.match(/is plain http/g)?.length, 1, text);
  assert.match(text, /the notification webhook http:\/\/10\.0\.0\.1:8065 is plain http/);
  assert.match(text, /sent to https:\/\/hooks\.example \(--etcd-snapshot-notify-webhook\)/);
  assert.ok(!/s3cr3t/.test(text), text);
  log.info('leaked https://hooks.example/services/T0/B0/tls-s3cr3t');
  assert.ok(!lines.join('').includes('tls-s3cr3t'), 'a registered secret');
  assert.throws(() => webhookNotifier('ftp://x/y', 'node1', log), /--etcd-snapshot-notify-webhook: scheme ftp/);
});

// ---------------------------------------------------------------------------------------
// delivery, against a real HTTP receiver

interface Receiver {
  url: string;
  bodies: string[];
  /** Requests seen, answered or not. */
  hits: number;
  close(): Promise<void>;
}

/** A receiver on 127.0.0.1 that records each POST body; `answer(n)` (n from 1) gives the status, or 0 to never answer. */
async function receiver(answer: (n: number) => number = () => 200): Promise<Receiver> {
  const r: Receiver = { url: '', bodies: [], hits: 0, close: async () => undefined };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      r.hits++;
      const status = answer(r.hits);
      if (status === 0) return; // hang: the sender's timeout or drain ends it
      if (status >= 200 && status < 300) r.bodies.push(Buffer.concat(chunks).toString('utf8'));
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  r.url = `http://127.0.0.1:${port}/hooks/T0/B0/s3cr3t-webhook-path`;
  r.close = () =>
    new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return r;
}

const note = (i: number): Notification => ({ event: 'save-failed', node: 'node1', time: T.toISOString(), text: `n${i}` });

/** A sleep that records each delay and waits only a tick. */
function fastSleep(delays: number[]): (ms: number) => Promise<void> {
  return async (ms) => {
    delays.push(ms);
    await new Promise((r) => setImmediate(r));
  };
}

test('delivery: retried after 5xx with the given delays until delivered; 4xx is final; attempts bounded; failures logged without the URL path', async () => {
  const failing = await receiver((n) => (n <= 2 ? 503 : 200));
  const delays: number[] = [];
  const lines: string[] = [];
  const s = new WebhookSender({ url: new URL(failing.url), logger: quietLogger(lines), retryDelaysMs: [1000, 5000], sleep: fastSleep(delays) });
  s.send(note(1));
  await waitUntil(() => s.delivered === 1, 5000, 'delivered on the third attempt');
  assert.equal(failing.hits, 3);
  assert.deepEqual(delays, [1000, 5000]);
  assert.deepEqual(JSON.parse(failing.bodies[0] ?? '{}'), note(1));
  await failing.close();

  const down = await receiver(() => 500);
  const lines2: string[] = [];
  const s2 = new WebhookSender({ url: new URL(down.url), logger: quietLogger(lines2), retryDelaysMs: [1, 1], sleep: fastSleep([]) });
  s2.send(note(2));
  await waitUntil(() => s2.dropped === 1, 5000, 'given up');
  assert.equal(down.hits, 3, 'three attempts, no more');
  const refused = await receiver(() => 404);
  const s3 = new WebhookSender({ url: new URL(refused.url), logger: quietLogger(lines2), retryDelaysMs: [1, 1], sleep: fastSleep([]) });
  s3.send(note(3));
  await waitUntil(() => s3.dropped === 1, 5000, 'given up');
  assert.equal(refused.hits, 1, '4xx is not retried');
  await Promise.all([down.close(), refused.close()]);

  // nobody listening: connection refused, logged with the origin only
  const gone = new WebhookSender({ url: new URL(down.url), logger: quietLogger(lines2), retryDelaysMs: [1], sleep: fastSleep([]) });
  gone.send(note(4));
  await waitUntil(() => gone.dropped === 1, 5000, 'given up');
  const log = lines.join('') + lines2.join('');
  assert.match(log, /not delivered to http:\/\/127\.0\.0\.1:\d+ after 3 attempts: HTTP 500/);
  assert.match(log, /not delivered to http:\/\/127\.0\.0\.1:\d+ after 2 attempts: .*ECONNREFUSED/);
  assert.ok(!log.includes('s3cr3t-webhook-path'), 'the URL path never logged');
});

test('delivery: a request without an answer times out and is retried; the queue is bounded (oldest dropped); drain gives a bounded chance then drops', async () => {
  const slow = await receiver((n) => (n === 1 ? 0 : 200));
  const s = new WebhookSender({ url: new URL(slow.url), logger: quietLogger(), timeoutMs: 200, retryDelaysMs: [1], sleep: fastSleep([]) });
  s.send(note(1));
  await waitUntil(() => s.delivered === 1, 5000, 'delivered after a timeout');
  assert.equal(slow.hits, 2);
  await slow.close();

  const hang = await receiver((n) => (n === 1 ? 0 : 200));
  const lines: string[] = [];
  const q = new WebhookSender({ url: new URL(hang.url), logger: quietLogger(lines), timeoutMs: 60_000, maxQueue: 2, retryDelaysMs: [] });
  for (let i = 1; i <= 5; i++) q.send(note(i)); // n1 is being sent (hangs); n2..n5 queue, bounded to 2
  await waitUntil(() => hang.hits === 1, 5000, 'the first request');
  assert.equal(q.pending, 2);
  assert.equal(q.dropped, 2);
  assert.match(lines.join(''), /notification queue full \(2\); dropped the oldest/);
  const t0 = Date.now();
  await q.drain(300);
  assert.ok(Date.now() - t0 < 5000, 'drain is bounded');
  assert.equal(q.pending, 0);
  assert.equal(q.delivered, 0);
  assert.match(lines.join(''), /stopping: 2 queued notifications not delivered/);
  q.send(note(9)); // after drain: refused, never throws
  assert.equal(q.pending, 0);
  await hang.close();
});

test('delivery over https verifies the certificate: a self-signed receiver is refused, never posted to, and not retried into success', async () => {
  const { certPem, keyPem } = selfSignedCert(tempDir());
  let hits = 0;
  const server = https.createServer({ cert: certPem, key: keyPem }, (_req, res) => {
    hits++;
    res.writeHead(200).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const lines: string[] = [];
  const s = new WebhookSender({
    url: new URL(`https://127.0.0.1:${port}/hooks/tls-path`),
    logger: quietLogger(lines),
    retryDelaysMs: [1],
    sleep: fastSleep([]),
  });
  s.send(note(1));
  await waitUntil(() => s.dropped === 1, 5000, 'given up');
  assert.equal(hits, 0);
  assert.equal(s.delivered, 0);
  assert.match(lines.join(''), /not delivered to https:\/\/127\.0\.0\.1:\d+ after 2 attempts: .*self[- ]signed certificate/i);
  await new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
});

// ---------------------------------------------------------------------------------------
// a real server

test('the server refuses a bad webhook URL or retry delays with a one-line config error that never shows the URL', () => {
  const dir = tempDir();
  for (const [args, why] of [
    [
      ['--etcd-snapshot-notify-webhook', 'https://me:hunter2@hooks.example/x'],
      /--etcd-snapshot-notify-webhook: a user name or password in the URL is not allowed/,
    ],
    [['--etcd-snapshot-notify-webhook', 'file:///etc/passwd'], /--etcd-snapshot-notify-webhook: scheme file is not http or https/],
    [['--etcd-s3-upload-retry-delays', '5s,2h'], /--etcd-s3-upload-retry-delays: 2h is more than 1h/],
  ] as const) {
    const r = runCli(['server', '--data-dir', `${dir}/d`, '--config', `${dir}/none.yaml`, ...args]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, why);
    assert.ok(!r.stderr.includes('hunter2'), r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
});

let swift: Swift;
before(async () => {
  swift = await startSwift();
});
after(async () => {
  killStarted();
  await swift?.stop();
});

test('a real server: S3 down → one upload-failed; an on-demand save refused → one save-failed, then save-recovered; S3 back → one upload-recovered; no secret anywhere', async () => {
  await swift.createBucket('notify');
  const hook = await receiver();
  const env = { AWS_ACCESS_KEY_ID: swift.accessKey, AWS_SECRET_ACCESS_KEY: swift.secretKey, ETCDSNAP_SNAPSHOT_NOTIFY_WEBHOOK: hook.url };
  const s = await startReady({
    args: [
      ...s3ServerFlags(swift, 'notify'),
      '--etcd-snapshot-schedule-cron',
      '@every 2s',
      '--etcd-s3-upload-retry-delays',
      '1s,1s',
      '--etcd-s3-retention',
      '2',
    ],
    env,
  });
  const events = (): string[] => hook.bodies.map((b) => (JSON.parse(b) as Notification).event);
  const count = (e: string): number => events().filter((x) => x === e).length;
  const uploaded = (): number => s.lines.filter((l) => /^Snapshot \S+ uploaded to S3/.test(l.msg ?? '')).length;
  try {
    await waitUntil(() => uploaded() >= 1, 60_000, 'a scheduled save uploaded');
    assert.deepEqual(events(), [], 'nothing while all is well');

    await swift.stopProxy();
    try {
      await waitUntil(() => count('upload-failed') >= 1, 60_000, 'upload-failed');
      // an on-demand save with --s3 is refused while S3 is down: a failed save (retried when
      // it met a scheduled save: a conflict is no failed save)
      await waitUntil(
        async () => {
          const r = await snapshotCliAsync(s, ['save', ...s3CliFlags(swift, 'notify')], {
            AWS_ACCESS_KEY_ID: swift.accessKey,
            AWS_SECRET_ACCESS_KEY: swift.secretKey,
          });
          assert.notEqual(r.code, 0, r.stdout);
          return count('save-failed') >= 1;
        },
        60_000,
        'save-failed',
      );
      await waitUntil(() => count('save-recovered') >= 1, 60_000, 'save-recovered (the next scheduled save)');
    } finally {
      await swift.startProxy();
    }
    await waitUntil(() => count('upload-recovered') >= 1, 60_000, 'upload-recovered');
    // two more uploads after the recovery: nothing more is sent
    const after = uploaded();
    await waitUntil(() => uploaded() >= after + 2, 60_000, 'two more uploads');
  } finally {
    assert.equal(await s.stop(), 0);
    await hook.close();
  }
  const ev = events();
  assert.equal(count('upload-failed'), 1, ev.join());
  assert.equal(count('save-failed'), 1, ev.join());
  assert.equal(count('save-recovered'), 1, ev.join());
  assert.equal(count('upload-recovered'), 1, ev.join());
  assert.equal(ev.length, 4, ev.join());
  assert.ok(ev.indexOf('upload-failed') < ev.indexOf('upload-recovered') && ev.indexOf('save-failed') < ev.indexOf('save-recovered'), ev.join());

  const byEvent = new Map(hook.bodies.map((b) => [(JSON.parse(b) as Notification).event, JSON.parse(b) as Notification]));
  const failed = byEvent.get('upload-failed');
  assert.equal(failed?.node, 'node1');
  assert.equal(failed?.store, 's3');
  assert.ok((failed?.attempts ?? 0) >= 1);
  assert.match(failed?.snapshot ?? '', /^etcd-snapshot-node1-\d+$/);
  assert.ok(failed?.error);
  assert.match(failed?.time ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
  const saveFailed = byEvent.get('save-failed');
  assert.equal(saveFailed?.scheduled, false);
  assert.ok(saveFailed?.error);
  assert.match(saveFailed?.text ?? '', /^etcdsnap node1: on-demand snapshot save failed: /);
  assert.equal(byEvent.get('save-recovered')?.scheduled, true);
  assert.ok((byEvent.get('upload-recovered')?.failures ?? 0) >= 1);

  const token = s.token();
  const tokenSecret = token.split('::server:')[1] ?? '';
  for (const b of hook.bodies) {
    for (const secret of [token, tokenSecret, swift.secretKey]) assert.ok(!b.includes(secret), `a secret in ${b}`);
  }
  const log = s.raw.join('\n');
  assert.ok(!log.includes('s3cr3t-webhook-path'), 'the webhook URL path is never logged');
  assert.match(log, /notification upload-failed sent to http:\/\/127\.0\.0\.1:\d+/);
});
