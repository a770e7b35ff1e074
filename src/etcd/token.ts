/**
 * The cluster token, in k3s's format `K10<sha256 of the CA PEM>::server:<secret>`. The
 * hash pins the cluster CA, so a client holding the token can verify the server without a
 * CA file; the secret authenticates API calls and joins. Pure functions, no I/O.
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

/** Constant-time comparison of two secrets of any length. */
export function secretsEqual(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb) && a.length === b.length;
}
