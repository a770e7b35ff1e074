/**
 * `etcdsnap etcd-snapshot restore-keys <snapshot> (--prefix P | --key K ...) [--delete-key K
 * ...] [--apply [--plan-revision R]]`: puts keys of a snapshot back into the live cluster
 * through the running server (`POST /v1/snapshots/restore-keys`; the server holds the etcd
 * client). How the plan and the apply work: snapshot/restore-keys.ts and docs/inspect.md.
 *
 * The server reads the snapshot itself, by name, from its snapshot folder (or `--dir`, which
 * it must allow) or from S3 with the `--s3` flags: a request never names a file on the
 * server (docs/security.md), and the values never travel in the request body (64 KiB
 * bounded), so any value size works. A path is refused with a hint.
 *
 * Without `--apply` it prints the plan and changes nothing. With `--apply` it plans and
 * applies in one request, or with `--plan-revision R` applies exactly the plan a dry run
 * printed at R. Conflicts (keys written by someone after the plan) are printed and make the
 * exit code 1; they are never retried.
 */
import type { Command } from 'commander';
import { EtcdsnapError } from '../errors.js';
import { decodeRestoreKeysResponse, InspectShapeError, type RestoreKeysRequest } from '../model/inspect.js';
import { INSPECT_OPTIONS } from '../config/schema.js';
import { context, requestFlags } from './snapshot-context.js';

async function restoreKeys(cmd: Command, snapshot: string): Promise<void> {
  if (snapshot.includes('/')) {
    throw new EtcdsnapError(
      'usage',
      `restore-keys reads the snapshot on the server, by name: give a name as etcd-snapshot ls shows it (copy ${snapshot} into the snapshot folder first)`,
    );
  }
  const ctx = await context(cmd, INSPECT_OPTIONS);
  const v = ctx.values;
  const prefix = v.str('prefix');
  const keys = v.list('key');
  if ((prefix === undefined) === (keys.length === 0)) throw new EtcdsnapError('usage', 'restore-keys needs --prefix or --key (one of the two)');
  const apply = v.bool('apply');
  const planRevision = v.int('plan-revision');
  if (planRevision !== undefined && !apply) throw new EtcdsnapError('usage', '--plan-revision applies a plan: give it with --apply');
  const revision = v.int('revision');
  const deleteKeys = v.list('delete-key');
  const req: RestoreKeysRequest = {
    name: snapshot,
    ...(prefix !== undefined ? { prefix } : { keys }),
    ...(deleteKeys.length > 0 ? { deleteKeys } : {}),
    ...(revision !== undefined ? { revision } : {}),
    apply,
    ...(planRevision !== undefined ? { planRevision } : {}),
  };
  const answer = await ctx.client.post('/v1/snapshots/restore-keys', { ...req, ...requestFlags(v) });
  let res: ReturnType<typeof decodeRestoreKeysResponse>;
  try {
    res = decodeRestoreKeysResponse(answer);
  } catch (err) {
    if (!(err instanceof InspectShapeError)) throw err;
    throw new EtcdsnapError('unavailable', `the server sent a malformed answer to restore-keys: ${err.message}; is it an etcdsnap server of this version?`);
  }
  const { renderRestorePlan } = await import('./inspect-output.js'); // yaml is loaded only by the commands that print with it
  ctx.out(renderRestorePlan(res));
  if (res.conflicts.length > 0) {
    ctx.warn(`error: ${res.conflicts.length} key(s) changed after the plan and were not written; run the dry run again to see the cluster as it is now\n`);
    process.exitCode = 1;
  }
}

/** Adds the argument and action of `restore-keys` to its command (made with the shared options). */
export function restoreKeysCommand(cmd: Command): Command {
  return cmd.argument('<snapshot>', 'a snapshot name the server knows (its snapshot folder, or S3 with --s3)').action(async function (
    this: Command,
    s: string,
  ) {
    await restoreKeys(this, s);
  });
}
