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
 */
import os from 'node:os';
import path from 'node:path';
import { COMPRESSIONS } from '../model/encoding.js';
import {
  checkAbsoluteDirs,
  checkEtcdArg,
  checkHostPort,
  checkIP,
  checkJoinURL,
  checkNodeName,
  checkPrefix,
  checkRecipients,
  checkRetryDelays,
  checkWebhookURL,
  RETENTION,
  S3_TIMEOUT,
} from './checks.js';
import type { OptionSpec } from './spec.js';
import { formatDuration, within } from './values.js';

export { checkChoices, checkValue, findSpec, jsonValue, numberDefault, type OptionSpec, specOf, stringDefault } from './spec.js';

export const DEFAULT_CONFIG_FILE = '/etc/etcdsnap/config.yaml';

/** `/var/lib/etcdsnap` for root, `~/.etcdsnap` for anyone else (as k3s). */
export function defaultDataDir(): string {
  return process.getuid?.() === 0 ? '/var/lib/etcdsnap' : path.join(os.homedir(), '.etcdsnap');
}

export const COMMON_OPTIONS: readonly OptionSpec[] = [
  {
    key: 'config',
    short: 'c',
    env: 'ETCDSNAP_CONFIG_FILE',
    type: 'string',
    description: 'config file (keys are long flag names); config.yaml.d/*.yaml beside it is read too',
    defaultText: DEFAULT_CONFIG_FILE,
    valueName: 'file',
  },
  { key: 'debug', env: 'ETCDSNAP_DEBUG', type: 'boolean', description: 'log at debug level', default: false },
  {
    key: 'quiet',
    env: 'ETCDSNAP_QUIET',
    type: 'boolean',
    description: 'show no progress of long work (a bar on a terminal, a line every 5 s otherwise): save, restore, S3 downloads',
    default: false,
  },
  {
    key: 'log-format',
    env: 'ETCDSNAP_LOG_FORMAT',
    type: 'string',
    choices: ['text', 'json'],
    description: 'log format',
    default: 'text',
    valueName: 'format',
  },
  {
    key: 'data-dir',
    short: 'd',
    env: 'ETCDSNAP_DATA_DIR',
    type: 'string',
    description: 'folder for state',
    defaultText: '/var/lib/etcdsnap, or ~/.etcdsnap when not root',
    valueName: 'dir',
  },
  {
    key: 'node-name',
    env: 'ETCDSNAP_NODE_NAME',
    type: 'string',
    description: 'node name',
    defaultText: 'hostname',
    valueName: 'name',
    check: checkNodeName,
  },
];

/** Written once: the server listens on it, the CLI reads it from a shared config file. */
const SUPERVISOR_PORT: OptionSpec = { key: 'supervisor-port', type: 'port', description: 'supervisor API port (HTTPS)', default: 9345, valueName: 'port' };

/**
 * S3 options, written once: the server spells them `--etcd-s3-*`, the etcd-snapshot
 * command `--s3-*` (accepting the `--etcd-s3-*` spellings as aliases), as k3s.
 */
const S3_FIELDS: readonly OptionSpec[] = [
  { key: 's3', type: 'boolean', description: 'store snapshots in S3 too', default: false },
  { key: 's3-endpoint', type: 'string', description: 'S3 endpoint, host[:port] without scheme', default: 's3.amazonaws.com', valueName: 'host' },
  { key: 's3-endpoint-ca', type: 'string', description: 'CA bundle for the S3 endpoint: file path or base64 PEM (space-separated list)', valueName: 'ca' },
  { key: 's3-skip-ssl-verify', type: 'boolean', description: 'do not verify the S3 server certificate', default: false },
  { key: 's3-access-key', env: 'AWS_ACCESS_KEY_ID', type: 'string', secret: true, description: 'S3 access key', valueName: 'key' },
  { key: 's3-secret-key', env: 'AWS_SECRET_ACCESS_KEY', type: 'string', secret: true, description: 'S3 secret key', valueName: 'key' },
  { key: 's3-session-token', env: 'AWS_SESSION_TOKEN', type: 'string', secret: true, description: 'S3 session token', valueName: 'token' },
  { key: 's3-bucket', type: 'string', description: 'S3 bucket (required with S3)', valueName: 'bucket' },
  { key: 's3-region', type: 'string', description: 'S3 region', default: 'us-east-1', valueName: 'region' },
  { key: 's3-folder', type: 'string', description: 'S3 folder (key prefix)', default: '', valueName: 'folder' },
  { key: 's3-insecure', type: 'boolean', description: 'use http instead of https for S3', default: false },
  {
    key: 's3-timeout',
    type: 'duration',
    description: 'timeout of each S3 operation',
    default: 300_000,
    defaultText: '5m',
    valueName: 'duration',
    check: S3_TIMEOUT,
  },
  { key: 's3-proxy', type: 'string', description: 'proxy URL for S3, or "none" (default: HTTPS_PROXY/HTTP_PROXY)', valueName: 'url' },
  {
    key: 's3-bucket-lookup-type',
    type: 'string',
    choices: ['auto', 'dns', 'path'],
    description: 'bucket addressing: virtual-host (dns), path-style (path) or auto',
    default: 'auto',
    valueName: 'type',
  },
  {
    key: 's3-retention',
    type: 'count',
    description: 'number of snapshots to keep in S3, per node and name prefix (0 disables pruning)',
    default: 5,
    valueName: 'n',
    check: RETENTION,
  },
];

/** The S3 option specs without prefix (`s3`, `s3-endpoint`, ...), for the API's `s3` field. */
export const S3_OPTIONS: readonly OptionSpec[] = S3_FIELDS;

/** `--etcd-s3-*` options of the server. */
/**
 * How snapshots are written and read (docs/encryption.md, docs/compression.md), written
 * once: the server and the etcd-snapshot command take the same flags (the command's
 * compression flag is `--snapshot-compression`, as k3s's `--snapshot-compress`).
 */
const COMPRESSION: OptionSpec = {
  key: 'etcd-snapshot-compression',
  type: 'string',
  choices: [...COMPRESSIONS],
  description: 'compression of snapshots: zip (k3s-compatible, as --etcd-snapshot-compress), zstd (fastest, smallest; needs the zstd program), gzip, or none',
  defaultText: 'zip with --etcd-snapshot-compress, else none',
  valueName: 'format',
};
const ENCRYPTION_OPTIONS: readonly OptionSpec[] = [
  {
    key: 'etcd-snapshot-encrypt-recipient',
    type: 'list',
    description: 'encrypt snapshots with age for this public key (age1..., from age-keygen; repeatable or comma-separated)',
    valueName: 'age1...',
    check: checkRecipients,
  },
  {
    key: 'etcd-snapshot-encrypt-recipients-file',
    type: 'string',
    description: 'encrypt snapshots with age for each public key in this file (one age1... a line, # comments, as age -R)',
    valueName: 'file',
  },
  {
    key: 'etcd-snapshot-decrypt-identity-file',
    env: 'ETCDSNAP_DECRYPT_IDENTITY_FILE',
    type: 'string',
    description: 'age identity file (age-keygen output) that opens encrypted snapshots for restore and inspection',
    valueName: 'file',
  },
];

export const SERVER_S3_OPTIONS: readonly OptionSpec[] = S3_FIELDS.map((f) => ({ ...f, key: `etcd-${f.key}` }));

/** `--s3-*` options of etcd-snapshot, with `--etcd-s3-*` aliases. */
export const CLI_S3_OPTIONS: readonly OptionSpec[] = S3_FIELDS.map((f) => ({ ...f, aliases: [`etcd-${f.key}`] }));

/** The change log and restore to a point (issue 16, docs/point-in-time-restore.md). */
const CHANGELOG_OPTIONS: readonly OptionSpec[] = [
  {
    key: 'etcd-changelog',
    env: 'ETCDSNAP_ETCD_CHANGELOG',
    type: 'boolean',
    description: 'log every etcd change after each snapshot into <data-dir>/server/db/changelog, for --cluster-reset-restore-to',
    default: false,
  },
  {
    key: 'etcd-changelog-period',
    type: 'duration',
    description: 'seal a change log segment this often (writes newer than the last sealed segment are not restorable yet)',
    default: 10_000,
    defaultText: '10s',
    valueName: 'duration',
    check: within(100, 3_600_000, formatDuration),
  },
  {
    key: 'cluster-reset-restore-to',
    type: 'string',
    description:
      'with --cluster-reset: restore to this etcd revision or RFC 3339 time, replaying the change log onto the snapshot (--cluster-reset-restore-path, else the newest local snapshot before it)',
    valueName: 'revision|time',
  },
];

export const SERVER_OPTIONS: readonly OptionSpec[] = [
  ...COMMON_OPTIONS,
  {
    key: 'token',
    short: 't',
    env: 'ETCDSNAP_TOKEN',
    type: 'string',
    secret: true,
    description: 'shared secret used to join servers and call the API (generated when not given)',
    valueName: 'token',
  },
  {
    key: 'token-file',
    env: 'ETCDSNAP_TOKEN_FILE',
    type: 'string',
    description: 'file holding the token',
    valueName: 'file',
  },
  {
    key: 'bind-address',
    env: 'ETCDSNAP_BIND_ADDRESS',
    type: 'string',
    description: 'address the supervisor API and etcd listen on',
    default: '127.0.0.1',
    valueName: 'ip',
    check: checkIP,
  },
  {
    key: 'advertise-address',
    env: 'ETCDSNAP_ADVERTISE_ADDRESS',
    type: 'string',
    description: 'address other servers use to reach this one',
    default: '127.0.0.1',
    valueName: 'ip',
    check: checkIP,
  },
  SUPERVISOR_PORT,
  {
    key: 'metrics-listen-address',
    env: 'ETCDSNAP_METRICS_LISTEN_ADDRESS',
    type: 'string',
    description:
      'also serve Prometheus metrics (GET /metrics only) over plain HTTP WITHOUT authentication on this host:port, e.g. 127.0.0.1:9346 (default: off; the supervisor port serves /metrics with the token)',
    valueName: 'host:port',
    check: checkHostPort,
  },
  { key: 'etcd-client-port', type: 'port', description: 'etcd client port', default: 2379, valueName: 'port' },
  { key: 'etcd-peer-port', type: 'port', description: 'etcd peer port', default: 2380, valueName: 'port' },
  {
    key: 'etcd-binary',
    env: 'ETCDSNAP_ETCD_BINARY',
    type: 'string',
    description: 'etcd executable',
    default: 'etcd',
    valueName: 'path',
  },
  {
    key: 'etcd-arg',
    type: 'list',
    description: 'extra etcd argument as key=value (repeatable), e.g. --etcd-arg quota-backend-bytes=8589934592',
    valueName: 'key=value',
    check: checkEtcdArg,
  },
  {
    key: 'etcd-log-level',
    env: 'ETCDSNAP_ETCD_LOG_LEVEL',
    type: 'string',
    choices: ['debug', 'info', 'warn', 'error'],
    description: "level of etcd's own log lines (etcd's --log-level); its panics and fatal errors always show",
    defaultText: 'warn, or info with --debug',
    valueName: 'level',
  },
  {
    key: 'etcd-disable-snapshots',
    type: 'boolean',
    description: 'disable scheduled snapshots',
    default: false,
  },
  {
    key: 'etcd-snapshot-schedule-cron',
    type: 'string',
    description: 'snapshot schedule in cron syntax (system time; @every <duration>, @daily... and a CRON_TZ=<zone> prefix work)',
    default: '0 */12 * * *',
    valueName: 'spec',
  },
  {
    key: 'etcd-snapshot-retention',
    type: 'count',
    description: 'number of scheduled snapshots to keep (0 disables pruning)',
    default: 5,
    valueName: 'n',
    check: RETENTION,
  },
  {
    key: 'etcd-snapshot-dir',
    type: 'string',
    description: 'folder for snapshots',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: help text names the data-dir option as k3s does
    defaultText: '${data-dir}/server/db/snapshots',
    valueName: 'dir',
  },
  {
    key: 'etcd-snapshot-api-dir',
    env: 'ETCDSNAP_ETCD_SNAPSHOT_API_DIR',
    type: 'list',
    description:
      'another folder that API requests (etcd-snapshot --dir) may save snapshots to, list and delete from; absolute path, that folder only (repeatable or comma-separated; --etcd-snapshot-dir is always allowed, no other)',
    valueName: 'dir',
    check: checkAbsoluteDirs,
  },
  {
    key: 'etcd-snapshot-name',
    type: 'string',
    description: 'name prefix of scheduled snapshots',
    default: 'etcd-snapshot',
    valueName: 'name',
    check: checkPrefix,
  },
  {
    key: 'etcd-snapshot-compress',
    type: 'boolean',
    description: 'compress snapshots (zip)',
    default: false,
  },
  COMPRESSION,
  ...ENCRYPTION_OPTIONS,
  {
    key: 'etcd-snapshot-notify-webhook',
    env: 'ETCDSNAP_SNAPSHOT_NOTIFY_WEBHOOK',
    type: 'string',
    secret: true,
    description:
      'POST a JSON event (Slack-compatible "text") to this http(s) URL when a snapshot save fails, an S3 upload still fails after its retries, and when each recovers (docs/notifications.md)',
    valueName: 'url',
    check: checkWebhookURL,
  },
  {
    key: 'cluster-init',
    env: 'ETCDSNAP_CLUSTER_INIT',
    type: 'boolean',
    description: 'initialize a new cluster with this server as its first member',
    default: false,
  },
  {
    key: 'server',
    env: 'ETCDSNAP_URL',
    type: 'string',
    description: 'join the cluster of this server (https://<host>:<supervisor-port>); needs --token',
    valueName: 'url',
    check: checkJoinURL,
  },
  {
    key: 'cluster-reset',
    env: 'ETCDSNAP_CLUSTER_RESET',
    type: 'boolean',
    description: 'forget all peers and become the sole member of a new cluster, then exit',
    default: false,
  },
  {
    key: 'cluster-reset-restore-path',
    type: 'string',
    description: 'snapshot to restore with --cluster-reset (a file, or with --etcd-s3 an object name)',
    valueName: 'path',
  },
  {
    key: 'cluster-reset-new-ca',
    type: 'boolean',
    description:
      "with --cluster-reset-restore-path on a host without a cluster CA: when the token cannot open the snapshot's CA (another token, or a snapshot without etcdsnap bootstrap data), restore with a new CA and token instead of refusing",
    default: false,
  },
  {
    key: 'skip-hash-check',
    type: 'boolean',
    description: 'restore a snapshot without its sha256 trailer (a member/snap/db copied from a data dir); skips the integrity check',
    default: false,
  },
  ...SERVER_S3_OPTIONS,
  {
    key: 'etcd-s3-upload-retry-delays',
    type: 'string',
    description: 'delays before each retry of a failed S3 upload, comma-separated durations (each 1s to 1h, at most 20); 0 for no retry',
    default: '5s,15s,45s,2m,5m',
    valueName: 'durations',
    check: checkRetryDelays,
  },
  ...CHANGELOG_OPTIONS,
];

/** Options of `etcdsnap etcd-snapshot` and its subcommands (k3s's names and aliases). */
export const SNAPSHOT_CLI_OPTIONS: readonly OptionSpec[] = [
  ...COMMON_OPTIONS,
  {
    key: 'etcd-server',
    short: 's',
    env: 'ETCDSNAP_ETCD_SERVER',
    type: 'string',
    description: 'supervisor URL of the etcdsnap server',
    defaultText: `https://127.0.0.1:<supervisor-port from the config file, else ${String(SUPERVISOR_PORT.default)}>`,
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
