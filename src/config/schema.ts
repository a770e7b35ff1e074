/**
 * One schema for every option: its flag, environment variable, type, default, validation
 * and help. The commander options, the environment lookup, the config-file reader and the
 * API request parser (snapshot/request.ts, snapshot/s3-config.ts) all come from these specs,
 * so they cannot drift apart; docs/reference/flags.md is generated from them (npm run docs:flags).
 *
 * Contract: a value is valid when its type's parser (values.ts) accepts it, it is one of
 * `choices` (when given) and `check` (when given) passes; `checkValue` applies the last two,
 * `jsonValue` all three for a JSON field (the checks are in checks.ts). Code that needs a
 * default reads it from the spec
 * (`Values.text`/`Values.num` after resolving, `stringDefault`/`numberDefault` elsewhere),
 * never from a literal of its own.
 *
 * The specs live in these files: options-common.ts (common, S3, compression, encryption),
 * options-server.ts (`etcdsnap server`), options-agent.ts (`etcdsnap agent`), options-restore.ts
 * (`etcdsnap etcd-snapshot restore`), options-install.ts (`etcdsnap install-service`) and here
 * (`etcdsnap etcd-snapshot` and inspection); everything is imported from here.
 */
import { checkPrefix, checkRetentionPolicy, RETENTION } from './checks.js';
import type { OptionSpec } from './spec.js';
import { within } from './values.js';
import { CLI_S3_OPTIONS, COMMON_OPTIONS, COMPRESSION, ENCRYPTION_OPTIONS, SUPERVISOR_PORT } from './options-common.js';

export { checkChoices, checkValue, findSpec, jsonValue, numberDefault, type OptionSpec, specOf, stringDefault } from './spec.js';
export { CLI_S3_OPTIONS, COMMON_OPTIONS, DEFAULT_CONFIG_FILE, defaultDataDir, S3_OPTIONS, SERVER_S3_OPTIONS } from './options-common.js';
export { SERVER_OPTIONS } from './options-server.js';
export { RESTORE_MEMBER_OPTIONS, RESTORE_SOURCE_OPTIONS } from './options-restore.js';
export { AGENT_OPTIONS, AGENT_SUPERVISOR_PORT, DEFAULT_AGENT_CONFIG_FILE, defaultAgentDataDir } from './options-agent.js';
export { DEFAULT_UNIT_DIR, INSTALL_SERVICE_OPTIONS, UNINSTALL_OPTIONS } from './options-install.js';

/** Options of `etcdsnap etcd-snapshot` and its subcommands (k3s's names and aliases). */
export const SNAPSHOT_CLI_OPTIONS: readonly OptionSpec[] = [
  ...COMMON_OPTIONS,
  {
    key: 'etcd-server',
    short: 's',
    env: 'ETCDSNAP_ETCD_SERVER',
    type: 'string',
    description: 'supervisor URL of the etcdsnap server',
    defaultText: `the URL in \${data-dir}/server/supervisor-url (a running server or agent writes it), else https://127.0.0.1:<supervisor-port from the config file, else ${String(SUPERVISOR_PORT.default)}>`,
    valueName: 'url',
  },
  {
    key: 'etcd-token',
    short: 't',
    env: 'ETCDSNAP_ETCD_TOKEN',
    type: 'string',
    secret: true,
    description: 'token of the server',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: help text names the data-dir option as k3s does
    defaultText: 'read from ${data-dir}/server/token',
    valueName: 'token',
  },
  { key: 'dir', aliases: ['etcd-snapshot-dir'], type: 'string', description: "snapshot folder on the server (default: the server's)", valueName: 'dir' },
  { key: 'name', type: 'string', description: 'snapshot name (save) or name prefix (prune)', default: 'on-demand', valueName: 'name', check: checkPrefix },
  {
    key: 'snapshot-compress',
    aliases: ['etcd-snapshot-compress'],
    type: 'boolean',
    description: "compress the snapshot (default: the server's setting)",
  },
  { ...COMPRESSION, key: 'snapshot-compression', aliases: ['etcd-snapshot-compression'], defaultText: "the server's setting" },
  ...ENCRYPTION_OPTIONS,
  {
    key: 'snapshot-retention',
    aliases: ['etcd-snapshot-retention'],
    type: 'count',
    description: 'number of snapshots to keep (prune)',
    default: 5,
    valueName: 'n',
    check: RETENTION,
  },
  {
    key: 'snapshot-retention-policy',
    aliases: ['etcd-snapshot-retention-policy'],
    env: 'ETCDSNAP_ETCD_SNAPSHOT_RETENTION_POLICY',
    type: 'string',
    description:
      'time-bucket retention for prune, locally and in S3 (e.g. last=3,daily=7,weekly=4; docs/retention.md); replaces --snapshot-retention and --s3-retention',
    valueName: 'policy',
    check: checkRetentionPolicy,
  },
  // read from a shared config file only to find the local server's port (the server's default)
  { ...SUPERVISOR_PORT, description: 'supervisor port of the local server', hidden: true },
  ...CLI_S3_OPTIONS,
];

/**
 * Options of the inspection subcommands (`etcd-snapshot status|keys|get|stats|diff|
 * restore-keys`, docs/inspect.md). Each subcommand adds the ones it takes (`INSPECT_FLAGS`
 * in cli/inspect-command.ts); the same validation applies to the API's query parameters
 * (server/inspect-routes.ts).
 */
export const INSPECT_OPTIONS: readonly OptionSpec[] = [
  {
    key: 'output',
    short: 'o',
    type: 'string',
    choices: ['table', 'json', 'yaml'],
    description: 'output format (status, stats, diff: table or json; get: json or yaml; keys: table = one key a line, json = one JSON object a line)',
    valueName: 'format',
  },
  { key: 'prefix', type: 'string', description: 'only keys that start with this (keys, stats, diff, restore-keys)', valueName: 'prefix' },
  { key: 'limit', type: 'int', description: 'print at most this many keys (keys)', valueName: 'n', check: within(1, Number.MAX_SAFE_INTEGER) },
  {
    key: 'revision',
    type: 'int',
    description: "read the snapshot at this etcd revision, which it must still hold (not compacted) (default: the snapshot's latest)",
    valueName: 'rev',
    check: within(1, Number.MAX_SAFE_INTEGER),
  },
  { key: 'keys', type: 'boolean', description: 'list every added, removed and changed key (diff)', default: false },
  { key: 'key', type: 'list', description: 'a key to restore (restore-keys; repeatable)', valueName: 'key' },
  {
    key: 'delete-key',
    type: 'list',
    description: 'a live key to delete (restore-keys; repeatable); nothing is deleted unless named here',
    valueName: 'key',
  },
  { key: 'apply', type: 'boolean', description: 'write the plan through the running server (restore-keys; default: a dry run)', default: false },
  {
    key: 'plan-revision',
    type: 'int',
    description: 'apply the plan a dry run printed at this live revision (restore-keys --apply); keys changed since are conflicts (default: plan now)',
    valueName: 'rev',
    check: within(1, Number.MAX_SAFE_INTEGER),
  },
];
