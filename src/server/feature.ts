/**
 * The contract between the hosts (the server, `server.ts`; the agent, `agent.ts`) and the
 * features started on them (`cluster.ts`, `bootstrap-data.ts`, `snapshots.ts`). Types only: a
 * feature imports this file, not its host, so no feature and host import each other.
 * `HostContext` is what both hosts offer (the snapshot feature needs no more); `ServerContext`
 * adds what only a server that supervises its etcd member has.
 */
import type { Logger } from '../log/logger.js';
import type { EtcdClient } from '../etcd/client.js';
import type { SnapshotSource } from '../etcd/members.js';
import type { SupervisorApi, Route } from './api.js';
import type { ServerConfig, ServerPaths } from './config.js';

/** Something that must finish (within `timeoutMs`) before etcd is stopped. */
export type DrainHook = (timeoutMs: number) => Promise<void>;

/**
 * The configuration a host gives its features: the server's, or the agent's with the
 * server-only fields at neutral values (agent-config.ts).
 */
export type HostConfig = Pick<ServerConfig, 'nodeName' | 'metricsListenAddress' | 'etcdArgs' | 'changelog' | 'snapshots'>;

/** What a running host (server or agent) offers to the features built on it. */
export interface HostContext {
  cfg: HostConfig;
  /** The data dir's layout (the agent keeps the server's: token, TLS, db/snapshots). */
  paths: ServerPaths;
  logger: Logger;
  /**
   * Client of one etcd member for everything but snapshot streams: the server's own member;
   * for the agent, the first of `--endpoints` that answered at start.
   */
  etcd: EtcdClient;
  /** Where saves stream snapshots from (etcd/members.ts); the server's own member when absent. */
  snapshotSource?: SnapshotSource;
  api: SupervisorApi;
  addRoute(route: Route): void;
  onDrain(hook: DrainHook): void;
}

/** What a running server offers to the features built on it (snapshots, S3, cluster). */
export interface ServerContext extends HostContext {
  cfg: ServerConfig;
  /** Client of this node's own etcd member. */
  etcd: EtcdClient;
}

/** A feature started once etcd is ready; it may register routes and drain hooks. */
export interface Feature {
  (ctx: ServerContext): Promise<void> | void;
  /**
   * Read-only checks run before the start changes anything (e.g. a configured folder
   * exists); a throw refuses the start and leaves the data dir as it was.
   */
  preflight?: () => Promise<void>;
}

/** A feature any host can run (the server and the agent): it needs only a `HostContext`. */
export interface HostFeature {
  (ctx: HostContext): Promise<void> | void;
  preflight?: () => Promise<void>;
}
