/**
 * The CLI's client of the supervisor API. The server is verified with the cluster CA that
 * the token pins (k3s's `K10<ca hash>::server:<secret>`): the CA is fetched from
 * `/cacerts`, its sha256 compared with the token, and only then trusted; when
 * `${data-dir}/server/tls/server-ca.crt` already has that sha256 (the CLI on the server's
 * own host), that file is the CA and nothing is fetched. A bare secret uses that file as it is.
 *
 * Every request declares this etcdsnap's API version (`Etcdsnap-Api-Version`); an answer from
 * a server with a newer API version is refused (`environment`, one line: upgrade this node)
 * before it is read; a server without the header (0.1.0) is version 1.
 *
 * Answers of `POST /db/snapshot` are decoded in one place, `snapshot()`, into the types of
 * model/api.ts; an answer of another shape is one EtcdsnapError line, never a cast.
 */
import https from 'node:https';
import { promises as fsp } from 'node:fs';
import { clientFiles } from '../model/data-dir.js';
import { EtcdsnapError, errnoCode, messageOf } from '../errors.js';
import { caHash, parseToken } from '../etcd/token.js';
import { registerSecret } from '../log/secrets.js';
import { numberDefault, SERVER_OPTIONS } from '../config/schema.js';
import { API_VERSION, API_VERSION_HEADER, assertReadable, checkFormatVersion, headerVersion } from '../model/format-version.js';
import { decodeSnapshotResponse, ResponseShapeError, type SnapshotOperation, type SnapshotRequestBody, type SnapshotResponses } from '../model/api.js';

export interface ClientOptions {
  server: string;
  /** Token text; when undefined it is read from `${dataDir}/server/token`. */
  token?: string;
  dataDir: string;
  timeoutMs: number;
  /** Flag names for messages (the CLI's by default; a joining server says --server/--token). */
  flags?: { server: string; token: string };
}

interface HttpResult {
  status: number;
  body: string;
  /** The server's API version header (absent from servers before 0.2.0: version 1). */
  apiVersion?: string | string[];
}

function request(url: URL, opts: https.RequestOptions, body: string | undefined, timeoutMs: number): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { ...opts, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), apiVersion: res.headers[API_VERSION_HEADER] }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer within ${Math.round(timeoutMs / 1000)} s`), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * The reason of a TLS failure (OpenSSL's reason text, e.g. "tlsv13 alert certificate
 * required"), or undefined when `err` is no TLS error.
 */
function tlsFailure(err: unknown): string | undefined {
  const code = errnoCode(err);
  const msg = messageOf(err);
  if (!(code?.startsWith('ERR_SSL_') === true || (code === 'EPROTO' && msg.includes('SSL')))) return undefined;
  // OpenSSL: <hex>:error:<code>:SSL routines:<function>:<reason>:<file>:<line>:<extra>
  return /SSL routines:[^:]*:([^:]+)/.exec(msg)?.[1]?.trim() ?? code;
}

export class SupervisorClient {
  private constructor(
    private readonly base: URL,
    private readonly ca: string,
    private readonly secret: string,
    private readonly timeoutMs: number,
    private readonly serverFlag: string,
  ) {}

  static async connect(opts: ClientOptions): Promise<SupervisorClient> {
    const flags = opts.flags ?? { server: '--etcd-server', token: '--etcd-token' };
    let base: URL;
    try {
      base = new URL(opts.server);
      if (base.protocol !== 'https:') throw new Error('not https');
    } catch {
      throw new EtcdsnapError('config', `invalid ${flags.server} "${opts.server}": use https://<host>:<supervisor-port>`);
    }
    let tokenText = opts.token;
    if (tokenText === undefined) {
      const file = clientFiles(opts.dataDir).token;
      try {
        tokenText = await fsp.readFile(file, 'utf8');
      } catch (err) {
        throw new EtcdsnapError('config', `cannot read the token from ${file} (${errnoCode(err) ?? messageOf(err)}); pass ${flags.token} or --data-dir`);
      }
    }
    registerSecret(tokenText.trim());
    const token = parseToken(tokenText);
    registerSecret(token.secret);
    let ca: string;
    const localCaFile = clientFiles(opts.dataDir).supervisorCa;
    // The token pins the CA by hash: a local CA file (the server's own data dir) with that hash
    // is the same trust as the served one, and saves a TLS handshake and a request.
    const localCa = token.caHash !== undefined ? await fsp.readFile(localCaFile, 'utf8').catch(() => undefined) : undefined;
    if (token.caHash !== undefined && localCa !== undefined && caHash(localCa) === token.caHash) {
      ca = localCa;
    } else if (token.caHash !== undefined) {
      const r = await SupervisorClient.call(
        () => request(new URL('/cacerts', base), { method: 'GET', rejectUnauthorized: false }, undefined, opts.timeoutMs),
        base,
        flags.server,
      );
      if (r.status !== 200 || caHash(r.body) !== token.caHash) {
        throw new EtcdsnapError('auth', `the server at ${base.origin} does not present the CA the token pins; check ${flags.server} and ${flags.token}`);
      }
      ca = r.body;
    } else {
      try {
        ca = await fsp.readFile(localCaFile, 'utf8');
      } catch {
        throw new EtcdsnapError('config', `a bare token needs the cluster CA at ${localCaFile}; pass the full token (K10...) from <data-dir>/server/token`);
      }
    }
    return new SupervisorClient(base, ca, token.secret, opts.timeoutMs, flags.server);
  }

  private static async call(fn: () => Promise<HttpResult>, base: URL, serverFlag: string): Promise<HttpResult> {
    try {
      return await fn();
    } catch (err) {
      const code = errnoCode(err);
      if (code !== undefined && /^(ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ENOTFOUND|ETIMEDOUT|EAI_AGAIN|ENETUNREACH)$/.test(code)) {
        throw new EtcdsnapError(
          'unavailable',
          `cannot reach the etcdsnap server at ${base.origin} (${code}): \`etcdsnap server\` must be running; point ${serverFlag} at its supervisor URL`,
        );
      }
      const tls = tlsFailure(err);
      if (tls !== undefined) {
        // e.g. etcd's client port, which asks for a client certificate, or a plain HTTP port
        throw new EtcdsnapError(
          'config',
          `${base.origin} does not look like an etcdsnap supervisor API (TLS handshake failed: ${tls}); point ${serverFlag} at the server's supervisor port (--supervisor-port, ${numberDefault(SERVER_OPTIONS, 'supervisor-port')} by default), not etcd's client port`,
          { cause: err },
        );
      }
      throw new EtcdsnapError('unavailable', `request to ${base.origin} failed: ${messageOf(err)}`, { cause: err });
    }
  }

  /** The cluster CA the server presented (checked against the token). */
  get caPem(): string {
    return this.ca;
  }

  /** POSTs a JSON body; resolves with the parsed 2xx answer or throws the server's error. */
  post(pathname: string, body: unknown): Promise<unknown> {
    return this.send('POST', pathname, JSON.stringify(body));
  }

  /**
   * `POST /db/snapshot` with `req`: resolves with the server's answer, checked to have the
   * shape of its operation (model/api.ts `decodeSnapshotResponse`); an answer of another
   * shape is an EtcdsnapError of one line naming the field that is wrong.
   */
  async snapshot<O extends SnapshotOperation>(req: SnapshotRequestBody & { operation: O }): Promise<SnapshotResponses[O]> {
    const answer = await this.post('/db/snapshot', req);
    try {
      return decodeSnapshotResponse(req.operation, answer);
    } catch (err) {
      if (!(err instanceof ResponseShapeError)) throw err;
      throw new EtcdsnapError(
        'unavailable',
        `the server at ${this.base.origin} sent a malformed answer to ${req.operation}: ${err.message}; is it an etcdsnap server of this version?`,
        { cause: err },
      );
    }
  }

  /** GETs a JSON document; resolves with the parsed 2xx answer or throws the server's error. */
  get(pathname: string): Promise<unknown> {
    return this.send('GET', pathname, undefined);
  }

  private async send(method: string, pathname: string, text: string | undefined): Promise<unknown> {
    const headers: Record<string, string | number> = {
      authorization: `Basic ${Buffer.from(`server:${this.secret}`).toString('base64')}`,
      [API_VERSION_HEADER]: API_VERSION,
    };
    if (text !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = Buffer.byteLength(text);
    }
    const r = await SupervisorClient.call(
      () => request(new URL(pathname, this.base), { method, ca: this.ca, headers }, text, this.timeoutMs),
      this.base,
      this.serverFlag,
    );
    // a server whose API is newer than ours: its answers may mean something else
    assertReadable(checkFormatVersion('api', headerVersion(r.apiVersion), `the server at ${this.base.origin}`));
    let parsed: unknown;
    try {
      parsed = JSON.parse(r.body);
    } catch {
      parsed = undefined;
    }
    if (r.status >= 200 && r.status < 300) return parsed;
    const msg = typeof parsed === 'object' && parsed !== null && 'error' in parsed ? String(parsed.error) : r.body.slice(0, 200);
    const kind = r.status === 401 ? 'auth' : r.status === 409 ? 'conflict' : r.status === 404 ? 'not-found' : r.status < 500 ? 'usage' : 'unavailable';
    throw new EtcdsnapError(kind, msg);
  }
}
