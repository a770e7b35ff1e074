/**
 * Writes dist/build-info.json, `{ "commit": "<short hash>[-dirty]" }`, after `tsc` (the
 * `build` script): what `etcdsnap --version` names as its commit (src/cli/version.ts). The
 * hash is `git rev-parse --short HEAD`, with `-dirty` when tracked files differ from it; outside
 * a git checkout (a source tarball) it is `unknown`. The version is not copied here: it is read
 * from package.json, its one source.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));

/** The commit of the checkout at `dir`, or 'unknown' when it is not a git checkout. */
export function commitOf(dir: string): string {
  const head = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: dir, encoding: 'utf8' });
  if (head.status !== 0 || !/^[0-9a-f]{4,40}$/.test(head.stdout.trim())) return 'unknown';
  const dirty = spawnSync('git', ['diff', '--quiet', 'HEAD', '--'], { cwd: dir }).status === 1;
  return `${head.stdout.trim()}${dirty ? '-dirty' : ''}`;
}

// run as a script (not imported, as test/version.test.ts does): write the file
if (process.argv[1] !== undefined && pathToFileURL(path.resolve(process.argv[1])).href === import.meta.url) {
  const out = path.join(root, 'dist', 'build-info.json');
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify({ commit: commitOf(root) })}\n`);
}
