/** Which inspect options (config/schema.ts `INSPECT_OPTIONS`) each inspection subcommand takes. */
import { INSPECT_OPTIONS, type OptionSpec, specOf } from '../config/schema.js';

/** The inspection subcommands, for the "unknown command" hint. */
export const INSPECT_COMMANDS = ['status', 'keys', 'get', 'stats', 'diff', 'restore-keys'] as const;

const spec = (key: string): OptionSpec => specOf(INSPECT_OPTIONS, key);

/** The inspect options each subcommand takes. */
export const INSPECT_FLAGS: Record<(typeof INSPECT_COMMANDS)[number], readonly OptionSpec[]> = {
  status: [spec('output')],
  keys: [spec('output'), spec('prefix'), spec('limit'), spec('revision')],
  get: [spec('output'), spec('revision')],
  stats: [spec('output'), spec('prefix')],
  diff: [spec('output'), spec('prefix'), spec('keys')],
  'restore-keys': [spec('prefix'), spec('key'), spec('delete-key'), spec('revision'), spec('apply'), spec('plan-revision')],
};
