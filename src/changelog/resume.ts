/**
 * Where a writer resumes (docs/point-in-time-restore.md, "The writer" and "One writer per
 * cluster"): from etcd's record of the last committed seal (progress.ts) when there is one,
 * else from the newest segment of the local folder (a log written before the election).
 *
 * Contract: `resumePoint` answers the chain and the next revision to log, or why none can be
 * resumed: the record (or segment) belongs to another etcd cluster (its cluster ID, as after
 * a restore), ends after etcd's revision, or its next revision was compacted, or the newest
 * local segment cannot be read. It reads, never writes. `isCompacted` asks etcd whether a
 * revision can still be read.
 */
import { EtcdsnapError, messageOf } from '../errors.js';
import type { EtcdClient } from '../etcd/client.js';
import type { SealCommit } from './progress.js';
import { listSegments, readSegment } from './segments.js';

export interface ResumePoint {
  chain: string;
  cluster: string;
  /** When the chain began (ms). */
  since: number;
  next: number;
  lastTime: number;
  /** The node whose commit it resumes (from etcd's record). */
  from?: string;
}

/** Whether etcd compacted `revision` (a read at it is refused). */
export async function isCompacted(etcd: Pick<EtcdClient, 'rangePage'>, revision: number): Promise<boolean> {
  try {
    await etcd.rangePage(Buffer.from([0]), undefined, revision, 1);
    return false;
  } catch (err) {
    return err instanceof EtcdsnapError && err.kind === 'conflict';
  }
}

type Etcd = Pick<EtcdClient, 'status' | 'rangePage'>;

async function check(etcd: Etcd, what: string, cluster: string, last: number): Promise<string | undefined> {
  const status = await etcd.status();
  if (cluster !== status.clusterId) return `${what} belongs to etcd cluster ${cluster}, not to this one (${status.clusterId})`;
  if (last > Number(status.revision)) return `${what} ends at revision ${last}, after etcd's ${status.revision}`;
  if (await isCompacted(etcd, last + 1)) return `revision ${last + 1} was compacted while no change log was written`;
  return undefined;
}

export async function resumePoint(etcd: Etcd, dir: string, commit: SealCommit | undefined): Promise<ResumePoint | { why: string }> {
  const r = await commit?.read();
  if (r) {
    const why = await check(etcd, "the last sealed segment (etcd's record)", r.cluster, r.last);
    if (why !== undefined) return { why };
    return { chain: r.chain, cluster: r.cluster, since: r.since, next: r.last + 1, lastTime: r.lastTime, from: r.node };
  }
  const names = await listSegments(dir);
  const newest = names.reduce<(typeof names)[number] | undefined>((a, s) => (!a || s.last > a.last ? s : a), undefined);
  if (!newest) return { why: 'no earlier segment' };
  let seg: Awaited<ReturnType<typeof readSegment>>;
  try {
    seg = await readSegment(dir, newest.name);
  } catch (err) {
    return { why: `cannot resume from ${newest.name}: ${messageOf(err)}` };
  }
  const why = await check(etcd, `the last segment ${newest.name}`, seg.header.cluster, seg.footer.last);
  if (why !== undefined) return { why };
  const firstOfChain = names.find((s) => s.chain === seg.header.chain);
  const since =
    firstOfChain && firstOfChain.name !== newest.name ? (await readSegment(dir, firstOfChain.name).catch(() => seg)).footer.firstTime : seg.footer.firstTime;
  return { chain: seg.header.chain, cluster: seg.header.cluster, since, next: seg.footer.last + 1, lastTime: seg.footer.lastTime };
}
