/**
 * `etcdsnap etcd-snapshot changelog <ls|status>` (docs/point-in-time-restore.md,
 * "Visibility"): one token request to the running server (`GET /v1/changelog`, `GET
 * /v1/changelog/status`, model/changelog-api.ts), printed as a table or, with `-o json`,
 * as the server's answer. Errors are one line.
 */
import { Command, Option } from 'commander';
import { addOptions } from '../config/resolve.js';
import { SNAPSHOT_CLI_OPTIONS } from '../config/schema.js';
import { EtcdsnapError, messageOf } from '../errors.js';
import { ResponseShapeError } from '../model/api.js';
import { CHANGELOG_PATH, CHANGELOG_STATUS_PATH, decodeChangelogList, decodeChangelogStatus } from '../model/changelog-api.js';
import { renderChangelogList, renderChangelogStatus } from './changelog-output.js';
import { context } from './snapshot-context.js';

function jsonOutput(cmd: Command): boolean {
  const v = cmd.opts<{ output?: string }>().output ?? 'table';
  if (v === 'table') return false;
  if (v === 'json') return true;
  throw new EtcdsnapError('usage', `invalid output format: ${v} (use table or json)`);
}

/** GETs `pathname` and decodes it; an older server (no such route) or a malformed answer is one line. */
async function fetchDecoded<T>(cmd: Command, pathname: string, decode: (v: unknown) => T): Promise<T> {
  const ctx = await context(cmd, [], "reads the server's own change log settings");
  const server = ctx.server;
  let answer: unknown;
  try {
    answer = await ctx.client.get(pathname);
  } catch (err) {
    if (err instanceof EtcdsnapError && err.kind === 'not-found')
      throw new EtcdsnapError('unavailable', `the server at ${server} does not serve ${pathname} (${err.message}); is it an etcdsnap server of this version?`);
    throw err;
  }
  try {
    return decode(answer);
  } catch (err) {
    if (!(err instanceof ResponseShapeError)) throw err;
    throw new EtcdsnapError(
      'unavailable',
      `the server at ${server} sent a malformed answer to ${pathname}: ${messageOf(err)}; is it an etcdsnap server of this version?`,
    );
  }
}

function sub(name: string, description: string, run: (cmd: Command, json: boolean) => Promise<void>): Command {
  const c = new Command(name).description(description).exitOverride();
  addOptions(c, SNAPSHOT_CLI_OPTIONS);
  c.addOption(new Option('-o, --output <format>', 'output format: table or json (default: table)'));
  c.action(async function (this: Command) {
    await run(this, jsonOutput(this));
  });
  return c;
}

export function changelogCommand(): Command {
  const root = new Command('changelog')
    .description('Show the change log of point-in-time restore: its segments (ls) or its state and lag (status)')
    .exitOverride();
  root.addCommand(
    sub('ls', 'List the change log segments and the restorable range of each chain', async (cmd, json) => {
      const res = await fetchDecoded(cmd, CHANGELOG_PATH, decodeChangelogList);
      process.stdout.write(renderChangelogList(res, json));
    }).aliases(['list']),
  );
  root.addCommand(
    sub('status', 'Show whether the change log is on, its writer, the last sealed revision and the lag behind etcd', async (cmd, json) => {
      const res = await fetchDecoded(cmd, CHANGELOG_STATUS_PATH, decodeChangelogStatus);
      process.stdout.write(renderChangelogStatus(res, json));
    }),
  );
  return root;
}
