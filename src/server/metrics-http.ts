/**
 * Where the metrics (metrics.ts) are served.
 *
 * Contract:
 * - `GET /metrics` on the supervisor API, behind the token like every non-public route.
 * - With `--metrics-listen-address <host:port>`, also a plain-HTTP listener WITHOUT
 *   authentication that serves `GET /metrics` (and HEAD) and nothing else: any other path is
 *   404, any other method on /metrics 405; request bodies are never read. It exposes only
 *   what the metrics say (sizes, counts, times, health; no key, name of a snapshot or secret),
 *   and is meant for a loopback or otherwise private address.
 * - Answers are Prometheus's text format (`text/plain; version=0.0.4; charset=utf-8`); a
 *   scrape that fails (a bug) is a 500 with a log line.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { environmentError, messageOf } from '../errors.js';
import { parseHostPort } from '../config/checks.js';
import type { Logger } from '../log/logger.js';
import type { HostContext } from './feature.js';
import type { ServerMetrics } from './metrics.js';

/** Registers the authenticated `GET /metrics` route of the supervisor API. */
export function addMetricsRoute(ctx: HostContext, metrics: ServerMetrics): void {
  ctx.addRoute({
    method: 'GET',
    path: '/metrics',
    handle: async () => ({ status: 200, body: await metrics.scrape(), contentType: metrics.contentType }),
  });
}

/** The unauthenticated metrics listener; `close` stops it. */
export interface MetricsListener {
  port: number;
  close(): Promise<void>;
}

/** Starts the plain-HTTP metrics listener on `address` (see the contract); rejects with the listen error. */
export async function startMetricsListener(address: string, metrics: ServerMetrics, logger: Logger): Promise<MetricsListener> {
  const { host, port } = parseHostPort(address);
  const server = http.createServer({ requestTimeout: 30_000, headersTimeout: 10_000, keepAliveTimeout: 5_000 }, (req, res) => {
    req.resume();
    const path = (req.url ?? '').split('?')[0];
    const answer = (status: number, body: string, type = 'text/plain; charset=utf-8'): void => {
      res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (path !== '/metrics') return answer(404, 'not found: this listener serves /metrics only\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') return answer(405, 'method not allowed\n');
    metrics.scrape().then(
      (text) => answer(200, text, metrics.contentType),
      (err: unknown) => {
        logger.error({ err: messageOf(err) }, 'metrics scrape failed');
        answer(500, 'scrape failed\n');
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch((err: unknown) => {
    throw environmentError(`cannot listen on ${address} (--metrics-listen-address): ${messageOf(err)}`, err);
  });
  const bound = (server.address() as AddressInfo).port;
  logger.info({ address: `${host}:${bound}` }, `serving metrics without authentication on http://${address}/metrics (--metrics-listen-address)`);
  return {
    port: bound,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
