/**
 * etcd's quota (issue 18, docs/upkeep.md "Quota and NOSPACE"), real etcd: a server with
 * `--etcd-arg quota-backend-bytes=16 MiB` whose keys are overwritten until etcd refuses
 * writes. The warning at 80% of the quota is logged before the NOSPACE alarm; the alarm gives
 * exactly one error naming the commands; `etcd-snapshot alarm list` and the metrics show
 * it; the documented steps (`etcd-snapshot compact`, `defrag`, `alarm disarm`) make writes
 * succeed again, and the watcher says the alarm is gone and the size is back under. The
 * webhook of `--etcd-snapshot-notify-webhook` gets etcd-quota-warning, etcd-nospace and
 * etcd-nospace-cleared, once each, in that order.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { EtcdClient } from '../src/etcd/client.js';
import { tlsPaths } from '../src/etcd/tls.js';
import { apiRequest, killStarted, snapshotCli, startReady, waitUntil, type LogLine } from './helpers/server.js';

after(() => killStarted());

const QUOTA = 16 * 1024 * 1024;
const event = (name: string) => (l: LogLine) => l.event === name;

test('a small quota: warning, then one NOSPACE error; compact, defrag and disarm bring writes back', async () => {
  const received: Array<{ event: string; node: string; text: string }> = [];
  const hook = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      received.push(JSON.parse(body) as { event: string; node: string; text: string });
      res.end('ok');
    });
  });
  await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
  after(() => hook.close());
  const webhook = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook`;
  const s = await startReady({
    args: ['--etcd-disable-snapshots', '--etcd-arg', `quota-backend-bytes=${QUOTA}`, '--etcd-snapshot-notify-webhook', webhook],
  });
  const etcd = await EtcdClient.connect({ endpoint: `https://127.0.0.1:${s.ports.client}`, tls: tlsPaths(s.dataDir) });
  after(() => etcd.close());
  const value = randomBytes(256 * 1024);
  const put = (i: number): Promise<unknown> =>
    etcd.kv
      .put(`churn/${i % 4}`)
      .value(value)
      .exec();
  let i = 0;
  // overwrite four keys (history grows, live data does not) until the size passes 85%
  while ((await etcd.status()).dbSize < 0.85 * QUOTA) await put(i++);
  const warning = await s.waitFor(event('quota-warning'), 30_000);
  assert.equal(warning.level, 'warn');
  assert.match(String(warning.msg), /^etcd database size \d+\.\d MiB is \d+% of its quota 16\.0 MiB \(quota-backend-bytes\)/);
  assert.equal(
    s.lines.some((l) => l.event === 'nospace'),
    false,
  );
  // then until etcd refuses
  let refused: unknown;
  for (; refused === undefined; i++) {
    try {
      await put(i);
    } catch (err) {
      refused = err;
    }
  }
  assert.match(String(refused), /database space exceeded/);
  const error = await s.waitFor(event('nospace'), 30_000);
  assert.equal(error.level, 'error');
  assert.match(
    String(error.msg),
    /^etcd raised the NOSPACE alarm \(member node1-[0-9a-f]+ \([0-9a-f]+\)\): the database reached its quota of 16\.0 MiB .* to recover run: etcdsnap etcd-snapshot compact, then etcdsnap etcd-snapshot defrag, then etcdsnap etcd-snapshot alarm disarm/,
  );
  assert.ok(s.lines.indexOf(warning) < s.lines.indexOf(error), 'the warning comes before the alarm');

  const listed = snapshotCli(s, ['alarm', 'list']);
  assert.equal(listed.code, 0, listed.stderr);
  assert.match(
    listed.stdout,
    /^memberID:[0-9a-f]+ \(node1-[0-9a-f]+\) alarm:NOSPACE\nDatabase size \d+\.\d MiB \(\d+\.\d [KM]iB in use\) of quota 16\.0 MiB \(\d+%\)\.\n$/,
  );
  const metrics = await apiRequest(`${s.url}/metrics`, { headers: { authorization: `Bearer ${s.token().split('::server:')[1] ?? ''}` } });
  assert.match(metrics.body, /^etcdsnap_etcd_alarm_active\{alarm="NOSPACE"\} 1$/m);

  // the documented recovery
  const compacted = snapshotCli(s, ['compact']);
  assert.equal(compacted.code, 0, compacted.stderr);
  assert.match(compacted.stdout, /^Compacted etcd to revision \d+\.\n$/);
  const defragged = snapshotCli(s, ['defrag']);
  assert.equal(defragged.code, 0, defragged.stderr);
  const m = /^Defragmented member node1-[0-9a-f]+ \(leader\) https:\/\/127\.0\.0\.1:\d+: (\d+\.\d) MiB -> (\d+\.\d) [KM]iB, reclaimed/.exec(defragged.stdout);
  assert.ok(m, defragged.stdout);
  // under NOSPACE etcd refuses the lock's lease: the run goes on without it
  await s.waitFor((l) => l.msg === 'etcd refuses the defragmentation lock (NOSPACE): defragmenting without it', 30_000);
  const disarmed = snapshotCli(s, ['alarm', 'disarm']);
  assert.equal(disarmed.code, 0, disarmed.stderr);
  assert.match(disarmed.stdout, /^Disarmed memberID:[0-9a-f]+ \(node1-[0-9a-f]+\) alarm:NOSPACE\n/);
  await put(i++);
  const after1 = snapshotCli(s, ['alarm', 'list']);
  assert.match(after1.stdout, /^No alarms\.\n/);
  await s.waitFor(event('nospace-cleared'), 30_000);
  await s.waitFor(event('quota-ok'), 30_000);
  assert.equal(s.lines.filter((l) => l.event === 'nospace').length, 1, 'one error per alarm occurrence');
  assert.equal(s.lines.filter((l) => l.event === 'quota-warning').length, 1);
  await waitUntil(() => received.length >= 3, 30_000, 'three webhook messages');
  assert.deepEqual(
    received.map((m) => m.event),
    ['etcd-quota-warning', 'etcd-nospace', 'etcd-nospace-cleared'],
  );
  // the log line, with Slack's escaping
  assert.equal(received[1]?.text, `etcdsnap node1: ${String(error.msg).replace(/</g, '&lt;').replace(/>/g, '&gt;')}`);
  assert.equal(received[1]?.node, 'node1');
  await s.stop();
});
