/**
 * The restore of a snapshot file into a new etcd data dir, with etcd's own tool
 * (`etcdutl snapshot restore`, or `etcdctl snapshot restore` on 3.4). Knows files, folders
 * and the tool, not the server: it takes values (the snapshot file, the target dir, the
 * member name, its peer URL, the cluster token, a logger) and never touches anything but
 * the folders it is given. `server/reset.ts` decides where they are, locks the data dir
 * around it, and moves the result into place.
 *
 * - `openSnapshotFile`: an encoded snapshot (zip, zstd, gzip, age; recognised by its bytes)
 *   is decoded into a private temp folder of the work dir (decode.ts); a plain one is used
 *   where it is.
 * - `removeStaleExtractions`: the extraction folders a killed restore left behind.
 * - `resolveRestoreTool`: the tool, found before anything changes.
 * - `verifyAndRestore`: the sha256 trailer check and the tool's restore, in parallel; on any
 *   failure the target dir is removed and the error says nothing was changed.
 *
 * The tools run with `childEnv` (never our environment, which may hold the token or S3
 * keys).
 */
import { spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../log/logger.js';
import { EtcdsnapError, messageOf } from '../errors.js';
import { resolveBinary } from '../etcd/process.js';
import { childEnv, ETCD_TOOL_PREFIXES } from '../util/child-env.js';
import { verifySnapshotFile } from './verify.js';
import { type DecodeContext, decodeSnapshotFile } from './decode.js';

/** A snapshot file ready for the restore tool, and how to remove what it took to get it. */
export interface OpenedSnapshot {
  /** The plain snapshot file (the decoded one for an encoded source). */
  readonly file: string;
  /** Removes the decoding folder, if any (never the source). */
  remove(): Promise<void>;
  /** The decoding folder, when the source was encoded. */
  readonly dir?: string;
}

/**
 * `source` as a plain snapshot file: an encoded one (k3s's zip, zstd, gzip, age) is decoded
 * into a private temp folder `restore-XXXXXX` of `workDir` (never beside the source); the
 * caller calls `remove` when the restore ends, whatever the outcome.
 */
export async function openSnapshotFile(source: string, workDir: string, logger: Logger, ctx: DecodeContext = {}): Promise<OpenedSnapshot> {
  const decoded = await decodeSnapshotFile(source, workDir, ctx);
  if (decoded.layers.length > 0) logger.info({ file: source, layers: decoded.layers }, `Decoded etcd snapshot file (${decoded.layers.join(' + ')}): ${source}`);
  return { file: decoded.file, ...(decoded.dir !== undefined ? { dir: decoded.dir } : {}), remove: () => decoded.remove() };
}

/** Temp folders of `extractSnapshotZip` (mkdtemp's 6 characters) left by a crashed restore. */
const EXTRACTION_DIR = /^restore-[A-Za-z0-9]{6}$/;

/**
 * Removes the extraction folders a killed restore left in `workDir` (the caller holds the
 * lock that keeps another restore from using them).
 */
export async function removeStaleExtractions(workDir: string, logger: Logger): Promise<void> {
  const names = await fsp.readdir(workDir).catch(() => [] as string[]);
  for (const name of names.filter((n) => EXTRACTION_DIR.test(n))) {
    const dir = path.join(workDir, name);
    const st = await fsp.lstat(dir).catch(() => undefined);
    if (!st?.isDirectory()) continue;
    await fsp.rm(dir, { recursive: true, force: true });
    logger.warn({ dir }, `removed ${dir}, a snapshot extraction left by an earlier cluster reset`);
  }
}

/** etcd's restore tool: `etcdutl` when on PATH, else `etcdctl` (3.4); an `environment` error when neither is. */
export async function resolveRestoreTool(): Promise<string> {
  const tool = await resolveBinary('etcdutl', '--etcd-binary', '').catch(() => undefined);
  return tool ?? (await resolveBinary('etcdctl', '--etcd-binary', 'install it with `apt-get install etcd-client`'));
}

/** What `verifyAndRestore` restores, and into what. */
export interface RestoreTarget {
  /** The plain snapshot file (see `openSnapshotFile`). */
  file: string;
  /** The new data dir; must not exist yet. Removed on any failure. */
  dataDir: string;
  /** The new member's name. */
  name: string;
  /** Its peer URL (`--initial-advertise-peer-urls`). */
  peerURL: string;
  /** `--initial-cluster`: every member's `name=peerURL`; default this member's only (a cluster reset). */
  initialCluster?: string;
  /** `--initial-cluster-token`: etcd derives the member and cluster IDs from it and the peer URLs. */
  clusterToken: string;
  /** No sha256 trailer check (a `member/snap/db` copied from a data dir has no trailer); logged. */
  skipHashCheck: boolean;
  logger: Logger;
}

/**
 * Verifies the snapshot and, at the same time, has etcd's tool restore it into
 * `t.dataDir` (one read of the file each, in parallel). A failed check stops the tool.
 * On any failure `t.dataDir` is removed and the error (`integrity` for a bad file or a
 * failed tool) says nothing changed.
 */
export async function verifyAndRestore(t: RestoreTarget): Promise<void> {
  const { file, logger } = t;
  const ac = new AbortController();
  const verify = t.skipHashCheck
    ? Promise.resolve(logger.warn({ file }, 'skipping the sha256 check of the snapshot (--skip-hash-check): its integrity is not verified'))
    : verifySnapshotFile(file).catch((err: unknown) => {
        ac.abort();
        throw new EtcdsnapError(
          'integrity',
          `refusing to restore ${file}: ${messageOf(err)}; nothing was changed (use --skip-hash-check only for a member/snap/db copied from a data dir)`,
        );
      });
  const restore = restoreWithEtcdTool(t, ac.signal);
  const [v, r] = await Promise.allSettled([verify, restore]);
  if (v.status === 'rejected' || r.status === 'rejected') {
    await fsp.rm(t.dataDir, { recursive: true, force: true });
    throw v.status === 'rejected' ? v.reason : r.status === 'rejected' ? r.reason : new Error('unreachable');
  }
}

/**
 * etcd's own restore: `etcdutl snapshot restore` when present, else `etcdctl snapshot restore`
 * (3.4). Always with `--skip-hash-check`: the same sha256 trailer check runs beside it in
 * `verifyAndRestore` (OpenSSL's sha256, about 3x faster here than the tool's Go one), and
 * nothing it writes is used before that check passed. The tool still drops the trailer.
 */
async function restoreWithEtcdTool(t: RestoreTarget, signal: AbortSignal): Promise<void> {
  const { file, dataDir, name, peerURL, logger } = t;
  const bin = await resolveRestoreTool();
  const args = [
    'snapshot',
    'restore',
    file,
    `--name=${name}`,
    `--data-dir=${dataDir}`,
    `--initial-cluster=${t.initialCluster ?? `${name}=${peerURL}`}`,
    `--initial-advertise-peer-urls=${peerURL}`,
    // the member and cluster IDs are hashes of the peer URLs and this token: a new token, new IDs
    `--initial-cluster-token=${t.clusterToken}`,
    '--skip-hash-check',
  ];
  logger.debug({ tool: path.basename(bin), member: name }, `restoring ${file} with ${path.basename(bin)} snapshot restore`);
  const r = await run(bin, args, { ETCDCTL_API: '3' }, signal);
  if (r.code !== 0)
    throw new EtcdsnapError(
      'integrity',
      `${path.basename(bin)} snapshot restore failed: ${r.output.trim().split('\n').slice(-1)[0] ?? ''}; nothing was changed`,
    );
  await fsp.chmod(dataDir, 0o700);
}

/**
 * Runs an etcd tool to completion with a minimal environment (`childEnv`: never ours, which
 * may hold the token or S3 keys), plus `extra`; collects its output.
 */
function run(cmd: string, args: string[], extra: Readonly<Record<string, string>>, signal: AbortSignal): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: childEnv(process.env, ETCD_TOOL_PREFIXES, extra), stdio: ['ignore', 'pipe', 'pipe'], signal });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}
