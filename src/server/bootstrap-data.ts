/**
 * The cluster's bootstrap data in etcd: the cluster CA (certificate and key), sealed with the
 * token's secret, under one key. k3s keeps its certificates in etcd the same way. The data
 * travels inside every snapshot, so a restore on a fresh host with the original token gets
 * the original CA back, and the token, the other servers and the CLI keep working.
 *
 * Sealing (version 2): scrypt(secret, random 16-byte salt, N=2^17, r=8, p=1: OWASP's
 * current guidance, about 0.6 s and 128 MiB here) gives an AES-256-GCM key; a fresh salt
 * and IV on every seal, a 16-byte tag. The KDF parameters are stored in the sealed text
 * (`kdf`), so they can be raised later without breaking what is stored. Version 1 texts
 * (no `kdf`: scrypt N=2^15, r=8, p=1) still open; `bootstrapDataFeature` re-seals them as
 * version 2 at the next server start. Parameters read from a text are bounded (memory and
 * work, see `KDF_LIMITS`) before any scrypt runs, so a crafted snapshot cannot make us
 * allocate gigabytes or spin for minutes: it is `malformed`, as is a tag, IV or salt of
 * the wrong size. Whoever can read etcd (or a snapshot) sees only the sealed text; opening
 * it needs the secret, at one scrypt per guess (hence the token strength policy in
 * etcd/token.ts). `sealBootstrap`, `openBootstrap`, `sealedCaHash` and `needsReseal` do no
 * I/O (scrypt runs in the thread pool); the rest talks to etcd.
 */
import { createCipheriv, createDecipheriv, randomBytes, scrypt } from 'node:crypto';
import type { KeyPairPem } from '../etcd/pki.js';
import { readCa, type TlsPaths } from '../etcd/tls.js';
import type { EtcdClient } from '../etcd/client.js';
import { caHash, secretStrength } from '../etcd/token.js';
import { messageOf } from '../errors.js';
import type { Feature } from './feature.js';
import { checkFormatVersion, FORMATS } from '../model/format-version.js';

/** The etcd key (outside Kubernetes' /registry; k3s uses /bootstrap/<hash>). */
export const BOOTSTRAP_KEY = '/etcdsnap/bootstrap';

/** scrypt parameters as stored in a version 2 text. */
export interface KdfParams {
  name: 'scrypt';
  N: number;
  r: number;
  p: number;
}

/** The sealed format this etcdsnap writes (model/format-version.ts); newer texts are refused as `newer`. */
const VERSION = FORMATS.bootstrap.version;
/** What `sealBootstrap` uses now (OWASP password storage guidance for scrypt). */
export const CURRENT_KDF: KdfParams = { name: 'scrypt', N: 1 << 17, r: 8, p: 1 };
/** The fixed parameters of version 1 texts. */
const V1_KDF: KdfParams = { name: 'scrypt', N: 1 << 15, r: 8, p: 1 };
const AAD: Record<number, Buffer> = { 1: Buffer.from('etcdsnap-bootstrap-v1'), 2: Buffer.from('etcdsnap-bootstrap-v2') };

/**
 * Bounds on parameters read from a sealed text: scrypt needs 128·N·r bytes and 128·N·r·p
 * block operations. 256 MiB and 4x the current work allow raising the parameters one step
 * later; more is refused as malformed before scrypt runs.
 */
export const KDF_LIMITS = {
  minN: 1 << 14,
  maxMemBytes: 256 * 1024 * 1024,
  maxWork: 4 * CURRENT_KDF.N * CURRENT_KDF.r * CURRENT_KDF.p,
  maxR: 32,
  maxP: 16,
} as const;

const SALT_BYTES = 16;
const IV_BYTES = 12;
const TAG_BYTES = 16;

interface Sealed {
  v: number;
  /** Version 2: the KDF and its parameters. */
  kdf?: KdfParams;
  /** sha256 of the CA certificate (public, as the certificate is): compared without opening. */
  ca: string;
  salt: string;
  iv: string;
  tag: string;
  data: string;
}

/** Whether `k` is scrypt with parameters inside KDF_LIMITS (pure). */
export function kdfAcceptable(k: unknown): k is KdfParams {
  if (typeof k !== 'object' || k === null) return false;
  const { name, N, r, p } = k as Record<string, unknown>;
  if (name !== 'scrypt' || typeof N !== 'number' || typeof r !== 'number' || typeof p !== 'number') return false;
  if (!Number.isSafeInteger(N) || !Number.isSafeInteger(r) || !Number.isSafeInteger(p)) return false;
  if (N < KDF_LIMITS.minN || (N & (N - 1)) !== 0 || r < 1 || r > KDF_LIMITS.maxR || p < 1 || p > KDF_LIMITS.maxP) return false;
  return 128 * N * r <= KDF_LIMITS.maxMemBytes && N * r * p <= KDF_LIMITS.maxWork;
}

const keyOf = (secret: string, salt: Buffer, k: KdfParams): Promise<Buffer> =>
  new Promise((resolve, reject) =>
    // maxmem: scrypt's own need (128·N·r) plus room for its p blocks and bookkeeping
    scrypt(secret, salt, 32, { N: k.N, r: k.r, p: k.p, maxmem: 128 * k.N * k.r + 128 * k.r * k.p + 1024 * 1024 }, (err, key) =>
      err ? reject(err) : resolve(key),
    ),
  );

/** The CA sealed with `secret`, as the text stored in etcd (version 2, CURRENT_KDF). */
export async function sealBootstrap(ca: KeyPairPem, secret: string): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', await keyOf(secret, salt, CURRENT_KDF), iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(AAD[VERSION] ?? Buffer.alloc(0));
  const data = Buffer.concat([cipher.update(JSON.stringify({ caCert: ca.certPem, caKey: ca.keyPem }), 'utf8'), cipher.final()]);
  const sealed: Sealed = {
    v: VERSION,
    kdf: { ...CURRENT_KDF },
    ca: caHash(ca.certPem),
    salt: salt.toString('base64'),
    iv: iv.toString('base64'),
    tag: cipher.getAuthTag().toString('base64'),
    data: data.toString('base64'),
  };
  return JSON.stringify(sealed);
}

function parseSealed(text: string): Partial<Sealed> | undefined {
  try {
    const s: unknown = JSON.parse(text);
    return typeof s === 'object' && s !== null ? (s as Partial<Sealed>) : undefined;
  } catch {
    return undefined;
  }
}

/** The CA hash a sealed text says it holds, without opening it (no scrypt). */
export function sealedCaHash(text: string): string | undefined {
  const s = parseSealed(text);
  return typeof s?.ca === 'string' ? s.ca : undefined;
}

/**
 * Whether a stored text should be sealed again with the current format (pure, no scrypt):
 * true for version 1 and for version 2 with weaker KDF parameters than CURRENT_KDF (less
 * memory or less work). A text from a newer version, or with stronger parameters, is left
 * alone, so servers of different versions in one cluster do not rewrite it in turn.
 */
export function needsReseal(text: string): boolean {
  const s = parseSealed(text);
  if (s === undefined || typeof s.v !== 'number' || s.v < VERSION) return true;
  if (s.v > VERSION) return false;
  const k = s.kdf;
  if (!kdfAcceptable(k)) return true;
  return k.N * k.r < CURRENT_KDF.N * CURRENT_KDF.r || k.N * k.r * k.p < CURRENT_KDF.N * CURRENT_KDF.r * CURRENT_KDF.p;
}

export type Opened = { ok: true; ca: KeyPairPem } | { ok: false; reason: 'wrong-secret' | 'malformed' } | { ok: false; reason: 'newer'; message: string };

/** Decodes base64 that must be exactly `bytes` long (undefined otherwise). */
function exactBytes(b64: string, bytes: number): Buffer | undefined {
  const b = Buffer.from(b64, 'base64');
  return b.length === bytes && b.toString('base64') === b64 ? b : undefined;
}

/**
 * Opens what `sealBootstrap` made (version 2) or its predecessor (version 1); never
 * rejects. `malformed`: not a sealed text, KDF parameters outside KDF_LIMITS, a salt, IV
 * or tag of the wrong size, or contents that do not match the CA hash in clear.
 * `wrong-secret`: GCM authentication failed (another secret, or altered bytes). `newer`: a
 * version above VERSION, sealed by a newer etcdsnap (`message`: the one line saying so).
 */
export async function openBootstrap(text: string, secret: string): Promise<Opened> {
  const s = parseSealed(text);
  if (typeof s?.v === 'number') {
    const verdict = checkFormatVersion('bootstrap', s.v, "the snapshot's bootstrap data");
    if (!verdict.ok && verdict.reason === 'newer') return { ok: false, reason: 'newer', message: verdict.message };
  }
  if (!s || typeof s.ca !== 'string' || typeof s.salt !== 'string' || typeof s.iv !== 'string' || typeof s.tag !== 'string' || typeof s.data !== 'string') {
    return { ok: false, reason: 'malformed' };
  }
  let kdf: KdfParams;
  if (s.v === 1 && s.kdf === undefined) kdf = V1_KDF;
  else if (s.v === 2 && kdfAcceptable(s.kdf)) kdf = s.kdf;
  else return { ok: false, reason: 'malformed' };
  const aad = AAD[s.v];
  const salt = exactBytes(s.salt, SALT_BYTES);
  const iv = exactBytes(s.iv, IV_BYTES);
  const tag = exactBytes(s.tag, TAG_BYTES);
  if (!aad || !salt || !iv || !tag) return { ok: false, reason: 'malformed' };
  let plain: string;
  try {
    const decipher = createDecipheriv('aes-256-gcm', await keyOf(secret, salt, kdf), iv, { authTagLength: TAG_BYTES });
    decipher.setAAD(aad);
    decipher.setAuthTag(tag);
    plain = Buffer.concat([decipher.update(Buffer.from(s.data, 'base64')), decipher.final()]).toString('utf8');
  } catch {
    // GCM authentication fails for another secret (or altered bytes: indistinguishable)
    return { ok: false, reason: 'wrong-secret' };
  }
  try {
    const o = JSON.parse(plain) as { caCert?: unknown; caKey?: unknown };
    if (typeof o.caCert === 'string' && typeof o.caKey === 'string' && caHash(o.caCert) === s.ca)
      return { ok: true, ca: { certPem: o.caCert, keyPem: o.caKey } };
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
 * Keeps the bootstrap data in etcd current at every server start: written when absent,
 * holding another CA, or sealed in an older format (`needsReseal`: version 1, or other KDF
 * parameters); otherwise left alone, so the servers of a cluster do not rewrite it in
 * turn, and without opening it (a server's secret cannot change while it keeps its CA).
 * A failure is logged, not fatal: the server works without it; only a later fresh-host
 * restore would miss it. It also logs, at every start, the token strength warning when
 * the secret is short (`secretStrength`: a server that got this far with a short secret
 * belongs to a cluster that exists).
 */
export function bootstrapDataFeature(tls: TlsPaths, secret: string): Feature {
  return async ({ etcd, logger }) => {
    const verdict = secretStrength(secret, 'existing-cluster');
    if (verdict.action !== 'ok') logger.warn(verdict.message);
    try {
      const ca = await readCa(tls);
      if (!ca) throw new Error(`no cluster CA in ${tls.dir}`);
      const current = await readBootstrap(etcd);
      const sameCa = current !== undefined && sealedCaHash(current) === caHash(ca.certPem);
      if (sameCa && !needsReseal(current)) return;
      await etcd.putValue(BOOTSTRAP_KEY, await sealBootstrap(ca, secret));
      if (sameCa) logger.info({ key: BOOTSTRAP_KEY, v: VERSION, kdf: CURRENT_KDF }, 'sealed the cluster CA in etcd again with the current key derivation');
      else logger.info({ key: BOOTSTRAP_KEY }, 'stored the cluster CA in etcd, sealed with the token, for restores on fresh hosts');
    } catch (err) {
      logger.warn({ err: messageOf(err) }, 'could not store the bootstrap data in etcd; a restore on a fresh host will create a new CA');
    }
  };
}
