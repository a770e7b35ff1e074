/**
 * The supervisor API: HTTPS on --supervisor-port with a certificate from the cluster CA.
 *
 * Contract:
 * - Routes are registered with `route()`; a route is public only when it says so
 *   (`/healthz`, `/cacerts`). Every other request needs the token's secret, as HTTP basic
 *   auth `server:<secret>` (as k3s) or `Authorization: Bearer <secret>`, compared in
 *   constant time. A missing or wrong secret gets 401 at once, without its body being read,
 *   and its connection is closed after the answer. Failed logins are slowed and their log
 *   lines bounded per source (login-throttle.ts); a log line never holds the credential.
 * - Only origin-form targets (`/path?query`) are accepted (request-target.ts); any other
 *   target is a 400 and the connection is closed.
 * - Public routes take no body: a request to one with a body (Content-Length > 0 or any
 *   Transfer-Encoding) is answered 413 without reading it, and the connection is closed.
 * - Authenticated request bodies are JSON objects of at most 64 KiB; anything else is a 400/413.
 * - Answers are JSON (or text), or streamed NDJSON (`StreamResponse`: one JSON value a line,
 *   with the client's backpressure; an error after the first line is a last `{"error"}` line).
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
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../log/logger.js';
import { scrubSecrets } from '../log/secrets.js';
import { EtcdsnapError, type ErrorKind, messageOf } from '../errors.js';
import { secretsEqual } from '../etcd/token.js';
import { ConnectionGuard, maxConnectionsFor, softFdLimit } from './connection-guard.js';
import { LoginThrottle, sourceKey, type LoginThrottleSettings } from './login-throttle.js';
import { parseRequestTarget, type RequestTarget } from './request-target.js';
import { BodyError, readJsonBody } from './json-body.js';

export { MAX_BODY_BYTES } from './json-body.js';

export interface ApiRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  /** Parsed JSON body ({} when there was none). */
  body: Record<string, unknown>;
  /** Resolves when the client goes away before the response is sent. */
  signal: AbortSignal;
}

export interface ApiResponse {
  status: number;
  /** Objects are sent as JSON; strings as text/plain. */
  body: unknown;
  /** The content type of a string body, instead of `text/plain; charset=utf-8` (e.g. Prometheus's text format). */
  contentType?: string;
}

/**
 * A streamed answer: `application/x-ndjson`, one JSON value a line, sent as `ndjson` yields
 * them (waiting on the client's backpressure; stopped when the client goes away). The first
 * value is read before the status line is sent, so an error up to it is an ordinary error
 * answer (`statusOf`); an error after it ends the stream with a last line
 * `{"error": "<message>"}`, and a complete stream never has one.
 */
export interface StreamResponse {
  status: number;
  ndjson: AsyncIterable<unknown>;
}

export interface Route {
  method: 'GET' | 'POST' | 'DELETE';
  path: string;
  public?: boolean;
  handle(req: ApiRequest): Promise<ApiResponse | StreamResponse> | ApiResponse | StreamResponse;
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
    const candidates = this.routes.filter((r) => r.path === target.path);
    const route = candidates.find((r) => r.method === method);
    if (route?.public === true) {
      if (hasBody(req)) return refuse(res, 413, `${target.path} takes no request body`);
      return this.run(route, method, target, {}, res);
    }
    const source = sourceKey(req.socket.remoteAddress);
    if (!this.authorized(req)) return this.unauthorized(req, res, source, method, target.path);
    this.throttle.success(source);
    res.once('close', this.guard.enter(req.socket));
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
    return this.run(route, method, target, body, res);
  }

  private async run(route: Route, method: string, target: RequestTarget, body: Record<string, unknown>, res: ServerResponse): Promise<void> {
    const ac = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) ac.abort();
    });
    try {
      const out = await route.handle({ method, path: target.path, query: target.query, body, signal: ac.signal });
      if ('ndjson' in out) await this.stream(res, out, ac.signal, target.path);
      else send(res, out.status, out.body, out.contentType !== undefined ? { 'content-type': out.contentType } : {});
    } catch (err) {
      const status = statusOf(err);
      if (status >= 500) this.opts.logger.error({ err: err instanceof EtcdsnapError ? messageOf(err) : err, path: target.path }, 'API request failed');
      send(res, status, errorBody(err));
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
    res.writeHead(out.status, { 'content-type': 'application/x-ndjson' });
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

/** Resolves when `res` can take more data or is gone. */
function drainOrClose(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.once('drain', done);
    res.once('close', done);
  });
}

/** True when the request announces a body: Content-Length other than 0, or any Transfer-Encoding. */
function hasBody(req: IncomingMessage): boolean {
  const len = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (len !== undefined && len !== '0');
}

/**
 * Answers with an error and closes the connection after the answer, without reading the
 * request's body (Node ends the socket once the response is written, as it says `close`).
 */
function refuse(res: ServerResponse, status: number, message: string, headers: OutgoingHttpHeaders = {}): void {
  if (res.headersSent || res.destroyed) return;
  const socket = res.socket; // Node detaches it from the response when the response finishes
  res.once('finish', () => socket?.destroySoon());
  send(res, status, { error: message }, { ...headers, connection: 'close' });
}

function send(res: ServerResponse, status: number, body: unknown, headers: OutgoingHttpHeaders = {}): void {
  if (res.headersSent || res.destroyed) return;
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, {
    'content-type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json',
    ...headers,
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}
