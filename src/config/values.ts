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
  for (let m = re.exec(v); m !== null; m = re.exec(v)) {
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

/**
 * A check of a parsed value beyond its type, declared on an option's spec (`check`) and run
 * on values from flags, environment, config files and API requests alike. A list option's
 * check runs on each item. Throws an Error whose message completes "invalid value for <key>: ".
 */
export type ValueCheck = (value: OptionValue) => void;

/** `ms` as the shortest exact duration text (`90s`, `5m`, `24h`). */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const) {
    if (ms !== 0 && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

/** A check that a number lies within [min, max]; `show` renders bounds and value (durations as text). */
export function within(min: number, max: number, show: (n: number) => string = String): ValueCheck {
  return (value) => {
    if (typeof value !== 'number') return;
    if (value < min) throw new Error(`${show(value)} is less than ${show(min)}; use ${show(min)} to ${show(max)}`);
    if (value > max) throw new Error(`${show(value)} is more than ${show(max)}; use ${show(min)} to ${show(max)}`);
  };
}

/**
 * A JSON value (an API request field) as a value of `type`: strings, booleans and numbers
 * must already have their JSON type (no "5" for 5); numbers must be whole (durations are
 * milliseconds); counts are >= 0 and ports 1-65535. A list is an array of strings.
 * Throws an Error whose message completes `invalid field "<name>": `.
 */
export function valueFromJson(type: ValueType, v: unknown): OptionValue {
  switch (type) {
    case 'string':
      if (typeof v !== 'string') throw new Error('must be a string');
      return v;
    case 'boolean':
      if (typeof v !== 'boolean') throw new Error('must be true or false');
      return v;
    case 'list':
      if (!Array.isArray(v) || !v.every((i): i is string => typeof i === 'string')) throw new Error('must be a list of strings');
      return v;
    case 'int':
    case 'count':
    case 'port':
    case 'duration': {
      if (typeof v !== 'number' || !Number.isSafeInteger(v))
        throw new Error(type === 'duration' ? 'must be a whole number of milliseconds' : 'must be a whole number');
      // the string parsers hold the rules of each type (negative counts, port range)
      if (type !== 'duration') return parseValue(type, String(v));
      if (v < 0) throw new Error(`${v} is negative`);
      return v;
    }
  }
}
