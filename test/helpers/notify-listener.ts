/**
 * A fake systemd NOTIFY_SOCKET for tests: python3 (Node cannot bind a unix datagram socket)
 * binds an AF_UNIX SOCK_DGRAM socket, a path or an abstract `@name`, with SO_PASSCRED, and
 * prints one JSON line per datagram: its fields (split at newlines), the sender's PID from
 * SCM_CREDENTIALS, and the number of file descriptors passed (systemd-notify's BARRIER=1
 * passes one, which is closed at once, as systemd does, so the sender's wait ends).
 */
import { spawn, type ChildProcess } from 'node:child_process';

const SCRIPT = `
import socket, sys, json, os, struct, array
addr = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind('\\0' + addr[1:] if addr.startswith('@') else addr)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
print(json.dumps({"listening": addr}), flush=True)
while True:
    msg, anc, flags, _ = s.recvmsg(65536, socket.CMSG_SPACE(12) + socket.CMSG_SPACE(64 * 4))
    pid = None; nfds = 0
    for level, typ, data in anc:
        if level == socket.SOL_SOCKET and typ == socket.SCM_CREDENTIALS:
            pid = struct.unpack('iII', data[:12])[0]
        elif level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
            fds = array.array('i'); fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
            for fd in fds: os.close(fd)
            nfds += len(fds)
    print(json.dumps({"pid": pid, "fds": nfds, "fields": msg.decode('utf-8', 'replace').split('\\n')}), flush=True)
`;

export interface Datagram {
  pid: number | null;
  fds: number;
  fields: string[];
  /** When it arrived (Date.now()). */
  at: number;
}

export class NotifyListener {
  readonly datagrams: Datagram[] = [];
  private waiters: Array<() => void> = [];

  private constructor(
    readonly address: string,
    private readonly child: ChildProcess,
  ) {}

  /** Starts listening on `address` (a path or `@name`); resolves once bound. */
  static start(address: string): Promise<NotifyListener> {
    const child = spawn('python3', ['-c', SCRIPT, address], { stdio: ['ignore', 'pipe', 'pipe'] });
    const l = new NotifyListener(address, child);
    let err = '';
    child.stderr?.on('data', (d: Buffer) => {
      err += d.toString();
    });
    return new Promise((resolve, reject) => {
      let buf = '';
      child.once('exit', (code) => reject(new Error(`notify listener exited (${code}): ${err}`)));
      child.stdout?.on('data', (d: Buffer) => {
        buf += d.toString();
        for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
          const line = JSON.parse(buf.slice(0, i)) as Partial<Datagram> & { listening?: string };
          buf = buf.slice(i + 1);
          if (line.listening !== undefined) resolve(l);
          else l.datagrams.push({ pid: line.pid ?? null, fds: line.fds ?? 0, fields: line.fields ?? [], at: Date.now() });
          for (const w of l.waiters.splice(0)) w();
        }
      });
    });
  }

  /** The datagrams that are not systemd-notify's BARRIER=1. */
  messages(): Datagram[] {
    return this.datagrams.filter((d) => !d.fields.includes('BARRIER=1'));
  }

  /** Waits until a message has `field` (e.g. "READY=1"), or throws after `timeoutMs`. */
  async waitFor(field: string, timeoutMs = 30_000): Promise<Datagram> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.messages().find((d) => d.fields.includes(field));
      if (hit) return hit;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${field} within ${timeoutMs} ms; got ${JSON.stringify(this.messages())}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  close(): void {
    this.child.kill('SIGKILL');
  }
}
