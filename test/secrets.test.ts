/**
 * Secrets hardening: token strength policy, the sealed bootstrap data's KDF and GCM tag,
 * the minimal environment of child processes, the warning for secrets given as flags, and
 * log scrubbing of every form a secret takes. Unit tests from source, then integration
 * tests against real servers (bin/etcdsnap, real etcd).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, randomBytes, scryptSync } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { addOptions, normalizeBooleanArgs, resolveValues } from '../src/config/resolve.js';
import { SERVER_OPTIONS, SNAPSHOT_CLI_OPTIONS, type OptionSpec } from '../src/config/schema.js';
import { caHash, MIN_SECRET_LENGTH, secretStrength } from '../src/etcd/token.js';
import { BOOTSTRAP_KEY, CURRENT_KDF, needsReseal, openBootstrap, sealBootstrap } from '../src/server/bootstrap-data.js';
import { checkToken } from '../src/server/bootstrap.js';
import { buildServerConfig, serverPaths } from '../src/server/config.js';
import { childEnv, ETCD_PREFIXES, ETCD_TOOL_PREFIXES } from '../src/util/child-env.js';
import { createLogger, REDACTED, registerSecret } from '../src/log/logger.js';
import { etcdctl, freePorts, killStarted, runCli, snapshotCli, startReady, tempDir, type Ports, type ServerProcess } from './helpers/server.js';

after(() => killStarted());

const CA = {
  certPem: '-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\n',
  keyPem: '-----BEGIN PRIVATE KEY-----\nxyz\n-----END PRIVATE KEY-----\n',
};

// ---------------------------------------------------------------------------------------
// token strength policy

test('strength policy: under 16 characters is refused for a new cluster, warned about for an existing one; the message says why and what to do', () => {
  assert.equal(MIN_SECRET_LENGTH, 16);
  for (const s of ['a', 'Zq9', 'fifteen-chars-x']) {
    const refused = secretStrength(s, 'new-cluster');
    assert.ok(refused.action === 'refuse', s);
    assert.match(refused.message, new RegExp(`has ${[...s].length} characters?; a new cluster needs at least 16`));
    assert.match(refused.message, /every snapshot holds the cluster CA key sealed with it, open to offline guessing/);
    assert.match(refused.message, /openssl rand -hex 16\) or omit --token/);
    assert.ok(!refused.message.includes('\n'), 'one line');
    const warned = secretStrength(s, 'existing-cluster');
    assert.ok(warned.action === 'warn', s);
    assert.match(warned.message, /only \d+ characters? \(under 16\)/);
  }
  assert.deepEqual(secretStrength('sixteen-chars-xy', 'new-cluster'), { action: 'ok' });
  assert.deepEqual(secretStrength(randomBytes(16).toString('hex'), 'new-cluster'), { action: 'ok' });
  // characters, not UTF-16 units or bytes
  assert.equal(secretStrength('ΩΩΩΩΩΩΩΩΩΩΩΩΩΩΩ', 'new-cluster').action, 'refuse');
  assert.equal(secretStrength('😀'.repeat(8), 'new-cluster').action, 'refuse', '8 characters, 16 UTF-16 units');
});

async function tokenCheckFor(argv: string[], prepare: (dataDir: string) => void = () => undefined) {
  const dir = tempDir();
  const dataDir = path.join(dir, 'data');
  writeFileSync(path.join(dir, 'config.yaml'), '');
  mkdirSync(path.join(dataDir, 'server'), { recursive: true });
  prepare(dataDir);
  const cmd = addOptions(new Command('server').exitOverride(), SERVER_OPTIONS).action(() => undefined);
  await cmd.parseAsync(normalizeBooleanArgs(['--config', path.join(dir, 'config.yaml'), '--data-dir', dataDir, ...argv], SERVER_OPTIONS), { from: 'user' });
  const cfg = buildServerConfig(await resolveValues(cmd, SERVER_OPTIONS, { env: {}, warn: () => undefined }));
  return checkToken(cfg, serverPaths(cfg.dataDir));
}

test('checkToken applies the policy: refuses a short secret only where it creates a cluster; warns on join, reset, restore and an existing short token', async () => {
  await assert.rejects(tokenCheckFor(['--token', 'Zq9']), /the token's secret has 3 characters; a new cluster needs at least 16/);
  const file = path.join(tempDir(), 'token');
  writeFileSync(file, 'short-secret\n');
  await assert.rejects(tokenCheckFor(['--token-file', file]), /the token's secret has 12 characters/);
  const fullShort = `K10${'ab'.repeat(32)}::server:Zq9`;
  const joining = await tokenCheckFor(['--token', fullShort, '--server', 'https://127.0.0.1:9345']);
  assert.match(joining.weakSecretWarning ?? '', /only 3 characters/);
  const restoring = await tokenCheckFor(['--token', 'Zq9', '--cluster-reset', '--cluster-reset-restore-path', '/nonexistent']);
  assert.match(restoring.weakSecretWarning ?? '', /only 3 characters/);
  const existing = await tokenCheckFor([], (d) => writeFileSync(path.join(d, 'server', 'token'), 'short-secret\n'));
  assert.match(existing.weakSecretWarning ?? '', /only 12 characters/);
  const same = await tokenCheckFor(['--token', 'short-secret'], (d) => writeFileSync(path.join(d, 'server', 'token'), 'short-secret\n'));
  assert.match(same.weakSecretWarning ?? '', /only 12 characters/, 'the same short secret again: warned, not refused');
  const strong = await tokenCheckFor(['--token', 'a-strong-enough-secret']);
  assert.equal(strong.weakSecretWarning, undefined);
  const generated = await tokenCheckFor([]);
  assert.equal(generated.weakSecretWarning, undefined);
});

// ---------------------------------------------------------------------------------------
// sealed bootstrap data: KDF parameters, versions, GCM tag

interface Craft {
  v: number;
  kdf?: { name: string; N: number; r: number; p: number };
  /** Parameters scrypt really runs with (defaults to kdf, or v1's). */
  run?: { N: number; r: number; p: number };
  aad: string;
  tagLength?: number;
}

/** A sealed text made here with node:crypto only (independent of the code under test). */
function craft(ca: { certPem: string; keyPem: string }, secret: string, c: Craft): string {
  const params = c.run ?? c.kdf ?? { N: 1 << 15, r: 8, p: 1 };
  const salt = randomBytes(16);
  const iv = randomBytes(12);
  const key = scryptSync(secret, salt, 32, { N: params.N, r: params.r, p: params.p, maxmem: 512 * 1024 * 1024 });
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: c.tagLength ?? 16 });
  cipher.setAAD(Buffer.from(c.aad));
  const data = Buffer.concat([cipher.update(JSON.stringify({ caCert: ca.certPem, caKey: ca.keyPem }), 'utf8'), cipher.final()]);
  return JSON.stringify({
    v: c.v,
    ...(c.kdf ? { kdf: c.kdf } : {}),
    ca: caHash(ca.certPem),
    salt: salt.toString('base64'),
    iv: iv.toString('base64'),
    tag: cipher.getAuthTag().toString('base64'),
    data: data.toString('base64'),
  });
}

const V1 = { v: 1, aad: 'etcdsnap-bootstrap-v1' } as const;

test('sealing is version 2 with the KDF parameters stored (scrypt N=2^17, r=8, p=1); version 1 texts still open and are marked for re-sealing', async () => {
  const sealed = await sealBootstrap(CA, 'a-strong-enough-secret');
  const o = JSON.parse(sealed) as { v: number; kdf: unknown; tag: string };
  assert.equal(o.v, 2);
  assert.deepEqual(o.kdf, { name: 'scrypt', N: 131072, r: 8, p: 1 });
  assert.deepEqual(CURRENT_KDF, { name: 'scrypt', N: 131072, r: 8, p: 1 });
  assert.equal(Buffer.from(o.tag, 'base64').length, 16);
  assert.deepEqual(await openBootstrap(sealed, 'a-strong-enough-secret'), { ok: true, ca: CA });
  assert.deepEqual(await openBootstrap(sealed, 'another-secret-value'), { ok: false, reason: 'wrong-secret' });
  assert.equal(needsReseal(sealed), false);

  const v1 = craft(CA, 'a-strong-enough-secret', V1);
  assert.deepEqual(await openBootstrap(v1, 'a-strong-enough-secret'), { ok: true, ca: CA });
  assert.deepEqual(await openBootstrap(v1, 'another-secret-value'), { ok: false, reason: 'wrong-secret' });
  assert.equal(needsReseal(v1), true);

  // a version 2 text with other (acceptable) parameters opens with the parameters it names
  const n16 = craft(CA, 'a-strong-enough-secret', { v: 2, kdf: { name: 'scrypt', N: 1 << 16, r: 8, p: 1 }, aad: 'etcdsnap-bootstrap-v2' });
  assert.deepEqual(await openBootstrap(n16, 'a-strong-enough-secret'), { ok: true, ca: CA });
  assert.equal(needsReseal(n16), true, 'weaker than the current parameters');
  // a newer version, or stronger parameters, is left alone (no rewrite ping-pong)
  assert.equal(needsReseal(JSON.stringify({ ...o, v: 3 })), false);
  assert.equal(needsReseal(JSON.stringify({ ...o, kdf: { name: 'scrypt', N: 1 << 18, r: 8, p: 1 } })), false);
});

test('absurd KDF parameters from a sealed text are malformed, refused before scrypt runs', async () => {
  const good = craft(CA, 'a-strong-enough-secret', { v: 2, kdf: { name: 'scrypt', N: 1 << 16, r: 8, p: 1 }, aad: 'etcdsnap-bootstrap-v2' });
  assert.deepEqual(await openBootstrap(good, 'a-strong-enough-secret'), { ok: true, ca: CA }, 'the baseline opens');
  const o = JSON.parse(good) as Record<string, unknown>;
  const bad: unknown[] = [
    { name: 'scrypt', N: 2 ** 30, r: 8, p: 1 }, // 1 TiB
    { name: 'scrypt', N: 1 << 20, r: 8, p: 1 }, // 1 GiB
    { name: 'scrypt', N: 1 << 17, r: 1000, p: 1 },
    { name: 'scrypt', N: 1 << 17, r: 8, p: 1000 },
    { name: 'scrypt', N: 1 << 17, r: 8, p: 16 }, // 16x the work
    { name: 'scrypt', N: 3 * (1 << 15), r: 8, p: 1 }, // not a power of two
    { name: 'scrypt', N: 1 << 10, r: 8, p: 1 }, // below the floor
    { name: 'scrypt', N: 1 << 17, r: 0, p: 1 },
    { name: 'scrypt', N: 1 << 17, r: 8.5, p: 1 },
    { name: 'scrypt', N: '131072', r: 8, p: 1 },
    { name: 'argon2id', N: 1 << 17, r: 8, p: 1 },
    null,
    'scrypt',
  ];
  for (const kdf of bad) {
    assert.deepEqual(await openBootstrap(JSON.stringify({ ...o, kdf }), 'a-strong-enough-secret'), { ok: false, reason: 'malformed' }, JSON.stringify(kdf));
  }
  const { kdf: _dropped, ...noKdf } = o;
  assert.deepEqual(await openBootstrap(JSON.stringify(noKdf), 'a-strong-enough-secret'), { ok: false, reason: 'malformed' }, 'version 2 without kdf');
  // a newer version is not malformed: it is refused as newer, with what to do (model/format-version.ts)
  const newer = await openBootstrap(JSON.stringify({ ...o, v: 99 }), 'a-strong-enough-secret');
  assert.equal(newer.ok, false);
  assert.equal(newer.ok === false ? newer.reason : '', 'newer', 'a newer version');
  // a version 1 text names no parameters: one that does is not version 1
  assert.deepEqual(await openBootstrap(JSON.stringify({ ...o, v: 1 }), 'a-strong-enough-secret'), { ok: false, reason: 'malformed' });
});

test('a GCM tag shorter than 16 bytes is refused: a real sealed text with its tag cut to 4 bytes does not open', async () => {
  for (const sealed of [await sealBootstrap(CA, 'a-strong-enough-secret'), craft(CA, 'a-strong-enough-secret', V1)]) {
    const o = JSON.parse(sealed) as { tag: string };
    const cut = JSON.stringify({ ...o, tag: Buffer.from(o.tag, 'base64').subarray(0, 4).toString('base64') });
    assert.deepEqual(await openBootstrap(cut, 'a-strong-enough-secret'), { ok: false, reason: 'malformed' });
    const long = JSON.stringify({ ...o, tag: Buffer.concat([Buffer.from(o.tag, 'base64'), Buffer.alloc(1)]).toString('base64') });
    assert.deepEqual(await openBootstrap(long, 'a-strong-enough-secret'), { ok: false, reason: 'malformed' });
  }
  // a text sealed with a 4-byte tag from the start (not only cut) is refused too
  const short = craft(CA, 'a-strong-enough-secret', { ...V1, tagLength: 4 });
  assert.deepEqual(await openBootstrap(short, 'a-strong-enough-secret'), { ok: false, reason: 'malformed' });
});

// ---------------------------------------------------------------------------------------
// child environment

test("child environment: PATH, HOME, locale, TZ, TMPDIR, Go knobs and the user's ETCD_* (ETCDCTL_* for the tools); never ETCDSNAP_* or AWS_* or anything else", () => {
  const source: NodeJS.ProcessEnv = {
    PATH: '/usr/bin:/bin',
    HOME: '/root',
    LANG: 'C.UTF-8',
    LC_ALL: 'C.UTF-8',
    LC_TIME: 'en_GB.UTF-8',
    TZ: 'UTC',
    TMPDIR: '/var/tmp',
    GOMAXPROCS: '2',
    ETCD_MAX_TXN_OPS: '128',
    ETCD_UNSUPPORTED_ARCH: 'arm',
    ETCDCTL_DIAL_TIMEOUT: '3s',
    ETCDSNAP_TOKEN: 'K10abc::server:s3cr3t-value',
    ETCDSNAP_ETCD_TOKEN: 's3cr3t-value',
    AWS_SECRET_ACCESS_KEY: 'aws-secret',
    AWS_ACCESS_KEY_ID: 'aws-id',
    AWS_SESSION_TOKEN: 'aws-session',
    HTTPS_PROXY: 'http://user:pw@proxy:3128',
    NODE_OPTIONS: '--require /tmp/x.js',
    SSH_AUTH_SOCK: '/tmp/agent',
    RANDOM_APP_PASSWORD: 'pw',
  };
  const base = {
    PATH: '/usr/bin:/bin',
    HOME: '/root',
    LANG: 'C.UTF-8',
    LC_ALL: 'C.UTF-8',
    LC_TIME: 'en_GB.UTF-8',
    TZ: 'UTC',
    TMPDIR: '/var/tmp',
    GOMAXPROCS: '2',
  };
  assert.deepEqual(childEnv(source, ETCD_PREFIXES), { ...base, ETCD_MAX_TXN_OPS: '128', ETCD_UNSUPPORTED_ARCH: 'arm' });
  assert.deepEqual(childEnv(source, ETCD_TOOL_PREFIXES, { ETCDCTL_API: '3' }), {
    ...base,
    ETCD_MAX_TXN_OPS: '128',
    ETCD_UNSUPPORTED_ARCH: 'arm',
    ETCDCTL_DIAL_TIMEOUT: '3s',
    ETCDCTL_API: '3',
  });
  // even a caller asking for every prefix does not get ETCDSNAP_* or AWS_*
  const all = childEnv(source, ['E', 'A', '']);
  assert.ok(!Object.keys(all).some((k) => k.startsWith('ETCDSNAP_') || k.startsWith('AWS_')));
  assert.deepEqual(childEnv({}, ETCD_PREFIXES), {}, 'unset variables stay unset');
  assert.equal(source.ETCDSNAP_TOKEN, 'K10abc::server:s3cr3t-value', 'the source is not changed');
});

// ---------------------------------------------------------------------------------------
// secrets given as flags

test('a secret option given as a flag warns (names the safer ways from the schema, never the value); from env or config it does not', async () => {
  const resolveWith = async (specs: readonly OptionSpec[], argv: string[], env: Record<string, string> = {}, config = '') => {
    const dir = tempDir();
    writeFileSync(path.join(dir, 'config.yaml'), config);
    const cmd = addOptions(new Command('x').exitOverride(), specs).action(() => undefined);
    await cmd.parseAsync(normalizeBooleanArgs(['--config', path.join(dir, 'config.yaml'), ...argv], specs), { from: 'user' });
    const warnings: string[] = [];
    await resolveValues(cmd, specs, { env, warn: (m) => warnings.push(m) });
    return warnings;
  };
  const value = 'flag-secret-value-0123456789';
  let w = await resolveWith(SERVER_OPTIONS, ['--token', value]);
  assert.equal(w.length, 1);
  assert.match(
    w[0] ?? '',
    /^--token was given on the command line, so its value was visible to other local users in ps \(\/proc\/<pid>\/cmdline\) while etcdsnap started; pass it with --token-file, \$ETCDSNAP_TOKEN or the config file \(key token\) instead$/,
  );
  w = await resolveWith(SERVER_OPTIONS, ['-t', value]);
  assert.match(w[0] ?? '', /^--token was given/, 'the short flag too');
  w = await resolveWith(SERVER_OPTIONS, ['--etcd-s3-secret-key', value, '--etcd-s3-access-key', value]);
  assert.equal(w.length, 2);
  assert.ok(
    w.some((m) => /^--etcd-s3-secret-key was given .* pass it with \$AWS_SECRET_ACCESS_KEY or the config file \(key etcd-s3-secret-key\) instead$/.test(m)),
  );
  assert.ok(w.some((m) => /^--etcd-s3-access-key was given .*\$AWS_ACCESS_KEY_ID/.test(m)));
  w = await resolveWith(SNAPSHOT_CLI_OPTIONS, ['--etcd-s3-session-token', value, '--etcd-token', value]);
  assert.ok(
    w.some((m) => /^--etcd-s3-session-token was given .*\$AWS_SESSION_TOKEN or the config file \(key s3-session-token\)/.test(m)),
    'an alias is named as typed',
  );
  assert.ok(w.some((m) => /^--etcd-token was given .*\$ETCDSNAP_ETCD_TOKEN/.test(m)));
  assert.ok(
    w.every((m) => !m.includes(value)),
    'never the value',
  );
  // the schema's `secret: true` is the only source: any spec marked so is warned about
  const custom: OptionSpec[] = [
    { key: 'config', type: 'string', description: 'c' },
    { key: 'pin', type: 'string', secret: true, description: 'p' },
    { key: 'name', type: 'string', description: 'n' },
  ];
  assert.deepEqual(
    (await resolveWith(custom, ['--pin', '1234', '--name', 'x'])).map((m) => m.split(' ')[0]),
    ['--pin'],
  );
  // not on the command line: no warning
  assert.deepEqual(await resolveWith(SERVER_OPTIONS, [], { ETCDSNAP_TOKEN: value, AWS_SECRET_ACCESS_KEY: value }), []);
  assert.deepEqual(await resolveWith(SERVER_OPTIONS, [], {}, `token: ${value}\n`), []);
});

// ---------------------------------------------------------------------------------------
// log scrubbing

test('logs scrub every registered secret in every form (raw, JSON-escaped, double-escaped, URL-encoded, basic auth), any length, in JSON and text', () => {
  const secrets = ['Q', 'Zq', 'x7%', 'pa"ss\\wo/rd', 'ünï-cødé key+/=', `K10${'f'.repeat(64)}::server:inner-secret-part`, 'inner-secret-part'];
  for (const s of secrets) registerSecret(s);
  const forms = (s: string): string[] => {
    const esc = (t: string): string => JSON.stringify(t).slice(1, -1);
    return [s, esc(s), esc(esc(s)), encodeURIComponent(s), Buffer.from(`server:${s}`).toString('base64')];
  };
  for (const format of ['json', 'text'] as const) {
    const lines: string[] = [];
    const logger = createLogger({ format, debug: true, destination: { write: (l: string) => lines.push(l) } });
    for (const s of secrets) {
      logger.info(`message with ${s} inside`);
      logger.info({ field: s, nested: { deeper: `pre-${s}-post` } }, 'field');
      logger.warn({ line: JSON.stringify({ level: 'warn', msg: `etcd said ${s}` }) }, 'a JSON text inside a field');
      logger.info({ url: `https://host/x?key=${encodeURIComponent(s)}&a=b` }, 'url');
      logger.info({ header: `Basic ${Buffer.from(`server:${s}`).toString('base64')}` }, 'auth header');
      logger.error({ err: new Error(`failed with ${s}`) }, 'error object');
    }
    assert.equal(lines.length, secrets.length * 6, format);
    const all = lines.join('');
    for (const s of secrets) {
      for (const f of forms(s)) assert.ok(!all.includes(f), `${format}: ${JSON.stringify(f)} (a form of ${JSON.stringify(s)}) leaked`);
    }
    assert.ok(all.includes(REDACTED));
    if (format === 'json') {
      for (const l of lines) assert.doesNotThrow(() => JSON.parse(l), `still JSON: ${l}`);
    } else {
      for (const l of lines) assert.match(l, /^\[\d{4}-\d\d-\d\d [\d:.]+ [+-]\d{4}\] (INFO|WARN|ERROR):/, `pretty text: ${l}`);
    }
  }
});

// ---------------------------------------------------------------------------------------
// integration: real servers

/** An empty config file beside `dataDir` (runCli does not make one). */
function configFor(dataDir: string, ports: Ports): string {
  const f = path.join(path.dirname(dataDir), `config-${ports.supervisor}.yaml`);
  if (!existsSync(f)) writeFileSync(f, '');
  return f;
}

function serverArgs(dataDir: string, ports: Ports): string[] {
  return [
    'server',
    '--config',
    configFor(dataDir, ports),
    '--log-format',
    'json',
    '--data-dir',
    dataDir,
    '--supervisor-port',
    String(ports.supervisor),
    '--etcd-client-port',
    String(ports.client),
    '--etcd-peer-port',
    String(ports.peer),
  ];
}

test("etcd runs with a minimal environment: no token, no AWS keys in /proc/<etcd>/environ, the user's ETCD_* kept", async () => {
  const token = randomBytes(16).toString('hex');
  const aws = { AWS_SECRET_ACCESS_KEY: `aws-secret-${randomBytes(8).toString('hex')}`, AWS_ACCESS_KEY_ID: `AKIA${randomBytes(8).toString('hex')}` };
  const s = await startReady({ args: ['--etcd-disable-snapshots'], env: { ETCDSNAP_TOKEN: token, ...aws, ETCD_MAX_TXN_OPS: '128', UNRELATED_VARIABLE: 'x' } });
  const own = readFileSync(`/proc/${s.pid}/environ`, 'utf8').split('\0');
  assert.ok(own.includes(`ETCDSNAP_TOKEN=${token}`), 'the server itself got the token in its environment');
  const etcdPid = s.etcdPid();
  assert.ok(etcdPid !== undefined);
  const env = readFileSync(`/proc/${etcdPid}/environ`, 'utf8');
  const cmdline = readFileSync(`/proc/${etcdPid}/cmdline`, 'utf8');
  assert.match(cmdline, /etcd/, 'the pid is etcd');
  for (const v of [token, aws.AWS_SECRET_ACCESS_KEY, aws.AWS_ACCESS_KEY_ID]) assert.ok(!env.includes(v), `a secret is in etcd's environment`);
  const names = env
    .split('\0')
    .filter(Boolean)
    .map((kv) => kv.split('=')[0]);
  assert.ok(!names.some((n) => n?.startsWith('ETCDSNAP_') || n?.startsWith('AWS_') || n === 'UNRELATED_VARIABLE'), names.join(' '));
  assert.ok(env.split('\0').includes('ETCD_MAX_TXN_OPS=128'), "the user's ETCD_* variable reaches etcd");
  assert.ok(names.includes('PATH'));
  assert.equal(await s.stop(), 0);
});

test('a short --token, --token-file or $ETCDSNAP_TOKEN on a fresh data dir is refused with one line, nothing created', async () => {
  const ports = await freePorts();
  const dir = tempDir();
  const tokenFile = path.join(dir, 'token');
  writeFileSync(tokenFile, 'Zq9\n');
  chmodSync(tokenFile, 0o600);
  const ways: Array<{ args: string[]; env: Record<string, string> }> = [
    { args: ['--token', 'Zq9'], env: {} },
    { args: ['--token-file', tokenFile], env: {} },
    { args: [], env: { ETCDSNAP_TOKEN: 'Zq9' } },
  ];
  for (const [i, way] of ways.entries()) {
    const dataDir = path.join(dir, `data-${i}`);
    const r = runCli([...serverArgs(dataDir, ports), ...way.args], way.env);
    assert.equal(r.code, 1, r.stderr);
    const errors = r.stderr.split('\n').filter((l) => l.startsWith('error: '));
    assert.deepEqual(errors, [
      "error: the token's secret has 3 characters; a new cluster needs at least 16, because every snapshot holds the cluster CA key sealed with it, open to offline guessing by whoever gets a snapshot file; use a random one (openssl rand -hex 16) or omit --token/--token-file/$ETCDSNAP_TOKEN to have one generated",
    ]);
    assert.ok(!r.stderr.includes('Zq9'));
    assert.ok(!existsSync(dataDir), 'the data dir was not created');
  }
  // a one-character secret made of a letter the message uses: the message is not masked
  const r = runCli([...serverArgs(path.join(dir, 'data-e'), ports), '--token', 'e']);
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    /^error: the token's secret has 1 character; a new cluster needs at least 16, because every snapshot holds the cluster CA key sealed with it/m,
  );
});

test('an existing data dir whose token is short starts, with a loud warning', async () => {
  const dataDir = path.join(tempDir(), 'data');
  mkdirSync(path.join(dataDir, 'server'), { recursive: true, mode: 0o700 });
  writeFileSync(path.join(dataDir, 'server', 'token'), 'short-secret\n', { mode: 0o600 });
  const s = await startReady({ dataDir, args: ['--etcd-disable-snapshots'] });
  const warn = await s.waitFor((l) => l.level === 'warn' && /token's secret has only 12 characters \(under 16\)/.test(String(l.msg)));
  assert.match(String(warn.msg), /offline guessing/);
  assert.match(s.token(), /::server:short-secret$/, 'the existing token is kept');
  assert.equal(await s.stop(), 0);
});

test('a version 1 bootstrap text in etcd is re-sealed as version 2 at the next start; a --token flag warns', async () => {
  const s = await startReady({ args: ['--etcd-disable-snapshots'] });
  const token = s.token();
  const secret = token.split('::server:')[1] ?? '';
  const tls = path.join(s.dataDir, 'server', 'tls');
  const ca = { certPem: readFileSync(path.join(tls, 'server-ca.crt'), 'utf8'), keyPem: readFileSync(path.join(tls, 'server-ca.key'), 'utf8') };
  const get = (srv: ServerProcess): string => etcdctl(srv, ['get', BOOTSTRAP_KEY, '--print-value-only']).stdout.trim();
  assert.equal((JSON.parse(get(s)) as { v: number }).v, 2, 'a new cluster stores version 2');
  const v1 = craft(ca, secret, V1);
  assert.equal(etcdctl(s, ['put', BOOTSTRAP_KEY, v1]).code, 0);
  assert.equal(get(s), v1);
  assert.equal(await s.stop(), 0);

  const again = await startReady({ dataDir: s.dataDir, ports: s.ports, args: ['--etcd-disable-snapshots', '--token', token] });
  const text = get(again);
  const o = JSON.parse(text) as { v: number; kdf: unknown };
  assert.equal(o.v, 2);
  assert.deepEqual(o.kdf, { name: 'scrypt', N: 131072, r: 8, p: 1 });
  assert.deepEqual(await openBootstrap(text, secret), { ok: true, ca });
  assert.ok(again.lines.some((l) => l.msg === 'sealed the cluster CA in etcd again with the current key derivation'));
  // the flag: a warning that says where the value was visible and where to put it instead
  const warn = again.lines.find((l) => l.level === 'warn' && String(l.msg).startsWith('--token was given on the command line'));
  assert.ok(warn, again.raw.join('\n'));
  assert.match(String(warn.msg), /visible to other local users in ps .* pass it with --token-file, \$ETCDSNAP_TOKEN or the config file/);
  assert.ok(!again.raw.join('\n').includes(secret), 'the secret is in no log line');
  const cmdline = readFileSync(`/proc/${again.pid}/cmdline`, 'utf8');
  assert.ok(!cmdline.includes(secret), 'the process title hides it now');
  // the CLI warns the same way for its own secret flag
  const ls = snapshotCli(again, ['ls', '--etcd-token', token]);
  assert.equal(ls.code, 0, ls.stderr);
  assert.match(ls.stderr, /^warning: --etcd-token was given on the command line, .*\$ETCDSNAP_ETCD_TOKEN/m);
  assert.ok(!ls.stderr.includes(secret));
  assert.equal(await again.stop(), 0);
});

test('the restore tool (etcdctl/etcdutl) runs with a minimal environment', async () => {
  // a recording wrapper first on PATH: it saves its environment, then runs the real etcdctl
  const shimDir = tempDir();
  const dump = path.join(shimDir, 'env.txt');
  writeFileSync(path.join(shimDir, 'etcdutl'), `#!/bin/sh\nenv > '${dump}'\nexec etcdctl "$@"\n`, { mode: 0o755 });
  const s = await startReady({ args: ['--etcd-disable-snapshots'] });
  assert.equal(etcdctl(s, ['put', 'k', 'v']).code, 0);
  const saved = snapshotCli(s, ['save']);
  assert.equal(saved.code, 0, saved.stderr);
  const name = /^Snapshot (\S+) saved\./.exec(saved.stdout)?.[1] ?? '';
  assert.equal(await s.stop(), 0);
  const awsSecret = `aws-secret-${randomBytes(8).toString('hex')}`;
  const token = s.token();
  const r = runCli(
    [...serverArgs(s.dataDir, s.ports), '--cluster-reset', `--cluster-reset-restore-path=${path.join(s.dataDir, 'server', 'db', 'snapshots', name)}`],
    {
      PATH: `${shimDir}:${process.env.PATH ?? ''}`,
      ETCDSNAP_TOKEN: token,
      AWS_SECRET_ACCESS_KEY: awsSecret,
      ETCDCTL_DIAL_TIMEOUT: '3s',
    },
    180_000,
  );
  assert.equal(r.code, 0, r.stderr);
  const env = readFileSync(dump, 'utf8');
  assert.ok(!env.includes(token) && !env.includes(token.split('::server:')[1] ?? '-') && !env.includes(awsSecret), "no secret in the tool's environment");
  const lines = env.split('\n');
  assert.ok(lines.includes('ETCDCTL_API=3'));
  assert.ok(lines.includes('ETCDCTL_DIAL_TIMEOUT=3s'), "the user's ETCDCTL_* is kept");
  assert.ok(!lines.some((l) => l.startsWith('ETCDSNAP_') || l.startsWith('AWS_')), env);
});
