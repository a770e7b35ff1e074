/**
 * `etcdsnap etcd-snapshot drill [<name>] [--from auto|local|s3] [-o json]`: asks the running
 * server (or agent) for a restore drill (`POST /v1/snapshots/drill`, docs/drills.md) of the
 * named snapshot, or of the newest one, and prints the result. A failed drill prints what
 * failed and exits 1; nothing to drill is a not-found error.
 */
import { Command, Option } from 'commander';
import { addOptions } from '../config/resolve.js';
import { SNAPSHOT_CLI_OPTIONS } from '../config/schema.js';
import { EtcdsnapError } from '../errors.js';
import { decodeDrillResponse, type DrillRequestBody, ResponseShapeError } from '../model/api.js';
import { context } from './snapshot-context.js';

async function drill(cmd: Command, name: string | undefined): Promise<void> {
  const opts = cmd.opts<{ from?: string; output?: string }>();
  const from = opts.from ?? 'auto';
  if (from !== 'auto' && from !== 'local' && from !== 's3') throw new EtcdsnapError('usage', `invalid --from ${from}: auto, local or s3`);
  const output = opts.output ?? 'table';
  if (output !== 'table' && output !== 'json') throw new EtcdsnapError('usage', `invalid output format: ${output} (drill: table or json)`);
  if (name?.includes('/')) throw new EtcdsnapError('usage', `drill takes a snapshot name as etcd-snapshot ls shows it, not a path: ${name}`);
  const ctx = await context(cmd, [], "drills from the server's own snapshot folder and S3 settings");
  const req: DrillRequestBody = { ...(name !== undefined ? { name } : {}), from };
  let res: ReturnType<typeof decodeDrillResponse>;
  try {
    res = decodeDrillResponse(await ctx.client.post('/v1/snapshots/drill', req));
  } catch (err) {
    if (!(err instanceof ResponseShapeError)) throw err;
    throw new EtcdsnapError('unavailable', `the server sent a malformed answer to drill: ${err.message}; is it an etcdsnap server of this version?`);
  }
  const r = res.result;
  if (output === 'json') ctx.out(`${JSON.stringify(res, null, 2)}\n`);
  else if (r.status === 'passed')
    ctx.out(`Drill of ${res.snapshot} (${res.store}) passed in ${(r.durationMs / 1000).toFixed(1)}s: revision ${r.revision ?? '?'}, ${r.keys ?? '?'} keys.\n`);
  else ctx.out(`Drill of ${res.snapshot} (${res.store}) FAILED after ${(r.durationMs / 1000).toFixed(1)}s: ${r.message ?? ''}\n`);
  if (r.status !== 'passed') process.exitCode = 1;
}

/** The `drill` subcommand of `etcd-snapshot`. */
export function drillCommand(): Command {
  const c = new Command('drill')
    .description('Restore a snapshot (default: the newest) into a throwaway etcd and check it (docs/drills.md)')
    .exitOverride()
    .argument('[name]', 'snapshot name as etcd-snapshot ls shows it (default: the newest)')
    .addOption(new Option('--from <where>', 'where to read it: auto (the snapshot folder, then S3), local or s3 (default: auto)'))
    .addOption(new Option('-o, --output <format>', 'output format: table or json (default: table)'));
  addOptions(c, SNAPSHOT_CLI_OPTIONS);
  c.action(async function (this: Command, name: string | undefined) {
    await drill(this, name);
  });
  return c;
}
