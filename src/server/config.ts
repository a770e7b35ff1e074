/**
 * The server's typed configuration, built from resolved option values, with the checks
 * that need more than one value. Pure: no I/O. Each value was validated by its spec
 * (config/schema.ts) when it was resolved, and defaults come from the specs; only the
 * computed default of --node-name (the hostname) and the cron schedule (parsed into a
 * Schedule by server/schedule.ts) are checked here.
 */
import os from 'node:os';
import path from 'node:path';
import { isIP } from 'node:net';
import { configError } from '../errors.js';
import { checkValue, defaultDataDir, SERVER_OPTIONS, specOf } from '../config/schema.js';
import { parseRetryDelays } from '../config/checks.js';
import type { Values } from '../config/resolve.js';
import type { LogFormat } from '../log/logger.js';
import { ETCD_LOG_LEVELS, type EtcdLogLevel } from '../etcd/etcd-log.js';
import { parseSchedule, type Schedule } from './schedule.js';
import type { EncodingInput } from '../snapshot/encode.js';
import { messageOf } from '../errors.js';
import { clientFiles } from '../model/data-dir.js';
import { parseRetentionPolicy, type BucketPolicy } from '../model/retention-policy.js';

export interface ServerConfig {
  dataDir: string;
  nodeName: string;
  /** Token text given by the user (flag, env, config or --token-file), if any. */
  token?: string;
  tokenFile?: string;
  bindAddress: string;
  advertiseAddress: string;
  supervisorPort: number;
  /** `--metrics-listen-address`: host:port of the unauthenticated metrics listener (server/metrics-http.ts). */
  metricsListenAddress?: string;
  etcdClientPort: number;
  etcdPeerPort: number;
  etcdBinary: string;
  etcdArgs: string[];
  /** etcd's `--log-level`, also the level its lines are re-logged at (`--etcd-log-level`). */
  etcdLogLevel: EtcdLogLevel;
  clusterInit: boolean;
  /** Supervisor URL of a server whose cluster this one joins. */
  joinURL?: string;
  clusterReset: boolean;
  restorePath?: string;
  /** `--cluster-reset-new-ca`: a fresh-host restore whose snapshot CA cannot be opened makes a new CA. */
  clusterResetNewCa: boolean;
  skipHashCheck: boolean;
  /** `--cluster-reset-restore-to` as given (changelog/plan.ts `parseRestoreTo` reads it). */
  restoreTo?: string;
  /** `--etcd-changelog` and its period (ms). */
  changelog: { enabled: boolean; periodMs: number };
  debug: boolean;
  logFormat: LogFormat;
  snapshots: {
    disabled: boolean;
    schedule: Schedule;
    retention: number;
    /** `--etcd-snapshot-retention-policy` (model/retention-policy.ts): replaces `retention` and the S3 count when set. */
    retentionPolicy?: BucketPolicy;
    dir: string;
    dirIsDefault: boolean;
    /** `--etcd-snapshot-api-dir`: more folders API requests may use (absolute, normalized). */
    apiDirs: string[];
    name: string;
    /** The encoding flags as given; snapshot/encode.ts `resolveEncoding` checks and combines them at start. */
    encodingInput: EncodingInput;
    /** `--etcd-snapshot-decrypt-identity-file`: read when an encrypted snapshot is restored or inspected. */
    identityFile?: string;
    /** `--etcd-s3-upload-retry-delays` in ms (its length bounds the retries; empty: none). */
    uploadRetryDelaysMs: number[];
    /** `--etcd-snapshot-notify-webhook` (a secret: never logged; server/notify.ts). */
    notifyWebhook?: string;
    /** `--etcd-snapshot-drill-schedule`: scheduled restore drills (docs/drills.md); absent: none. */
    drillSchedule?: Schedule;
    /** `--etcd-snapshot-drill-timeout` in ms. */
    drillTimeoutMs: number;
  };
}

/** Paths derived from the data dir, following k3s's layout. */
export interface ServerPaths {
  serverDir: string;
  dbDir: string;
  etcdDataDir: string;
  tokenFile: string;
  etcdPidFile: string;
  resetFlag: string;
  memberNameFile: string;
  /** The etcd cluster ID of the data in etcdDataDir (hex), written whenever etcd is up (identity.ts). */
  clusterIdFile: string;
  /** The last restore of this cluster, as JSON (identity.ts). */
  restoreRecordFile: string;
  /**
   * The supervisor URL of the daemon running on this data dir (host.ts writes it once the API
   * listens, the lock's release removes it): the CLI's `--etcd-server` when none is given.
   */
  supervisorUrlFile: string;
}

export function serverPaths(dataDir: string): ServerPaths {
  const serverDir = path.join(dataDir, 'server');
  const dbDir = path.join(serverDir, 'db');
  const client = clientFiles(dataDir);
  return {
    serverDir,
    dbDir,
    etcdDataDir: path.join(dbDir, 'etcd'),
    tokenFile: client.token,
    etcdPidFile: path.join(dbDir, 'etcd.pid'),
    resetFlag: path.join(dbDir, 'reset-flag'),
    memberNameFile: path.join(dbDir, 'etcd-member-name'),
    clusterIdFile: path.join(dbDir, 'cluster-id'),
    restoreRecordFile: path.join(dbDir, 'last-restore.json'),
    supervisorUrlFile: client.supervisorUrl,
  };
}

/** Names and addresses the serving certificates of this node must cover. */
export function certHosts(cfg: ServerConfig): string[] {
  const all = ['127.0.0.1', 'localhost', cfg.bindAddress, cfg.advertiseAddress, cfg.nodeName, os.hostname()];
  return [...new Set(all.filter((h) => h !== '' && h !== '0.0.0.0' && h !== '::'))];
}

/** `--etcd-snapshot-api-dir` values (checked absolute by the spec): items may hold comma-separated lists. */
function parseApiDirs(raw: readonly string[]): string[] {
  const dirs = raw
    .flatMap((r) => r.split(','))
    .map((d) => d.trim())
    .filter((d) => d !== '');
  return [...new Set(dirs.map((d) => path.resolve(d)))];
}

/** --node-name, or the hostname, which its spec's check must accept too. */
export function nodeNameOf(v: Values): string {
  const given = v.str('node-name');
  if (given !== undefined) return given;
  const host = os.hostname();
  try {
    checkValue(specOf(SERVER_OPTIONS, 'node-name'), host);
  } catch (err) {
    throw configError(`invalid node name from the hostname: ${messageOf(err)}; set --node-name`);
  }
  return host;
}

const nonEmpty = (s: string | undefined): boolean => s !== undefined && s !== '';

export function buildServerConfig(v: Values): ServerConfig {
  const nodeName = nodeNameOf(v);
  const dataDir = path.resolve(v.str('data-dir') ?? defaultDataDir());
  const ports = {
    supervisorPort: v.num('supervisor-port'),
    etcdClientPort: v.num('etcd-client-port'),
    etcdPeerPort: v.num('etcd-peer-port'),
  };
  const seen = new Map<number, string>();
  for (const [k, p] of Object.entries(ports)) {
    const flag = k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
    const other = seen.get(p);
    if (other) throw configError(`--${flag} and --${other} are both ${p}; give each a different port`);
    seen.set(p, flag);
  }
  const etcdArgs = v.list('etcd-arg');
  const joinURL = v.str('server');
  const clusterReset = v.bool('cluster-reset');
  const restorePath = v.str('cluster-reset-restore-path');
  if (restorePath !== undefined && restorePath !== '' && !clusterReset) {
    throw configError('invalid flag use; --cluster-reset required with --cluster-reset-restore-path');
  }
  const restoreTo = v.str('cluster-reset-restore-to');
  if (restoreTo !== undefined && restoreTo !== '' && !clusterReset) {
    throw configError('invalid flag use; --cluster-reset required with --cluster-reset-restore-to');
  }
  const clusterResetNewCa = v.bool('cluster-reset-new-ca');
  if (clusterResetNewCa && (restorePath === undefined || restorePath === '')) {
    throw configError('invalid flag use; --cluster-reset-restore-path required with --cluster-reset-new-ca');
  }
  if (clusterReset && joinURL !== undefined && joinURL !== '') {
    throw configError('cannot perform cluster-reset while server URL is set - remove server from configuration before resetting');
  }
  const token = v.str('token');
  const tokenFile = v.str('token-file');
  const etcdLogLevel = v.str('etcd-log-level');
  if (token !== undefined && tokenFile !== undefined) {
    throw configError('--token and --token-file are both set; use only one');
  }
  return {
    dataDir,
    nodeName,
    ...(token !== undefined ? { token } : {}),
    ...(tokenFile !== undefined ? { tokenFile: path.resolve(tokenFile) } : {}),
    bindAddress: v.text('bind-address'),
    advertiseAddress: v.text('advertise-address'),
    ...ports,
    ...(nonEmpty(v.str('metrics-listen-address')) ? { metricsListenAddress: v.text('metrics-listen-address') } : {}),
    etcdBinary: v.text('etcd-binary'),
    etcdArgs,
    // etcd's routine chatter is quiet unless asked for; --debug brings back its info lines
    etcdLogLevel: ETCD_LOG_LEVELS.find((l) => l === etcdLogLevel) ?? (v.bool('debug') ? 'info' : 'warn'),
    clusterInit: v.bool('cluster-init'),
    ...(joinURL !== undefined && joinURL !== '' ? { joinURL } : {}),
    clusterReset,
    ...(restorePath !== undefined && restorePath !== '' ? { restorePath } : {}),
    clusterResetNewCa,
    skipHashCheck: v.bool('skip-hash-check'),
    ...(restoreTo !== undefined && restoreTo !== '' ? { restoreTo } : {}),
    changelog: { enabled: v.bool('etcd-changelog'), periodMs: v.num('etcd-changelog-period') },
    debug: v.bool('debug'),
    logFormat: v.str('log-format') === 'json' ? 'json' : 'text',
    snapshots: snapshotConfigOf(v, dataDir),
  };
}

/**
 * The snapshot settings from resolved values (the server's and the agent's: the same option
 * specs); the default folder is `<dataDir>/server/db/snapshots`.
 */
export function snapshotConfigOf(v: Values, dataDir: string): ServerConfig['snapshots'] {
  const rawSnapshotDir = v.str('etcd-snapshot-dir');
  const snapshotDir = rawSnapshotDir === undefined || rawSnapshotDir === '' ? undefined : path.resolve(rawSnapshotDir);
  const apiDirs = parseApiDirs(v.list('etcd-snapshot-api-dir'));
  const retentionPolicy = parseRetentionPolicy(v.str('etcd-snapshot-retention-policy') ?? '');
  const counts = ['etcd-snapshot-retention', 'etcd-s3-retention'].filter((k) => v.isSet(k));
  if (retentionPolicy && counts.length > 0) {
    throw configError(
      `--etcd-snapshot-retention-policy replaces ${counts.map((k) => `--${k}`).join(' and ')}: remove ${counts.length > 1 ? 'them' : 'it'} (flag, config key or environment), or the policy`,
    );
  }
  return {
    disabled: v.bool('etcd-disable-snapshots'),
    schedule: parseSchedule(v.text('etcd-snapshot-schedule-cron')),
    retention: v.num('etcd-snapshot-retention'),
    ...(retentionPolicy ? { retentionPolicy } : {}),
    dir: snapshotDir ?? path.join(dataDir, 'server', 'db', 'snapshots'),
    dirIsDefault: snapshotDir === undefined,
    apiDirs,
    name: v.text('etcd-snapshot-name'),
    encodingInput: {
      compress: v.bool('etcd-snapshot-compress'),
      ...(v.isSet('etcd-snapshot-compression') ? { compression: v.text('etcd-snapshot-compression') } : {}),
      recipients: v.list('etcd-snapshot-encrypt-recipient'),
      ...(nonEmpty(v.str('etcd-snapshot-encrypt-recipients-file')) ? { recipientsFile: v.text('etcd-snapshot-encrypt-recipients-file') } : {}),
    },
    ...(nonEmpty(v.str('etcd-snapshot-decrypt-identity-file')) ? { identityFile: v.text('etcd-snapshot-decrypt-identity-file') } : {}),
    uploadRetryDelaysMs: parseRetryDelays(v.text('etcd-s3-upload-retry-delays')),
    ...(nonEmpty(v.str('etcd-snapshot-notify-webhook')) ? { notifyWebhook: v.text('etcd-snapshot-notify-webhook') } : {}),
    ...(nonEmpty(v.str('etcd-snapshot-drill-schedule'))
      ? { drillSchedule: parseSchedule(v.text('etcd-snapshot-drill-schedule'), { flag: '--etcd-snapshot-drill-schedule', what: 'drill' }) }
      : {}),
    drillTimeoutMs: v.num('etcd-snapshot-drill-timeout'),
  };
}

/** etcd's command line for this member (`--etcd-arg` values are appended last and win). */
export function etcdArgs(
  cfg: ServerConfig,
  p: ServerPaths,
  tls: { ca: string; serverCert: string; serverKey: string; peerCert: string; peerKey: string },
  member: { name: string; initialCluster: string; state: 'new' | 'existing' },
  mode: { loopbackOnly?: boolean; forceNewCluster?: boolean } = {},
): string[] {
  const urlHost = (ip: string): string => (isIP(ip) === 6 ? `[${ip}]` : ip);
  // during a cluster reset etcd listens on loopback only, so no peer can reach it
  const bind = mode.loopbackOnly ? '127.0.0.1' : cfg.bindAddress;
  const clientListen = [`https://${urlHost(bind)}:${cfg.etcdClientPort}`];
  if (bind !== '127.0.0.1' && bind !== '0.0.0.0') clientListen.push(`https://127.0.0.1:${cfg.etcdClientPort}`);
  const args = [
    `--name=${member.name}`,
    `--data-dir=${p.etcdDataDir}`,
    `--listen-client-urls=${clientListen.join(',')}`,
    `--advertise-client-urls=https://${urlHost(mode.loopbackOnly ? '127.0.0.1' : cfg.advertiseAddress)}:${cfg.etcdClientPort}`,
    `--listen-peer-urls=https://${urlHost(bind)}:${cfg.etcdPeerPort}`,
    `--initial-advertise-peer-urls=https://${urlHost(cfg.advertiseAddress)}:${cfg.etcdPeerPort}`,
    `--initial-cluster=${member.initialCluster}`,
    `--initial-cluster-state=${member.state}`,
    `--cert-file=${tls.serverCert}`,
    `--key-file=${tls.serverKey}`,
    `--trusted-ca-file=${tls.ca}`,
    '--client-cert-auth=true',
    `--peer-cert-file=${tls.peerCert}`,
    `--peer-key-file=${tls.peerKey}`,
    `--peer-trusted-ca-file=${tls.ca}`,
    '--peer-client-cert-auth=true',
    '--snapshot-count=10000',
    '--heartbeat-interval=500',
    '--election-timeout=5000',
    '--logger=zap',
    '--log-outputs=stderr',
    `--log-level=${cfg.etcdLogLevel}`,
  ];
  if (mode.forceNewCluster) args.push('--force-new-cluster');
  if (mode.loopbackOnly) {
    // a lone member on loopback: elect itself quickly (the normal timings suit real networks)
    args.splice(args.indexOf('--heartbeat-interval=500'), 2, '--heartbeat-interval=50', '--election-timeout=500');
  }
  for (const a of cfg.etcdArgs) args.push(`--${a.replace(/^--?/, '')}`);
  return args;
}
