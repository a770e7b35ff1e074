/**
 * Unit tests of the dashboard sessions (src/server/session.ts): expiry, the bound on their
 * number, the cookie, and the origin and CSRF checks. No processes; the clock is passed in.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { CLEARED_COOKIE, checkSessionRequest, SessionStore, sessionId } from '../src/server/session.js';

/** A request as the checks see it: method and headers only. */
const req = (method: string, headers: Record<string, string> = {}): IncomingMessage =>
  ({ method, headers: { host: 'h:9345', ...headers } }) as unknown as IncomingMessage;

test('a session expires after its idle time and after its absolute time; an unknown id is no session', () => {
  const store = new SessionStore({ idleMs: 1000, absoluteMs: 5000 });
  const { id, session } = store.create(0);
  assert.equal(id.length, 43, '256 bits, base64url');
  assert.equal(session.csrf.length, 43);
  assert.equal(store.get(id, 999), session, 'used within the idle time');
  assert.equal(store.get(id, 1998), session, 'idle time counts from the last use');
  assert.equal(store.get(id, 2998), undefined, 'idle too long');
  assert.equal(store.get(id, 2999), undefined, 'and forgotten');
  const b = store.create(10_000);
  for (let t = 10_900; t < 15_000; t += 900) assert.ok(store.get(b.id, t), `alive at ${t}`);
  assert.equal(store.get(b.id, 15_000), undefined, 'absolute limit');
  assert.equal(store.get('not-a-session'), undefined);
  assert.equal(store.get(undefined), undefined);
  assert.equal(store.get(''), undefined);
});

test('sessions are bounded: the least recently used goes first; delete ends one', () => {
  const store = new SessionStore({ maxSessions: 3 });
  const a = store.create();
  const b = store.create();
  const c = store.create();
  assert.ok(store.get(a.id), 'a used: b is now the least recently used');
  const d = store.create();
  assert.equal(store.size, 3);
  assert.equal(store.get(b.id), undefined);
  for (const s of [a, c, d]) assert.ok(store.get(s.id));
  store.delete(c.id);
  assert.equal(store.get(c.id), undefined);
  store.delete(undefined);
  assert.equal(store.size, 2);
});

test('the cookie: __Host- prefix, HttpOnly, Secure, SameSite=Strict, Path=/; read back from a Cookie header', () => {
  const store = new SessionStore({ absoluteMs: 3600_000 });
  const { id } = store.create();
  const cookie = store.cookie(id);
  assert.equal(cookie, `__Host-etcdsnap-session=${id}; Max-Age=3600; Path=/; Secure; HttpOnly; SameSite=Strict`);
  assert.match(CLEARED_COOKIE, /^__Host-etcdsnap-session=; Max-Age=0; Path=\/; Secure; HttpOnly; SameSite=Strict$/);
  assert.equal(sessionId(req('GET', { cookie: `a=1; __Host-etcdsnap-session=${id}; b=2` })), id);
  assert.equal(sessionId(req('GET', { cookie: 'etcdsnap-session=x' })), undefined);
  assert.equal(sessionId(req('GET')), undefined);
});

test('origin and CSRF checks', () => {
  const { session } = new SessionStore().create();
  const csrf = { 'x-etcdsnap-csrf': session.csrf, 'content-type': 'application/json', 'content-length': '2' };
  assert.equal(checkSessionRequest(req('GET'), session), undefined, 'a read needs no CSRF token');
  assert.equal(checkSessionRequest(req('POST', csrf), session), undefined);
  assert.equal(checkSessionRequest(req('POST', { ...csrf, origin: 'https://h:9345', 'sec-fetch-site': 'same-origin' }), session), undefined);
  assert.equal(checkSessionRequest(req('POST', { ...csrf, 'content-type': 'application/json; charset=utf-8' }), session), undefined);
  const status = (headers: Record<string, string>, method = 'POST'): number | undefined => checkSessionRequest(req(method, headers), session)?.status;
  assert.equal(status({ ...csrf, origin: 'https://evil.example' }), 403);
  assert.equal(status({ ...csrf, origin: 'http://h:9345' }), 403, 'plain http is another origin');
  assert.equal(status({ origin: 'https://evil.example' }, 'GET'), 403, 'reads too');
  assert.equal(status({ ...csrf, 'sec-fetch-site': 'cross-site' }), 403);
  assert.equal(status({ ...csrf, 'sec-fetch-site': 'same-site' }), 403);
  assert.equal(status({ 'content-type': 'application/json', 'content-length': '2' }), 403, 'no CSRF header');
  assert.equal(status({ ...csrf, 'x-etcdsnap-csrf': 'x' }), 403, 'wrong CSRF header');
  assert.equal(status({ ...csrf, 'content-type': 'text/plain' }), 415);
  assert.equal(status({ ...csrf, 'content-type': 'application/x-www-form-urlencoded' }), 415);
  assert.equal(checkSessionRequest(req('POST', { ...csrf, 'x-etcdsnap-csrf': 'login' }), 'login'), undefined, 'a login needs the header, any value');
  assert.equal(checkSessionRequest(req('POST', { 'content-type': 'application/json', 'content-length': '2' }), 'login')?.status, 403);
});
