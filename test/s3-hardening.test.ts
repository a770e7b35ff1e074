/**
 * S3 hardening, against a real Swift (s3api over TLS with a self-signed CA) and real servers:
 * whatever is in the bucket (odd object names, forged sidecars) and whatever a request
 * names as its endpoint CA must not break listings, choose local paths, or read server files.
 */
import { RECORD_FORMAT_VERSION } from '../src/model/format-version.js';
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { selfSignedCert, startSwift, swiftSettings, type Swift } from './helpers/swift.js';
import { apiRequest, killStarted, snapshotCli, startReady, tempDir, type ServerProcess } from './helpers/server.js';
import { S3SnapshotStore, S3Store, type S3Settings } from '../src/store/s3.js';
import { LocalStore } from '../src/store/local.js';
import { listS3Records, pruneS3, type S3Skip } from '../src/store/s3.js';
import { downloadSnapshot } from '../src/snapshot/transfer.js';

let swift: Swift;
let ca: { certFile: string; certPem: string };
before(async () => {
  const tls = selfSignedCert(tempDir());
  ca = tls;
  swift = await startSwift({ tls: { certPem: tls.certPem, keyPem: tls.keyPem } });
});
after(async () => {
  killStarted();
  await swift?.stop();
});

/** The test Swift over TLS, trusting its certificate through the server-side CA setting (a file). */
const settings = (bucket: string, folder: string): S3Settings => swiftSettings(swift, bucket, folder, { insecure: false, endpointCA: ca.certFile });
function serverS3(bucket: string, folder: string): { args: string[]; env: Record<string, string> } {
  return {
    args: [
      '--etcd-s3',
      '--etcd-s3-endpoint',
      swift.endpoint,
      '--etcd-s3-endpoint-ca',
      ca.certFile,
      '--etcd-s3-bucket',
      bucket,
      '--etcd-s3-folder',
      folder,
      '--etcd-s3-bucket-lookup-type',
      'path',
    ],
    env: { AWS_ACCESS_KEY_ID: swift.accessKey, AWS_SECRET_ACCESS_KEY: swift.secretKey },
  };
}
/** CLI flags; `--s3-endpoint-ca` is a file the CLI reads and sends as content. */
function cliS3(bucket: string, folder: string, caSpec = ca.certFile): string[] {
  return ['--s3', '--s3-endpoint', swift.endpoint, '--s3-endpoint-ca', caSpec, '--s3-bucket', bucket, '--s3-folder', folder, '--s3-bucket-lookup-type', 'path'];
}
const cliEnv = (): Record<string, string> => ({ AWS_ACCESS_KEY_ID: swift.accessKey, AWS_SECRET_ACCESS_KEY: swift.secretKey });
const snapDir = (s: ServerProcess): string => path.join(s.dataDir, 'server', 'db', 'snapshots');
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

async function keys(store: S3Store): Promise<string[]> {
  const out: string[] = [];
  for await (const o of store.list()) out.push(o.key);
  return out.sort();
}

function save(s: ServerProcess, bucket: string, folder: string): string {
  const r = snapshotCli(s, ['save', ...cliS3(bucket, folder)], cliEnv());
  assert.equal(r.code, 0, r.stderr);
  const name = /^Snapshot (on-demand-node1-\d+) saved\.\n/.exec(r.stdout)?.[1];
  assert.ok(name, r.stdout);
  return name;
}

test('foreign objects with odd names are skipped by ls and prune (never fatal), reported once each, and left in the bucket', async () => {
  await swift.createBucket('foreign');
  const store = S3Store.create(settings('foreign', 'c1'));
  const s3 = serverS3('foreign', 'c1');
  const s = await startReady({ args: s3.args, env: s3.env });
  const real = [save(s, 'foreign', 'c1'), save(s, 'foreign', 'c1')];

  const long = `${'x'.repeat(300)}-1796030681`;
  // relative to the folder; '' is a zero-byte object
  const foreign: Record<string, string> = {
    'evil..x-1796030681': 'x',
    'evil\u001b[2J-1796030681': 'x', // a terminal escape
    [long]: 'x',
    'zero-node1-1796030681': '',
    'README.txt': 'not a snapshot',
    'a/b-node1-1796030681': 'x', // another folder's business
    '.metadata/evil..x': '{"name":"../../x"}',
  };
  // names that pass the naming checks are snapshots like any other, whatever their letters
  const oddButValid = ['on demand-node1-1796030681', 'snäpshot-nöde-1796030681'];
  for (const [k, body] of Object.entries(foreign)) await store.putText(`c1/${k}`, body, 'application/octet-stream');
  for (const n of oddButValid) await store.putText(`c1/${n}`, 'x', 'application/octet-stream');
  const before = await keys(store);

  const table = snapshotCli(s, ['ls', ...cliS3('foreign', 'c1')], cliEnv());
  assert.equal(table.code, 0, table.stderr);
  for (const n of real) assert.match(table.stdout, new RegExp(`${n}\\s+s3://foreign/c1/${n}\\s`));
  assert.ok(!table.stdout.includes('evil') && !table.stdout.includes('\u001b') && !table.stdout.includes(long), table.stdout);

  const json = snapshotCli(s, ['ls', '-o', 'json', ...cliS3('foreign', 'c1')], cliEnv());
  assert.equal(json.code, 0, json.stderr);
  const inS3 = (JSON.parse(json.stdout) as Array<{ name: string; location: string }>)
    .filter((r) => r.location.startsWith('s3://'))
    .map((r) => r.name)
    .sort();
  assert.deepEqual(inS3, [...real, ...oddButValid].sort());

  const pr = snapshotCli(s, ['prune', '--name', 'on-demand', '--s3-retention', '1', ...cliS3('foreign', 'c1')], cliEnv());
  assert.equal(pr.code, 0, pr.stderr);
  assert.equal(pr.stdout, `Snapshot s3://foreign/c1/${real[0]} deleted.\n`);

  // only the pruned snapshot and its sidecar are gone; every foreign object is still there
  const gone = new Set([`c1/${real[0]}`, `c1/.metadata/${real[0]}`]);
  assert.deepEqual(
    await keys(store),
    before.filter((k) => !gone.has(k)),
  );
  for (const k of Object.keys(foreign)) assert.ok(before.includes(`c1/${k}`), k);

  // each skipped object is reported once per process, whichever operation meets it
  const skips: S3Skip[] = [];
  const onSkip = (k: S3Skip): void => void skips.push(k);
  await listS3Records(store, true, onSkip);
  await listS3Records(store, false, onSkip);
  await pruneS3(store, 'on-demand', 'node1', 1, true, onSkip);
  assert.deepEqual(
    skips.map((k) => k.key).sort(),
    ['c1/README.txt', 'c1/evil..x-1796030681', 'c1/evil\u001b[2J-1796030681', `c1/${long}`, 'c1/zero-node1-1796030681'].sort(),
  );
  // biome-ignore lint/suspicious/noControlCharactersInRegex: checks that no control character reached the log line
  for (const k of skips) assert.ok(!/[\u0000-\u001f]/.test(k.message) && k.message.startsWith('skipping S3 object "c1/'), k.message);
  // the server (ls twice and prune met it) logged the foreign object once, as a warning
  const logged = s.lines.filter((l) => l.key === 'c1/evil..x-1796030681');
  assert.equal(logged.length, 1, JSON.stringify(logged));
  assert.equal(logged[0]?.level, 'warn');
  assert.equal(await s.stop(), 0);
});

test('a bucket sidecar cannot choose the local sidecar a download writes, nor its location, status, size or hash', async () => {
  await swift.createBucket('sidecars');
  const store = S3Store.create(settings('sidecars', ''));
  const wanted = 'on-demand-node1-1700000001';
  const other = 'on-demand-node1-1700000002';
  const bytes = Buffer.from('etcd snapshot bytes '.repeat(1000));
  await store.upload(wanted, Readable.from([bytes]), { contentType: 'application/octet-stream', metadata: {} });
  const forged = (name: string, extra: Record<string, unknown> = {}): string =>
    JSON.stringify({
      name,
      location: 'file:///etc/shadow',
      status: 'failed',
      message: 'forged',
      size: 1,
      compressed: true,
      createdAt: '2001-01-01T00:00:00Z',
      nodeName: 'node9',
      sha256: sha256(bytes),
      revision: '42',
      s3: { location: 's3://elsewhere/x', status: 'failed', attempts: 1, updatedAt: '2001-01-01T00:00:00Z' },
      ...extra,
    });

  // the sidecar names another snapshot: that one's local sidecar stays as it was
  const root = tempDir();
  const dir = new LocalStore(path.join(root, 'snapshots'));
  await dir.prepare(true);
  await dir.writeRecord({
    name: other,
    location: `file://${dir.filePath(other)}`,
    nodeName: 'node1',
    createdAt: '2023-11-14T22:13:22Z',
    size: 7,
    compressed: false,
    status: 'successful',
  });
  const otherBefore = readFileSync(dir.sidecarPath(other), 'utf8');
  await store.putText(store.metadataKey(wanted), forged(other), 'application/json');
  const file = await downloadSnapshot(new S3SnapshotStore(store), wanted, dir);
  assert.equal(readFileSync(dir.sidecarPath(other), 'utf8'), otherBefore, "the other snapshot's sidecar is untouched");
  assert.deepEqual(JSON.parse(readFileSync(dir.sidecarPath(wanted), 'utf8')), {
    name: wanted,
    location: `file://${file}`,
    createdAt: new Date(1700000001 * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z'),
    size: bytes.length,
    compressed: false,
    nodeName: 'node9',
    status: 'successful',
    sha256: sha256(bytes),
    revision: '42',
    formatVersion: RECORD_FORMAT_VERSION, // this etcdsnap's, not the bucket's (the forged one says nothing of it)
  });
  assert.deepEqual(readdirSync(dir.metadataDir).sort(), [other, wanted].sort());

  // a name with '..' neither escapes the folder nor fails the download
  const root2 = tempDir();
  const dir2 = new LocalStore(path.join(root2, 'snapshots'));
  await dir2.prepare(true);
  await store.putText(store.metadataKey(wanted), forged('../../escape'), 'application/json');
  await downloadSnapshot(new S3SnapshotStore(store), wanted, dir2);
  assert.deepEqual(readdirSync(root2).sort(), ['.metadata', 'snapshots']);
  assert.deepEqual(readdirSync(dir2.metadataDir), [wanted]);
  assert.equal((await dir2.readRecord(wanted))?.name, wanted);

  // a sidecar whose hash is malformed, or that is not a record, or too big: refused, nothing written
  const root3 = tempDir();
  const dir3 = new LocalStore(path.join(root3, 'snapshots'));
  await dir3.prepare(true);
  for (const [text, re] of [
    [forged(wanted, { sha256: 'not-a-sha256' }), /has a malformed sha256; refusing the download/],
    ['["not", "a", "record"]', /is not a snapshot record; refusing the download/],
    [forged(wanted, { padding: 'x'.repeat(70 * 1024) }), /larger than 65536 bytes/],
  ] as const) {
    await store.putText(store.metadataKey(wanted), text, 'application/json');
    await assert.rejects(downloadSnapshot(new S3SnapshotStore(store), wanted, dir3), re);
    assert.deepEqual(readdirSync(dir3.dir), []);
    assert.ok(!existsSync(dir3.metadataDir) || readdirSync(dir3.metadataDir).length === 0);
  }
});

test("an API request's endpointCA must be certificate content: paths are refused alike whether they exist or not, content works, the CLI sends the file's content", async () => {
  await swift.createBucket('endpoint-ca');
  const s3 = serverS3('endpoint-ca', '');
  const s = await startReady({ args: s3.args, env: s3.env });
  const secret = `TOP-SECRET-${Date.now()}`;
  const secretFile = path.join(tempDir(), 'secret.pem');
  writeFileSync(secretFile, `-----BEGIN CERTIFICATE-----\n${secret}\n-----END CERTIFICATE-----\n`);
  const headers = {
    authorization: `Basic ${Buffer.from(`server:${s.token().split('::server:')[1] ?? ''}`).toString('base64')}`,
    'content-type': 'application/json',
  };
  const s3Field = (endpointCA: string): Record<string, unknown> => ({
    endpoint: swift.endpoint,
    endpointCA,
    bucket: 'endpoint-ca',
    region: swift.region,
    bucketLookup: 'path',
    accessKey: swift.accessKey,
    secretKey: swift.secretKey,
  });
  const post = (body: Record<string, unknown>): Promise<{ status: number; body: string }> =>
    apiRequest(`${s.url}/db/snapshot`, { method: 'POST', headers, body: JSON.stringify(body) });

  const refused = { error: 'invalid field "s3": endpointCA in a request must be PEM content; the CLI reads the file for you' };
  for (const p of [ca.certFile, secretFile, '/nonexistent/ca.pem', path.dirname(secretFile), 'ca.pem']) {
    const r = await post({ operation: 'save', name: ['ca'], s3: s3Field(p) });
    assert.deepEqual([r.status, JSON.parse(r.body)], [400, refused], p);
  }
  assert.deepEqual(existsSync(snapDir(s)) ? readdirSync(snapDir(s)) : [], [], 'no snapshot was taken');
  assert.ok(!s.raw.join('\n').includes(secret), 'the file was not read');

  // content: PEM, base64 of PEM, base64 of DER
  const der = new X509Certificate(ca.certPem).raw.toString('base64');
  for (const content of [ca.certPem, Buffer.from(ca.certPem).toString('base64'), der]) {
    const r = await post({ operation: 'list', s3: s3Field(content) });
    assert.equal(r.status, 200, r.body);
    assert.equal((JSON.parse(r.body) as { s3Error?: string }).s3Error, undefined, r.body);
  }

  // the CLI's --s3-endpoint-ca names a file: the CLI reads it and sends its content
  const name = save(s, 'endpoint-ca', '');
  const store = S3Store.create(settings('endpoint-ca', ''));
  assert.ok((await keys(store)).includes(name));
  const ls = snapshotCli(s, ['ls', ...cliS3('endpoint-ca', '')], cliEnv());
  assert.equal(ls.code, 0, ls.stderr);
  assert.match(ls.stdout, new RegExp(`s3://endpoint-ca/${name}`));
  const missing = snapshotCli(s, ['ls', ...cliS3('endpoint-ca', '', '/nonexistent/ca.pem')], cliEnv());
  assert.equal(missing.code, 1);
  assert.equal(missing.stderr, 'error: cannot read --s3-endpoint-ca /nonexistent/ca.pem: ENOENT (give a PEM file or base64 PEM)\n');
  assert.equal(await s.stop(), 0);
});
