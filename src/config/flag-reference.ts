/**
 * The flag reference (docs/reference/flags.md), rendered from the option schema so that the
 * page cannot drift from `--help`, the environment lookup and the config-file reader.
 * Pure: `renderFlagReference()` returns the whole page; `npm run docs:flags` writes it and
 * `test/flag-reference.test.ts` fails when the committed page differs.
 */
import {
  AGENT_OPTIONS,
  INSPECT_OPTIONS,
  INSTALL_SERVICE_OPTIONS,
  RESTORE_MEMBER_OPTIONS,
  RESTORE_SOURCE_OPTIONS,
  SERVER_OPTIONS,
  SNAPSHOT_CLI_OPTIONS,
  UNINSTALL_OPTIONS,
  type OptionSpec,
} from './schema.js';

/** Markdown table cells must not break the row. */
const cell = (text: string): string => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');

function flagCell(s: OptionSpec): string {
  const value = s.type === 'boolean' ? '' : ` <${s.valueName ?? 'value'}>`;
  const names = [s.short ? `-${s.short}` : undefined, `--${s.key}${value}`].filter((n): n is string => n !== undefined);
  const aliases = (s.aliases ?? []).map((a) => `--${a}`);
  return `\`${names.join(', ')}\`${aliases.length > 0 ? ` (also ${aliases.map((a) => `\`${a}\``).join(', ')})` : ''}`;
}

function defaultCell(s: OptionSpec): string {
  if (s.defaultText !== undefined) return cell(s.defaultText);
  if (s.default === undefined) return '';
  const v = Array.isArray(s.default) ? s.default.join(',') : String(s.default);
  return v === '' ? '(empty)' : `\`${cell(v)}\``;
}

function describe(s: OptionSpec): string {
  const extra = [
    s.choices ? `one of: ${s.choices.join(', ')}` : undefined,
    s.secret ? 'secret: never logged; a flag warns, prefer the env var or the config file' : undefined,
  ].filter((e): e is string => e !== undefined);
  return cell(extra.length > 0 ? `${s.description} (${extra.join('; ')})` : s.description);
}

function table(specs: readonly OptionSpec[]): string {
  const rows = specs
    .filter((s) => s.hidden !== true)
    .map((s) => `| ${flagCell(s)} | ${s.env ? `\`${s.env}\`` : ''} | \`${s.key}\` | ${defaultCell(s)} | ${describe(s)} |`);
  return ['| flag | environment | config key | default | meaning |', '|---|---|---|---|---|', ...rows].join('\n');
}

/** The whole generated page. */
export function renderFlagReference(): string {
  return `<!-- Generated from src/config/schema.ts by \`npm run docs:flags\`; do not edit by hand. -->
# Flag reference

Every option can be given three ways, strongest first: as a flag, as its environment
variable, and as its config-file key in \`/etc/etcdsnap/config.yaml\` (or \`--config\`) and
\`config.yaml.d/*.yaml\` beside it. Values in the config file use the same syntax as flags.
A list option (\`--etcd-arg\`, \`--etcd-snapshot-api-dir\`) is repeated on the command line,
is a YAML list in the config file, and its environment variable is split at commas.

## etcdsnap server

${table(SERVER_OPTIONS)}

## etcdsnap agent

Backs up an etcd cluster that etcdsnap does not run ([docs/agent.md](../agent.md)). Its config
file is \`/etc/etcdsnap/agent.yaml\` (or \`--config\`); the connection flags are etcdctl's, with
etcdctl's environment variables.

${table(AGENT_OPTIONS)}

## etcdsnap etcd-snapshot (save, ls, delete, prune)

${table(SNAPSHOT_CLI_OPTIONS)}

## etcdsnap etcd-snapshot (status, keys, get, stats, diff, restore-keys)

These take the options above plus these ([docs/inspect.md](../inspect.md)):

${table(INSPECT_OPTIONS)}

## etcdsnap etcd-snapshot restore

A member data dir of a new cluster for etcd that etcdsnap does not run ([docs/agent.md](../agent.md#restore)).
The member flags are etcdutl's and count only on the command line (never from the environment
or a config file, where \`data-dir\` and \`name\` mean etcdsnap's):

${table(RESTORE_MEMBER_OPTIONS)}

Finding and opening the snapshot:

${table(RESTORE_SOURCE_OPTIONS)}

## etcdsnap install-service

Writes the systemd unit and the secrets file ([docs/systemd.md](../systemd.md)). Its options
count only on the command line:

${table(INSTALL_SERVICE_OPTIONS)}

## etcdsnap uninstall

Stops and removes the services and the program; keeps the config and the data dir unless
\`--purge\` ([docs/install.md](../install.md#uninstall)). Its options count only on the command
line:

${table(UNINSTALL_OPTIONS)}
`;
}
