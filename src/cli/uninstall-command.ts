/**
 * `etcdsnap uninstall [--purge] [--root <dir>]` (docs/install.md, "Uninstall"): undoes what
 * install-etcdsnap.sh and install-service did, in this order, saying each step on stdout:
 *
 * 1. When systemd runs (and no `--root` is given): `systemctl disable --now` each installed
 *    unit (etcdsnap.service, etcdsnap-agent.service). Otherwise it says that nothing is stopped.
 * 2. Refuses (an environment error, nothing removed yet) while an etcdsnap server still holds a
 *    data dir's lock (`<data dir>/server/etcdsnap.pid`, a live process named etcdsnap).
 * 3. Removes the unit files (then `daemon-reload` and `reset-failed` under systemd).
 * 4. Keeps /etc/etcdsnap (config and secrets) and the data dirs (the config files' `data-dir`,
 *    default /var/lib/etcdsnap and /var/lib/etcdsnap/agent) and says so, with the command that
 *    would remove them; `--purge` removes them. Snapshot dirs set outside a data dir
 *    (`etcd-snapshot-dir`) are never removed, and are named.
 * 5. Last, the program: `npm uninstall -g --prefix <prefix> etcdsnap` when this etcdsnap is an
 *    npm global install (`<prefix>/lib/node_modules/etcdsnap`); a checkout is left in place,
 *    and said so. Nothing runs from the package after this step.
 *
 * `--root` prefixes every system path (like DESTDIR) and turns systemctl off: for images and
 * tests. Data dirs named in a config file are read under the root too.
 */
import { spawn } from 'node:child_process';
import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { environmentError, usageError } from '../errors.js';
import { addOptions } from '../config/resolve.js';
import { DEFAULT_AGENT_CONFIG_FILE, DEFAULT_CONFIG_FILE, DEFAULT_UNIT_DIR, UNINSTALL_OPTIONS } from '../config/schema.js';
import { childEnv } from '../util/child-env.js';
import { configuredPaths, ownBin } from './install-service-command.js';
import { UNIT_NAMES } from './systemd-unit.js';

const CONFIG_DIR = '/etc/etcdsnap';

export interface UninstallInput {
  /** Folder the system paths are under; '/' for the real system. */
  root: string;
  purge: boolean;
  /** Run systemctl (systemd is running and root is '/'). */
  systemd: boolean;
  /** The installed package's folder (bin/.. of this program). */
  packageDir: string;
  /** Runs a command; resolves with its exit code and stderr. */
  run: (cmd: string, args: readonly string[]) => Promise<{ code: number; stderr: string }>;
  out: (line: string) => void;
}

/** `p` (absolute) under `root`. */
const under = (root: string, p: string): string => (root === '/' ? p : path.join(root, p));

/** The pid of a live etcdsnap process holding `<dataDir>/server/etcdsnap.pid`, if any. */
async function holder(dataDir: string): Promise<number | undefined> {
  const text = await fsp.readFile(path.join(dataDir, 'server', 'etcdsnap.pid'), 'utf8').catch(() => '');
  const pid = Number(text.trim());
  if (!Number.isInteger(pid) || pid <= 1 || pid === process.pid) return undefined;
  const cmdline = await fsp.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  return cmdline.includes('etcdsnap') ? pid : undefined;
}

/** The npm prefix of a global install at `packageDir` (`<prefix>/lib/node_modules/<name>`), else undefined. */
export function npmPrefixOf(packageDir: string): string | undefined {
  const modules = path.dirname(packageDir);
  const lib = path.dirname(modules);
  return path.basename(modules) === 'node_modules' && path.basename(lib) === 'lib' ? path.dirname(lib) : undefined;
}

/** Does the uninstall (see the module comment). */
export async function uninstall(i: UninstallInput): Promise<void> {
  if (!path.isAbsolute(i.root)) throw usageError(`--root ${JSON.stringify(i.root)} must be an absolute path`);
  const unitDir = under(i.root, DEFAULT_UNIT_DIR);
  const units = Object.values(UNIT_NAMES).filter((u) => existsSync(path.join(unitDir, u)));

  // what the config files say, read before anything is removed
  const dataDirs: string[] = [];
  const otherDirs: string[] = [];
  for (const [kind, file] of [
    ['server', DEFAULT_CONFIG_FILE],
    ['agent', DEFAULT_AGENT_CONFIG_FILE],
  ] as const) {
    const [data, ...rest] = (await configuredPaths(kind, under(i.root, file))).paths;
    if (data !== undefined) dataDirs.push(under(i.root, data));
    otherDirs.push(...rest.map((p) => under(i.root, p)));
  }
  const inside = (p: string, dir: string): boolean => p === dir || p.startsWith(`${dir}/`);
  const kept = [...new Set(otherDirs)].filter((p) => !dataDirs.some((d) => inside(p, d)));

  if (!i.systemd) i.out(i.root === '/' ? 'systemd is not running here: no service to stop' : `--root ${i.root}: systemctl is not run`);
  else if (units.length === 0) i.out('no etcdsnap unit is installed: no service to stop');
  else {
    const r = await i.run('systemctl', ['disable', '--now', ...units]);
    if (r.code !== 0) throw environmentError(`systemctl disable --now ${units.join(' ')} failed: ${r.stderr.trim()}`);
    i.out(`stopped and disabled ${units.join(', ')}`);
  }
  for (const d of new Set(dataDirs)) {
    const pid = await holder(d);
    if (pid !== undefined) throw environmentError(`an etcdsnap server (pid ${pid}) is still using ${d}: stop it first; nothing was removed`);
  }

  for (const u of units) {
    await fsp.rm(path.join(unitDir, u), { force: true });
    i.out(`removed ${path.join(unitDir, u)}`);
  }
  if (i.systemd && units.length > 0) {
    await i.run('systemctl', ['daemon-reload']);
    await i.run('systemctl', ['reset-failed', ...units]);
  }

  const configDir = under(i.root, CONFIG_DIR);
  const present = [configDir, ...new Set(dataDirs)].filter((d) => existsSync(d));
  if (i.purge) {
    for (const d of present) {
      await fsp.rm(d, { recursive: true, force: true });
      i.out(d === configDir ? `purged ${d} (config and secrets)` : `purged ${d} (data dir: etcd data, certificates, token, local snapshots)`);
    }
  } else {
    for (const d of present) {
      i.out(d === configDir ? `kept ${d} (config and secrets)` : `kept ${d} (data dir: etcd data, certificates, token, local snapshots)`);
    }
    if (present.length > 0) i.out(`not removed without --purge; to delete them later: rm -rf ${present.join(' ')}`);
  }
  for (const d of kept.filter((p) => existsSync(p))) i.out(`kept ${d} (a snapshot dir outside the data dir: uninstall never removes it)`);

  const prefix = npmPrefixOf(i.packageDir);
  if (prefix === undefined) {
    i.out(`etcdsnap runs from ${i.packageDir}, not from a global npm install: the program is left in place`);
    return;
  }
  const r = await i.run('npm', ['uninstall', '--global', '--prefix', prefix, '--loglevel=error', '--no-audit', '--no-fund', path.basename(i.packageDir)]);
  if (r.code !== 0) throw environmentError(`npm uninstall -g ${path.basename(i.packageDir)} failed: ${r.stderr.trim()}`);
  i.out(`removed the program (npm uninstall -g --prefix ${prefix} ${path.basename(i.packageDir)})`);
}

/** Runs `cmd` with the allow-listed environment (plus npm's own settings); never throws on a non-zero exit. */
const runCommand = (cmd: string, args: readonly string[]): Promise<{ code: number; stderr: string }> =>
  new Promise((resolve) => {
    const child = spawn(cmd, args, { env: childEnv(process.env, ['npm_config_', 'NPM_CONFIG_']), stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
    });
    child.on('error', (err) => resolve({ code: 127, stderr: err.message }));
    child.on('close', (code) => resolve({ code: code ?? 1, stderr }));
  });

export function uninstallCommand(): Command {
  const cmd = new Command('uninstall').description(
    'Stop and remove the etcdsnap services and the program; keep /etc/etcdsnap and the data dir unless --purge (docs/install.md)',
  );
  addOptions(cmd, UNINSTALL_OPTIONS);
  cmd.action(async () => {
    const o = cmd.opts<Record<string, unknown>>();
    const root = cmd.getOptionValueSource('root') === 'cli' && typeof o.root === 'string' ? o.root : '/';
    await uninstall({
      root,
      purge: o.purge === true,
      systemd: root === '/' && existsSync('/run/systemd/system'),
      packageDir: path.dirname(path.dirname(ownBin())),
      run: runCommand,
      out: (line) => process.stdout.write(`${line}\n`),
    });
  });
  return cmd;
}
