/**
 * Dashboard sessions of the supervisor API (docs/dashboard.md): an in-memory store, the
 * session cookie, and the checks a session request must pass. Used by api.ts for routes
 * whose `auth` is `session` or `login`; a session never authenticates any other route.
 *
 * Contract:
 * - A session id and its CSRF token are 256 random bits each (base64url). The store keeps
 *   the sha256 of the id only, at most `maxSessions` sessions (the least recently used is
 *   dropped first), and forgets a session after `idleMs` without a request or `absoluteMs`
 *   after its login (defaults: 2 h, 12 h). Sessions live in memory: a restart logs everybody out.
 * - The cookie is `__Host-etcdsnap-session=<id>; HttpOnly; Secure; SameSite=Strict; Path=/`
 *   (the `__Host-` prefix makes browsers refuse it without Secure, with a Domain or another Path).
 * - `checkSessionRequest`: a request whose `Sec-Fetch-Site` is present and neither
 *   `same-origin` nor `none`, or whose `Origin` is present and is not `https://<Host>`, is
 *   refused (403), whatever its method. A state-changing request (not GET/HEAD) needs
 *   `Content-Type: application/json` when it has a body (415 otherwise) and the session's CSRF
 *   token in `X-Etcdsnap-Csrf` (403), compared in constant time. A login has no session yet:
 *   it needs the header with any non-empty value (a custom header makes a cross-site request
 *   need a CORS preflight, which the API never grants).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

export const SESSION_COOKIE = '__Host-etcdsnap-session';
export const CSRF_HEADER = 'x-etcdsnap-csrf';

export interface SessionSettings {
  maxSessions: number;
  idleMs: number;
  absoluteMs: number;
}

export const DEFAULT_SESSIONS: Readonly<SessionSettings> = {
  maxSessions: 64,
  idleMs: 2 * 3600_000,
  absoluteMs: 12 * 3600_000,
};

export interface Session {
  /** Sent by the page in `X-Etcdsnap-Csrf` with each state-changing request. */
  readonly csrf: string;
  readonly createdAt: number;
  lastSeen: number;
}

const digest = (id: string): string => createHash('sha256').update(id).digest('hex');

export class SessionStore {
  private readonly sessions = new Map<string, Session>();
  private readonly settings: SessionSettings;

  constructor(settings: Partial<SessionSettings> = {}) {
    this.settings = { ...DEFAULT_SESSIONS, ...settings };
  }

  get size(): number {
    return this.sessions.size;
  }

  /** A new session: its id (for the cookie only) and the session. */
  create(now = Date.now()): { id: string; session: Session } {
    const id = randomBytes(32).toString('base64url');
    const session: Session = { csrf: randomBytes(32).toString('base64url'), createdAt: now, lastSeen: now };
    this.sessions.set(digest(id), session);
    while (this.sessions.size > this.settings.maxSessions) {
      const oldest = this.sessions.keys().next();
      if (oldest.done === true) break;
      this.sessions.delete(oldest.value);
    }
    return { id, session };
  }

  /** The live session of `id` (touched), or undefined (unknown or expired: then forgotten). */
  get(id: string | undefined, now = Date.now()): Session | undefined {
    if (id === undefined || id === '') return undefined;
    const key = digest(id);
    const s = this.sessions.get(key);
    if (!s) return undefined;
    this.sessions.delete(key);
    if (now - s.lastSeen >= this.settings.idleMs || now - s.createdAt >= this.settings.absoluteMs) return undefined;
    s.lastSeen = now;
    this.sessions.set(key, s); // Map order: least recently used first
    return s;
  }

  /** Ends the session of `id` (no-op when unknown). */
  delete(id: string | undefined): void {
    if (id !== undefined) this.sessions.delete(digest(id));
  }

  /** The cookie that carries `id` (expires with the absolute limit). */
  cookie(id: string): string {
    return `${SESSION_COOKIE}=${id}; Max-Age=${Math.floor(this.settings.absoluteMs / 1000)}; Path=/; Secure; HttpOnly; SameSite=Strict`;
  }
}

/** The header that removes the session cookie. */
export const CLEARED_COOKIE = `${SESSION_COOKIE}=; Max-Age=0; Path=/; Secure; HttpOnly; SameSite=Strict`;

/** The session id in the request's cookies, if any. */
export function sessionId(req: IncomingMessage): string | undefined {
  const header = req.headers.cookie ?? '';
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === SESSION_COOKIE) return part.slice(i + 1).trim();
  }
  return undefined;
}

const SAFE_METHODS = new Set(['GET', 'HEAD']);

/** Why a session (or login) request is refused, as status and message; undefined when it passes. */
export function checkSessionRequest(req: IncomingMessage, session: Session | 'login'): { status: number; message: string } | undefined {
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') return { status: 403, message: 'cross-site request refused' };
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== `https://${req.headers.host ?? ''}`) return { status: 403, message: 'cross-origin request refused' };
  if (SAFE_METHODS.has(req.method ?? 'GET')) return undefined;
  const type = req.headers['content-type'];
  const hasBody = req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] ?? '0') !== '0';
  if (hasBody && !/^application\/json\s*(;|$)/i.test(type ?? '')) return { status: 415, message: 'request body must be application/json' };
  const given = req.headers[CSRF_HEADER];
  if (typeof given !== 'string' || given === '') return { status: 403, message: `missing ${CSRF_HEADER} header` };
  if (session === 'login') return undefined;
  const a = Buffer.from(given);
  const b = Buffer.from(session.csrf);
  if (a.length !== b.length || !timingSafeEqual(a, b)) return { status: 403, message: `wrong ${CSRF_HEADER} header` };
  return undefined;
}
