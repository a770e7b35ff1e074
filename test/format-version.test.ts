/**
 * Format versions (model/format-version.ts, docs/upgrades.md): every reader accepts what
 * 0.1.0 wrote (no version), the current version, and refuses current+1 with one line that
 * says a newer etcdsnap wrote it and to upgrade this node. Records (local and bucket
 * sidecars, the listing, the table), the sealed bootstrap data, change log segments and the
 * supervisor API (server and client).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { API_VERSION, API_VERSION_HEADER, checkFormatVersion, FORMATS, headerVersion, RECORD_FORMAT_VERSION } from '../src/model/format-version.js';
import { parseRecord, recordFromBucketSidecar, sidecarText, type SnapshotRecord } from '../src/model/records.js';
import { LocalStore } from '../src/store/local.js';
import { renderRecords } from '../src/cli/output.js';
import { NEWER_RECORD_NOTE } from '../src/model/records.js';
import { openBootstrap, sealBootstrap } from '../src/server/bootstrap-data.js';
import { decodeSegment, encodeFooter, encodeHeader, encodeRecord, FORMAT_VERSION, segmentName } from '../src/changelog/format.js';
import { SupervisorApi } from '../src/server/api.js';
import { SupervisorClient } from '../src/server/api-client.js';
import { createCa, issueLeaf } from '../src/etcd/pki.js';
import { createLogger } from '../src/log/logger.js';
import { EtcdsnapError } from '../src/errors.js';

const NEWER = /was written by a newer etcdsnap \(snapshot record format 2; this etcdsnap reads up to 1\): upgrade etcdsnap on this node$/;

const REC: SnapshotRecord = {
  name: 'on-demand-n1-1795653347',
  location: 'file:///x/on-demand-n1-1795653347',
  nodeName: 'n1',
  createdAt: '2026-11-26T00:35:47Z',
  size: 20512,
  compressed: false,
  status: 'successful',
  revision: '12',
};
const json = (extra: Record<string, unknown>): string => JSON.stringify({ ...REC, ...extra });

test('checkFormatVersion: absent is 1, up to the current one is read, a newer one is refused with one line, a malformed one is invalid', () => {
  for (const f of Object.keys(FORMATS) as Array<keyof typeof FORMATS>) {
    const mine = FORMATS[f].version;
    assert.deepEqual(checkFormatVersion(f, undefined, 'x'), { ok: true, version: 1 });
    assert.deepEqual(checkFormatVersion(f, mine, 'x'), { ok: true, version: mine });
    const v = checkFormatVersion(f, mine + 1, 'x');
    assert.equal(v.ok, false);
    assert.ok(!v.ok && v.reason === 'newer' && v.message.includes(`format ${mine + 1}; this etcdsnap reads up to ${mine}): upgrade`), JSON.stringify(v));
    assert.ok(!v.ok && !v.message.includes('\n'));
    for (const bad of [0, -1, 1.5, '1', null]) assert.equal((checkFormatVersion(f, bad, 'x') as { reason?: string }).reason, 'invalid', String(bad));
  }
  assert.equal(headerVersion(undefined), undefined);
  assert.equal(headerVersion(' 2 '), 2);
  assert.equal(headerVersion('two'), 'two');
});

test('records: a sidecar carries formatVersion; 0.1.0 sidecars (none) and current ones parse; a newer one throws the one-line refusal', () => {
  const text = sidecarText({ ...REC, newerRecord: 'listing only' });
  const o = JSON.parse(text) as Record<string, unknown>;
  assert.equal(o.formatVersion, RECORD_FORMAT_VERSION);
  assert.equal(o.newerRecord, undefined, 'a listing-only field is never written');
  assert.deepEqual(parseRecord(text), REC);
  assert.deepEqual(parseRecord(json({})), REC, 'a 0.1.0 sidecar');
  assert.equal(parseRecord(json({ formatVersion: 'x' })), undefined, 'a malformed version is not a record');
  assert.equal(parseRecord(json({ newerRecord: 'from a sidecar' }))?.newerRecord, undefined, 'never taken from a sidecar');
  assert.throws(
    () => parseRecord(json({ formatVersion: RECORD_FORMAT_VERSION + 1 }), 'file:///x/on-demand-n1-1795653347'),
    (e: unknown) => e instanceof EtcdsnapError && e.kind === 'environment' && NEWER.test(e.message) && e.message.startsWith('the record of file:///x/'),
  );
  const facts = { name: REC.name, location: 's3://b/f/x', createdAt: REC.createdAt, size: 1, compressed: false };
  assert.equal(recordFromBucketSidecar(json({}), facts)?.record.revision, '12');
  assert.equal(recordFromBucketSidecar(json({ formatVersion: 1 }), facts)?.record.revision, '12');
  assert.throws(
    () => recordFromBucketSidecar(json({ formatVersion: RECORD_FORMAT_VERSION + 1 }), facts),
    (e: unknown) => e instanceof EtcdsnapError && e.message.startsWith('the record of s3://b/f/x was written by a newer etcdsnap'),
  );
});

test('local store: writes formatVersion; ls lists a snapshot whose record is newer with the reason (no crash); readRecord refuses it', async () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'fmt-'));
  const dir = path.join(root, 'snapshots');
  mkdirSync(dir, { mode: 0o700 });
  const store = new LocalStore(dir);
  // a snapshot file needs content that looks like a snapshot: a name of the naming scheme is enough
  const names = ['old-n1-1795653347', 'cur-n1-1795653348', 'new-n1-1795653349'];
  for (const n of names) writeFileSync(path.join(dir, n), 'x'.repeat(100), { mode: 0o600 });
  mkdirSync(path.join(root, '.metadata'), { mode: 0o700 });
  writeFileSync(path.join(root, '.metadata', names[0] ?? ''), json({ name: names[0] }));
  await store.writeRecord({ ...REC, name: names[1] ?? '' });
  assert.equal((JSON.parse(readFileSync(path.join(root, '.metadata', names[1] ?? ''), 'utf8')) as { formatVersion?: number }).formatVersion, 1);
  writeFileSync(path.join(root, '.metadata', names[2] ?? ''), json({ name: names[2], formatVersion: 2, nodeName: 'other' }));
  const listed = (await store.list({ nodeName: 'n1' })).sort((a, b) => a.name.slice(-10).localeCompare(b.name.slice(-10)));
  assert.deepEqual(
    listed.map((r) => [r.name, r.revision, r.newerRecord !== undefined]),
    [
      ['old-n1-1795653347', '12', false],
      ['cur-n1-1795653348', '12', false],
      ['new-n1-1795653349', undefined, true],
    ],
  );
  const newer = listed[2];
  assert.ok(newer && NEWER.test(newer.newerRecord ?? '') && newer.nodeName === 'n1', 'only what the store knows, with the reason');
  await assert.rejects(store.readRecord(names[2] ?? ''), (e: unknown) => e instanceof EtcdsnapError && NEWER.test(e.message));
  const table = renderRecords(listed, 'table');
  assert.match(table, /Note\n/);
  assert.match(table, new RegExp(`new-n1-1795653349 .* ${NEWER_RECORD_NOTE}\n`));
});

test('bootstrap data: versions 1 and 2 open (bootstrap-seal.test.ts); a newer version is refused as newer, before any scrypt', async () => {
  const ca = { certPem: '-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\n', keyPem: 'k' };
  const sealed = await sealBootstrap(ca, 'secret1');
  assert.equal((JSON.parse(sealed) as { v: number }).v, FORMATS.bootstrap.version);
  assert.deepEqual(await openBootstrap(sealed, 'secret1'), { ok: true, ca });
  const newer = await openBootstrap(
    JSON.stringify({ ...(JSON.parse(sealed) as object), v: FORMATS.bootstrap.version + 1, kdf: { name: 'argon2id' } }),
    'secret1',
  );
  assert.equal(newer.ok, false);
  assert.ok(
    !newer.ok &&
      newer.reason === 'newer' &&
      newer.message ===
        "the snapshot's bootstrap data was sealed by a newer etcdsnap (bootstrap data (the sealed cluster CA) format 3; this etcdsnap reads up to 2): upgrade etcdsnap on this node",
    JSON.stringify(newer),
  );
});

test('change log: a segment of the current version decodes; a newer one is refused, saying a newer etcdsnap wrote it', () => {
  const chain = '0123456789abcdef';
  const make = (version: number): { name: string; bytes: Buffer } => {
    const header = JSON.parse(encodeHeader({ chain, cluster: '42', first: 5 }).toString('utf8')) as Record<string, unknown>;
    const body = Buffer.concat([
      Buffer.from(`${JSON.stringify({ ...header, version })}\n`),
      encodeRecord({ revision: 5, time: 100, events: [{ type: 'delete', key: Buffer.from('a') }] }),
    ]);
    const footer = encodeFooter({
      first: 5,
      last: 5,
      records: 1,
      firstTime: 100,
      lastTime: 100,
      sealedAt: 100,
      sha256: createHash('sha256').update(body).digest('hex'),
    });
    return { name: segmentName(chain, 5, 5), bytes: Buffer.concat([body, footer]) };
  };
  const cur = make(FORMAT_VERSION);
  assert.equal(decodeSegment(cur.name, cur.bytes).records.length, 1);
  const next = make(FORMAT_VERSION + 1);
  assert.throws(
    () => decodeSegment(next.name, next.bytes),
    (e: unknown) =>
      e instanceof EtcdsnapError &&
      e.message ===
        `change log segment ${next.name}: it was written by a newer etcdsnap (change log segment format 2; this etcdsnap reads up to 1): upgrade etcdsnap on this node`,
  );
});

const SECRET = 'format-version-secret-0123456789abcdef';

/** A CA, a server certificate of it, and a data dir whose server/tls/server-ca.crt is the CA (for a bare-secret client). */
async function pki(): Promise<{ leaf: { certPem: string; keyPem: string }; dataDir: string }> {
  const ca = await createCa('format-version-ca');
  const leaf = await issueLeaf(ca, { commonName: 'supervisor', usage: 'server', hosts: ['127.0.0.1'] });
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'fmt-api-'));
  mkdirSync(path.join(dataDir, 'server', 'tls'), { recursive: true });
  writeFileSync(path.join(dataDir, 'server', 'tls', 'server-ca.crt'), ca.certPem);
  return { leaf, dataDir };
}

test('API: answers carry the version; a request declaring none or the current one is served, a newer one is a 400 naming the fix; the client refuses a newer server', async () => {
  const { leaf, dataDir } = await pki();
  const logger = createLogger({ format: 'json', debug: false, destination: { write: () => undefined } });
  const api = new SupervisorApi({ host: '127.0.0.1', port: 0, certPem: leaf.certPem, keyPem: leaf.keyPem, secret: SECRET, logger });
  api.route({ method: 'GET', path: '/v1/thing', handle: () => ({ status: 200, body: { ok: true } }) });
  const port = await api.listen();
  const client = await SupervisorClient.connect({ server: `https://127.0.0.1:${port}`, token: SECRET, dataDir, timeoutMs: 5000 });
  try {
    assert.deepEqual(await client.get('/v1/thing'), { ok: true }, 'the client declares the current version');
    const raw = (version?: string): Promise<{ status: number; header: unknown; body: string }> =>
      new Promise((resolve, reject) => {
        const headers: Record<string, string> = { authorization: `Bearer ${SECRET}` };
        if (version !== undefined) headers[API_VERSION_HEADER] = version;
        https
          .get(`https://127.0.0.1:${port}/v1/thing`, { rejectUnauthorized: false, headers }, (res) => {
            let body = '';
            res.on('data', (c: Buffer) => {
              body += c.toString();
            });
            res.on('end', () => resolve({ status: res.statusCode ?? 0, header: res.headers[API_VERSION_HEADER], body }));
          })
          .on('error', reject);
      });
    const none = await raw();
    assert.deepEqual([none.status, none.header], [200, String(API_VERSION)], 'a 0.1.0 client (no header) is served; the answer says the version');
    assert.equal((await raw(String(API_VERSION))).status, 200);
    const newer = await raw(String(API_VERSION + 1));
    assert.equal(newer.status, 400);
    assert.equal(
      (JSON.parse(newer.body) as { error: string }).error,
      'the request to /v1/thing comes from a newer etcdsnap (API format 2; this etcdsnap reads up to 1): upgrade this etcdsnap server (or use an etcdsnap of its version)',
    );
    assert.equal((await raw('x')).status, 400, 'a malformed version');
  } finally {
    await api.close();
  }

  // a server answering with a newer API version (a stand-in: a future etcdsnap)
  const future = https.createServer({ cert: leaf.certPem, key: leaf.keyPem }, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', [API_VERSION_HEADER]: String(API_VERSION + 1) });
    res.end('{"ok":true}');
  });
  await new Promise<void>((resolve) => future.listen(0, '127.0.0.1', resolve));
  try {
    const addr = future.address();
    const futurePort = typeof addr === 'object' && addr ? addr.port : 0;
    const c = await SupervisorClient.connect({ server: `https://127.0.0.1:${futurePort}`, token: SECRET, dataDir, timeoutMs: 5000 });
    await assert.rejects(
      c.get('/v1/thing'),
      (e: unknown) =>
        e instanceof EtcdsnapError &&
        e.kind === 'environment' &&
        e.message ===
          `the server at https://127.0.0.1:${futurePort} comes from a newer etcdsnap (API format 2; this etcdsnap reads up to 1): upgrade etcdsnap on this node`,
    );
  } finally {
    future.closeAllConnections();
    await new Promise<void>((resolve) => future.close(() => resolve()));
  }
});
