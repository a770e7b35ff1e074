/**
 * `etcdsnap install-service [--agent]` (docs/systemd.md): writes the systemd unit
 * (systemd-unit.ts; 0644, replaced when it exists), creates the secrets file (0600, commented
 * keys, never overwritten; an existing one readable by others is tightened to 0600) and the
 * config file when missing (0600, comments only: `--config` names it on ExecStart, and a named
 * file that is missing stops the daemon), and the writable folders the unit names that do not
 * exist (0700: systemd refuses to start a unit whose ReadWritePaths= are missing). It prints
 * what it did and the `systemctl` commands to run; it never runs systemctl itself.
 *
 * The writable folders are the data dir and snapshot dirs of the config file (its
 * `data-dir`, `etcd-snapshot-dir` and `etcd-snapshot-api-dir` keys; the service runs as root,
 * so the data dir defaults to /var/lib/etcdsnap, /var/lib/etcdsnap/agent for the agent) and
 * every `--read-write-path`. Options count only on the command line. `--dry-run` prints the
 * unit and what would be done, and changes nothing.
 */
import { constants as fsc, promises as fsp } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { configError, environmentError, errnoCode, messageOf, usageError } from '../errors.js';
import { addOptions } from '../config/resolve.js';
import { checkValue, DEFAULT_AGENT_CONFIG_FILE, DEFAULT_CONFIG_FILE, DEFAULT_UNIT_DIR, INSTALL_SERVICE_OPTIONS, specOf } from '../config/schema.js';
import { writeFileAtomic } from '../util/durable.js';
import { distinctPaths, envFileTemplate, SYSTEMD_DEFAULT_PATH, systemdUnit, UNIT_NAMES, unitPathProblem } from './systemd-unit.js';

export interface InstallServiceInput {
  kind: 'server' | 'agent';
  unitDir: string;
  configFile: string;
  envFile: string;
  readWritePaths: readonly string[];
  dryRun: boolean;
  /** Absolute path of bin/etcdsnap (ExecStart). */
  execPath: string;
  /** The node binary ExecStart's `#!/usr/bin/env node` must find (process.execPath). */
  nodePath: string;
  out: (line: string) => void;
}

/** Where this program's bin/etcdsnap is (dist/cli/ or src/cli/ → ../../bin). */
export const ownBin = (): string => fileURLToPath(new URL('../../bin/etcdsnap', import.meta.url));

export const DATA_DIRS = { server: '/var/lib/etcdsnap', agent: '/var/lib/etcdsnap/agent' } as const;

/** The folders the config file says the service writes (data dir first), or the default data dir. */
export async function configuredPaths(kind: 'server' | 'agent', configFile: string): Promise<{ paths: string[]; exists: boolean }> {
  let text: string;
  try {
    text = await fsp.readFile(configFile, 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return { paths: [DATA_DIRS[kind]], exists: false };
    throw environmentError(`cannot read config file ${configFile}: ${errnoCode(err) ?? messageOf(err)}`, err);
  }
  let doc: unknown;
  try {
    const { parse: parseYaml } = await import('yaml'); // loaded only here: the CLI's other commands do without it
    doc = parseYaml(text, { version: '1.1' });
  } catch (err) {
    throw configError(`config file ${configFile}: ${messageOf(err)}`, err);
  }
  const map = doc !== null && typeof doc === 'object' && !Array.isArray(doc) ? (doc as Record<string, unknown>) : {};
  const paths: string[] = [];
  for (const key of ['data-dir', 'etcd-snapshot-dir', 'etcd-snapshot-api-dir']) {
    const v = map[key];
    const values = Array.isArray(v) ? v : v === undefined || v === null ? [] : [v];
    for (const item of values) {
      const p = String(item);
      const problem = unitPathProblem(p);
      if (problem) throw configError(`config file ${configFile}: ${key} ${JSON.stringify(p)} ${problem}`);
      paths.push(p);
    }
  }
  if (map['data-dir'] === undefined) paths.unshift(DATA_DIRS[kind]);
  return { paths, exists: true };
}

/** Creates `file` with `text` and `mode` unless it exists; true when created. */
async function createIfMissing(file: string, text: string, mode: number): Promise<boolean> {
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(file, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, mode);
  } catch (err) {
    if (errnoCode(err) === 'EEXIST') return false;
    throw environmentError(`cannot create ${file}: ${errnoCode(err) ?? messageOf(err)}`, err);
  }
  try {
    await fh.writeFile(text);
    await fh.chmod(mode);
    await fh.sync();
  } finally {
    await fh.close();
  }
  return true;
}

async function isDir(p: string): Promise<boolean> {
  try {
    return (await fsp.stat(p)).isDirectory();
  } catch {
    return false;
  }
}

/** Does the install (see the module comment); refusals are usage, config or environment errors. */
export async function installService(i: InstallServiceInput): Promise<void> {
  const named: Array<[string, string]> = [
    ['--unit-dir', i.unitDir],
    ['--config', i.configFile],
    ['--environment-file', i.envFile],
    ...i.readWritePaths.map((p): [string, string] => ['--read-write-path', p]),
  ];
  for (const [flag, p] of named) {
    const problem = unitPathProblem(p);
    if (problem) throw usageError(`${flag} ${JSON.stringify(p)} ${problem}`);
  }
  const execProblem = unitPathProblem(i.execPath);
  if (execProblem) throw environmentError(`etcdsnap's own path ${JSON.stringify(i.execPath)} ${execProblem}; install etcdsnap under a plain path`);
  try {
    await fsp.access(i.execPath, fsc.X_OK);
  } catch {
    throw environmentError(`${i.execPath} is not an executable file; run install-service from an installed etcdsnap`);
  }
  if (!(await isDir(i.unitDir))) throw environmentError(`unit dir ${i.unitDir} is not a folder: is systemd installed? Name another with --unit-dir`);
  const { paths: fromConfig, exists: configExists } = await configuredPaths(i.kind, i.configFile);
  const writable = distinctPaths([...fromConfig, ...i.readWritePaths]);
  const nodeDir = path.dirname(i.nodePath);
  const unit = systemdUnit({
    kind: i.kind,
    execPath: i.execPath,
    configFile: i.configFile,
    envFile: i.envFile,
    writablePaths: writable,
    ...(SYSTEMD_DEFAULT_PATH.split(':').includes(nodeDir) ? {} : { pathEnv: `${nodeDir}:${SYSTEMD_DEFAULT_PATH}` }),
  });
  const unitFile = path.join(i.unitDir, UNIT_NAMES[i.kind]);
  const service = UNIT_NAMES[i.kind].replace(/\.service$/, '');
  // the data dir under /var/lib is made by systemd (StateDirectory=); other writable folders must exist
  const toCreate: string[] = [];
  for (const [n, p] of writable.entries()) {
    if (n === 0 && p.startsWith('/var/lib/')) continue;
    if (!(await isDir(p))) toCreate.push(p);
  }
  const envExists = await isDir(path.dirname(i.envFile)).then(
    async (d) =>
      d &&
      (await fsp
        .lstat(i.envFile)
        .then(() => true)
        .catch(() => false)),
  );

  if (i.dryRun) {
    i.out(`dry run: nothing is written. Would write ${unitFile} (0644):`);
    i.out('');
    for (const line of unit.trimEnd().split('\n')) i.out(`  ${line}`);
    i.out('');
    i.out(envExists ? `would keep ${i.envFile} (it exists)` : `would create ${i.envFile} (0600, commented keys)`);
    if (!configExists) i.out(`would create ${i.configFile} (0600, comments only)`);
    for (const d of toCreate) i.out(`would create ${d} (0700)`);
  } else {
    for (const f of [i.envFile, i.configFile]) await fsp.mkdir(path.dirname(f), { recursive: true, mode: 0o755 });
    if (await createIfMissing(i.envFile, envFileTemplate(i.kind), 0o600))
      i.out(`created ${i.envFile} (0600): put the service's secrets there, never on ExecStart`);
    else {
      const st = await fsp.stat(i.envFile);
      if ((st.mode & 0o077) !== 0) {
        await fsp.chmod(i.envFile, 0o600);
        i.out(`kept ${i.envFile} (it exists); its mode was ${(st.mode & 0o777).toString(8).padStart(4, '0')}, now 0600`);
      } else i.out(`kept ${i.envFile} (it exists)`);
    }
    if (!configExists) {
      const text = `# Settings of ${UNIT_NAMES[i.kind]}: the long flag names without dashes (docs/install.md#configuration).\n`;
      if (await createIfMissing(i.configFile, text, 0o600)) i.out(`created ${i.configFile} (0600, comments only): put the settings there`);
    }
    for (const d of toCreate) {
      await fsp.mkdir(d, { recursive: true, mode: 0o700 });
      i.out(`created ${d} (0700): the unit's ReadWritePaths= must exist`);
    }
    try {
      await writeFileAtomic(unitFile, unit, 0o644);
    } catch (err) {
      throw environmentError(`cannot write ${unitFile}: ${errnoCode(err) ?? messageOf(err)}`, err);
    }
    i.out(`wrote ${unitFile} (0644)`);
  }
  i.out(`writable folders: ${writable.join(' ')}`);
  i.out('next:');
  i.out(`  systemctl daemon-reload && systemctl enable --now ${service}`);
  i.out(`  systemctl status ${service}     # the Status: line says what it is doing`);
  i.out(`  journalctl -u ${service} -f`);
}

const attr = (key: string): string => key.replace(/-([a-z0-9])/g, (_m, c: string) => c.toUpperCase());

export function installServiceCommand(): Command {
  const cmd = new Command('install-service').description(
    'Write the systemd unit etcdsnap.service (--agent: etcdsnap-agent.service) and its secrets file; prints the systemctl commands to run (docs/systemd.md)',
  );
  addOptions(cmd, INSTALL_SERVICE_OPTIONS);
  cmd.action(async () => {
    const o = cmd.opts<Record<string, unknown>>();
    const text = (key: string): string | undefined => {
      const v = cmd.getOptionValueSource(attr(key)) === 'cli' ? o[attr(key)] : undefined;
      if (typeof v !== 'string') return undefined;
      checkValue(specOf(INSTALL_SERVICE_OPTIONS, key), v);
      return v;
    };
    const agent = o.agent === true;
    const kind = agent ? 'agent' : 'server';
    await installService({
      kind,
      unitDir: text('unit-dir') ?? DEFAULT_UNIT_DIR,
      configFile: text('config') ?? (agent ? DEFAULT_AGENT_CONFIG_FILE : DEFAULT_CONFIG_FILE),
      envFile: text('environment-file') ?? (agent ? '/etc/etcdsnap/agent.env' : '/etc/etcdsnap/etcdsnap.env'),
      readWritePaths: Array.isArray(o.readWritePath) ? o.readWritePath.map(String) : [],
      dryRun: o.dryRun === true,
      execPath: ownBin(),
      nodePath: process.execPath,
      out: (line) => process.stdout.write(`${line}\n`),
    });
  });
  return cmd;
}
