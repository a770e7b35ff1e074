/**
 * Where a save streams its snapshot from: a `SnapshotSource` answers the members to try, in
 * order, each with the status it answered just now. The save (snapshot/service.ts) streams
 * from the first and, when a stream fails (the member went down, hung, or sent a bad
 * stream), starts over from the next one.
 *
 * - `singleMember`: the server's own etcd member, and nothing else (its status errors are
 *   the save's).
 * - `ClusterSource`: the agent's members (`--endpoints`), chosen by this rule (docs/agent.md):
 *   every endpoint is asked for its status at once (2 s each); those that do not answer and
 *   learners are left out; followers come first, then the leader, so that the leader, which
 *   carries the cluster's writes, sends a snapshot only when no follower can; within each
 *   group the `--endpoints` order holds. A follower's snapshot is as consistent as the
 *   leader's: it is its applied state at one revision, which the record keeps. When no
 *   member answers, the save fails as `unavailable`, naming each endpoint's error.
 */
import { EtcdsnapError, messageOf } from '../errors.js';
import type { EtcdClient, EtcdStatus } from './client.js';

/** One member a snapshot can be streamed from (an `EtcdClient` is one). */
export type SnapshotMember = Pick<EtcdClient, 'endpoint' | 'status' | 'snapshotStream'>;

/** A member to try, with the status it answered when the candidates were chosen. */
export interface SnapshotCandidate {
  member: SnapshotMember;
  status: EtcdStatus;
}

export interface SnapshotSource {
  /** The members to stream from, best first; throws `unavailable` when none answers. */
  candidates(): Promise<SnapshotCandidate[]>;
}

/** The server's source: its own member only. */
export function singleMember(member: SnapshotMember): SnapshotSource {
  return { candidates: async () => [{ member, status: await member.status() }] };
}

/** How long `ClusterSource` waits for each member's status. */
const STATUS_TIMEOUT_MS = 2000;

/** The agent's source: the members of `--endpoints`, followers first (see the module's rule). */
export class ClusterSource implements SnapshotSource {
  constructor(private readonly members: readonly SnapshotMember[]) {}

  async candidates(): Promise<SnapshotCandidate[]> {
    const answers = await Promise.all(
      this.members.map(async (member) => {
        try {
          return { member, status: await member.status(STATUS_TIMEOUT_MS) };
        } catch (err) {
          return { member, error: messageOf(err) };
        }
      }),
    );
    const up = answers.flatMap((a) => ('status' in a && a.status !== undefined ? [{ member: a.member, status: a.status }] : []));
    if (up.length === 0) {
      const why = answers.map((a) => `${a.member.endpoint}: ${'error' in a ? a.error : 'no answer'}`).join('; ');
      throw new EtcdsnapError('unavailable', `no etcd member of --endpoints answers (${why}); check that etcd runs and the endpoints and TLS files are right`);
    }
    return orderCandidates(up);
  }
}

/**
 * The choice rule on answered statuses, pure: learners out, followers first, then the
 * leader, each group in the given order.
 */
export function orderCandidates(answered: readonly SnapshotCandidate[]): SnapshotCandidate[] {
  const voters = answered.filter((c) => !c.status.isLearner);
  const isLeader = (c: SnapshotCandidate): boolean => c.status.leader === c.status.memberId;
  return [...voters.filter((c) => !isLeader(c)), ...voters.filter(isLeader)];
}
