/**
 * Start-up checks that change nothing on disk, run by `runServer` and `runClusterReset`
 * before their first side effect (data dir, lock file, certificates, token, etcd data): a
 * start they refuse leaves the data dir exactly as it was, or absent when it did not exist.
 *
 * Checked here: the data dir's lock (another etcdsnap on it), the features' own checks (e.g.
 * the snapshot dir exists and is a folder, the S3 settings), and that the ports are free.
 * The callers check the etcd binary and the token (read-only) before, and the restore source
 * after (it may download into the snapshot dir).
 *
 * The etcd ports are not checked here while an etcd left running by an earlier etcdsnap of
 * the same data dir is alive (it holds them; the caller kills it with `killStale` and checks
 * the ports again right after). Ports can still be taken between this check and the listen:
 * that later error is reported the same way.
 */
import net from 'node:net';
import { promises as fsp } from 'node:fs';
import { environmentError, errnoCode, messageOf } from '../errors.js';
import { assertUnlocked } from './lock.js';
import type { ServerConfig, ServerPaths } from './config.js';
import { parseHostPort } from '../config/checks.js';

/** Something with an optional read-only check to run before the start changes anything. */
export interface Preflighted {
  preflight?: () => Promise<void>;
}

/** Resolves when `host:port` can be listened on; else an `environment` error naming `flag`. */
export async function ensurePortFree(host: string, port: number, flag: string): Promise<void> {
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

/**
 * True when `db/etcd.pid` names a live process whose command line holds this data dir's
 * etcd folder: the etcd `killStale` will kill (same rule). Read-only.
 */
async function staleEtcdAlive(p: ServerPaths): Promise<boolean> {
  const pid = Number((await fsp.readFile(p.etcdPidFile, 'utf8').catch(() => '')).trim());
  if (!Number.isInteger(pid) || pid <= 1) return false;
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  const cmdline = await fsp.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  return cmdline.includes(p.etcdDataDir);
}

/** The etcd client and peer ports on `host` (and the client port on loopback, where etcdsnap connects). */
async function ensureEtcdPortsFree(cfg: ServerConfig, p: ServerPaths, host: string): Promise<void> {
  if (await staleEtcdAlive(p)) return;
  await ensurePortFree(host, cfg.etcdClientPort, '--etcd-client-port');
  if (host !== '127.0.0.1') await ensurePortFree('127.0.0.1', cfg.etcdClientPort, '--etcd-client-port');
  await ensurePortFree(host, cfg.etcdPeerPort, '--etcd-peer-port');
}

/** `runServer`'s checks: lock, then each feature's `preflight`, then the ports (supervisor, metrics if set, etcd). */
export async function preflightServer(cfg: ServerConfig, p: ServerPaths, features: readonly Preflighted[]): Promise<void> {
  await assertUnlocked(p);
  for (const f of features) await f.preflight?.();
  await ensurePortFree(cfg.bindAddress, cfg.supervisorPort, '--supervisor-port');
  if (cfg.metricsListenAddress !== undefined) {
    const m = parseHostPort(cfg.metricsListenAddress);
    await ensurePortFree(m.host, m.port, '--metrics-listen-address');
  }
  await ensureEtcdPortsFree(cfg, p, cfg.bindAddress);
}

/** `runClusterReset`'s checks: lock, then the etcd ports on loopback (where the reset runs etcd). */
export async function preflightReset(cfg: ServerConfig, p: ServerPaths): Promise<void> {
  await assertUnlocked(p);
  await ensureEtcdPortsFree(cfg, p, '127.0.0.1');
}
