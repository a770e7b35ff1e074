/**
 * The web dashboard (issue 15, docs/dashboard.md) against a real server, etcd and Swift:
 * the session and CSRF boundary over plain HTTPS requests, then headless Chromium
 * (Debian's chromium through playwright-core; scripts/install.sh --test installs it, and a
 * missing browser fails this file): login, cookie flags, the list against
 * `etcd-snapshot ls`, save now, download, delete, a failed upload's error, logout.
 * With ETCDSNAP_SCREENSHOTS_DIR set (`npm run docs:screenshots`), the desktop and phone
 * screenshots are written there (docs/images/); otherwise into a temp dir.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { startSwift, s3CliFlags, s3ServerFlags, type Swift } from './helpers/swift.js';
import { NEWER_RECORD_NOTE } from '../src/model/records.js';
import { killStarted, ROOT, snapshotCli, startReady, tempDir, waitUntil, type ServerProcess } from './helpers/server.js';

const CHROMIUM = '/usr/bin/chromium';

let swift: Swift;
let browser: Browser;
let server: ServerProcess;
const env = (): Record<string, string> => ({ AWS_ACCESS_KEY_ID: swift.accessKey, AWS_SECRET_ACCESS_KEY: swift.secretKey });

before(async () => {
  // no skip: a missing browser fails the file (Debian package chromium, scripts/install.sh --test)
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
  swift = await startSwift();
  await swift.createBucket('dash');
  server = await startReady({ args: s3ServerFlags(swift, 'dash'), env: env() });
});
after(async () => {
  await browser?.close();
  killStarted();
  await swift?.stop();
});

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** An HTTPS request (CA not checked) with headers and an optional body. */
function request(url: string, method: string, headers: Record<string, string> = {}, body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method, headers, rejectUnauthorized: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const secretOf = (s: ServerProcess): string => s.token().split('::server:')[1] ?? '';
const json = { 'content-type': 'application/json' };

test('session and CSRF boundary: cookie flags, origin and CSRF checks, a session never opens a token route', async () => {
  const s = server;
  const page = await request(`${s.url}/`, 'GET');
  assert.equal(page.status, 200);
  assert.match(String(page.headers['content-type']), /^text\/html/);
  assert.match(String(page.headers['content-security-policy']), /default-src 'self'/);
  assert.equal(page.headers['x-content-type-options'], 'nosniff');
  assert.equal(page.headers['x-frame-options'], 'DENY');
  assert.ok(!/<script>|\son\w+=/.test(page.body), 'no inline script or handler');

  const loginHeaders = { ...json, 'x-etcdsnap-csrf': 'login' };
  const wrong = await request(`${s.url}/ui/login`, 'POST', loginHeaders, JSON.stringify({ token: 'not-the-token-at-all' }));
  assert.equal(wrong.status, 401);
  assert.equal(wrong.headers['set-cookie'], undefined, 'no cookie for a wrong token');
  const noHeader = await request(`${s.url}/ui/login`, 'POST', json, JSON.stringify({ token: secretOf(s) }));
  assert.equal(noHeader.status, 403, 'login without the custom header');
  const foreign = await request(`${s.url}/ui/login`, 'POST', { ...loginHeaders, origin: 'https://evil.example' }, JSON.stringify({ token: secretOf(s) }));
  assert.equal(foreign.status, 403, 'login from another origin');
  const form = await request(`${s.url}/ui/login`, 'POST', { 'content-type': 'application/x-www-form-urlencoded', 'x-etcdsnap-csrf': 'login' }, 'token=x');
  assert.equal(form.status, 415, 'a form post');

  const ok = await request(
    `${s.url}/ui/login`,
    'POST',
    { ...loginHeaders, origin: `https://127.0.0.1:${s.ports.supervisor}` },
    JSON.stringify({ token: s.token() }),
  );
  assert.equal(ok.status, 200, `the full token with its own origin: ${ok.body}`);
  const set = String(ok.headers['set-cookie']);
  assert.match(set, /^__Host-etcdsnap-session=[A-Za-z0-9_-]{43};/);
  for (const flag of ['HttpOnly', 'Secure', 'SameSite=Strict', 'Path=/']) assert.ok(set.includes(flag), `${flag} in ${set}`);
  const cookie = set.split(';')[0] ?? '';
  const { csrf } = JSON.parse(ok.body) as { csrf: string };

  const state = await request(`${s.url}/ui/state`, 'GET', { cookie });
  assert.equal(state.status, 200, state.body);
  assert.equal(state.headers['cache-control'], 'no-store');
  assert.equal((await request(`${s.url}/ui/state`, 'GET')).status, 401, 'no cookie');
  assert.equal((await request(`${s.url}/ui/state`, 'GET', { authorization: `Bearer ${secretOf(s)}` })).status, 401, 'the token opens no session route');
  assert.equal((await request(`${s.url}/ui/state`, 'GET', { cookie: '__Host-etcdsnap-session=forged' })).status, 401);

  const del = (headers: Record<string, string>): Promise<Answer> =>
    request(`${s.url}/ui/delete`, 'POST', { cookie, ...json, ...headers }, JSON.stringify({ name: 'x' }));
  assert.equal((await del({})).status, 403, 'missing CSRF header');
  assert.equal((await del({ 'x-etcdsnap-csrf': `${csrf.slice(1)}A` })).status, 403, 'wrong CSRF header');
  assert.equal((await del({ 'x-etcdsnap-csrf': csrf, origin: 'https://evil.example' })).status, 403, 'cross origin');
  assert.equal((await del({ 'x-etcdsnap-csrf': csrf, 'sec-fetch-site': 'cross-site' })).status, 403, 'cross site');
  const bad = await request(`${s.url}/ui/delete`, 'POST', { cookie, ...json, 'x-etcdsnap-csrf': csrf }, JSON.stringify({ name: '../etc/passwd' }));
  assert.equal(bad.status, 400);
  assert.match(bad.body, /^\{"error":"[^\n]*"\}$/, 'one-line JSON error');
  const missing = await request(`${s.url}/ui/download?name=nope&store=local`, 'GET', { cookie });
  assert.equal(missing.status, 404, missing.body);

  // the session cookie authenticates the dashboard's routes only
  const listBody = JSON.stringify({ operation: 'list', name: [] });
  for (const [method, route, body] of [
    ['POST', '/db/snapshot', listBody],
    ['GET', '/db/snapshot/progress', undefined],
    ['GET', '/v1/cluster/bootstrap', undefined],
    ['GET', '/v1/cluster/members', undefined],
    ['GET', '/v1/snapshots/status?snapshot=x', undefined],
    ['GET', '/metrics', undefined],
  ] as const) {
    const r = await request(`${s.url}${route}`, method, { cookie, 'x-etcdsnap-csrf': csrf, ...json }, body);
    assert.equal(r.status, 401, `${method} ${route} with a session cookie`);
  }
  const withToken = await request(`${s.url}/db/snapshot`, 'POST', { authorization: `Bearer ${secretOf(s)}`, ...json }, listBody);
  assert.equal(withToken.status, 200, 'the same request with the token');

  const out = await request(`${s.url}/ui/logout`, 'POST', { cookie, ...json, 'x-etcdsnap-csrf': csrf }, '{}');
  assert.equal(out.status, 200);
  assert.match(String(out.headers['set-cookie']), /^__Host-etcdsnap-session=; Max-Age=0/);
  assert.equal((await request(`${s.url}/ui/state`, 'GET', { cookie })).status, 401, 'the old cookie after logout');
});

interface Row {
  name: string;
  location: string;
  size: number;
  createdAt: string;
  status: string;
}

/** The table's rows, from their data attributes (exact values; the cells show them formatted). */
async function rows(page: Page): Promise<Row[]> {
  const out: Row[] = [];
  for (const tr of await page.locator('#snapshots tbody tr').all()) {
    const a = async (k: string): Promise<string> => (await tr.getAttribute(`data-${k}`)) ?? '';
    out.push({ name: await a('name'), location: await a('location'), size: Number(await a('size')), createdAt: await a('created'), status: await a('status') });
  }
  return out;
}

const byKey = (a: { location: string; name: string }, b: { location: string; name: string }): number =>
  a.location.localeCompare(b.location) || a.name.localeCompare(b.name);

const shotDir = (): string => {
  const dir = process.env.ETCDSNAP_SCREENSHOTS_DIR ? path.resolve(ROOT, process.env.ETCDSNAP_SCREENSHOTS_DIR) : tempDir('etcdsnap-shots-');
  mkdirSync(dir, { recursive: true });
  return dir;
};

async function newPage(width = 1280, height = 900, mobile = false): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width, height }, isMobile: mobile, hasTouch: mobile, acceptDownloads: true });
  return { context, page: await context.newPage() };
}

test('in the browser: login, the list as ls shows it, save now, download, delete, logout', async () => {
  const s = server;
  for (let i = 0; i < 2; i++) {
    const r = snapshotCli(s, ['save', ...s3CliFlags(swift, 'dash')], env());
    assert.equal(r.code, 0, r.stderr);
  }
  const { context, page } = await newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => {
    // the 401s of the logged-out state are expected; a CSP violation or a script error is not
    if (m.type() === 'error' && !/status of 401/.test(m.text())) errors.push(m.text());
  });
  await page.goto(s.url);
  await page.locator('#login-form').waitFor();
  await page.fill('#token', 'wrong-token-wrong-token');
  await page.click('#login-form button[type=submit]');
  await page.locator('#login-error').filter({ hasText: 'Wrong token' }).waitFor();
  assert.deepEqual(await context.cookies(), [], 'no cookie after a wrong token');

  await page.fill('#token', s.token());
  await page.click('#login-form button[type=submit]');
  await page.locator('#app').waitFor();
  await page.locator('#snapshots tbody tr').first().waitFor();
  const cookies = await context.cookies();
  assert.equal(cookies.length, 1);
  const c = cookies[0];
  assert.ok(c);
  assert.equal(c.name, '__Host-etcdsnap-session');
  assert.equal(c.httpOnly, true);
  assert.equal(c.secure, true);
  assert.equal(c.sameSite, 'Strict');
  assert.equal(c.path, '/');

  // the same snapshots as `etcd-snapshot ls` with the server's S3 settings
  const ls = snapshotCli(s, ['ls', '-o', 'json', ...s3CliFlags(swift, 'dash')], env());
  assert.equal(ls.code, 0, ls.stderr);
  const listed = (JSON.parse(ls.stdout) as Row[]).map((r) => ({ name: r.name, location: r.location, size: r.size, createdAt: r.createdAt, status: r.status }));
  assert.equal(listed.length, 4, 'two local and two S3 snapshots');
  assert.deepEqual((await rows(page)).sort(byKey), listed.sort(byKey));
  assert.match((await page.locator('#schedule').textContent()) ?? '', /Next run/);

  // save now: a new local and S3 row. The save is too quick to see its progress for sure, so
  // the page's first progress answer is replaced by one of a running save, and the next one
  // held until the page has shown it; the save itself runs for real.
  const before = new Set((await rows(page)).map((r) => r.name));
  let release: () => void = () => undefined;
  const held = new Promise<void>((resolve) => {
    release = resolve;
  });
  let polls = 0;
  await page.route('**/ui/progress', async (route) => {
    if (++polls > 1) {
      await held;
      return route.continue();
    }
    const startedAt = new Date().toISOString();
    const saving = { name: 'on-demand-node1-1796000000', phase: 'streaming', bytes: 512 * 1024, totalBytes: 1024 * 1024, startedAt, scheduled: false };
    return route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify({ saving, lastSave: { startedAt, running: true } }) });
  });
  await page.click('#save');
  await page.locator('#progress-text').filter({ hasText: 'saving on-demand-node1-1796000000: 512.0 KiB of about 1.0 MiB' }).waitFor();
  assert.equal(await page.locator('#save').isDisabled(), true, 'no second save while one runs');
  assert.equal(
    await page.locator('#progress-bar').evaluate((e) => (e as unknown as { value: number; max: number }).value / (e as unknown as { max: number }).max),
    0.5,
  );
  release();
  await page.unroute('**/ui/progress');
  await page
    .locator('#save-result')
    .filter({ hasText: /^Saved / })
    .waitFor({ timeout: 60_000 });
  await page
    .locator('#snapshots tbody tr')
    .nth(before.size + 1)
    .waitFor();
  const added = (await rows(page)).filter((r) => !before.has(r.name));
  assert.equal(added.length, 2, JSON.stringify(added));
  assert.deepEqual(added.map((r) => r.location.slice(0, 5)).sort(), ['file:', 's3://']);
  const name = added[0]?.name ?? '';

  // screenshots (docs/images/ with npm run docs:screenshots)
  const dir = shotDir();
  await page.screenshot({ path: path.join(dir, 'dashboard-desktop.png'), fullPage: true });
  const phone = await newPage(390, 844, true);
  await phone.context.addCookies(cookies);
  await phone.page.goto(s.url);
  await phone.page.locator('#snapshots tbody tr').first().waitFor();
  await phone.page.screenshot({ path: path.join(dir, 'dashboard-phone.png'), fullPage: true });
  await phone.context.close();

  // download, local and S3: the bytes as stored
  const local = readFileSync(path.join(s.dataDir, 'server', 'db', 'snapshots', name));
  for (const store of ['local', 's3']) {
    const [download] = await Promise.all([page.waitForEvent('download'), page.click(`tr[data-name="${name}"][data-store="${store}"] a.download`)]);
    assert.equal(download.suggestedFilename(), name);
    const file = path.join(tempDir(), `dl-${store}`);
    await download.saveAs(file);
    const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
    assert.equal(sha(readFileSync(file)), sha(local), `${store} download`);
  }

  // delete with the confirmation dialog: cancel keeps it, delete removes both copies
  await page.click(`tr[data-name="${name}"][data-store="local"] button.delete`);
  await page.locator('#confirm').waitFor();
  assert.equal(await page.locator('#confirm-name').textContent(), name);
  await page.click('#confirm-cancel');
  await page.locator('#confirm').waitFor({ state: 'hidden' });
  assert.equal(await page.locator(`tr[data-name="${name}"]`).count(), 2);
  await page.click(`tr[data-name="${name}"][data-store="local"] button.delete`);
  await page.click('#confirm-ok');
  await page.locator(`tr[data-name="${name}"]`).first().waitFor({ state: 'detached' });
  const after = snapshotCli(s, ['ls', '-o', 'json', ...s3CliFlags(swift, 'dash')], env());
  assert.ok(!after.stdout.includes(name), 'gone from ls too');

  // logout: the login form again, and the old cookie is refused
  await page.click('#logout');
  await page.locator('#login-form').waitFor();
  const old = await request(`${s.url}/ui/state`, 'GET', { cookie: `${c.name}=${c.value}` });
  assert.equal(old.status, 401);
  await page.reload();
  await page.locator('#login-form').waitFor();
  assert.deepEqual(errors, [], 'no script error in the page');
  await context.close();
});

test('in the browser: a failed upload shows its error in the table and as the last failure', async () => {
  // a bucket that does not exist: the scheduled saves keep the local snapshot and record the failed upload
  const s = await startReady({ args: [...s3ServerFlags(swift, 'dash-missing-bucket'), '--etcd-snapshot-schedule-cron', '@every 2s'], env: env() });
  const { context, page } = await newPage();
  await page.goto(s.url);
  await page.fill('#token', secretOf(s));
  await page.click('#login-form button[type=submit]');
  await page.locator('#app').waitFor();
  await waitUntil(
    async () => {
      await page.click('#refresh');
      return (await page.locator('tr[data-status="failed"] .message').count()) > 0;
    },
    60_000,
    'a failed upload in the table',
  );
  const message = (await page.locator('tr[data-status="failed"] .message').first().textContent()) ?? '';
  assert.match(message, /bucket|NoSuchBucket|not found|does not exist/i);
  const failed = (await page.locator('#last-failure').textContent()) ?? '';
  assert.match(failed, /upload of /);
  assert.ok(failed.includes(message), `${failed} carries the record's message`);
  await context.close();
  assert.equal(await s.stop(), 0);
});

test("in the browser: each row's last restore drill, passed with its revision and keys, FAILED with its reason, '-' when never drilled; a newer record's note", async () => {
  const s = await startReady({ args: ['--etcd-disable-snapshots'] });
  const saved = (): string => {
    const r = snapshotCli(s, ['save']);
    assert.equal(r.code, 0, r.stderr);
    return /^Snapshot (\S+) saved\./m.exec(r.stdout)?.[1] ?? '';
  };
  const [good, bad, never, newer] = [saved(), saved(), saved(), saved()];
  // a record a newer etcdsnap wrote: listed with ls's note, not offered for download
  writeFileSync(path.join(s.dataDir, 'server', 'db', '.metadata', newer), JSON.stringify({ name: newer, formatVersion: 99 }));
  const green = snapshotCli(s, ['drill', good]);
  assert.equal(green.code, 0, green.stdout + green.stderr);
  const passed = /revision (\d+), (\d+) keys/.exec(green.stdout);
  assert.ok(passed, green.stdout);
  // a bit flipped after the save: the drill fails on the record's sha256
  const file = path.join(s.dataDir, 'server', 'db', 'snapshots', bad);
  const bytes = readFileSync(file);
  const at = Math.floor(bytes.length / 2);
  bytes[at] = (bytes[at] ?? 0) ^ 0x10;
  writeFileSync(file, bytes);
  assert.equal(snapshotCli(s, ['drill', bad]).code, 1);

  const { context, page } = await newPage();
  await page.goto(s.url);
  await page.fill('#token', secretOf(s));
  await page.click('#login-form button[type=submit]');
  await page.locator(`tr[data-name="${never}"]`).waitFor();
  const cell = page.locator(`tr[data-name="${good}"] td[data-label="Drill"]`);
  assert.equal(await cell.getAttribute('data-drill'), 'passed');
  assert.match((await cell.textContent()) ?? '', /^passed \S/);
  assert.match((await cell.getAttribute('title')) ?? '', new RegExp(`: revision ${passed[1]}, ${passed[2]} keys$`));
  const red = page.locator(`tr[data-name="${bad}"] td[data-label="Drill"]`);
  assert.equal(await red.getAttribute('data-drill'), 'failed');
  assert.match((await red.textContent()) ?? '', /^FAILED \S/);
  assert.match((await red.locator('.message').textContent()) ?? '', /does not match the sha256 in its record/);
  assert.equal(await page.locator(`tr[data-name="${never}"] td[data-label="Drill"]`).textContent(), '-');
  assert.equal(await page.locator('#snapshots thead th').nth(7).textContent(), 'Drill');
  const newerRow = page.locator(`tr[data-name="${newer}"]`);
  assert.equal(await newerRow.locator('.note').textContent(), NEWER_RECORD_NOTE);
  assert.match((await newerRow.locator('.note').getAttribute('title')) ?? '', /written by a newer etcdsnap/);
  assert.equal(await newerRow.locator('a.download').count(), 0, 'no download of a record this version cannot read');
  assert.equal(await page.locator(`tr[data-name="${never}"] a.download`).count(), 1);
  await context.close();
  assert.equal(await s.stop(), 0);
});
