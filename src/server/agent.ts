/**
 * Composition root of `etcdsnap agent` (docs/agent.md): the snapshot feature of the server
 * (snapshots.ts: schedule, retention, local + S3 in one pass, records, the supervisor API
 * with its token, metrics, dashboard) against an etcd cluster it does not run, reached at
 * `--endpoints` with etcdctl's TLS files. No etcd process, no membership, no bootstrap data,
 * no cluster reset.
 *
 * Its data dir has the server's layout (`server/token`, `server/tls/` with the CA and the
 * supervisor certificate only, `server/db/snapshots`), so `etcdsnap etcd-snapshot
 * --data-dir <agent data dir> --etcd-server https://127.0.0.1:<port>` works as with a server.
 *
 * Order at start: checks that change nothing (lock, the TLS files readable, features' own
 * checks, ports) → data dir (0700) → lock → CA, supervisor certificate, token → API listen
 * (healthz 503) → one client per endpoint (certificates checked against the endpoint's host,
 * as etcdctl) → wait until a member answers → features → "etcdsnap agent ready" (healthz
 * 200 while a member answers). A refused start leaves the data dir as it was.
 * Snapshots stream from the member `ClusterSource` (etcd/members.ts) picks, followers
 * first; scheduled ones are taken only while `leadership` says this agent is active.
 * Order at stop: API refuses new work → drain (bounded) → clients closed → lock removed.
 * Under systemd (`Type=notify`, docs/systemd.md) `notify` gets STATUS= lines, READY=1 right
 * after "etcdsnap agent ready" and STOPPING=1 as soon as `signal` aborts, flushed before return.
 */
import { promises as fsp, constants as fsc } from 'node:fs';
import os from 'node:os';
import type { Logger } from '../log/logger.js';
import { configError, environmentError, errnoCode, messageOf } from '../errors.js';
import { EtcdClient } from '../etcd/client.js';
import { ClusterSource, type SnapshotCandidate } from '../etcd/members.js';
import { ensureTls } from '../etcd/tls.js';
import { ensurePrivateDir } from '../util/fs.js';
import { checkToken, issueToken } from './bootstrap.js';
import { serverPaths } from './config.js';
import type { AgentConfig } from './agent-config.js';
import type { DrainHook, HostContext, HostFeature } from './feature.js';
import { drainHost, localSupervisorUrl, sleep, startHostApi, untilAborted } from './host.js';
import { assertUnlocked, lockDataDir } from './lock.js';
import { ensurePortFree } from './preflight.js';
import { parseHostPort } from '../config/checks.js';
import { hexId } from './identity.js';
import { NO_NOTIFIER, type ServiceNotifier } from '../util/sd-notify.js';

/** Reads each TLS file once, so that a wrong path is one line naming the flag. */
async function checkTlsFiles(cfg: AgentConfig): Promise<void> {
  for (const [flag, file] of [
    ['--cacert', cfg.etcd.cacert],
    ['--cert', cfg.etcd.cert],
    ['--key', cfg.etcd.key],
  ] as const) {
    try {
      await fsp.access(file, fsc.R_OK);
    } catch (err) {
      throw configError(`cannot read ${flag} ${file}: ${errnoCode(err) ?? messageOf(err)}; give the file etcdctl would use`);
    }
  }
}

/** The first candidates answer, waiting (logged every 10 s) until one does or `signal` aborts. */
async function waitForMembers(source: ClusterSource, logger: Logger, signal: AbortSignal): Promise<SnapshotCandidate[] | undefined> {
  let lastLog = 0;
  while (!signal.aborted) {
    try {
      return await source.candidates();
    } catch (err) {
      if (Date.now() - lastLog > 10_000) {
        logger.warn({ err: messageOf(err) }, 'waiting for an etcd member to answer');
        lastLog = Date.now();
      }
      await sleep(500, signal);
    }
  }
  return undefined;
}

/**
 * Runs the agent until `signal` aborts, then stops it cleanly.
 * @param features started in order once a member answers (the snapshot feature).
 * @param notify the service manager's readiness protocol (none by default).
 */
export async function runAgent(
  cfg: AgentConfig,
  logger: Logger,
  signal: AbortSignal,
  features: readonly HostFeature[],
  notify: ServiceNotifier = NO_NOTIFIER,
): Promise<void> {
  const onStop = (): void => notify.stopping('stopping: draining the API');
  if (signal.aborted) onStop();
  else signal.addEventListener('abort', onStop, { once: true });
  try {
    await serveAgent(cfg, logger, signal, features, notify);
  } finally {
    signal.removeEventListener('abort', onStop);
    await notify.flush();
  }
}

async function serveAgent(cfg: AgentConfig, logger: Logger, signal: AbortSignal, features: readonly HostFeature[], notify: ServiceNotifier): Promise<void> {
  const p = serverPaths(cfg.dataDir);
  notify.status('starting: checks');
  const tokenCheck = await checkToken(
    {
      dataDir: cfg.dataDir,
      clusterReset: false,
      ...(cfg.token !== undefined ? { token: cfg.token } : {}),
      ...(cfg.tokenFile !== undefined ? { tokenFile: cfg.tokenFile } : {}),
    },
    p,
  );
  await assertUnlocked(p);
  await checkTlsFiles(cfg);
  for (const f of features) await f.preflight?.();
  await ensurePortFree(cfg.bindAddress, cfg.supervisorPort, '--supervisor-port');
  if (cfg.metricsListenAddress !== undefined) {
    const m = parseHostPort(cfg.metricsListenAddress);
    await ensurePortFree(m.host, m.port, '--metrics-listen-address');
  }
  try {
    await fsp.mkdir(cfg.dataDir, { recursive: true, mode: 0o700 });
    await ensurePrivateDir(p.serverDir);
    await ensurePrivateDir(p.dbDir);
  } catch (err) {
    throw environmentError(
      `data dir ${cfg.dataDir} is not writable (${errnoCode(err) ?? messageOf(err)}); fix its permissions or choose another with --data-dir`,
      err,
    );
  }
  const unlock = await lockDataDir(p);
  const drains: DrainHook[] = [];
  const clients: EtcdClient[] = [];
  try {
    const hosts = [...new Set(['127.0.0.1', 'localhost', cfg.bindAddress, cfg.nodeName, os.hostname()].filter((h) => h !== '0.0.0.0' && h !== '::'))];
    const tls = await ensureTls(cfg.dataDir, hosts, cfg.nodeName, undefined, 'supervisor');
    const { secret } = await issueToken(p, tls.caPem, tokenCheck);
    if (tokenCheck.weakSecretWarning !== undefined) logger.warn(tokenCheck.weakSecretWarning);
    const tlsFiles = { etcdCa: cfg.etcd.cacert, clientCert: cfg.etcd.cert, clientKey: cfg.etcd.key };
    for (const endpoint of cfg.etcd.endpoints) {
      clients.push(await EtcdClient.connect({ endpoint, tls: tlsFiles, serverName: new URL(endpoint).hostname.replace(/^\[|\]$/g, '') }));
    }
    const source = new ClusterSource(clients);
    let ready = false;
    const api = await startHostApi({
      host: cfg.bindAddress,
      port: cfg.supervisorPort,
      portFlag: '--supervisor-port',
      urlFile: p.supervisorUrlFile,
      certFile: tls.paths.supervisorCert,
      keyFile: tls.paths.supervisorKey,
      secret,
      caPem: tls.caPem,
      logger,
      health: async () => {
        if (!ready) return 'not ready';
        try {
          await source.candidates();
          return undefined;
        } catch {
          return 'no etcd member is answering';
        }
      },
    });
    if (cfg.etcd.fromKubeadm.length > 0)
      logger.info({ flags: cfg.etcd.fromKubeadm }, `using kubeadm's ${cfg.etcd.fromKubeadm.join(', ')} (/etc/kubernetes/pki)`);
    notify.status(`waiting for an etcd member to answer (${cfg.etcd.endpoints.join(', ')})`);
    const members = await waitForMembers(source, logger, signal);
    const first = members?.[0];
    const firstClient = clients.find((c) => c.endpoint === first?.member.endpoint);
    if (first && firstClient && !signal.aborted) {
      const ctx: HostContext = {
        cfg,
        paths: p,
        logger,
        etcd: firstClient,
        snapshotSource: source,
        api,
        addRoute: (r) => api.route(r),
        onDrain: (h) => drains.push(h),
      };
      for (const f of features) await f(ctx);
      ready = true;
      const supervisorURL = localSupervisorUrl(cfg.bindAddress, cfg.supervisorPort);
      logger.info(
        {
          endpoints: cfg.etcd.endpoints,
          answering: members?.map((c) => ({ endpoint: c.member.endpoint, leader: c.status.leader === c.status.memberId })),
          clusterId: hexId(first.status.clusterId),
          etcdVersion: first.status.version,
          supervisor: supervisorURL,
          tokenFile: p.tokenFile,
          dataDir: cfg.dataDir,
        },
        `etcd-snapshot works against this agent with: etcdsnap etcd-snapshot ls --etcd-server ${supervisorURL} --data-dir ${cfg.dataDir}`,
      );
      logger.info('etcdsnap agent ready');
      notify.ready(`ready: etcd ${first.status.version} at ${first.member.endpoint}, API on ${cfg.bindAddress}:${cfg.supervisorPort}`);
      await untilAborted(signal);
    }
    logger.info('shutting down');
    await drainHost(api, drains, logger);
  } finally {
    for (const c of clients) c.close();
    await unlock();
  }
  logger.info('etcdsnap agent stopped');
}
