/**
 * A real `etcdsnap server` under a fake systemd NOTIFY_SOCKET (test/helpers/notify-listener.ts):
 * STATUS lines while it starts, READY=1 only once etcd answers and the API serves (healthz 200
 * when READY arrives, and the "etcdsnap server ready" line logged before it), exactly one READY
 * (etcd never gets NOTIFY_SOCKET), every message sent as the server's PID (as root), and
 * STOPPING=1 after SIGTERM, before etcd is stopped and the process exits.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { after, test } from 'node:test';
import { NotifyListener } from './helpers/notify-listener.js';
import { apiRequest, killStarted, startServer, tempDir, type LogLine } from './helpers/server.js';

const haveNotify = spawnSync('systemd-notify', ['--version']).status === 0;
let listener: NotifyListener | undefined;
after(() => {
  listener?.close();
  killStarted();
});

const loggedAt = (l: LogLine): number => Date.parse(String(l.time));

test('Type=notify: STATUS while starting, READY after etcd and the API, STOPPING on SIGTERM', {
  skip: !haveNotify && 'systemd-notify is not installed',
}, async () => {
  const sock = path.join(tempDir(), 'notify.sock');
  listener = await NotifyListener.start(sock);
  const l = listener;
  const s = await startServer({ env: { NOTIFY_SOCKET: sock } });
  let exited = 0;
  s.child.once('exit', () => {
    exited = Date.now();
  });

  const ready = await l.waitFor('READY=1', 90_000);
  // at the moment READY arrives the API serves and etcd answers
  const health = await apiRequest(`${s.url}/healthz`);
  assert.equal(health.status, 200, health.body);
  const readyLine = await s.ready();
  assert.ok(loggedAt(readyLine) <= ready.at, 'READY=1 comes after the "etcdsnap server ready" line');
  assert.match(ready.fields.find((f) => f.startsWith('STATUS=')) ?? '', /^STATUS=ready: etcd \d+\.\d+\.\d+, member node1-[0-9a-f]{8}, API on \S+:\d+$/);
  const before = l.messages().slice(0, l.messages().indexOf(ready));
  const statuses = before.flatMap((d) => d.fields.filter((f) => f.startsWith('STATUS=')));
  for (const want of [/^STATUS=starting etcd \(member /, /^STATUS=waiting for etcd to answer$/, /^STATUS=etcd .* answers; starting snapshots/]) {
    assert.ok(
      statuses.some((st) => want.test(st)),
      `${want} among ${JSON.stringify(statuses)}`,
    );
  }
  assert.ok(!before.some((d) => d.fields.includes('READY=1')));

  s.child.kill('SIGTERM');
  const stopping = await l.waitFor('STOPPING=1');
  assert.equal(await s.wait(), 0);
  assert.ok(exited === 0 || stopping.at <= exited, 'STOPPING=1 arrives before the process exits');
  const stoppedLine = s.lines.find((x) => x.msg === 'etcdsnap server stopped');
  assert.ok(stoppedLine);
  const later = l.messages().slice(l.messages().indexOf(stopping) + 1);
  assert.ok(
    later.some((d) => d.fields.includes('STATUS=stopping etcd')),
    'etcd is stopped after STOPPING=1',
  );
  assert.equal(l.messages().filter((d) => d.fields.includes('READY=1')).length, 1, 'one READY: etcd never notifies');
  if (process.getuid?.() === 0) {
    for (const d of l.messages()) assert.equal(d.pid, s.pid, `${d.fields.join(' ')} is sent as the server's PID`);
  }
});
