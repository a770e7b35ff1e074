/**
 * Secret scrubbing end to end: real errors that carry secrets by value, through the real
 * server (bin/etcdsnap, real etcd) to its log and to the CLI's output.
 *
 * - a real HTTP proxy (a CONNECT proxy in this process) that refuses the tunnel with 407 and
 *   echoes the credentials it was sent, in the body and as the basic-auth header (as
 *   debugging proxies and some error pages do): the S3 SDK reads that body as the error;
 * - a proxy URL with credentials pointing at a closed port;
 * - a real Swift (s3api) answering SignatureDoesNotMatch, whose body carries the access key
 *   and the canonical request with the session token.
 * The proxy case fails if `scrubSecrets` returns its input; the others guard the paths.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { freePort, killStarted, snapshotCliAsync, startReady, type ServerProcess } from './helpers/server.js';
import { startSwift, type Swift } from './helpers/swift.js';

let swift: Swift;
let proxy: http.Server;
/** The Proxy-Authorization headers the proxy received. */
const proxyAuths: string[] = [];
let server: ServerProcess;

before(async () => {
  swift = await startSwift();
  await swift.createBucket('scrub');
  proxy = http.createServer((_req, res) => res.writeHead(405).end());
  proxy.on('connect', (req: http.IncomingMessage, socket: import('node:stream').Duplex) => {
    const auth = req.headers['proxy-authorization'] ?? '';
    proxyAuths.push(auth);
    const who = Buffer.from(auth.replace(/^Basic /, ''), 'base64').toString('utf8');
    const body = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>ProxyAuthenticationRequired</Code><Message>proxy refused ${auth} (${who}) for ${req.url ?? ''}</Message></Error>`;
    socket.end(
      `HTTP/1.1 407 Proxy Authentication Required\r\nContent-Type: application/xml\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  server = await startReady({ args: ['--etcd-disable-snapshots'] });
});
after(async () => {
  killStarted();
  proxy?.close();
  await swift?.stop();
});

const esc = (t: string): string => JSON.stringify(t).slice(1, -1);
const b64 = (t: string): string => Buffer.from(t, 'utf8').toString('base64');

/** The forms of `s` that must not appear (logger.ts: the fixed forms and basic auth of `user`). */
const forms = (s: string, user?: string): string[] => [
  s,
  esc(s),
  esc(esc(s)),
  encodeURIComponent(s),
  b64(`server:${s}`),
  ...(user ? [b64(`${user}:${s}`)] : []),
];

function assertNoLeak(what: string, text: string, secrets: Array<[string, string?]>): void {
  for (const [s, user] of secrets) {
    for (const f of forms(s, user)) assert.ok(!text.includes(f), `${what}: ${JSON.stringify(f)} (a form of ${JSON.stringify(s)}) leaked:\n${text}`);
  }
}

const cliS3 = (extra: string[]): string[] => [
  '--s3',
  '--s3-endpoint',
  swift.endpoint,
  '--s3-insecure',
  '--s3-bucket',
  'scrub',
  '--s3-bucket-lookup-type',
  'path',
  ...extra,
];
const serverS3 = (extra: string[]): string[] => [
  '--etcd-s3',
  '--etcd-s3-endpoint',
  swift.endpoint,
  '--etcd-s3-insecure',
  '--etcd-s3-bucket',
  'scrub',
  '--etcd-s3-bucket-lookup-type',
  'path',
  '--etcd-snapshot-schedule-cron',
  '@every 2s',
  ...extra,
];
const swiftEnv = (): Record<string, string> => ({ AWS_ACCESS_KEY_ID: swift.accessKey, AWS_SECRET_ACCESS_KEY: swift.secretKey });
const msgOf = (l: Record<string, unknown>): string => String(l.msg ?? '');

/**
 * Waits for the failure of a scheduled snapshot's upload in the log of `s` (whose own S3
 * settings fail) and lists the snapshots with the CLI (the failed upload is a record with
 * its message). The bucket check at start is a HEAD (an error without a body); the upload is
 * a PUT, whose error has one.
 */
async function failedUpload(s: ServerProcess, failure: RegExp): Promise<{ line: string; ls: string }> {
  const line = await s.waitFor((l) => /^Error received during snapshot upload to S3: /.test(msgOf(l)) && failure.test(msgOf(l)), 60_000);
  const ls = await snapshotCliAsync(s, ['ls', '-o', 'json']);
  assert.equal(ls.code, 0, ls.stderr);
  assert.match(ls.stdout, failure, 'the failed upload is listed with its message');
  return { line: JSON.stringify(line), ls: ls.stdout + ls.stderr };
}

test("a proxy that echoes the credentials it got: its 407 reaches the server log and the CLI's listing with the password and its basic-auth form masked", async () => {
  const user = 'scrub-user';
  const password = `pr0xy pass/wörd@${randomBytes(6).toString('hex')}`; // needs URL-encoding in the URL
  const port = (proxy.address() as AddressInfo).port;
  const s = await startReady({ args: serverS3(['--etcd-s3-proxy', `http://${user}:${encodeURIComponent(password)}@127.0.0.1:${port}`]), env: swiftEnv() });
  await s.waitFor((l) => /^S3 is not usable: .*HTTP 407/.test(msgOf(l)), 30_000);
  const out = await failedUpload(s, /proxy refused/);
  // the secret really went out, and came back in the proxy's answer, which is shown masked
  assert.ok(proxyAuths.length >= 2, 'the bucket check and the upload went to the proxy');
  for (const a of proxyAuths) assert.equal(a, `Basic ${b64(`${user}:${password}`)}`, 'with the credentials of the URL');
  assert.match(
    out.line,
    /\(ProxyAuthenticationRequired, HTTP 407\): proxy refused Basic \*\*redacted\*\* \(scrub-user:\*\*redacted\*\*\) for 127\.0\.0\.1:\d+/,
  );
  assert.equal(await s.stop(), 0);
  assertNoLeak('server log', s.raw.join('\n'), [[password, user]]);
  assertNoLeak('CLI ls', out.ls, [[password, user]]);
});

test('a proxy URL with credentials at a closed port (CLI request): connection refused, the password in no output', async () => {
  const password = `closed-port-secret-${randomBytes(6).toString('hex')}`;
  const port = await freePort();
  const from = server.raw.length;
  const r = await snapshotCliAsync(
    server,
    ['save', '--name', 'closed-proxy', ...cliS3(['--s3-proxy', `http://someone:${password}@127.0.0.1:${port}`])],
    swiftEnv(),
  );
  const out = r.stdout + r.stderr;
  assert.equal(r.code, 1, out);
  assert.match(r.stderr, new RegExp(`ECONNREFUSED\\b.*127\\.0\\.0\\.1:${port}`));
  assertNoLeak('CLI output', out, [[password, 'someone']]);
  assertNoLeak('server log', server.raw.slice(from).join('\n'), [[password, 'someone']]);
});

test("a real S3 error that carries the access key and the session token (Swift's SignatureDoesNotMatch on a PUT): no key in the server log or the CLI's listing", async () => {
  const keys = {
    AWS_ACCESS_KEY_ID: `test:scrub-${randomBytes(6).toString('hex')}`,
    AWS_SECRET_ACCESS_KEY: `wrong-secret-${randomBytes(8).toString('hex')}`,
    AWS_SESSION_TOKEN: `session-token-${randomBytes(8).toString('hex')}`,
  };
  const s = await startReady({ args: serverS3([]), env: keys });
  await s.waitFor((l) => /^S3 is not usable: .*HTTP 403/.test(msgOf(l)), 30_000);
  const out = await failedUpload(s, /SignatureDoesNotMatch/);
  assert.equal(await s.stop(), 0);
  const secrets = Object.values(keys).map((k): [string] => [k]);
  assertNoLeak('server log', s.raw.join('\n'), secrets);
  assertNoLeak('CLI ls', out.ls, secrets);
});
