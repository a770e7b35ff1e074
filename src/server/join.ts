/**
 * The joining side of `--server`: talks to a server of the cluster over its supervisor
 * API, authenticated by the token, whose CA hash pins the server's identity.
 * 1. `open`: fetch the cluster CA (certificate and key) to issue this node's certificates;
 * 2. `addLearner`: have that server add this node as an etcd learner, get --initial-cluster;
 * 3. `promote`: once etcd runs, ask for promotion until the learner has caught up; then copy
 *    the cluster's restore record, if it has one (identity.ts), so that this server can
 *    tell a later stale server when the restore was.
 */
import { type ClusterBootstrapResponse, decodeClusterBootstrap, decodeMemberAdd, type MemberAddResponse, ResponseShapeError } from '../model/api.js';
import { EtcdsnapError, messageOf } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { caHash, tokenFromHash } from '../etcd/token.js';
import type { KeyPairPem } from '../etcd/pki.js';
import { SupervisorClient } from './api-client.js';
import type { TokenCheck } from './bootstrap.js';
import { serverPaths, type ServerConfig, type ServerPaths } from './config.js';
import { IDENTITY_PATH, parseIdentity, writeRestoreRecord } from './identity.js';

export class JoinSession {
  private memberId: string | undefined;

  private constructor(
    private readonly client: SupervisorClient,
    readonly ca: KeyPairPem,
    private readonly url: string,
    private readonly logger: Logger,
    private readonly paths: ServerPaths,
  ) {}

  static async open(cfg: ServerConfig, url: string, token: TokenCheck, logger: Logger): Promise<JoinSession> {
    const given = token.given ?? token.existing;
    if (!given || given.caHash === undefined) {
      throw new EtcdsnapError(
        'config',
        'joining a cluster needs the full token (K10...::server:...) from <data-dir>/server/token of a server in it; pass it with --token',
      );
    }
    const client = await SupervisorClient.connect({
      server: url,
      token: tokenFromHash(given.caHash, given.secret),
      dataDir: cfg.dataDir,
      timeoutMs: 30_000,
      flags: { server: '--server', token: '--token' },
    });
    let b: ClusterBootstrapResponse | undefined;
    try {
      b = decodeClusterBootstrap(await client.get('/v1/cluster/bootstrap'));
    } catch (err) {
      if (!(err instanceof ResponseShapeError)) throw err;
    }
    if (b === undefined || caHash(b.caCert) !== given.caHash) {
      throw new EtcdsnapError('auth', `the server at ${url} did not hand out the cluster CA the token pins`);
    }
    logger.info({ server: url }, 'joining the cluster: got the cluster CA');
    return new JoinSession(client, { certPem: b.caCert, keyPem: b.caKey }, url, logger, serverPaths(cfg.dataDir));
  }

  /**
   * Has the server add this node as a learner. etcd refuses member changes until every
   * voting member has been connected for 5 s ("unhealthy cluster", e.g. right after the
   * previous server joined), so this retries for up to two minutes.
   */
  async addLearner(name: string, peerURL: string): Promise<{ initialCluster: string }> {
    const deadline = Date.now() + 120_000;
    let answer: unknown;
    for (;;) {
      try {
        answer = await this.client.post('/v1/cluster/members', { name, peerURL });
        break;
      } catch (err) {
        if (!(err instanceof EtcdsnapError) || err.kind !== 'unavailable' || Date.now() > deadline) throw err;
        this.logger.info({ err: messageOf(err) }, 'the cluster cannot add a member yet; retrying');
        await new Promise((res) => setTimeout(res, 1000));
      }
    }
    let r: MemberAddResponse;
    try {
      r = decodeMemberAdd(answer);
    } catch (err) {
      if (!(err instanceof ResponseShapeError)) throw err;
      throw new EtcdsnapError('unavailable', `unexpected answer from ${this.url} when joining: ${err.message}`);
    }
    this.memberId = r.id;
    this.logger.info({ id: r.id, initialCluster: r.initialCluster }, 'added to the cluster as an etcd learner');
    return { initialCluster: r.initialCluster };
  }

  /** Asks for promotion every second until it succeeds or `signal` aborts. */
  async promote(signal: AbortSignal): Promise<void> {
    if (this.memberId === undefined) return;
    for (let attempt = 1; !signal.aborted; attempt++) {
      try {
        await this.client.post('/v1/cluster/promote', { id: this.memberId });
        this.logger.info({ id: this.memberId }, 'promoted from learner to voting member');
        await this.copyRestoreRecord();
        return;
      } catch (err) {
        if (attempt % 10 === 1) this.logger.info({ err: messageOf(err) }, 'waiting for the learner to catch up before promotion');
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  /** Keeps the cluster's restore record here too (best effort: it only words a later refusal). */
  private async copyRestoreRecord(): Promise<void> {
    try {
      const id = parseIdentity(await this.client.get(IDENTITY_PATH), this.url);
      if (id.restoredAt === null) return;
      await writeRestoreRecord(this.paths, { clusterId: id.clusterId, restoredAt: id.restoredAt, snapshot: id.snapshot ?? '(unknown)' });
    } catch (err) {
      this.logger.debug({ err: messageOf(err) }, 'could not copy the cluster restore record');
    }
  }
}
