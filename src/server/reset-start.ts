/**
 * The check at the end of a cluster reset (reset.ts): start etcd on the reset data, on
 * loopback only, wait until it is healthy with exactly one member, let the caller read from
 * it, stop it. Nothing is written into etcd, so the revision stays the snapshot's.
 */
import type { Logger } from '../log/logger.js';
import { EtcdsnapError, messageOf } from '../errors.js';
import { EtcdProcess, killStale } from '../etcd/process.js';
import { tlsPaths } from '../etcd/tls.js';
import type { EtcdClient, EtcdStatus } from '../etcd/client.js';
import type { ServerPaths } from './config.js';

/** How to start the reset etcd and reach it. */
export interface ResetStart {
  etcdBinary: string;
  /** etcd's arguments (`etcdArgs` with `loopbackOnly`). */
  args: string[];
  /** The data dir of the server (its TLS files). */
  dataDir: string;
  /** The client port etcd listens on, on 127.0.0.1. */
  clientPort: number;
  paths: ServerPaths;
  logger: Logger;
}

/** How long etcd has to become healthy after a reset. */
const HEALTHY_WITHIN_MS = 120_000;

/**
 * Starts etcd (after stopping a stale one of this data dir), waits until it is healthy with
 * exactly one member (an `integrity` error for any other count, `unavailable` after 120 s),
 * runs `inspect` on it, then stops it, whatever the outcome. Resolves with the status that
 * showed it healthy.
 */
export async function startAndCheck(s: ResetStart, inspect?: (client: EtcdClient) => Promise<void>): Promise<EtcdStatus> {
  const { paths: p, logger } = s;
  await killStale(p.etcdPidFile, p.etcdDataDir, logger);
  const proc = new EtcdProcess({ binary: s.etcdBinary, args: s.args, dataDir: p.etcdDataDir, pidFile: p.etcdPidFile, logger });
  await proc.start();
  let client: EtcdClient | undefined;
  try {
    // the gRPC client loads late: its import overlaps the restore instead of delaying it
    const { EtcdClient } = await import('../etcd/client.js');
    client = await EtcdClient.connect({ endpoint: `https://127.0.0.1:${s.clientPort}`, tls: tlsPaths(s.dataDir) });
    const deadline = Date.now() + HEALTHY_WITHIN_MS;
    let healthy: EtcdStatus;
    for (;;) {
      try {
        const status = await client.status(2000);
        const members = await client.members();
        if (members.length !== 1) throw new EtcdsnapError('integrity', `etcd has ${members.length} members after the reset, expected 1`);
        // healthy: the single member leads (no write, so the revision stays the snapshot's)
        if (status.leader === '0' || status.leader !== status.memberId) throw new Error('no leader yet');
        logger.debug({ members: members.length, revision: status.revision }, 'etcd is healthy with exactly one member');
        healthy = status;
        break;
      } catch (err) {
        if (err instanceof EtcdsnapError && err.kind === 'integrity') throw err;
        if (Date.now() > deadline) throw new EtcdsnapError('unavailable', `etcd did not become healthy after the reset: ${messageOf(err)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    await inspect?.(client);
    return healthy;
  } finally {
    client?.close();
    await proc.stop();
  }
}
