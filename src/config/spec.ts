/**
 * What an option is (`OptionSpec`) and the pure functions over a list of them: lookup by key
 * or alias, defaults, and the checks every source of a value goes through (`checkValue` for
 * flags, environment and config file; `jsonValue` for an API field). The lists themselves are
 * in schema.ts, which re-exports these so that callers import one module.
 */
import { valueFromJson, type OptionValue, type ValueCheck, type ValueType } from './values.js';

export interface OptionSpec {
  /** Long flag name without dashes; also the config-file key. */
  readonly key: string;
  readonly short?: string;
  /** Environment variable read when the flag is not on the command line. */
  readonly env?: string;
  readonly type: ValueType;
  readonly description: string;
  /** Default value (computed defaults are described by `defaultText` and applied by the command). */
  readonly default?: OptionValue;
  /** Text shown in --help for computed defaults. */
  readonly defaultText?: string;
  readonly choices?: readonly string[];
  /** Extra spellings accepted on the command line and in the config file. */
  readonly aliases?: readonly string[];
  /**
   * Values are secrets: never printed or logged, and a flag of one warns (it was visible in ps).
   * Scrubbing (log/secrets.ts) knows the token once its policy accepted it, and S3 errors are
   * scrubbed of the S3 settings where they are translated; resolving registers nothing.
   */
  readonly secret?: boolean;
  readonly valueName?: string;
  /** Accepted but not shown in --help. */
  readonly hidden?: boolean;
  /** Validation beyond the type, for every source of the value (see `ValueCheck`). */
  readonly check?: ValueCheck;
}

/** Looks a spec up by its key or one of its aliases. */
export function findSpec(specs: readonly OptionSpec[], key: string): OptionSpec | undefined {
  return specs.find((s) => s.key === key || (s.aliases ?? []).includes(key));
}

/** The spec of `key` (or an alias) in `specs`; a missing one is a bug. */
export function specOf(specs: readonly OptionSpec[], key: string): OptionSpec {
  const spec = findSpec(specs, key);
  if (!spec) throw new Error(`bug: no option ${key}`);
  return spec;
}

/** The string default of `key`; a spec without one is a bug. */
export function stringDefault(specs: readonly OptionSpec[], key: string): string {
  const d = specOf(specs, key).default;
  if (typeof d !== 'string') throw new Error(`bug: option ${key} has no string default`);
  return d;
}

/** The numeric default of `key` (ports, counts, durations in ms); a spec without one is a bug. */
export function numberDefault(specs: readonly OptionSpec[], key: string): number {
  const d = specOf(specs, key).default;
  if (typeof d !== 'number') throw new Error(`bug: option ${key} has no numeric default`);
  return d;
}

/**
 * `value` (already of the spec's type) when it is one of the spec's `choices` and passes its
 * `check` (a list item by item). Throws an Error whose message completes "invalid value for <key>: ".
 */
export function checkValue(spec: OptionSpec, value: OptionValue): OptionValue {
  checkChoices(spec, value);
  for (const item of Array.isArray(value) ? value : [value]) spec.check?.(item);
  return value;
}

/** The `choices` part of `checkValue` (commander checks it while parsing a flag). */
export function checkChoices(spec: OptionSpec, value: OptionValue): OptionValue {
  for (const item of Array.isArray(value) ? value : [value]) {
    if (spec.choices && !spec.choices.includes(String(item))) throw new Error(`"${String(item)}" is not one of ${spec.choices.join(', ')}`);
  }
  return value;
}

/**
 * A JSON field of an API request as a valid value of `spec`: its JSON type (values.ts
 * `valueFromJson`), then `checkValue`. Throws an Error whose message completes
 * `invalid field "<name>": `.
 */
export function jsonValue(spec: OptionSpec, v: unknown): OptionValue {
  return checkValue(spec, valueFromJson(spec.type, v));
}
