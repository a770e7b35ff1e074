/** The data dir's single-instance lock, shared by the server and the cluster reset. */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { environmentError } from '../errors.js';
import type { ServerPaths } from './config.js';

export const ETCD_INSTALL_HINT = 'install it with `apt-get install etcd-server`';

/** Refuses to run two servers on one data dir; returns a function that releases the lock. */
export async function lockDataDir(p: ServerPaths): Promise<() => Promise<void>> {
  const file = path.join(p.serverDir, 'etcdsnap.pid');
  const text = await fsp.readFile(file, 'utf8').catch(() => '');
  const pid = Number(text.trim());
  if (Number.isInteger(pid) && pid > 1 && pid !== process.pid) {
    const cmdline = await fsp.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes('etcdsnap')) {
      throw environmentError(`another etcdsnap server (pid ${pid}) is using ${path.dirname(p.serverDir)}; stop it first or choose another --data-dir`);
    }
  }
  await fsp.writeFile(file, `${process.pid}\n`, { mode: 0o600 });
  return async () => {
    await fsp.rm(file, { force: true });
  };
}

