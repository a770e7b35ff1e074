/**
 * The systemd units `etcdsnap install-service` writes (docs/systemd.md), from one pure
 * function: `etcdsnap.service` (the server) and `etcdsnap-agent.service` (the agent) differ
 * only in their arguments. No I/O.
 *
 * What every unit has, and why:
 * - `Type=notify` with `NotifyAccess=all`: READY=1 comes once etcd answers and the API
 *   serves (util/sd-notify.ts, through systemd's `systemd-notify`, whose message carries our
 *   PID when it runs as root and its own otherwise: `all` accepts both; etcd and the other
 *   children never get NOTIFY_SOCKET).
 * - `KillMode=mixed`: SIGTERM goes to etcdsnap alone, which stops its own way (API closed,
 *   work drained, then etcd with SIGTERM and a wait); whatever is left when it exits, or at
 *   `TimeoutStopSec`, is killed with SIGKILL, so a crash never leaves an etcd behind.
 * - `TimeoutStartSec=infinity`: a server waits for its peers' quorum as long as it takes (as k3s).
 * - `Restart=always`, `RestartSec=5s`, at most 30 starts in 10 minutes, `LimitNOFILE=1048576` (k3s's).
 * - Secrets only in `EnvironmentFile=` (0600), never on `ExecStart`, which names the config file only.
 * - Hardening etcd and Node tolerate: a read-only system (`ProtectSystem=strict`) but the
 *   data dir (`StateDirectory=` under /var/lib, else `ReadWritePaths=`) and the snapshot dirs
 *   (`ReadWritePaths=`: they must exist when the unit starts);
 *   no home folders unless a writable path is in one; private /tmp and /dev; no new privileges.
 *
 * Paths are absolute, with no whitespace, quotes, backslashes or control characters (a path
 * with them is refused: `unitPathProblem`); `%` is written `%%` (systemd's specifier escape)
 * and `$` on ExecStart `$$`.
 */
import path from 'node:path';

export interface UnitInput {
  kind: 'server' | 'agent';
  /** Absolute path of `bin/etcdsnap`. */
  execPath: string;
  /** The config file ExecStart names. */
  configFile: string;
  /** The environment file for secrets. */
  envFile: string;
  /** Folders the service writes: its data dir first, then snapshot dirs (duplicates and nested ones dropped). */
  writablePaths: readonly string[];
  /** A PATH for the service when node is not on systemd's default PATH. */
  pathEnv?: string;
}

export const UNIT_NAMES = { server: 'etcdsnap.service', agent: 'etcdsnap-agent.service' } as const;

/** systemd's PATH for services (systemd.exec(5), "Environment variables in spawned processes"). */
export const SYSTEMD_DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Why `p` cannot go into a unit file, or undefined when it can. */
export function unitPathProblem(p: string): string | undefined {
  if (!path.isAbsolute(p)) return 'is not an absolute path';
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
  if (/[\s"'\\\u0000-\u001f\u007f]/.test(p)) return 'has whitespace, a quote, a backslash or a control character, which a unit file cannot hold here';
  return undefined;
}

/** `p` with systemd's specifier character escaped. */
const esc = (p: string): string => p.replace(/%/g, '%%');
/** `p` as an ExecStart word: specifiers and variable expansion escaped. */
const execWord = (p: string): string => esc(p).replace(/\$/g, '$$$$');

const HOME_DIRS = ['/home', '/root', '/run/user'];
const under = (p: string, dir: string): boolean => p === dir || p.startsWith(`${dir}/`);

/** The writable paths without duplicates or paths inside another one, in their order. */
export function distinctPaths(paths: readonly string[]): string[] {
  const norm = [...new Set(paths.map((p) => path.resolve(p)))];
  return norm.filter((p) => !norm.some((q) => q !== p && under(p, q)));
}

/** The unit file's text. Throws (a bug: callers check with `unitPathProblem` first) on a path it cannot hold. */
export function systemdUnit(i: UnitInput): string {
  const all = [i.execPath, i.configFile, i.envFile, ...i.writablePaths];
  for (const p of all) {
    const problem = unitPathProblem(p);
    if (problem) throw new Error(`bug: unit path ${JSON.stringify(p)} ${problem}`);
  }
  const writable = distinctPaths(i.writablePaths);
  // the data dir under /var/lib: StateDirectory= creates it (0700) and makes it writable
  const first = writable[0];
  const state = first?.startsWith('/var/lib/') && first.length > '/var/lib/'.length ? [first] : [];
  const rw = writable.filter((p) => !state.includes(p));
  const inHome = writable.some((p) => HOME_DIRS.some((h) => under(p, h)));
  const server = i.kind === 'server';
  const lines = [
    `# ${UNIT_NAMES[i.kind]}, written by \`etcdsnap install-service${server ? '' : ' --agent'}\` (docs/systemd.md).`,
    `# Settings: ${i.configFile}. Secrets (ETCDSNAP_TOKEN, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, ...):`,
    `# ${i.envFile} (root, 0600). Never put a secret on ExecStart: it shows in ps and systemctl status.`,
    '[Unit]',
    server
      ? 'Description=etcdsnap server: a supervised etcd member with scheduled, verified snapshots'
      : 'Description=etcdsnap agent: scheduled, verified snapshots of an etcd cluster etcdsnap does not run',
    'Documentation=https://github.com/etcdsnap/etcdsnap/blob/main/docs/systemd.md',
    'After=network-online.target',
    'Wants=network-online.target',
    'StartLimitIntervalSec=600',
    'StartLimitBurst=30',
    '',
    '[Service]',
    'Type=notify',
    'NotifyAccess=all',
    `ExecStart=${execWord(i.execPath)} ${i.kind} --config ${execWord(i.configFile)}`,
    `EnvironmentFile=-${esc(i.envFile)}`,
    ...(i.pathEnv !== undefined ? [`Environment=${execWord(`PATH=${i.pathEnv}`)}`] : []),
    '# SIGTERM to etcdsnap only: it drains, then stops etcd itself; leftovers get SIGKILL',
    'KillMode=mixed',
    'KillSignal=SIGTERM',
    'TimeoutStartSec=infinity',
    'TimeoutStopSec=60s',
    'Restart=always',
    'RestartSec=5s',
    'LimitNOFILE=1048576',
    'UMask=0077',
    ...(state.length > 0 ? [`StateDirectory=${state.map((p) => esc(p.slice('/var/lib/'.length))).join(' ')}`, 'StateDirectoryMode=0700'] : []),
    ...(rw.length > 0 ? [`ReadWritePaths=${rw.map(esc).join(' ')}`] : []),
    'NoNewPrivileges=yes',
    'ProtectSystem=strict',
    ...(inHome ? ['# ProtectHome= left off: a writable path is in a home folder'] : ['ProtectHome=yes']),
    'PrivateTmp=yes',
    'PrivateDevices=yes',
    'ProtectKernelTunables=yes',
    'ProtectKernelModules=yes',
    'ProtectKernelLogs=yes',
    'ProtectControlGroups=yes',
    'ProtectClock=yes',
    'ProtectHostname=yes',
    'RestrictSUIDSGID=yes',
    'RestrictRealtime=yes',
    'RestrictNamespaces=yes',
    'LockPersonality=yes',
    'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK',
    'SystemCallArchitectures=native',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ];
  return lines.join('\n');
}

/** The environment file's first content: comments naming the keys, no value. */
export function envFileTemplate(kind: 'server' | 'agent'): string {
  return [
    `# Secrets for ${UNIT_NAMES[kind]} (EnvironmentFile=; keep it root-owned, mode 0600).`,
    '# One NAME=value per line; systemctl restart after a change. See docs/systemd.md.',
    '#ETCDSNAP_TOKEN=',
    '#AWS_ACCESS_KEY_ID=',
    '#AWS_SECRET_ACCESS_KEY=',
    '#AWS_SESSION_TOKEN=',
    '#ETCDSNAP_SNAPSHOT_NOTIFY_WEBHOOK=',
    '',
  ].join('\n');
}
