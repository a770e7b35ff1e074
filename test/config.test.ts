/** Unit tests of option resolution, value parsing and tokens (the sealing of bootstrap data: bootstrap-seal.test.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { addOptions, resolveValues, normalizeBooleanArgs } from '../src/config/resolve.js';
import { SERVER_OPTIONS } from '../src/config/schema.js';
import { parseDuration, parsePort, parseBoolean } from '../src/config/values.js';
import { parseToken, formatToken, caHash, secretsEqual } from '../src/etcd/token.js';
import { tempDir } from './helpers/server.js';

async function resolve(argv: string[], env: Record<string, string>, files: Record<string, string>) {
  const dir = tempDir();
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), text);
  }
  const cmd = addOptions(new Command('server').exitOverride(), SERVER_OPTIONS).action(() => undefined);
  await cmd.parseAsync(normalizeBooleanArgs(['--config', path.join(dir, 'config.yaml'), ...argv], SERVER_OPTIONS), { from: 'user' });
  const warnings: string[] = [];
  const v = await resolveValues(cmd, SERVER_OPTIONS, { env, warn: (m) => warnings.push(m) });
  return { v, warnings, dir };
}

test('precedence: command line > environment > config file > default', async () => {
  const files = { 'config.yaml': 'node-name: cfg\nsupervisor-port: 1111\netcd-client-port: 2222\n' };
  let r = await resolve([], {}, files);
  assert.equal(r.v.str('node-name'), 'cfg');
  assert.equal(r.v.int('supervisor-port'), 1111);
  assert.equal(r.v.int('etcd-peer-port'), 2380, 'default');
  assert.equal(r.v.sources.get('etcd-peer-port'), 'default');
  r = await resolve([], { ETCDSNAP_NODE_NAME: 'env' }, files);
  assert.equal(r.v.str('node-name'), 'env');
  r = await resolve(['--node-name', 'cli', '--supervisor-port', '3333'], { ETCDSNAP_NODE_NAME: 'env' }, files);
  assert.equal(r.v.str('node-name'), 'cli');
  assert.equal(r.v.int('supervisor-port'), 3333);
  assert.equal(r.v.int('etcd-client-port'), 2222);
});

test('config.yaml.d files are read in name order after config.yaml, later ones winning', async () => {
  const r = await resolve(
    [],
    {},
    {
      'config.yaml': 'node-name: base\n',
      'config.yaml.d/20-b.yaml': 'node-name: b\n',
      'config.yaml.d/10-a.yaml': 'node-name: a\nsupervisor-port: 4444\n',
      'config.yaml.d/ignored.txt': 'node-name: txt\n',
    },
  );
  assert.equal(r.v.str('node-name'), 'b');
  assert.equal(r.v.int('supervisor-port'), 4444);
  assert.deepEqual(
    r.v.configFiles.map((f) => path.basename(f)),
    ['config.yaml', '10-a.yaml', '20-b.yaml'],
  );
});

test('unknown config keys warn and are skipped; bad values name the key and the file', async () => {
  const r = await resolve([], {}, { 'config.yaml': 'no-such-flag: 1\ncluster-init: yes\netcd-arg: [a=1, b=2]\n' });
  assert.equal(r.warnings.length, 1);
  assert.match(r.warnings[0] ?? '', /^Unknown flag --no-such-flag found in config file .*config\.yaml, skipping$/);
  assert.equal(r.v.bool('cluster-init'), true);
  assert.deepEqual(r.v.list('etcd-arg'), ['a=1', 'b=2']);
  await assert.rejects(
    resolve([], {}, { 'config.yaml': 'cluster-init: maybe\n' }),
    /config file .*config\.yaml: invalid value for key "cluster-init": "maybe" is not a boolean/,
  );
  await assert.rejects(resolve([], {}, { 'config.yaml': '- a\n- b\n' }), /must be a mapping of flag names to values/);
});

test('boolean flags accept --flag=false as k3s users write them', async () => {
  const r = await resolve(['--cluster-init=false'], { ETCDSNAP_CLUSTER_INIT: 'true' }, { 'config.yaml': '' });
  assert.equal(r.v.bool('cluster-init'), false);
  assert.equal(r.v.sources.get('cluster-init'), 'cli');
  assert.throws(() => normalizeBooleanArgs(['--debug=perhaps'], SERVER_OPTIONS), /invalid value for --debug/);
});

test('value parsers', () => {
  assert.equal(parseDuration('5m'), 300_000);
  assert.equal(parseDuration('1h30m'), 5_400_000);
  assert.equal(parseDuration('250ms'), 250);
  assert.throws(() => parseDuration('5 minutes'), /not a duration/);
  assert.throws(() => parseDuration(''), /not a duration/);
  assert.equal(parsePort('2379'), 2379);
  assert.throws(() => parsePort('0'), /not a port/);
  assert.throws(() => parsePort('x'), /not a port/);
  assert.equal(parseBoolean('on'), true);
  assert.equal(parseBoolean('FALSE'), false);
});

test('tokens: full and bare formats, CA pinning, constant-time comparison', () => {
  const ca = '-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\n';
  const full = formatToken(ca, 'secret1');
  assert.equal(full, `K10${caHash(ca)}::server:secret1`);
  assert.deepEqual(parseToken(full), { caHash: caHash(ca), secret: 'secret1' });
  assert.deepEqual(parseToken(' bare \n'), { secret: 'bare' });
  assert.throws(() => parseToken('K10abc::server:x'), /is not K10<sha256>::server:<secret>/);
  assert.throws(() => parseToken(''), /empty/);
  assert.ok(secretsEqual('abc', 'abc'));
  assert.ok(!secretsEqual('abc', 'abd'));
  assert.ok(!secretsEqual('abc', 'abcd'));
});
