/**
 * The option specs of `etcdsnap server` (with the change log's). Part of the option schema
 * (schema.ts re-exports `SERVER_OPTIONS`; its contract applies).
 */
import {
  checkAbsoluteDirs,
  checkEtcdArg,
  checkHostPort,
  checkIP,
  checkJoinURL,
  checkPrefix,
  checkRetentionPolicy,
  checkRetryDelays,
  checkWebhookURL,
  parseWarningRatio,
  RETENTION,
} from './checks.js';
import type { OptionSpec } from './spec.js';
import { formatDuration, within } from './values.js';
import { COMMON_OPTIONS, COMPRESSION, ENCRYPTION_OPTIONS, SERVER_S3_OPTIONS, SUPERVISOR_PORT } from './options-common.js';

/** The change log and restore to a point (issue 16, docs/point-in-time-restore.md). */
const CHANGELOG_OPTIONS: readonly OptionSpec[] = [
  {
    key: 'etcd-changelog',
    env: 'ETCDSNAP_ETCD_CHANGELOG',
    type: 'boolean',
    description: 'log every etcd change after each snapshot into <data-dir>/server/db/changelog, for --cluster-reset-restore-to',
    default: false,
  },
  {
    key: 'etcd-changelog-period',
    type: 'duration',
    description: 'seal a change log segment this often (writes newer than the last sealed segment are not restorable yet)',
    default: 10_000,
    defaultText: '10s',
    valueName: 'duration',
    check: within(100, 3_600_000, formatDuration),
  },
  {
    key: 'cluster-reset-restore-to',
    type: 'string',
    description:
      'with --cluster-reset: restore to this etcd revision, RFC 3339 time or "latest", replaying the change log onto the snapshot (--cluster-reset-restore-path, else the newest snapshot before it, local or with --etcd-s3 in S3)',
    valueName: 'revision|time|latest',
  },
];

/** etcd upkeep: defragmentation and the quota watch (issue 18, docs/upkeep.md). */
export const UPKEEP_OPTIONS: readonly OptionSpec[] = [
  {
    key: 'etcd-defrag-schedule',
    env: 'ETCDSNAP_ETCD_DEFRAG_SCHEDULE',
    type: 'string',
    description:
      'defragment every etcd member on this cron schedule (as --etcd-snapshot-schedule-cron), one at a time, followers first, the leader last; empty: never',
    default: '',
    valueName: 'spec',
  },
  {
    key: 'etcd-quota-warning-ratio',
    env: 'ETCDSNAP_ETCD_QUOTA_WARNING_RATIO',
    type: 'string',
    description: "warn once when etcd's database size reaches this share of its quota (quota-backend-bytes); 0: never",
    default: '0.8',
    valueName: 'ratio',
    check: (v) => {
      parseWarningRatio(String(v));
    },
  },
];

export const SERVER_OPTIONS: readonly OptionSpec[] = [
  ...COMMON_OPTIONS,
  {
    key: 'token',
    short: 't',
    env: 'ETCDSNAP_TOKEN',
    type: 'string',
    secret: true,
    description: 'shared secret used to join servers and call the API (generated when not given)',
    valueName: 'token',
  },
  {
    key: 'token-file',
    env: 'ETCDSNAP_TOKEN_FILE',
    type: 'string',
    description: 'file holding the token',
    valueName: 'file',
  },
  {
    key: 'bind-address',
    env: 'ETCDSNAP_BIND_ADDRESS',
    type: 'string',
    description: 'address the supervisor API and etcd listen on',
    default: '127.0.0.1',
    valueName: 'ip',
    check: checkIP,
  },
  {
    key: 'advertise-address',
    env: 'ETCDSNAP_ADVERTISE_ADDRESS',
    type: 'string',
    description: 'address other servers use to reach this one',
    default: '127.0.0.1',
    valueName: 'ip',
    check: checkIP,
  },
  SUPERVISOR_PORT,
  {
    key: 'metrics-listen-address',
    env: 'ETCDSNAP_METRICS_LISTEN_ADDRESS',
    type: 'string',
    description:
      'also serve Prometheus metrics (GET /metrics only) over plain HTTP WITHOUT authentication on this host:port, e.g. 127.0.0.1:9346 (default: off; the supervisor port serves /metrics with the token)',
    valueName: 'host:port',
    check: checkHostPort,
  },
  { key: 'etcd-client-port', type: 'port', description: 'etcd client port', default: 2379, valueName: 'port' },
  { key: 'etcd-peer-port', type: 'port', description: 'etcd peer port', default: 2380, valueName: 'port' },
  {
    key: 'etcd-binary',
    env: 'ETCDSNAP_ETCD_BINARY',
    type: 'string',
    description: 'etcd executable',
    default: 'etcd',
    valueName: 'path',
  },
  {
    key: 'etcd-arg',
    type: 'list',
    description: 'extra etcd argument as key=value (repeatable), e.g. --etcd-arg quota-backend-bytes=8589934592',
    valueName: 'key=value',
    check: checkEtcdArg,
  },
  {
    key: 'etcd-log-level',
    env: 'ETCDSNAP_ETCD_LOG_LEVEL',
    type: 'string',
    choices: ['debug', 'info', 'warn', 'error'],
    description: "level of etcd's own log lines (etcd's --log-level); its panics and fatal errors always show",
    defaultText: 'warn, or info with --debug',
    valueName: 'level',
  },
  {
    key: 'etcd-disable-snapshots',
    type: 'boolean',
    description: 'disable scheduled snapshots',
    default: false,
  },
  {
    key: 'etcd-snapshot-schedule-cron',
    type: 'string',
    description: 'snapshot schedule in cron syntax (system time; @every <duration>, @daily... and a CRON_TZ=<zone> prefix work)',
    default: '0 */12 * * *',
    valueName: 'spec',
  },
  {
    key: 'etcd-snapshot-retention',
    type: 'count',
    description: 'number of scheduled snapshots to keep (0 disables pruning)',
    default: 5,
    valueName: 'n',
    check: RETENTION,
  },
  {
    key: 'etcd-snapshot-retention-policy',
    env: 'ETCDSNAP_ETCD_SNAPSHOT_RETENTION_POLICY',
    type: 'string',
    description:
      'time-bucket retention of scheduled snapshots, locally and in S3 (e.g. last=3,daily=7,weekly=4,monthly=12; rules last, hourly, daily, weekly, monthly, yearly; buckets in the local time zone, TZ); replaces --etcd-snapshot-retention and --etcd-s3-retention (docs/retention.md)',
    valueName: 'policy',
    check: checkRetentionPolicy,
  },
  {
    key: 'etcd-snapshot-dir',
    type: 'string',
    description: 'folder for snapshots',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: help text names the data-dir option as k3s does
    defaultText: '${data-dir}/server/db/snapshots',
    valueName: 'dir',
  },
  {
    key: 'etcd-snapshot-api-dir',
    env: 'ETCDSNAP_ETCD_SNAPSHOT_API_DIR',
    type: 'list',
    description:
      'another folder that API requests (etcd-snapshot --dir) may save snapshots to, list and delete from; absolute path, that folder only (repeatable or comma-separated; --etcd-snapshot-dir is always allowed, no other)',
    valueName: 'dir',
    check: checkAbsoluteDirs,
  },
  {
    key: 'etcd-snapshot-name',
    type: 'string',
    description: 'name prefix of scheduled snapshots',
    default: 'etcd-snapshot',
    valueName: 'name',
    check: checkPrefix,
  },
  {
    key: 'etcd-snapshot-compress',
    type: 'boolean',
    description: 'compress snapshots (zip)',
    default: false,
  },
  COMPRESSION,
  ...ENCRYPTION_OPTIONS,
  {
    key: 'etcd-snapshot-drill-schedule',
    env: 'ETCDSNAP_ETCD_SNAPSHOT_DRILL_SCHEDULE',
    type: 'string',
    description:
      'restore drill schedule in cron syntax (as --etcd-snapshot-schedule-cron): restore the newest snapshot into a throwaway etcd and check it (docs/drills.md); empty: no scheduled drills',
    default: '',
    defaultText: 'off',
    valueName: 'spec',
  },
  {
    key: 'etcd-snapshot-drill-timeout',
    type: 'duration',
    description: 'longest time one restore drill may take; a drill that runs longer fails and is cleaned up',
    default: 600_000,
    defaultText: '10m',
    valueName: 'duration',
  },
  {
    key: 'etcd-snapshot-notify-webhook',
    env: 'ETCDSNAP_SNAPSHOT_NOTIFY_WEBHOOK',
    type: 'string',
    secret: true,
    description:
      'POST a JSON event (Slack-compatible "text") to this http(s) URL when a snapshot save fails, an S3 upload still fails after its retries, when each recovers, and with the result of each restore drill (docs/notifications.md)',
    valueName: 'url',
    check: checkWebhookURL,
  },
  ...UPKEEP_OPTIONS,
  {
    key: 'cluster-init',
    env: 'ETCDSNAP_CLUSTER_INIT',
    type: 'boolean',
    description: 'initialize a new cluster with this server as its first member',
    default: false,
  },
  {
    key: 'server',
    env: 'ETCDSNAP_URL',
    type: 'string',
    description: 'join the cluster of this server (https://<host>:<supervisor-port>); needs --token',
    valueName: 'url',
    check: checkJoinURL,
  },
  {
    key: 'cluster-reset',
    env: 'ETCDSNAP_CLUSTER_RESET',
    type: 'boolean',
    description: 'forget all peers and become the sole member of a new cluster, then exit',
    default: false,
  },
  {
    key: 'cluster-reset-restore-path',
    type: 'string',
    description: 'snapshot to restore with --cluster-reset (a file, or with --etcd-s3 an object name)',
    valueName: 'path',
  },
  {
    key: 'cluster-reset-new-ca',
    type: 'boolean',
    description:
      "with --cluster-reset-restore-path on a host without a cluster CA: when the token cannot open the snapshot's CA (another token, or a snapshot without etcdsnap bootstrap data), restore with a new CA and token instead of refusing",
    default: false,
  },
  {
    key: 'skip-hash-check',
    type: 'boolean',
    description: 'restore a snapshot without its sha256 trailer (a member/snap/db copied from a data dir); skips the integrity check',
    default: false,
  },
  ...SERVER_S3_OPTIONS,
  {
    key: 'etcd-s3-upload-retry-delays',
    type: 'string',
    description: 'delays before each retry of a failed S3 upload, comma-separated durations (each 1s to 1h, at most 20); 0 for no retry',
    default: '5s,15s,45s,2m,5m',
    valueName: 'durations',
    check: checkRetryDelays,
  },
  ...CHANGELOG_OPTIONS,
];
