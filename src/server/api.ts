/**
 * The supervisor API: HTTPS on --supervisor-port with a certificate from the cluster CA.
 *
 * Contract:
 * - Routes are registered with `route()`; a route is public only when it says so
 *   (`/healthz`, `/cacerts`). Every other request needs the token's secret, as HTTP basic
 *   auth `server:<secret>` (as k3s) or `Authorization: Bearer <secret>`, compared in
 *   constant time. A missing or wrong secret gets 401 and a log line without the secret.
 * - Request bodies are JSON objects of at most 64 KiB; anything else is a 400/413.
 * - Handlers throw EtcdsnapError; `statusOf` is the one place that maps kinds to HTTP codes.
 *   Error bodies are `{"error": "<message>"}`.
 */
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../log/logger.js';
import { EtcdsnapError, type ErrorKind, messageOf } from '../errors.js';
import { secretsEqual } from '../etcd/token.js';

export const MAX_BODY_BYTES = 64 * 1024;

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
}

export interface Route {
  method: 'GET' | 'POST' | 'DELETE';
  path: string;
  public?: boolean;
  handle(req: ApiRequest): Promise<ApiResponse> | ApiResponse;
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

export interface SupervisorApiOptions {
  host: string;
  port: number;
  certPem: string;
  keyPem: string;
  /** The token's secret; the only credential the API accepts. */
  secret: string;
  logger: Logger;
}

export class SupervisorApi {
  private readonly routes: Route[] = [];
  private readonly server: https.Server;
  private accepting = true;

  constructor(private readonly opts: SupervisorApiOptions) {
    this.server = https.createServer({ cert: opts.certPem, key: opts.keyPem, minVersion: 'TLSv1.2' }, (req, res) => {
      void this.dispatch(req, res);
    });
    this.server.headersTimeout = 10_000;
    this.server.requestTimeout = 0; // snapshot saves may take minutes
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
    const url = new URL(req.url ?? '/', 'https://localhost');
    const method = req.method ?? 'GET';
    const log = this.opts.logger;
    const candidates = this.routes.filter((r) => r.path === url.pathname);
    const route = candidates.find((r) => r.method === method);
    const isPublic = route?.public === true;
    if (!isPublic && !this.authorized(req)) {
      log.warn({ remote: req.socket.remoteAddress, method, path: url.pathname, hasCredentials: req.headers.authorization !== undefined }, 'unauthorized API request');
      req.resume();
      return send(res, 401, { error: 'unauthorized: pass the cluster token (see <data-dir>/server/token)' });
    }
    if (!route) {
      req.resume();
      if (candidates.length > 0) return send(res, 405, { error: `method ${method} not allowed on ${url.pathname}` });
      return send(res, 404, { error: `no such endpoint: ${url.pathname}` });
    }
    if (!this.accepting && !isPublic) {
      req.resume();
      return send(res, 503, { error: 'server is shutting down' });
    }
    let body: Record<string, unknown>;
    try {
      body = await readJsonBody(req);
    } catch (err) {
      return send(res, err instanceof BodyError ? err.status : 400, { error: messageOf(err) });
    }
    const ac = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) ac.abort();
    });
    try {
      const out = await route.handle({ method, path: url.pathname, query: url.searchParams, body, signal: ac.signal });
      send(res, out.status, out.body);
    } catch (err) {
      const status = statusOf(err);
      if (status >= 500) log.error({ err: err instanceof EtcdsnapError ? messageOf(err) : err, path: url.pathname }, 'API request failed');
      send(res, status, { error: messageOf(err) });
    }
  }
}

class BodyError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

/** Past this the connection is cut instead of drained (a 413 needs the body read). */
const DRAIN_LIMIT_BYTES = 16 * 1024 * 1024;

async function readJsonBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const b = chunk as Buffer;
    size += b.length;
    if (size > DRAIN_LIMIT_BYTES) {
      req.destroy();
      break;
    }
    if (size <= MAX_BODY_BYTES) chunks.push(b); // past the limit: read and drop, then answer 413
  }
  if (size > MAX_BODY_BYTES) throw new BodyError(`request body larger than ${MAX_BODY_BYTES} bytes`, 413);
  if (size === 0) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new BodyError('request body is not valid JSON', 400);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new BodyError('request body must be a JSON object', 400);
  }
  return parsed as Record<string, unknown>;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return;
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, {
    'content-type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}
