/**
 * What every `etcd-snapshot` subcommand that talks to the server shares: its resolved
 * options, the supervisor client, and the flags every request carries (`--dir`, the S3
 * settings). `--s3-endpoint-ca` files are read here, by the CLI, and sent as PEM content
 * (the server reads no file a request names).
 */
import { promises as fsp, readFileSync } from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { addOptions, resolveValues, type Values } from '../config/resolve.js';
import { defaultDataDir, type OptionSpec, SERVER_OPTIONS, SNAPSHOT_CLI_OPTIONS } from '../config/schema.js';
import { EtcdsnapError, errnoCode, messageOf } from '../errors.js';
import type { S3RequestBody, SnapshotRequestBody } from '../model/api.js';
import { clientFiles } from '../model/data-dir.js';
import { SupervisorClient } from '../server/api-client.js';
import { endpointCAContent, pemBundle, s3OptionsFromValues, s3Request } from '../snapshot/s3-config.js';

const REQUEST_TIMEOUT_MS = 2 * 60_000 + 60 * 60_000; // a large snapshot can take a while

export interface Context {
  values: Values;
  /** The supervisor URL the client talks to (`supervisorUrl`). */
  server: string;
  client: SupervisorClient;
  out: (text: string) => void;
  warn: (text: string) => void;
}

/** The resolved options of `cmd` (the snapshot CLI's plus `extra`), warnings printed. */
export async function cliValues(cmd: Command, extra: readonly OptionSpec[] = []): Promise<Values> {
  const quiet = new Set(SERVER_OPTIONS.flatMap((s) => [s.key, ...(s.aliases ?? [])]));
  const warnings: string[] = [];
  const values = await resolveValues(cmd, [...SNAPSHOT_CLI_OPTIONS, ...extra], { env: process.env, warn: (m) => warnings.push(m), quietKeys: quiet });
  for (const w of warnings) process.stderr.write(`warning: ${w}\n`);
  return values;
}

/**
 * The flags only save, ls, delete, prune and restore-keys send with their request (`common`,
 * `requestFlags`, `--name`, the encoding and retention flags); every subcommand takes them
 * (k3s's shared flag set).
 */
const REQUEST_FLAG_KEYS: ReadonlySet<string> = new Set(
  SNAPSHOT_CLI_OPTIONS.map((o) => o.key).filter(
    (k) =>
      k === 'dir' ||
      k === 'name' ||
      k.startsWith('s3') ||
      k.startsWith('snapshot-') ||
      k === 'etcd-snapshot-encrypt-recipient' ||
      k === 'etcd-snapshot-encrypt-recipients-file',
  ),
);

/**
 * Refuses, in one line, the request flags given on the command line to a subcommand that sends
 * none (`reads`: what it uses instead): they would be ignored without a word. The same keys
 * from the config file or the environment are settings the CLI shares with the server, and
 * stay quiet.
 */
export function refuseRequestFlags(values: Values, subcommand: string, reads: string): void {
  const given = [...REQUEST_FLAG_KEYS].filter((k) => values.sources.get(k) === 'cli');
  if (given.length === 0) return;
  throw new EtcdsnapError(
    'usage',
    `${subcommand} does not take ${given.map((k) => `--${k}`).join(', ')}: it ${reads}; drop ${given.length === 1 ? 'it' : 'them'}`,
  );
}

/**
 * The options of `cmd` and a client of the server they name. With `ignoresRequest` (what the
 * subcommand reads instead), request flags on the command line are refused first (`refuseRequestFlags`).
 */
export async function context(cmd: Command, extra: readonly OptionSpec[] = [], ignoresRequest?: string): Promise<Context> {
  const values = await cliValues(cmd, extra);
  if (ignoresRequest !== undefined) {
    // `changelog ls`, `alarm list`: the parent's name too
    const parent = cmd.parent?.name();
    refuseRequestFlags(values, parent !== undefined && parent !== 'etcd-snapshot' ? `${parent} ${cmd.name()}` : cmd.name(), ignoresRequest);
  }
  const dataDir = path.resolve(values.str('data-dir') ?? defaultDataDir());
  const server = await supervisorUrl(values, dataDir);
  const token = values.str('etcd-token');
  const client = await SupervisorClient.connect({ server, ...(token !== undefined ? { token } : {}), dataDir, timeoutMs: REQUEST_TIMEOUT_MS });
  return { values, server, client, out: (t) => process.stdout.write(t), warn: (t) => process.stderr.write(t) };
}

/**
 * The supervisor URL: `--etcd-server` (flag, environment or config file); else the URL the
 * server or agent running on this data dir wrote (`<data-dir>/server/supervisor-url`), so
 * `--data-dir` alone finds an agent (port 9347) or a server on another `--supervisor-port`;
 * else `https://127.0.0.1:<--supervisor-port>` (the config file's, else 9345). A file that
 * holds no https URL is a one-line error (the daemon writes it again when it starts).
 */
export async function supervisorUrl(values: Values, dataDir: string): Promise<string> {
  const given = values.str('etcd-server');
  if (given !== undefined) return given;
  const file = clientFiles(dataDir).supervisorUrl;
  const text = await fsp.readFile(file, 'utf8').catch(() => undefined);
  if (text === undefined) return `https://127.0.0.1:${values.num('supervisor-port')}`;
  const url = URL.canParse(text.trim()) ? new URL(text.trim()) : undefined;
  if (url?.protocol !== 'https:' || url.pathname !== '/' || url.search !== '' || url.username !== '') {
    throw new EtcdsnapError(
      'config',
      `${file} does not hold the supervisor's https URL; remove it (the server or agent writes it again when it starts) or pass --etcd-server`,
    );
  }
  return url.origin;
}

/**
 * `--s3-endpoint-ca` as PEM text for the request: content (PEM, base64 of PEM or DER) is
 * taken as is; every other item is a file read here (k3s semantics: base64 first, then a
 * path). A file that cannot be read or holds no PEM certificate is a config error naming it.
 */
function endpointCAForRequest(spec: string): string {
  const whole = endpointCAContent(spec);
  if (whole !== undefined) return whole;
  const out: string[] = [];
  for (const item of spec.split(/\s+/).filter((s) => s !== '')) {
    const content = endpointCAContent(item);
    if (content !== undefined) {
      out.push(content);
      continue;
    }
    let text: string;
    try {
      text = readFileSync(item, 'utf8');
    } catch (err) {
      throw new EtcdsnapError('config', `cannot read --s3-endpoint-ca ${item}: ${errnoCode(err) ?? messageOf(err)} (give a PEM file or base64 PEM)`);
    }
    const pem = pemBundle(text);
    if (pem === undefined) throw new EtcdsnapError('config', `--s3-endpoint-ca ${item} holds no PEM certificate`);
    out.push(pem);
  }
  return out.join('');
}

/** `req` with the flags every operation shares: --dir, and the S3 settings when --s3 is given. */
export function common<R extends SnapshotRequestBody>(req: R, v: Values): R {
  return { ...req, ...requestFlags(v) };
}

/** The flags every request carries: `dir` (absolute) when --dir is given, `s3` when --s3 is. */
export function requestFlags(v: Values): { dir?: string; s3?: S3RequestBody } {
  const out: { dir?: string; s3?: S3RequestBody } = {};
  const dir = v.str('dir');
  if (dir !== undefined) out.dir = path.resolve(dir);
  const s3 = s3OptionsFromValues(v, '');
  const ca = s3?.settings.endpointCA;
  if (s3 && ca !== undefined && ca.trim() !== '') s3.settings.endpointCA = endpointCAForRequest(ca);
  if (s3) out.s3 = s3Request(s3);
  return out;
}

/** A subcommand of `etcd-snapshot` with the client and request flags, running `run` with itself. */
export function sub(name: string, description: string, run: (cmd: Command) => Promise<void>): Command {
  const c = new Command(name).description(description).exitOverride();
  addOptions(c, SNAPSHOT_CLI_OPTIONS);
  c.action(async function (this: Command) {
    await run(this);
  });
  return c;
}
