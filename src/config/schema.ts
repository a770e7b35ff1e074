/**
 * One schema for every option: its flag, environment variable, type, default and help.
 * The commander options, the environment lookup, the config-file reader and the README's
 * flag tables all come from these specs, so they cannot drift apart.
 */
import os from 'node:os';
import path from 'node:path';
import type { OptionValue, ValueType } from './values.js';

export interface OptionSpec {
  /** Long flag name without dashes; also the config-file key. */
  readonly key: string;
  readonly short?: string;
  /** Environment variable read when the flag is not on the command line. */
  readonly env?: string;
  readonly type: ValueType;
  readonly description: string;
  /** Default value, or a function computing it from the other resolved values. */
  readonly default?: OptionValue;
  /** Text shown in --help for computed defaults. */
  readonly defaultText?: string;
  readonly choices?: readonly string[];
  /** Extra spellings accepted on the command line and in the config file. */
  readonly aliases?: readonly string[];
  /** Values are secrets: never printed, logged or shown in help. */
  readonly secret?: boolean;
  readonly valueName?: string;
}

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
  },
  {
    key: 'advertise-address',
    env: 'ETCDSNAP_ADVERTISE_ADDRESS',
    type: 'string',
    description: 'address other servers use to reach this one',
    default: '127.0.0.1',
    valueName: 'ip',
  },
  { key: 'supervisor-port', type: 'port', description: 'supervisor API port (HTTPS)', default: 9345, valueName: 'port' },
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
  },
  {
    key: 'cluster-init',
    env: 'ETCDSNAP_CLUSTER_INIT',
    type: 'boolean',
    description: 'initialize a new cluster with this server as its first member',
    default: false,
  },
];

/** Looks a spec up by its key or one of its aliases. */
export function findSpec(specs: readonly OptionSpec[], key: string): OptionSpec | undefined {
  return specs.find((s) => s.key === key || (s.aliases ?? []).includes(key));
}
