/**
 * A restore drill (docs/drills.md): one stored snapshot, local or in S3, restored into a
 * private temp folder and served by a throwaway etcd (drill-etcd.ts: unix sockets only),
 * then checked. Knows files, stores and processes, not HTTP; server/drills.ts runs it.
 *
 * Steps, each named in a failure's message:
 *   space     the drills folder (0700) has room (drill-plan.ts `drillDiskNeed`), else failed
 *   sha256    a local snapshot's bytes against its record's sha256 (an S3 copy is checked by
 *             the download, transfer.ts)
 *   open      inspect-source.ts: the name in the snapshot folder or S3 (downloaded verified),
 *             decoded (zip, zstd, gzip, age with the identity file) into the drill's folder
 *   inspect   the file's own revision, live key count and a sample of keys with their values
 *             (the inspect/ reader, no etcd)
 *   restore   restore.ts `verifyAndRestore`: the sha256 trailer check and etcd's restore tool
 *   start     the throwaway etcd on the restored member; healthy (`endpoint health`)
 *   check     its revision and key count equal the file's; each sampled key reads back equal
 *
 * Bounds: the whole drill has `timeoutMs`; at the deadline the etcd is stopped, the step
 * running fails ("timed out after ... during <step>"), and the folder is removed. The drill's
 * folder is `<workDir>/drill-XXXXXX` (mkdtemp, 0700), always removed at the end, also on
 * failure; `sweepDrills` removes what a killed process left (and kills a survivor etcd).
 * Nothing outside that folder is written: never the live data dir, ports or snapshot folder.
 */
import { createHash } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Logger } from '../log/logger.js';
import { EtcdsnapError, messageOf } from '../errors.js';
import { killStale } from '../etcd/process.js';
import { openSnapshotReader } from '../inspect/mvcc.js';
import type { DrillResult, SnapshotRecord } from '../model/records.js';
import { LocalStore } from '../store/local.js';
import { openStore } from '../store/factory.js';
import { assertStoreName } from '../store/store.js';
import { ensurePrivateDir } from '../util/fs.js';
import { type DrillFrom, drillDiskNeed, newestDrillable, sampleIndexes, servedRevision } from './drill-plan.js';
import { ctl, DRILL_MEMBER, DRILL_PEER_URL, DRILL_PID_FILE, DrillEtcd } from './drill-etcd.js';
import { openInspectSource } from './inspect-source.js';
import { verifyAndRestore } from './restore.js';
import type { S3Options } from './s3-config.js';

/** What a drill needs to know about the host. */
export interface DrillContext {
  snapshotDir: string;
  snapshotDirIsDefault: boolean;
  s3?: S3Options;
  identityFile?: string;
  /** The drills folder (`<data-dir>/server/db/drills`), made 0700 when missing. */
  workDir: string;
  etcdBinary: string;
  timeoutMs: number;
  nodeName: string;
  logger: Logger;
}

/** One drill's outcome: which snapshot, from where, and the result written to its record. */
export interface DrillOutcome {
  snapshot: string;
  store: 'local' | 's3';
  result: DrillResult;
}

const DRILL_DIR = /^drill-[A-Za-z0-9]{6}$/;

/**
 * Removes every drill folder a killed process left in `workDir`, after killing its etcd when
 * one still runs (pidfile checked against /proc/<pid>/cmdline). Resolves with the folders removed.
 */
export async function sweepDrills(workDir: string, logger: Logger): Promise<string[]> {
  const names = await fsp.readdir(workDir).catch(() => [] as string[]);
  const out: string[] = [];
  for (const name of names.filter((n) => DRILL_DIR.test(n))) {
    const dir = path.join(workDir, name);
    await killStale(path.join(dir, DRILL_PID_FILE), path.join(dir, 'member'), logger);
    await fsp.rm(dir, { recursive: true, force: true });
    logger.warn({ dir }, `removed ${dir}, left by a restore drill that did not finish`);
    out.push(dir);
  }
  return out;
}

/** The snapshot a drill takes: `name` where `from` allows (local first), or the newest. */
async function pick(name: string | undefined, from: DrillFrom, ctx: DrillContext): Promise<{ record: SnapshotRecord; store: 'local' | 's3' }> {
  const local = new LocalStore(ctx.snapshotDir);
  const localRecords = from === 's3' ? [] : await local.list({ nodeName: ctx.nodeName }).catch(() => [] as SnapshotRecord[]);
  let s3Records: SnapshotRecord[] = [];
  if (from !== 'local' && ctx.s3) {
    const store = await openStore({ kind: 's3', settings: ctx.s3.settings });
    try {
      s3Records = await store.list({ nodeName: ctx.nodeName, withRecords: true });
    } finally {
      store.close();
    }
  }
  const named = (rs: SnapshotRecord[]): SnapshotRecord[] => (name === undefined ? rs : rs.filter((r) => r.name === name));
  const found = newestDrillable(named(localRecords), named(s3Records), from);
  if (found) return found;
  const where = from === 'auto' ? `the snapshot folder${ctx.s3 ? ' or S3' : ''}` : from === 'local' ? 'the snapshot folder' : 'S3';
  if (from === 's3' && !ctx.s3) throw new EtcdsnapError('config', 'a drill from S3 needs the server to have S3 settings (--etcd-s3)');
  throw new EtcdsnapError('not-found', name === undefined ? `no snapshot to drill in ${where}` : `snapshot ${JSON.stringify(name)} not found in ${where}`);
}

async function sha256Of(file: string): Promise<string> {
  const h = createHash('sha256');
  await pipeline(createReadStream(file), h);
  return h.digest('hex');
}

/** A key as etcdctl takes it on its command line: printable UTF-8 without NUL; else undefined. */
function argKey(key: Buffer): string | undefined {
  const s = key.toString('utf8');
  return Buffer.from(s, 'utf8').equals(key) && !s.includes('\0') && s !== '' ? s : undefined;
}

/**
 * Drills `name` (or the newest snapshot) from `from`. Never throws for a bad snapshot: the
 * failure is the result (`status: 'failed'` and what failed). Throws only when there is
 * nothing to drill (`not-found`, `config`, a bad name: `usage`).
 */
export async function runDrill(name: string | undefined, from: DrillFrom, ctx: DrillContext, stop?: AbortSignal): Promise<DrillOutcome> {
  if (name !== undefined) assertStoreName(name);
  const { record, store } = await pick(name, from, ctx);
  const started = new Date();
  const t0 = performance.now();
  const at = started.toISOString().replace(/\.\d{3}Z$/, 'Z');
  const log = ctx.logger.child({ drill: record.name, store });
  log.info(`restore drill of ${record.name} (${store}) started`);
  let step = 'space';
  const ac = new AbortController();
  let etcd: DrillEtcd | undefined;
  let stopped = false;
  const abort = (): void => {
    ac.abort();
    void etcd?.stop();
  };
  const timer = setTimeout(abort, ctx.timeoutMs);
  const onStop = (): void => {
    stopped = true;
    abort();
  };
  stop?.addEventListener('abort', onStop, { once: true });
  const checks = async (): Promise<{ revision: string; keys: number }> => {
    await ensurePrivateDir(ctx.workDir);
    const st = await fsp.statfs(ctx.workDir);
    const free = st.bavail * st.bsize;
    const need = drillDiskNeed(record.size, record.dbSize, record.compressed || record.encryption !== undefined, store === 's3');
    if (free < need) throw new EtcdsnapError('environment', `not enough free disk in ${ctx.workDir}: ${free} bytes free, the drill needs about ${need}`);
    const dir = await fsp.mkdtemp(path.join(ctx.workDir, 'drill-'));
    try {
      if (store === 'local' && record.sha256 !== undefined && record.sha256 !== '') {
        step = 'sha256';
        const file = new LocalStore(ctx.snapshotDir).filePath(record.name);
        if ((await sha256Of(file)) !== record.sha256)
          throw new EtcdsnapError('integrity', `${file} does not match the sha256 in its record (changed after it was saved)`);
      }
      step = 'open';
      const source = await openInspectSource(record.name, {
        // from S3 only: a folder that does not exist, so the local copy is not taken
        snapshotDir: store === 's3' ? path.join(dir, 'no-local') : ctx.snapshotDir,
        snapshotDirIsDefault: ctx.snapshotDirIsDefault,
        ...(store === 's3' && ctx.s3 ? { s3: ctx.s3 } : {}),
        ...(ctx.identityFile !== undefined ? { identityFile: ctx.identityFile } : {}),
        tempParent: dir,
        namesOnly: true,
      });
      try {
        step = 'inspect';
        const reader = await openSnapshotReader(source.file);
        const expect: { key: Buffer; value: Buffer }[] = [];
        let status: Awaited<ReturnType<typeof reader.status>>;
        try {
          status = await reader.status();
          const pick = new Set(sampleIndexes(status.liveKeys));
          let i = 0;
          for await (const kv of reader.entries({ values: true })) {
            if (pick.has(i)) expect.push({ key: Buffer.from(kv.key), value: Buffer.from(kv.value) });
            i++;
          }
        } finally {
          await reader.close();
        }
        step = 'restore';
        await verifyAndRestore({
          file: source.file,
          dataDir: path.join(dir, 'member'),
          name: DRILL_MEMBER,
          peerURL: DRILL_PEER_URL,
          clusterToken: 'etcdsnap-drill',
          skipHashCheck: false,
          logger: log,
        });
        await source.close(); // the decoded copy is not needed any more: free its space
        if (ac.signal.aborted) throw new Error('aborted');
        step = 'start';
        etcd = await DrillEtcd.start(dir, ctx.etcdBinary);
        await waitHealthy(dir, etcd, ac.signal);
        step = 'check';
        const count = JSON.parse(await ctl(dir, ['get', '', '--from-key', '--keys-only', '--limit=1', '-w', 'json'], ac.signal)) as {
          header?: { revision?: number | string };
          count?: number;
        };
        const revision = String(count.header?.revision ?? '');
        const keys = Number(count.count ?? 0);
        const want = String(servedRevision(status.revision));
        if (revision !== want) throw new EtcdsnapError('integrity', `the restored member serves revision ${revision}, the snapshot holds ${want}`);
        if (keys !== status.liveKeys) throw new EtcdsnapError('integrity', `the restored member serves ${keys} keys, the snapshot holds ${status.liveKeys}`);
        for (const e of expect) {
          const k = argKey(e.key);
          if (k === undefined) continue;
          const got = JSON.parse(await ctl(dir, ['get', '-w', 'json', '--', k], ac.signal)) as { kvs?: { value?: string }[] };
          const v = got.kvs?.[0]?.value;
          if (v === undefined || !Buffer.from(v, 'base64').equals(e.value))
            throw new EtcdsnapError('integrity', `key ${JSON.stringify(k)} does not read back as the snapshot holds it`);
        }
        return { revision, keys };
      } finally {
        await etcd?.stop();
        await source.close();
      }
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  };
  let result: DrillResult;
  try {
    const r = await checks();
    result = { status: 'passed', at, durationMs: Math.round(performance.now() - t0), source: store, revision: r.revision, keys: r.keys };
    log.info({ revision: r.revision, keys: r.keys, durationMs: result.durationMs }, `restore drill of ${record.name} passed`);
  } catch (err) {
    const why = stopped
      ? `stopped during ${step}: the host is shutting down`
      : ac.signal.aborted
        ? `timed out after ${ctx.timeoutMs / 1000}s during ${step}`
        : `${step}: ${messageOf(err)}`;
    result = { status: 'failed', at, durationMs: Math.round(performance.now() - t0), source: store, message: why };
    log.error({ durationMs: result.durationMs }, `restore drill of ${record.name} failed: ${why}`);
  } finally {
    clearTimeout(timer);
    stop?.removeEventListener('abort', onStop);
  }
  await saveResult(record, store, result, ctx).catch((err: unknown) =>
    log.warn({ err: messageOf(err) }, `cannot write the drill result to the record of ${record.name}`),
  );
  return { snapshot: record.name, store, result };
}

/** Waits until the drill's etcd answers `endpoint health` (or it exited, or the drill is aborted). */
async function waitHealthy(dir: string, etcd: DrillEtcd, signal: AbortSignal): Promise<void> {
  let last = '';
  while (!signal.aborted) {
    if (etcd.exited) throw new EtcdsnapError('integrity', `etcd exited: ${etcd.lastOutput()}`);
    try {
      await ctl(dir, ['endpoint', 'health'], signal);
      return;
    } catch (err) {
      last = messageOf(err);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new EtcdsnapError('unavailable', `etcd did not become healthy: ${last}`);
}

/** Writes `result` into the record of the drilled copy (the local sidecar, or the S3 one). */
async function saveResult(record: SnapshotRecord, store: 'local' | 's3', result: DrillResult, ctx: DrillContext): Promise<void> {
  if (store === 'local') {
    const dir = new LocalStore(ctx.snapshotDir);
    const current = (await dir.readRecord(record.name)) ?? record;
    await dir.writeRecord({ ...current, drill: result });
    return;
  }
  if (!ctx.s3) return;
  const s3 = await openStore({ kind: 's3', settings: ctx.s3.settings });
  try {
    const current = (await s3.readRecord(record.name).catch(() => undefined)) ?? record;
    await s3.writeRecord({ ...current, drill: result });
  } finally {
    s3.close();
  }
}
