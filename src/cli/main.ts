#!/usr/bin/env node
/** Entry point: `etcdsnap <server|agent|etcd-snapshot|install-service|uninstall> ...`. */
import { Command } from 'commander';
import { normalizeBooleanArgs } from '../config/resolve.js';
import { AGENT_OPTIONS, INSTALL_SERVICE_OPTIONS, SERVER_OPTIONS, SNAPSHOT_CLI_OPTIONS, UNINSTALL_OPTIONS } from '../config/schema.js';
import { reportError } from './exit.js';
import { serverCommand } from './server-command.js';
import { agentCommand } from './agent-command.js';
import { etcdSnapshotCommand } from './etcd-snapshot-command.js';
import { installServiceCommand } from './install-service-command.js';
import { uninstallCommand } from './uninstall-command.js';
import { versionLine } from './version.js';

export async function main(argv: readonly string[]): Promise<number> {
  // Hide the command line (it may hold --token or S3 keys) from `ps`. bin/etcdsnap already did
  // before loading anything; this covers `node dist/cli/main.js`. Secrets given as flags are
  // warned about in config/resolve.ts (`secretFlagWarning`): the window cannot be closed.
  const sub = argv[0];
  // The AWS SDK warns on Node < 22 each time a client is built; its documented opt-out is
  // set once here, for the whole process, unless the user set it (S3Store reads no env).
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  process.title = sub === 'server' || sub === 'agent' || sub === 'etcd-snapshot' ? `etcdsnap ${sub}` : 'etcdsnap';
  const program = new Command('etcdsnap')
    .description('etcd member supervisor and snapshot manager, compatible with k3s etcd-snapshot')
    .version(versionLine(), '-V, --version', 'print the version and the commit it was built from')
    .exitOverride()
    .showSuggestionAfterError(true)
    .configureOutput({ outputError: (str, write) => write(str) });
  program.addCommand(serverCommand().exitOverride());
  program.addCommand(agentCommand().exitOverride());
  program.addCommand(etcdSnapshotCommand());
  program.addCommand(installServiceCommand().exitOverride());
  program.addCommand(uninstallCommand().exitOverride());
  const debug = argv.includes('--debug');
  try {
    const args = normalizeBooleanArgs(argv, [...SERVER_OPTIONS, ...AGENT_OPTIONS, ...SNAPSHOT_CLI_OPTIONS, ...INSTALL_SERVICE_OPTIONS, ...UNINSTALL_OPTIONS]);
    await program.parseAsync(args, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    return reportError(err, debug);
  }
}

/**
 * Resolves once everything written to `stream` so far has been handed to the OS: a write's
 * callback runs after the writes before it (nothing to wait for when nothing is queued). Without this, `process.exit` right after a large
 * output into a pipe cut it short (a prune of hundreds of snapshots printed part of its lines).
 */
const flushed = (stream: NodeJS.WriteStream): Promise<void> =>
  new Promise<void>((resolve) => {
    if (stream.destroyed || !stream.writable || stream.writableLength === 0) return resolve();
    stream.once('error', () => resolve()); // EPIPE: the reader is gone, nothing more can be written
    stream.write('', () => resolve());
  });

const code = await main(process.argv.slice(2));
await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
process.exit(code);
