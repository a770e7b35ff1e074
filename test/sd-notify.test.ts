/**
 * util/sd-notify.ts against a real unix datagram socket (test/helpers/notify-listener.ts, a
 * python3 listener) through systemd's own systemd-notify: the fields arrive in call order,
 * with a path and with an abstract `@name` socket, attributed to this process when root;
 * nothing is sent without NOTIFY_SOCKET; a bad socket or a missing systemd-notify is reported,
 * never thrown; the sender sees no secret of ours; children never get NOTIFY_SOCKET.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { after, test } from 'node:test';
import { NO_NOTIFIER, serviceNotifier, statusLine, systemdNotifySender, validNotifySocket } from '../src/util/sd-notify.js';
import { childEnv, ETCD_PREFIXES, ETCD_TOOL_PREFIXES } from '../src/util/child-env.js';
import { daemonNotifier } from '../src/cli/daemon.js';
import type { Logger } from '../src/log/logger.js';
import { NotifyListener } from './helpers/notify-listener.js';
import { tempDir } from './helpers/server.js';

const haveNotify = spawnSync('systemd-notify', ['--version']).status === 0;
const listeners: NotifyListener[] = [];
after(() => {
  for (const l of listeners) l.close();
});

async function listen(address: string): Promise<NotifyListener> {
  const l = await NotifyListener.start(address);
  listeners.push(l);
  return l;
}

test('pure parts: STATUS on one line, which sockets are valid, no notifier without NOTIFY_SOCKET', () => {
  assert.equal(statusLine('a\nb\r\nc '), 'STATUS=a b c');
  assert.equal(validNotifySocket('/run/systemd/notify'), true);
  assert.equal(validNotifySocket('@abstract'), true);
  assert.equal(validNotifySocket('relative/sock'), false);
  assert.equal(validNotifySocket('@'), false);
  assert.equal(serviceNotifier({}), NO_NOTIFIER);
  assert.equal(serviceNotifier({ NOTIFY_SOCKET: '' }), NO_NOTIFIER);
  const errors: string[] = [];
  const n = serviceNotifier({ NOTIFY_SOCKET: 'not/absolute' }, { onError: (m) => errors.push(m) });
  assert.equal(n.enabled, false);
  assert.match(errors.join('\n'), /neither an absolute path nor @name/);
});

test('messages are sent one at a time in call order; a failed send is reported and does not throw', async () => {
  const sent: string[][] = [];
  const errors: string[] = [];
  let fail = true;
  const n = serviceNotifier(
    { NOTIFY_SOCKET: '/x' },
    {
      send: async (_socket, fields) => {
        await new Promise((r) => setTimeout(r, fields.includes('READY=1') ? 20 : 0));
        if (fail) {
          fail = false;
          throw new Error('boom');
        }
        sent.push([...fields]);
      },
      onError: (m) => {
        errors.push(m);
        throw new Error('a throwing reporter is contained too');
      },
    },
  );
  n.status('first');
  n.ready('up');
  n.stopping('down');
  await n.flush();
  assert.deepEqual(sent, [
    ['READY=1', 'STATUS=up'],
    ['STOPPING=1', 'STATUS=down'],
  ]);
  assert.equal(errors.length, 1);
  assert.match(errors[0] ?? '', /STATUS=first.*boom/);
});

test('a missing systemd-notify is reported once, then nothing is tried', async () => {
  const errors: string[] = [];
  const n = serviceNotifier({ NOTIFY_SOCKET: '/run/x' }, { send: systemdNotifySender('/nonexistent/systemd-notify'), onError: (m) => errors.push(m) });
  n.status('a');
  n.ready('b');
  await n.flush();
  assert.equal(errors.length, 1);
  assert.match(errors[0] ?? '', /not found/);
});

test('through systemd-notify to a path socket: fields in order, sent as this process when root', {
  skip: !haveNotify && 'systemd-notify is not installed',
}, async () => {
  const sock = path.join(tempDir(), 'notify.sock');
  const l = await listen(sock);
  const errors: string[] = [];
  const n = serviceNotifier({ NOTIFY_SOCKET: sock, ETCDSNAP_TOKEN: 'secret' }, { onError: (m) => errors.push(m) });
  assert.equal(n.enabled, true);
  n.status('starting etcd');
  n.ready('ready: line one\nline two');
  n.stopping('stopping');
  await n.flush();
  assert.deepEqual(errors, []);
  const got = l.messages().map((d) => d.fields.filter((f) => f !== ''));
  assert.deepEqual(got, [['STATUS=starting etcd'], ['READY=1', 'STATUS=ready: line one line two'], ['STOPPING=1', 'STATUS=stopping']]);
  // systemd-notify waits until the manager has read each message (its BARRIER=1 with a pipe)
  assert.equal(l.datagrams.filter((d) => d.fields.includes('BARRIER=1')).length, 3);
  if (process.getuid?.() === 0) {
    for (const d of l.messages()) assert.equal(d.pid, process.pid, 'as root, systemd-notify sends with its caller (the main PID) as sender');
  }
});

test('through systemd-notify to an abstract socket (@name)', { skip: !haveNotify && 'systemd-notify is not installed' }, async () => {
  const name = `@etcdsnap-test-${process.pid}-${Date.now()}`;
  const l = await listen(name);
  const n = serviceNotifier({ NOTIFY_SOCKET: name });
  n.ready('ready');
  await n.flush();
  assert.deepEqual(
    l.messages()[0]?.fields.filter((f) => f !== ''),
    ['READY=1', 'STATUS=ready'],
  );
});

test('the sender gets PATH and NOTIFY_SOCKET only; children we start never get NOTIFY_SOCKET', {
  skip: !haveNotify && 'systemd-notify is not installed',
}, async () => {
  // `env` as the "systemd-notify" binary prints what the sender's environment holds
  const dir = tempDir();
  const script = path.join(dir, 'fake-notify');
  const out = path.join(dir, 'env.txt');
  const { writeFileSync, readFileSync, chmodSync } = await import('node:fs');
  writeFileSync(script, `#!/bin/sh\nenv > ${out}\n`);
  chmodSync(script, 0o755);
  await systemdNotifySender(script, '/usr/bin:/bin')('/run/x', ['READY=1']);
  const env = readFileSync(out, 'utf8').trim().split('\n').sort();
  assert.deepEqual(
    env.filter((l) => !l.startsWith('PWD=') && !l.startsWith('SHLVL=') && !l.startsWith('_=')),
    ['NOTIFY_SOCKET=/run/x', 'PATH=/usr/bin:/bin'],
  );
  for (const prefixes of [ETCD_PREFIXES, ETCD_TOOL_PREFIXES, []]) {
    assert.equal(childEnv({ NOTIFY_SOCKET: '/run/systemd/notify', PATH: '/bin' }, prefixes).NOTIFY_SOCKET, undefined);
  }
});

test('the daemons take NOTIFY_SOCKET out of their environment once their notifier has it', () => {
  const warnings: string[] = [];
  const logger = { warn: (m: string) => warnings.push(m) } as unknown as Logger;
  const env: NodeJS.ProcessEnv = { NOTIFY_SOCKET: '/run/systemd/notify', PATH: '/bin' };
  const n = daemonNotifier(env, logger);
  assert.equal(n.enabled, true);
  assert.deepEqual(env, { PATH: '/bin' });
  assert.equal(daemonNotifier({ NOTIFY_SOCKET: 'bad' }, logger).enabled, false);
  assert.match(warnings.join('\n'), /NOTIFY_SOCKET=bad/);
});
