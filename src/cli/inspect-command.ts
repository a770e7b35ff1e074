/**
 * `etcdsnap etcd-snapshot status|keys|get|stats|diff <snapshot>`: look inside a snapshot
 * without restoring it (docs/inspect.md). Like etcdutl these read the file in this process —
 * no server is needed: `<snapshot>` is a path, a name in the local snapshot folder (`--dir`,
 * else `<data-dir>/server/db/snapshots`), a `.zip` (extracted to a private temp folder), or
 * with `--s3` a snapshot in the bucket folder (downloaded, verified, to a private temp file).
 * Temp files are removed when the command ends, on error, and on SIGINT/SIGTERM.
 * `restore-keys` writes through the server: restore-keys-command.ts.
 *
 * Output goes to stdout; `keys` streams (one key a line, or one JSON object a line) and
 * waits on stdout's backpressure, so a pipe into `head` stops the walk early.
 */
import path from 'node:path';
import { Command } from 'commander';
import { addOptions } from '../config/resolve.js';
import { defaultDataDir, INSPECT_OPTIONS, type OptionSpec, SNAPSHOT_CLI_OPTIONS, specOf } from '../config/schema.js';
import type { Values } from '../config/resolve.js';
import { EtcdsnapError, errnoCode } from '../errors.js';
import { renderJson, renderYaml } from '../inspect/k8s.js';
import type { KeyChange } from '../inspect/diff.js';
import type { InspectSource, InspectSourceContext } from '../snapshot/inspect-source.js';
import { inspectStatus, keyDetail, keyInfos, type OpenedInspection, snapshotDiff, snapshotStats, withSnapshot } from '../snapshot/inspect.js';
import { proxyEnvironment, s3OptionsFromValues } from '../snapshot/s3-config.js';
import { changeJson, renderChangeLine, renderDiffTable, renderStatsTable, renderStatusTable } from './inspect-output.js';
import { restoreKeysCommand } from './restore-keys-command.js';
import { cliValues } from './snapshot-context.js';

/** The inspection subcommands, for the "unknown command" hint. */
export const INSPECT_COMMANDS = ['status', 'keys', 'get', 'stats', 'diff', 'restore-keys'] as const;

const spec = (key: string): OptionSpec => specOf(INSPECT_OPTIONS, key);

/** The inspect options each subcommand takes. */
export const INSPECT_FLAGS: Record<(typeof INSPECT_COMMANDS)[number], readonly OptionSpec[]> = {
  status: [spec('output')],
  keys: [spec('output'), spec('prefix'), spec('limit'), spec('revision')],
  get: [spec('output'), spec('revision')],
  stats: [spec('output'), spec('prefix')],
  diff: [spec('output'), spec('prefix'), spec('keys')],
  'restore-keys': [spec('prefix'), spec('key'), spec('delete-key'), spec('revision'), spec('apply'), spec('plan-revision')],
};

/** Writes to stdout, waiting while its buffer is full. */
async function out(text: string): Promise<void> {
  if (!process.stdout.write(text)) await new Promise<void>((resolve) => process.stdout.once('drain', resolve));
}

/** A closed pipe (`| head`) ends the command quietly, as other tools do. */
function exitOnBrokenPipe(): void {
  process.stdout.on('error', (err) => {
    if (errnoCode(err) === 'EPIPE') process.exit(0);
    throw err;
  });
}

/** `-o` of a command that accepts only `allowed` (the schema's choices are all of them). */
function outputFormat(v: Values, allowed: readonly string[], fallback: string): string {
  const f = v.str('output') ?? fallback;
  if (!allowed.includes(f)) throw new EtcdsnapError('usage', `invalid value for --output: "${f}" is not one of ${allowed.join(', ')} for this command`);
  return f;
}

/** Temp files of open sources, removed if a signal ends the process. */
const open = new Set<InspectSource>();
let signalsInstalled = false;
function onSignalRemoveTemp(): void {
  if (signalsInstalled) return;
  signalsInstalled = true;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      for (const s of open) s.removeSync();
      process.exit(sig === 'SIGINT' ? 130 : 143);
    });
  }
}

/** The options of `cmd` and where its `<snapshot>` arguments are looked up. */
async function inspectContext(cmd: Command, extra: readonly OptionSpec[]): Promise<{ values: Values; src: InspectSourceContext }> {
  const values = await cliValues(cmd, extra);
  const dataDir = path.resolve(values.str('data-dir') ?? defaultDataDir());
  const dir = values.str('dir');
  const s3 = s3OptionsFromValues(values, '', proxyEnvironment(process.env));
  return {
    values,
    src: {
      snapshotDir: dir !== undefined ? path.resolve(dir) : path.join(dataDir, 'server', 'db', 'snapshots'),
      snapshotDirIsDefault: dir === undefined,
      ...(s3 ? { s3 } : {}),
    },
  };
}

/** Runs `fn` on the snapshot `raw`, its temp files removed afterwards and on a signal. */
function inspect<T>(raw: string, src: InspectSourceContext, fn: (s: OpenedInspection) => Promise<T>): Promise<T> {
  onSignalRemoveTemp();
  return withSnapshot(raw, src, fn, { onOpen: (s) => open.add(s), onClose: (s) => open.delete(s) });
}

const prefixOf = (v: Values): Buffer | undefined => {
  const p = v.str('prefix');
  return p === undefined ? undefined : Buffer.from(p, 'utf8');
};

async function status(cmd: Command, snapshot: string): Promise<void> {
  const { values, src } = await inspectContext(cmd, INSPECT_FLAGS.status);
  const format = outputFormat(values, ['table', 'json'], 'table');
  const s = await inspect(snapshot, src, ({ reader, source }) => inspectStatus(reader, source.label));
  await out(format === 'json' ? renderJson(s) : renderStatusTable(s));
}

async function keys(cmd: Command, snapshot: string): Promise<void> {
  const { values, src } = await inspectContext(cmd, INSPECT_FLAGS.keys);
  const format = outputFormat(values, ['table', 'json'], 'table');
  exitOnBrokenPipe();
  const prefix = prefixOf(values);
  const limit = values.int('limit');
  const revision = values.int('revision');
  await inspect(snapshot, src, async ({ reader }) => {
    const q = { ...(prefix ? { prefix } : {}), ...(limit !== undefined ? { limit } : {}), ...(revision !== undefined ? { revision } : {}) };
    for await (const k of keyInfos(reader, q)) await out(format === 'json' ? `${JSON.stringify(k)}\n` : `${k.key}\n`);
  });
}

async function get(cmd: Command, snapshot: string, key: string): Promise<void> {
  const { values, src } = await inspectContext(cmd, INSPECT_FLAGS.get);
  const format = outputFormat(values, ['json', 'yaml'], 'yaml');
  const revision = values.int('revision');
  const d = await inspect(snapshot, src, async ({ reader, source }) => {
    const found = await keyDetail(reader, Buffer.from(key, 'utf8'), revision);
    if (found === undefined) {
      const at = revision !== undefined ? ` at revision ${revision}` : '';
      throw new EtcdsnapError('not-found', `key ${JSON.stringify(key)} is not in ${source.label}${at}`);
    }
    return found;
  });
  await out(format === 'json' ? renderJson(d) : renderYaml(d));
}

async function stats(cmd: Command, snapshot: string): Promise<void> {
  const { values, src } = await inspectContext(cmd, INSPECT_FLAGS.stats);
  const format = outputFormat(values, ['table', 'json'], 'table');
  const s = await inspect(snapshot, src, ({ reader }) => snapshotStats(reader, prefixOf(values)));
  await out(format === 'json' ? renderJson(s) : renderStatsTable(s));
}

async function diff(cmd: Command, a: string, b: string): Promise<void> {
  const { values, src } = await inspectContext(cmd, INSPECT_FLAGS.diff);
  const format = outputFormat(values, ['table', 'json'], 'table');
  exitOnBrokenPipe();
  const listKeys = values.bool('keys');
  const onChange = listKeys ? (c: KeyChange) => out(format === 'json' ? `${JSON.stringify(changeJson(c))}\n` : renderChangeLine(c)) : undefined;
  const summary = await inspect(a, src, (before) => inspect(b, src, (after) => snapshotDiff(before.reader, after.reader, prefixOf(values), onChange)));
  if (format === 'json') await out(listKeys ? `${JSON.stringify({ summary })}\n` : renderJson(summary));
  else await out(`${listKeys ? '\n' : ''}${renderDiffTable(summary)}`);
}

function sub(name: string, description: string, flags: readonly OptionSpec[]): Command {
  const c = new Command(name).description(description).exitOverride();
  addOptions(c, SNAPSHOT_CLI_OPTIONS);
  addOptions(c, flags);
  return c;
}

/** The inspection subcommands of `etcd-snapshot`. */
export function inspectCommands(): Command[] {
  const snap = (c: Command): Command => c.argument('<snapshot>', 'a snapshot name, a path, a .zip, or with --s3 a name in the bucket');
  return [
    snap(
      sub(
        'status',
        'Show hash, revision, total keys and size of a snapshot (as etcdctl snapshot status), its trailer, compaction and members',
        INSPECT_FLAGS.status,
      ),
    ).action(async function (this: Command, s: string) {
      await status(this, s);
    }),
    snap(sub('keys', 'List the keys of a snapshot', INSPECT_FLAGS.keys)).action(async function (this: Command, s: string) {
      await keys(this, s);
    }),
    snap(sub('get', 'Show one key of a snapshot: revisions, lease and value (Kubernetes objects decoded)', INSPECT_FLAGS.get))
      .argument('<key>', 'the key')
      .action(async function (this: Command, s: string, k: string) {
        await get(this, s, k);
      }),
    snap(sub('stats', 'Show keys, bytes and revisions per resource type and namespace, largest first', INSPECT_FLAGS.stats)).action(async function (
      this: Command,
      s: string,
    ) {
      await stats(this, s);
    }),
    sub('diff', 'Show the keys added, removed and changed from snapshot a to snapshot b', INSPECT_FLAGS.diff)
      .argument('<a>', 'the older snapshot')
      .argument('<b>', 'the newer snapshot')
      .action(async function (this: Command, a: string, b: string) {
        await diff(this, a, b);
      }),
    restoreKeysCommand(sub('restore-keys', 'Put keys of a snapshot back into the live cluster (dry run unless --apply)', INSPECT_FLAGS['restore-keys'])),
  ];
}
