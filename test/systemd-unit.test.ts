/**
 * The systemd units of `etcdsnap install-service` (cli/systemd-unit.ts, cli/install-service-command.ts;
 * docs/systemd.md): the pure generator's directives for the server and the agent, escaping and
 * refused paths, no secret on ExecStart; `systemd-analyze verify` accepts both generated units
 * (skipped where systemd-analyze is missing); the command's dry run writes nothing, a real run
 * into a temp unit dir writes the unit 0644 and the secrets file 0600, never overwrites that
 * file, and refuses bad paths with a message naming the flag. No server is started.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { installService, type InstallServiceInput } from '../src/cli/install-service-command.js';
import { distinctPaths, systemdUnit, type UnitInput, unitPathProblem } from '../src/cli/systemd-unit.js';
import { BIN, runCli, tempDir } from './helpers/server.js';

const haveAnalyze = spawnSync('systemd-analyze', ['--version']).status === 0;

const base: UnitInput = {
  kind: 'server',
  execPath: '/usr/local/lib/etcdsnap/bin/etcdsnap',
  configFile: '/etc/etcdsnap/config.yaml',
  envFile: '/etc/etcdsnap/etcdsnap.env',
  writablePaths: ['/var/lib/etcdsnap'],
};

/** The directives of a unit as [key, value] pairs, comments and sections left out. */
const directives = (unit: string): Array<[string, string]> =>
  unit
    .split('\n')
    .filter((l) => l.includes('=') && !l.startsWith('#'))
    .map((l): [string, string] => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]);
const value = (unit: string, key: string): string[] =>
  directives(unit)
    .filter(([k]) => k === key)
    .map(([, v]) => v);

test('the server unit: Type=notify, KillMode=mixed, restart limits, LimitNOFILE, secrets file, hardening', () => {
  const unit = systemdUnit(base);
  const expected: Record<string, string> = {
    Type: 'notify',
    NotifyAccess: 'all',
    ExecStart: '/usr/local/lib/etcdsnap/bin/etcdsnap server --config /etc/etcdsnap/config.yaml',
    EnvironmentFile: '-/etc/etcdsnap/etcdsnap.env',
    KillMode: 'mixed',
    TimeoutStartSec: 'infinity',
    Restart: 'always',
    RestartSec: '5s',
    StartLimitIntervalSec: '600',
    StartLimitBurst: '30',
    LimitNOFILE: '1048576',
    StateDirectory: 'etcdsnap',
    StateDirectoryMode: '0700',
    NoNewPrivileges: 'yes',
    ProtectSystem: 'strict',
    ProtectHome: 'yes',
    PrivateTmp: 'yes',
    WantedBy: 'multi-user.target',
  };
  for (const [k, v] of Object.entries(expected)) assert.deepEqual(value(unit, k), [v], k);
  assert.deepEqual(value(unit, 'ReadWritePaths'), [], 'the data dir under /var/lib is a StateDirectory');
  assert.deepEqual(value(unit, 'Environment'), [], 'node is on systemd’s PATH: no PATH line');
  // the [Unit] section holds the start limits (systemd ignores them in [Service])
  assert.ok(unit.indexOf('StartLimitBurst') < unit.indexOf('[Service]'));
});

test('the agent unit is the same function: its own ExecStart, data dir and files', () => {
  const unit = systemdUnit({
    ...base,
    kind: 'agent',
    configFile: '/etc/etcdsnap/agent.yaml',
    envFile: '/etc/etcdsnap/agent.env',
    writablePaths: ['/var/lib/etcdsnap/agent'],
  });
  assert.deepEqual(value(unit, 'ExecStart'), ['/usr/local/lib/etcdsnap/bin/etcdsnap agent --config /etc/etcdsnap/agent.yaml']);
  assert.deepEqual(value(unit, 'StateDirectory'), ['etcdsnap/agent']);
  assert.deepEqual(value(unit, 'Type'), ['notify']);
  assert.match(unit, /^Description=etcdsnap agent/m);
});

test('writable paths: outside /var/lib as ReadWritePaths, nested ones dropped, home folders lift ProtectHome', () => {
  const table: Array<{ paths: string[]; state: string[]; rw: string[]; protectHome: string[] }> = [
    { paths: ['/var/lib/etcdsnap', '/var/lib/etcdsnap/server/db/snapshots'], state: ['etcdsnap'], rw: [], protectHome: ['yes'] },
    { paths: ['/srv/etcdsnap', '/backup/etcd'], state: [], rw: ['/srv/etcdsnap /backup/etcd'], protectHome: ['yes'] },
    { paths: ['/var/lib/etcdsnap', '/mnt/snaps', '/mnt/snaps/'], state: ['etcdsnap'], rw: ['/mnt/snaps'], protectHome: ['yes'] },
    { paths: ['/root/etcdsnap'], state: [], rw: ['/root/etcdsnap'], protectHome: [] },
    { paths: ['/var/lib/etcdsnap', '/home/ops/snaps'], state: ['etcdsnap'], rw: ['/home/ops/snaps'], protectHome: [] },
  ];
  for (const row of table) {
    const unit = systemdUnit({ ...base, writablePaths: row.paths });
    assert.deepEqual(value(unit, 'StateDirectory'), row.state, JSON.stringify(row.paths));
    assert.deepEqual(value(unit, 'ReadWritePaths'), row.rw, JSON.stringify(row.paths));
    assert.deepEqual(value(unit, 'ProtectHome'), row.protectHome, JSON.stringify(row.paths));
  }
  assert.deepEqual(distinctPaths(['/a/b', '/a', '/ab', '/a/']), ['/a', '/ab']);
});

test('escaping: % as %%, $ on ExecStart as $$; paths a unit cannot hold are refused', () => {
  const unit = systemdUnit({ ...base, execPath: '/opt/100%/bin/etcdsnap', configFile: '/etc/$x/c.yaml', envFile: '/etc/e%n.env' });
  assert.deepEqual(value(unit, 'ExecStart'), ['/opt/100%%/bin/etcdsnap server --config /etc/$$x/c.yaml']);
  assert.deepEqual(value(unit, 'EnvironmentFile'), ['-/etc/e%%n.env']);
  for (const bad of ['relative/x', '/with space', '/tab\there', '/quote"d', "/quote'd", '/back\\slash', '/new\nline']) {
    assert.ok(unitPathProblem(bad), bad);
    assert.throws(() => systemdUnit({ ...base, configFile: bad }), /bug: unit path/);
  }
  assert.equal(unitPathProblem('/etc/etcdsnap/config.yaml'), undefined);
  const withPath = systemdUnit({ ...base, pathEnv: '/opt/node/bin:/usr/bin' });
  assert.deepEqual(value(withPath, 'Environment'), ['PATH=/opt/node/bin:/usr/bin']);
});

test('no secret on ExecStart: only the config file is named', () => {
  const exec = value(systemdUnit(base), 'ExecStart')[0] ?? '';
  assert.doesNotMatch(exec, /token|secret|AWS_|--etcd-s3-(access|secret)/i);
  assert.deepEqual(exec.split(' ').slice(1), ['server', '--config', '/etc/etcdsnap/config.yaml']);
});

/** A temp layout for install-service: a unit dir, /etc-like folder, and the real bin/etcdsnap. */
function layout(extra: Partial<InstallServiceInput> = {}): { input: InstallServiceInput; lines: string[]; dir: string } {
  const dir = tempDir();
  mkdirSync(path.join(dir, 'units'));
  const lines: string[] = [];
  return {
    dir,
    lines,
    input: {
      kind: 'server',
      unitDir: path.join(dir, 'units'),
      configFile: path.join(dir, 'etc', 'config.yaml'),
      envFile: path.join(dir, 'etc', 'etcdsnap.env'),
      readWritePaths: [],
      dryRun: false,
      execPath: BIN,
      nodePath: process.execPath,
      out: (l) => lines.push(l),
      ...extra,
    },
  };
}

const mode = (f: string): string => (statSync(f).mode & 0o777).toString(8);

test('install-service --dry-run prints the unit and writes nothing', async () => {
  const { input, lines, dir } = layout({ dryRun: true });
  await installService(input);
  const text = lines.join('\n');
  assert.match(text, /dry run: nothing is written/);
  assert.match(text, /^ {2}Type=notify$/m);
  assert.match(text, /would create .*etcdsnap\.env \(0600/);
  assert.match(text, /systemctl daemon-reload && systemctl enable --now etcdsnap$/m);
  assert.equal(existsSync(path.join(dir, 'units', 'etcdsnap.service')), false);
  assert.equal(existsSync(path.join(dir, 'etc')), false);
});

test('install-service: unit 0644, secrets file 0600 never overwritten, config dirs from the config file', async () => {
  const { input, lines, dir } = layout({ readWritePaths: [] });
  const snaps = path.join(dir, 'snaps');
  mkdirSync(path.join(dir, 'etc'));
  writeFileSync(input.configFile, `data-dir: /var/lib/etcdsnap\netcd-snapshot-dir: ${snaps}\n`);
  await installService(input);
  const unitFile = path.join(dir, 'units', 'etcdsnap.service');
  assert.equal(mode(unitFile), '644');
  assert.equal(mode(input.envFile), '600');
  assert.match(readFileSync(input.envFile, 'utf8'), /^#ETCDSNAP_TOKEN=$/m);
  assert.equal(mode(snaps), '700', 'a ReadWritePaths folder is created: systemd refuses a missing one');
  const unit = readFileSync(unitFile, 'utf8');
  assert.deepEqual(value(unit, 'ReadWritePaths'), [snaps]);
  assert.deepEqual(value(unit, 'ExecStart'), [`${BIN} server --config ${input.configFile}`]);
  assert.match(lines.join('\n'), /wrote .*etcdsnap\.service \(0644\)/);
  // a second run keeps the secrets (and tightens a file others can read)
  writeFileSync(input.envFile, 'ETCDSNAP_TOKEN=keep-me\n');
  chmodSync(input.envFile, 0o644);
  lines.length = 0;
  await installService(input);
  assert.equal(readFileSync(input.envFile, 'utf8'), 'ETCDSNAP_TOKEN=keep-me\n');
  assert.equal(mode(input.envFile), '600');
  assert.match(lines.join('\n'), /kept .*etcdsnap\.env \(it exists\); its mode was 0644, now 0600/);
  assert.doesNotMatch(readFileSync(unitFile, 'utf8'), /keep-me/);
});

test('install-service refuses bad paths, naming the flag, and writes nothing', async () => {
  const cases: Array<[Partial<InstallServiceInput>, RegExp]> = [
    [{ configFile: 'etc/config.yaml' }, /--config "etc\/config\.yaml" is not an absolute path/],
    [{ envFile: '/etc/my secrets.env' }, /--environment-file .* has whitespace/],
    [{ readWritePaths: ['/snap"s'] }, /--read-write-path .* a quote/],
    [{ unitDir: '/nonexistent/units' }, /unit dir \/nonexistent\/units is not a folder/],
    [{ execPath: '/nonexistent/etcdsnap' }, /not an executable file/],
  ];
  for (const [over, re] of cases) {
    const { input, dir } = layout(over);
    await assert.rejects(installService(input), re);
    assert.equal(existsSync(path.join(dir, 'units', 'etcdsnap.service')), false);
  }
  const { input } = layout();
  mkdirSync(path.dirname(input.configFile));
  writeFileSync(input.configFile, 'data-dir: var/lib/x\n');
  await assert.rejects(installService(input), /config file .*: data-dir "var\/lib\/x" is not an absolute path/);
});

test('etcdsnap install-service from the CLI; systemd-analyze verify accepts the server and agent units', async (t) => {
  const dir = tempDir();
  mkdirSync(path.join(dir, 'units'));
  for (const agent of [false, true]) {
    const r = runCli([
      'install-service',
      ...(agent ? ['--agent'] : []),
      '--unit-dir',
      path.join(dir, 'units'),
      '--config',
      path.join(dir, 'etc', agent ? 'agent.yaml' : 'config.yaml'),
      '--environment-file',
      path.join(dir, 'etc', agent ? 'agent.env' : 'etcdsnap.env'),
      '--read-write-path',
      path.join(dir, 'snaps'),
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, agent ? /systemctl enable --now etcdsnap-agent$/m : /systemctl enable --now etcdsnap$/m);
  }
  if (!haveAnalyze) {
    t.skip('systemd-analyze is not installed');
    return;
  }
  for (const name of ['etcdsnap.service', 'etcdsnap-agent.service']) {
    const r = spawnSync('systemd-analyze', ['verify', path.join(dir, 'units', name)], { encoding: 'utf8' });
    assert.equal(r.status, 0, `${name}: ${r.stderr}`);
    assert.equal(r.stderr.trim(), '', `${name}: ${r.stderr}`);
  }
});
