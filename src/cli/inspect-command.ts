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
 * waits on stdout's backpressure, so a pipe into `head` stops the walk early. The work is in
 * inspect-run.ts, loaded only when a command runs.
 */
import { Command } from 'commander';
import { addOptions } from '../config/resolve.js';
import { type OptionSpec, SNAPSHOT_CLI_OPTIONS } from '../config/schema.js';
import { INSPECT_FLAGS } from './inspect-flags.js';
import { restoreKeysCommand } from './restore-keys-command.js';

export { INSPECT_COMMANDS } from './inspect-flags.js';

const run = (): Promise<typeof import('./inspect-run.js')> => import('./inspect-run.js');

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
      await (await run()).status(this, s);
    }),
    snap(sub('keys', 'List the keys of a snapshot', INSPECT_FLAGS.keys)).action(async function (this: Command, s: string) {
      await (await run()).keys(this, s);
    }),
    snap(sub('get', 'Show one key of a snapshot: revisions, lease and value (Kubernetes objects decoded)', INSPECT_FLAGS.get))
      .argument('<key>', 'the key')
      .action(async function (this: Command, s: string, k: string) {
        await (await run()).get(this, s, k);
      }),
    snap(sub('stats', 'Show keys, bytes and revisions per resource type and namespace, largest first', INSPECT_FLAGS.stats)).action(async function (
      this: Command,
      s: string,
    ) {
      await (await run()).stats(this, s);
    }),
    sub('diff', 'Show the keys added, removed and changed from snapshot a to snapshot b', INSPECT_FLAGS.diff)
      .argument('<a>', 'the older snapshot')
      .argument('<b>', 'the newer snapshot')
      .action(async function (this: Command, a: string, b: string) {
        await (await run()).diff(this, a, b);
      }),
    restoreKeysCommand(sub('restore-keys', 'Put keys of a snapshot back into the live cluster (dry run unless --apply)', INSPECT_FLAGS['restore-keys'])),
  ];
}
