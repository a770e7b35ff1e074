/** The `--help` shown in the docs is what the built CLI prints (kept apart from flag-reference.test.ts, which mutation testing runs without a build). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { BIN, ROOT } from './helpers/server.js';

test('the `etcdsnap server --help` shown in docs/server.md is what the built CLI prints', () => {
  const doc = readFileSync(path.join(ROOT, 'docs', 'server.md'), 'utf8');
  const start = doc.indexOf('Usage: etcdsnap server');
  assert.ok(start >= 0, 'docs/server.md shows `etcdsnap server --help`');
  const shown = doc.slice(start, doc.indexOf('```', start)).trim();
  const printed = execFileSync(process.execPath, [BIN, 'server', '--help'], { encoding: 'utf8' }).trim();
  assert.equal(shown, printed, 'docs/server.md has a stale `etcdsnap server --help`: paste the output of `bin/etcdsnap server --help`');
});

test('the `etcdsnap agent --help` shown in docs/agent.md is what the built CLI prints', () => {
  const doc = readFileSync(path.join(ROOT, 'docs', 'agent.md'), 'utf8');
  const start = doc.indexOf('Usage: etcdsnap agent');
  assert.ok(start >= 0, 'docs/agent.md shows `etcdsnap agent --help`');
  const shown = doc.slice(start, doc.indexOf('```', start)).trim();
  const printed = execFileSync(process.execPath, [BIN, 'agent', '--help'], { encoding: 'utf8' }).trim();
  assert.equal(shown, printed, 'docs/agent.md has a stale `etcdsnap agent --help`: paste the output of `bin/etcdsnap agent --help`');
});
