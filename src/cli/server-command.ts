/** `etcdsnap server`: resolves options, builds the logger, runs the daemon until a signal. */
import { Command } from 'commander';
import { addOptions, resolveValues } from '../config/resolve.js';
import { SERVER_OPTIONS } from '../config/schema.js';
import { daemonNotifier, keepRunningOnBugs, stopSignal } from './daemon.js';

export function serverCommand(): Command {
  const cmd = new Command('server').description('Run an etcd member under supervision, with scheduled snapshots');
  addOptions(cmd, SERVER_OPTIONS);
  cmd.action(async () => {
    const warnings: string[] = [];
    // the daemon's modules (gRPC, TLS, S3 SDK, ...) load only when they are needed
    const [{ createLogger }, { buildServerConfig }, { proxyEnvironment, s3OptionsFromValues }] = await Promise.all([
      import('../log/logger.js'),
      import('../server/config.js'),
      import('../snapshot/s3-config.js'),
    ]);
    const values = await resolveValues(cmd, SERVER_OPTIONS, { env: process.env, warn: (m) => warnings.push(m) });
    const cfg = buildServerConfig(values);
    // the proxy variables are read once, here; the S3 store gets them as values
    const proxyEnv = proxyEnvironment(process.env);
    const s3 = s3OptionsFromValues(values, 'etcd-', proxyEnv);
    const logger = createLogger({ format: cfg.logFormat, debug: cfg.debug });
    for (const w of warnings) logger.warn(w);
    if (cfg.clusterReset) {
      const [{ runClusterReset }, { progressMode, progressReporter }] = await Promise.all([import('../server/reset.js'), import('./progress.js')]);
      // a bar on a terminal; else progress lines through the log (a JSON log stays JSON)
      const progress = progressReporter({ mode: progressMode(values.bool('quiet'), process.stderr.isTTY), line: (text) => logger.info(text), showAfterMs: 0 });
      await runClusterReset({
        progress,
        cfg,
        ...(s3 ? { s3 } : {}),
        snapshotDir: cfg.snapshots.dir,
        snapshotDirIsDefault: cfg.snapshots.dirIsDefault,
        logger,
        out: (line) => process.stdout.write(`${line}\n`),
      });
      return;
    }
    const [
      { runServer },
      { snapshotFeature, snapshotSettingsOf },
      { resolveEncoding },
      { Upkeep, upkeepSettingsOf },
      { quotaBackendBytes },
      { EtcdClient },
      { tlsPaths },
    ] = await Promise.all([
      import('../server/server.js'),
      import('../server/snapshots.js'),
      import('../snapshot/encode.js'),
      import('../server/upkeep.js'),
      import('../server/metrics.js'),
      import('../etcd/client.js'),
      import('../etcd/tls.js'),
    ]);
    // etcd upkeep: every member at its client URL, with this server's client certificate
    const upkeep = new Upkeep({
      ...upkeepSettingsOf(values),
      quotaBytes: quotaBackendBytes(cfg.etcdArgs),
      endpointsOf: (members) => members.flatMap((m) => m.clientURLs.slice(0, 1)),
      connect: (endpoint) => EtcdClient.connect({ endpoint, tls: tlsPaths(cfg.dataDir) }),
    });
    // a bad recipient, a conflicting compression or a missing zstd stops the start, before etcd runs
    const encoding = await resolveEncoding(cfg.snapshots.encodingInput);
    keepRunningOnBugs(logger);
    await runServer(
      cfg,
      logger,
      stopSignal(logger),
      [
        upkeep.feature(),
        snapshotFeature({
          disabled: cfg.snapshots.disabled,
          schedule: cfg.snapshots.schedule,
          settings: snapshotSettingsOf(cfg.snapshots, encoding, cfg.nodeName),
          ...(s3 ? { s3 } : {}),
          proxyEnv,
          etcdBinary: cfg.etcdBinary,
          wrapSource: (source) => upkeep.guard.wrap(source),
          attach: upkeep.attach,
        }),
      ],
      daemonNotifier(process.env, logger),
    );
  });
  return cmd;
}
