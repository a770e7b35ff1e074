/**
 * The agent's typed configuration (`etcdsnap agent`, docs/agent.md), from resolved values of
 * AGENT_OPTIONS. The snapshot settings are the server's (`snapshotConfigOf`); the fields a
 * server needs for its own etcd member get neutral values (`etcdArgs` holds only the quota of
 * `--etcd-quota-backend-bytes`, else nothing: etcd's default
 * backend quota in the metrics; no change log).
 *
 * etcd connection (`resolveEtcdConnection`, reads the file system only to find kubeadm's
 * files): `--endpoints`, `--cacert`, `--cert`, `--key` (or etcdctl's ETCDCTL_* variables).
 * On a kubeadm control-plane node (`<root>/etc/kubernetes/pki/etcd/ca.crt` exists) each one
 * not given takes kubeadm's value: endpoint https://127.0.0.1:2379, CA etcd/ca.crt, and the
 * client pair etcd/healthcheck-client.{crt,key} (a client-only certificate of etcd's CA that
 * kubeadm issues for probes), else apiserver-etcd-client.{crt,key}; the pair is taken only
 * when neither --cert nor --key is given. Anything still missing is one config error saying
 * what to give.
 *
 * The schedule's `@every` ticks fall on multiples of the duration since the Unix epoch (not
 * from the start, as the server's), so that the agents of a group agree on each tick.
 */
import path from 'node:path';
import { configError } from '../errors.js';
import { defaultAgentDataDir, numberDefault, SERVER_OPTIONS } from '../config/schema.js';
import type { Values } from '../config/resolve.js';
import type { LogFormat } from '../log/logger.js';
import { exists } from '../util/fs.js';
import { nodeNameOf, snapshotConfigOf } from './config.js';
import type { HostConfig } from './feature.js';
import { parseSchedule } from './schedule.js';

/** The TLS files of the etcd client, etcdctl's names. */
export interface EtcdConnection {
  endpoints: string[];
  cacert: string;
  cert: string;
  key: string;
  /** Which values came from kubeadm's layout (for the start-up log), empty when none. */
  fromKubeadm: string[];
}

export interface AgentConfig extends HostConfig {
  dataDir: string;
  token?: string;
  tokenFile?: string;
  bindAddress: string;
  supervisorPort: number;
  etcd: EtcdConnection;
  debug: boolean;
  logFormat: LogFormat;
  /** The agent group's election (`--election-name`, `--election-ttl` in whole seconds), agent-election.ts. */
  election: { name: string; ttlSeconds: number };
}

/** kubeadm's files under `root` (default `/`). */
export function kubeadmPaths(root = '/'): { ca: string; pairs: Array<{ cert: string; key: string }> } {
  const pki = path.join(root, 'etc', 'kubernetes', 'pki');
  return {
    ca: path.join(pki, 'etcd', 'ca.crt'),
    pairs: [
      { cert: path.join(pki, 'etcd', 'healthcheck-client.crt'), key: path.join(pki, 'etcd', 'healthcheck-client.key') },
      { cert: path.join(pki, 'apiserver-etcd-client.crt'), key: path.join(pki, 'apiserver-etcd-client.key') },
    ],
  };
}

/** The etcd connection from the flags, with kubeadm's defaults for what is not given (see the module's rule). */
export async function resolveEtcdConnection(v: Values, root = '/'): Promise<EtcdConnection> {
  const endpointsGiven = v
    .list('endpoints')
    .flatMap((e) => e.split(','))
    .map((e) => e.trim())
    .filter((e) => e !== '');
  let endpoints = [...new Set(endpointsGiven)];
  let cacert = v.str('cacert');
  let cert = v.str('cert');
  let key = v.str('key');
  const fromKubeadm: string[] = [];
  const k = kubeadmPaths(root);
  if (await exists(k.ca)) {
    if (endpoints.length === 0) {
      endpoints = ['https://127.0.0.1:2379'];
      fromKubeadm.push('--endpoints');
    }
    if (cacert === undefined) {
      cacert = k.ca;
      fromKubeadm.push('--cacert');
    }
    if (cert === undefined && key === undefined) {
      for (const pair of k.pairs) {
        if ((await exists(pair.cert)) && (await exists(pair.key))) {
          ({ cert, key } = pair);
          fromKubeadm.push('--cert', '--key');
          break;
        }
      }
    }
  }
  const missing = [
    endpoints.length === 0 ? '--endpoints' : '',
    cacert === undefined ? '--cacert' : '',
    cert === undefined ? '--cert' : '',
    key === undefined ? '--key' : '',
  ].filter((m) => m !== '');
  if (missing.length > 0 || cacert === undefined || cert === undefined || key === undefined) {
    throw configError(
      `etcdsnap agent needs ${missing.join(', ')} (or ETCDCTL_ENDPOINTS, ETCDCTL_CACERT, ETCDCTL_CERT, ETCDCTL_KEY): the etcd members' https URLs and the TLS files etcdctl would use; on a kubeadm control-plane node they are found in /etc/kubernetes/pki`,
    );
  }
  return { endpoints, cacert: path.resolve(cacert), cert: path.resolve(cert), key: path.resolve(key), fromKubeadm };
}

export function buildAgentConfig(v: Values, etcd: EtcdConnection): AgentConfig {
  const dataDir = path.resolve(v.str('data-dir') ?? defaultAgentDataDir());
  const token = v.str('token');
  const tokenFile = v.str('token-file');
  if (token !== undefined && tokenFile !== undefined) throw configError('--token and --token-file are both set; use only one');
  const metrics = v.str('metrics-listen-address');
  const snapshots = snapshotConfigOf(v, dataDir);
  return {
    dataDir,
    nodeName: nodeNameOf(v),
    ...(token !== undefined ? { token } : {}),
    ...(tokenFile !== undefined ? { tokenFile: path.resolve(tokenFile) } : {}),
    bindAddress: v.text('bind-address'),
    supervisorPort: v.num('supervisor-port'),
    ...(metrics !== undefined && metrics !== '' ? { metricsListenAddress: metrics } : {}),
    etcd,
    // etcd's quota as the server's --etcd-arg would give it (metrics, upkeep); none: etcd's default
    etcdArgs: v.num('etcd-quota-backend-bytes') > 0 ? [`quota-backend-bytes=${v.num('etcd-quota-backend-bytes')}`] : [],
    changelog: { enabled: false, periodMs: numberDefault(SERVER_OPTIONS, 'etcd-changelog-period') },
    debug: v.bool('debug'),
    logFormat: v.str('log-format') === 'json' ? 'json' : 'text',
    election: { name: v.text('election-name'), ttlSeconds: Math.ceil(v.num('election-ttl') / 1000) },
    // the agents of a group agree on each tick's time: `@every` falls on multiples of its duration
    snapshots: {
      ...snapshots,
      schedule: parseSchedule(snapshots.schedule.spec, { epochAligned: true }),
      ...(snapshots.drillSchedule
        ? { drillSchedule: parseSchedule(snapshots.drillSchedule.spec, { epochAligned: true, flag: '--etcd-snapshot-drill-schedule', what: 'drill' }) }
        : {}),
    },
  };
}
