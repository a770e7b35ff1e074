/**
 * The time-bucket retention policy as text and as a value (`--etcd-snapshot-retention-policy`,
 * docs/retention.md): `last=3,hourly=24,daily=7,weekly=4,monthly=12,yearly=2`, restic's
 * `forget --keep-*` counts. Pure: parsing and formatting only; what the counts mean is in
 * retention/buckets.ts.
 *
 * Contract:
 * - `parseRetentionPolicy` takes comma-separated `<rule>=<count>` items; rules are
 *   `RETENTION_RULES`, each at most once, in any order; a count is a whole number from 0
 *   to `MAX_RULE_COUNT`; rules not given are 0. Spaces around items are allowed.
 * - The empty text (or only spaces) is no policy: `undefined` (count-based retention applies).
 * - A policy whose counts are all 0 would delete every snapshot: refused.
 * - Every refusal is an `EtcdsnapError` (`usage`) with one line that says what to write
 *   instead; its message completes "invalid value for <flag>: " (config/checks.ts).
 * - `formatRetentionPolicy` writes the rules above 0 in `RETENTION_RULES` order;
 *   parse(format(p)) equals p.
 */
import { EtcdsnapError } from '../errors.js';

/** The rules, newest-first granularity: keep-last, then the calendar buckets. */
export const RETENTION_RULES = ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const;
export type RetentionRule = (typeof RETENTION_RULES)[number];

/** How many of each to keep (0: the rule is off). */
export type BucketPolicy = { readonly [R in RetentionRule]: number };

/** The largest count a rule takes (as `--etcd-snapshot-retention`'s bound). */
export const MAX_RULE_COUNT = 100_000;

const EXAMPLE = 'last=3,daily=7,weekly=4,monthly=12';
const isRule = (s: string): s is RetentionRule => (RETENTION_RULES as readonly string[]).includes(s);
const bad = (msg: string): EtcdsnapError => new EtcdsnapError('usage', msg);
const shown = (s: string): string => JSON.stringify(s.length > 60 ? `${s.slice(0, 60)}...` : s);

/** The policy of `text`, or undefined for the empty text (no policy); throws a one-line `usage` error. */
export function parseRetentionPolicy(text: string): BucketPolicy | undefined {
  if (text.trim() === '') return undefined;
  const counts: Record<RetentionRule, number> = { last: 0, hourly: 0, daily: 0, weekly: 0, monthly: 0, yearly: 0 };
  const seen = new Set<RetentionRule>();
  for (const raw of text.split(',')) {
    const item = raw.trim();
    if (item === '') throw bad(`empty item in ${shown(text)}: write <rule>=<count> items separated by single commas, e.g. ${EXAMPLE}`);
    const m = /^([a-z-]+)\s*=\s*(\S*)$/i.exec(item);
    if (!m) throw bad(`${shown(item)} is not <rule>=<count>: write e.g. ${EXAMPLE}`);
    const rule = (m[1] ?? '').toLowerCase().replace(/^keep-/, '');
    const count = m[2] ?? '';
    if (!isRule(rule)) throw bad(`unknown rule ${shown(m[1] ?? '')}: use ${RETENTION_RULES.join(', ')}`);
    if (seen.has(rule)) throw bad(`rule ${rule} given twice: give each rule once`);
    seen.add(rule);
    if (!/^-?\d+$/.test(count)) throw bad(`${rule}=${count}: the count must be a whole number (0 to ${MAX_RULE_COUNT})`);
    const n = Number(count);
    if (n < 0) throw bad(`${rule}=${count}: the count is negative; use 0 to ${MAX_RULE_COUNT} (0 turns the rule off)`);
    if (n > MAX_RULE_COUNT) throw bad(`${rule}=${count}: the count is above ${MAX_RULE_COUNT}`);
    counts[rule] = n;
  }
  if (RETENTION_RULES.every((r) => counts[r] === 0)) {
    throw bad(`${shown(text)} keeps nothing: give at least one count above 0 (e.g. ${EXAMPLE}), or no policy for count-based retention`);
  }
  return counts;
}

/** The policy as text, its rules above 0 in `RETENTION_RULES` order (`last=3,daily=7`). */
export function formatRetentionPolicy(p: BucketPolicy): string {
  return RETENTION_RULES.filter((r) => p[r] > 0)
    .map((r) => `${r}=${p[r]}`)
    .join(',');
}
