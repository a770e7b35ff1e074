/**
 * The systemd readiness protocol (sd_notify(3)) for `Type=notify` units (docs/systemd.md):
 * READY=1, STOPPING=1 and STATUS= lines sent to the socket systemd names in NOTIFY_SOCKET.
 *
 * Node has no unix datagram socket, and the npm packages that add one (`sd-notify`,
 * `unix-dgram`) build native code with node-gyp at install time. So the messages are sent by
 * systemd's own `systemd-notify` (part of the `systemd` package, on every machine that runs
 * the unit), the maintained implementation: it handles path and abstract (`@...`) sockets,
 * sends the message with the credentials of its caller (this process, the unit's main PID)
 * when it runs as root, else under its own PID (hence `NotifyAccess=all` in the unit), and
 * then waits until the manager has read it (`BARRIER=1`), so no message is lost to its exit.
 *
 * Contract:
 * - NOTIFY_SOCKET unset (not under systemd, or `Type=simple`): every call does nothing.
 * - A NOTIFY_SOCKET that is neither an absolute path nor `@name`: reported once, then nothing.
 * - Messages are sent one at a time in call order (READY before STOPPING); a failed send is
 *   reported through `onError` and never throws into the caller; a missing `systemd-notify`
 *   is reported once and sending stops.
 * - `flush` resolves once every message queued so far is sent or failed, or after its timeout.
 * - The sender gets only PATH and NOTIFY_SOCKET from our environment (never our secrets).
 * The sender is a parameter (`NotifySender`), so that a datagram library could replace
 * `systemd-notify` in one line.
 */
import { execFile } from 'node:child_process';

/** What a daemon tells its service manager. */
export interface ServiceNotifier {
  /** READY=1 with a STATUS= line: start-up is complete. */
  ready(status: string): void;
  /** A STATUS= line: what the daemon is doing. */
  status(text: string): void;
  /** STOPPING=1 with a STATUS= line: the stop has begun. */
  stopping(status: string): void;
  /** Resolves when the messages queued so far are sent (or failed), at most after `timeoutMs`. */
  flush(timeoutMs?: number): Promise<void>;
  /** Whether messages are sent at all (NOTIFY_SOCKET set and valid). */
  readonly enabled: boolean;
}

/** Sends one notification (`fields`, e.g. ["READY=1", "STATUS=ready"]) to `socket`; rejects on failure. */
export type NotifySender = (socket: string, fields: readonly string[]) => Promise<void>;

/** The notifier that does nothing (no service manager). */
export const NO_NOTIFIER: ServiceNotifier = {
  ready: () => undefined,
  status: () => undefined,
  stopping: () => undefined,
  flush: () => Promise.resolve(),
  enabled: false,
};

/** A STATUS= value on one line (the protocol is newline-separated). */
export const statusLine = (text: string): string => `STATUS=${text.replace(/[\r\n]+/g, ' ').trim()}`;

/** Whether `socket` is a NOTIFY_SOCKET value sd_notify accepts: an absolute path or an abstract `@name`. */
export const validNotifySocket = (socket: string): boolean => (socket.startsWith('/') || socket.startsWith('@')) && socket.length > 1;

/** The sender that runs `systemd-notify VAR=VALUE...` with NOTIFY_SOCKET set (see the module comment). */
export function systemdNotifySender(binary = 'systemd-notify', path = process.env.PATH ?? '/usr/bin:/bin'): NotifySender {
  return (socket, fields) =>
    new Promise<void>((resolve, reject) => {
      execFile(binary, [...fields], { env: { PATH: path, NOTIFY_SOCKET: socket }, timeout: 10_000 }, (err, _stdout, stderr) => {
        if (!err) return resolve();
        const code = (err as NodeJS.ErrnoException).code;
        const why = code === 'ENOENT' ? `${binary} not found` : String(stderr).trim() || err.message;
        reject(Object.assign(new Error(why), { missing: code === 'ENOENT' }));
      });
    });
}

export interface NotifierOptions {
  /** How a message is sent; `systemdNotifySender()` by default. */
  send?: NotifySender;
  /** Told about a send that failed or a bad NOTIFY_SOCKET (for a log line); must not throw. */
  onError?: (message: string) => void;
}

/** The notifier for the service manager named in `env.NOTIFY_SOCKET` (NO_NOTIFIER when unset or empty). */
export function serviceNotifier(env: Readonly<Record<string, string | undefined>>, opts: NotifierOptions = {}): ServiceNotifier {
  const socket = env.NOTIFY_SOCKET;
  if (socket === undefined || socket === '') return NO_NOTIFIER;
  const report = (m: string): void => {
    try {
      opts.onError?.(m);
    } catch {
      /* the report itself failed: nothing else to tell */
    }
  };
  if (!validNotifySocket(socket)) {
    report(`NOTIFY_SOCKET=${socket} is neither an absolute path nor @name; not notifying systemd`);
    return NO_NOTIFIER;
  }
  const send = opts.send ?? systemdNotifySender();
  let chain: Promise<void> = Promise.resolve();
  let gaveUp = false;
  const enqueue = (fields: string[]): void => {
    chain = chain.then(async () => {
      if (gaveUp) return;
      try {
        await send(socket, fields);
      } catch (err) {
        if ((err as { missing?: boolean }).missing === true) gaveUp = true;
        report(`cannot notify systemd (${fields.join(' ')}): ${err instanceof Error ? err.message : String(err)}`);
      }
    });
  };
  return {
    enabled: true,
    ready: (status) => enqueue(['READY=1', statusLine(status)]),
    status: (text) => enqueue([statusLine(text)]),
    stopping: (status) => enqueue(['STOPPING=1', statusLine(status)]),
    flush: (timeoutMs = 10_000) =>
      new Promise<void>((resolve) => {
        const t = setTimeout(resolve, timeoutMs);
        void chain.then(() => {
          clearTimeout(t);
          resolve();
        });
      }),
  };
}
