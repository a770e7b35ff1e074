/**
 * What the server says once it is ready, in a few lines an operator can act on: what runs
 * (etcd version and member, its URLs), where the cluster token is (its path, never its
 * value), the exact `etcdctl` command for this member, and last "etcdsnap server ready"
 * (node name, client and supervisor URLs, data dir). Pure: no I/O.
 */
import { isIP } from 'node:net';
import type { TlsPaths } from '../etcd/tls.js';
import type { ServerConfig, ServerPaths } from './config.js';

export interface SummaryLine {
  fields: Record<string, string>;
  msg: string;
}

/** A word as a POSIX shell reads it back unchanged (quoted only when it needs to be). */
export function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * The etcdctl command line for this node's etcd: loopback endpoint (etcd always listens on
 * it) and the k3s-style client certificate paths, then `args`.
 */
export function etcdctlCommand(clientPort: number, tls: Pick<TlsPaths, 'etcdCa' | 'clientCert' | 'clientKey'>, args: readonly string[]): string {
  return [
    'etcdctl',
    `--endpoints=https://127.0.0.1:${clientPort}`,
    `--cacert=${shellQuote(tls.etcdCa)}`,
    `--cert=${shellQuote(tls.clientCert)}`,
    `--key=${shellQuote(tls.clientKey)}`,
    ...args.map(shellQuote),
  ].join(' ');
}

/** etcd's member IDs come as decimal uint64 strings; etcdctl shows them in hex. */
function hexId(id: string): string {
  try {
    return BigInt(id).toString(16);
  } catch {
    return id;
  }
}

export interface SummaryInput {
  cfg: ServerConfig;
  paths: ServerPaths;
  tls: Pick<TlsPaths, 'etcdCa' | 'clientCert' | 'clientKey'>;
  member: string;
  etcd: { version: string; memberId: string };
}

/** The start-up lines, in order; the last one is "etcdsnap server ready". */
export function startupSummary(i: SummaryInput): SummaryLine[] {
  const { cfg, paths } = i;
  const host = isIP(cfg.advertiseAddress) === 6 ? `[${cfg.advertiseAddress}]` : cfg.advertiseAddress;
  const clientURL = `https://${host}:${cfg.etcdClientPort}`;
  const peerURL = `https://${host}:${cfg.etcdPeerPort}`;
  const supervisorURL = `https://${host}:${cfg.supervisorPort}`;
  const memberId = hexId(i.etcd.memberId);
  return [
    {
      fields: { etcdVersion: i.etcd.version, member: i.member, memberId, peerURL },
      msg: `etcd ${i.etcd.version} runs as member ${i.member} (${memberId}); clients: ${clientURL}, peers: ${peerURL}`,
    },
    {
      fields: { tokenFile: paths.tokenFile },
      msg: `cluster token: ${paths.tokenFile} (etcdsnap etcd-snapshot and joining servers need it; keep it secret)`,
    },
    { fields: {}, msg: `etcdctl: ${etcdctlCommand(cfg.etcdClientPort, i.tls, ['endpoint', 'health'])}` },
    { fields: { nodeName: cfg.nodeName, clientURL, supervisorURL, dataDir: cfg.dataDir }, msg: 'etcdsnap server ready' },
  ];
}
