/**
 * The cluster's bootstrap data in etcd: the cluster CA (certificate and key), sealed with the
 * token's secret, under one key. k3s keeps its certificates in etcd the same way. The data
 * travels inside every snapshot, so a restore on a fresh host with the original token gets
 * the original CA back, and the token, the other servers and the CLI keep working.
 *
 * Sealing: scrypt(secret, random 16-byte salt) gives an AES-256-GCM key; a fresh salt and
 * IV on every seal. Whoever can read etcd sees only the sealed text; opening it needs the
 * secret. `sealBootstrap` and `openBootstrap` do no I/O (scrypt runs in the thread pool);
 * the rest talks to etcd.
 */
import { createCipheriv, createDecipheriv, randomBytes, scrypt } from 'node:crypto';
import type { KeyPairPem } from '../etcd/pki.js';
import { readCa, type TlsPaths } from '../etcd/tls.js';
import type { EtcdClient } from '../etcd/client.js';
import { caHash } from '../etcd/token.js';
import { messageOf } from '../errors.js';
import type { Feature } from './server.js';

/** The etcd key (outside Kubernetes' /registry; k3s uses /bootstrap/<hash>). */
export const BOOTSTRAP_KEY = '/etcdsnap/bootstrap';

const VERSION = 1;
const AAD = Buffer.from('etcdsnap-bootstrap-v1');
/** scrypt cost: about 170 ms of a thread-pool thread here; when the data is first stored, and per fresh-host restore. */
const SCRYPT = { N: 1 << 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 } as const;

interface Sealed {
  v: number;
  /** sha256 of the CA certificate (public, as the certificate is): compared without opening. */
  ca: string;
  salt: string;
  iv: string;
  tag: string;
  data: string;
}

const keyOf = (secret: string, salt: Buffer): Promise<Buffer> =>
  new Promise((resolve, reject) => scrypt(secret, salt, 32, SCRYPT, (err, key) => (err ? reject(err) : resolve(key))));

/** The CA sealed with `secret`, as the text stored in etcd. */
export async function sealBootstrap(ca: KeyPairPem, secret: string): Promise<string> {
  const salt = randomBytes(16);
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', await keyOf(secret, salt), iv);
  cipher.setAAD(AAD);
  const data = Buffer.concat([cipher.update(JSON.stringify({ caCert: ca.certPem, caKey: ca.keyPem }), 'utf8'), cipher.final()]);
  const sealed: Sealed = { v: VERSION, ca: caHash(ca.certPem), salt: salt.toString('base64'), iv: iv.toString('base64'), tag: cipher.getAuthTag().toString('base64'), data: data.toString('base64') };
  return JSON.stringify(sealed);
}

/** The CA hash a sealed text says it holds, without opening it (no scrypt). */
export function sealedCaHash(text: string): string | undefined {
  try {
    const s = JSON.parse(text) as Partial<Sealed>;
    return typeof s.ca === 'string' ? s.ca : undefined;
  } catch {
    return undefined;
  }
}

export type Opened = { ok: true; ca: KeyPairPem } | { ok: false; reason: 'wrong-secret' | 'malformed' };

/** Opens what `sealBootstrap` made; never rejects. */
export async function openBootstrap(text: string, secret: string): Promise<Opened> {
  let s: Partial<Sealed>;
  try {
    s = JSON.parse(text) as Partial<Sealed>;
  } catch {
    return { ok: false, reason: 'malformed' };
  }
  if (s.v !== VERSION || typeof s.ca !== 'string' || typeof s.salt !== 'string' || typeof s.iv !== 'string' || typeof s.tag !== 'string' || typeof s.data !== 'string') {
    return { ok: false, reason: 'malformed' };
  }
  let plain: string;
  try {
    const decipher = createDecipheriv('aes-256-gcm', await keyOf(secret, Buffer.from(s.salt, 'base64')), Buffer.from(s.iv, 'base64'));
    decipher.setAAD(AAD);
    decipher.setAuthTag(Buffer.from(s.tag, 'base64'));
    plain = Buffer.concat([decipher.update(Buffer.from(s.data, 'base64')), decipher.final()]).toString('utf8');
  } catch {
    // GCM authentication fails for another secret (or altered bytes: indistinguishable)
    return { ok: false, reason: 'wrong-secret' };
  }
  try {
    const o = JSON.parse(plain) as { caCert?: unknown; caKey?: unknown };
    if (typeof o.caCert === 'string' && typeof o.caKey === 'string' && caHash(o.caCert) === s.ca) return { ok: true, ca: { certPem: o.caCert, keyPem: o.caKey } };
  } catch {
    /* falls through */
  }
  return { ok: false, reason: 'malformed' };
}

/** The sealed bootstrap data in this etcd, if any. */
export function readBootstrap(etcd: EtcdClient): Promise<string | undefined> {
  return etcd.getValue(BOOTSTRAP_KEY);
}

/**
 * Keeps the bootstrap data in etcd current at every server start: written when absent or
 * holding another CA; otherwise left alone, so the servers of a cluster do not rewrite it
 * in turn, and without opening it (a server's secret cannot change while it keeps its CA).
 * A failure is logged, not fatal: the server works without it; only a later fresh-host
 * restore would miss it.
 */
export function bootstrapDataFeature(tls: TlsPaths, secret: string): Feature {
  return async ({ etcd, logger }) => {
    try {
      const ca = await readCa(tls);
      if (!ca) throw new Error(`no cluster CA in ${tls.dir}`);
      const current = await readBootstrap(etcd);
      if (current !== undefined && sealedCaHash(current) === caHash(ca.certPem)) return;
      await etcd.putValue(BOOTSTRAP_KEY, await sealBootstrap(ca, secret));
      logger.info({ key: BOOTSTRAP_KEY }, 'stored the cluster CA in etcd, sealed with the token, for restores on fresh hosts');
    } catch (err) {
      logger.warn({ err: messageOf(err) }, 'could not store the bootstrap data in etcd; a restore on a fresh host will create a new CA');
    }
  };
}
