/**
 * `etcd-snapshot restore`: one member's data dir of a new etcd cluster from a snapshot, as
 * `etcdutl snapshot restore` makes it, for clusters etcdsnap does not run (docs/agent.md).
 *
 * - `parseMemberPlan` (pure): checks the member flags together: `--initial-cluster` is
 *   `name=url,...` with http(s) URLs and unique names, `--name` is one of them, and
 *   `--initial-advertise-peer-urls` are exactly its URLs there (etcd refuses to start
 *   otherwise). Every refusal is a `usage` error that says what to give.
 * - `restoreMember`: refuses before anything is written when the data dir exists and is not
 *   an empty folder, when its parent folder does not exist, or when no restore tool is
 *   installed; then opens the snapshot (inspect-source.ts: a path, a name in `--dir` or with
 *   S3 in the bucket folder, checked against its record's sha256; zip, zstd, gzip and age
 *   decoded into a private temp folder beside the data dir), verifies it and restores it
 *   (restore.ts `verifyAndRestore`: the sha256 trailer check beside etcd's tool) into a
 *   private temp folder beside the data dir, and only then renames that into place (0700).
 *   On any failure the temp folders are removed and the data dir is as it was (absent, or
 *   the empty folder it was): nothing is left behind; a signal handler can remove them with
 *   `removeRestoreTempSync`. The new cluster's identity comes from
 *   `--initial-cluster-token` and the peer URLs, as etcd derives it.
 */
import { promises as fsp, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { Logger } from '../log/logger.js';
import { EtcdsnapError, errnoCode, messageOf } from '../errors.js';
import { type InspectSourceContext, openInspectSource, removeTempFoldersSync } from './inspect-source.js';
import { resolveRestoreTool, verifyAndRestore } from './restore.js';

export interface MemberPlan {
  dataDir: string;
  name: string;
  /** Members in `--initial-cluster` order. */
  members: Array<{ name: string; peerURLs: string[] }>;
  initialCluster: string;
  peerURLs: string[];
  clusterToken: string;
}

const usage = (msg: string): EtcdsnapError => new EtcdsnapError('usage', msg);

function peerURL(raw: string, flag: string): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw usage(`${flag}: "${raw}" is not a URL; give http(s)://<host>:<peer port>`);
  }
  if ((u.protocol !== 'https:' && u.protocol !== 'http:') || u.hostname === '' || u.port === '') {
    throw usage(`${flag}: "${raw}" is not an http(s)://<host>:<port> peer URL`);
  }
  return raw;
}

/** The member flags, checked together (see the module's rules). */
export function parseMemberPlan(
  f: { dataDir?: string; name?: string; initialCluster?: string; peerURLs?: string; clusterToken?: string },
  now = new Date(),
): MemberPlan {
  const missing = [
    f.dataDir ? '' : '--data-dir',
    f.name ? '' : '--name',
    f.initialCluster ? '' : '--initial-cluster',
    f.peerURLs ? '' : '--initial-advertise-peer-urls',
  ].filter((m) => m !== '');
  if (missing.length > 0 || !f.dataDir || !f.name || !f.initialCluster || !f.peerURLs) {
    throw usage(`restore needs ${missing.join(', ')}: the new member's etcd data dir, name, the whole new cluster (name=peer-url,...) and its peer URL`);
  }
  const byName = new Map<string, string[]>();
  for (const item of f.initialCluster.split(',').map((x) => x.trim())) {
    const eq = item.indexOf('=');
    const name = item.slice(0, eq);
    if (eq <= 0 || item.length === eq + 1) throw usage(`--initial-cluster: "${item}" is not name=peer-url`);
    byName.set(name, [...(byName.get(name) ?? []), peerURL(item.slice(eq + 1), '--initial-cluster')]);
  }
  const own = byName.get(f.name);
  if (!own) throw usage(`--name ${f.name} is not in --initial-cluster (${[...byName.keys()].join(', ')}); give this member's name as it appears there`);
  const peerURLs = f.peerURLs.split(',').map((u) => peerURL(u.trim(), '--initial-advertise-peer-urls'));
  if ([...peerURLs].sort().join(',') !== [...own].sort().join(',')) {
    throw usage(`--initial-advertise-peer-urls ${peerURLs.join(',')} differ from ${f.name}'s URLs in --initial-cluster (${own.join(',')}); give the same`);
  }
  return {
    dataDir: path.resolve(f.dataDir),
    name: f.name,
    members: [...byName.entries()].map(([name, urls]) => ({ name, peerURLs: urls })),
    initialCluster: f.initialCluster,
    peerURLs,
    clusterToken: f.clusterToken ?? `etcdsnap-restore-${Math.floor(now.getTime() / 1000)}`,
  };
}

/** Refuses a data dir that exists and is not an empty folder, or whose parent is missing; read-only. Resolves whether it exists (empty). */
async function checkTarget(dir: string): Promise<boolean> {
  const parent = path.dirname(dir);
  const pst = await fsp.stat(parent).catch(() => undefined);
  if (!pst?.isDirectory()) throw new EtcdsnapError('usage', `the parent folder ${parent} of --data-dir does not exist; create it first (nothing was written)`);
  const st = await fsp.lstat(dir).catch((err: unknown) => (errnoCode(err) === 'ENOENT' ? undefined : Promise.reject(err)));
  if (st === undefined) return false;
  if (!st.isDirectory()) throw new EtcdsnapError('usage', `--data-dir ${dir} exists and is not a folder; give a new folder (nothing was written)`);
  if ((await fsp.readdir(dir)).length > 0) {
    throw new EtcdsnapError(
      'usage',
      `--data-dir ${dir} is not empty; restore never writes into an existing data dir: give a new folder, or move this one away first (nothing was written)`,
    );
  }
  return true;
}

/** The restore's temp data dir while it exists (for `removeRestoreTempSync`). */
let liveTemp: string | undefined;

/**
 * Removes, synchronously, what a running restore made (its temp data dir, the snapshot's
 * decoding folder): for a signal handler that ends the process. The target is never touched.
 */
export function removeRestoreTempSync(): void {
  if (liveTemp !== undefined) rmSync(liveTemp, { recursive: true, force: true });
  liveTemp = undefined;
  removeTempFoldersSync();
}

export interface MemberRestoreResult {
  /** What the snapshot argument resolved to (a path, or where the name was found). */
  source: string;
}

/** Restores `raw` into `plan.dataDir` (see the module's contract). */
export async function restoreMember(
  raw: string,
  plan: MemberPlan,
  src: Omit<InspectSourceContext, 'tempParent'>,
  logger: Logger,
): Promise<MemberRestoreResult> {
  const existedEmpty = await checkTarget(plan.dataDir);
  await resolveRestoreTool();
  const parent = path.dirname(plan.dataDir);
  const opened = await openInspectSource(raw, { ...src, tempParent: parent });
  const temp = path.join(parent, `.${path.basename(plan.dataDir)}.restore-${randomBytes(4).toString('hex')}`);
  liveTemp = temp;
  try {
    await verifyAndRestore({
      file: opened.file,
      dataDir: temp,
      name: plan.name,
      peerURL: plan.peerURLs.join(','),
      initialCluster: plan.initialCluster,
      clusterToken: plan.clusterToken,
      skipHashCheck: false,
      logger,
    });
    // checked again: something may have appeared in the folder while the restore ran
    if (existedEmpty !== (await checkTarget(plan.dataDir)))
      throw new EtcdsnapError('conflict', `--data-dir ${plan.dataDir} appeared while restoring; nothing was written`);
    await fsp.chmod(temp, 0o700);
    if (existedEmpty) await fsp.rmdir(plan.dataDir);
    await fsp.rename(temp, plan.dataDir);
  } catch (err) {
    await fsp.rm(temp, { recursive: true, force: true });
    if (err instanceof EtcdsnapError) throw err;
    throw new EtcdsnapError('environment', `cannot restore into ${plan.dataDir}: ${messageOf(err)}; nothing was written`, { cause: err });
  } finally {
    liveTemp = undefined;
    await opened.close();
  }
  return { source: opened.label };
}
