/**
 * The files of a data dir that a client on the same host (the CLI) reads as well as the
 * daemon that writes them (k3s's layout under `<data-dir>/server/`): one place for their
 * names. Pure: paths only.
 */
import path from 'node:path';

export interface ClientFiles {
  /** The cluster token (`K10<ca hash>::server:<secret>`). */
  token: string;
  /** The cluster CA, which signs the supervisor API's certificate. */
  supervisorCa: string;
  /** The supervisor URL of the server or agent running on this data dir, while it runs. */
  supervisorUrl: string;
}

export function clientFiles(dataDir: string): ClientFiles {
  const serverDir = path.join(dataDir, 'server');
  return {
    token: path.join(serverDir, 'token'),
    supervisorCa: path.join(serverDir, 'tls', 'server-ca.crt'),
    supervisorUrl: path.join(serverDir, 'supervisor-url'),
  };
}
