/**
 * `etcdsnap etcd-snapshot <save|ls|list|l|delete|prune>` (bare = save), as k3s: each
 * subcommand sends one request to the running server's supervisor API and prints the
 * result. Flags that are not given are not sent, so the server's settings apply. Requests
 * and answers have the types of model/api.ts; `SupervisorClient.snapshot` decodes answers
 * (the shared client and request flags: snapshot-context.ts). The inspection subcommands
 * (status, keys, get, stats, diff, restore-keys) are in inspect-command.ts, `drill` (a restore
 * drill, docs/drills.md) in drill-command.ts, `changelog ls|status`
 * in changelog-command.ts, `restore` (a member data dir for etcd etcdsnap does not run) in
 * restore-command.ts, `defrag`, `compact` and `alarm list|disarm` in upkeep-command.ts. `ls`'s table is followed by the change log's restorable ranges
 * when the server sends some (changelog-output.ts).
 */
import { Command, Help, Option } from 'commander';
import { addOptions } from '../config/resolve.js';
import { SNAPSHOT_CLI_OPTIONS } from '../config/schema.js';
import { compressionOf } from '../model/encoding.js';
import { EtcdsnapError, messageOf } from '../errors.js';
import type { SnapshotRequestBody } from '../model/api.js';
import { inspectCommands, INSPECT_COMMANDS } from './inspect-command.js';
import { common, context, sub } from './snapshot-context.js';
import { changelogCommand } from './changelog-command.js';
import { restoreCommand } from './restore-command.js';
import { drillCommand } from './drill-command.js';
import { upkeepCommands } from './upkeep-command.js';
import { parseRetentionPolicy } from '../model/retention-policy.js';

/** The subcommands and their aliases (k3s: save, delete, ls|list|l, prune; then inspection's). */
const COMMANDS = ['save', 'ls', 'list', 'l', 'delete', 'prune', 'drill', 'changelog', 'restore', 'defrag', 'compact', 'alarm', ...INSPECT_COMMANDS] as const;

/** Every subcommand, for an unknown word: `save, ls (list, l), ... or restore-keys` (from COMMANDS, so a new one is listed). */
function commandList(): string {
  const names = COMMANDS.filter((c) => c !== 'list' && c !== 'l').map((c) => (c === 'ls' ? 'ls (list, l)' : c));
  return `${names.slice(0, -1).join(', ')} or ${names[names.length - 1] ?? ''}`;
}

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
      throw new EtcdsnapError('usage', `unknown command '${word}' for etcd-snapshot; ${hint !== undefined ? `did you mean ${hint}?` : `use ${commandList()}`}`);
    }
    throw new EtcdsnapError('usage', `save does not take arguments (got ${cmd.args.join(' ')}); use --name for the snapshot name`);
  }
  const ctx = await context(cmd);
  const req: SnapshotRequestBody & { operation: 'save' } = { operation: 'save', name: [ctx.values.text('name')] };
  const compression = compressionOf(
    ctx.values.isSet('snapshot-compress') ? ctx.values.bool('snapshot-compress') : undefined,
    ctx.values.isSet('snapshot-compression') ? ctx.values.text('snapshot-compression') : undefined,
    { compress: '--snapshot-compress', compression: '--snapshot-compression' },
  );
  if (compression !== undefined) req.compression = compression;
  const recipients = ctx.values.list('etcd-snapshot-encrypt-recipient');
  const recipientsFile = ctx.values.str('etcd-snapshot-encrypt-recipients-file');
  if (recipients.length > 0 || (recipientsFile !== undefined && recipientsFile !== '')) {
    // the age code loads only when asked for; the file is read here, the server gets the keys
    const { recipientsOf } = await import('../snapshot/encode.js');
    req.encryptRecipients = await recipientsOf({ recipients, ...(recipientsFile !== undefined ? { recipientsFile } : {}) });
  }
  const [{ progressMode, progressReporter }, { withSaveProgress }] = await Promise.all([import('./progress.js'), import('./save-progress.js')]);
  const reporter = progressReporter({ mode: progressMode(ctx.values.bool('quiet'), process.stderr.isTTY) });
  const res = await withSaveProgress(ctx.client, reporter, ctx.client.snapshot(common(req, ctx.values)));
  for (const r of res.created) ctx.out(`Snapshot ${r.name} saved.\n`);
  if (res.s3Error) ctx.warn(`warning: ${res.s3Error}\n`);
}

async function list(cmd: Command): Promise<void> {
  // output.ts loads yaml (for -o yaml): only ls needs it, not save's start-up
  const [{ parseOutputFormat, renderRecords }, { withRanges }] = await Promise.all([import('./output.js'), import('./changelog-output.js')]);
  const format = (() => {
    try {
      return parseOutputFormat(cmd.opts<{ output?: string }>().output);
    } catch (err) {
      throw new EtcdsnapError('usage', messageOf(err));
    }
  })();
  const ctx = await context(cmd);
  const res = await ctx.client.snapshot(common({ operation: 'list', name: [], details: format !== 'table' }, ctx.values));
  // the table is k3s's; the change log's ranges follow it (json and yaml: `changelog ls -o json`)
  ctx.out(format === 'table' ? withRanges(renderRecords(res.items, format), res.changelog) : renderRecords(res.items, format));
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
  const opts = cmd.opts<{ dryRun?: boolean; output?: string }>();
  const dryRun = opts.dryRun === true;
  const output = opts.output ?? 'table';
  if (output !== 'table' && output !== 'json') throw new EtcdsnapError('usage', `invalid output format: ${output} (prune: table or json)`);
  const ctx = await context(cmd);
  const prefix = ctx.values.text('name');
  const policyText = ctx.values.str('snapshot-retention-policy') ?? '';
  const policy = parseRetentionPolicy(policyText);
  if (policy) {
    const counts = ['snapshot-retention', 's3-retention'].filter((k) => ctx.values.isSet(k));
    if (counts.length > 0) {
      throw new EtcdsnapError(
        'usage',
        `--snapshot-retention-policy replaces ${counts.map((k) => `--${k}`).join(' and ')}: give one (--snapshot-retention-policy '' clears a policy from the config file or environment)`,
      );
    }
  }
  // no policy and no count given: the server's own setting (its policy, else its count), so
  // that a policy set on the server alone is never overridden by this command's default
  const retention = ctx.values.num('snapshot-retention');
  const req = policy ? { retentionPolicy: policyText } : ctx.values.isSet('snapshot-retention') ? { retention } : {};
  const res = await ctx.client.snapshot(common({ operation: 'prune', name: [prefix], dryRun, ...req }, ctx.values));
  // a year of decisions is megabytes: all of it is written before main exits (flushed)
  const flushed = (text: string): Promise<void> => new Promise<void>((resolve, reject) => process.stdout.write(text, (err) => (err ? reject(err) : resolve())));
  if (output === 'json') return flushed(`${JSON.stringify(res, null, 2)}\n`);
  // a policy's dry run shows every decision; count-based output stays k3s's lines
  if (dryRun && res.policy !== undefined && res.decisions) {
    const { renderPruneDecisions } = await import('./prune-output.js');
    return flushed(renderPruneDecisions(res));
  }
  if (res.deleted.length > 0) return flushed(res.deleted.map((n) => (dryRun ? `Snapshot ${n} would be deleted.\n` : `Snapshot ${n} deleted.\n`)).join(''));
  const applied = res.policy ?? (policy ? policyText : undefined);
  const what = applied !== undefined ? `policy ${applied}` : `retention ${res.retention ?? retention}`;
  const s3 = ctx.values.bool('s3') && applied === undefined ? `, S3 retention ${ctx.values.num('s3-retention')}` : '';
  ctx.out(`No snapshots ${dryRun ? 'would be pruned' : 'to prune'} (prefix ${prefix}, ${what}${s3}).\n`);
}

export function etcdSnapshotCommand(): Command {
  const root = new Command('etcd-snapshot').description('Manage etcd snapshots of the running server (bare: save)').exitOverride();
  const help = new Help();
  root.configureHelp({
    // every alias, as k3s lists them (commander shows only the first: `ls|list`)
    subcommandTerm: (c) => {
      if (c.name() === 'changelog') return 'changelog ls|status [options]';
      if (c.name() === 'alarm') return 'alarm list|disarm [options]';
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
    sub('prune', 'Remove snapshots that match the name prefix that exceed the configured retention count', prune)
      .addOption(new Option('--dry-run', 'print what would be deleted (with a policy: every snapshot, kept or not, and why), delete nothing'))
      .addOption(new Option('-o, --output <format>', 'output format: table or json (every snapshot with its reasons) (default: table)')),
  );
  root.addCommand(drillCommand());
  root.addCommand(changelogCommand());
  root.addCommand(restoreCommand());
  for (const c of upkeepCommands()) root.addCommand(c);
  for (const c of inspectCommands()) root.addCommand(c);
  return root;
}
