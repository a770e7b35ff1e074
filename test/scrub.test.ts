/**
 * The secret scrubber (src/log/logger.ts) on its own: secrets of awkward shapes, put by
 * value into messages, into fields that pino's name-based redaction does NOT cover, into
 * error objects and SDK errors, in both log formats and in the CLI's error output. Every
 * carrier here uses a field name outside the redaction list, so these tests pass only
 * because `scrubSecrets` works (with it returning its input they fail).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { S3ServiceException } from '@aws-sdk/client-s3';
import { EtcdsnapError } from '../src/errors.js';
import { createLogger, REDACTED, registerSecret, scrubSecrets, secretForms } from '../src/log/logger.js';
import { reportError } from '../src/cli/exit.js';

const esc = (t: string): string => JSON.stringify(t).slice(1, -1);
const b64 = (t: string): string => Buffer.from(t, 'utf8').toString('base64');
const b64url = (t: string): string => Buffer.from(t, 'utf8').toString('base64url');

/** Secrets of awkward shapes (none shorter than 4 bytes: those have their own test below). */
const AWKWARD = [
  'qu"ot\'ed-secret', // both quotes
  'back\\slash\\\\secret', // backslashes (one and two)
  'pässwörd-ключ-🔑-秘密', // unicode, astral plane included
  'a b&c=d/e?f#g%h+i@j:k', // everything URL-encoding touches, and the userinfo separators
  'tab\there-newline\nthere', // control characters JSON escapes
  'c2VjcmV0LWluLWJhc2U2NA==', // a secret that is itself base64
  'Sw1ft-s3cr3t-etcdsnap-4f9c', // plain, like an S3 secret key
];

/** Every form the scrubber promises to mask for a secret of 4 bytes or more (logger.ts doc). */
function promisedForms(s: string): string[] {
  return [
    s,
    esc(s),
    esc(esc(s)),
    encodeURIComponent(s),
    esc(encodeURIComponent(s)),
    b64(`server:${s}`),
    // any base64 holding it: the secret alone, a proxy's basic auth, URL-safe alphabet, unpadded
    b64(s),
    b64(`proxy-user:${s}`),
    b64url(`someone:${s}`),
    b64(`x${s}`).replace(/=+$/, ''),
  ];
}

/** Logs `s` in every way a secret can reach a log line by value, through non-redacted names. */
function logEverywhere(logger: ReturnType<typeof createLogger>, s: string): number {
  logger.info(`message with ${s} inside`);
  logger.info({ detail: s, nested: { deeper: [`pre-${s}-post`] } }, 'fields');
  logger.info({ link: `https://h.example/p?k=${encodeURIComponent(s)}&a=b` }, 'url-encoded');
  logger.warn({ etcdLine: JSON.stringify({ level: 'warn', msg: `etcd said ${s}` }) }, 'a JSON text inside a field');
  logger.info({ proxyAuth: `Basic ${b64(`proxy-user:${s}`)}`, apiAuth: `Basic ${b64(`server:${s}`)}` }, 'basic auth headers');
  logger.info({ blob: b64(s), blobUrl: b64url(`someone:${s}`), glued: `x${b64(`x${s}`).replace(/=+$/, '')}` }, 'base64');
  logger.error({ err: new Error(`failed with ${s}`) }, 'error object');
  logger.error(Object.assign(new Error('request failed'), { url: `http://u:${encodeURIComponent(s)}@127.0.0.1:9/`, detail: s }), 'error with own properties');
  logger.error(new Error('outer', { cause: new Error(`inner cause ${s}`) }), 'error with a cause');
  // an SDK error as the AWS SDK builds it from an S3 error body: every XML field is an own
  // property (Swift's SignatureDoesNotMatch carries the access key and the canonical request,
  // which holds the session token)
  const sdk = new S3ServiceException({
    name: 'SignatureDoesNotMatch',
    $fault: 'client',
    $metadata: { httpStatusCode: 403 },
    message: `signature mismatch for ${s}`,
  });
  Object.assign(sdk, { AWSAccessKeyId: s, CanonicalRequest: `GET\n/b/k\n\nx-amz-security-token:${s}\n`, StringToSign: 'AWS4-HMAC-SHA256' });
  logger.error({ err: sdk }, 'sdk error');
  logger.error(sdk);
  return 11;
}

test('every promised form of awkward secrets is masked: messages, non-redacted fields, errors, SDK errors; JSON and text; the rest of each line kept', () => {
  for (const s of AWKWARD) registerSecret(s);
  for (const format of ['json', 'text'] as const) {
    const lines: string[] = [];
    const logger = createLogger({ format, debug: true, destination: { write: (l: string) => lines.push(l) } });
    let expected = 0;
    for (const s of AWKWARD) expected += logEverywhere(logger, s);
    assert.equal(lines.length, expected, format);
    const all = lines.join('');
    for (const s of AWKWARD) {
      for (const f of promisedForms(s)) assert.ok(!all.includes(f), `${format}: ${JSON.stringify(f)} (a form of ${JSON.stringify(s)}) leaked`);
    }
    // masked, not dropped: the words around each secret are still there
    for (const words of [
      'message with **redacted** inside',
      'pre-**redacted**-post',
      'failed with **redacted**',
      'inner cause **redacted**',
      'signature mismatch for **redacted**',
      'SignatureDoesNotMatch',
    ]) {
      assert.ok(all.includes(words), `${format}: ${words}`);
    }
    if (format === 'json') {
      for (const l of lines) assert.doesNotThrow(() => JSON.parse(l), `still JSON: ${l}`);
      const sdkLine = JSON.parse(lines.find((l) => l.includes('"sdk error"')) ?? '{}') as { err?: Record<string, unknown> };
      assert.equal(sdkLine.err?.AWSAccessKeyId, REDACTED, 'the SDK error field itself was logged, and masked');
    }
  }
});

test('scrubSecrets: exact masks, overlapping forms merged, glued base64, and a line without a secret unchanged', () => {
  const s = 'Exact-Secret-Value-42';
  registerSecret(s);
  registerSecret('Secret-Value'); // inside the first: one mask, nothing left beside it
  assert.equal(scrubSecrets(`a ${s} b`), `a ${REDACTED} b`);
  assert.equal(scrubSecrets(`${s}${s}`), REDACTED, 'adjacent occurrences are one mask');
  assert.equal(scrubSecrets(`x "${esc(esc(s))}" y`), `x "${REDACTED}" y`);
  assert.equal(scrubSecrets(`Proxy-Authorization: Basic ${b64(`u:${s}`)}`), `Proxy-Authorization: Basic ${REDACTED}`);
  assert.equal(scrubSecrets(`prefix=ab${b64(`xyz${s}`)},next`), `prefix=${REDACTED},next`, 'base64 glued to letters before it');
  assert.equal(scrubSecrets(`k=${b64url(`\u00ff\u00fe${s}`).replace(/=+$/, '')}`), `k=${REDACTED}`, 'URL-safe alphabet, unpadded');
  // no secret: the text comes back as it was, however much base64 or punctuation it holds
  const innocent = `etcd-snapshot-node1-1718000000 sha256 ${b64('some other data that is not secret at all')} ${b64url('x'.repeat(40))} "quoted" \\ 100%`;
  assert.equal(scrubSecrets(innocent), innocent);
});

test('secretForms lists the fixed forms; a 1- to 3-byte secret is masked in them but not searched for in decoded base64', () => {
  assert.deepEqual(secretForms('a"b c'), ['a"b c', 'a\\"b c', 'a\\\\\\"b c', 'a%22b%20c', 'a%22b%20c', b64('server:a"b c')]);
  registerSecret('Zq9');
  assert.equal(scrubSecrets('x Zq9 y'), `x ${REDACTED} y`);
  assert.equal(scrubSecrets(`Basic ${b64('server:Zq9')}`), `Basic ${REDACTED}`, "the API client's basic auth, any length");
  // another user's basic auth of a 3-byte secret is not promised: decoded base64 of ordinary
  // words would match such short byte strings (documented in logger.ts)
  const other = `Basic ${b64('someone:Zq9')}`;
  assert.equal(scrubSecrets(other), other);
});

test("the CLI's error line and --debug stack are scrubbed (cli/exit.ts)", () => {
  const s = 'cli-error-secret-7b1e';
  registerSecret(s);
  const out: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array): boolean => {
    out.push(String(chunk));
    return true;
  }) as typeof process.stderr.write;
  try {
    reportError(new EtcdsnapError('unavailable', `upload failed: proxy said Basic ${b64(`u:${s}`)} for ${encodeURIComponent(s)}`), false);
    reportError(new Error(`unexpected ${s}`), true);
  } finally {
    process.stderr.write = write;
  }
  const text = out.join('');
  for (const f of promisedForms(s)) assert.ok(!text.includes(f), `${JSON.stringify(f)} leaked: ${text}`);
  assert.match(text, /^error: upload failed: proxy said Basic \*\*redacted\*\* for \*\*redacted\*\*\n/);
  assert.match(text, /^error: unexpected \*\*redacted\*\* \(unexpected; rerun with --debug for details\)\nError: unexpected \*\*redacted\*\*\n {4}at /m);
});
