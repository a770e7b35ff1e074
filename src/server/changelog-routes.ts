/**
 * Visibility of the change log (docs/point-in-time-restore.md, "Visibility"): the token
 * routes `GET /v1/changelog` (segments and each chain's range) and `GET /v1/changelog/status`
 * (on or off, the writer, the last sealed revision, etcd's revision, the lag), the ranges
 * added to the snapshot list's answer, and the change log's metrics (docs/metrics.md).
 * Everything is read from the folder (changelog/state.ts) and etcd (its status, the
 * writer's election key and the cluster's seal record, changelog/progress.ts); the writer
 * is not asked, so the routes answer the same with the log off (old segments are shown).
 * The lag is measured from the cluster's record when etcd has one (the last seal of any
 * server), not counting the record's own put, else from the local folder.
 */
import type { EtcdClient } from '../etcd/client.js';
import { electionHolder } from '../etcd/election.js';
import { readSealedRecord, WRITER_KEY } from '../changelog/progress.js';
import { Gauge } from 'prom-client';
import { changelogDir } from '../changelog/segments.js';
import { chainRanges, chainRuns, lagOf, rangeOf, readSegments, summarize, type SnapshotPoint } from '../changelog/state.js';
import type { ChainRange } from '../model/api.js';
import { CHANGELOG_PATH, CHANGELOG_STATUS_PATH, type ChangelogListResponse, type ChangelogStatusResponse } from '../model/changelog-api.js';
import { LocalStore } from '../store/local.js';
import type { HostContext } from './feature.js';
import type { ServerMetrics } from './metrics.js';

export interface ChangelogViewOptions {
  etcd: EtcdClient;
  dbDir: string;
  enabled: boolean;
  periodMs: number;
  /** The server's snapshot folder and node name: the kept snapshots a range starts from. */
  snapshotDir: string;
  nodeName: string;
}

/** The successful local snapshots with a revision, as the ranges need them. */
async function keptSnapshots(o: ChangelogViewOptions): Promise<SnapshotPoint[]> {
  const records = await new LocalStore(o.snapshotDir).list({ nodeName: o.nodeName }).catch(() => []);
  return records.flatMap((r) =>
    r.status === 'successful' && r.revision !== undefined && Number.isSafeInteger(Number(r.revision))
      ? [{ name: r.name, revision: Number(r.revision), createdAt: r.createdAt }]
      : [],
  );
}

/** Each chain's restorable range (for the snapshot list's answer). */
export async function restorableRanges(o: ChangelogViewOptions): Promise<ChainRange[]> {
  return chainRanges(changelogDir(o.dbDir), await keptSnapshots(o));
}

export async function changelogList(o: ChangelogViewOptions): Promise<ChangelogListResponse> {
  const dir = changelogDir(o.dbDir);
  const segments = await readSegments(dir);
  const kept = await keptSnapshots(o);
  const lastTime = new Map(segments.map((s) => [s.name, s.lastTime !== undefined ? Date.parse(s.lastTime) : Number.NaN]));
  const sealed = segments.flatMap((s) => (s.sealed && s.last !== undefined ? [{ name: s.name, chain: s.chain, first: s.first, last: s.last }] : []));
  const chains = chainRuns(sealed).flatMap((run) => {
    const t = lastTime.get(run.newest.name) ?? Number.NaN;
    return Number.isFinite(t) ? [rangeOf(run, t, kept)] : [];
  });
  return { dir, segments, chains };
}

/** etcd's revision now, or undefined when it does not answer within `timeoutMs`. */
async function etcdRevision(etcd: EtcdClient, timeoutMs: number): Promise<number | undefined> {
  try {
    const n = Number((await etcd.status(timeoutMs)).revision);
    return Number.isSafeInteger(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

export async function changelogStatus(o: ChangelogViewOptions, timeoutMs = 2000): Promise<ChangelogStatusResponse> {
  const dir = changelogDir(o.dbDir);
  const [sum, rev, holder, record] = await Promise.all([
    summarize(dir),
    etcdRevision(o.etcd, timeoutMs),
    o.enabled ? electionHolder(o.etcd, WRITER_KEY).catch(() => undefined) : undefined,
    o.enabled
      ? readSealedRecord(o.etcd).then(
          (r) => r.record,
          () => undefined,
        )
      : undefined,
  ]);
  const out: ChangelogStatusResponse = {
    enabled: o.enabled,
    ...(o.enabled ? { periodMs: o.periodMs, writer: { node: holder?.value ?? '', elected: holder !== undefined && holder.lease !== '0' } } : {}),
    dir,
    segments: sum.segments,
    chains: sum.chains,
    open: sum.open,
  };
  if (sum.lastSealed) {
    const { sealedAtMs: _, ...last } = sum.lastSealed;
    out.lastSealed = last;
  }
  if (rev !== undefined) out.etcdRevision = rev;
  if (o.enabled && rev !== undefined && record && record.last >= (sum.lastSealed?.revision ?? 0) && record.last <= rev)
    out.lag = lagOf(Math.max(record.last, rev - 1), { revision: record.last, sealedAtMs: record.sealedAt }, Date.now());
  else if (o.enabled && rev !== undefined && sum.lastSealed) out.lag = lagOf(rev, sum.lastSealed, Date.now());
  return out;
}

export function addChangelogRoutes(ctx: HostContext, o: ChangelogViewOptions): void {
  ctx.addRoute({ method: 'GET', path: CHANGELOG_PATH, handle: async () => ({ status: 200, body: await changelogList(o) }) });
  ctx.addRoute({ method: 'GET', path: CHANGELOG_STATUS_PATH, handle: async () => ({ status: 200, body: await changelogStatus(o) }) });
}

/**
 * The change log's gauges (with the log on), read before each scrape: the last sealed
 * revision and its seal time, the lag behind etcd in seconds and revisions, the sealed
 * segments. Before the first seal the sealed gauges are 0 and the lag runs from the chain's
 * beginning (etcd's record); before any chain began it is 0.
 */
export function addChangelogMetrics(metrics: ServerMetrics, o: ChangelogViewOptions): void {
  const registers = [metrics.registry];
  const g = (name: string, help: string): Gauge => new Gauge({ name, help, registers });
  const revision = g('etcdsnap_changelog_last_sealed_revision', 'The last etcd revision in a sealed change log segment.');
  const sealedAt = g(
    'etcdsnap_changelog_last_sealed_timestamp_seconds',
    'Time (unix seconds) of the last seal: every revision seen before it is in a sealed change log segment.',
  );
  const lagSeconds = g('etcdsnap_changelog_lag_seconds', 'Seconds since the last seal when etcd has revisions after it (0 when every revision is sealed).');
  const lagRevisions = g('etcdsnap_changelog_lag_revisions', "etcd revisions after the change log's last sealed one.");
  const segments = g('etcdsnap_changelog_segments', 'Sealed change log segments in the local change log folder.');
  metrics.addScrapeHook(async () => {
    const s = await changelogStatus(o, 1000);
    segments.set(s.segments);
    revision.set(s.lastSealed?.revision ?? 0);
    sealedAt.set(s.lastSealed ? Date.parse(s.lastSealed.sealedAt) / 1000 : 0);
    lagSeconds.set(s.lag?.seconds ?? 0);
    lagRevisions.set(s.lag?.revisions ?? 0);
  });
}
