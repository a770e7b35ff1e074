/**
 * The option specs of `etcdsnap install-service` (docs/systemd.md): where the systemd unit and
 * the secrets file go, and which config file the unit's ExecStart names. Read from the command
 * line only (a `config` key in a config file or ETCDSNAP_CONFIG_FILE is the daemon's, not this
 * command's). Part of the option schema (schema.ts re-exports it; its contract applies).
 */
import type { OptionSpec } from './spec.js';

/*
 * The secrets file's flag is --environment-file, not --env-file: Node 20 takes `--env-file`
 * anywhere on its command line, also after the script, as its own option (it loads the file
 * and exits with "not found" when it is missing), so `etcdsnap ... --env-file x` never
 * reached us.
 */
export const DEFAULT_UNIT_DIR = '/etc/systemd/system';

export const INSTALL_SERVICE_OPTIONS: readonly OptionSpec[] = [
  { key: 'agent', type: 'boolean', description: 'install etcdsnap-agent.service (etcdsnap agent) instead of etcdsnap.service (etcdsnap server)' },
  { key: 'unit-dir', type: 'string', description: 'folder the unit file is written to', default: DEFAULT_UNIT_DIR, valueName: 'dir' },
  {
    key: 'config',
    type: 'string',
    description: "config file the service reads (named on the unit's ExecStart; its data-dir and snapshot dirs become the unit's writable paths)",
    defaultText: '/etc/etcdsnap/config.yaml, with --agent /etc/etcdsnap/agent.yaml',
    valueName: 'file',
  },
  {
    key: 'environment-file',
    type: 'string',
    description: "environment file for the service's secrets (created 0600 with commented keys when missing, never overwritten)",
    defaultText: '/etc/etcdsnap/etcdsnap.env, with --agent /etc/etcdsnap/agent.env',
    valueName: 'file',
  },
  {
    key: 'read-write-path',
    type: 'list',
    description: 'another folder the service may write (a snapshot dir set outside the config file); repeatable',
    valueName: 'dir',
  },
  { key: 'dry-run', type: 'boolean', description: 'print the unit and what would be done; write nothing' },
];

/**
 * The option specs of `etcdsnap uninstall` (docs/install.md, "Uninstall"), read from the command
 * line only, like install-service's.
 */
export const UNINSTALL_OPTIONS: readonly OptionSpec[] = [
  {
    key: 'purge',
    type: 'boolean',
    description: 'also remove /etc/etcdsnap (config and secrets) and the data dirs (/var/lib/etcdsnap: etcd data, certificates, token, local snapshots)',
  },
  {
    key: 'root',
    type: 'string',
    description: 'folder the system paths are under (an image being built, a test); systemctl is not run',
    default: '/',
    valueName: 'dir',
  },
];
