/**
 * Caps the supervisor API's open connections, so that anonymous clients cannot use up the
 * process's file descriptors while authenticated clients keep being served.
 *
 * Policy:
 * - Every accepted TCP connection is counted from the moment it is accepted (before its TLS
 *   handshake) until it closes. The cap defaults to half of the process's soft limit of open
 *   files (`Max open files` in /proc/self/limits), at most 1024 and at least 32
 *   (`maxConnectionsFor`); the other half is left to the etcd client, snapshot files, S3
 *   and the logs. With the common soft limit of 1024 that is 512; under `ulimit -n 256`, 128.
 * - A connection is busy while it serves an authenticated request: from the moment the
 *   request's credentials were accepted (`enter`) until its response is finished or the
 *   connection closed. Every other connection is evictable: TLS handshake, headers or body
 *   still arriving, idle keep-alive, a public request, a 401 being held back.
 * - When a connection arrives at the cap, one evictable connection is destroyed to make room:
 *   among the remote addresses, the one with the most evictable connections gives up its
 *   oldest (so one noisy source pays first; with a single source, the oldest connection
 *   goes). The newcomer is kept: refusing newcomers would let whoever fills the slots first
 *   lock everybody out, while evicting lets a new (possibly authenticated) client in and
 *   costs a stalled client only a reconnect. Only when every connection is busy is the
 *   newcomer refused (closed at once). Busy connections are never evicted.
 * - Evictions and refusals are logged at most once per minute, as counts.
 *
 * Limit: a client that opens new connections faster than `maxConnections` per TLS handshake
 * time, from the same address as a legitimate client, can still evict that client's new
 * connection before it has sent its credentials. The cap keeps the fd budget and the
 * authenticated work in flight safe; it does not make a flood free.
 */
import { readFileSync } from 'node:fs';
import type net from 'node:net';
import type tls from 'node:tls';
import type { Logger } from '../log/logger.js';

/** The cap for a soft open-files limit (`undefined`: unknown or unlimited). */
export function maxConnectionsFor(softLimit: number | undefined): number {
  if (softLimit === undefined || !Number.isFinite(softLimit) || softLimit <= 0) return 1024;
  return Math.max(32, Math.min(1024, Math.floor(softLimit / 2)));
}

/** The soft `Max open files` of this process, from /proc/self/limits text; undefined if unlimited or unreadable. */
export function softFdLimit(limitsText?: string): number | undefined {
  let text = limitsText;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/self/limits', 'utf8');
    } catch {
      return undefined;
    }
  }
  const m = /^Max open files\s+(\d+|unlimited)\s/m.exec(text);
  if (!m?.[1] || m[1] === 'unlimited') return undefined;
  return Number(m[1]);
}

interface Tracked {
  socket: net.Socket;
  address: string;
  /** `address|port`, taken when accepted (a closed socket may no longer know its peer). */
  key: string;
  /** Authenticated requests in progress on this connection. */
  busy: number;
}

const LOG_INTERVAL_MS = 60_000;

export class ConnectionGuard {
  /** Insertion order is age: the first entry is the oldest connection. */
  private readonly conns = new Map<net.Socket, Tracked>();
  /** `address|port` of each raw connection, to find the entry of its TLS socket. */
  private readonly byPeer = new Map<string, Tracked>();
  private readonly ofTls = new WeakMap<net.Socket, Tracked>();
  private evicted = 0;
  private refused = 0;
  private lastLogAt = Number.NEGATIVE_INFINITY;

  constructor(
    server: tls.Server,
    readonly maxConnections: number,
    private readonly logger: Logger,
  ) {
    server.on('connection', (s: net.Socket) => this.admit(s));
    server.on('secureConnection', (s: tls.TLSSocket) => {
      const e = this.byPeer.get(peerKey(s));
      if (e) this.ofTls.set(s, e);
    });
  }

  /** Open connections (at most `maxConnections`). */
  get size(): number {
    return this.conns.size;
  }

  /**
   * Marks the connection of `socket` (a request's TLS socket) busy until the returned
   * function is called (it may be called more than once).
   */
  enter(socket: net.Socket): () => void {
    const e = this.ofTls.get(socket) ?? this.byPeer.get(peerKey(socket));
    if (!e) return () => undefined;
    e.busy++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      e.busy--;
    };
  }

  private admit(socket: net.Socket): void {
    if (this.conns.size >= this.maxConnections) {
      const victim = this.victim();
      if (victim) {
        this.forget(victim);
        victim.socket.destroy();
        this.evicted++;
      } else {
        socket.destroy();
        this.refused++;
      }
      this.report();
      if (!victim) return;
    }
    const e: Tracked = { socket, address: socket.remoteAddress ?? '', key: peerKey(socket), busy: 0 };
    this.conns.set(socket, e);
    if (socket.remoteAddress !== undefined) this.byPeer.set(e.key, e);
    socket.once('close', () => this.forget(e));
  }

  private forget(e: Tracked): void {
    if (this.conns.get(e.socket) !== e) return;
    this.conns.delete(e.socket);
    if (this.byPeer.get(e.key) === e) this.byPeer.delete(e.key);
  }

  /** The oldest evictable connection of the address with the most evictable connections. */
  private victim(): Tracked | undefined {
    const count = new Map<string, number>();
    const oldest = new Map<string, Tracked>();
    for (const e of this.conns.values()) {
      if (e.busy > 0) continue;
      count.set(e.address, (count.get(e.address) ?? 0) + 1);
      if (!oldest.has(e.address)) oldest.set(e.address, e);
    }
    let best: string | undefined;
    for (const [addr, n] of count) if (best === undefined || n > (count.get(best) ?? 0)) best = addr; // ties: the first seen has the oldest connection
    return best === undefined ? undefined : oldest.get(best);
  }

  private report(): void {
    const now = Date.now();
    if (now - this.lastLogAt < LOG_INTERVAL_MS) return;
    this.lastLogAt = now;
    this.logger.warn(
      { maxConnections: this.maxConnections, evicted: this.evicted, refused: this.refused },
      'supervisor API at its connection cap: closed idle or incomplete connections to make room',
    );
    this.evicted = 0;
    this.refused = 0;
  }
}

function peerKey(s: net.Socket): string {
  return `${s.remoteAddress ?? ''}|${s.remotePort ?? ''}`;
}
