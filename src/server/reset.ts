/**
 * `etcdsnap server --cluster-reset [--cluster-reset-restore-path=PATH]`: rebuilds this
 * node's etcd as the sole member of a new cluster, then exits (k3s's procedure).
 *
 * Without a restore path: etcd's force-new-cluster on the existing data.
 * With one, in this order: checks that change nothing (lock, etcd ports; preflight.ts) →
 * resolve the snapshot (a path, a file:// URL, or a name found in the snapshot dir or
 * downloaded from S3 and checked against its sidecar; snapshot/restore-source.ts) → prepare
 * and lock the data dir → extract a `.zip` into
 * a private temp folder `db/restore-XXXXXX` (mkdtemp 0700, see snapshot/unzip.ts; removed
 * when the reset ends, whatever the outcome, or at the next reset if a crash left it) →
 * verify the sha256 trailer while etcd's restore tool writes a new member `<node>-<8 hex>`
 * into a temp dir (in parallel; on any failure the temp dir goes and nothing else
 * changed) → move `db/etcd` to `db/etcd-old-<unix>` and the temp dir into its place →
 * start etcd on loopback only → healthy, exactly one member → the snapshot's CA (a host
 * without one takes it, or refuses: `adoptBootstrap`) → `db/last-restore.json`.
 * Every restore makes a new cluster identity: the restore tool gets a random
 * `--initial-cluster-token`, from which etcd derives new member and cluster IDs, so etcd
 * rejects the members of the cluster before the restore, and servers with their data refuse
 * to start (identity.ts). On a host that had no CA and no etcd data, a failure takes back
 * everything the run made (files and the folders it created).
 * Both end with `db/cluster-id`, `db/reset-flag`, etcd stopped, a one-line summary in the log
 * (what was restored, the revision, where the previous data went), k3s's restart message
 * (logged and printed on stdout), exit 0.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../log/logger.js';
import { EtcdsnapError, messageOf } from '../errors.js';
import { EtcdProcess, killStale, resolveBinary } from '../etcd/process.js';
import { tlsPaths } from '../etcd/tls.js';
import type { EtcdClient, EtcdStatus } from '../etcd/client.js';
import { caHash } from '../etcd/token.js';
import { exists, writeFileAtomic } from '../util/fs.js';
import { childEnv, ETCD_TOOL_PREFIXES } from '../util/child-env.js';
import { verifySnapshotFile } from '../snapshot/verify.js';
import { extractSnapshotZip, type ExtractedSnapshot } from '../snapshot/unzip.js';
import { ZIP_EXT } from '../model/naming.js';
import { resolveRestoreSource } from '../snapshot/restore-source.js';
import type { S3Options } from '../snapshot/s3-config.js';
import { bootstrap, checkToken, prepareDataDir, type Bootstrap, type TokenCheck } from './bootstrap.js';
import { openBootstrap, readBootstrap, sealedCaHash } from './bootstrap-data.js';
import { certHosts, etcdArgs, serverPaths, type ServerConfig, type ServerPaths } from './config.js';
import { ETCD_INSTALL_HINT, lockDataDir } from './lock.js';
import { preflightReset } from './preflight.js';
import { hexId, readClusterId, recordClusterId, writeRestoreRecord } from './identity.js';

export const resetMessage = (dataDir: string): string =>
  `Managed etcd cluster membership has been reset, restart without --cluster-reset flag now. Backup and delete ${dataDir}/server/db on each peer etcd server and rejoin the nodes`;

export interface ResetOptions {
  cfg: ServerConfig;
  s3?: S3Options;
  snapshotDir: string;
  snapshotDirIsDefault: boolean;
  logger: Logger;
  /** Prints the final message for the user. */
  out: (line: string) => void;
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

/**
 * etcd's own restore: `etcdutl snapshot restore` when present, else `etcdctl snapshot restore`
 * (3.4). Always with `--skip-hash-check`: the same sha256 trailer check runs beside it in
 * `verifyAndRestore` (OpenSSL's sha256, about 3x faster here than the tool's Go one), and
 * nothing it writes is used before that check passed. The tool still drops the trailer.
 */
/** etcd's restore tool: `etcdutl` when on PATH, else `etcdctl` (3.4); an `environment` error when neither is. */
async function resolveRestoreTool(): Promise<string> {
  const tool = await resolveBinary('etcdutl', '--etcd-binary', '').catch(() => undefined);
  return tool ?? (await resolveBinary('etcdctl', '--etcd-binary', 'install it with `apt-get install etcd-client`'));
}

async function restoreWithEtcdTool(file: string, dataDir: string, name: string, peerURL: string, clusterToken: string, logger: Logger, signal: AbortSignal): Promise<void> {
  const bin = await resolveRestoreTool();
  const args = [
    'snapshot',
    'restore',
    file,
    `--name=${name}`,
    `--data-dir=${dataDir}`,
    `--initial-cluster=${name}=${peerURL}`,
    `--initial-advertise-peer-urls=${peerURL}`,
    // the member and cluster IDs are hashes of the peer URLs and this token: a new token, new IDs
    `--initial-cluster-token=${clusterToken}`,
    '--skip-hash-check',
  ];
  logger.debug({ tool: path.basename(bin), member: name }, `restoring ${file} with ${path.basename(bin)} snapshot restore`);
  const r = await run(bin, args, { ETCDCTL_API: '3' }, signal);
  if (r.code !== 0) throw new EtcdsnapError('integrity', `${path.basename(bin)} snapshot restore failed: ${r.output.trim().split('\n').slice(-1)[0] ?? ''}; nothing was changed`);
  await fsp.chmod(dataDir, 0o700);
}

/**
 * Starts etcd on loopback, waits until it is healthy with exactly one member, runs `inspect`
 * on it, then stops it. Resolves with the status that showed it healthy.
 */
async function startAndCheck(o: ResetOptions, p: ServerPaths, etcdBinary: string, args: string[], inspect?: (client: EtcdClient) => Promise<void>): Promise<EtcdStatus> {
  const { cfg, logger } = o;
  await killStale(p.etcdPidFile, p.etcdDataDir, logger);
  const proc = new EtcdProcess({ binary: etcdBinary, args, dataDir: p.etcdDataDir, pidFile: p.etcdPidFile, logger });
  await proc.start();
  let client: EtcdClient | undefined;
  try {
    // the gRPC client loads late: its import overlaps the restore instead of delaying it
    const { EtcdClient } = await import('../etcd/client.js');
    client = await EtcdClient.connect({ endpoint: `https://127.0.0.1:${cfg.etcdClientPort}`, tls: tlsPaths(cfg.dataDir) });
    const deadline = Date.now() + 120_000;
    let healthy: EtcdStatus;
    for (;;) {
      try {
        const status = await client.status(2000);
        const members = await client.members();
        if (members.length !== 1) throw new EtcdsnapError('integrity', `etcd has ${members.length} members after the reset, expected 1`);
        // healthy: the single member leads (no write, so the revision stays the snapshot's)
        if (status.leader === '0' || status.leader !== status.memberId) throw new Error('no leader yet');
        logger.debug({ members: members.length, revision: status.revision }, 'etcd is healthy with exactly one member');
        healthy = status;
        break;
      } catch (err) {
        if (err instanceof EtcdsnapError && err.kind === 'integrity') throw err;
        if (Date.now() > deadline) throw new EtcdsnapError('unavailable', `etcd did not become healthy after the reset: ${messageOf(err)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    await inspect?.(client);
    return healthy;
  } finally {
    client?.close();
    await proc.stop();
  }
}

export async function runClusterReset(o: ResetOptions): Promise<void> {
  const { cfg, logger } = o;
  const p = serverPaths(cfg.dataDir);
  const restoring = cfg.restorePath !== undefined;
  const etcdBinary = await resolveBinary(cfg.etcdBinary, '--etcd-binary', ETCD_INSTALL_HINT);
  if (!restoring && (await exists(p.resetFlag))) {
    throw new EtcdsnapError(
      'usage',
      `Managed etcd cluster membership was previously reset, please remove the cluster-reset flag and start etcdsnap normally. If you need to perform another cluster reset, you must first manually delete the file at ${p.resetFlag}`,
    );
  }
  if (restoring && cfg.token === undefined && cfg.tokenFile === undefined && !(await exists(p.tokenFile))) {
    throw new EtcdsnapError('config', `${p.tokenFile} does not exist, please pass --token to complete the restoration`);
  }
  if (!restoring && !(await exists(path.join(p.etcdDataDir, 'member')))) {
    throw new EtcdsnapError('config', `there is no etcd data in ${p.etcdDataDir} to reset; to start from a snapshot add --cluster-reset-restore-path`);
  }
  const tokenCheck = await checkToken(cfg, p);
  if (tokenCheck.weakSecretWarning) logger.warn(tokenCheck.weakSecretWarning);

  // check and resolve before anything in the data dir is touched
  await preflightReset(cfg, p);
  if (restoring) await resolveRestoreTool(); // a missing tool is found before anything changes
  const source = cfg.restorePath !== undefined ? await resolveRestoreSource(cfg.restorePath, o) : undefined;
  const created = await missingDirs([cfg.dataDir, p.serverDir, p.dbDir, p.etcdDataDir]);
  await prepareDataDir(cfg, p);
  const unlock = await lockDataDir(p);
  let extracted: ExtractedSnapshot | undefined;
  let failed = true;
  try {
    await removeStaleExtractions(p, logger);
    let file = source;
    if (source?.endsWith(ZIP_EXT)) {
      // into a private temp folder under server/db (never beside the zip), removed below
      logger.info({ file: source }, `Decompressing etcd snapshot file: ${source}`);
      extracted = await extractSnapshotZip(source, p.dbDir);
      file = extracted.file;
    }
    await resetLocked(o, p, etcdBinary, tokenCheck, file);
    failed = false;
  } finally {
    await extracted?.remove().catch((err: unknown) => logger.warn({ dir: extracted?.dir, err: messageOf(err) }, `could not remove the extracted snapshot ${extracted?.dir ?? ''}`));
    await unlock();
    // a failed run leaves no folder it created, if it is empty (rmdir: anything kept stays)
    if (failed) for (const dir of created.reverse()) await fsp.rmdir(dir).catch(() => undefined);
  }
}

/** Those of `dirs` that do not exist yet. */
async function missingDirs(dirs: readonly string[]): Promise<string[]> {
  const missing: string[] = [];
  for (const d of dirs) if (!(await exists(d))) missing.push(d);
  return missing;
}

/** Temp folders of `extractSnapshotZip` (mkdtemp's 6 characters) left by a crashed reset. */
const EXTRACTION_DIR = /^restore-[A-Za-z0-9]{6}$/;

/** Removes extraction folders a killed reset left in server/db (called under the data dir lock). */
async function removeStaleExtractions(p: ServerPaths, logger: Logger): Promise<void> {
  const names = await fsp.readdir(p.dbDir).catch(() => [] as string[]);
  for (const name of names.filter((n) => EXTRACTION_DIR.test(n))) {
    const dir = path.join(p.dbDir, name);
    const st = await fsp.lstat(dir).catch(() => undefined);
    if (!st?.isDirectory()) continue;
    await fsp.rm(dir, { recursive: true, force: true });
    logger.warn({ dir }, `removed ${dir}, a snapshot extraction left by an earlier cluster reset`);
  }
}

/**
 * Verifies the snapshot and, at the same time, has etcd's tool restore it into a temp dir
 * beside the data (one read of the file each, in parallel). Nothing the server uses is
 * touched: on any failure the temp dir is removed and the error says nothing changed.
 */
async function verifyAndRestore(o: ResetOptions, file: string, name: string, peerURL: string, clusterToken: string, temp: string): Promise<void> {
  const { cfg, logger } = o;
  const ac = new AbortController();
  const verify = cfg.skipHashCheck
    ? Promise.resolve(logger.warn({ file }, 'skipping the sha256 check of the snapshot (--skip-hash-check): its integrity is not verified'))
    : verifySnapshotFile(file).catch((err: unknown) => {
        ac.abort();
        throw new EtcdsnapError('integrity', `refusing to restore ${file}: ${messageOf(err)}; nothing was changed (use --skip-hash-check only for a member/snap/db copied from a data dir)`);
      });
  const restore = restoreWithEtcdTool(file, temp, name, peerURL, clusterToken, logger, ac.signal);
  const [v, r] = await Promise.allSettled([verify, restore]);
  if (v.status === 'rejected' || r.status === 'rejected') {
    await fsp.rm(temp, { recursive: true, force: true });
    throw v.status === 'rejected' ? v.reason : r.status === 'rejected' ? r.reason : new Error('unreachable');
  }
}

async function resetLocked(o: ResetOptions, p: ServerPaths, etcdBinary: string, tokenCheck: TokenCheck, file: string | undefined): Promise<void> {
  const { cfg, logger } = o;
  const previousClusterId = await readClusterId(p);
  const hadData = await exists(path.join(p.etcdDataDir, 'member'));
  const boot = await bootstrap(cfg, p, certHosts(cfg), tokenCheck);
  const tls = boot.tls.paths;
  const tlsArgs = { ca: tls.etcdCa, serverCert: tls.etcdServerCert, serverKey: tls.etcdServerKey, peerCert: tls.etcdPeerCert, peerKey: tls.etcdPeerKey };
  const peerURL = `https://${cfg.advertiseAddress}:${cfg.etcdPeerPort}`;

  let status: EtcdStatus;
  if (file !== undefined) {
    let restored: Restored;
    try {
      restored = await restoreLocked(o, p, etcdBinary, tokenCheck, boot, file, hadData, peerURL, (name) => etcdArgs(cfg, p, tlsArgs, { name, initialCluster: `${name}=${peerURL}`, state: 'new' }, { loopbackOnly: true }));
      status = restored.status;
    } catch (err) {
      if (!tokenCheck.hadCa && !hadData) {
        // a fresh host: take back everything this run made, so a retry starts clean
        await Promise.all([p.etcdDataDir, tls.dir, p.tokenFile, p.memberNameFile, p.clusterIdFile, p.restoreRecordFile].map((f) => fsp.rm(f, { recursive: true, force: true })));
      }
      throw err;
    }
    const clusterId = hexId(status.clusterId);
    const memberId = hexId(status.memberId);
    const snapshot = path.basename(cfg.restorePath ?? file);
    await writeRestoreRecord(p, { clusterId, memberId, restoredAt: new Date().toISOString(), snapshot, ...(previousClusterId !== undefined ? { previousClusterId } : {}) });
    logger.info(
      { clusterId, memberId, ...(previousClusterId !== undefined ? { previousClusterId } : {}) },
      `the restored cluster has a new etcd identity: cluster ID ${clusterId}${previousClusterId !== undefined ? ` (was ${previousClusterId})` : ''}, member ID ${memberId}; etcd rejects the members of the cluster before the restore, and a server with their data refuses to start`,
    );
    // the summary: what was restored, at which revision, where the old data went
    const from = o.s3 ? `S3 object ${cfg.restorePath ?? ''}` : path.resolve(cfg.restorePath ?? file);
    const { revision } = status;
    const summary = `restored etcd from ${from} at revision ${revision} as member ${restored.member}; ${restored.old !== undefined ? `the previous data is in ${restored.old}` : 'there was no previous data'}`;
    logger.info({ snapshot: from, revision, member: restored.member, ...(restored.old !== undefined ? { previousData: restored.old } : {}) }, summary);
  } else {
    status = await startAndCheck(o, p, etcdBinary, etcdArgs(cfg, p, tlsArgs, { name: boot.memberName, initialCluster: `${boot.memberName}=${peerURL}`, state: 'new' }, { loopbackOnly: true, forceNewCluster: true }));
    const summary = `reset etcd to a new single-member cluster at revision ${status.revision} (member ${boot.memberName}); its data stayed in ${p.etcdDataDir}`;
    logger.info({ revision: status.revision, member: boot.memberName }, summary);
  }
  await recordClusterId(p, hexId(status.clusterId));
  await writeFileAtomic(p.resetFlag, '', 0o600);
  // the next step, in k3s's words (stdout: what scripts and the operator read)
  const message = resetMessage(cfg.dataDir);
  logger.info(message);
  o.out(message);
}

/**
 * The restore proper (under the lock, after `bootstrap`): a new member with a new cluster
 * identity (random `--initial-cluster-token`) restored and verified in a temp dir, swapped
 * in, started on loopback until healthy, and the snapshot's bootstrap data applied
 * (`adoptBootstrap`). Resolves with the status of the healthy restored member, its name, and
 * where the previous data went (when there was any).
 */
async function restoreLocked(
  o: ResetOptions,
  p: ServerPaths,
  etcdBinary: string,
  tokenCheck: TokenCheck,
  boot: Bootstrap,
  file: string,
  hadData: boolean,
  peerURL: string,
  argsFor: (name: string) => string[],
): Promise<Restored> {
  const { cfg, logger } = o;
  const now = Math.floor(Date.now() / 1000);
  const name = `${cfg.nodeName}-${randomBytes(4).toString('hex')}`;
  const clusterToken = `etcdsnap-${randomBytes(16).toString('hex')}`;
  const temp = path.join(p.dbDir, `etcd-restore-${now}`);
  await verifyAndRestore(o, file, name, peerURL, clusterToken, temp);
  // verified and restored: now the old data moves aside and the new takes its place
  const old = path.join(p.dbDir, `etcd-old-${now}`);
  if (hadData) {
    await fsp.rename(p.etcdDataDir, old);
    logger.info({ old }, `Pre-restore etcd database moved to ${old}`);
  } else {
    await fsp.rm(p.etcdDataDir, { recursive: true, force: true }); // a fresh host: nothing to keep
  }
  const failed = (err: unknown): EtcdsnapError =>
    new EtcdsnapError(
      'environment',
      hadData
        ? `restore failed: ${messageOf(err)}. The previous etcd data is in ${old}; to put it back: rm -rf ${p.etcdDataDir} && mv ${old} ${p.etcdDataDir}`
        : `restore failed: ${messageOf(err)}`,
      { cause: err },
    );
  let sealed: string | undefined;
  let status: EtcdStatus;
  try {
    await fsp.rename(temp, p.etcdDataDir);
    await writeFileAtomic(p.memberNameFile, name, 0o600);
    status = await startAndCheck(o, p, etcdBinary, argsFor(name), async (c) => {
      sealed = await readBootstrap(c);
    });
  } catch (err) {
    throw failed(err);
  }
  try {
    await adoptBootstrap(o, p, tokenCheck, boot, sealed);
  } catch (err) {
    throw hadData ? failed(err) : err;
  }
  return { status, member: name, ...(hadData ? { old } : {}) };
}

/** What `restoreLocked` did: the healthy member's status, its name, the previous data's folder. */
interface Restored {
  status: EtcdStatus;
  member: string;
  old?: string;
}

/**
 * After a restore, what the snapshot's bootstrap data (the cluster CA sealed with the token,
 * see bootstrap-data.ts) means for this node:
 * - a data dir that had a CA keeps it and its token (logged when the snapshot's differs);
 * - a fresh host takes the snapshot's CA when the token's secret opens it (and, for a full
 *   token, the CA hash matches), re-issuing its certificates and token file from it: the
 *   original token keeps working, as on k3s;
 * - otherwise (sealed with another token, unreadable, or no bootstrap data in the snapshot)
 *   a fresh host refuses, as k3s does ("... encrypted with different token"), unless
 *   `--cluster-reset-new-ca` asks for the new CA it made (with a bare secret only: a full
 *   token pins a CA that a new one cannot match). The caller takes back what the run made.
 */
async function adoptBootstrap(o: ResetOptions, p: ServerPaths, check: TokenCheck, boot: Bootstrap, sealed: string | undefined): Promise<void> {
  const { cfg, logger } = o;
  const tlsDir = boot.tls.paths.dir;
  const pinned = check.given?.caHash;
  if (check.hadCa) {
    // compared by the hash it carries in clear: no scrypt on the common restore path
    if (sealed !== undefined && sealedCaHash(sealed) !== caHash(boot.tls.caPem)) {
      logger.warn(
        { tls: tlsDir },
        "the snapshot's bootstrap data holds another cluster CA (a snapshot of another cluster?); this server keeps its own CA and token and stores them in etcd when it starts",
      );
    }
    if (cfg.clusterResetNewCa) logger.warn({ tls: tlsDir }, '--cluster-reset-new-ca has no effect here: this data dir keeps its own cluster CA and token');
    return;
  }
  const opened = sealed === undefined ? undefined : await openBootstrap(sealed, boot.secret);
  if (opened?.ok) {
    if (pinned !== undefined && caHash(opened.ca.certPem) !== pinned) {
      throw new EtcdsnapError('config', 'the token pins another cluster CA than the one in the snapshot; pass the token of the cluster the snapshot was taken from; nothing was kept');
    }
    await fsp.rm(tlsDir, { recursive: true, force: true });
    await bootstrap(cfg, p, certHosts(cfg), { ...check, existingText: undefined }, opened.ca);
    logger.info({ tls: tlsDir }, 'restored the cluster CA from the snapshot; the cluster token stays the same');
    if (cfg.clusterResetNewCa) logger.info('--cluster-reset-new-ca was not needed: the token opens the snapshot\'s cluster CA, which is kept');
    return;
  }
  const why =
    sealed === undefined
      ? 'the snapshot holds no etcdsnap bootstrap data (it was taken by etcdctl or another tool, or before etcdsnap stored it), so its cluster CA cannot be restored'
      : opened?.ok === false && opened.reason === 'malformed'
        ? "the snapshot's bootstrap data is unreadable, so its cluster CA cannot be restored"
        : 'bootstrap data already found in the snapshot and encrypted with different token';
  if (!cfg.clusterResetNewCa) {
    const ask = opened?.ok === false && opened.reason === 'wrong-secret' ? 'pass the token of the cluster the snapshot was taken from (its <data-dir>/server/token), or ' : '';
    const newCa = pinned !== undefined ? "give only the token's secret (the part after ::server:) with --cluster-reset-new-ca" : 'add --cluster-reset-new-ca';
    throw new EtcdsnapError('config', `${why}: ${ask}${newCa} to restore the data with a new cluster CA and token (the other servers then join with fresh data dirs and the new token); nothing was kept`);
  }
  if (pinned !== undefined) {
    throw new EtcdsnapError('config', `${why}, and --cluster-reset-new-ca makes a new cluster CA, which a full token (K10...) cannot pin: pass only its secret (the part after ::server:); nothing was kept`);
  }
  logger.warn({ tokenFile: p.tokenFile }, `${why}: --cluster-reset-new-ca: this host keeps the new cluster CA it made; the other servers must join with the new token in ${p.tokenFile} and fresh data dirs`);
}
