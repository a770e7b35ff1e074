/**
 * The contract between the server (`server.ts`) and the features started on it (`cluster.ts`,
 * `bootstrap-data.ts`, `snapshots.ts`). Types only: a feature imports this file, not
 * `server.ts`, so no feature and the server import each other.
 */
import type { Logger } from '../log/logger.js';
import type { EtcdClient } from '../etcd/client.js';
import type { SupervisorApi, Route } from './api.js';
import type { ServerConfig, ServerPaths } from './config.js';

/** Something that must finish (within `timeoutMs`) before etcd is stopped. */
export type DrainHook = (timeoutMs: number) => Promise<void>;

/** What a running server offers to the features built on it (snapshots, S3, cluster). */
export interface ServerContext {
  cfg: ServerConfig;
  paths: ServerPaths;
  logger: Logger;
  /** Client of this node's own etcd member. */
  etcd: EtcdClient;
  api: SupervisorApi;
  addRoute(route: Route): void;
  onDrain(hook: DrainHook): void;
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
