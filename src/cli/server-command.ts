/** `etcdsnap server`: resolves options, builds the logger, runs the daemon until a signal. */
import { Command } from 'commander';
import { addOptions, resolveValues } from '../config/resolve.js';
import { SERVER_OPTIONS } from '../config/schema.js';
import type { Logger } from '../log/logger.js';

/**
 * Last resort for the daemon: an error that nothing handled is a bug. It is logged at error
 * level with its stack, and the server (with its etcd) keeps running, rather than Node ending
 * the process on the first unhandled rejection or uncaught exception.
 */
function keepRunningOnBugs(logger: Logger): void {
  const report = (err: unknown, msg: string): void => {
    try {
      logger.error({ err }, msg);
    } catch {
      /* the log itself failed (stderr gone): nothing else to tell */
    }
  };
  process.on('unhandledRejection', (reason) => report(reason, 'unhandled promise rejection: this is a bug, please report it; the server keeps running'));
  process.on('uncaughtException', (err) => report(err, 'uncaught exception: this is a bug, please report it; the server keeps running'));
}

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
    const [{ runServer }, { snapshotFeature }, { resolveEncoding }] = await Promise.all([
      import('../server/server.js'),
      import('../server/snapshots.js'),
      import('../snapshot/encode.js'),
    ]);
    // a bad recipient, a conflicting compression or a missing zstd stops the start, before etcd runs
    const encoding = await resolveEncoding(cfg.snapshots.encodingInput);
    keepRunningOnBugs(logger);
    const ac = new AbortController();
    let signals = 0;
    const onSignal = (sig: NodeJS.Signals): void => {
      signals++;
      if (signals === 1) {
        logger.info({ signal: sig }, 'signal received, stopping');
        ac.abort();
      }
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    await runServer(cfg, logger, ac.signal, [
      snapshotFeature({
        disabled: cfg.snapshots.disabled,
        schedule: cfg.snapshots.schedule,
        settings: {
          dir: cfg.snapshots.dir,
          dirIsDefault: cfg.snapshots.dirIsDefault,
          name: cfg.snapshots.name,
          retention: cfg.snapshots.retention,
          ...(cfg.snapshots.retentionPolicy ? { retentionPolicy: cfg.snapshots.retentionPolicy } : {}),
          encoding,
          nodeName: cfg.nodeName,
        },
        ...(s3 ? { s3 } : {}),
        proxyEnv,
      }),
    ]);
  });
  return cmd;
}
