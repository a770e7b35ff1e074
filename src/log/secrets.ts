/**
 * Secret values and their scrubbing, apart from the logger: the CLI registers its token and
 * scrubs its error lines without loading pino and pino-pretty (about 100 ms of start-up,
 * most of a short command's own time). logger.ts re-exports all of it.
 */
export const REDACTED = '**redacted**';

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
  const spans: Array<[number, number]> = [];
  for (const f of forms) {
    for (let i = text.indexOf(f); i >= 0; i = text.indexOf(f, i + 1)) spans.push([i, i + f.length]);
  }
  if (secretBytes.length > 0) {
    for (const m of text.matchAll(BASE64_RUN)) {
      if (base64HoldsSecret(m[0])) spans.push([m.index, m.index + m[0].length]);
    }
  }
  if (spans.length === 0) return text;
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
