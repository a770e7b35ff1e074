/**
 * Composition root of the daemon: prepares the data dir, starts the supervisor API and the
 * etcd member, reports readiness, and shuts everything down in order when `signal` aborts.
 *
 * Order at start: etcd binary → token → checks that change nothing (preflight.ts: lock,
 * features' own checks such as the snapshot dir, ports; then, with --server, the join
 * handshake or the stale-data check against that server) → data dir → single-instance lock →
 * TLS → API listen (healthz 503) → stale etcd killed → etcd ports checked → etcd started →
 * status answers → the start-up summary (startup-summary.ts), ending with "etcdsnap server
 * ready" (healthz 200). A start refused before the data dir step leaves it exactly as it was
 * (absent if it did not exist).
 * Order at stop: not ready, API refuses new work → in-flight work drains (bounded) → etcd
 * stopped (SIGTERM, then SIGKILL) → lock removed.
 * Under systemd (`Type=notify`, docs/systemd.md) `notify` gets STATUS= lines at each step,
 * READY=1 right after the "etcdsnap server ready" line (etcd answers, the API serves), and
 * STOPPING=1 as soon as `signal` aborts; the messages are flushed before this returns.
 */
import path from 'node:path';
import { promises as fsp } from 'node:fs';
import type { Logger } from '../log/logger.js';
import { messageOf } from '../errors.js';
import { EtcdProcess, killStale, resolveBinary } from '../etcd/process.js';
import { EtcdClient, type EtcdStatus } from '../etcd/client.js';
import type { SupervisorApi } from './api.js';
import { drainHost, sleep, startHostApi, untilAborted } from './host.js';
import { bootstrap, checkToken, prepareDataDir } from './bootstrap.js';
import { ETCD_INSTALL_HINT, lockDataDir } from './lock.js';
import { clusterFeature } from './cluster.js';
import { bootstrapDataFeature } from './bootstrap-data.js';
import { JoinSession } from './join.js';
import { ensurePortFree, preflightServer } from './preflight.js';
import { startupSummary } from './startup-summary.js';
import { refuseStaleData } from './identity.js';
import { exists } from '../util/fs.js';
import { certHosts, etcdArgs, serverPaths, type ServerConfig } from './config.js';
import type { DrainHook, Feature, ServerContext } from './feature.js';
import { NO_NOTIFIER, type ServiceNotifier } from '../util/sd-notify.js';

/**
 * Runs the server until `signal` aborts, then stops it cleanly.
 * @param features started in order once etcd is ready (snapshots, S3, ...).
 * @param notify the service manager's readiness protocol (none by default).
 */
export async function runServer(
  cfg: ServerConfig,
  logger: Logger,
  signal: AbortSignal,
  features: readonly Feature[] = [],
  notify: ServiceNotifier = NO_NOTIFIER,
): Promise<void> {
  const onStop = (): void => notify.stopping('stopping: draining the API, then etcd');
  if (signal.aborted) onStop();
  else signal.addEventListener('abort', onStop, { once: true });
  try {
    await serve(cfg, logger, signal, features, notify);
  } finally {
    signal.removeEventListener('abort', onStop);
    await notify.flush();
  }
}

async function serve(cfg: ServerConfig, logger: Logger, signal: AbortSignal, features: readonly Feature[], notify: ServiceNotifier): Promise<void> {
  const p = serverPaths(cfg.dataDir);
  notify.status('starting: checks');
  const etcdBinary = await resolveBinary(cfg.etcdBinary, '--etcd-binary', ETCD_INSTALL_HINT);
  const tokenCheck = await checkToken(cfg, p);
  await preflightServer(cfg, p, features);
  // the cluster is asked before anything here changes (an unreachable --server leaves no data
  // dir): a new member gets the cluster CA from a server of it; a server whose etcd data
  // predates a restore of that cluster refuses before etcd starts
  const joining = cfg.joinURL !== undefined && !(await exists(path.join(p.etcdDataDir, 'member')));
  if (joining) notify.status(`joining the cluster of ${cfg.joinURL ?? ''}`);
  const seed = joining && cfg.joinURL !== undefined ? await JoinSession.open(cfg, cfg.joinURL, tokenCheck, logger) : undefined;
  if (!joining) await refuseStaleData(cfg, p, tokenCheck, logger);
  await prepareDataDir(cfg, p);
  const unlock = await lockDataDir(p);
  const drains: DrainHook[] = [];
  let etcdProc: EtcdProcess | undefined;
  let etcd: EtcdClient | undefined;
  let api: SupervisorApi | undefined;
  try {
    const peerURL = `https://${cfg.advertiseAddress}:${cfg.etcdPeerPort}`;
    const boot = await bootstrap(cfg, p, certHosts(cfg), tokenCheck, seed?.ca);
    const tls = boot.tls.paths;

    let ready = false;
    api = await startHostApi({
      host: cfg.bindAddress,
      port: cfg.supervisorPort,
      portFlag: '--supervisor-port',
      urlFile: p.supervisorUrlFile,
      certFile: tls.supervisorCert,
      keyFile: tls.supervisorKey,
      secret: boot.secret,
      caPem: boot.tls.caPem,
      logger,
      health: async () => {
        if (!ready || !etcd) return 'not ready';
        try {
          await etcd.status(1500);
          return undefined;
        } catch {
          return 'etcd is not answering';
        }
      },
    });

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
    notify.status(`starting etcd (member ${member.name})`);
    await etcdProc.start();
    notify.status('waiting for etcd to answer');
    etcd = await EtcdClient.connect({ endpoint: `https://127.0.0.1:${cfg.etcdClientPort}`, tls });

    let status: EtcdStatus | undefined;
    while (!signal.aborted) {
      try {
        status = await etcd.status(2000);
        break;
      } catch (err) {
        logger.debug({ err: messageOf(err) }, 'waiting for etcd');
        await sleep(250, signal);
      }
    }
    if (seed && !signal.aborted) {
      notify.status('etcd answers; waiting for promotion from learner to voting member');
      await seed.promote(signal);
    }
    if (!signal.aborted && status) {
      const ctx: ServerContext = {
        cfg,
        paths: p,
        logger,
        etcd,
        api,
        addRoute: (r) => api?.route(r),
        onDrain: (h) => drains.push(h),
      };
      notify.status(`etcd ${status.version} answers; starting snapshots and API routes`);
      for (const f of [clusterFeature(tls), bootstrapDataFeature(tls, boot.secret), ...features]) await f(ctx);
      if (await exists(p.resetFlag)) {
        await fsp.rm(p.resetFlag, { force: true });
        logger.info({ file: p.resetFlag }, 'started normally after a cluster reset; removed the reset flag');
      }
      ready = true;
      for (const line of startupSummary({ cfg, paths: p, tls, member: member.name, etcd: status })) logger.info(line.fields, line.msg);
      notify.ready(`ready: etcd ${status.version}, member ${member.name}, API on ${cfg.bindAddress}:${cfg.supervisorPort}`);
      await untilAborted(signal);
    }
    logger.info('shutting down');
    await drainHost(api, drains, logger);
  } finally {
    etcd?.close();
    if (etcdProc) notify.status('stopping etcd');
    await etcdProc?.stop();
    await unlock();
  }
  logger.info('etcdsnap server stopped');
}
