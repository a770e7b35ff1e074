#!/usr/bin/env node
/** Entry point: `etcdsnap <server|agent|etcd-snapshot|install-service|uninstall> ...`. */
import { Command } from 'commander';
import { normalizeBooleanArgs } from '../config/resolve.js';
import { AGENT_OPTIONS, INSTALL_SERVICE_OPTIONS, SERVER_OPTIONS, SNAPSHOT_CLI_OPTIONS, UNINSTALL_OPTIONS } from '../config/schema.js';
import { reportError } from './exit.js';
import { versionLine } from './version.js';

/**
 * Each top-level command's module, loaded only when the command line names it (all of them for
 * `--help`, a typo's suggestion or no command): a short command such as `etcd-snapshot save`
 * then pays for its own modules, not the daemons' or install-service's (yaml among them).
 * Measured in BENCHMARKS.md (CLI start-up).
 */
const COMMANDS: Readonly<Record<string, () => Promise<Command>>> = {
  server: async () => (await import('./server-command.js')).serverCommand().exitOverride(),
  agent: async () => (await import('./agent-command.js')).agentCommand().exitOverride(),
  'etcd-snapshot': async () => (await import('./etcd-snapshot-command.js')).etcdSnapshotCommand(),
  'install-service': async () => (await import('./install-service-command.js')).installServiceCommand().exitOverride(),
  uninstall: async () => (await import('./uninstall-command.js')).uninstallCommand().exitOverride(),
};

/** The commands to build for `argv`: the one it names, or every one when it names none of them. */
function commandsFor(argv: readonly string[]): Array<() => Promise<Command>> {
  const first = argv.find((a) => !a.startsWith('-'));
  const named = first !== undefined && Object.hasOwn(COMMANDS, first) ? COMMANDS[first] : undefined;
  return named !== undefined ? [named] : Object.values(COMMANDS);
}

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
  const debug = argv.includes('--debug');
  try {
    for (const cmd of await Promise.all(commandsFor(argv).map((load) => load()))) program.addCommand(cmd);
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
