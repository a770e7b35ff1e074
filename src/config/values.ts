/**
 * Value parsers shared by flags, environment variables and config-file keys, so that a
 * value is validated the same way wherever it comes from. Each throws a plain Error whose
 * message completes the sentence "invalid value for <key>: ...".
 */
export type OptionValue = string | number | boolean | string[];

export type ValueType = 'string' | 'boolean' | 'int' | 'count' | 'port' | 'duration' | 'list';

const TRUE = new Set(['true', '1', 'yes', 'on', 't']);
const FALSE = new Set(['false', '0', 'no', 'off', 'f']);

export function parseBoolean(raw: string): boolean {
  const v = raw.trim().toLowerCase();
  if (TRUE.has(v)) return true;
  if (FALSE.has(v)) return false;
  throw new Error(`"${raw}" is not a boolean (use true or false)`);
}

export function parseInteger(raw: string): number {
  const v = raw.trim();
  if (!/^-?\d+$/.test(v)) throw new Error(`"${raw}" is not an integer`);
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new Error(`"${raw}" is out of range`);
  return n;
}

/** A whole number >= 0 (retention counts: 0 disables pruning). */
export function parseCount(raw: string): number {
  let n: number;
  try {
    n = parseInteger(raw);
  } catch {
    throw new Error(`"${raw}" is not a whole number`);
  }
  if (n < 0) throw new Error(`${n} is negative; use 0 or more (0 disables pruning)`);
  return n;
}

export function parsePort(raw: string): number {
  let n: number;
  try {
    n = parseInteger(raw);
  } catch {
    throw new Error(`"${raw}" is not a port number (1-65535)`);
  }
  if (n < 1 || n > 65535) throw new Error(`${n} is not a port number (1-65535)`);
  return n;
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses a Go-style duration (`5m`, `1h30m`, `2s`, `500ms`) into milliseconds. */
export function parseDuration(raw: string): number {
  const v = raw.trim();
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/gy;
  let total = 0;
  let matched = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(v)) !== null) {
    total += Number(m[1]) * (DURATION_UNITS[m[2] ?? 's'] ?? 1000);
    matched = re.lastIndex;
  }
  if (v.length === 0 || matched !== v.length) {
    throw new Error(`"${raw}" is not a duration (examples: 30s, 5m, 1h30m)`);
  }
  return Math.round(total);
}

/** Parses one raw string for a value type. Lists take one item per call. */
export function parseValue(type: ValueType, raw: string): OptionValue {
  switch (type) {
    case 'string':
    case 'list':
      return raw;
    case 'boolean':
      return parseBoolean(raw);
    case 'int':
      return parseInteger(raw);
    case 'count':
      return parseCount(raw);
    case 'port':
      return parsePort(raw);
    case 'duration':
      return parseDuration(raw);
  }
}
