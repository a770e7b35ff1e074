/**
 * `etcdsnap etcd-snapshot <save|ls|list|l|delete|prune>` (bare = save), as k3s: each
 * subcommand sends one request to the running server's supervisor API and prints the
 * result. Flags that are not given are not sent, so the server's settings apply. Requests
 * and answers have the types of model/api.ts; `SupervisorClient.snapshot` decodes answers.
 * `--s3-endpoint-ca` files are read here, by the CLI, and sent as PEM content (the server
 * reads no file a request names).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Command, Help, Option } from 'commander';
import { addOptions, resolveValues, type Values } from '../config/resolve.js';
import { defaultDataDir, SERVER_OPTIONS, SNAPSHOT_CLI_OPTIONS } from '../config/schema.js';
import { EtcdsnapError, errnoCode, messageOf } from '../errors.js';
import type { SnapshotRequestBody } from '../model/api.js';
import { SupervisorClient } from '../server/api-client.js';
import { endpointCAContent, pemBundle, s3OptionsFromValues, s3Request } from '../snapshot/s3-config.js';

const REQUEST_TIMEOUT_MS = 2 * 60_000 + 60 * 60_000; // a large snapshot can take a while

interface Context {
  values: Values;
  client: SupervisorClient;
  out: (text: string) => void;
  warn: (text: string) => void;
}

async function context(cmd: Command): Promise<Context> {
  const quiet = new Set(SERVER_OPTIONS.flatMap((s) => [s.key, ...(s.aliases ?? [])]));
  const warnings: string[] = [];
  const values = await resolveValues(cmd, SNAPSHOT_CLI_OPTIONS, { env: process.env, warn: (m) => warnings.push(m), quietKeys: quiet });
  for (const w of warnings) process.stderr.write(`warning: ${w}\n`);
  const dataDir = path.resolve(values.str('data-dir') ?? defaultDataDir());
  const server = values.str('etcd-server') ?? `https://127.0.0.1:${values.num('supervisor-port')}`;
  const token = values.str('etcd-token');
  const client = await SupervisorClient.connect({ server, ...(token !== undefined ? { token } : {}), dataDir, timeoutMs: REQUEST_TIMEOUT_MS });
  return { values, client, out: (t) => process.stdout.write(t), warn: (t) => process.stderr.write(t) };
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
function common<R extends SnapshotRequestBody>(req: R, v: Values): R {
  const out: R = { ...req };
  const dir = v.str('dir');
  if (dir !== undefined) out.dir = path.resolve(dir);
  const s3 = s3OptionsFromValues(v, '');
  const ca = s3?.settings.endpointCA;
  if (s3 && ca !== undefined && ca.trim() !== '') s3.settings.endpointCA = endpointCAForRequest(ca);
  if (s3) out.s3 = s3Request(s3);
  return out;
}

/** The subcommands and their aliases (k3s: save, delete, ls|list|l, prune). */
const COMMANDS = ['save', 'ls', 'list', 'l', 'delete', 'prune'] as const;

/** Levenshtein distance, for "did you mean". */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row[j] = Math.min((prev[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length] ?? 0;
}

/** The command a mistyped word most likely meant (at most 2 edits, and fewer than its length). */
function suggestCommand(word: string): string | undefined {
  let best: { name: string; d: number } | undefined;
  for (const name of COMMANDS) {
    const d = distance(word.toLowerCase(), name);
    if (d <= 2 && d < name.length && (best === undefined || d < best.d)) best = { name, d };
  }
  return best?.name;
}

async function save(cmd: Command): Promise<void> {
  if (cmd.args.length > 0) {
    // a bare `etcd-snapshot` runs save (the default command): a word that is no command lands here
    if (cmd.parent?.args[0] !== cmd.name()) {
      const word = cmd.args[0] ?? '';
      const hint = suggestCommand(word);
      throw new EtcdsnapError(
        'usage',
        `unknown command '${word}' for etcd-snapshot; ${hint !== undefined ? `did you mean ${hint}?` : 'use save, ls (list, l), delete or prune'}`,
      );
    }
    throw new EtcdsnapError('usage', `save does not take arguments (got ${cmd.args.join(' ')}); use --name for the snapshot name`);
  }
  const ctx = await context(cmd);
  const req: SnapshotRequestBody & { operation: 'save' } = { operation: 'save', name: [ctx.values.text('name')] };
  if (ctx.values.isSet('snapshot-compress')) req.compress = ctx.values.bool('snapshot-compress');
  const res = await ctx.client.snapshot(common(req, ctx.values));
  for (const r of res.created) ctx.out(`Snapshot ${r.name} saved.\n`);
  if (res.s3Error) ctx.warn(`warning: ${res.s3Error}\n`);
}

async function list(cmd: Command): Promise<void> {
  // output.ts loads yaml (for -o yaml): only ls needs it, not save's start-up
  const { parseOutputFormat, renderRecords } = await import('./output.js');
  const format = (() => {
    try {
      return parseOutputFormat(cmd.opts<{ output?: string }>().output);
    } catch (err) {
      throw new EtcdsnapError('usage', messageOf(err));
    }
  })();
  const ctx = await context(cmd);
  const res = await ctx.client.snapshot(common({ operation: 'list', name: [], details: format !== 'table' }, ctx.values));
  ctx.out(renderRecords(res.items, format));
  if (res.s3Error) {
    // the local part is printed; the exit code says the list is incomplete
    ctx.warn(`error: ${res.s3Error}\n`);
    process.exitCode = 1;
  }
}

async function del(cmd: Command): Promise<void> {
  const names = cmd.args;
  if (names.length === 0) throw new EtcdsnapError('usage', 'no snapshots given for removal');
  const ctx = await context(cmd);
  const res = await ctx.client.snapshot(common({ operation: 'delete', name: names }, ctx.values));
  for (const n of res.deleted) ctx.out(`Snapshot ${n} deleted.\n`);
  for (const n of res.notFound) ctx.out(`Snapshot ${n} not found.\n`);
  if (res.notFound.length > 0) process.exitCode = 1;
}

async function prune(cmd: Command): Promise<void> {
  const ctx = await context(cmd);
  const dryRun = cmd.opts<{ dryRun?: boolean }>().dryRun === true;
  const prefix = ctx.values.text('name');
  const retention = ctx.values.num('snapshot-retention');
  const res = await ctx.client.snapshot(common({ operation: 'prune', name: [prefix], dryRun, retention }, ctx.values));
  for (const n of res.deleted) ctx.out(dryRun ? `Snapshot ${n} would be deleted.\n` : `Snapshot ${n} deleted.\n`);
  if (res.deleted.length === 0) {
    const s3 = ctx.values.bool('s3') ? `, S3 retention ${ctx.values.num('s3-retention')}` : '';
    ctx.out(`No snapshots ${dryRun ? 'would be pruned' : 'to prune'} (prefix ${prefix}, retention ${retention}${s3}).\n`);
  }
}

function sub(name: string, description: string, run: (cmd: Command) => Promise<void>): Command {
  const c = new Command(name).description(description).exitOverride();
  addOptions(c, SNAPSHOT_CLI_OPTIONS);
  c.action(async function (this: Command) {
    await run(this);
  });
  return c;
}

export function etcdSnapshotCommand(): Command {
  const root = new Command('etcd-snapshot').description('Manage etcd snapshots of the running server (bare: save)').exitOverride();
  const help = new Help();
  root.configureHelp({
    // every alias, as k3s lists them (commander shows only the first: `ls|list`)
    subcommandTerm: (c) => {
      const first = c.aliases()[0];
      const shown = first === undefined ? c.name() : `${c.name()}|${first}`;
      return [c.name(), ...c.aliases()].join('|') + help.subcommandTerm(c).slice(shown.length);
    },
  });
  addOptions(root, SNAPSHOT_CLI_OPTIONS);
  const saveCmd = sub('save', 'Trigger an immediate etcd snapshot', save).allowExcessArguments(true);
  root.addCommand(saveCmd, { isDefault: true });
  root.addCommand(
    sub('ls', 'List snapshots', list)
      .aliases(['list', 'l'])
      .addOption(new Option('-o, --output <format>', 'output format: table, json or yaml (default: table)')),
  );
  root.addCommand(sub('delete', 'Delete given snapshot(s)', del).argument('[names...]', 'snapshot file names').allowExcessArguments(true));
  root.addCommand(
    sub('prune', 'Remove snapshots that match the name prefix that exceed the configured retention count', prune).addOption(
      new Option('--dry-run', 'print what would be deleted, delete nothing'),
    ),
  );
  return root;
}
