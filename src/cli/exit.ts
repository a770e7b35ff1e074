/**
 * The one place that turns errors into what the user sees and the process exit code.
 * Expected errors (EtcdsnapError) print one line `error: <message>`; anything else prints
 * its message plus a hint to rerun with --debug, which prints the stack.
 */
import { CommanderError } from 'commander';
import { EtcdsnapError, messageOf, type ErrorKind } from '../errors.js';
import { scrubSecrets } from '../log/secrets.js';

const EXIT: Record<ErrorKind, number> = {
  config: 1,
  usage: 1,
  environment: 1,
  auth: 1,
  'not-found': 1,
  conflict: 1,
  integrity: 1,
  unavailable: 1,
};

export function exitCodeOf(err: unknown): number {
  if (err instanceof EtcdsnapError) return EXIT[err.kind];
  if (err instanceof CommanderError) return err.exitCode;
  return 1;
}

/** Prints `err` for the user on stderr (secrets scrubbed) and returns the exit code. */
export function reportError(err: unknown, debug: boolean): number {
  if (err instanceof CommanderError) return err.exitCode; // commander already printed it
  const line = err instanceof EtcdsnapError ? messageOf(err) : `${messageOf(err)} (unexpected; rerun with --debug for details)`;
  process.stderr.write(`error: ${scrubSecrets(line.split('\n')[0] ?? line)}\n`);
  if (debug && err instanceof Error && err.stack && !(err instanceof EtcdsnapError)) {
    process.stderr.write(`${scrubSecrets(err.stack)}\n`);
  }
  return exitCodeOf(err);
}
