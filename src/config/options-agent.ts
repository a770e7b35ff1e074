/**
 * The option specs of `etcdsnap agent` (docs/agent.md): the server's snapshot, S3, API and
 * logging options, taken from SERVER_OPTIONS by key (one spec each, so they cannot drift),
 * a few with the agent's own default or wording, and etcdctl's connection flags. Part of the
 * option schema (schema.ts re-exports `AGENT_OPTIONS`; its contract applies).
 */
import path from 'node:path';
import os from 'node:os';
import type { OptionSpec } from './spec.js';
import { specOf } from './spec.js';
import { formatDuration, within, type ValueCheck } from './values.js';
import { SERVER_OPTIONS } from './options-server.js';
import { SERVER_S3_OPTIONS } from './options-common.js';

export const DEFAULT_AGENT_CONFIG_FILE = '/etc/etcdsnap/agent.yaml';

/** `/var/lib/etcdsnap/agent` for root, `~/.etcdsnap/agent` for anyone else: never the server's data dir. */
export function defaultAgentDataDir(): string {
  return process.getuid?.() === 0 ? '/var/lib/etcdsnap/agent' : path.join(os.homedir(), '.etcdsnap', 'agent');
}

/** The agent's supervisor port: not the server's 9345 (k3s's and rke2's), so both can run on one host. */
export const AGENT_SUPERVISOR_PORT = 9347;

/** Each comma-separated item an https:// URL with a host and port, as etcdctl's --endpoints. */
const checkEndpoints: ValueCheck = (v) => {
  for (const item of String(v)
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x !== '')) {
    let u: URL;
    try {
      u = new URL(item);
    } catch {
      throw new Error(`"${item}" is not a URL; give https://<host>:<port> of each etcd member, comma-separated`);
    }
    if (u.protocol !== 'https:' || u.hostname === '' || (u.pathname !== '/' && u.pathname !== '') || u.search !== '') {
      throw new Error(`"${item}" is not an https://<host>:<port> URL of an etcd member (etcdsnap talks to etcd over TLS only)`);
    }
  }
};

/** An election name: one path segment of an etcd key. */
const checkElectionName: ValueCheck = (v) => {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(String(v))) throw new Error(`"${String(v)}" is not a name of letters, digits, ".", "_" and "-" (at most 63)`);
};

/** Several agents of one group elect the active one (docs/agent.md "Several agents"). */
const ELECTION_OPTIONS: readonly OptionSpec[] = [
  {
    key: 'election-name',
    type: 'string',
    description:
      'agent group: the agents with the same name (same schedule and snapshot storage) elect one active agent through etcd keys /etcdsnap/agent/<name>/, which takes each scheduled snapshot once',
    default: 'default',
    valueName: 'name',
    check: checkElectionName,
  },
  {
    key: 'election-ttl',
    type: 'duration',
    description: "lease TTL of the active agent's election key: another agent takes over at most this long after the active one died (whole seconds)",
    default: 10_000,
    defaultText: '10s',
    valueName: 'duration',
    check: within(2000, 300_000, formatDuration),
  },
];

const fromServer = (key: string, over: Partial<OptionSpec> = {}): OptionSpec => ({ ...specOf(SERVER_OPTIONS, key), ...over });

/** etcdctl's connection flags and environment variables (kubeadm's files are found when none is given). */
const ETCD_CONNECTION_OPTIONS: readonly OptionSpec[] = [
  {
    key: 'endpoints',
    env: 'ETCDCTL_ENDPOINTS',
    type: 'list',
    description: 'etcd members to back up, as https://<host>:<port> (repeatable or comma-separated); snapshots stream from a follower when one answers',
    defaultText: 'https://127.0.0.1:2379 when the kubeadm certificates are found, else required',
    valueName: 'urls',
    check: checkEndpoints,
  },
  {
    key: 'cacert',
    env: 'ETCDCTL_CACERT',
    type: 'string',
    description: "CA certificate file that verifies the etcd members' certificates",
    defaultText: '/etc/kubernetes/pki/etcd/ca.crt when it exists (kubeadm)',
    valueName: 'file',
  },
  {
    key: 'cert',
    env: 'ETCDCTL_CERT',
    type: 'string',
    description: 'client certificate file for etcd',
    defaultText: "kubeadm's etcd/healthcheck-client.crt, else apiserver-etcd-client.crt, when found",
    valueName: 'file',
  },
  {
    key: 'key',
    env: 'ETCDCTL_KEY',
    type: 'string',
    description: 'private key file of --cert',
    defaultText: "the key beside kubeadm's certificate, when found",
    valueName: 'file',
  },
];

export const AGENT_OPTIONS: readonly OptionSpec[] = [
  fromServer('config', { defaultText: DEFAULT_AGENT_CONFIG_FILE }),
  fromServer('debug'),
  fromServer('log-format'),
  fromServer('data-dir', {
    description: "the agent's own folder for state (token, TLS, records, snapshots); not etcd's data dir and not a server's",
    defaultText: '/var/lib/etcdsnap/agent, or ~/.etcdsnap/agent when not root',
  }),
  fromServer('node-name', {
    description: 'node name in snapshot names (etcd-snapshot-<node>-<unix>) and records, and this agent in the election: unique per agent of a group',
  }),
  ...ETCD_CONNECTION_OPTIONS,
  fromServer('token', { description: "secret of the agent's API, for etcd-snapshot --etcd-token (generated when not given)" }),
  fromServer('token-file'),
  fromServer('bind-address', { description: 'address the supervisor API listens on' }),
  fromServer('supervisor-port', { default: AGENT_SUPERVISOR_PORT }),
  fromServer('metrics-listen-address'),
  fromServer('etcd-disable-snapshots'),
  fromServer('etcd-snapshot-schedule-cron'),
  ...ELECTION_OPTIONS,
  fromServer('etcd-snapshot-retention'),
  fromServer('etcd-snapshot-retention-policy'),
  fromServer('etcd-snapshot-dir'),
  fromServer('etcd-snapshot-api-dir'),
  fromServer('etcd-snapshot-name'),
  fromServer('etcd-snapshot-compress'),
  fromServer('etcd-snapshot-compression'),
  fromServer('etcd-snapshot-encrypt-recipient'),
  fromServer('etcd-snapshot-encrypt-recipients-file'),
  fromServer('etcd-snapshot-decrypt-identity-file'),
  fromServer('etcd-snapshot-notify-webhook'),
  fromServer('etcd-snapshot-drill-schedule'),
  fromServer('etcd-snapshot-drill-timeout'),
  fromServer('etcd-defrag-schedule'),
  fromServer('etcd-quota-warning-ratio'),
  {
    key: 'etcd-quota-backend-bytes',
    env: 'ETCDSNAP_ETCD_QUOTA_BACKEND_BYTES',
    type: 'count',
    description: "the etcd cluster's --quota-backend-bytes, for the quota warning and metrics (docs/upkeep.md); 0: etcd's default 2 GiB",
    default: 0,
    valueName: 'bytes',
  },
  ...SERVER_S3_OPTIONS,
  fromServer('etcd-s3-upload-retry-delays'),
];
