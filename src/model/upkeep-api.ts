/**
 * The upkeep routes on the wire (docs/upkeep.md), shared by the server and agent
 * (server/upkeep.ts) and the CLI (`etcd-snapshot defrag|compact|alarm`, cli/upkeep-command.ts).
 * All take the token. Pure; the decoders check every field the CLI prints.
 *
 * - `POST /v1/upkeep/defrag`: `DefragResponse`, every member in the order taken.
 * - `POST /v1/upkeep/compact`: `CompactResponse`.
 * - `GET /v1/upkeep/alarms`: `AlarmsResponse` (the raised alarms and the quota view).
 * - `POST /v1/upkeep/alarms/disarm`: `AlarmsResponse` (`alarms`: those disarmed).
 */
import { array, bool, type Decoder, num, optional, shaped, str } from './api.js';

export const DEFRAG_PATH = '/v1/upkeep/defrag';
export const COMPACT_PATH = '/v1/upkeep/compact';
export const ALARMS_PATH = '/v1/upkeep/alarms';
export const DISARM_PATH = '/v1/upkeep/alarms/disarm';

/** One member's defragmentation (IDs in hex; sizes in bytes, from its own status). */
export interface DefragMemberResult {
  id: string;
  name: string;
  endpoint: string;
  /** Whether it was the leader when it was taken (the last one). */
  leader: boolean;
  before?: number;
  after?: number;
  seconds?: number;
  /** Why it was not defragmented. */
  error?: string;
}

export interface DefragResponse {
  /** The node that ran it. */
  node: string;
  members: DefragMemberResult[];
}

export interface CompactResponse {
  /** The revision compacted to (etcd's current one). */
  revision: number;
  /** True when etcd had already compacted it (nothing done). */
  already: boolean;
}

export interface AlarmEntry {
  /** Hex member ID, as etcdctl prints it, and its name when known. */
  memberId: string;
  member?: string;
  alarm: string;
}

export interface AlarmsResponse {
  alarms: AlarmEntry[];
  /** The database size of the host's member and the quota (bytes), when etcd answered. */
  dbSize?: number;
  dbSizeInUse?: number;
  quota: number;
}

const memberResult: Decoder<DefragMemberResult> = shaped<DefragMemberResult>({
  id: str,
  name: str,
  endpoint: str,
  leader: bool,
  before: optional(num),
  after: optional(num),
  seconds: optional(num),
  error: optional(str),
});

export const decodeDefrag = (v: unknown): DefragResponse => shaped<DefragResponse>({ node: str, members: array(memberResult) })(v, 'the answer');
export const decodeCompact = (v: unknown): CompactResponse => shaped<CompactResponse>({ revision: num, already: bool })(v, 'the answer');
const alarm: Decoder<AlarmEntry> = shaped<AlarmEntry>({ memberId: str, member: optional(str), alarm: str });
export const decodeAlarms = (v: unknown): AlarmsResponse =>
  shaped<AlarmsResponse>({ alarms: array(alarm), dbSize: optional(num), dbSizeInUse: optional(num), quota: num })(v, 'the answer');
