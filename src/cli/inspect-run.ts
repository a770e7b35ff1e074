/**
 * The work of `etcd-snapshot status|keys|get|stats|diff` (inspect-command.ts defines the
 * commands and loads this module only when one of them runs, so that `save` and `ls` do not
 * pay for the reader, the Kubernetes decoder and yaml at start-up). See inspect-command.ts
 * for the contract.
 */
import path from 'node:path';
import type { Command } from 'commander';
import type { Values } from '../config/resolve.js';
import { defaultDataDir, type OptionSpec } from '../config/schema.js';
import { EtcdsnapError, errnoCode } from '../errors.js';
import type { KeyChange } from '../inspect/diff.js';
import { renderJson, renderYaml } from '../inspect/k8s.js';
import type { InspectSourceContext } from '../snapshot/inspect-source.js';
import { removeTempFoldersSync } from '../snapshot/inspect-source.js';
import { inspectStatus, keyDetail, keyInfos, type OpenedInspection, snapshotDiff, snapshotStats, withSnapshot } from '../snapshot/inspect.js';
import { proxyEnvironment, s3OptionsFromValues } from '../snapshot/s3-config.js';
import { INSPECT_FLAGS } from './inspect-flags.js';
import { changeJson, renderChangeLine, renderDiffTable, renderStatsTable, renderStatusTable } from './inspect-output.js';
import { cliValues } from './snapshot-context.js';
import { progressMode, progressReporter } from './progress.js';

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

/** A signal while temp files exist removes them before the process ends (130/143, as a shell reports it). */
let signalsInstalled = false;
function onSignalRemoveTemp(): void {
  if (signalsInstalled) return;
  signalsInstalled = true;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      removeTempFoldersSync();
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
  const identityFile = values.str('etcd-snapshot-decrypt-identity-file');
  return {
    values,
    src: {
      snapshotDir: dir !== undefined ? path.resolve(dir) : path.join(dataDir, 'server', 'db', 'snapshots'),
      snapshotDirIsDefault: dir === undefined,
      ...(s3 ? { s3 } : {}),
      ...(identityFile !== undefined && identityFile !== '' ? { identityFile } : {}),
      progress: progressReporter({ mode: progressMode(values.bool('quiet'), process.stderr.isTTY) }),
    },
  };
}

/** Runs `fn` on the snapshot `raw`, its temp files removed afterwards and on a signal. */
function inspect<T>(raw: string, src: InspectSourceContext, fn: (s: OpenedInspection) => Promise<T>): Promise<T> {
  onSignalRemoveTemp();
  return withSnapshot(raw, src, fn);
}

const prefixOf = (v: Values): Buffer | undefined => {
  const p = v.str('prefix');
  return p === undefined ? undefined : Buffer.from(p, 'utf8');
};

export async function status(cmd: Command, snapshot: string): Promise<void> {
  const { values, src } = await inspectContext(cmd, INSPECT_FLAGS.status);
  const format = outputFormat(values, ['table', 'json'], 'table');
  const s = await inspect(snapshot, src, ({ reader, source }) => inspectStatus(reader, source.label));
  await out(format === 'json' ? renderJson(s) : renderStatusTable(s));
}

export async function keys(cmd: Command, snapshot: string): Promise<void> {
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

export async function get(cmd: Command, snapshot: string, key: string): Promise<void> {
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

export async function stats(cmd: Command, snapshot: string): Promise<void> {
  const { values, src } = await inspectContext(cmd, INSPECT_FLAGS.stats);
  const format = outputFormat(values, ['table', 'json'], 'table');
  const s = await inspect(snapshot, src, ({ reader }) => snapshotStats(reader, prefixOf(values)));
  await out(format === 'json' ? renderJson(s) : renderStatsTable(s));
}

export async function diff(cmd: Command, a: string, b: string): Promise<void> {
  const { values, src } = await inspectContext(cmd, INSPECT_FLAGS.diff);
  const format = outputFormat(values, ['table', 'json'], 'table');
  exitOnBrokenPipe();
  const listKeys = values.bool('keys');
  const onChange = listKeys ? (c: KeyChange) => out(format === 'json' ? `${JSON.stringify(changeJson(c))}\n` : renderChangeLine(c)) : undefined;
  const summary = await inspect(a, src, (before) => inspect(b, src, (after) => snapshotDiff(before.reader, after.reader, prefixOf(values), onChange)));
  if (format === 'json') await out(listKeys ? `${JSON.stringify({ summary })}\n` : renderJson(summary));
  else await out(`${listKeys ? '\n' : ''}${renderDiffTable(summary)}`);
}
