/**
 * `etcdsnap --version` (cli/version.ts, scripts/build-info.ts; docs/install.md "Version"): the
 * built CLI prints package.json's version and the commit `npm run build` wrote into
 * dist/build-info.json (this checkout's HEAD, `-dirty` when tracked files differ); from the
 * sources, with no build-info.json beside them, the commit is `unknown`; outside a git checkout
 * the build writes `unknown`. The installed package's line is checked in test/package.test.ts.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { commitOf } from '../scripts/build-info.js';
import { buildInfo, versionLine } from '../src/cli/version.js';
import { ROOT, runCli, tempDir } from './helpers/server.js';

const version = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const head = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).stdout.trim();

test('etcdsnap --version and -V: the version from package.json and the commit of the build', () => {
  const built = (JSON.parse(readFileSync(path.join(ROOT, 'dist', 'build-info.json'), 'utf8')) as { commit: string }).commit;
  assert.match(built, new RegExp(`^${head}(-dirty)?$`), "npm run build wrote this checkout's commit");
  for (const flag of ['--version', '-V']) {
    const r = runCli([flag]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `etcdsnap ${version} (commit ${built})\n`);
  }
});

test('from the sources (no build-info.json beside them) the commit is unknown; outside git the build writes unknown', () => {
  assert.deepEqual(buildInfo(), { version, commit: 'unknown' });
  assert.equal(versionLine({ version: '1.2.3', commit: 'abc1234' }), 'etcdsnap 1.2.3 (commit abc1234)');
  assert.equal(commitOf(tempDir('etcdsnap-nogit-')), 'unknown');
  assert.match(commitOf(ROOT), new RegExp(`^${head}(-dirty)?$`));
});
