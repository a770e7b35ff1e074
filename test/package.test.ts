/**
 * The package (docs/install.md "Install from the package"): `npm run package` (its packing
 * step, on the dist/ the test run built) writes
 * out/etcdsnap-<version>.tgz and out/install-etcdsnap.sh; the installer, run from out/ with
 * ETCDSNAP_ROOT on a temp tree, installs the tarball with npm into a temp global prefix with
 * an empty cache, an unreachable registry and a temp HOME (so the artefact alone suffices:
 * no registry, no cache, nothing from this checkout), and writes the unit and config under the
 * temp root. The installed `etcdsnap --version` names the version and the commit of the build; the
 * installed `etcdsnap server` starts a real etcd and serves, and the installed
 * `etcdsnap etcd-snapshot save` and `ls` work against it. Last, the installed
 * `etcdsnap uninstall --root` removes the unit and the npm package and keeps the data dir.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { cleanEnv, freePorts, ROOT, ServerProcess, tempDir } from './helpers/server.js';

const version = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
/** The commit the build wrote (test/version.test.ts checks it is this checkout's HEAD). */
const built = (): string => (JSON.parse(readFileSync(path.join(ROOT, 'dist', 'build-info.json'), 'utf8')) as { commit: string }).commit;

let server: ServerProcess | undefined;
after(() => {
  if (server?.exitCode === undefined) server?.child.kill('SIGKILL');
});

test('package → install-etcdsnap.sh installs the tarball alone (offline, empty cache) → --version, server, etcd-snapshot save/ls → uninstall keeps the data dir', async (t) => {
  const t0 = Date.now();
  // `npm run package` is the build, then scripts/package.ts. The build already ran (scripts/test.sh
  // runs install.sh, which builds): building again here would rewrite dist/ under the servers
  // that other test files run from it at the same time.
  const scripts = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
  assert.equal(scripts.package, 'npm run -s build && node --import tsx scripts/package.ts');
  const packed = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/package.ts'], { cwd: ROOT, encoding: 'utf8', env: cleanEnv() });
  assert.equal(packed.status, 0, packed.stderr);
  const tgz = path.join(ROOT, 'out', `etcdsnap-${version}.tgz`);
  const commit = built();
  assert.match(
    packed.stdout,
    new RegExp(`^out/etcdsnap-${version.replace(/\./g, '\\.')}\\.tgz \\(etcdsnap ${version}, commit ${commit}, \\d+ bundled packages\\)$`, 'm'),
  );
  const t1 = Date.now();

  const tmp = tempDir('etcdsnap-package-');
  const [prefix, cache, home, root] = ['prefix', 'cache', 'home', 'root'].map((d) => path.join(tmp, d)) as [string, string, string, string];
  for (const d of [cache, home, root]) mkdirSync(d);
  const env = cleanEnv({
    HOME: home,
    ETCDSNAP_ROOT: root,
    npm_config_prefix: prefix,
    npm_config_cache: cache,
    npm_config_registry: 'http://127.0.0.1:9/', // nothing listens there: any registry fetch fails
    npm_config_update_notifier: 'false',
  });
  delete env.NODE_PATH;
  delete env.NODE_OPTIONS;
  const installed = spawnSync('bash', [path.join(ROOT, 'out', 'install-etcdsnap.sh'), tgz], { cwd: tmp, encoding: 'utf8', env });
  assert.equal(installed.status, 0, `${installed.stdout}\n${installed.stderr}`);
  const t2 = Date.now();
  t.diagnostic(`packing: ${((t1 - t0) / 1000).toFixed(0)} s, install: ${((t2 - t1) / 1000).toFixed(0)} s, tarball: ${statSync(tgz).size} bytes`);

  const pkgDir = path.join(prefix, 'lib', 'node_modules', 'etcdsnap');
  assert.equal(lstatSync(pkgDir).isDirectory(), true, 'a copy, not a link to the checkout');
  assert.equal(existsSync(path.join(pkgDir, 'node_modules', 'commander', 'package.json')), true, 'dependencies come from the tarball');
  assert.equal(existsSync(path.join(pkgDir, 'src')), false, 'no sources');
  const bin = path.join(prefix, 'bin', 'etcdsnap');
  const versionLine = `etcdsnap ${version} (commit ${commit})`;
  assert.ok(installed.stdout.split('\n').includes(versionLine), 'the installer prints the version');
  const v = spawnSync(bin, ['--version'], { cwd: tmp, encoding: 'utf8', env });
  assert.equal(v.status, 0, v.stderr);
  assert.equal(v.stdout, `${versionLine}\n`);

  const unit = readFileSync(path.join(root, 'etc/systemd/system/etcdsnap.service'), 'utf8');
  assert.match(unit, new RegExp(`^ExecStart=${path.join(pkgDir, 'bin', 'etcdsnap')} server --config ${root}/etc/etcdsnap/config.yaml$`, 'm'));
  assert.equal(statSync(path.join(root, 'etc/etcdsnap/config.yaml')).mode & 0o777, 0o600);
  assert.equal(statSync(path.join(root, 'etc/etcdsnap/etcdsnap.env')).mode & 0o777, 0o600);
  assert.match(installed.stdout, /^systemd is not running here: etcdsnap is installed but not started/m);

  // the installed program runs a real server, from a folder outside the checkout
  const dataDir = path.join(root, 'var/lib/etcdsnap');
  const ports = await freePorts();
  const cfg = path.join(root, 'etc/etcdsnap/config.yaml');
  const child = spawn(
    bin,
    [
      'server',
      '--config',
      cfg,
      '--log-format',
      'json',
      '--data-dir',
      dataDir,
      '--node-name',
      'pkg1',
      '--supervisor-port',
      String(ports.supervisor),
      '--etcd-client-port',
      String(ports.client),
      '--etcd-peer-port',
      String(ports.peer),
    ],
    { cwd: tmp, env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  server = new ServerProcess(child, dataDir, ports);
  await server.ready();
  const snap = (args: string[]): { code: number | null; stdout: string; stderr: string } => {
    const r = spawnSync(bin, ['etcd-snapshot', ...args, '--config', cfg, '--data-dir', dataDir, '--etcd-server', server?.url ?? ''], {
      cwd: tmp,
      env,
      encoding: 'utf8',
    });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const saved = snap(['save', '--name', 'pkg']);
  assert.equal(saved.code, 0, saved.stderr);
  const name = /^Snapshot (pkg-pkg1-\d+) saved\.$/m.exec(saved.stdout)?.[1];
  assert.ok(name, saved.stdout);
  const ls = snap(['ls']);
  assert.equal(ls.code, 0, ls.stderr);
  assert.match(ls.stdout, /^Name\s+Location\s+Size\s+Created$/m);
  assert.match(ls.stdout, new RegExp(`^${name} +file://${dataDir}/server/db/snapshots/${name} +\\d+ `, 'm'));
  assert.equal(await server.stop(), 0);

  // the installed uninstall removes the unit and the npm package, keeps the data dir and says so
  const un = spawnSync(bin, ['uninstall', '--root', root], { cwd: tmp, env, encoding: 'utf8' });
  assert.equal(un.status, 0, un.stderr);
  assert.match(un.stdout, new RegExp(`^kept ${dataDir} \\(data dir: etcd data, certificates, token, local snapshots\\)$`, 'm'));
  assert.match(un.stdout, new RegExp(`^removed the program \\(npm uninstall -g --prefix ${prefix} etcdsnap\\)$`, 'm'));
  assert.equal(existsSync(pkgDir), false);
  assert.equal(existsSync(bin), false);
  assert.equal(existsSync(path.join(root, 'etc/systemd/system/etcdsnap.service')), false);
  assert.deepEqual(readdirSync(path.join(dataDir, 'server/db/snapshots')).includes(name), true, 'the snapshot is kept');
});
