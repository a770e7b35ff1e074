/**
 * Slows down and quiets failed logins, per source. Pure: the caller passes the clock, and
 * this module neither waits nor logs; it only says how long to wait and whether to log.
 *
 * Policy (numbers from DEFAULT_LOGIN_THROTTLE):
 * - A source is an IPv4 address, or the /64 prefix of an IPv6 address (one host usually
 *   holds a whole /64, so counting single IPv6 addresses would not slow anybody down).
 * - A source's failures count up while they come less than `quietMs` apart; a quiet gap of
 *   `quietMs`, or a successful login from the source, starts the count over.
 * - The first `freeFailures` failures are answered at once; the n-th failure after them is
 *   answered after `baseDelayMs * 2^(n-1)`, at most `maxDelayMs` (5 free, then 0.25 s,
 *   0.5 s, 1 s, 2 s, then 4 s each: a typo costs nothing, guessing costs 4 s a try per
 *   connection, and a waiting 401 holds only an evictable connection).
 * - Logging: each of a streak's first `freeFailures` failures is logged (a mistyped token
 *   shows up at once); after that at most one line per source per `logIntervalMs`, carrying
 *   the number of failures not logged since its previous line. Never more than
 *   `maxLinesPerInterval` lines per `logIntervalMs` for all sources together (many sources
 *   must not flood the log either). Failures not logged stay counted on their source and are
 *   reported by its next line.
 * - At most `maxSources` sources are remembered; the least recently seen is forgotten first,
 *   so memory stays bounded whatever the number of sources.
 */
import net from 'node:net';

export interface LoginThrottleSettings {
  freeFailures: number;
  baseDelayMs: number;
  maxDelayMs: number;
  quietMs: number;
  logIntervalMs: number;
  maxLinesPerInterval: number;
  maxSources: number;
}

export const DEFAULT_LOGIN_THROTTLE: Readonly<LoginThrottleSettings> = {
  freeFailures: 5,
  baseDelayMs: 250,
  maxDelayMs: 4_000,
  quietMs: 60_000,
  logIntervalMs: 60_000,
  maxLinesPerInterval: 20,
  maxSources: 4096,
};

export interface ThrottleDecision {
  /** How long to hold the 401 back. */
  delayMs: number;
  /** Whether this failure gets a log line. */
  log: boolean;
  /** Failures of this source in its current streak, this one included. */
  failures: number;
  /** When `log`: failures of this source not logged since its previous line. */
  unlogged: number;
}

interface SourceState {
  failures: number;
  lastFailureAt: number;
  lastLogAt: number | undefined;
  unlogged: number;
}

export class LoginThrottle {
  private readonly sources = new Map<string, SourceState>();
  private readonly settings: LoginThrottleSettings;
  private windowStart = Number.NEGATIVE_INFINITY;
  private linesInWindow = 0;

  constructor(settings: Partial<LoginThrottleSettings> = {}) {
    this.settings = { ...DEFAULT_LOGIN_THROTTLE, ...settings };
  }

  /** Number of sources remembered (at most `maxSources`). */
  get size(): number {
    return this.sources.size;
  }

  /** Records a failed login from `source` (see `sourceKey`) at time `now` (ms). */
  failure(source: string, now: number): ThrottleDecision {
    const s = this.settings;
    const st = this.sources.get(source) ?? { failures: 0, lastFailureAt: now, lastLogAt: undefined, unlogged: 0 };
    this.sources.delete(source); // re-inserted below: the Map's order is "least recently seen first"
    if (now - st.lastFailureAt >= s.quietMs) st.failures = 0;
    st.failures++;
    st.lastFailureAt = now;
    this.sources.set(source, st);
    while (this.sources.size > s.maxSources) {
      const oldest = this.sources.keys().next();
      if (oldest.done === true) break;
      this.sources.delete(oldest.value);
    }
    const over = st.failures - s.freeFailures;
    const delayMs = over <= 0 ? 0 : Math.min(s.maxDelayMs, s.baseDelayMs * 2 ** Math.min(over - 1, 30));
    const due = st.failures <= s.freeFailures || st.lastLogAt === undefined || now - st.lastLogAt >= s.logIntervalMs;
    if (due && this.takeLine(now)) {
      const unlogged = st.unlogged;
      st.unlogged = 0;
      st.lastLogAt = now;
      return { delayMs, log: true, failures: st.failures, unlogged };
    }
    st.unlogged++;
    return { delayMs, log: false, failures: st.failures, unlogged: 0 };
  }

  /** A successful login from `source` ends its streak (failures not yet logged stay counted). */
  success(source: string): void {
    const st = this.sources.get(source);
    if (!st) return;
    if (st.unlogged === 0) this.sources.delete(source);
    else st.failures = 0;
  }

  private takeLine(now: number): boolean {
    if (now - this.windowStart >= this.settings.logIntervalMs) {
      this.windowStart = now;
      this.linesInWindow = 0;
    }
    if (this.linesInWindow >= this.settings.maxLinesPerInterval) return false;
    this.linesInWindow++;
    return true;
  }
}

/** The throttle's source for a remote address: IPv4 as is, IPv6 as its /64 prefix. */
export function sourceKey(address: string | undefined): string {
  if (address === undefined || address === '') return 'unknown';
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped?.[1] !== undefined) return mapped[1];
  const addr = address.split('%')[0] ?? address; // drop a zone id
  if (!net.isIPv6(addr)) return addr;
  const groupsOf = (part: string): string[] => (part === '' ? [] : part.split(':').flatMap((g) => (g.includes('.') ? ['0', '0'] : [g]))); // a dotted tail is 2 groups
  const [head = '', tail] = addr.split('::', 2);
  const h = groupsOf(head);
  const t = tail === undefined ? [] : groupsOf(tail);
  const groups = tail === undefined ? h : [...h, ...new Array<string>(Math.max(0, 8 - h.length - t.length)).fill('0'), ...t];
  return `${groups
    .slice(0, 4)
    .map((g) => parseInt(g, 16).toString(16))
    .join(':')}::/64`;
}
