/**
 * The supervisor API: HTTPS on --supervisor-port with a certificate from the cluster CA.
 *
 * Contract:
 * - Routes are registered with `route()`, each with its `auth` mode (default `token`):
 *   - `token`: the token's secret, as HTTP basic auth `server:<secret>` (as k3s) or
 *     `Authorization: Bearer <secret>`, compared in constant time. A missing or wrong secret
 *     gets 401 at once, without its body being read, and its connection is closed after the
 *     answer. Failed logins are slowed and their log lines bounded per source
 *     (login-throttle.ts); a log line never holds the credential. A cookie is never looked at.
 *   - `public`: no credential (`/healthz`, `/cacerts`, the dashboard's page and its assets).
 *   - `session`: a dashboard session cookie (session.ts), never the token; a session cookie
 *     authenticates these routes only. Without a live session: 401. The request must also
 *     pass `checkSessionRequest` (same origin; a state-changing one needs JSON and the
 *     session's CSRF header): else 403/415.
 *   - `login`: the dashboard's login: the JSON body's `token` (the secret or the full K10
 *     token) is checked like a `token` route's secret, through the same throttle; on success
 *     a new session is passed to the handler and its cookie set with a 2xx answer.
 *   A handler ends its session with `req.session.end()`; the answer then clears the cookie.
 * - A request declaring a newer API version (`Etcdsnap-Api-Version`, model/format-version.ts)
 *   than this server's is a 400 saying to upgrade the server; no header is version 1.
 * - Only origin-form targets (`/path?query`) are accepted (request-target.ts); any other
 *   target is a 400 and the connection is closed.
 * - Public routes take no body: a request to one with a body (Content-Length > 0 or any
 *   Transfer-Encoding) is answered 413 without reading it, and the connection is closed.
 * - Authenticated request bodies are JSON objects of at most 64 KiB; anything else is a 400/413.
 * - Answers (api-response.ts) are JSON, text or HTML/CSS/JS, streamed NDJSON
 *   (`StreamResponse`: one JSON value a line, with the client's backpressure; an error after
 *   the first line is a last `{"error"}` line), or a file download (`DownloadResponse`,
 *   streamed with backpressure); all carry the security headers of api-response.ts.
 * - Handlers throw EtcdsnapError; `statusOf` is the one place that maps kinds to HTTP codes.
 *   Error bodies are `{"error": "<message>"}`. Any other error escaping a request is a 500
 *   with a log line; nothing a client sends can reject a promise unhandled.
 * - Timeouts (DEFAULT_API_TIMEOUTS) bound receiving a request: TLS handshake 10 s, headers
 *   10 s, the whole request with its body 30 s, idle keep-alive 5 s. Node's requestTimeout
 *   stops counting once the request is received, so a handler may run for minutes (a
 *   snapshot save); no timeout applies to it or to sending its response.
 * - Open connections are capped, and at the cap the API evicts connections that are not
 *   serving an authenticated request (connection-guard.ts).
 */
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../log/logger.js';
import { scrubSecrets } from '../log/secrets.js';
import { EtcdsnapError, type ErrorKind, messageOf } from '../errors.js';
import { parseToken, secretsEqual } from '../etcd/token.js';
import { ConnectionGuard, maxConnectionsFor, softFdLimit } from './connection-guard.js';
import { LoginThrottle, sourceKey, type LoginThrottleSettings } from './login-throttle.js';
import { parseRequestTarget, type RequestTarget } from './request-target.js';
import { BodyError, readJsonBody } from './json-body.js';
import { API_VERSION_HEADER, checkFormatVersion, headerVersion } from '../model/format-version.js';
import { type AnyResponse, type StreamResponse, ANSWER_HEADERS, drainOrClose, refuse, send, sendDownload } from './api-response.js';
import { CLEARED_COOKIE, checkSessionRequest, SessionStore, sessionId, type SessionSettings } from './session.js';

export { MAX_BODY_BYTES } from './json-body.js';
export type { ApiResponse, DownloadResponse, StreamResponse } from './api-response.js';

export interface ApiRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  /** Parsed JSON body ({} when there was none). */
  body: Record<string, unknown>;
  /** Resolves when the client goes away before the response is sent. */
  signal: AbortSignal;
  /** The dashboard session (routes with `auth` `session` or `login`). */
  session?: SessionContext;
}

/** A route's session: its CSRF token, and `end()` to log it out (the answer clears the cookie). */
export interface SessionContext {
  readonly csrf: string;
  end(): void;
}

/** Who may call a route (see the module's contract). */
export type RouteAuth = 'token' | 'public' | 'session' | 'login';

export interface Route {
  method: 'GET' | 'POST' | 'DELETE';
  path: string;
  /** Default `token`. */
  auth?: RouteAuth;
  handle(req: ApiRequest): Promise<AnyResponse> | AnyResponse;
}

const STATUS: Record<ErrorKind, number> = {
  config: 400,
  usage: 400,
  auth: 401,
  'not-found': 404,
  conflict: 409,
  integrity: 422,
  environment: 500,
  unavailable: 503,
};

export function statusOf(err: unknown): number {
  return err instanceof EtcdsnapError ? STATUS[err.kind] : 500;
}

/** Limits on receiving a request (ms). Node checks them every `checkIntervalMs`. */
export interface ApiTimeouts {
  handshakeMs: number;
  headersMs: number;
  /** The whole request, headers and body; not the handler nor the response. */
  requestMs: number;
  keepAliveMs: number;
  checkIntervalMs: number;
}

export const DEFAULT_API_TIMEOUTS: Readonly<ApiTimeouts> = {
  handshakeMs: 10_000,
  headersMs: 10_000,
  requestMs: 30_000,
  keepAliveMs: 5_000,
  checkIntervalMs: 1_000,
};

export interface SupervisorApiOptions {
  host: string;
  port: number;
  certPem: string;
  keyPem: string;
  /** The token's secret; the only credential the API accepts. */
  secret: string;
  logger: Logger;
  /** Defaults: DEFAULT_API_TIMEOUTS. */
  timeouts?: Partial<ApiTimeouts>;
  /** Cap on open connections; default from the process's open-files limit (connection-guard.ts). */
  maxConnections?: number;
  /** Defaults: DEFAULT_LOGIN_THROTTLE. */
  loginThrottle?: Partial<LoginThrottleSettings>;
  /** Defaults: DEFAULT_SESSIONS (session.ts). */
  sessions?: Partial<SessionSettings>;
}

/**
 * The body of an error answer: `{"error": <message>}` with every registered secret masked
 * (log/secrets.ts), as in the log; a message built from a request (an S3 error echoing its
 * settings, a proxy URL with a password) must not carry a secret back out.
 */
function errorBody(err: unknown): { error: string } {
  return { error: scrubSecrets(messageOf(err)) };
}

const UNAUTHORIZED = 'unauthorized: pass the cluster token (see <data-dir>/server/token)';

export class SupervisorApi {
  private readonly routes: Route[] = [];
  private readonly server: https.Server;
  private readonly guard: ConnectionGuard;
  private readonly throttle: LoginThrottle;
  private readonly sessions: SessionStore;
  private accepting = true;

  constructor(private readonly opts: SupervisorApiOptions) {
    const t = { ...DEFAULT_API_TIMEOUTS, ...opts.timeouts };
    this.server = https.createServer(
      {
        cert: opts.certPem,
        key: opts.keyPem,
        minVersion: 'TLSv1.2',
        handshakeTimeout: t.handshakeMs,
        headersTimeout: t.headersMs,
        requestTimeout: t.requestMs,
        keepAliveTimeout: t.keepAliveMs,
        connectionsCheckingInterval: t.checkIntervalMs,
      },
      (req, res) => {
        this.dispatch(req, res).catch((err: unknown) => this.failed(err, req, res));
      },
    );
    this.guard = new ConnectionGuard(this.server, opts.maxConnections ?? maxConnectionsFor(softFdLimit()), opts.logger);
    this.throttle = new LoginThrottle(opts.loginThrottle);
    this.sessions = new SessionStore(opts.sessions);
  }

  /** The cap on open connections in force. */
  get maxConnections(): number {
    return this.guard.maxConnections;
  }

  route(r: Route): this {
    this.routes.push(r);
    return this;
  }

  /** Starts listening; rejects with the listen error (EADDRINUSE, EACCES...). */
  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.opts.port, this.opts.host, () => {
        this.server.off('error', reject);
        resolve((this.server.address() as AddressInfo).port);
      });
    });
  }

  /** Stops accepting new requests (they get 503) and closes the listener once idle. */
  async close(): Promise<void> {
    this.accepting = false;
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeIdleConnections();
    });
  }

  private authorized(req: IncomingMessage): boolean {
    const h = req.headers.authorization ?? '';
    let given: string | undefined;
    if (h.startsWith('Bearer ')) given = h.slice(7).trim();
    else if (h.startsWith('Basic ')) {
      const decoded = Buffer.from(h.slice(6).trim(), 'base64').toString('utf8');
      const i = decoded.indexOf(':');
      if (i >= 0 && decoded.slice(0, i) === 'server') given = decoded.slice(i + 1);
    }
    return given !== undefined && secretsEqual(given, this.opts.secret);
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const target = parseRequestTarget(req.url);
    if (!target) return refuse(res, 400, 'bad request target: expected a path such as /healthz');
    // a client declaring a newer API than ours (absent: 1) is told to use a matching etcdsnap
    const declared = checkFormatVersion('api', headerVersion(req.headers[API_VERSION_HEADER]), `the request to ${target.path.slice(0, 200)}`);
    if (!declared.ok) return refuse(res, 400, declared.reason === 'newer' ? apiTooNew(declared.message) : declared.message);
    const candidates = this.routes.filter((r) => r.path === target.path);
    const route = candidates.find((r) => r.method === method);
    if (route?.auth === 'public') {
      if (hasBody(req)) return refuse(res, 413, `${target.path} takes no request body`);
      return this.run(route, method, target, {}, res);
    }
    const auth = route?.auth ?? 'token';
    const source = sourceKey(req.socket.remoteAddress);
    let session: SessionContext | undefined;
    if (auth === 'session') {
      const id = sessionId(req);
      const s = this.sessions.get(id);
      if (!s) return refuse(res, 401, 'not logged in (or the session expired): log in again');
      const bad = checkSessionRequest(req, s);
      if (bad) return refuse(res, bad.status, bad.message);
      session = { csrf: s.csrf, end: () => this.sessions.delete(id) };
    } else if (auth === 'login') {
      const bad = checkSessionRequest(req, 'login');
      if (bad) return refuse(res, bad.status, bad.message);
    } else if (!this.authorized(req)) return this.unauthorized(req, res, source, method, target.path);
    if (auth === 'token') this.throttle.success(source);
    // a login is not authenticated before its body is read: its connection stays evictable until then
    if (auth !== 'login') res.once('close', this.guard.enter(req.socket));
    if (!route) {
      req.resume();
      if (candidates.length > 0) return send(res, 405, { error: `method ${method} not allowed on ${target.path.slice(0, 200)}` });
      return send(res, 404, { error: `no such endpoint: ${target.path.slice(0, 200)}` });
    }
    if (!this.accepting) {
      req.resume();
      return send(res, 503, { error: 'server is shutting down' });
    }
    let body: Record<string, unknown>;
    try {
      body = await readJsonBody(req);
    } catch (err) {
      return send(res, err instanceof BodyError ? err.status : 400, errorBody(err));
    }
    if (auth === 'login') {
      if (!this.loginAccepted(body.token)) return this.unauthorized(req, res, source, method, target.path);
      this.throttle.success(source);
      res.once('close', this.guard.enter(req.socket));
      const { id, session: s } = this.sessions.create();
      session = { csrf: s.csrf, end: () => this.sessions.delete(id) };
      res.once('close', () => {
        if (res.statusCode < 200 || res.statusCode > 299) this.sessions.delete(id); // no cookie was set
      });
      return this.run(route, method, target, body, res, session, this.sessions.cookie(id));
    }
    return this.run(route, method, target, body, res, session);
  }

  /** Whether a login's `token` (the secret or the full token) is the token's secret. */
  private loginAccepted(token: unknown): boolean {
    if (typeof token !== 'string' || token.length > 4096) return false;
    try {
      return secretsEqual(parseToken(token).secret, this.opts.secret);
    } catch {
      return false;
    }
  }

  private async run(
    route: Route,
    method: string,
    target: RequestTarget,
    body: Record<string, unknown>,
    res: ServerResponse,
    session?: SessionContext,
    setCookie?: string,
  ): Promise<void> {
    const ac = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) ac.abort();
    });
    let ended = false;
    const ctx = session
      ? {
          csrf: session.csrf,
          end: (): void => {
            ended = true;
            session.end();
          },
        }
      : undefined;
    try {
      const out = await route.handle({ method, path: target.path, query: target.query, body, signal: ac.signal, ...(ctx ? { session: ctx } : {}) });
      if ('ndjson' in out) await this.stream(res, out, ac.signal, target.path);
      else if ('download' in out) await sendDownload(res, out, ac.signal);
      else {
        const cookie = ended ? CLEARED_COOKIE : out.status < 300 ? setCookie : undefined;
        const headers = { ...out.headers, ...(out.contentType !== undefined ? { 'content-type': out.contentType } : {}) };
        send(res, out.status, out.body, cookie !== undefined ? { ...headers, 'set-cookie': cookie } : headers);
      }
    } catch (err) {
      const status = statusOf(err);
      if (status >= 500) this.opts.logger.error({ err: err instanceof EtcdsnapError ? messageOf(err) : err, path: target.path }, 'API request failed');
      send(res, status, errorBody(err), ended ? { 'set-cookie': CLEARED_COOKIE } : {});
    }
  }

  /** Sends a `StreamResponse` (see its contract); errors before its first value are thrown. */
  private async stream(res: ServerResponse, out: StreamResponse, signal: AbortSignal, path: string): Promise<void> {
    const it = out.ndjson[Symbol.asyncIterator]();
    let next = await it.next();
    if (res.headersSent || res.destroyed) {
      await it.return?.(); // the client went away while the first value was read
      return;
    }
    res.writeHead(out.status, { 'content-type': 'application/x-ndjson', ...ANSWER_HEADERS });
    try {
      while (next.done !== true && !signal.aborted) {
        if (!res.write(`${JSON.stringify(next.value)}\n`)) await drainOrClose(res);
        next = await it.next();
      }
      res.end();
    } catch (err) {
      if (statusOf(err) >= 500) this.opts.logger.error({ err: err instanceof EtcdsnapError ? messageOf(err) : err, path }, 'API stream failed');
      res.end(`${JSON.stringify(errorBody(err))}\n`);
    } finally {
      await it.return?.();
    }
  }

  /** 401 without reading the body, held back as the throttle says; the connection is closed after it. */
  private unauthorized(req: IncomingMessage, res: ServerResponse, source: string, method: string, path: string): void {
    const d = this.throttle.failure(source, Date.now());
    if (d.log) {
      this.opts.logger.warn(
        {
          remote: req.socket.remoteAddress,
          method: method.slice(0, 32),
          path: path.slice(0, 200),
          hasCredentials: req.headers.authorization !== undefined,
          failures: d.failures,
          ...(d.unlogged > 0 ? { unlogged: d.unlogged } : {}),
        },
        'unauthorized API request',
      );
    }
    if (d.delayMs === 0) {
      refuse(res, 401, UNAUTHORIZED);
      return;
    }
    const retry = { 'retry-after': String(Math.ceil(d.delayMs / 1000)) };
    const timer = setTimeout(() => refuse(res, 401, UNAUTHORIZED, retry), d.delayMs);
    res.once('close', () => clearTimeout(timer)); // the client left or was evicted meanwhile
  }

  /** Last resort for an error escaping `dispatch`: 500 and a log line (a bug). */
  private failed(err: unknown, req: IncomingMessage, res: ServerResponse): void {
    this.opts.logger.error({ err, method: req.method?.slice(0, 32), path: req.url?.slice(0, 200) }, 'API request failed unexpectedly');
    try {
      if (!res.headersSent) refuse(res, 500, 'internal error');
      else res.destroy();
    } catch {
      req.socket.destroy();
    }
  }
}

/** True when the request announces a body: Content-Length other than 0, or any Transfer-Encoding. */
/** The refusal of a request from a newer client: the server is the one to upgrade. */
const apiTooNew = (message: string): string =>
  message.replace(/upgrade etcdsnap on this node$/, 'upgrade this etcdsnap server (or use an etcdsnap of its version)');

function hasBody(req: IncomingMessage): boolean {
  const len = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (len !== undefined && len !== '0');
}
