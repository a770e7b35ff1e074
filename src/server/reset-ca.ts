/**
 * The cluster CA after a restore (reset.ts): what the snapshot's bootstrap data, read from
 * the restored etcd, means for this node's CA and token. Throws a `config` error when the
 * host must refuse; the caller then takes back what the run made.
 */
import { promises as fsp } from 'node:fs';
import type { Logger } from '../log/logger.js';
import { EtcdsnapError } from '../errors.js';
import { caHash } from '../etcd/token.js';
import { bootstrap, type Bootstrap, type TokenCheck } from './bootstrap.js';
import { openBootstrap, sealedCaHash } from './bootstrap-data.js';
import { certHosts, type ServerConfig, type ServerPaths } from './config.js';

/**
 * After a restore, what the snapshot's bootstrap data (the cluster CA sealed with the token,
 * see bootstrap-data.ts) means for this node:
 * - a data dir that had a CA keeps it and its token (logged when the snapshot's differs);
 * - a fresh host takes the snapshot's CA when the token's secret opens it (and, for a full
 *   token, the CA hash matches), re-issuing its certificates and token file from it: the
 *   original token keeps working, as on k3s;
 * - otherwise (sealed with another token, unreadable, or no bootstrap data in the snapshot)
 *   a fresh host refuses, as k3s does ("... encrypted with different token"), unless
 *   `--cluster-reset-new-ca` asks for the new CA it made (with a bare secret only: a full
 *   token pins a CA that a new one cannot match). The caller takes back what the run made.
 */
export async function adoptBootstrap(
  cfg: ServerConfig,
  p: ServerPaths,
  logger: Logger,
  check: TokenCheck,
  boot: Bootstrap,
  sealed: string | undefined,
): Promise<void> {
  const tlsDir = boot.tls.paths.dir;
  const pinned = check.given?.caHash;
  if (check.hadCa) {
    // compared by the hash it carries in clear: no scrypt on the common restore path
    if (sealed !== undefined && sealedCaHash(sealed) !== caHash(boot.tls.caPem)) {
      logger.warn(
        { tls: tlsDir },
        "the snapshot's bootstrap data holds another cluster CA (a snapshot of another cluster?); this server keeps its own CA and token and stores them in etcd when it starts",
      );
    }
    if (cfg.clusterResetNewCa) logger.warn({ tls: tlsDir }, '--cluster-reset-new-ca has no effect here: this data dir keeps its own cluster CA and token');
    return;
  }
  const opened = sealed === undefined ? undefined : await openBootstrap(sealed, boot.secret);
  if (opened?.ok) {
    if (pinned !== undefined && caHash(opened.ca.certPem) !== pinned) {
      throw new EtcdsnapError(
        'config',
        'the token pins another cluster CA than the one in the snapshot; pass the token of the cluster the snapshot was taken from; nothing was kept',
      );
    }
    await fsp.rm(tlsDir, { recursive: true, force: true });
    await bootstrap(cfg, p, certHosts(cfg), { ...check, existingText: undefined }, opened.ca);
    logger.info({ tls: tlsDir }, 'restored the cluster CA from the snapshot; the cluster token stays the same');
    if (cfg.clusterResetNewCa) logger.info("--cluster-reset-new-ca was not needed: the token opens the snapshot's cluster CA, which is kept");
    return;
  }
  // sealed by a newer etcdsnap: this node must be upgraded first, whatever the flags
  if (opened?.ok === false && opened.reason === 'newer') throw new EtcdsnapError('environment', `${opened.message}; nothing was kept`);
  const why =
    sealed === undefined
      ? 'the snapshot holds no etcdsnap bootstrap data (it was taken by etcdctl or another tool, or before etcdsnap stored it), so its cluster CA cannot be restored'
      : opened?.ok === false && opened.reason === 'malformed'
        ? "the snapshot's bootstrap data is unreadable, so its cluster CA cannot be restored"
        : 'bootstrap data already found in the snapshot and encrypted with different token';
  if (!cfg.clusterResetNewCa) {
    const ask =
      opened?.ok === false && opened.reason === 'wrong-secret'
        ? 'pass the token of the cluster the snapshot was taken from (its <data-dir>/server/token), or '
        : '';
    const newCa = pinned !== undefined ? "give only the token's secret (the part after ::server:) with --cluster-reset-new-ca" : 'add --cluster-reset-new-ca';
    throw new EtcdsnapError(
      'config',
      `${why}: ${ask}${newCa} to restore the data with a new cluster CA and token (the other servers then join with fresh data dirs and the new token); nothing was kept`,
    );
  }
  if (pinned !== undefined) {
    throw new EtcdsnapError(
      'config',
      `${why}, and --cluster-reset-new-ca makes a new cluster CA, which a full token (K10...) cannot pin: pass only its secret (the part after ::server:); nothing was kept`,
    );
  }
  logger.warn(
    { tokenFile: p.tokenFile },
    `${why}: --cluster-reset-new-ca: this host keeps the new cluster CA it made; the other servers must join with the new token in ${p.tokenFile} and fresh data dirs`,
  );
}
