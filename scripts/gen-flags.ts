/** Writes docs/reference/flags.md from the option schema (`npm run docs:flags`). */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderFlagReference } from '../src/config/flag-reference.js';

const out = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'docs', 'reference', 'flags.md');
writeFileSync(out, renderFlagReference());
console.log(`wrote ${out}`);
