/**
 * `npm run package` (after `npm run build`): writes out/etcdsnap-<version>.tgz, an npm tarball
 * that `npm install -g ./out/etcdsnap-<version>.tgz` installs with no registry and no cache
 * (docs/install.md, "Install from the package"), and out/install-etcdsnap.sh, the one-command
 * installer that takes it.
 *
 * The tarball holds bin/, dist/ (without source maps, with build-info.json), README.md, a
 * package.json without scripts or devDependencies, and every runtime dependency in
 * node_modules/ (`bundleDependencies`): the production tree of package-lock.json (entries not
 * marked `dev`), copied from this checkout's node_modules, so it is exactly what `npm ci`
 * installed and tested, less their type declarations and source maps. Optional platform packages that are not installed here (the other
 * platforms' @node-rs/crc32 binaries) are left out: the tarball is for this machine's
 * platform (linux x64 glibc on the build machines).
 *
 * Steps: a clean out/stage/, the copies, `npm pack` there. Exits non-zero with a one-line
 * message when dist/ is missing or a dependency of the lock file is not installed.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const outDir = path.join(root, 'out');
const stage = path.join(outDir, 'stage');

interface LockEntry {
  dev?: boolean;
  optional?: boolean;
  link?: boolean;
}

function fail(message: string): never {
  process.stderr.write(`package: ${message}\n`);
  process.exit(1);
}

const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as Record<string, unknown>;
const lock = JSON.parse(readFileSync(path.join(root, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };
if (!existsSync(path.join(root, 'dist', 'cli', 'main.js')) || !existsSync(path.join(root, 'dist', 'build-info.json')))
  fail('dist/ is not built: run `npm run build` first');

rmSync(stage, { recursive: true, force: true });
mkdirSync(stage, { recursive: true });
cpSync(path.join(root, 'bin'), path.join(stage, 'bin'), { recursive: true });
cpSync(path.join(root, 'dist'), path.join(stage, 'dist'), { recursive: true, filter: (src) => !src.endsWith('.map') });
copyFileSync(path.join(root, 'README.md'), path.join(stage, 'README.md'));

/** Type declarations and source maps: never loaded at run time (a third of the files). */
const typesOnly = (p: string): boolean => /\.d\.[cm]?ts$|\.map$/.test(p) || path.basename(p) === 'dist-types';

// The production tree: each package folder without its own node_modules/ (nested entries of
// the lock file are copied on their own, so a dev-only nested package never comes along).
let copied = 0;
for (const [where, entry] of Object.entries(lock.packages)) {
  if (where === '' || entry.dev === true || entry.link === true) continue;
  const from = path.join(root, where);
  if (!existsSync(from)) {
    if (entry.optional === true) continue; // another platform's binary
    fail(`${where} is in package-lock.json but not installed: run \`npm ci\` first`);
  }
  cpSync(from, path.join(stage, where), {
    recursive: true,
    dereference: true,
    filter: (src) => src === from || (!path.relative(from, src).split(path.sep).includes('node_modules') && !typesOnly(src)),
  });
  copied++;
}

const dependencies = (pkg.dependencies ?? {}) as Record<string, string>;
const shipped = {
  name: pkg.name,
  version: pkg.version,
  description: pkg.description,
  type: pkg.type,
  license: pkg.license,
  private: true,
  engines: pkg.engines,
  bin: pkg.bin,
  files: ['bin', 'dist', 'README.md'],
  dependencies,
  bundleDependencies: Object.keys(dependencies),
};
writeFileSync(path.join(stage, 'package.json'), `${JSON.stringify(shipped, null, 2)}\n`);

const packed = spawnSync('npm', ['pack', '--pack-destination', outDir, '--loglevel=error', '--ignore-scripts'], { cwd: stage, encoding: 'utf8' });
if (packed.status !== 0) fail(`npm pack failed: ${packed.stderr.trim()}`);
const tgz = path.join(outDir, packed.stdout.trim().split('\n').pop() ?? '');
if (!existsSync(tgz)) fail(`npm pack did not write ${tgz}`);
copyFileSync(path.join(root, 'scripts', 'install-etcdsnap.sh'), path.join(outDir, 'install-etcdsnap.sh'));
rmSync(stage, { recursive: true, force: true });
const built = JSON.parse(readFileSync(path.join(root, 'dist', 'build-info.json'), 'utf8')) as { commit: string };
process.stdout.write(`${path.relative(process.cwd(), tgz)} (etcdsnap ${String(pkg.version)}, commit ${built.commit}, ${copied} bundled packages)\n`);
process.stdout.write(`${path.relative(process.cwd(), path.join(outDir, 'install-etcdsnap.sh'))}\n`);
