/**
 * `etcdsnap uninstall` (cli/uninstall-command.ts; docs/install.md "Uninstall"), run as the
 * checkout's bin/etcdsnap with `--root` on a temp tree laid out as install-etcdsnap.sh and
 * install-service leave a machine: both units, /etc/etcdsnap with a config naming its own
 * data dir and a snapshot dir outside it, the agent's default data dir. Without --purge the
 * units go and the config and data dirs stay, and it says so; with --purge they go too, the
 * outside snapshot dir stays and is named; a live etcdsnap holding a data dir's lock stops it
 * before anything is removed. The program itself (a checkout here) is left in place, and said
 * so: removing a global npm install is checked end to end in test/package.test.ts. The test
 * machines run no systemd, so the systemctl calls are checked through `uninstall`'s command
 * runner (recorded, in order, against the files): the units stopped before they are removed,
 * npm last.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { npmPrefixOf, uninstall } from '../src/cli/uninstall-command.js';
import { ROOT, runCli, tempDir } from './helpers/server.js';

/** A temp system tree as an install leaves it; returns its root. */
function installedTree(): string {
  const root = tempDir('etcdsnap-uninstall-');
  const units = path.join(root, 'etc/systemd/system');
  mkdirSync(units, { recursive: true });
  writeFileSync(path.join(units, 'etcdsnap.service'), '[Service]\n');
  writeFileSync(path.join(units, 'etcdsnap-agent.service'), '[Service]\n');
  writeFileSync(path.join(units, 'other.service'), '[Service]\n');
  mkdirSync(path.join(root, 'etc/etcdsnap'), { recursive: true });
  writeFileSync(path.join(root, 'etc/etcdsnap/config.yaml'), 'data-dir: /srv/etcdsnap\netcd-snapshot-dir: /backups/etcd\n', { mode: 0o600 });
  writeFileSync(path.join(root, 'etc/etcdsnap/etcdsnap.env'), 'ETCDSNAP_TOKEN=x\n', { mode: 0o600 });
  for (const d of ['srv/etcdsnap/server/db', 'var/lib/etcdsnap/agent', 'backups/etcd']) mkdirSync(path.join(root, d), { recursive: true });
  writeFileSync(path.join(root, 'srv/etcdsnap/server/token'), 'K10::server:x\n');
  writeFileSync(path.join(root, 'backups/etcd/on-demand-1'), 'snapshot');
  return root;
}

const at = (root: string, p: string): string => path.join(root, p);

test('uninstall: removes both units, keeps /etc/etcdsnap and the data dirs and says so; the checkout stays', () => {
  const root = installedTree();
  const r = runCli(['uninstall', '--root', root]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(existsSync(at(root, 'etc/systemd/system/etcdsnap.service')), false);
  assert.equal(existsSync(at(root, 'etc/systemd/system/etcdsnap-agent.service')), false);
  assert.equal(existsSync(at(root, 'etc/systemd/system/other.service')), true, 'another unit is not touched');
  assert.equal(readFileSync(at(root, 'srv/etcdsnap/server/token'), 'utf8'), 'K10::server:x\n', 'the data dir is kept');
  assert.equal(existsSync(at(root, 'var/lib/etcdsnap/agent')), true);
  assert.equal(existsSync(at(root, 'etc/etcdsnap/config.yaml')), true, 'the config is kept');
  assert.equal(existsSync(at(root, 'backups/etcd/on-demand-1')), true);
  assert.equal(
    r.stdout,
    [
      `--root ${root}: systemctl is not run`,
      `removed ${at(root, 'etc/systemd/system/etcdsnap.service')}`,
      `removed ${at(root, 'etc/systemd/system/etcdsnap-agent.service')}`,
      `kept ${at(root, 'etc/etcdsnap')} (config and secrets)`,
      `kept ${at(root, 'srv/etcdsnap')} (data dir: etcd data, certificates, token, local snapshots)`,
      `kept ${at(root, 'var/lib/etcdsnap/agent')} (data dir: etcd data, certificates, token, local snapshots)`,
      `not removed without --purge; to delete them later: rm -rf ${at(root, 'etc/etcdsnap')} ${at(root, 'srv/etcdsnap')} ${at(root, 'var/lib/etcdsnap/agent')}`,
      `kept ${at(root, 'backups/etcd')} (a snapshot dir outside the data dir: uninstall never removes it)`,
      `etcdsnap runs from ${ROOT}, not from a global npm install: the program is left in place`,
      '',
    ].join('\n'),
  );
  assert.equal(existsSync(path.join(ROOT, 'bin', 'etcdsnap')), true);
});

test('uninstall --purge: removes /etc/etcdsnap and the data dirs too; a snapshot dir outside them stays and is named', () => {
  const root = installedTree();
  const r = runCli(['uninstall', '--purge', '--root', root]);
  assert.equal(r.code, 0, r.stderr);
  for (const gone of ['etc/etcdsnap', 'srv/etcdsnap', 'var/lib/etcdsnap/agent', 'etc/systemd/system/etcdsnap.service']) {
    assert.equal(existsSync(at(root, gone)), false, `${gone} is removed`);
  }
  assert.equal(readFileSync(at(root, 'backups/etcd/on-demand-1'), 'utf8'), 'snapshot');
  assert.match(r.stdout, new RegExp(`^purged ${at(root, 'etc/etcdsnap')} \\(config and secrets\\)$`, 'm'));
  assert.match(r.stdout, new RegExp(`^purged ${at(root, 'srv/etcdsnap')} \\(data dir: etcd data, certificates, token, local snapshots\\)$`, 'm'));
  assert.match(r.stdout, new RegExp(`^kept ${at(root, 'backups/etcd')} \\(a snapshot dir outside the data dir`, 'm'));
  assert.doesNotMatch(r.stdout, /^kept .*\(data dir/m);
});

const holders: Array<ReturnType<typeof spawn>> = [];
after(() => {
  for (const h of holders) h.kill('SIGKILL');
});

test('uninstall --purge refuses while a live etcdsnap holds a data dir, before removing anything', async () => {
  const root = installedTree();
  // a live process whose command line names etcdsnap, as a server's lock file points to
  const holder = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1e6)', 'etcdsnap-server-stand-in'], { stdio: 'ignore' });
  holders.push(holder);
  await new Promise((resolve) => holder.once('spawn', resolve));
  writeFileSync(at(root, 'srv/etcdsnap/server/etcdsnap.pid'), `${holder.pid}\n`);
  const r = runCli(['uninstall', '--purge', '--root', root]);
  assert.equal(r.code, 1);
  assert.equal(r.stderr, `error: an etcdsnap server (pid ${holder.pid}) is still using ${at(root, 'srv/etcdsnap')}: stop it first; nothing was removed\n`);
  assert.equal(existsSync(at(root, 'etc/systemd/system/etcdsnap.service')), true);
  assert.equal(existsSync(at(root, 'srv/etcdsnap/server/token')), true);
  holder.kill('SIGKILL');
  await new Promise((resolve) => holder.once('exit', resolve));
  const again = runCli(['uninstall', '--purge', '--root', root]);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(existsSync(at(root, 'srv/etcdsnap')), false, 'a stale lock file (its process gone) does not stop it');
});

test('uninstall: --root must be absolute; npmPrefixOf finds the prefix of a global npm install only', () => {
  const r = runCli(['uninstall', '--root', 'relative/dir']);
  assert.equal(r.code, 1);
  assert.equal(r.stderr, 'error: --root "relative/dir" must be an absolute path\n');
  assert.equal(npmPrefixOf('/usr/lib/node_modules/etcdsnap'), '/usr');
  assert.equal(npmPrefixOf('/tmp/p/lib/node_modules/etcdsnap'), '/tmp/p');
  assert.equal(npmPrefixOf('/work/etcdsnap'), undefined);
  assert.equal(npmPrefixOf('/srv/node_modules/etcdsnap'), undefined, 'a local (not global) install is not removed with npm -g');
});

test('uninstall under systemd: disable --now before the unit files go, daemon-reload and reset-failed after, npm uninstall -g last', async () => {
  const root = installedTree();
  const calls: string[] = [];
  const lines: string[] = [];
  await uninstall({
    root,
    purge: false,
    systemd: true,
    packageDir: '/opt/node/lib/node_modules/etcdsnap',
    run: async (cmd, args) => {
      calls.push(`${cmd} ${args.join(' ')} [unit file ${existsSync(at(root, 'etc/systemd/system/etcdsnap.service')) ? 'present' : 'gone'}]`);
      return { code: 0, stderr: '' };
    },
    out: (line) => lines.push(line),
  });
  assert.deepEqual(calls, [
    'systemctl disable --now etcdsnap.service etcdsnap-agent.service [unit file present]',
    'systemctl daemon-reload [unit file gone]',
    'systemctl reset-failed etcdsnap.service etcdsnap-agent.service [unit file gone]',
    'npm uninstall --global --prefix /opt/node --loglevel=error --no-audit --no-fund etcdsnap [unit file gone]',
  ]);
  assert.equal(lines[0], 'stopped and disabled etcdsnap.service, etcdsnap-agent.service');
  assert.equal(lines.at(-1), 'removed the program (npm uninstall -g --prefix /opt/node etcdsnap)');
  assert.equal(existsSync(at(root, 'srv/etcdsnap/server/token')), true);

  const failing = installedTree();
  await assert.rejects(
    uninstall({
      root: failing,
      purge: true,
      systemd: true,
      packageDir: '/opt/node/lib/node_modules/etcdsnap',
      run: async () => ({ code: 1, stderr: 'Failed to disable unit: Access denied\n' }),
      out: () => {},
    }),
    /^EtcdsnapError: systemctl disable --now etcdsnap.service etcdsnap-agent.service failed: Failed to disable unit: Access denied$/,
  );
  assert.equal(existsSync(at(failing, 'srv/etcdsnap/server/token')), true, 'a failed stop removes nothing');
  assert.equal(existsSync(at(failing, 'etc/systemd/system/etcdsnap.service')), true);
});
