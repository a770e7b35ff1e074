/**
 * Turns a parsed commander command plus the environment plus config files into one map of
 * validated values. Precedence, highest first: command line > environment > config file
 * (config.yaml, then config.yaml.d/*.yaml in name order, later files winning) > default.
 * Unknown config keys warn and are skipped; a bad value anywhere is a ConfigError naming
 * where it came from.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { configError, errnoCode, messageOf } from '../errors.js';
import { checkChoices, checkValue, DEFAULT_CONFIG_FILE, findSpec, type OptionSpec } from './schema.js';
import { parseBoolean, parseValue, type OptionValue } from './values.js';

export type ValueSource = 'cli' | 'env' | 'config' | 'default';

const attr = (key: string): string => key.replace(/-([a-z0-9])/g, (_m, c: string) => c.toUpperCase());

function describe(spec: OptionSpec): string {
  const parts = [spec.description];
  if (spec.choices) parts.push(`(one of: ${spec.choices.join(', ')})`);
  const def = spec.defaultText ?? (spec.default !== undefined && spec.type !== 'boolean' ? String(spec.default) : undefined);
  if (def !== undefined) parts.push(`(default: ${def})`);
  if (spec.env) parts.push(`[$${spec.env}]`);
  return parts.join(' ');
}

/** Adds one commander option per spec (plus hidden aliases and `--no-` forms of booleans). */
export function addOptions(cmd: Command, specs: readonly OptionSpec[]): Command {
  for (const spec of specs) {
    for (const [i, key] of [spec.key, ...(spec.aliases ?? [])].entries()) {
      const short = i === 0 && spec.short ? `-${spec.short}, ` : '';
      const arg = spec.type === 'boolean' ? '' : ` <${spec.valueName ?? 'value'}>`;
      const opt = new Option(`${short}--${key}${arg}`, describe(spec));
      if (i > 0 || spec.hidden) opt.hideHelp();
      if (spec.type !== 'boolean') {
        opt.argParser((raw: string, prev: unknown) => {
          let v: OptionValue;
          try {
            v = checkChoices(spec, parseValue(spec.type, raw));
          } catch (err) {
            throw new InvalidArgumentError(messageOf(err));
          }
          if (spec.type === 'list') return [...(Array.isArray(prev) ? (prev as string[]) : []), String(v)];
          return v;
        });
      }
      cmd.addOption(opt);
      if (spec.type === 'boolean') cmd.addOption(new Option(`--no-${key}`).hideHelp());
    }
  }
  return cmd;
}

/**
 * Rewrites `--flag=true|false` for boolean flags into `--flag` / `--no-flag`, as k3s users
 * write them. Everything else is returned unchanged.
 */
export function normalizeBooleanArgs(argv: readonly string[], specs: readonly OptionSpec[]): string[] {
  return argv.map((a) => {
    const m = /^--([a-z0-9-]+)=(.*)$/.exec(a);
    if (!m) return a;
    const spec = findSpec(specs, m[1] ?? '');
    if (spec?.type !== 'boolean') return a;
    let v: boolean;
    try {
      v = parseBoolean(m[2] ?? '');
    } catch (err) {
      throw configError(`invalid value for --${m[1]}: ${messageOf(err)}`);
    }
    return v ? `--${m[1]}` : `--no-${m[1]}`;
  });
}

/** Validated option values with their sources. */
export class Values {
  constructor(
    private readonly values: ReadonlyMap<string, OptionValue>,
    readonly sources: ReadonlyMap<string, ValueSource>,
    readonly configFiles: readonly string[],
  ) {}

  has(key: string): boolean {
    return this.values.has(key);
  }
  /** True when the user set the key (flag, env or config), not just a default. */
  isSet(key: string): boolean {
    const s = this.sources.get(key);
    return s !== undefined && s !== 'default';
  }
  str(key: string): string | undefined {
    const v = this.values.get(key);
    return v === undefined ? undefined : String(v);
  }
  bool(key: string): boolean {
    return this.values.get(key) === true;
  }
  int(key: string): number | undefined {
    const v = this.values.get(key);
    return typeof v === 'number' ? v : undefined;
  }
  /** The string value of an option that has a default in its spec; none is a bug. */
  text(key: string): string {
    const v = this.values.get(key);
    if (typeof v !== 'string') throw new Error(`bug: option ${key} has no string value`);
    return v;
  }
  /** The numeric value of an option that has a default in its spec; none is a bug. */
  num(key: string): number {
    const v = this.values.get(key);
    if (typeof v !== 'number') throw new Error(`bug: option ${key} has no numeric value`);
    return v;
  }
  list(key: string): string[] {
    const v = this.values.get(key);
    return Array.isArray(v) ? v : v === undefined ? [] : [String(v)];
  }
}

/**
 * The warning for a secret option (`secret: true` in its spec) given on the command line
 * as `--<flag>`: its value was in /proc/<pid>/cmdline, readable by every local user, from
 * the process start until etcdsnap set its process title. Points to the safer ways the
 * schema offers: a `<key>-file` option when one exists, the environment variable, the
 * config file. Never contains the value. Pure.
 */
export function secretFlagWarning(spec: OptionSpec, flag: string, specs: readonly OptionSpec[]): string {
  const file = findSpec(specs, `${spec.key}-file`);
  const ways = [...(file ? [`--${file.key}`] : []), ...(spec.env ? [`$${spec.env}`] : []), `the config file (key ${spec.key})`];
  const list = ways.length > 1 ? `${ways.slice(0, -1).join(', ')} or ${ways[ways.length - 1] ?? ''}` : (ways[0] ?? '');
  return `--${flag} was given on the command line, so its value was visible to other local users in ps (/proc/<pid>/cmdline) while etcdsnap started; pass it with ${list} instead`;
}

export interface ResolveOptions {
  env: NodeJS.ProcessEnv;
  warn: (message: string) => void;
  /** Config keys that belong to other commands: skipped without a warning. */
  quietKeys?: ReadonlySet<string>;
  /** The config file read when `--config` is not given (default `DEFAULT_CONFIG_FILE`; the agent's is its own). */
  defaultConfigFile?: string;
}

/** Resolves every spec'd option of `cmd` (after commander parsed argv). */
export async function resolveValues(cmd: Command, specs: readonly OptionSpec[], opts: ResolveOptions): Promise<Values> {
  const values = new Map<string, OptionValue>();
  const sources = new Map<string, ValueSource>();

  // 1. command line (a spec's aliases count as the spec itself); the command's own flags
  //    win over its parents' (`etcd-snapshot --dir a save --dir b` means b)
  const secretFlags = new Map<OptionSpec, string>();
  const chain: Command[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) chain.push(c);
  for (const c of chain.reverse()) {
    const raw = c.opts<Record<string, unknown>>();
    for (const spec of specs) {
      for (const key of [spec.key, ...(spec.aliases ?? [])]) {
        if (c.getOptionValueSource(attr(key)) !== 'cli') continue;
        const v = raw[attr(key)];
        if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' || Array.isArray(v)) {
          // commander parsed the type and the choices; the spec's own check is reported as
          // "invalid value for --flag", as for the environment and the config file
          try {
            checkValue(spec, v as OptionValue);
          } catch (err) {
            throw configError(`invalid value for --${key}: ${messageOf(err)}`);
          }
          values.set(spec.key, v as OptionValue);
          sources.set(spec.key, 'cli');
          if (spec.secret) secretFlags.set(spec, key);
        }
      }
    }
  }

  // a secret given as a flag was readable in `ps` until the process title hid it
  for (const [spec, flag] of secretFlags) opts.warn(secretFlagWarning(spec, flag, specs));

  // 2. environment
  for (const spec of specs) {
    if (sources.has(spec.key) || !spec.env) continue;
    const rawEnv = opts.env[spec.env];
    if (rawEnv === undefined || rawEnv === '') continue;
    try {
      values.set(spec.key, checkValue(spec, spec.type === 'list' ? rawEnv.split(',') : parseValue(spec.type, rawEnv)));
    } catch (err) {
      throw configError(`invalid value for $${spec.env}: ${messageOf(err)}`);
    }
    sources.set(spec.key, 'env');
  }

  // 3. config files
  const explicit = values.get('config');
  const configFiles = await listConfigFiles(typeof explicit === 'string' ? explicit : (opts.defaultConfigFile ?? DEFAULT_CONFIG_FILE), explicit !== undefined);
  for (const file of configFiles) {
    for (const [key, value] of Object.entries(await readConfigFile(file))) {
      const spec = findSpec(specs, key);
      if (!spec || spec.key === 'config') {
        if (opts.quietKeys?.has(key)) continue;
        opts.warn(`Unknown flag --${key} found in config file ${file}, skipping`);
        continue;
      }
      const src = sources.get(spec.key);
      if (src === 'cli' || src === 'env') continue;
      try {
        values.set(spec.key, checkValue(spec, fromYaml(spec, value)));
      } catch (err) {
        throw configError(`config file ${file}: invalid value for key "${key}": ${messageOf(err)}`);
      }
      sources.set(spec.key, 'config');
    }
  }

  // 4. defaults
  for (const spec of specs) {
    if (!values.has(spec.key) && spec.default !== undefined) {
      values.set(spec.key, spec.default);
      sources.set(spec.key, 'default');
    }
  }
  return new Values(values, sources, configFiles);
}

function fromYaml(spec: OptionSpec, value: unknown): OptionValue {
  if (spec.type === 'list') {
    const items = Array.isArray(value) ? value : [value];
    return items.map((item) => {
      if (item === null || typeof item === 'object') throw new Error('list items must be scalars');
      return String(item);
    });
  }
  if (value === null || typeof value === 'object') throw new Error('expected a single value');
  return parseValue(spec.type, String(value));
}

/** The config file itself (when present) plus `<file>.d/*.yaml` in name order. */
async function listConfigFiles(file: string, explicit: boolean): Promise<string[]> {
  const files: string[] = [];
  try {
    const st = await fsp.stat(file);
    if (!st.isFile()) throw configError(`config file ${file} is not a regular file; pass a YAML file with --config`);
    files.push(file);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') {
      if (explicit) throw configError(`config file ${file} does not exist; create it or drop --config`);
    } else if (err instanceof Error && 'kind' in err) {
      throw err;
    } else {
      throw configError(`cannot read config file ${file}: ${messageOf(err)}`);
    }
  }
  const dropins = `${file}.d`;
  try {
    const names = (await fsp.readdir(dropins)).filter((n) => n.endsWith('.yaml') || n.endsWith('.yml')).sort();
    files.push(...names.map((n) => path.join(dropins, n)));
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT' && errnoCode(err) !== 'ENOTDIR') {
      throw configError(`cannot read config folder ${dropins}: ${messageOf(err)}`);
    }
  }
  return files;
}

async function readConfigFile(file: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (err) {
    throw configError(`cannot read config file ${file}: ${messageOf(err)}`);
  }
  // an empty file (common for the CLI) needs no parser; yaml loads only when there is YAML
  // to read: it is the largest module of the CLI's start-up (about 90 ms)
  if (text.trim() === '') return {};
  const { default: YAML } = await import('yaml');
  let doc: unknown;
  try {
    doc = YAML.parse(text, { version: '1.1' });
  } catch (err) {
    throw configError(`config file ${file} is not valid YAML: ${messageOf(err).split('\n')[0] ?? ''}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    throw configError(`config file ${file} must be a mapping of flag names to values`);
  }
  return doc as Record<string, unknown>;
}
