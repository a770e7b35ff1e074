/**
 * Unit tests of the option machinery at its edges: value parsers (config/values.ts), spec
 * checks (config/checks.ts), schema helpers (config/schema.ts), resolution and precedence
 * (config/resolve.ts), and the token format and strength policy (etcd/token.ts). Written to
 * kill the mutants `npm run mutate` found alive (docs/mutation-testing.md). Only temp files.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { checkAbsoluteDirs, checkEtcdArg, checkIP, checkJoinURL, checkNodeName, checkPrefix, RETENTION, S3_TIMEOUT } from '../src/config/checks.js';
import { addOptions, normalizeBooleanArgs, resolveValues, secretFlagWarning, Values } from '../src/config/resolve.js';
import {
  CLI_S3_OPTIONS,
  checkChoices,
  checkValue,
  DEFAULT_CONFIG_FILE,
  defaultDataDir,
  findSpec,
  numberDefault,
  type OptionSpec,
  SERVER_OPTIONS,
  SERVER_S3_OPTIONS,
  SNAPSHOT_CLI_OPTIONS,
  specOf,
  stringDefault,
} from '../src/config/schema.js';
import { formatDuration, parseBoolean, parseCount, parseDuration, parseInteger, parsePort, parseValue, valueFromJson, within } from '../src/config/values.js';
import { caHash, MIN_SECRET_LENGTH, newSecret, parseToken, secretStrength, tokenFromHash } from '../src/etcd/token.js';
import { tempDir } from './helpers/server.js';

const msg = (re: RegExp) => (e: unknown) => e instanceof Error && re.test(e.message);

test('parseBoolean: the k3s spellings, any case, trimmed', () => {
  for (const t of ['true', '1', 'yes', 'on', 't', ' TRUE ', 'Yes']) assert.equal(parseBoolean(t), true, t);
  for (const f of ['false', '0', 'no', 'off', 'f', ' F ', 'OFF']) assert.equal(parseBoolean(f), false, f);
  for (const bad of ['', 'y', 'n', '2', 'truee']) assert.throws(() => parseBoolean(bad), msg(/^".*" is not a boolean \(use true or false\)$/), bad);
});

test('integers, counts and ports: whole numbers, trimmed, in range, each with its message', () => {
  assert.equal(parseInteger(' -5 '), -5);
  assert.equal(parseInteger('0'), 0);
  for (const bad of ['', '1.5', '5x', 'x5', '+5', '--5', '1e3']) assert.throws(() => parseInteger(bad), msg(/^".*" is not an integer$/), bad);
  assert.throws(() => parseInteger('9007199254740993'), msg(/^"9007199254740993" is out of range$/));
  assert.equal(parseInteger('9007199254740991'), 9_007_199_254_740_991);
  assert.equal(parseCount('0'), 0);
  assert.equal(parseCount('7'), 7);
  assert.throws(() => parseCount('-1'), msg(/^-1 is negative; use 0 or more \(0 disables pruning\)$/));
  assert.throws(() => parseCount('x'), msg(/^"x" is not a whole number$/));
  assert.equal(parsePort('1'), 1);
  assert.equal(parsePort('65535'), 65535);
  assert.throws(() => parsePort('65536'), msg(/^65536 is not a port number \(1-65535\)$/));
  assert.throws(() => parsePort('0'), msg(/^0 is not a port number/));
  assert.throws(() => parsePort('http'), msg(/^"http" is not a port number \(1-65535\)$/));
});

test('durations: Go style, units combined, fractions rounded to ms, nothing before, between or after', () => {
  assert.equal(parseDuration('1h1m1s1ms'), 3_661_001);
  assert.equal(parseDuration(' 2s '), 2000);
  assert.equal(parseDuration('1.5s'), 1500);
  assert.equal(parseDuration('0.5h'), 1_800_000);
  assert.equal(parseDuration('1.4ms'), 1);
  assert.equal(parseDuration('2.5ms'), 3);
  assert.equal(parseDuration('0s'), 0);
  for (const bad of ['5', 'm', 'x5s', '5s x', '5s5', '5 s', '-5s', '1d', '.5s']) {
    assert.throws(() => parseDuration(bad), msg(/^".*" is not a duration \(examples: 30s, 5m, 1h30m\)$/), bad);
  }
  assert.equal(formatDuration(0), '0ms');
  assert.equal(formatDuration(7_200_000), '2h');
  assert.equal(formatDuration(5_400_000), '90m');
  assert.equal(formatDuration(60_000), '1m');
  assert.equal(formatDuration(1000), '1s');
  assert.equal(formatDuration(1), '1ms');
});

test('parseValue dispatches on the type; lists take one raw item', () => {
  assert.equal(parseValue('string', ' a '), ' a ');
  assert.equal(parseValue('list', 'a,b'), 'a,b');
  assert.equal(parseValue('boolean', 'yes'), true);
  assert.equal(parseValue('int', '-3'), -3);
  assert.throws(() => parseValue('count', '-3'), /negative/);
  assert.throws(() => parseValue('port', '0'), /port number/);
  assert.equal(parseValue('duration', '1m'), 60_000);
});

test('within: both bounds included; the message shows value and range with the given renderer', () => {
  const c = within(1, 5);
  c(1);
  c(5);
  assert.throws(() => c(0), msg(/^0 is less than 1; use 1 to 5$/));
  assert.throws(() => c(6), msg(/^6 is more than 5; use 1 to 5$/));
  RETENTION(0);
  RETENTION(100_000);
  assert.throws(() => RETENTION(-1), /less than 0/);
  S3_TIMEOUT(1000);
  S3_TIMEOUT(86_400_000);
  assert.throws(() => S3_TIMEOUT(86_400_001), msg(/^86400001ms is more than 24h; use 1s to 24h$/));
  assert.throws(() => S3_TIMEOUT(999), msg(/^999ms is less than 1s/));
});

test('valueFromJson: the JSON type of each value type, then its rules', () => {
  assert.equal(valueFromJson('string', ''), '');
  assert.throws(() => valueFromJson('string', 5), msg(/^must be a string$/));
  assert.equal(valueFromJson('boolean', false), false);
  assert.deepEqual(valueFromJson('list', []), []);
  assert.deepEqual(valueFromJson('list', ['a', 'b']), ['a', 'b']);
  for (const bad of ['a', ['a', 1], [null], {}]) assert.throws(() => valueFromJson('list', bad), msg(/^must be a list of strings$/), JSON.stringify(bad));
  assert.equal(valueFromJson('int', -3), -3);
  assert.throws(() => valueFromJson('int', 1.5), msg(/^must be a whole number$/));
  assert.throws(() => valueFromJson('int', 2 ** 53), msg(/^must be a whole number$/));
  assert.throws(() => valueFromJson('port', 0), /not a port number/);
  assert.equal(valueFromJson('port', 65535), 65535);
  assert.equal(valueFromJson('duration', 0), 0);
  assert.equal(valueFromJson('duration', 1500), 1500);
  assert.throws(() => valueFromJson('duration', -1), msg(/^-1 is negative$/));
  assert.throws(() => valueFromJson('duration', '1s'), msg(/^must be a whole number of milliseconds$/));
  assert.throws(() => valueFromJson('duration', 1.5), msg(/^must be a whole number of milliseconds$/));
  assert.throws(() => valueFromJson('duration', 2 ** 53), msg(/^must be a whole number of milliseconds$/));
  assert.throws(() => valueFromJson('count', true), msg(/^must be a whole number$/));
});

test('spec checks at their edges', () => {
  for (const ok of ['a', 'A', '0', 'a-b.c', `a${'b'.repeat(61)}c`]) checkNodeName(ok);
  for (const bad of ['', '-a', 'a-', '.a', 'a.', 'a_b', 'a b', `a${'b'.repeat(62)}c`]) {
    assert.throws(() => checkNodeName(bad), msg(/^".*" is not a node name: use letters, digits, '-' and '\.', at most 63 characters$/), bad);
  }
  checkIP('10.0.0.1');
  checkIP('fe80::1');
  assert.throws(() => checkIP('10.0.0.256'), msg(/^"10\.0\.0\.256" is not an IP address$/));
  checkPrefix('on-demand');
  assert.throws(() => checkPrefix('.x'), /must not start with/);
  checkAbsoluteDirs('/a, /b,,');
  checkAbsoluteDirs('');
  assert.throws(
    () => checkAbsoluteDirs('/a, b'),
    msg(/^"b" is not an absolute path; give absolute folder paths \(repeat the flag or separate them with commas\)$/),
  );
  assert.throws(() => checkAbsoluteDirs('/a\0b'), msg(/is not an absolute path/));
  for (const ok of ['a=1', '--a-b=1', '-a=', 'x9=y=z']) checkEtcdArg(ok);
  for (const bad of ['a', '=1', 'A=1', 'a_b=1', ' a=1']) {
    assert.throws(() => checkEtcdArg(bad), msg(/^".*" is not key=value \(example: quota-backend-bytes=8589934592\)$/), bad);
  }
  checkJoinURL('');
  checkJoinURL('https://h:9345');
  checkJoinURL('https://[::1]:1');
  for (const bad of ['https://h', 'https://h:443', 'http://h:9345', 'h:9345', 'not a url']) {
    assert.throws(() => checkJoinURL(bad), msg(/^".*" is not https:\/\/<host>:<supervisor-port>$/), bad);
  }
});

test('schema helpers: lookup by key or alias, defaults by type, choices and checks per list item', () => {
  assert.equal(DEFAULT_CONFIG_FILE, '/etc/etcdsnap/config.yaml');
  assert.equal(findSpec(SNAPSHOT_CLI_OPTIONS, 'etcd-snapshot-dir')?.key, 'dir');
  assert.equal(findSpec(SNAPSHOT_CLI_OPTIONS, 'nope'), undefined);
  assert.throws(() => specOf(SERVER_OPTIONS, 'nope'), msg(/^bug: no option nope$/));
  assert.equal(stringDefault(SERVER_OPTIONS, 'log-format'), 'text');
  assert.throws(() => numberDefault(SERVER_OPTIONS, 'token'), msg(/^bug: option token has no numeric default$/));
  assert.throws(() => numberDefault(SERVER_OPTIONS, 'log-format'), msg(/no numeric default/));
  assert.equal(SERVER_S3_OPTIONS.find((s) => s.key === 'etcd-s3-bucket')?.type, 'string');
  assert.deepEqual(CLI_S3_OPTIONS.find((s) => s.key === 's3-bucket')?.aliases, ['etcd-s3-bucket']);
  const list: OptionSpec = { key: 'l', type: 'list', description: '', choices: ['a', 'b'], check: (v) => assert.notEqual(v, 'b') };
  assert.deepEqual(checkChoices(list, ['a', 'b']), ['a', 'b']);
  assert.throws(() => checkChoices(list, ['a', 'c']), msg(/^"c" is not one of a, b$/));
  assert.throws(() => checkValue(list, ['a', 'b']), 'the check runs on each item');
  assert.deepEqual(checkValue(list, ['a', 'a']), ['a', 'a']);
  assert.equal(checkValue({ key: 'n', type: 'int', description: '' }, 5), 5, 'no choices, no check');
  const getuid = process.getuid;
  try {
    process.getuid = () => 0;
    assert.equal(defaultDataDir(), '/var/lib/etcdsnap');
    process.getuid = () => 1000;
    assert.equal(defaultDataDir(), path.join(os.homedir(), '.etcdsnap'));
  } finally {
    process.getuid = getuid;
  }
});

/** Parses `argv` for `specs` with a config file holding `config`, then resolves. */
async function resolveWith(specs: readonly OptionSpec[], argv: string[], opts: { env?: Record<string, string>; config?: string; quiet?: string[] } = {}) {
  const dir = tempDir();
  const file = path.join(dir, 'config.yaml');
  writeFileSync(file, opts.config ?? '');
  const cmd = addOptions(new Command('x').exitOverride().configureOutput({ writeErr: () => undefined }), specs).action(() => undefined);
  await cmd.parseAsync(normalizeBooleanArgs(['--config', file, ...argv], specs), { from: 'user' });
  const warnings: string[] = [];
  const v = await resolveValues(cmd, specs, { env: opts.env ?? {}, warn: (m) => warnings.push(m), quietKeys: new Set(opts.quiet ?? []) });
  return { v, warnings, file };
}

test('help text: description, choices, defaults (not of booleans), environment variable; aliases hidden; --no- forms', () => {
  const opt = (cmd: Command, long: string) => cmd.options.find((o) => o.long === long);
  const server = addOptions(new Command('server'), SERVER_OPTIONS);
  assert.equal(opt(server, '--config')?.flags, '-c, --config <file>');
  assert.match(opt(server, '--config')?.description ?? '', /^config file .* \(default: \/etc\/etcdsnap\/config\.yaml\) \[\$ETCDSNAP_CONFIG_FILE\]$/);
  assert.equal(opt(server, '--log-format')?.description, 'log format (one of: text, json) (default: text) [$ETCDSNAP_LOG_FORMAT]');
  assert.equal(opt(server, '--supervisor-port')?.description, 'supervisor API port (HTTPS) (default: 9345)');
  assert.equal(opt(server, '--debug')?.description, 'log at debug level [$ETCDSNAP_DEBUG]', 'no default shown for a boolean');
  assert.equal(opt(server, '--debug')?.flags, '--debug');
  assert.equal(opt(server, '--etcd-arg')?.flags, '--etcd-arg <key=value>');
  assert.equal(opt(server, '--no-debug')?.hidden, true, '--no- forms are hidden');
  assert.equal(opt(server, '--no-etcd-arg'), undefined, 'only booleans have --no- forms');
  assert.equal(opt(server, '--debug')?.hidden, false);
  const cli = addOptions(new Command('etcd-snapshot'), SNAPSHOT_CLI_OPTIONS);
  assert.equal(opt(cli, '--dir')?.hidden, false);
  assert.equal(opt(cli, '--etcd-snapshot-dir')?.hidden, true, 'aliases are hidden');
  assert.equal(opt(cli, '--etcd-snapshot-dir')?.flags, '--etcd-snapshot-dir <dir>', 'an alias has no short flag');
  assert.equal(opt(cli, '--supervisor-port')?.hidden, true, 'hidden options are hidden');
  assert.equal(opt(cli, '--etcd-server')?.flags, '-s, --etcd-server <url>');
  const anon = addOptions(new Command('x'), [{ key: 'v', type: 'string', description: 'd' }]);
  assert.equal(opt(anon, '--v')?.flags, '--v <value>');
  assert.equal(opt(anon, '--v')?.description, 'd');
});

test('flags: parsed and checked by commander with the spec; lists accumulate; --no- forms and --flag=bool', async () => {
  let r = await resolveWith(SERVER_OPTIONS, ['--etcd-arg', 'a=1', '--etcd-arg', 'b=2', '--no-etcd-snapshot-compress', '--cluster-init=yes', '--debug=0']);
  assert.deepEqual(r.v.list('etcd-arg'), ['a=1', 'b=2']);
  assert.equal(r.v.bool('etcd-snapshot-compress'), false);
  assert.equal(r.v.sources.get('etcd-snapshot-compress'), 'cli');
  assert.equal(r.v.bool('cluster-init'), true);
  assert.equal(r.v.isSet('debug'), true);
  assert.equal(r.v.bool('debug'), false);
  await assert.rejects(resolveWith(SERVER_OPTIONS, ['--supervisor-port', '0']), msg(/0 is not a port number/));
  await assert.rejects(resolveWith(SERVER_OPTIONS, ['--log-format', 'xml']), msg(/"xml" is not one of text, json/));
  await assert.rejects(resolveWith(SERVER_OPTIONS, ['--node-name', 'a_b']), msg(/^invalid value for --node-name: "a_b" is not a node name/));
  r = await resolveWith(SNAPSHOT_CLI_OPTIONS, ['--etcd-snapshot-compress=true', '--etcd-snapshot-dir', '/d']);
  assert.equal(r.v.bool('snapshot-compress'), true, 'an alias of a boolean takes =true too');
  assert.equal(r.v.str('dir'), '/d', 'an alias sets its spec');
  assert.deepEqual(normalizeBooleanArgs(['--node-name=a', 'x', '--debug=on', '--debug=off', '--nope=1', '-d=1'], SERVER_OPTIONS), [
    '--node-name=a',
    'x',
    '--debug',
    '--no-debug',
    '--nope=1',
    '-d=1',
  ]);
  assert.throws(() => normalizeBooleanArgs(['--debug='], SERVER_OPTIONS), msg(/^invalid value for --debug: "" is not a boolean/));
});

test("a subcommand's own flag wins over its parent's", async () => {
  const parent = addOptions(new Command('etcd-snapshot').exitOverride(), SNAPSHOT_CLI_OPTIONS);
  const save = addOptions(new Command('save').exitOverride(), SNAPSHOT_CLI_OPTIONS).action(() => undefined);
  parent.addCommand(save);
  const dir = tempDir();
  writeFileSync(path.join(dir, 'c.yaml'), '');
  await parent.parseAsync(['--config', path.join(dir, 'c.yaml'), '--dir', '/a', '--name', 'p', 'save', '--dir', '/b'], { from: 'user' });
  const v = await resolveValues(save, SNAPSHOT_CLI_OPTIONS, { env: {}, warn: () => undefined });
  assert.equal(v.str('dir'), '/b');
  assert.equal(v.str('name'), 'p', "the parent's flag counts when the subcommand has none");
});

test("a subcommand's own flag wins over its parent's also when the parent keeps its flags before the subcommand", async () => {
  // with positional options commander gives `--dir /b` to the subcommand and `--dir /a` to
  // its parent: resolveValues must read the chain parent first so that the subcommand wins
  const parent = addOptions(new Command('etcd-snapshot').exitOverride().enablePositionalOptions(), SNAPSHOT_CLI_OPTIONS);
  const save = addOptions(new Command('save').exitOverride(), SNAPSHOT_CLI_OPTIONS).action(() => undefined);
  parent.addCommand(save);
  const dir = tempDir();
  writeFileSync(path.join(dir, 'c.yaml'), '');
  await parent.parseAsync(['--config', path.join(dir, 'c.yaml'), '--dir', '/a', '--name', 'p', 'save', '--dir', '/b'], { from: 'user' });
  assert.equal(parent.opts<{ dir?: string }>().dir, '/a', 'precondition: the parent holds its own --dir');
  assert.equal(save.opts<{ dir?: string }>().dir, '/b', 'precondition: the subcommand holds its own --dir');
  const v = await resolveValues(save, SNAPSHOT_CLI_OPTIONS, { env: {}, warn: () => undefined });
  assert.equal(v.str('dir'), '/b');
  assert.equal(v.str('name'), 'p');
});

test('no --config: a missing default config file is no error, and no file is read', async () => {
  assert.equal(existsSync(DEFAULT_CONFIG_FILE), false, `precondition: ${DEFAULT_CONFIG_FILE} does not exist on a test machine`);
  const cmd = addOptions(new Command('x').exitOverride(), SERVER_OPTIONS).action(() => undefined);
  await cmd.parseAsync(['--node-name', 'n1'], { from: 'user' });
  const v = await resolveValues(cmd, SERVER_OPTIONS, { env: {}, warn: () => undefined });
  assert.equal(v.str('node-name'), 'n1');
  assert.deepEqual(v.configFiles, []);
});

test('config file: a mapping for a single-value key is refused, also for a string key', async () => {
  const specs: OptionSpec[] = [...SERVER_OPTIONS.filter((s) => s.key === 'config'), { key: 'v', type: 'string', description: 'd' }];
  await assert.rejects(resolveWith(specs, [], { config: 'v: {a: 1}\n' }), msg(/invalid value for key "v": expected a single value$/));
  await assert.rejects(resolveWith(specs, [], { config: 'v: null\n' }), msg(/invalid value for key "v": expected a single value$/));
});

test('config drop-in folder: an error other than a missing folder is reported (a symlink loop)', async () => {
  const dir = tempDir();
  const file = path.join(dir, 'config.yaml');
  writeFileSync(file, '');
  symlinkSync(`${file}.d`, `${file}.d`);
  const cmd = addOptions(new Command('x').exitOverride(), SERVER_OPTIONS).action(() => undefined);
  await cmd.parseAsync(['--config', file], { from: 'user' });
  await assert.rejects(resolveValues(cmd, SERVER_OPTIONS, { env: {}, warn: () => undefined }), msg(/^cannot read config folder .*\/config\.yaml\.d: ELOOP/));
});

test('environment: empty is unset, lists split on commas, bad values name the variable; the command line wins', async () => {
  let r = await resolveWith(SERVER_OPTIONS, [], { env: { ETCDSNAP_NODE_NAME: '', ETCDSNAP_ETCD_SNAPSHOT_API_DIR: '/a,/b', ETCDSNAP_DEBUG: 'yes' } });
  assert.equal(r.v.str('node-name'), undefined);
  assert.equal(r.v.sources.get('node-name'), undefined);
  assert.deepEqual(r.v.list('etcd-snapshot-api-dir'), ['/a', '/b']);
  assert.equal(r.v.sources.get('etcd-snapshot-api-dir'), 'env');
  assert.equal(r.v.bool('debug'), true);
  await assert.rejects(
    resolveWith(SERVER_OPTIONS, [], { env: { ETCDSNAP_NODE_NAME: 'a_b' } }),
    msg(/^invalid value for \$ETCDSNAP_NODE_NAME: "a_b" is not a node name/),
  );
  await assert.rejects(
    resolveWith(SERVER_OPTIONS, [], { env: { ETCDSNAP_ETCD_SNAPSHOT_API_DIR: '/a,b' } }),
    msg(/^invalid value for \$ETCDSNAP_ETCD_SNAPSHOT_API_DIR: "b"/),
  );
  r = await resolveWith(SERVER_OPTIONS, ['--node-name', 'cli'], { env: { ETCDSNAP_NODE_NAME: 'env' }, config: 'node-name: cfg\n' });
  assert.equal(r.v.str('node-name'), 'cli');
  assert.equal(r.v.sources.get('node-name'), 'cli');
  r = await resolveWith(SERVER_OPTIONS, [], { env: { ETCDSNAP_NODE_NAME: 'env' }, config: 'node-name: cfg\n' });
  assert.equal(r.v.sources.get('node-name'), 'env');
});

test('config file: YAML 1.1 as k3s, scalars and lists, the config key itself and quiet keys; shapes refused with the key and file', async () => {
  let r = await resolveWith(SERVER_OPTIONS, [], {
    config: 'etcd-arg: a=1\netcd-snapshot-retention: 010\nsupervisor-port: "9000"\ncluster-init: on\nconfig: /x\nother-command-key: 1\n',
    quiet: ['other-command-key'],
  });
  assert.deepEqual(r.v.list('etcd-arg'), ['a=1'], 'a scalar for a list is a list of one');
  assert.equal(r.v.int('etcd-snapshot-retention'), 8, 'YAML 1.1: a leading 0 is octal');
  assert.equal(r.v.int('supervisor-port'), 9000);
  assert.equal(r.v.bool('cluster-init'), true);
  assert.equal(r.v.sources.get('cluster-init'), 'config');
  assert.deepEqual(r.warnings, [`Unknown flag --config found in config file ${r.file}, skipping`]);
  for (const [yaml, re] of [
    ['etcd-arg: [{a: 1}]\n', /invalid value for key "etcd-arg": list items must be scalars$/],
    ['etcd-arg: [null]\n', /list items must be scalars$/],
    ['node-name: [a]\n', /invalid value for key "node-name": expected a single value$/],
    ['node-name: {a: 1}\n', /expected a single value$/],
    ['node-name:\n', /expected a single value$/],
    ['"x": [\n', /is not valid YAML: /],
    ['just text\n', /must be a mapping of flag names to values$/],
  ] as const) {
    await assert.rejects(resolveWith(SERVER_OPTIONS, [], { config: yaml }), msg(re), yaml);
  }
  r = await resolveWith(SERVER_OPTIONS, [], { config: '~\n' });
  assert.deepEqual(r.warnings, [], 'a null document is empty');
  r = await resolveWith(SERVER_OPTIONS, [], { config: '  \n' });
  assert.equal(r.v.int('supervisor-port'), 9345);
  assert.equal(r.v.sources.get('supervisor-port'), 'default');
  assert.equal(r.v.isSet('supervisor-port'), false);
});

test('config files: an explicit one must exist and be a file; drop-ins .yaml and .yml in name order; a drop-in folder that is a file is ignored', async () => {
  const dir = tempDir();
  const missing = path.join(dir, 'missing.yaml');
  const run = (file: string) => {
    const cmd = addOptions(new Command('x').exitOverride(), SERVER_OPTIONS).action(() => undefined);
    return cmd.parseAsync(['--config', file], { from: 'user' }).then(() => resolveValues(cmd, SERVER_OPTIONS, { env: {}, warn: () => undefined }));
  };
  await assert.rejects(run(missing), msg(/^config file .*missing\.yaml does not exist; create it or drop --config$/));
  mkdirSync(path.join(dir, 'folder.yaml'));
  await assert.rejects(run(path.join(dir, 'folder.yaml')), msg(/^config file .*folder\.yaml is not a regular file; pass a YAML file with --config$/));
  const file = path.join(dir, 'c.yaml');
  writeFileSync(file, 'node-name: base\n');
  mkdirSync(`${file}.d`);
  writeFileSync(path.join(`${file}.d`, 'b.yml'), 'node-name: yml\n');
  writeFileSync(path.join(`${file}.d`, 'a.yaml'), 'node-name: yaml\n');
  writeFileSync(path.join(`${file}.d`, 'c.json'), 'node-name: json\n');
  const v = await run(file);
  assert.equal(v.str('node-name'), 'yml');
  assert.deepEqual(
    v.configFiles.map((f) => path.basename(f)),
    ['c.yaml', 'a.yaml', 'b.yml'],
  );
  const lone = path.join(dir, 'lone.yaml');
  writeFileSync(lone, '');
  writeFileSync(`${lone}.d`, 'not a folder');
  assert.deepEqual((await run(lone)).configFiles, [lone]);
  // the environment names the config file too; a missing default one is no error
  const cmd = addOptions(new Command('x').exitOverride(), SERVER_OPTIONS).action(() => undefined);
  await cmd.parseAsync([], { from: 'user' });
  const fromEnv = await resolveValues(cmd, SERVER_OPTIONS, { env: { ETCDSNAP_CONFIG_FILE: file }, warn: () => undefined });
  assert.equal(fromEnv.str('node-name'), 'yml');
  await assert.rejects(resolveValues(cmd, SERVER_OPTIONS, { env: { ETCDSNAP_CONFIG_FILE: missing }, warn: () => undefined }), /does not exist/);
});

test('Values: typed getters; text and num are for options with a default', () => {
  const v = new Values(
    new Map<string, string | number | boolean | string[]>([
      ['s', 'x'],
      ['n', 0],
      ['b', true],
      ['f', 'true'],
      ['l', ['a']],
    ]),
    new Map([
      ['s', 'config'],
      ['n', 'default'],
    ]),
    [],
  );
  assert.equal(v.has('s'), true);
  assert.equal(v.has('zz'), false);
  assert.equal(v.isSet('s'), true);
  assert.equal(v.isSet('n'), false);
  assert.equal(v.isSet('zz'), false);
  assert.equal(v.str('n'), '0');
  assert.equal(v.str('zz'), undefined);
  assert.equal(v.bool('b'), true);
  assert.equal(v.bool('f'), false, 'only true is true');
  assert.equal(v.int('n'), 0);
  assert.equal(v.int('s'), undefined);
  assert.equal(v.text('s'), 'x');
  assert.throws(() => v.text('n'), msg(/^bug: option n has no string value$/));
  assert.equal(v.num('n'), 0);
  assert.throws(() => v.num('s'), msg(/^bug: option s has no numeric value$/));
  assert.deepEqual(v.list('l'), ['a']);
  assert.deepEqual(v.list('s'), ['x']);
  assert.deepEqual(v.list('zz'), []);
});

test('secret flags: the warning lists the safer ways the schema has; one per flag given', async () => {
  const only: OptionSpec = { key: 'pin', type: 'string', secret: true, description: '' };
  assert.match(secretFlagWarning(only, 'pin', [only]), /; pass it with the config file \(key pin\) instead$/);
  const withEnv: OptionSpec = { ...only, env: 'PIN' };
  assert.match(secretFlagWarning(withEnv, 'pin', [withEnv]), /; pass it with \$PIN or the config file \(key pin\) instead$/);
  const file: OptionSpec = { key: 'pin-file', type: 'string', description: '' };
  assert.match(secretFlagWarning(withEnv, 'p', [withEnv, file]), /^--p was given .*; pass it with --pin-file, \$PIN or the config file \(key pin\) instead$/);
  const r = await resolveWith(SERVER_OPTIONS, ['--token', 'x'.repeat(20), '--node-name', 'n']);
  assert.equal(r.warnings.length, 1);
  assert.match(r.warnings[0] ?? '', /^--token was given on the command line/);
  assert.ok(!(r.warnings[0] ?? '').includes('x'.repeat(20)));
});

test('tokens: the full format pins the CA; bare secrets have no whitespace; the policy counts characters', () => {
  const hash = caHash('ca');
  assert.match(hash, /^[0-9a-f]{64}$/);
  assert.equal(tokenFromHash(hash, 's'), `K10${hash}::server:s`);
  assert.deepEqual(parseToken(`  K10${hash}::node:se:cret \n`), { caHash: hash, secret: 'se:cret' }, 'any role; the secret may hold colons');
  for (const bad of [
    `K10${hash.toUpperCase()}::server:s`,
    `K10${hash}::server:`,
    `K10${hash}::server:a b`,
    `K10${hash}:server:s`,
    `K10${hash}x::server:s`,
    'K10',
  ]) {
    assert.throws(() => parseToken(bad), msg(/^the token starts with K10 but is not K10<sha256>::server:<secret>; copy it whole/), bad);
  }
  assert.throws(() => parseToken('a b'), msg(/^the token must not contain whitespace$/));
  assert.throws(() => parseToken(' \n'), msg(/^the token is empty; pass --token or --token-file with a non-empty value$/));
  assert.deepEqual(parseToken('k10abc'), { secret: 'k10abc' }, 'only K10 marks the full format');
  const s = newSecret();
  assert.match(s, /^[0-9a-f]{64}$/);
  assert.notEqual(newSecret(), s);
  assert.equal(MIN_SECRET_LENGTH, 16);
  assert.deepEqual(secretStrength('x'.repeat(16), 'new-cluster'), { action: 'ok' });
  assert.deepEqual(secretStrength('x'.repeat(16), 'existing-cluster'), { action: 'ok' });
  const refused = secretStrength('😀'.repeat(8), 'new-cluster');
  assert.equal(refused.action, 'refuse', '8 characters, though 16 UTF-16 units');
  assert.match('message' in refused ? refused.message : '', /^the token's secret has 8 characters; a new cluster needs at least 16, because every snapshot/);
  const one = secretStrength('x', 'existing-cluster');
  assert.equal(one.action, 'warn');
  assert.match('message' in one ? one.message : '', /^the token's secret has only 1 character \(under 16\): every snapshot holds .*; keep snapshots private/);
  const none = secretStrength('', 'new-cluster');
  assert.match('message' in none ? none.message : '', /has 0 characters;/);
});

test('every option of every list has one of the value types the parsers know', () => {
  const known = new Set(['string', 'boolean', 'int', 'count', 'port', 'duration', 'list']);
  for (const s of [...SERVER_OPTIONS, ...SNAPSHOT_CLI_OPTIONS, ...SERVER_S3_OPTIONS, ...CLI_S3_OPTIONS]) {
    assert.ok(known.has(s.type), `--${s.key} has type "${s.type}"`);
  }
});

test('durations take any number of decimals; boolean rewriting only touches whole --flag=value arguments', () => {
  assert.equal(parseDuration('1.25s'), 1250);
  assert.equal(parseDuration('0.125m'), 7500);
  assert.deepEqual(normalizeBooleanArgs(['--debug=true'], SERVER_OPTIONS), ['--debug']);
  assert.deepEqual(normalizeBooleanArgs(['x--debug=true'], SERVER_OPTIONS), ['x--debug=true'], 'not at the start: not a flag');
  assert.deepEqual(normalizeBooleanArgs(['--debug=true\nx'], SERVER_OPTIONS), ['--debug=true\nx'], 'a value with a line break is left whole');
});
