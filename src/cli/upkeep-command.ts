/**
 * `etcdsnap etcd-snapshot defrag|compact|alarm [list|disarm]` (docs/upkeep.md): one token
 * request to the running server or agent (model/upkeep-api.ts), printed as lines. `defrag`
 * exits 1 when a member was not defragmented; `alarm list` exits 0 with or without alarms.
 */
import { Command } from 'commander';
import { EtcdsnapError } from '../errors.js';
import { ALARMS_PATH, type AlarmsResponse, COMPACT_PATH, DEFRAG_PATH, DISARM_PATH, decodeAlarms, decodeCompact, decodeDefrag } from '../model/upkeep-api.js';
import { formatBytes } from '../server/upkeep-plan.js';
import { type Context, context, sub } from './snapshot-context.js';

/** Sends one request; an older server (no such route) is one line. */
async function call<T>(ctx: Context, method: 'GET' | 'POST', pathname: string, decode: (v: unknown) => T): Promise<T> {
  try {
    return decode(method === 'GET' ? await ctx.client.get(pathname) : await ctx.client.post(pathname, {}));
  } catch (err) {
    if (err instanceof EtcdsnapError && err.kind === 'not-found')
      throw new EtcdsnapError('unavailable', `the server does not serve ${pathname} (${err.message}); is it an etcdsnap server of this version?`);
    throw err;
  }
}

/** What the upkeep subcommands work on instead of a request's snapshot folder or S3 settings. */
const ETCD_ONLY = 'works on etcd, not on snapshots';

async function defrag(cmd: Command): Promise<void> {
  const ctx = await context(cmd, [], ETCD_ONLY);
  const res = await call(ctx, 'POST', DEFRAG_PATH, decodeDefrag);
  let reclaimed = 0;
  for (const m of res.members) {
    const role = m.leader ? 'leader' : 'follower';
    if (m.error !== undefined || m.before === undefined || m.after === undefined) {
      ctx.out(`Failed to defragment member ${m.name} (${role}) ${m.endpoint}: ${m.error ?? 'no size reported'}\n`);
      process.exitCode = 1;
      continue;
    }
    reclaimed += m.before - m.after;
    ctx.out(
      `Defragmented member ${m.name} (${role}) ${m.endpoint}: ${formatBytes(m.before)} -> ${formatBytes(m.after)}, reclaimed ${formatBytes(m.before - m.after)} in ${(m.seconds ?? 0).toFixed(1)}s\n`,
    );
  }
  ctx.out(`Defragmented ${res.members.filter((m) => m.error === undefined).length} of ${res.members.length} members, reclaimed ${formatBytes(reclaimed)}.\n`);
}

async function compactCmd(cmd: Command): Promise<void> {
  const ctx = await context(cmd, [], ETCD_ONLY);
  const res = await call(ctx, 'POST', COMPACT_PATH, decodeCompact);
  ctx.out(res.already ? `etcd is already compacted at revision ${res.revision}.\n` : `Compacted etcd to revision ${res.revision}.\n`);
}

function sizeLine(r: AlarmsResponse): string {
  if (r.dbSize === undefined) return `Quota ${formatBytes(r.quota)}.\n`;
  const inUse = r.dbSizeInUse !== undefined ? ` (${formatBytes(r.dbSizeInUse)} in use)` : '';
  return `Database size ${formatBytes(r.dbSize)}${inUse} of quota ${formatBytes(r.quota)} (${Math.round((r.dbSize / r.quota) * 100)}%).\n`;
}

const who = (a: AlarmsResponse['alarms'][number]): string => `memberID:${a.memberId}${a.member !== undefined ? ` (${a.member})` : ''}`;

async function alarmList(cmd: Command): Promise<void> {
  const ctx = await context(cmd, [], ETCD_ONLY);
  const res = await call(ctx, 'GET', ALARMS_PATH, decodeAlarms);
  if (res.alarms.length === 0) ctx.out('No alarms.\n');
  for (const a of res.alarms) ctx.out(`${who(a)} alarm:${a.alarm}\n`);
  ctx.out(sizeLine(res));
}

async function alarmDisarm(cmd: Command): Promise<void> {
  const ctx = await context(cmd, [], ETCD_ONLY);
  const res = await call(ctx, 'POST', DISARM_PATH, decodeAlarms);
  if (res.alarms.length === 0) ctx.out('No alarms to disarm.\n');
  for (const a of res.alarms) ctx.out(`Disarmed ${who(a)} alarm:${a.alarm}\n`);
  ctx.out(sizeLine(res));
}

/** The upkeep subcommands of `etcd-snapshot`. */
export function upkeepCommands(): Command[] {
  const alarm = new Command('alarm').description("List or disarm etcd's alarms (bare: list)").exitOverride();
  alarm.addCommand(sub('list', 'List the raised alarms, the database size and the quota', alarmList), { isDefault: true });
  alarm.addCommand(sub('disarm', 'Disarm every raised alarm (after space was freed: compact, then defrag)', alarmDisarm));
  return [
    sub('defrag', 'Defragment every etcd member, one at a time, followers first, the leader last', defrag),
    sub('compact', "Compact etcd's key history to the current revision", compactCmd),
    alarm,
  ];
}
