/**
 * The inspection routes of the supervisor API (issue 13, docs/api.md): the read operations
 * of `etcd-snapshot status|keys|get|stats|diff` on snapshots the server knows by name, and
 * the selective restore `restore-keys`. Every route needs the token (none is public).
 *
 * Which snapshots: a name (`assertStoreName`) in the server's snapshot folder, else in the
 * server's configured S3 (`--etcd-s3`; downloaded, verified against its record's sha256, to
 * a private temp file removed after the answer). A request never names a path (the server
 * reads no file a request names, docs/security.md). `restore-keys` may also name a folder
 * the server allows (`dir`, `--etcd-snapshot-api-dir`) and S3 settings of its own (`s3`,
 * as `POST /db/snapshot`).
 *
 * - `GET /v1/snapshots/status?name=` → InspectStatus (model/inspect.ts)
 * - `GET /v1/snapshots/keys?name=&prefix=&limit=&revision=` → NDJSON, one KeyInfo a line
 * - `GET /v1/snapshots/get?name=&key=&revision=` → KeyDetail (snapshot/inspect.ts); 404 when absent
 * - `GET /v1/snapshots/stats?name=&prefix=` → SnapshotStats (inspect/stats.ts)
 * - `GET /v1/snapshots/diff?name=&against=&prefix=` → DiffSummary from `against` to `name`;
 *   with `keys=true` NDJSON instead, one change a line (key as text)
 * - `POST /v1/snapshots/restore-keys` RestoreKeysRequest → RestoreKeysResponse
 */
import { EtcdsnapError } from '../errors.js';
import { diffEntries } from '../inspect/diff.js';
import { keyText } from '../model/inspect.js';
import { resolveApiDir } from '../snapshot/api-dirs.js';
import type { InspectSourceContext } from '../snapshot/inspect-source.js';
import { inspectStatus, keyDetail, keyInfos, snapshotDiff, snapshotStats, streamSnapshot, withSnapshot } from '../snapshot/inspect.js';
import { parseInspectQuery, parseRestoreKeysRequest } from '../snapshot/inspect-request.js';
import { restoreKeys } from '../snapshot/restore-keys.js';
import { type S3Options, withProxyEnvironment } from '../snapshot/s3-config.js';
import type { ProxyEnvironment } from '../store/s3/settings.js';
import type { HostContext } from './feature.js';

export interface InspectRoutesConfig {
  /** The snapshot folder and whether it is the default one. */
  dir: string;
  dirIsDefault: boolean;
  /** Every folder a request's `dir` may name (`dir` first). */
  apiDirs: readonly string[];
  /** The server's S3 settings, if any. */
  s3?: S3Options;
  /** Applied to a request's own S3 settings (as `POST /db/snapshot`). */
  proxyEnv?: ProxyEnvironment;
  /** The server's `--etcd-snapshot-decrypt-identity-file`: opens encrypted snapshots. */
  identityFile?: string;
}

export function addInspectRoutes(ctx: HostContext, cfg: InspectRoutesConfig): void {
  const identity = cfg.identityFile !== undefined ? { identityFile: cfg.identityFile } : {};
  const src: InspectSourceContext = {
    snapshotDir: cfg.dir,
    snapshotDirIsDefault: cfg.dirIsDefault,
    namesOnly: true,
    ...(cfg.s3 ? { s3: cfg.s3 } : {}),
    ...identity,
  };
  const opt = <T>(k: string, v: T | undefined): Record<string, T> => (v === undefined ? {} : { [k]: v });

  ctx.addRoute({
    method: 'GET',
    path: '/v1/snapshots/status',
    handle: async (req) => {
      const q = parseInspectQuery(req.query);
      return { status: 200, body: await withSnapshot(q.name, src, ({ reader }) => inspectStatus(reader, q.name)) };
    },
  });
  ctx.addRoute({
    method: 'GET',
    path: '/v1/snapshots/keys',
    handle: (req) => {
      const q = parseInspectQuery(req.query);
      const query = { ...opt('prefix', q.prefix), ...opt('limit', q.limit), ...opt('revision', q.revision) };
      return { status: 200, ndjson: streamSnapshot(q.name, src, ({ reader }) => keyInfos(reader, query)) };
    },
  });
  ctx.addRoute({
    method: 'GET',
    path: '/v1/snapshots/get',
    handle: async (req) => {
      const q = parseInspectQuery(req.query, ['key']);
      const key = q.key ?? Buffer.alloc(0);
      const found = await withSnapshot(q.name, src, ({ reader }) => keyDetail(reader, key, q.revision));
      if (found === undefined) throw new EtcdsnapError('not-found', `key ${JSON.stringify(keyText(key))} is not in snapshot ${q.name}`);
      return { status: 200, body: found };
    },
  });
  ctx.addRoute({
    method: 'GET',
    path: '/v1/snapshots/stats',
    handle: async (req) => {
      const q = parseInspectQuery(req.query);
      return { status: 200, body: await withSnapshot(q.name, src, ({ reader }) => snapshotStats(reader, q.prefix)) };
    },
  });
  ctx.addRoute({
    method: 'GET',
    path: '/v1/snapshots/diff',
    handle: async (req) => {
      const q = parseInspectQuery(req.query, ['against']);
      const against = q.against ?? '';
      const entries = { values: true, ...opt('prefix', q.prefix) };
      if (q.keys) {
        const changes = streamSnapshot(against, src, (before) =>
          streamSnapshot(q.name, src, async function* (after) {
            for await (const c of diffEntries(before.reader.entries(entries), after.reader.entries(entries), opt('prefix', q.prefix)))
              yield { ...c, key: keyText(c.key) };
          }),
        );
        return { status: 200, ndjson: changes };
      }
      const body = await withSnapshot(against, src, (before) => withSnapshot(q.name, src, (after) => snapshotDiff(before.reader, after.reader, q.prefix)));
      return { status: 200, body };
    },
  });
  ctx.addRoute({
    method: 'POST',
    path: '/v1/snapshots/restore-keys',
    handle: async (req) => {
      const r = parseRestoreKeysRequest(req.body);
      const dir = r.dir !== undefined ? await resolveApiDir(r.dir, cfg.apiDirs) : cfg.dir;
      const s3 = r.s3 ? (cfg.proxyEnv ? withProxyEnvironment(r.s3, cfg.proxyEnv) : r.s3) : cfg.s3;
      const where: InspectSourceContext = {
        snapshotDir: dir,
        snapshotDirIsDefault: dir === cfg.dir && cfg.dirIsDefault,
        namesOnly: true,
        ...(s3 ? { s3 } : {}),
        ...identity,
      };
      const body = await withSnapshot(r.name, where, ({ reader }) =>
        restoreKeys(reader, ctx.etcd, r.selection, { apply: r.apply, label: r.name, ...opt('planRevision', r.planRevision) }),
      );
      if (r.apply) ctx.logger.info({ snapshot: r.name, planRevision: body.planRevision, conflicts: body.conflicts.length }, 'restore-keys applied');
      return { status: 200, body };
    },
  });
}
