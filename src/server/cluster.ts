/**
 * Cluster membership over the supervisor API (all routes need the token):
 * - `GET /v1/cluster/bootstrap`: the cluster CA (certificate and key), so a joining server
 *   can issue its own certificates (k3s hands out its bootstrap data the same way).
 * - `POST /v1/cluster/members {name, peerURL}`: adds the caller as an etcd learner (after
 *   removing a stale member with the same name or peer URL, e.g. a server whose db was
 *   deleted) and answers the `--initial-cluster` it must start with.
 * - `POST /v1/cluster/promote {id}`: promotes the caller's learner once it caught up
 *   (409 until then).
 * - `GET /v1/cluster/identity`: `{clusterId, memberId, restoredAt, snapshot}` (identity.ts),
 *   asked by a server with etcd data before it starts, and copied by a joining server.
 * At start it records this data's etcd cluster ID in server/db/cluster-id (identity.ts).
 */
import type { ClusterBootstrapResponse, MemberAddResponse } from '../model/api.js';
import { promises as fsp } from 'node:fs';
import { EtcdsnapError, messageOf } from '../errors.js';
import type { Feature } from './feature.js';
import type { TlsPaths } from '../etcd/tls.js';
import { IDENTITY_PATH, identityOf, recordClusterId } from './identity.js';

const MEMBER_NAME = /^[a-z0-9]([-a-z0-9.]{0,80}[a-z0-9])?$/i;

function str(body: Record<string, unknown>, key: string, max = 512): string {
  const v = body[key];
  if (typeof v !== 'string' || v.length === 0 || v.length > max) throw new EtcdsnapError('usage', `invalid field "${key}"`);
  return v;
}

export function clusterFeature(tls: TlsPaths): Feature {
  return async (ctx) => {
    try {
      await recordClusterId(ctx.paths, (await identityOf(ctx.etcd, ctx.paths)).clusterId);
    } catch (err) {
      ctx.logger.warn(
        { err: messageOf(err), file: ctx.paths.clusterIdFile },
        'could not record the etcd cluster ID of this data; the next start cannot check it against the cluster',
      );
    }
    ctx.addRoute({ method: 'GET', path: IDENTITY_PATH, handle: async () => ({ status: 200, body: await identityOf(ctx.etcd, ctx.paths) }) });
    ctx.addRoute({
      method: 'GET',
      path: '/v1/cluster/bootstrap',
      handle: async () => ({
        status: 200,
        body: { caCert: await fsp.readFile(tls.caCert, 'utf8'), caKey: await fsp.readFile(tls.caKey, 'utf8') } satisfies ClusterBootstrapResponse,
      }),
    });
    ctx.addRoute({
      method: 'POST',
      path: '/v1/cluster/members',
      handle: async (req) => {
        const name = str(req.body, 'name');
        if (!MEMBER_NAME.test(name)) throw new EtcdsnapError('usage', 'invalid field "name"');
        const peerURL = str(req.body, 'peerURL');
        let u: URL;
        try {
          u = new URL(peerURL);
        } catch {
          throw new EtcdsnapError('usage', 'invalid field "peerURL"');
        }
        if (u.protocol !== 'https:') throw new EtcdsnapError('usage', 'invalid field "peerURL": must be https');
        const before = await ctx.etcd.members();
        for (const m of before) {
          if (m.name === name || m.peerURLs.includes(peerURL)) {
            ctx.logger.warn({ member: m.name, id: m.id, peerURL }, 'removing the stale etcd member of a server that joins again');
            await ctx.etcd.removeMember(m.id);
          }
        }
        const added = await ctx.etcd.addMember(peerURL, true);
        ctx.logger.info({ member: name, id: added.id, peerURL }, 'added etcd learner');
        const initialCluster = added.members
          .map((m) => (m.id === added.id ? `${name}=${peerURL}` : m.name ? `${m.name}=${m.peerURLs[0] ?? ''}` : undefined))
          .filter((x): x is string => x !== undefined)
          .join(',');
        return { status: 200, body: { id: added.id, initialCluster } satisfies MemberAddResponse };
      },
    });
    ctx.addRoute({
      method: 'POST',
      path: '/v1/cluster/promote',
      handle: async (req) => {
        const id = str(req.body, 'id', 32);
        if (!/^\d+$/.test(id)) throw new EtcdsnapError('usage', 'invalid field "id"');
        try {
          await ctx.etcd.promoteMember(id);
        } catch (err) {
          throw new EtcdsnapError('conflict', `learner ${id} cannot be promoted yet: ${messageOf(err)}`);
        }
        ctx.logger.info({ id }, 'promoted etcd learner to voting member');
        return { status: 200, body: { promoted: id } };
      },
    });
  };
}
