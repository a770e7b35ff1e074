/**
 * The cluster token, in k3s's format `K10<sha256 of the CA PEM>::server:<secret>`. The
 * hash pins the cluster CA, so a client holding the token can verify the server without a
 * CA file; the secret authenticates API calls and joins. Pure functions, no I/O.
 *
 * Strength policy (`secretStrength`): the secret also seals the cluster CA key that every
 * snapshot carries (server/bootstrap-data.ts), so whoever holds one snapshot file can guess
 * the secret offline, at the cost of one scrypt per guess (N=2^17: about 0.6 s of one core
 * here), with no server to rate-limit them. The API's own check is online and cheap to
 * throttle; the snapshot is the weak point. A length floor is the one rule that can be
 * checked and explained in one line: at least MIN_SECRET_LENGTH (16) characters. Sixteen
 * random hex digits are 64 bits, out of reach at 0.6 s a guess; a generated secret
 * (`newSecret`, 64 hex digits) and `openssl rand -hex 16` (32) pass with room. Length is a
 * floor, not an entropy measure: `aaaaaaaaaaaaaaaa` passes; the message says to use a
 * random value. k3s accepts any token; etcdsnap departs from it here:
 * - a short secret is refused where it would create a new cluster or a new token file
 *   (first start with --token, --token-file, $ETCDSNAP_TOKEN or the config file on a data
 *   dir without a token or CA): nothing exists yet, so choosing a longer one costs nothing;
 * - it is only warned about where refusing would lock an operator out of what exists:
 *   joining with --server, a --cluster-reset (restore or not: the secret must be the one
 *   the snapshot's data is sealed with), a data dir that already has a token or CA.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { configError } from '../errors.js';

export interface ParsedToken {
  /** Hex sha256 of the CA bundle, when the token is in the full format. */
  caHash?: string;
  /** The secret part. */
  secret: string;
}

const FULL = /^K10([0-9a-f]{64})::([^:\s]+):(\S+)$/;

export function caHash(caPem: string | Buffer): string {
  return createHash('sha256').update(caPem).digest('hex');
}

export function newSecret(): string {
  return randomBytes(32).toString('hex');
}

/** Parses a full (`K10...::server:secret`) or bare (`secret`) token. */
export function parseToken(raw: string): ParsedToken {
  const t = raw.trim();
  if (t.length === 0) throw configError('the token is empty; pass --token or --token-file with a non-empty value');
  if (t.startsWith('K10')) {
    const m = FULL.exec(t);
    if (!m) throw configError('the token starts with K10 but is not K10<sha256>::server:<secret>; copy it whole from <data-dir>/server/token');
    return { caHash: m[1] ?? '', secret: m[3] ?? '' };
  }
  if (/\s/.test(t)) throw configError('the token must not contain whitespace');
  return { secret: t };
}

export function formatToken(caPem: string | Buffer, secret: string): string {
  return tokenFromHash(caHash(caPem), secret);
}

/** The full token from a CA hash (hex) and a secret. */
export function tokenFromHash(hash: string, secret: string): string {
  return `K10${hash}::server:${secret}`;
}

/** Shortest secret accepted for a new cluster (see the module comment for why 16). */
export const MIN_SECRET_LENGTH = 16;

/** Whether the secret creates a new cluster/token file, or belongs to one that exists. */
export type SecretUse = 'new-cluster' | 'existing-cluster';

export type SecretVerdict = { action: 'ok' } | { action: 'refuse' | 'warn'; message: string };

/**
 * The strength policy (pure): `ok` for a secret of MIN_SECRET_LENGTH characters or more;
 * otherwise `refuse` for a new cluster, `warn` for an existing one. Messages are one line,
 * never contain the secret, and say why and what to do.
 */
export function secretStrength(secret: string, use: SecretUse): SecretVerdict {
  const length = [...secret].length;
  if (length >= MIN_SECRET_LENGTH) return { action: 'ok' };
  const chars = `${length} character${length === 1 ? '' : 's'}`;
  const why = `every snapshot holds the cluster CA key sealed with it, open to offline guessing by whoever gets a snapshot file`;
  if (use === 'new-cluster') {
    return {
      action: 'refuse',
      message: `the token's secret has ${chars}; a new cluster needs at least ${MIN_SECRET_LENGTH}, because ${why}; use a random one (openssl rand -hex 16) or omit --token/--token-file/$ETCDSNAP_TOKEN to have one generated`,
    };
  }
  return {
    action: 'warn',
    message: `the token's secret has only ${chars} (under ${MIN_SECRET_LENGTH}): ${why}; keep snapshots private, and prefer a cluster created with a random token (openssl rand -hex 16)`,
  };
}

/** Constant-time comparison of two secrets of any length. */
export function secretsEqual(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb) && a.length === b.length;
}
