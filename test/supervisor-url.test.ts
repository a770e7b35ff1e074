/**
 * `etcd-snapshot` without `--etcd-server`: a running server (or agent, agent.test.ts) writes
 * its supervisor URL into `<data-dir>/server/supervisor-url` once its API listens, and the CLI
 * uses it, so `--data-dir` alone reaches a daemon on any `--supervisor-port`. The file goes
 * with the daemon; without it the CLI falls back to port 9345; a file that holds no https URL
 * is a one-line error naming it.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, statSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { killStarted, runCli, startReady } from './helpers/server.js';

after(() => killStarted());

test('the CLI finds a server on another port by the URL file in its data dir; the file is 0600 and goes with the server', async () => {
  const s = await startReady({ args: ['--etcd-disable-snapshots'] });
  const file = path.join(s.dataDir, 'server', 'supervisor-url');
  assert.equal(readFileSync(file, 'utf8'), `https://127.0.0.1:${s.ports.supervisor}\n`);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.notEqual(s.ports.supervisor, 9345, 'a port the default would miss');
  const cfg = path.join(path.dirname(s.dataDir), `config-${s.ports.supervisor}.yaml`);
  const cli = (args: string[]): ReturnType<typeof runCli> => runCli(['etcd-snapshot', ...args, '--config', cfg, '--data-dir', s.dataDir]);

  const saved = cli(['save']);
  assert.equal(saved.code, 0, saved.stderr);
  assert.match(saved.stdout, /^Snapshot on-demand-\S+ saved\.\n$/);

  // a file that holds no https URL: one line naming it, nothing asked of any server
  for (const bad of ['not a url\n', 'http://127.0.0.1:9345\n', 'https://127.0.0.1:1/path\n']) {
    writeFileSync(file, bad);
    const r = cli(['ls']);
    assert.equal(r.code, 1, r.stdout);
    assert.equal(
      r.stderr,
      `error: ${file} does not hold the supervisor's https URL; remove it (the server or agent writes it again when it starts) or pass --etcd-server\n`,
    );
  }
  writeFileSync(file, `https://127.0.0.1:${s.ports.supervisor}\n`);
  // --etcd-server wins over the file
  const flag = cli(['ls', '--etcd-server', 'https://127.0.0.1:1']);
  assert.equal(flag.code, 1);
  assert.match(flag.stderr, /cannot reach the etcdsnap server at https:\/\/127\.0\.0\.1:1 /);

  assert.equal(await s.stop(), 0);
  assert.equal(existsSync(file), false, 'removed when the server stops');
  const gone = cli(['ls']);
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /cannot reach the etcdsnap server at https:\/\/127\.0\.0\.1:9345 /, 'back to the default port');
});
