/**
 * The CLI's start-up loads only what the command needs (issue 17: `etcd-snapshot save`
 * against an agent pays the CLI's start-up on every call). Each run records every module
 * Node's ESM loader loads (a `module.register` hook in a temp dir) and checks that a
 * snapshot command does not load the daemons, install-service or yaml, while `--help` and
 * a mistyped command still see every command.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { BIN } from './helpers/server.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'etcdsnap-startup-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const hooks = path.join(dir, 'hooks.mjs');
// Node 20 runs loader hooks on their own thread, whose stderr writes are lost when the CLI
// calls process.exit (as --help does): the hook appends to a file, synchronously, instead
writeFileSync(
  hooks,
  "import { appendFileSync } from 'node:fs';\nexport async function load(url, context, next) { appendFileSync(process.env.LOADED_LOG, url + '\\n'); return next(url, context); }\n",
);
const register = path.join(dir, 'register.mjs');
writeFileSync(register, `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(hooks).href)});\n`);

let runs = 0;
/** The modules (paths after dist/ or node_modules/) one run of `etcdsnap <args>` loaded, and its output. */
function loaded(args: string[]): Promise<{ modules: string[]; stdout: string; stderr: string }> {
  const log = path.join(dir, `loaded-${++runs}.txt`);
  writeFileSync(log, '');
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', register, BIN, ...args], { encoding: 'utf8', env: { ...process.env, LOADED_LOG: log } }, (_err, stdout, stderr) => {
      const modules = readFileSync(log, 'utf8')
        .split('\n')
        .filter((l) => l.startsWith('file://'))
        .map((l) => l.replace(/^file:\/\/.*?\/(dist|node_modules)\//, '$1/'));
      resolve({ modules, stdout, stderr });
    });
  });
}

const DAEMON_MODULES = [
  'dist/cli/server-command.js',
  'dist/cli/agent-command.js',
  'dist/cli/install-service-command.js',
  'dist/cli/uninstall-command.js',
  'dist/cli/daemon.js',
];

test('etcd-snapshot save and ls load neither the daemons, install-service nor yaml', async () => {
  for (const args of [
    ['etcd-snapshot', 'save', '--help'],
    ['etcd-snapshot', 'ls', '--help'],
  ]) {
    const r = await loaded(args);
    assert.ok(r.modules.includes('dist/cli/etcd-snapshot-command.js'), `the hook saw the command's module: ${r.modules.join(' ')}`);
    for (const m of DAEMON_MODULES) assert.ok(!r.modules.includes(m), `${args.join(' ')} loaded ${m}`);
    assert.ok(!r.modules.some((m) => m.startsWith('node_modules/yaml/')), `${args.join(' ')} loaded yaml`);
    assert.match(r.stdout, /^Usage: etcdsnap etcd-snapshot /);
  }
});

test('server --help loads the server command only; --help and a typo still know every command', async () => {
  const server = await loaded(['server', '--help']);
  assert.ok(server.modules.includes('dist/cli/server-command.js'));
  assert.ok(!server.modules.includes('dist/cli/etcd-snapshot-command.js'), 'server loaded etcd-snapshot');
  assert.ok(!server.modules.includes('dist/cli/agent-command.js'), 'server loaded agent');

  const help = await loaded(['--help']);
  for (const name of ['server', 'agent', 'etcd-snapshot', 'install-service', 'uninstall'])
    assert.match(help.stdout, new RegExp(`^  ${name} \\[options\\]`, 'm'));

  const typo = await loaded(['etcd-snapshto', 'ls']);
  assert.match(typo.stderr, /unknown command 'etcd-snapshto'/);
  assert.match(typo.stderr, /Did you mean etcd-snapshot\?/);
});
