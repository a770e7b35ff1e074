/** The data dir's single-instance lock, shared by the server and the cluster reset. */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { environmentError } from '../errors.js';
import type { ServerPaths } from './config.js';

export const ETCD_INSTALL_HINT = 'install it with `apt-get install etcd-server`';

const lockFile = (p: ServerPaths): string => path.join(p.serverDir, 'etcdsnap.pid');

/**
 * Refuses when another etcdsnap process holds the data dir's lock. Read-only: usable as a
 * start-up check before anything is created (`lockDataDir` repeats it when it takes the lock).
 */
export async function assertUnlocked(p: ServerPaths): Promise<void> {
  const text = await fsp.readFile(lockFile(p), 'utf8').catch(() => '');
  const pid = Number(text.trim());
  if (Number.isInteger(pid) && pid > 1 && pid !== process.pid) {
    const cmdline = await fsp.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes('etcdsnap')) {
      // the process title (cli/main.ts) says which daemon holds it: `etcdsnap server` or `etcdsnap agent`
      const kind = /etcdsnap (server|agent)/.exec(cmdline.replaceAll('\0', ' '))?.[1] ?? 'process';
      throw environmentError(`another etcdsnap ${kind} (pid ${pid}) is using ${path.dirname(p.serverDir)}; stop it first or choose another --data-dir`);
    }
  }
}

/**
 * Refuses to run two servers on one data dir; returns a function that releases the lock (and
 * removes the supervisor URL file the daemon wrote: nothing listens there any more).
 */
export async function lockDataDir(p: ServerPaths): Promise<() => Promise<void>> {
  await assertUnlocked(p);
  const file = lockFile(p);
  await fsp.writeFile(file, `${process.pid}\n`, { mode: 0o600 });
  return async () => {
    await fsp.rm(p.supervisorUrlFile, { force: true });
    await fsp.rm(file, { force: true });
  };
}
