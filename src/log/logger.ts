/**
 * Logger factory. Operator logs are structured (pino) and go to stderr; user-facing CLI
 * output is printed elsewhere (cli/). Secrets are removed twice: by field name (pino
 * `redact`) and by value (every registered secret, in each form it can take in a line, is
 * replaced in the final line, JSON or text). The value pass is the one that counts: a secret
 * inside a message, an error's text or any field not in the name list is found only by it.
 */
import { pino, type Logger, type DestinationStream } from 'pino';
import { prettyFactory } from 'pino-pretty';

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

/**
 * Registered secrets and every form one can take in a log line, longest first (a form that
 * contains another, like the full token around its secret, is masked whole).
 */
const secretValues = new Set<string>();
let forms: string[] = [];
/** UTF-8 bytes of the registered secrets long enough for the base64 check (`BASE64_MIN_BYTES`). */
const secretBytes: Buffer[] = [];

/**
 * Secrets shorter than this are not searched for inside decoded base64 (only in the fixed
 * `server:` form of `secretForms`): decoded text is arbitrary bytes, and a 1- to 3-byte
 * secret would be found in the decoding of ordinary words and numbers (4 bytes: one chance
 * in 2^32 per position).
 */
const BASE64_MIN_BYTES = 4;
/** A run of base64 text (standard or URL-safe alphabet, optional padding). */
const BASE64_RUN = /[A-Za-z0-9+/_-]{6,}={0,2}/g;

/** JSON string contents of `s` (what a JSON log line holds for it), without the quotes. */
const jsonEscaped = (s: string): string => JSON.stringify(s).slice(1, -1);

/**
 * The forms of a secret as it can appear in a line: raw; JSON-escaped (a JSON log line),
 * twice JSON-escaped (a JSON text inside a JSON string, e.g. etcd's own log line re-logged
 * as a field); URL-encoded (in a URL or form body), and that JSON-escaped; and the base64
 * of `server:<secret>` (the HTTP basic-auth header the API client sends; kept for secrets
 * too short for the base64 check of `scrubSecrets`, which finds any other base64 form).
 */
export function secretForms(s: string): string[] {
  const url = encodeURIComponent(s);
  return [s, jsonEscaped(s), jsonEscaped(jsonEscaped(s)), url, jsonEscaped(url), Buffer.from(`server:${s}`).toString('base64')];
}

/**
 * Registers a secret value (token, S3 key, proxy password) so that every later log line
 * masks it, in every form `secretForms` lists and, from 4 bytes up, inside any base64 run
 * (`scrubSecrets`). Any length is masked, down to one character: a secret that
 * short also masks every occurrence of those characters in unrelated words (and may break
 * a JSON line's syntax, which is then printed as scrubbed text); the secret never shows,
 * and the token strength policy (etcd/token.ts) refuses or warns about such secrets.
 */
export function registerSecret(value: string | undefined): void {
  if (value === undefined || value.length === 0 || secretValues.has(value)) return;
  secretValues.add(value);
  forms = [...new Set([...forms, ...secretForms(value)])].sort((a, b) => b.length - a.length);
  const bytes = Buffer.from(value, 'utf8');
  if (bytes.length >= BASE64_MIN_BYTES) secretBytes.push(bytes);
}

/**
 * Whether the base64 run `run` decodes to bytes holding a registered secret. Tried from each
 * of the first four characters, so a run glued to letters before it is still read in step.
 */
function base64HoldsSecret(run: string): boolean {
  for (let k = 0; k < 4 && run.length - k >= 6; k++) {
    const decoded = Buffer.from(run.slice(k), 'base64');
    if (secretBytes.some((b) => decoded.includes(b))) return true;
  }
  return false;
}

/**
 * Replaces every registered secret, in each of its forms, in `text` with `**redacted**`;
 * also every base64 run (6 characters or more, either alphabet) whose decoding holds a
 * registered secret of 4 bytes or more: the basic-auth header of any user (`server:<secret>`,
 * a proxy's `user:<password>`), the base64 of the secret itself. Not recognised: base64 that
 * is itself URL-encoded or split across lines, hex, and other encodings.
 * Occurrences are found in the original text (so a mask never creates or hides a match)
 * and overlapping ones are merged into one mask, so no part of a secret is left beside it.
 */
export function scrubSecrets(text: string): string {
  let spans: Array<[number, number]> | undefined;
  for (const f of forms) {
    for (let i = text.indexOf(f); i >= 0; i = text.indexOf(f, i + 1)) (spans ??= []).push([i, i + f.length]);
  }
  if (secretBytes.length > 0) {
    for (const m of text.matchAll(BASE64_RUN)) {
      if (base64HoldsSecret(m[0])) (spans ??= []).push([m.index, m.index + m[0].length]);
    }
  }
  if (!spans) return text;
  spans.sort((a, b) => a[0] - b[0] || b[1] - a[1]);
  let out = '';
  let pos = 0;
  let [start, end] = spans[0] ?? [0, 0];
  for (const [s, e] of spans) {
    if (s <= end) {
      end = Math.max(end, e);
      continue;
    }
    out += text.slice(pos, start) + REDACTED;
    pos = end;
    [start, end] = [s, e];
  }
  return out + text.slice(pos, start) + REDACTED + text.slice(end);
}

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
