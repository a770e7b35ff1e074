/**
 * The option specs of `etcdsnap etcd-snapshot restore` (docs/agent.md, "Restore"): etcdutl's
 * `snapshot restore` member flags, read from the command line only (`RESTORE_MEMBER_OPTIONS`:
 * a `data-dir` or `name` in a shared config file or the environment means the server's data
 * dir and the snapshot name, never the member's), and the flags that find and open the
 * snapshot (`RESTORE_SOURCE_OPTIONS`: resolved as usual). Part of the option schema
 * (schema.ts re-exports both; its contract applies).
 */
import { checkNodeName } from './checks.js';
import type { OptionSpec } from './spec.js';
import { CLI_S3_OPTIONS, COMMON_OPTIONS, ENCRYPTION_OPTIONS } from './options-common.js';

export const RESTORE_MEMBER_OPTIONS: readonly OptionSpec[] = [
  {
    key: 'data-dir',
    type: 'string',
    description: "the etcd member's data dir to create (etcd's --data-dir, NOT etcdsnap's data dir); must be absent or empty, its parent must exist",
    valueName: 'dir',
  },
  { key: 'name', type: 'string', description: "this member's etcd name (etcd's --name)", valueName: 'member', check: checkNodeName },
  {
    key: 'initial-cluster',
    type: 'string',
    description: "every member of the new cluster as name=peer-url, comma-separated (etcd's --initial-cluster)",
    valueName: 'name=url,...',
  },
  {
    key: 'initial-advertise-peer-urls',
    type: 'string',
    description: "this member's peer URL(s), as in --initial-cluster (etcd's --initial-advertise-peer-urls)",
    valueName: 'urls',
  },
  {
    key: 'initial-cluster-token',
    type: 'string',
    description: 'token of the new cluster; etcd derives the new cluster ID from it, so give every member the same',
    defaultText: 'etcdsnap-restore-<unix time>, printed with the procedure for the other members',
    valueName: 'token',
  },
];

export const RESTORE_SOURCE_OPTIONS: readonly OptionSpec[] = [
  ...COMMON_OPTIONS.filter((s) => s.key === 'config' || s.key === 'debug' || s.key === 'quiet'),
  { key: 'dir', aliases: ['etcd-snapshot-dir'], type: 'string', description: 'folder where a bare snapshot name is looked up first', valueName: 'dir' },
  ...ENCRYPTION_OPTIONS.filter((s) => s.key === 'etcd-snapshot-decrypt-identity-file'),
  // the S3 flags find the snapshot; retention means nothing here
  ...CLI_S3_OPTIONS.filter((s) => s.key !== 's3-retention').map((s) =>
    s.key === 's3' ? { ...s, description: 'look a bare snapshot name up in S3 too (after --dir), downloaded and checked against its record' } : s,
  ),
];
