/**
 * Where the TLS material lives under `${data-dir}/server/tls` and how it is kept current.
 * The cluster CA is created once (or handed in when joining); leaf certificates are issued
 * when missing, expiring or missing a host. Keys are 0600, folders 0700. The client
 * material sits at k3s's paths so that `etcdctl` works as on k3s:
 *   tls/etcd/server-ca.crt, tls/etcd/server-client.crt, tls/etcd/server-client.key
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { ensurePrivateDir, readIfExists } from '../util/fs.js';
import { writeFileAtomic } from '../util/durable.js';
import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import type { KeyPairPem, LeafRequest } from './pki.js';
import { clientFiles } from '../model/data-dir.js';

const DAY = 86_400_000;
/** The certificate library loads only when a certificate must be made (it is slow to load). */
const pki = (): Promise<typeof import('./pki.js')> => import('./pki.js');

export interface TlsPaths {
  dir: string;
  caCert: string;
  caKey: string;
  supervisorCert: string;
  supervisorKey: string;
  /** CA file for etcd clients and peers (a copy of the cluster CA certificate). */
  etcdCa: string;
  etcdServerCert: string;
  etcdServerKey: string;
  etcdPeerCert: string;
  etcdPeerKey: string;
  clientCert: string;
  clientKey: string;
}

export function tlsPaths(dataDir: string): TlsPaths {
  const dir = path.join(dataDir, 'server', 'tls');
  const etcd = path.join(dir, 'etcd');
  return {
    dir,
    caCert: clientFiles(dataDir).supervisorCa,
    caKey: path.join(dir, 'server-ca.key'),
    supervisorCert: path.join(dir, 'serving-supervisor.crt'),
    supervisorKey: path.join(dir, 'serving-supervisor.key'),
    etcdCa: path.join(etcd, 'server-ca.crt'),
    etcdServerCert: path.join(etcd, 'server.crt'),
    etcdServerKey: path.join(etcd, 'server.key'),
    etcdPeerCert: path.join(etcd, 'peer.crt'),
    etcdPeerKey: path.join(etcd, 'peer.key'),
    clientCert: path.join(etcd, 'server-client.crt'),
    clientKey: path.join(etcd, 'server-client.key'),
  };
}

/** Reads the cluster CA, or undefined when this data dir has none yet. */
export async function readCa(paths: TlsPaths): Promise<KeyPairPem | undefined> {
  const certPem = await readIfExists(paths.caCert);
  const keyPem = await readIfExists(paths.caKey);
  return certPem !== undefined && keyPem !== undefined ? { certPem, keyPem } : undefined;
}

export interface TlsMaterial {
  paths: TlsPaths;
  caPem: string;
}

/**
 * Makes sure the CA and every leaf certificate exist and are current.
 * @param ca the CA to install when the data dir has none (joining server); a new one is
 *           created when this is undefined too.
 * @param hosts names and addresses the server and peer certificates must cover.
 * @param leaves `all` (the server: supervisor, etcd server, peer and client certificates) or
 *           `supervisor` (the agent, which runs no etcd: the CA and the supervisor's only).
 */
export async function ensureTls(
  dataDir: string,
  hosts: readonly string[],
  nodeName: string,
  ca?: KeyPairPem,
  leaves: 'all' | 'supervisor' = 'all',
): Promise<TlsMaterial> {
  const paths = tlsPaths(dataDir);
  await ensurePrivateDir(paths.dir);
  if (leaves === 'all') await ensurePrivateDir(path.dirname(paths.etcdCa));
  let current = await readCa(paths);
  if (!current) {
    current = ca ?? (await (await pki()).createCa(`etcdsnap-ca@${Math.floor(Date.now() / 1000)}`));
    await writeFileAtomic(paths.caKey, current.keyPem, 0o600);
    await writeFileAtomic(paths.caCert, current.certPem, 0o644);
  }
  if (leaves === 'all' && (await readIfExists(paths.etcdCa)) !== current.certPem) {
    await writeFileAtomic(paths.etcdCa, current.certPem, 0o644);
  }
  const wanted: Array<[string, string, LeafRequest]> = [
    [paths.supervisorCert, paths.supervisorKey, { commonName: 'etcdsnap-supervisor', usage: 'server', hosts }],
  ];
  if (leaves === 'all')
    wanted.push(
      [paths.etcdServerCert, paths.etcdServerKey, { commonName: `etcd-server-${nodeName}`, usage: 'peer', hosts }],
      [paths.etcdPeerCert, paths.etcdPeerKey, { commonName: `etcd-peer-${nodeName}`, usage: 'peer', hosts }],
      [paths.clientCert, paths.clientKey, { commonName: 'etcd-client', usage: 'client', hosts: [] }],
    );
  for (const [certFile, keyFile, req] of wanted) {
    const existing = await readIfExists(certFile);
    const keyExists = (await readIfExists(keyFile)) !== undefined;
    if (existing !== undefined && keyExists && leafIsCurrent(existing, current.certPem, req.hosts)) {
      await fsp.chmod(keyFile, 0o600);
      continue;
    }
    const leaf = await (await pki()).issueLeaf(current, req);
    await writeFileAtomic(keyFile, leaf.keyPem, 0o600);
    await writeFileAtomic(certFile, leaf.certPem, 0o644);
  }
  return { paths, caPem: current.certPem };
}

/**
 * True when `certPem` was issued by `caPem`, covers every host in `hosts`, and stays valid
 * for at least 90 more days; otherwise the caller re-issues it.
 */
export function leafIsCurrent(certPem: string, caPem: string, hosts: readonly string[]): boolean {
  try {
    const cert = new X509Certificate(certPem);
    const ca = new X509Certificate(caPem);
    if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) return false;
    if (new Date(cert.validTo).getTime() - Date.now() < 90 * DAY) return false;
    const san = (cert.subjectAltName ?? '').split(',').map((s) => s.trim());
    return hosts.every((h) => san.includes(isIP(h) ? `IP Address:${h}` : `DNS:${h}`));
  } catch {
    return false;
  }
}
