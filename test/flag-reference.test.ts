/** The committed flag reference is the one the schema renders (run `npm run docs:flags` after changing an option). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { renderFlagReference } from '../src/config/flag-reference.js';
import { AGENT_OPTIONS, RESTORE_MEMBER_OPTIONS, SERVER_OPTIONS, SNAPSHOT_CLI_OPTIONS } from '../src/config/schema.js';
import { ROOT } from './helpers/server.js';

test('docs/reference/flags.md is current with the option schema', () => {
  const committed = readFileSync(path.join(ROOT, 'docs', 'reference', 'flags.md'), 'utf8');
  assert.equal(committed, renderFlagReference(), 'docs/reference/flags.md is stale: run `npm run docs:flags` and commit it');
});

test('every visible option, its env var and its aliases appear in the reference', () => {
  const page = renderFlagReference();
  for (const s of [...SERVER_OPTIONS, ...AGENT_OPTIONS, ...RESTORE_MEMBER_OPTIONS, ...SNAPSHOT_CLI_OPTIONS].filter((o) => o.hidden !== true)) {
    assert.ok(page.includes(`--${s.key}`), s.key);
    if (s.env) assert.ok(page.includes(`\`${s.env}\``), s.env);
    for (const a of s.aliases ?? []) assert.ok(page.includes(`\`--${a}\``), a);
  }
});
