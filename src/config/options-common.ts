/**
 * The option specs shared by the server and the etcd-snapshot command: the common options,
 * the supervisor port, the S3 options (`--etcd-s3-*` and `--s3-*` from one list), compression
 * and encryption. Part of the option schema (schema.ts re-exports everything here).
 */
import os from 'node:os';
import path from 'node:path';
import { COMPRESSIONS } from '../model/encoding.js';
import { checkNodeName, checkRecipients, RETENTION, S3_TIMEOUT } from './checks.js';
import type { OptionSpec } from './spec.js';

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
export const SUPERVISOR_PORT: OptionSpec = {
  key: 'supervisor-port',
  type: 'port',
  description: 'supervisor API port (HTTPS)',
  default: 9345,
  valueName: 'port',
};

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
export const COMPRESSION: OptionSpec = {
  key: 'etcd-snapshot-compression',
  type: 'string',
  choices: [...COMPRESSIONS],
  description: 'compression of snapshots: zip (k3s-compatible, as --etcd-snapshot-compress), zstd (fastest, smallest; needs the zstd program), gzip, or none',
  defaultText: 'zip with --etcd-snapshot-compress, else none',
  valueName: 'format',
};
export const ENCRYPTION_OPTIONS: readonly OptionSpec[] = [
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
