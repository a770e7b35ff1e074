/**
 * What the long-running commands (`server`, `agent`) share: the last-resort error handlers,
 * the stop signal and the systemd notifier.
 */
import type { Logger } from '../log/logger.js';
import { serviceNotifier, type ServiceNotifier } from '../util/sd-notify.js';

/**
 * Last resort for the daemon: an error that nothing handled is a bug. It is logged at error
 * level with its stack, and the daemon (a server with its etcd, or an agent) keeps running, rather than Node ending
 * the process on the first unhandled rejection or uncaught exception.
 */
export function keepRunningOnBugs(logger: Logger): void {
  const report = (err: unknown, msg: string): void => {
    try {
      logger.error({ err }, msg);
    } catch {
      /* the log itself failed (stderr gone): nothing else to tell */
    }
  };
  process.on('unhandledRejection', (reason) => report(reason, 'unhandled promise rejection: this is a bug, please report it; the process keeps running'));
  process.on('uncaughtException', (err) => report(err, 'uncaught exception: this is a bug, please report it; the process keeps running'));
}

/** Aborts on the first SIGTERM or SIGINT (logged); later signals are ignored while the stop runs. */
export function stopSignal(logger: Logger): AbortSignal {
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
  return ac.signal;
}

/**
 * The notifier for systemd's `Type=notify` (util/sd-notify.ts), from NOTIFY_SOCKET, which is
 * then removed from `env` (as sd_notify's unset_environment does) so that no child we start
 * (etcd, etcdutl, zstd) could notify in our name; a failed send is a warning in the log.
 */
export function daemonNotifier(env: NodeJS.ProcessEnv, logger: Logger): ServiceNotifier {
  const notifier = serviceNotifier(env, { onError: (m) => logger.warn(m) });
  delete env.NOTIFY_SOCKET;
  return notifier;
}
