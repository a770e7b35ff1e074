/**
 * Logger factory. Operator logs are structured (pino) and go to stderr; user-facing CLI
 * output is printed elsewhere (cli/). Secrets are removed twice: by field name (pino
 * `redact`) and by value (every registered secret string is replaced in the final line).
 */
import { pino, type Logger, type DestinationStream } from 'pino';
import { PinoPretty } from 'pino-pretty';

export type { Logger } from 'pino';
export type LogFormat = 'text' | 'json';

export const REDACTED = '**redacted**';

/** Field names whose values are never logged. */
const REDACT_PATHS = [
  'token',
  'secret',
  'password',
  'accessKey',
  'secretKey',
  'sessionToken',
  '*.token',
  '*.secretKey',
  '*.accessKey',
  '*.sessionToken',
  'headers.authorization',
];

/** Strings that must never reach a log line, whatever field or message they hide in. */
const secretValues = new Set<string>();

/** Registers a secret value (token, S3 key) so that every later log line masks it. */
export function registerSecret(value: string | undefined): void {
  if (value !== undefined && value.length >= 4) secretValues.add(value);
}

/** Replaces every registered secret in `text` with `**redacted**`. */
export function scrubSecrets(text: string): string {
  let out = text;
  for (const s of secretValues) {
    if (out.includes(s)) out = out.split(s).join(REDACTED);
  }
  return out;
}

/** A destination that scrubs registered secrets from each line before writing it. */
function scrubbing(target: DestinationStream): DestinationStream {
  return { write: (line: string) => target.write(scrubSecrets(line)) };
}

export interface LoggerOptions {
  format: LogFormat;
  debug: boolean;
  /** Where lines go; defaults to stderr. */
  destination?: DestinationStream;
}

export function createLogger(opts: LoggerOptions): Logger {
  const raw: DestinationStream =
    opts.destination ??
    (opts.format === 'text'
      ? PinoPretty({ destination: 2, sync: true, colorize: false, translateTime: 'SYS:standard', ignore: 'pid,hostname' })
      : pino.destination({ dest: 2, sync: true }));
  return pino(
    {
      level: opts.debug ? 'debug' : 'info',
      base: undefined,
      redact: { paths: REDACT_PATHS, censor: REDACTED },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    scrubbing(raw),
  );
}
