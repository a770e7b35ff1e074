/**
 * Progress of long CLI work (issue 15, part 3): `etcd-snapshot save`, a restore from S3 and
 * the decoding of an encoded snapshot show bytes, rate and ETA; a bar on a terminal (a real
 * pty from util-linux `script`), plain lines otherwise, nothing with --quiet. The pure
 * formatting and the polling logic are unit-tested beside the real runs.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { stripVTControlCharacters } from 'node:util';
import { formatBytes, formatSeconds, progressDoneLine, progressLine, progressMode, progressReporter } from '../src/cli/progress.js';
import { withSaveProgress } from '../src/cli/save-progress.js';
import { EtcdsnapError } from '../src/errors.js';
import type { ProgressReporter } from '../src/util/progress.js';
import { BIN, cleanEnv, fillEtcd, killStarted, snapshotCli, snapshotCliAsync, startReady, tempDir, type ServerProcess } from './helpers/server.js';
import { reset } from './helpers/restore.js';
import { s3CliFlags, s3ServerFlags, startSwift, type Swift } from './helpers/swift.js';

test('progressMode: nothing when quiet, a bar on a terminal, lines otherwise', () => {
  assert.equal(progressMode(true, true), 'none');
  assert.equal(progressMode(true, false), 'none');
  assert.equal(progressMode(false, true), 'bar');
  assert.equal(progressMode(false, false), 'lines');
  assert.equal(progressMode(false, undefined), 'lines');
});

test('formatBytes and formatSeconds', () => {
  assert.equal(formatBytes(0), '0 B');
  assert.equal(formatBytes(1023), '1023 B');
  assert.equal(formatBytes(1024), '1.0 KiB');
  assert.equal(formatBytes(1.5 * 1024 * 1024), '1.5 MiB');
  assert.equal(formatBytes(3 * 1024 ** 3), '3.0 GiB');
  assert.equal(formatSeconds(0), '0s');
  assert.equal(formatSeconds(44.6), '45s');
  assert.equal(formatSeconds(185), '3m05s');
  assert.equal(formatSeconds(3720), '1h02m');
});

test('progressLine: bytes of a total with percent, rate and ETA; no ETA without a total', () => {
  const MiB = 1024 * 1024;
  assert.equal(progressLine('saving x', 100 * MiB, 400 * MiB, 50 * MiB), 'saving x: 100.0 MiB of 400.0 MiB (25%), 50.0 MiB/s, ETA 6s');
  assert.equal(progressLine('saving x', 100 * MiB, undefined, 50 * MiB), 'saving x: 100.0 MiB, 50.0 MiB/s');
  assert.equal(progressLine('saving x', 0, 400 * MiB, undefined), 'saving x: 0 B of 400.0 MiB (0%)');
  // more than the estimate (etcd's db size is only about the snapshot's size): capped, no ETA
  assert.equal(progressLine('saving x', 500 * MiB, 400 * MiB, 500 * MiB), 'saving x: 500.0 MiB of 400.0 MiB (100%), 500.0 MiB/s');
  assert.equal(progressDoneLine('saving x', 100 * MiB, 4000, 25 * MiB), 'saving x: done, 100.0 MiB in 4s, 25.0 MiB/s');
  assert.equal(progressDoneLine('saving x', 100 * MiB, 4000, undefined), 'saving x: done, 100.0 MiB in 4s');
  assert.equal(progressDoneLine('saving x', 10 * MiB, 4000, 1, false), 'saving x: stopped after 10.0 MiB in 4s');
});

test('lines: one at the start, then at most one per interval, one at the end; rates count from the first update', () => {
  let now = 1000;
  const lines: string[] = [];
  const r = progressReporter({ mode: 'lines', line: (t) => lines.push(t), intervalMs: 5000, showAfterMs: 0, now: () => now });
  const task = r.start('downloading s', 10 * 1024 * 1024);
  task.update(0);
  for (let i = 1; i <= 10; i++) {
    now += 1000;
    task.update(i * 1024 * 1024);
  }
  task.done();
  task.update(99);
  task.done();
  assert.deepEqual(lines, [
    'downloading s: started, 10.0 MiB',
    'downloading s: 5.0 MiB of 10.0 MiB (50%), 1.0 MiB/s, ETA 5s',
    'downloading s: 10.0 MiB of 10.0 MiB (100%), 1.0 MiB/s',
    'downloading s: done, 10.0 MiB in 10s, 1.0 MiB/s',
  ]);
  assert.equal(progressReporter({ mode: 'none' }).start('x', 1).update(1), undefined);
});

test('a task shows nothing until it has run showAfterMs: a quick one (or a quick refusal) prints no line', () => {
  let now = 0;
  const lines: string[] = [];
  const r = progressReporter({ mode: 'lines', line: (t) => lines.push(t), now: () => now });
  const quick = r.start('decrypting a', 2048);
  now = 300;
  quick.update(2048);
  quick.done(false);
  assert.deepEqual(lines, [], 'default showAfterMs 1 s: nothing for a task of 0.3 s');
  const slow = r.start('saving b', 4096);
  now = 800;
  slow.update(1024);
  now = 1300;
  slow.update(2048);
  now = 2300;
  slow.done(true);
  assert.deepEqual(lines, ['saving b: started, 4.0 KiB', 'saving b: done, 2.0 KiB in 2s, 683 B/s']);
});

/** A reporter that records what it was told. */
function recorder(): { reporter: ProgressReporter; events: string[] } {
  const events: string[] = [];
  return {
    events,
    reporter: {
      start: (label, total) => {
        events.push(`start ${label} ${total}`);
        return { update: (b) => events.push(`update ${b}`), done: (ok) => events.push(`done ${ok}`) };
      },
    },
  };
}

test('withSaveProgress: polls while the save runs, starts at the first running save, ends with it', async () => {
  const answers: unknown[] = [
    { saving: false },
    { saving: true, name: 'n', phase: 'streaming', bytes: 10, totalBytes: 100, startedAt: 't', scheduled: false },
    { saving: true, name: 'n', phase: 'committing', bytes: 100, totalBytes: 100, startedAt: 't', scheduled: false },
  ];
  let finish: (v: string) => void = () => undefined;
  const run = new Promise<string>((r) => (finish = r));
  const { reporter, events } = recorder();
  let asked = 0;
  const source = {
    get: (p: string): Promise<unknown> => {
      assert.equal(p, '/db/snapshot/progress');
      const a = answers[asked++];
      if (asked === answers.length) setImmediate(() => finish('result'));
      return Promise.resolve(a);
    },
  };
  assert.equal(await withSaveProgress(source, reporter, run, 1), 'result');
  assert.deepEqual(events, ['start saving n 100', 'update 10', 'update 100', 'done true']);
});

test('withSaveProgress: a failed save stops the task and rethrows; a 404 stops the polling', async () => {
  const { reporter, events } = recorder();
  let fail: (e: Error) => void = () => undefined;
  const run = new Promise<string>((_, rej) => (fail = rej));
  const source = {
    get: (): Promise<unknown> => {
      setImmediate(() => fail(new Error('boom')));
      return Promise.resolve({ saving: true, name: 'n', phase: 'streaming', bytes: 5, totalBytes: 9, startedAt: 't', scheduled: true });
    },
  };
  await assert.rejects(withSaveProgress(source, reporter, run, 1), /boom/);
  assert.deepEqual(events, ['start saving n 9', 'update 5', 'done false']);

  let asked = 0;
  const old = {
    get: (): Promise<unknown> => {
      asked++;
      return Promise.reject(new EtcdsnapError('not-found', 'no route'));
    },
  };
  let finish: (v: number) => void = () => undefined;
  const slow = new Promise<number>((r) => (finish = r));
  const done = withSaveProgress(old, recorder().reporter, slow, 1);
  await new Promise((r) => setTimeout(r, 50));
  finish(7);
  assert.equal(await done, 7);
  assert.equal(asked, 1, 'no more polls after a 404');
});

// ---- real runs: a server with ~200 MiB in etcd, so that a save takes long enough to be seen
let swift: Swift;
let s: ServerProcess;
const env = (): Record<string, string> => ({ AWS_ACCESS_KEY_ID: swift.accessKey, AWS_SECRET_ACCESS_KEY: swift.secretKey });

before(async () => {
  swift = await startSwift();
  await swift.createBucket('progress');
  s = await startReady({ args: ['--etcd-disable-snapshots', '--etcd-s3-timeout', '5m', ...s3ServerFlags(swift, 'progress', 'p')], env: env() });
  await fillEtcd(s, 200, 1024 * 1024);
});
after(async () => {
  killStarted();
  await swift?.stop();
});

const savedName = (stdout: string): string => /^Snapshot (\S+) saved\./m.exec(stdout)?.[1] ?? '';

test('save without a terminal: plain progress lines on stderr (started, bytes of about the db size, done)', async () => {
  const r = await snapshotCliAsync(s, ['save']);
  assert.equal(r.code, 0, r.stderr);
  const name = savedName(r.stdout);
  assert.match(r.stderr, new RegExp(`^saving ${name}: started, \\d+\\.\\d MiB$`, 'm'));
  assert.match(r.stderr, new RegExp(`^saving ${name}: done, \\d+\\.\\d MiB in \\d+s, \\d+\\.\\d [KMG]iB/s$`, 'm'));
  assert.equal(r.stdout, `Snapshot ${name} saved.\n`, 'stdout keeps only the result');
});

test('save --quiet: no progress at all', () => {
  const r = snapshotCli(s, ['save', '--quiet']);
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /saving/);
});

test('save on a terminal: a bar with percent, bytes, rate and ETA, then the done line', () => {
  const cfg = path.join(path.dirname(s.dataDir), `config-${s.ports.supervisor}.yaml`);
  const cmd = [process.execPath, BIN, 'etcd-snapshot', 'save', '--config', cfg, '--data-dir', s.dataDir, '--etcd-server', s.url].map((a) => `'${a}'`).join(' ');
  // util-linux script runs the command on a real pty (stdout and stderr are a TTY)
  const r = spawnSync('script', ['-qefc', cmd, '/dev/null'], { env: cleanEnv({ COLUMNS: '120', TERM: 'xterm' }), encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  const name = savedName(stripVTControlCharacters(r.stdout).replace(/\r/g, '\n'));
  assert.ok(name !== '', r.stdout);
  assert.match(r.stdout, new RegExp(`saving ${name} \\[[=-]+\\] \\d+% \\| [\\d.]+ MiB of [\\d.]+ MiB \\| [\\d.]+ [KMG]iB/s \\| ETA `));
  assert.match(r.stdout, new RegExp(`saving ${name}: done, `));
});

test('restore from S3 by name: download progress in the log (JSON stays JSON); --quiet shows none', async () => {
  const r = snapshotCli(s, ['save', '--quiet', '--snapshot-compression', 'zstd', ...s3CliFlags(swift, 'progress', 'p')], env());
  assert.equal(r.code, 0, r.stderr);
  const name = savedName(r.stdout);
  const empty = path.join(tempDir(), 'empty-snapshots');
  mkdirSync(empty);
  const resetArgs = (quiet: boolean): string[] => [
    ...s3ServerFlags(swift, 'progress', 'p'),
    '--etcd-snapshot-dir',
    empty,
    `--cluster-reset-restore-path=${name}`,
    ...(quiet ? ['--quiet'] : []),
  ];
  assert.equal(await s.stop(), 0);
  {
    const loud = reset(s.dataDir, s.ports, resetArgs(false), env());
    assert.equal(loud.code, 0, loud.stderr);
    const msgs = loud.stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => (JSON.parse(l) as { msg: string }).msg);
    assert.ok(
      msgs.some((m) => new RegExp(`^downloading ${name}: started, [\\d.]+ MiB$`).test(m)),
      msgs.join('\n'),
    );
    assert.ok(msgs.some((m) => new RegExp(`^downloading ${name}: done, `).test(m)));
    assert.ok(msgs.some((m) => new RegExp(`^decompressing ${name} \\(zstd\\): done, `).test(m)));
    assert.ok(
      loud.stderr.split('\n').every((l) => l === '' || l.startsWith('{')),
      'every stderr line is a JSON log line',
    );
    // again, quietly: the file is now in the snapshot dir, so only decoding runs (and shows nothing)
    const quiet = reset(s.dataDir, s.ports, resetArgs(true), env());
    assert.equal(quiet.code, 0, quiet.stderr);
    assert.doesNotMatch(quiet.stderr, /decompressing|downloading/);
  }
});
