/**
 * Composition root of the daemon: prepares the data dir, starts the supervisor API and the
 * etcd member, reports readiness, and shuts everything down in order when `signal` aborts.
 *
 * Order at start: etcd binary → data dir → single-instance lock → token/TLS → API listen
 * (healthz 503) → stale etcd killed → etcd ports checked → etcd started → status answers →
 * "etcdsnap server ready" (healthz 200).
 * Order at stop: not ready, API refuses new work → in-flight work drains (bounded) → etcd
 * stopped (SIGTERM, then SIGKILL) → lock removed.
 */
import net from 'node:net';
import path from 'node:path';
import { promises as fsp } from 'node:fs';
import type { Logger } from '../log/logger.js';
import { environmentError, errnoCode, messageOf } from '../errors.js';
import { EtcdProcess, killStale, resolveBinary } from '../etcd/process.js';
import { EtcdClient } from '../etcd/client.js';
import { SupervisorApi, type Route } from './api.js';
import { bootstrap, checkToken, prepareDataDir } from './bootstrap.js';
import { ETCD_INSTALL_HINT, lockDataDir } from './lock.js';
import { clusterFeature } from './cluster.js';
import { bootstrapDataFeature } from './bootstrap-data.js';
import { JoinSession } from './join.js';
import { refuseStaleData } from './identity.js';
import { exists } from '../util/fs.js';
import { certHosts, etcdArgs, serverPaths, type ServerConfig, type ServerPaths } from './config.js';


/** Something that must finish (within `timeoutMs`) before etcd is stopped. */
export type DrainHook = (timeoutMs: number) => Promise<void>;

/** What a running server offers to the features built on it (snapshots, S3, cluster). */
export interface ServerContext {
  cfg: ServerConfig;
  paths: ServerPaths;
  logger: Logger;
  /** Client of this node's own etcd member. */
  etcd: EtcdClient;
  api: SupervisorApi;
  addRoute(route: Route): void;
  onDrain(hook: DrainHook): void;
}

/** A feature started once etcd is ready; it may register routes and drain hooks. */
export type Feature = (ctx: ServerContext) => Promise<void> | void;

async function ensurePortFree(host: string, port: number, flag: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', (err) => {
      const code = errnoCode(err);
      reject(
        environmentError(
          code === 'EADDRINUSE'
            ? `port ${port} (${flag}) on ${host} is already in use; stop the process using it or choose another port with ${flag}`
            : `cannot listen on ${host}:${port} (${flag}): ${code ?? messageOf(err)}`,
          err,
        ),
      );
    });
    srv.listen(port, host, () => srv.close(() => resolve()));
  });
}

const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });

/**
 * Runs the server until `signal` aborts, then stops it cleanly.
 * @param features started in order once etcd is ready (snapshots, S3, ...).
 */
export async function runServer(cfg: ServerConfig, logger: Logger, signal: AbortSignal, features: readonly Feature[] = []): Promise<void> {
  const p = serverPaths(cfg.dataDir);
  const etcdBinary = await resolveBinary(cfg.etcdBinary, '--etcd-binary', ETCD_INSTALL_HINT);
  const tokenCheck = await checkToken(cfg, p);
  await prepareDataDir(cfg, p);
  const unlock = await lockDataDir(p);
  const drains: DrainHook[] = [];
  let etcdProc: EtcdProcess | undefined;
  let etcd: EtcdClient | undefined;
  let api: SupervisorApi | undefined;
  try {
    const peerURL = `https://${cfg.advertiseAddress}:${cfg.etcdPeerPort}`;
    // a new member joining a cluster gets the cluster CA from a server of it
    const joining = cfg.joinURL !== undefined && !(await exists(path.join(p.etcdDataDir, 'member')));
    const seed = joining && cfg.joinURL !== undefined ? await JoinSession.open(cfg, cfg.joinURL, tokenCheck, logger) : undefined;
    // a server whose etcd data predates a restore of that cluster refuses before etcd starts
    if (!joining) await refuseStaleData(cfg, p, tokenCheck, logger);
    const boot = await bootstrap(cfg, p, certHosts(cfg), tokenCheck, seed?.ca);
    const tls = boot.tls.paths;

    let ready = false;
    api = new SupervisorApi({
      host: cfg.bindAddress,
      port: cfg.supervisorPort,
      certPem: await fsp.readFile(tls.supervisorCert, 'utf8'),
      keyPem: await fsp.readFile(tls.supervisorKey, 'utf8'),
      secret: boot.secret,
      logger,
    });
    api.route({
      method: 'GET',
      path: '/healthz',
      public: true,
      handle: async () => {
        if (!ready || !etcd) return { status: 503, body: 'not ready' };
        try {
          await etcd.status(1500);
          return { status: 200, body: 'ok' };
        } catch {
          return { status: 503, body: 'etcd is not answering' };
        }
      },
    });
    api.route({ method: 'GET', path: '/cacerts', public: true, handle: () => ({ status: 200, body: boot.tls.caPem }) });
    try {
      await api.listen();
    } catch (err) {
      await ensurePortFree(cfg.bindAddress, cfg.supervisorPort, '--supervisor-port');
      throw environmentError(`cannot start the supervisor API on ${cfg.bindAddress}:${cfg.supervisorPort}: ${messageOf(err)}`, err);
    }

    await killStale(p.etcdPidFile, p.etcdDataDir, logger);
    await ensurePortFree(cfg.bindAddress, cfg.etcdClientPort, '--etcd-client-port');
    if (cfg.bindAddress !== '127.0.0.1') await ensurePortFree('127.0.0.1', cfg.etcdClientPort, '--etcd-client-port');
    await ensurePortFree(cfg.bindAddress, cfg.etcdPeerPort, '--etcd-peer-port');

    const member = seed
      ? { name: boot.memberName, ...(await seed.addLearner(boot.memberName, peerURL)), state: 'existing' as const }
      : { name: boot.memberName, initialCluster: `${boot.memberName}=${peerURL}`, state: 'new' as const };
    etcdProc = new EtcdProcess({
      binary: etcdBinary,
      args: etcdArgs(
        cfg,
        p,
        { ca: tls.etcdCa, serverCert: tls.etcdServerCert, serverKey: tls.etcdServerKey, peerCert: tls.etcdPeerCert, peerKey: tls.etcdPeerKey },
        member,
      ),
      dataDir: p.etcdDataDir,
      pidFile: p.etcdPidFile,
      logger,
    });
    await etcdProc.start();
    etcd = await EtcdClient.connect({ endpoint: `https://127.0.0.1:${cfg.etcdClientPort}`, tls });

    while (!signal.aborted) {
      try {
        await etcd.status(2000);
        break;
      } catch (err) {
        logger.debug({ err: messageOf(err) }, 'waiting for etcd');
        await sleep(250, signal);
      }
    }
    if (seed && !signal.aborted) await seed.promote(signal);
    if (!signal.aborted) {
      const ctx: ServerContext = {
        cfg,
        paths: p,
        logger,
        etcd,
        api,
        addRoute: (r) => api?.route(r),
        onDrain: (h) => drains.push(h),
      };
      for (const f of [clusterFeature(tls), bootstrapDataFeature(tls, boot.secret), ...features]) await f(ctx);
      if (await exists(p.resetFlag)) {
        await fsp.rm(p.resetFlag, { force: true });
        logger.info({ file: p.resetFlag }, 'started normally after a cluster reset; removed the reset flag');
      }
      ready = true;
      logger.info(
        {
          nodeName: cfg.nodeName,
          clientURL: `https://${cfg.advertiseAddress}:${cfg.etcdClientPort}`,
          supervisorURL: `https://${cfg.advertiseAddress}:${cfg.supervisorPort}`,
        },
        'etcdsnap server ready',
      );
      await new Promise<void>((resolve) => {
        if (signal.aborted) resolve();
        else signal.addEventListener('abort', () => resolve(), { once: true });
      });
    }
    logger.info('shutting down');
    const closing = api.close();
    await Promise.all(drains.map((d) => d(5000).catch((err: unknown) => logger.warn({ err: messageOf(err) }, 'drain failed'))));
    void closing;
  } finally {
    etcd?.close();
    await etcdProc?.stop();
    await unlock();
  }
  logger.info('etcdsnap server stopped');
}
