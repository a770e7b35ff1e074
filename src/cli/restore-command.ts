/**
 * `etcdsnap etcd-snapshot restore <snapshot> --data-dir <member dir> --name <member>
 * --initial-cluster <name=url,...> --initial-advertise-peer-urls <url>
 * [--initial-cluster-token <t>]`: etcdutl's `snapshot restore`, for an etcd cluster that
 * etcdsnap does not run (docs/agent.md). Works in this process; no server is needed.
 *
 * The member flags (RESTORE_MEMBER_OPTIONS) count only when given on the command line: a
 * `data-dir` or `name` in a shared config file or the environment means etcdsnap's data dir
 * and a snapshot name, never the member's. The snapshot flags (`--dir`, `--s3*`, the age
 * identity file) resolve as usual. The work is snapshot/member-restore.ts; this prints the
 * result and the exact procedure for the other members and the start of each.
 */
import { Command } from 'commander';
import path from 'node:path';
import { addOptions } from '../config/resolve.js';
import {
  AGENT_OPTIONS,
  checkValue,
  type OptionSpec,
  RESTORE_MEMBER_OPTIONS,
  RESTORE_SOURCE_OPTIONS,
  SERVER_OPTIONS,
  SNAPSHOT_CLI_OPTIONS,
} from '../config/schema.js';
import { EtcdsnapError, messageOf } from '../errors.js';
import type { MemberPlan } from '../snapshot/member-restore.js';

const attr = (key: string): string => key.replace(/-([a-z0-9])/g, (_m, c: string) => c.toUpperCase());

/** A member flag's value when given on the command line (to this command or its parent), checked by its spec. */
function cliOnly(cmd: Command, key: string): string | undefined {
  const spec = RESTORE_MEMBER_OPTIONS.find((s) => s.key === key) as OptionSpec;
  for (let c: Command | null = cmd; c; c = c.parent) {
    if (c.getOptionValueSource(attr(key)) !== 'cli') continue;
    const v = c.opts<Record<string, unknown>>()[attr(key)];
    if (typeof v !== 'string') continue;
    try {
      checkValue(spec, v);
    } catch (err) {
      throw new EtcdsnapError('usage', `invalid value for --${key}: ${messageOf(err)}`);
    }
    return v;
  }
  return undefined;
}

/** A word quoted for a POSIX shell when it needs it. */
const q = (w: string): string => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`);

/** What to do next: restore each other member, then start every member (pure). */
export function procedure(snapshot: string, plan: MemberPlan, extra: readonly string[]): string {
  const restoreCmd = (m: { name: string; peerURLs: string[] }): string =>
    [
      'etcdsnap etcd-snapshot restore',
      q(snapshot),
      ...extra.map(q),
      `--data-dir ${q(plan.dataDir)}`,
      `--name ${q(m.name)}`,
      `--initial-cluster ${q(plan.initialCluster)}`,
      `--initial-advertise-peer-urls ${q(m.peerURLs.join(','))}`,
      `--initial-cluster-token ${q(plan.clusterToken)}`,
    ].join(' ');
  const others = plan.members.filter((m) => m.name !== plan.name);
  const lines = [`Restored member ${plan.name} of a new cluster (token ${plan.clusterToken}) into ${plan.dataDir}.`, ''];
  let step = 1;
  lines.push(`${step++}. Stop etcd on every member, and keep each old data dir aside (do not delete it until the new cluster is healthy).`);
  if (others.length > 0) {
    lines.push(`${step++}. On each other member's host, restore the same snapshot with that member's name and peer URL:`);
    for (const m of others) lines.push(`     ${restoreCmd(m)}`);
  }
  lines.push(
    `${step++}. Start etcd on every member with its restored data dir and the same --name, --initial-cluster, --initial-advertise-peer-urls`,
    '   and --initial-cluster-token (plus its usual client URLs and TLS flags; on kubeadm, point the etcd static pod at the new data dir):',
  );
  for (const m of plan.members) {
    lines.push(
      `     etcd --name ${q(m.name)} --data-dir ${q(plan.dataDir)} --initial-cluster ${q(plan.initialCluster)} --initial-advertise-peer-urls ${q(m.peerURLs.join(','))} --listen-peer-urls ${q(m.peerURLs.join(','))} --initial-cluster-token ${q(plan.clusterToken)} ...`,
    );
  }
  lines.push(`${step}. Check that every member answers with the same new cluster ID: etcdctl endpoint status --cluster -w table`);
  return `${lines.join('\n')}\n`;
}

export function restoreCommand(): Command {
  const c = new Command('restore')
    .description("Build an etcd member's data dir of a new cluster from a snapshot (as etcdutl snapshot restore), for etcd clusters etcdsnap does not run")
    .argument('<snapshot>', 'a path, a name in --dir, or with --s3 a name in the bucket; zip, zstd, gzip and age-encrypted snapshots are decoded')
    .exitOverride();
  addOptions(c, RESTORE_SOURCE_OPTIONS);
  addOptions(c, RESTORE_MEMBER_OPTIONS);
  c.action(async function (this: Command, snapshot: string) {
    const [
      { parseMemberPlan, removeRestoreTempSync, restoreMember },
      { resolveValues },
      { createLogger },
      { proxyEnvironment, s3OptionsFromValues },
      { progressMode, progressReporter },
    ] = await Promise.all([
      import('../snapshot/member-restore.js'),
      import('../config/resolve.js'),
      import('../log/logger.js'),
      import('../snapshot/s3-config.js'),
      import('./progress.js'),
    ]);
    const plan = parseMemberPlan({
      ...optional('dataDir', cliOnly(this, 'data-dir')),
      ...optional('name', cliOnly(this, 'name')),
      ...optional('initialCluster', cliOnly(this, 'initial-cluster')),
      ...optional('peerURLs', cliOnly(this, 'initial-advertise-peer-urls')),
      ...optional('clusterToken', cliOnly(this, 'initial-cluster-token')),
    });
    // keys of the other commands (and the member flags) in a shared config file are not ours: no warning
    const quiet = new Set(
      [...SERVER_OPTIONS, ...AGENT_OPTIONS, ...SNAPSHOT_CLI_OPTIONS, ...RESTORE_MEMBER_OPTIONS].flatMap((s) => [s.key, ...(s.aliases ?? [])]),
    );
    const warnings: string[] = [];
    const values = await resolveValues(this, RESTORE_SOURCE_OPTIONS, { env: process.env, warn: (m) => warnings.push(m), quietKeys: quiet });
    for (const w of warnings) process.stderr.write(`warning: ${w}\n`);
    const logger = createLogger({ format: 'text', debug: values.bool('debug') });
    const dir = values.str('dir');
    const s3 = s3OptionsFromValues(values, '', proxyEnvironment(process.env));
    const identityFile = values.str('etcd-snapshot-decrypt-identity-file');
    const { defaultDataDir } = await import('../config/schema.js');
    // a signal during the restore removes its temp folders before the process ends (130/143, as a shell reports it)
    for (const sig of ['SIGINT', 'SIGTERM'] as const) {
      process.once(sig, () => {
        removeRestoreTempSync();
        process.exit(sig === 'SIGINT' ? 130 : 143);
      });
    }
    const res = await restoreMember(
      snapshot,
      plan,
      {
        snapshotDir: dir !== undefined ? path.resolve(dir) : path.join(defaultDataDir(), 'server', 'db', 'snapshots'),
        snapshotDirIsDefault: dir === undefined,
        ...(s3 ? { s3 } : {}),
        ...(identityFile !== undefined && identityFile !== '' ? { identityFile } : {}),
        progress: progressReporter({ mode: progressMode(values.bool('quiet'), process.stderr.isTTY) }),
      },
      logger,
    );
    // the other members repeat the snapshot flags given here (S3 keys stay in the environment)
    process.stdout.write(`Verified and restored ${res.source}.\n${procedure(snapshot, plan, sourceFlags(this))}`);
  });
  return c;
}

const optional = <K extends string>(k: K, v: string | undefined): Partial<Record<K, string>> => (v === undefined ? {} : ({ [k]: v } as Record<K, string>));

/** The snapshot flags given on the command line, without secrets, for the printed commands. */
function sourceFlags(cmd: Command): string[] {
  const out: string[] = [];
  for (const s of RESTORE_SOURCE_OPTIONS) {
    if (s.secret === true || s.key === 'config' || s.key === 'debug' || s.key === 'quiet') continue;
    if (cmd.getOptionValueSource(attr(s.key)) !== 'cli') continue;
    const v = cmd.opts<Record<string, unknown>>()[attr(s.key)];
    if (v === true) out.push(`--${s.key}`);
    else if (typeof v === 'string' || typeof v === 'number') out.push(`--${s.key}`, String(v));
  }
  return out;
}
