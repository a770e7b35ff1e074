/**
 * First-start and every-start preparation of the data dir: folders (0700), the cluster
 * token (0600) checked against the CA it pins, TLS material, and the etcd member name.
 * Nothing here starts a process.
 */
import { promises as fsp, constants as fsc } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { configError, environmentError, errnoCode, messageOf } from '../errors.js';
import { ensurePrivateDir, readIfExists } from '../util/fs.js';
import { writeFileAtomic } from '../util/durable.js';
import { caHash, formatToken, newSecret, parseToken, secretStrength, type ParsedToken } from '../etcd/token.js';
import { ensureTls, readCa, tlsPaths, type TlsMaterial } from '../etcd/tls.js';
import type { KeyPairPem } from '../etcd/pki.js';
import { registerSecret } from '../log/logger.js';
import type { ServerConfig, ServerPaths } from './config.js';

/** Creates the server folders, failing with one clear line when the data dir is not usable. */
export async function prepareDataDir(cfg: ServerConfig, p: ServerPaths): Promise<void> {
  try {
    await fsp.mkdir(cfg.dataDir, { recursive: true, mode: 0o700 });
    await fsp.access(cfg.dataDir, fsc.W_OK);
    await ensurePrivateDir(p.serverDir);
    await ensurePrivateDir(p.dbDir);
    await ensurePrivateDir(p.etcdDataDir);
  } catch (err) {
    throw environmentError(
      `data dir ${cfg.dataDir} is not writable (${errnoCode(err) ?? messageOf(err)}); fix its permissions or choose another with --data-dir`,
      err,
    );
  }
}

/**
 * The token the user gave (flag/env/config or --token-file), if any, parsed. Not registered
 * for scrubbing yet (`checkToken` does, once it is accepted): no message here contains it,
 * and a refused short secret must not mask its characters in the refusal's own message.
 */
async function givenToken(cfg: TokenConfig): Promise<{ parsed: ParsedToken; text: string } | undefined> {
  let text = cfg.token;
  if (cfg.tokenFile !== undefined) {
    try {
      text = await fsp.readFile(cfg.tokenFile, 'utf8');
    } catch (err) {
      throw configError(`cannot read --token-file ${cfg.tokenFile}: ${errnoCode(err) ?? messageOf(err)}`);
    }
  }
  if (text === undefined) return undefined;
  return { parsed: parseToken(text), text: text.trim() };
}

/** The settings the token check reads (the agent gives only the first three). */
export type TokenConfig = Pick<ServerConfig, 'dataDir' | 'token' | 'tokenFile' | 'joinURL' | 'restorePath' | 'clusterReset'>;

/** What the token check found; handed to `bootstrap`. */
export interface TokenCheck {
  given?: ParsedToken;
  existing?: ParsedToken;
  existingText?: string;
  /** Whether the data dir held a cluster CA before this start (false on a fresh host). */
  hadCa: boolean;
  /**
   * Set when the secret is shorter than the strength policy wants but belongs to a cluster
   * that exists (see `secretStrength`): a one-line warning for the caller to log.
   */
  weakSecretWarning?: string;
}

/**
 * Checks the given token against what the data dir already holds (CA it pins, secret it
 * was created with), and its strength (`secretStrength`): a short given secret is refused
 * when it would create a new cluster (no token file, no CA, not joining, not a reset),
 * and only warned about otherwise (`weakSecretWarning`). Read-only: a refused token leaves
 * the data dir as it was.
 */
export async function checkToken(cfg: TokenConfig, p: ServerPaths): Promise<TokenCheck> {
  const givenRaw = await givenToken(cfg);
  const given = givenRaw?.parsed;
  const existingCa = await readCa(tlsPaths(cfg.dataDir));
  const existingText = await readIfExists(p.tokenFile);
  const existing = existingText !== undefined ? parseToken(existingText) : undefined;
  if (existing) registerSecret(existing.secret);
  if (cfg.joinURL !== undefined && given?.caHash === undefined && !existingCa) {
    throw configError(
      'joining a cluster needs the full token (K10...::server:...) from <data-dir>/server/token of a server in it; pass it with --token or --token-file',
    );
  }
  if (given?.caHash !== undefined) {
    // joining: the CA comes from the cluster and is checked against this hash then
    // (a restore on a fresh host gets the CA from the snapshot's bootstrap data)
    if (!existingCa && cfg.joinURL === undefined && cfg.restorePath === undefined) {
      throw configError(
        'the token pins a cluster CA that this data dir does not have: it belongs to another cluster; give a bare secret with --token to start a new cluster, or restore a snapshot of that cluster with --cluster-reset --cluster-reset-restore-path',
      );
    }
    if (existingCa && given.caHash !== caHash(existingCa.certPem)) {
      throw configError(
        `the token does not match this server's cluster CA (${tlsPaths(cfg.dataDir).caCert}); use the token in ${p.tokenFile}, or start with a new --data-dir`,
      );
    }
  }
  if (given && existing && given.secret !== existing.secret) {
    throw configError(`the token does not match the token this server was created with (${p.tokenFile}); pass that token or start with a new --data-dir`);
  }
  const secret = given?.secret ?? existing?.secret;
  const createsCluster = given !== undefined && !existing && !existingCa && cfg.joinURL === undefined && cfg.restorePath === undefined && !cfg.clusterReset;
  const verdict = secret === undefined ? { action: 'ok' as const } : secretStrength(secret, createsCluster ? 'new-cluster' : 'existing-cluster');
  if (verdict.action === 'refuse') throw configError(verdict.message);
  if (givenRaw) {
    registerSecret(givenRaw.text);
    registerSecret(givenRaw.parsed.secret);
  }
  return {
    ...(given ? { given } : {}),
    ...(existing ? { existing } : {}),
    ...(existingText !== undefined ? { existingText } : {}),
    hadCa: existingCa !== undefined,
    ...(verdict.action === 'warn' ? { weakSecretWarning: verdict.message } : {}),
  };
}

export interface Bootstrap {
  tls: TlsMaterial;
  /** The full token (K10...::server:secret), as written to <data-dir>/server/token. */
  token: string;
  secret: string;
  memberName: string;
}

/**
 * Makes sure the CA, certificates, token file and member name exist (after `checkToken`).
 * @param hosts names/addresses the serving certificates must cover.
 */
export async function bootstrap(cfg: ServerConfig, p: ServerPaths, hosts: readonly string[], check: TokenCheck, clusterCa?: KeyPairPem): Promise<Bootstrap> {
  const tls = await ensureTls(cfg.dataDir, hosts, cfg.nodeName, clusterCa);
  return { tls, ...(await issueToken(p, tls.caPem, check)), memberName: await memberName(cfg, p) };
}

/**
 * The token for `caPem`, with the given or existing secret (else a new one), written to the
 * token file (0600) when it changed; both registered for scrubbing. Used by `bootstrap` and
 * by the agent.
 */
export async function issueToken(p: ServerPaths, caPem: string, check: TokenCheck): Promise<{ token: string; secret: string }> {
  const secret = check.given?.secret ?? check.existing?.secret ?? newSecret();
  registerSecret(secret);
  const token = formatToken(caPem, secret);
  registerSecret(token);
  if (check.existingText?.trim() !== token) await writeFileAtomic(p.tokenFile, `${token}\n`, 0o600);
  await fsp.chmod(p.tokenFile, 0o600);
  return { token, secret };
}

/**
 * The etcd member name, `<node-name>-<8 hex>` (as k3s), kept in db/etcd-member-name (k3s
 * keeps it inside etcd's data dir, where etcd warns about it at every start).
 */
async function memberName(cfg: ServerConfig, p: ServerPaths): Promise<string> {
  const existing = (await readIfExists(p.memberNameFile))?.trim();
  if (existing) return existing;
  return newMemberName(cfg, p);
}

/** Gives this node a new member name `<node-name>-<8 hex>` and stores it. */
async function newMemberName(cfg: ServerConfig, p: ServerPaths): Promise<string> {
  const name = `${cfg.nodeName}-${randomBytes(4).toString('hex')}`;
  await writeFileAtomic(p.memberNameFile, name, 0o600);
  return name;
}
