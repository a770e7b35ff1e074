/**
 * Logger factory. Operator logs are structured (pino) and go to stderr; user-facing CLI
 * output is printed elsewhere (cli/). Secrets are removed twice: by field name (pino
 * `redact`) and by value (every registered secret, in each form it can take in a line, is
 * replaced in the final line, JSON or text). The value pass is the one that counts: a secret
 * inside a message, an error's text or any field not in the name list is found only by it.
 */
import { pino, type Logger, type DestinationStream } from 'pino';
import { prettyFactory } from 'pino-pretty';
import { REDACTED, scrubSecrets } from './secrets.js';

export { REDACTED, registerSecret, scrubSecrets, secretForms } from './secrets.js';
export type { Logger } from 'pino';
export type LogFormat = 'text' | 'json';

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

/** A line sink (pino's destination contract: `write` gets one whole line). */
interface LineSink {
  write(line: string): unknown;
}

export interface LoggerOptions {
  format: LogFormat;
  debug: boolean;
  /** Where the final (formatted, scrubbed) lines go; defaults to stderr. */
  destination?: LineSink;
}

/**
 * A pino logger whose lines are scrubbed of registered secrets (`scrubSecrets`) before they
 * reach the destination. JSON: each line is scrubbed. Text: the JSON line is scrubbed, then
 * formatted by pino-pretty (synchronously, in this thread) as one line per record (fields as
 * JSON after the message; only an `err` object with its stack spans lines), then scrubbed again, so a form that only the formatting produces
 * (a JSON escape undone) is masked too.
 */
export function createLogger(opts: LoggerOptions): Logger {
  const sink: LineSink = opts.destination ?? pino.destination({ dest: 2, sync: true });
  let write: (line: string) => void;
  if (opts.format === 'text') {
    // one line per record: `grep ERROR` shows a record whole, with its fields
    const pretty = prettyFactory({ colorize: false, translateTime: 'SYS:standard', ignore: 'pid,hostname', singleLine: true });
    write = (line) => void sink.write(scrubSecrets(pretty(scrubSecrets(line))));
  } else {
    write = (line) => void sink.write(scrubSecrets(line));
  }
  return pino(
    {
      level: opts.debug ? 'debug' : 'info',
      base: undefined,
      redact: { paths: REDACT_PATHS, censor: REDACTED },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    { write } satisfies DestinationStream,
  );
}
