/**
 * `etcdsnap server --cluster-reset [--cluster-reset-restore-path=PATH]`: rebuilds this
 * node's etcd as the sole member of a new cluster, then exits (k3s's procedure).
 *
 * Without a restore path: etcd's force-new-cluster on the existing data.
 * With one, in this order: checks that change nothing (lock, etcd ports; preflight.ts) →
 * resolve the snapshot (a path, a file:// URL, or a name found in the snapshot dir or
 * downloaded from S3 and checked against its sidecar; snapshot/restore-source.ts) → prepare
 * and lock the data dir → decode an encoded snapshot (zip, zstd, gzip, age; by its bytes,
 * with `--etcd-snapshot-decrypt-identity-file` for age) into a private temp folder
 * `db/restore-XXXXXX` (mkdtemp 0700, see snapshot/decode.ts; removed when the reset ends,
 * whatever the outcome, or at the next reset if a crash left it) →
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
 *
 * This module is the orchestration. The jobs it calls: snapshot/restore.ts (decode, verify,
 * etcd's restore tool into a temp dir; knows nothing of the server), reset-start.ts (start
 * etcd on loopback until healthy, then stop it), reset-ca.ts (the snapshot's CA: adopt,
 * keep ours, or refuse).
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../log/logger.js';
import { EtcdsnapError, messageOf } from '../errors.js';
import { resolveBinary } from '../etcd/process.js';
import type { EtcdStatus } from '../etcd/client.js';
import { exists } from '../util/fs.js';
import { renameDurably, writeFileAtomic } from '../util/durable.js';
import { openSnapshotFile, removeStaleExtractions, resolveRestoreTool, verifyAndRestore, type OpenedSnapshot } from '../snapshot/restore.js';
import { resolveRestoreSource } from '../snapshot/restore-source.js';
import type { S3Options } from '../snapshot/s3-config.js';
import type { DecodeContext } from '../snapshot/decode.js';
import { LocalStore } from '../store/local.js';
import { bootstrap, checkToken, prepareDataDir, type Bootstrap, type TokenCheck } from './bootstrap.js';
import { readBootstrap } from './bootstrap-data.js';
import { certHosts, etcdArgs, serverPaths, type ServerConfig, type ServerPaths } from './config.js';
import { ETCD_INSTALL_HINT, lockDataDir } from './lock.js';
import { preflightReset } from './preflight.js';
import { hexId, readClusterId, recordClusterId, writeRestoreRecord } from './identity.js';
import { startAndCheck, type ResetStart } from './reset-start.js';
import { adoptBootstrap } from './reset-ca.js';
import type { ProgressReporter } from '../util/progress.js';
import { parseRestoreTo, describeTarget, type RestoreTo } from '../changelog/plan.js';
import { moveChangelogAside, openSegmentSource, REPLAY_ETCD_ARGS, recordTimeOf, replayFailed, replayOnto, snapshotFor } from './reset-to.js';

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
  /** Shows the bytes of an S3 download and of decoding the snapshot (default: nothing). */
  progress?: ProgressReporter;
}

export async function runClusterReset(o0: ResetOptions): Promise<void> {
  // --cluster-reset-restore-to: checked first; without a restore path, the newest local snapshot before it
  const target = o0.cfg.restoreTo !== undefined ? parseRestoreTo(o0.cfg.restoreTo) : undefined;
  let snapshotTime: number | undefined;
  let o = o0;
  if (target !== undefined) {
    if (o0.cfg.restorePath === undefined) {
      const chosen = await snapshotFor(o0.cfg, target, o0.s3);
      snapshotTime = chosen.createdAt;
      o = { ...o0, cfg: { ...o0.cfg, restorePath: chosen.file } };
      o0.logger.info({ snapshot: chosen.file, target: describeTarget(target) }, `restoring to ${describeTarget(target)} from the snapshot ${chosen.file}`);
    } else {
      snapshotTime = await recordTimeOf(o0.cfg, o0.cfg.restorePath);
    }
  }
  const pit = target !== undefined ? { target, ...(snapshotTime !== undefined ? { snapshotTime } : {}) } : undefined;
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
  let opened: OpenedSnapshot | undefined;
  let failed = true;
  try {
    await removeStaleExtractions(p.dbDir, logger);
    // a zip goes into a private temp folder under server/db (never beside the zip), removed below
    if (source !== undefined)
      opened = await openSnapshotFile(source, p.dbDir, logger, { ...(await decodeContext(cfg, source)), ...(o.progress ? { progress: o.progress } : {}) });
    await resetLocked(o, p, etcdBinary, tokenCheck, opened?.file, source, pit);
    failed = false;
  } finally {
    await opened
      ?.remove()
      .catch((err: unknown) => logger.warn({ dir: opened?.dir, err: messageOf(err) }, `could not remove the extracted snapshot ${opened?.dir ?? ''}`));
    await unlock();
    // a failed run leaves no folder it created, if it is empty (rmdir: anything kept stays)
    if (failed) for (const dir of created.reverse()) await fsp.rmdir(dir).catch(() => undefined);
  }
}

/**
 * What decoding `source` needs: the identity file, and the recipients its record says it was
 * made for (only for a snapshot in the snapshot dir, whose record we keep).
 */
async function decodeContext(cfg: ServerConfig, source: string): Promise<DecodeContext> {
  const ctx: DecodeContext = cfg.snapshots.identityFile !== undefined ? { identityFile: cfg.snapshots.identityFile } : {};
  if (path.dirname(source) !== path.resolve(cfg.snapshots.dir)) return ctx;
  // a record from a newer etcdsnap refuses the restore (upgrade this node); any other problem only loses the hint
  const record = await new LocalStore(cfg.snapshots.dir).readRecord(path.basename(source)).catch((err: unknown) => {
    if (err instanceof EtcdsnapError && err.kind === 'environment') throw err;
    return undefined;
  });
  return record?.encryption ? { ...ctx, madeFor: record.encryption.recipients } : ctx;
}

/** What `startAndCheck` needs to start this server's etcd with `args`. */
const startOf = (o: ResetOptions, p: ServerPaths, etcdBinary: string, args: string[]): ResetStart => ({
  etcdBinary,
  args,
  dataDir: o.cfg.dataDir,
  clientPort: o.cfg.etcdClientPort,
  paths: p,
  logger: o.logger,
});

/** Those of `dirs` that do not exist yet. */
async function missingDirs(dirs: readonly string[]): Promise<string[]> {
  const missing: string[] = [];
  for (const d of dirs) if (!(await exists(d))) missing.push(d);
  return missing;
}

/** `file`: the plain snapshot to restore (decoded when `source` was encoded); `source`: the resolved snapshot the user named. */
async function resetLocked(
  o: ResetOptions,
  p: ServerPaths,
  etcdBinary: string,
  tokenCheck: TokenCheck,
  file: string | undefined,
  source: string | undefined,
  pit: PointInTime | undefined,
): Promise<void> {
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
      restored = await restoreLocked(o, p, etcdBinary, tokenCheck, boot, file, hadData, peerURL, pit, (name, q = p) =>
        etcdArgs(cfg, q, tlsArgs, { name, initialCluster: `${name}=${peerURL}`, state: 'new' }, { loopbackOnly: true }),
      );
      status = restored.status;
    } catch (err) {
      if (!tokenCheck.hadCa && !hadData) {
        // a fresh host: take back everything this run made, so a retry starts clean
        await Promise.all(
          [p.etcdDataDir, tls.dir, p.tokenFile, p.memberNameFile, p.clusterIdFile, p.restoreRecordFile].map((f) => fsp.rm(f, { recursive: true, force: true })),
        );
      }
      throw err;
    }
    const clusterId = hexId(status.clusterId);
    const memberId = hexId(status.memberId);
    const snapshot = path.basename(cfg.restorePath ?? file);
    await writeRestoreRecord(p, {
      clusterId,
      memberId,
      restoredAt: new Date().toISOString(),
      snapshot,
      ...(previousClusterId !== undefined ? { previousClusterId } : {}),
    });
    logger.info(
      { clusterId, memberId, ...(previousClusterId !== undefined ? { previousClusterId } : {}) },
      `the restored cluster has a new etcd identity: cluster ID ${clusterId}${previousClusterId !== undefined ? ` (was ${previousClusterId})` : ''}, member ID ${memberId}; etcd rejects the members of the cluster before the restore, and a server with their data refuses to start`,
    );
    // the summary: what was restored, at which revision, where the old data went
    // the file as resolved (in the snapshot dir, downloaded from S3, or the path given), never the decoded temp file
    const from = source ?? file;
    const { revision } = status;
    const summary = `restored etcd from ${from} at revision ${revision} as member ${restored.member}; ${restored.old !== undefined ? `the previous data is in ${restored.old}` : 'there was no previous data'}`;
    logger.info({ snapshot: from, revision, member: restored.member, ...(restored.old !== undefined ? { previousData: restored.old } : {}) }, summary);
  } else {
    status = await startAndCheck(
      startOf(
        o,
        p,
        etcdBinary,
        etcdArgs(
          cfg,
          p,
          tlsArgs,
          { name: boot.memberName, initialCluster: `${boot.memberName}=${peerURL}`, state: 'new' },
          { loopbackOnly: true, forceNewCluster: true },
        ),
      ),
    );
    const summary = `reset etcd to a new single-member cluster at revision ${status.revision} (member ${boot.memberName}); its data stayed in ${p.etcdDataDir}`;
    logger.info({ revision: status.revision, member: boot.memberName }, summary);
  }
  await recordClusterId(p, hexId(status.clusterId));
  await writeResetFlag(p);
  // the next step, in k3s's words (stdout: what scripts and the operator read)
  const message = resetMessage(cfg.dataDir);
  logger.info(message);
  o.out(message);
}

/** Writes `db/reset-flag`, durably: the last file a cluster reset writes. */
export async function writeResetFlag(p: ServerPaths): Promise<void> {
  await writeFileAtomic(p.resetFlag, '', 0o600);
}

/**
 * Moves the previous etcd data to `old` (durably), or removes it when `old` is undefined (a
 * fresh host: nothing to keep).
 */
export async function moveAsidePreviousData(p: ServerPaths, old: string | undefined): Promise<void> {
  if (old !== undefined) await renameDurably(p.etcdDataDir, old);
  else await fsp.rm(p.etcdDataDir, { recursive: true, force: true });
}

/**
 * Moves the restored member's folder `temp` into `db/etcd` and records its member name, both
 * durably. The folder's contents are written by etcd's restore tool; the move is ours.
 */
export async function installRestoredMember(p: ServerPaths, temp: string, name: string): Promise<void> {
  await renameDurably(temp, p.etcdDataDir);
  await writeFileAtomic(p.memberNameFile, name, 0o600);
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
  pit: PointInTime | undefined,
  argsFor: (name: string, paths?: ServerPaths) => string[],
): Promise<Restored> {
  const { cfg, logger } = o;
  const now = Math.floor(Date.now() / 1000);
  const name = `${cfg.nodeName}-${randomBytes(4).toString('hex')}`;
  const clusterToken = `etcdsnap-${randomBytes(16).toString('hex')}`;
  const temp = path.join(p.dbDir, `etcd-restore-${now}`);
  await verifyAndRestore({ file, dataDir: temp, name, peerURL, clusterToken, skipHashCheck: cfg.skipHashCheck, logger });
  if (pit !== undefined) {
    // to a point: the change log replayed onto the temp dir, before anything in the data dir moves
    const tp: ServerPaths = { ...p, etcdDataDir: temp };
    try {
      const source = await openSegmentSource(p.dbDir, o.s3, cfg.snapshots.identityFile);
      try {
        await startAndCheck(startOf(o, tp, etcdBinary, [...argsFor(name, tp), ...REPLAY_ETCD_ARGS]), async (c) => {
          await replayOnto(c, source, pit.target, pit.snapshotTime, logger);
        });
      } finally {
        await source.close();
      }
    } catch (err) {
      await fsp.rm(temp, { recursive: true, force: true });
      throw replayFailed(err);
    }
  }
  // verified and restored: now the old data moves aside and the new takes its place
  const old = path.join(p.dbDir, `etcd-old-${now}`);
  await moveAsidePreviousData(p, hadData ? old : undefined);
  if (hadData) logger.info({ old }, `Pre-restore etcd database moved to ${old}`);
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
    await installRestoredMember(p, temp, name);
    status = await startAndCheck(startOf(o, p, etcdBinary, argsFor(name)), async (c) => {
      sealed = await readBootstrap(c);
    });
  } catch (err) {
    throw failed(err);
  }
  try {
    await adoptBootstrap(cfg, p, logger, tokenCheck, boot, sealed);
    // the restored cluster writes a new history from its revision: the old log is kept aside
    await moveChangelogAside(p, now, logger);
  } catch (err) {
    throw hadData ? failed(err) : err;
  }
  return { status, member: name, ...(hadData ? { old } : {}) };
}

/** `--cluster-reset-restore-to`: the target, and the restored snapshot's record time (ms) when known. */
interface PointInTime {
  target: RestoreTo;
  snapshotTime?: number;
}

/** What `restoreLocked` did: the healthy member's status, its name, the previous data's folder. */
interface Restored {
  status: EtcdStatus;
  member: string;
  old?: string;
}
