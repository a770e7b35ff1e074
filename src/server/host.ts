/**
 * What the server (`server.ts`) and the agent (`agent.ts`) do alike around their features:
 * the supervisor API with its public routes (`/healthz`, `/cacerts`) and its listen with a
 * clear error, waiting for the stop signal, and the ordered stop (API closed to new work,
 * features' drain hooks, bounded). Neither host copies these; each adds what is its own.
 */
import { promises as fsp } from 'node:fs';
import { isIP } from 'node:net';
import type { Logger } from '../log/logger.js';
import { environmentError, messageOf } from '../errors.js';
import { writeFileAtomic } from '../util/durable.js';
import { SupervisorApi } from './api.js';
import { ensurePortFree } from './preflight.js';
import type { DrainHook } from './feature.js';

/** Waits `ms`, or less when `signal` aborts; leaves no listener on `signal` behind. */
export const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });

/** Resolves once `signal` aborts (at once when it already has). */
export const untilAborted = (signal: AbortSignal): Promise<void> =>
  new Promise<void>((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });

export interface HostApiOptions {
  host: string;
  port: number;
  /** The flag that sets `port`, for the error message. */
  portFlag: string;
  certFile: string;
  keyFile: string;
  secret: string;
  /** The CA certificate `/cacerts` answers (the CLI checks it against the token). */
  caPem: string;
  logger: Logger;
  /** `/healthz`: 200 "ok" when this resolves to undefined, else 503 with the reason. */
  health: () => Promise<string | undefined>;
  /** Where the URL clients on this host reach the API at is written once it listens (`ServerPaths.supervisorUrlFile`). */
  urlFile: string;
}

/** The URL a client on this host reaches an API bound to `host` at: loopback for a wildcard bind. */
export function localSupervisorUrl(host: string, port: number): string {
  const h = host === '' || host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  return `https://${isIP(h) === 6 ? `[${h}]` : h}:${port}`;
}

/** Starts the supervisor API with `/healthz` and `/cacerts`; a port in use is an `environment` error naming the flag. */
export async function startHostApi(o: HostApiOptions): Promise<SupervisorApi> {
  const api = new SupervisorApi({
    host: o.host,
    port: o.port,
    certPem: await fsp.readFile(o.certFile, 'utf8'),
    keyPem: await fsp.readFile(o.keyFile, 'utf8'),
    secret: o.secret,
    logger: o.logger,
  });
  api.route({
    method: 'GET',
    path: '/healthz',
    auth: 'public',
    handle: async () => {
      const problem = await o.health();
      return problem === undefined ? { status: 200, body: 'ok' } : { status: 503, body: problem };
    },
  });
  api.route({ method: 'GET', path: '/cacerts', auth: 'public', handle: () => ({ status: 200, body: o.caPem }) });
  try {
    await api.listen();
  } catch (err) {
    await ensurePortFree(o.host, o.port, o.portFlag);
    throw environmentError(`cannot start the supervisor API on ${o.host}:${o.port}: ${messageOf(err)}`, err);
  }
  await writeFileAtomic(o.urlFile, `${localSupervisorUrl(o.host, o.port)}\n`, 0o600);
  return api;
}

/** The stop: the API refuses new work while every drain hook finishes (5 s each at most). */
export async function drainHost(api: SupervisorApi, drains: readonly DrainHook[], logger: Logger): Promise<void> {
  const closing = api.close();
  await Promise.all(drains.map((d) => d(5000).catch((err: unknown) => logger.warn({ err: messageOf(err) }, 'drain failed'))));
  void closing;
}
