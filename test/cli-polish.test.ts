/**
 * Small surprises of the CLI (issue: day-2 polish, point 7): the cron message says what is
 * accepted; a mistyped subcommand is an unknown command with a suggestion; help lists every
 * alias of ls; prune says when nothing goes; etcd's client port given as --etcd-server is
 * named as such in one line; request flags given to a subcommand that sends no request are refused.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { parseSchedule } from '../src/server/schedule.js';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { killStarted, runCli, snapshotCli, startReady, tempDir, type ServerProcess } from './helpers/server.js';

after(() => killStarted());

/** The one `error: ` line of a failed command (and that there is only one line on stderr). */
function oneError(r: { code: number | null; stdout: string; stderr: string }): string {
  assert.equal(r.code, 1, `${r.stdout}${r.stderr}`);
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0] ?? '', /^error: /);
  return lines[0] ?? '';
}

test('the cron message says what is accepted: exactly 5 fields (as robfig/cron in k3s), never "six or seven"', () => {
  for (const [spec, found] of [
    ['every day', 2],
    ['0 0 * * * *', 6],
    ['0 0 0 * * * *', 7],
    ['* *', 2],
  ] as const) {
    assert.throws(
      () => parseSchedule(spec),
      (err: Error) => {
        assert.match(
          err.message,
          new RegExp(
            `expected exactly 5 fields \\(minute hour day-of-month month day-of-week\\), found ${found}; or use @hourly, @daily\\.\\.\\. or @every <duration>$`,
          ),
        );
        assert.doesNotMatch(err.message, /six|seven/);
        return true;
      },
      spec,
    );
  }
  assert.ok(parseSchedule('0 */12 * * *').next(new Date()));
  assert.ok(parseSchedule('CRON_TZ=UTC 30 2 * * 1-5').next(new Date()));
  assert.ok(parseSchedule('@every 90s').next(new Date()));
  // the server says the same in one line
  const line = oneError(runCli(['server', '--etcd-snapshot-schedule-cron', '0 0 * * * *']));
  assert.equal(
    line,
    'error: invalid snapshot schedule "0 0 * * * *" (--etcd-snapshot-schedule-cron): expected exactly 5 fields (minute hour day-of-month month day-of-week), found 6; or use @hourly, @daily... or @every <duration>',
  );
});

test('a mistyped subcommand is an unknown command with a suggestion; save with an argument still says so; help lists ls|list|l', () => {
  assert.equal(oneError(runCli(['etcd-snapshot', 'sav'])), "error: unknown command 'sav' for etcd-snapshot; did you mean save?");
  assert.equal(
    oneError(runCli(['etcd-snapshot', 'lss', '--etcd-server', 'https://127.0.0.1:1'])),
    "error: unknown command 'lss' for etcd-snapshot; did you mean ls?",
  );
  assert.equal(oneError(runCli(['etcd-snapshot', 'purne'])), "error: unknown command 'purne' for etcd-snapshot; did you mean prune?");
  assert.equal(
    oneError(runCli(['etcd-snapshot', 'backup'])),
    "error: unknown command 'backup' for etcd-snapshot; use save, ls (list, l), delete, prune, drill, changelog, restore, defrag, compact, alarm, status, keys, get, stats, diff or restore-keys",
  );
  assert.equal(oneError(runCli(['etcd-snapshot', 'save', 'extra'])), 'error: save does not take arguments (got extra); use --name for the snapshot name');

  const help = runCli(['etcd-snapshot', '--help']);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /^ {2}ls\|list\|l \[options\] +List snapshots$/m);
  assert.match(help.stdout, /^ {2}save \[options\] +Trigger an immediate etcd snapshot$/m);
});

test('subcommands that send no request refuse its flags on the command line (they would be ignored); from the config file they stay quiet', () => {
  const dir = tempDir();
  const cfg = path.join(dir, 'config.yaml');
  // the server's S3 settings in the shared config file: not a request, no refusal (the run fails later, at the token)
  writeFileSync(cfg, 'etcd-s3: true\netcd-s3-bucket: shared\n');
  const at = ['--config', cfg, '--data-dir', path.join(dir, 'none')];
  assert.equal(
    oneError(runCli(['etcd-snapshot', 'drill', '--s3-bucket', 'other', '--dir', '/tmp', ...at])),
    "error: drill does not take --dir, --s3-bucket: it drills from the server's own snapshot folder and S3 settings; drop them",
  );
  assert.equal(
    oneError(runCli(['etcd-snapshot', 'changelog', 'ls', '--s3', ...at])),
    "error: changelog ls does not take --s3: it reads the server's own change log settings; drop it",
  );
  assert.equal(
    oneError(runCli(['etcd-snapshot', 'alarm', 'list', '--name', 'x', ...at])),
    'error: alarm list does not take --name: it works on etcd, not on snapshots; drop it',
  );
  for (const sub of [['defrag'], ['compact'], ['alarm', 'disarm']]) {
    assert.match(
      oneError(runCli(['etcd-snapshot', ...sub, '--snapshot-compress', ...at])),
      /does not take --snapshot-compress: it works on etcd, not on snapshots; drop it$/,
    );
  }
  // from the config file only: past the check, to the token
  assert.match(oneError(runCli(['etcd-snapshot', 'drill', ...at])), /^error: cannot read the token from /);
});

test("against a server: prune says when nothing goes; --etcd-server at etcd's client port is a one-line error naming the supervisor port", async () => {
  const s: ServerProcess = await startReady({ args: ['--etcd-disable-snapshots'] });
  const none = snapshotCli(s, ['prune']);
  assert.equal(none.code, 0, none.stderr);
  assert.equal(none.stdout, 'No snapshots to prune (prefix on-demand, retention 5).\n');
  const dry = snapshotCli(s, ['prune', '--dry-run', '--name', 'nightly', '--snapshot-retention', '2']);
  assert.equal(dry.code, 0, dry.stderr);
  assert.equal(dry.stdout, 'No snapshots would be pruned (prefix nightly, retention 2).\n');

  const etcdURL = `https://127.0.0.1:${s.ports.client}`;
  const expected = `error: ${etcdURL} does not look like an etcdsnap supervisor API (TLS handshake failed: `;
  // the full token (the local CA file has its hash) and a bare secret (the CA file is used)
  const secret = s.token().split('::server:')[1] ?? '';
  const envs: Array<Record<string, string>> = [{}, { ETCDSNAP_ETCD_TOKEN: secret }];
  for (const env of envs) {
    const line = oneError(snapshotCli(s, ['ls', '-s', etcdURL], env));
    assert.ok(line.startsWith(expected), line);
    assert.ok(line.endsWith("); point --etcd-server at the server's supervisor port (--supervisor-port, 9345 by default), not etcd's client port"), line);
    assert.doesNotMatch(line, /SSL routines|openssl|:\d+:SSL alert/, 'no raw OpenSSL text');
  }
  assert.equal(await s.stop(), 0);
});
