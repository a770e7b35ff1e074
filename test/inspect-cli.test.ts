/**
 * `etcd-snapshot status|keys|get|stats|diff` against snapshots a live server made (issue 13
 * part 3): by name in the snapshot folder, by path, a `.zip` made with --snapshot-compress,
 * an S3 snapshot (the test Swift) read through a private temp file that is gone afterwards;
 * `status` equals `etcdctl snapshot status -w json` on the same file; bad arguments are one
 * line; SIGINT while a .zip is extracted removes the temp folder; and the same reads through
 * the supervisor API, token-protected, `keys` streamed.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, truncateSync, watch } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { startSwift, type Swift } from './helpers/swift.js';
import { apiRequest, BIN, cleanEnv, etcdctl, fillEtcd, killStarted, snapshotCli, startReady, tempDir, type ServerProcess } from './helpers/server.js';

let swift: Swift;
let s: ServerProcess;
let plain = '';
let zipped = '';
const snapDir = (): string => path.join(s.dataDir, 'server', 'db', 'snapshots');

const CM = (name: string, ns: string): string =>
  JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: ns, uid: `uid-${name}` }, data: { k: name } });

function saved(r: { code: number | null; stdout: string; stderr: string }): string {
  assert.equal(r.code, 0, r.stderr);
  const m = /^Snapshot (\S+) saved\.\n/.exec(r.stdout);
  assert.ok(m, r.stdout);
  return m[1] ?? '';
}

before(async () => {
  swift = await startSwift();
  await swift.createBucket('inspect');
  s = await startReady();
  for (const [k, v] of [
    ['/registry/configmaps/default/a', CM('a', 'default')],
    ['/registry/configmaps/kube-system/b', CM('b', 'kube-system')],
    ['/app/x', 'one'],
    ['/app/x', 'two'],
    ['/app/y', 'why'],
  ] as const)
    assert.equal(etcdctl(s, ['put', k, v]).code, 0);
  plain = saved(snapshotCli(s, ['save', '--name', 'plain', ...cliS3()], cliEnv()));
  zipped = saved(snapshotCli(s, ['save', '--name', 'zipped', '--snapshot-compress']));
});
after(async () => {
  killStarted();
  await swift?.stop();
});

function cliS3(): string[] {
  return ['--s3', '--s3-endpoint', swift.endpoint, '--s3-insecure', '--s3-bucket', 'inspect', '--s3-bucket-lookup-type', 'path'];
}
const cliEnv = (): Record<string, string> => ({ AWS_ACCESS_KEY_ID: swift.accessKey, AWS_SECRET_ACCESS_KEY: swift.secretKey });

function ok(args: string[], env: Record<string, string> = {}): string {
  const r = snapshotCli(s, args, env);
  assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** One `error:` line and exit code 1. */
function oneError(args: string[]): string {
  const r = snapshotCli(s, args);
  assert.equal(r.code, 1, r.stdout);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  return lines[0] ?? '';
}

test('status by name, by path and of a .zip equals etcdctl snapshot status -w json; the table has etcdctl columns and our lines', () => {
  const file = path.join(snapDir(), plain);
  const want = JSON.parse(etcdctl(s, ['snapshot', 'status', file, '-w', 'json']).stdout) as Record<string, number>;
  for (const arg of [plain, file, zipped]) {
    const got = JSON.parse(ok(['status', arg, '-o', 'json'])) as Record<string, unknown>;
    if (arg !== zipped) {
      for (const k of ['hash', 'revision', 'totalKey', 'totalSize']) assert.equal(got[k], want[k], `${arg}: ${k}`);
    }
    assert.equal(got.trailer, 'ok');
    assert.ok(Array.isArray(got.members) && got.members.length === 1);
  }
  const zippedWant = JSON.parse(ok(['status', zipped, '-o', 'json'])) as Record<string, number>;
  assert.ok((zippedWant.revision ?? 0) >= (want.revision ?? 0), 'the zip was saved later');
  const table = ok(['status', plain]);
  // the HASH column is as wide as the hash in hex (etcdctl prints it with %x: 7 digits when it is below 0x10000000)
  assert.match(table, /\| +HASH +\| REVISION \| TOTAL KEYS \| TOTAL SIZE \|/);
  assert.match(table, new RegExp(`\\| ${(want.hash ?? 0).toString(16)} \\|`));
  assert.match(table, /Trailer: +sha256 ok/);
  assert.match(table, /Members: +[0-9a-f]+ node1-[0-9a-f]+ https:\/\/127\.0\.0\.1:/);
  // nothing extracted is left behind beside the zip or in the folder
  assert.deepEqual(readdirSync(snapDir()).sort(), [plain, zipped].sort());
});

test('keys streams with --prefix and --limit; get shows revisions and decodes a Kubernetes object; --revision reads an older value', () => {
  assert.equal(ok(['keys', plain, '--prefix', '/app/']), '/app/x\n/app/y\n');
  assert.equal(ok(['keys', zipped, '--limit', '1']), '/app/x\n');
  const lines = ok(['keys', plain, '--prefix', '/registry/', '-o', 'json']).trim().split('\n');
  assert.deepEqual(
    lines.map((l) => (JSON.parse(l) as { key: string }).key),
    ['/registry/configmaps/default/a', '/registry/configmaps/kube-system/b'],
  );
  const x = JSON.parse(ok(['get', plain, '/app/x', '-o', 'json'])) as {
    version: number;
    modRevision: number;
    createRevision: number;
    value: { text?: string };
  };
  assert.equal(x.version, 2);
  assert.equal(x.value.text, 'two');
  assert.ok(x.modRevision > x.createRevision);
  const old = JSON.parse(ok(['get', plain, '/app/x', '--revision', String(x.createRevision), '-o', 'json'])) as { value: { text?: string } };
  assert.equal(old.value.text, 'one');
  const cm = ok(['get', plain, '/registry/configmaps/default/a']);
  assert.match(cm, /kind: ConfigMap/);
  assert.match(cm, /uid: uid-a/);
  assert.match(cm, /namespace: default/);
});

test('stats and diff between two snapshots', () => {
  assert.equal(etcdctl(s, ['put', '/app/z', 'zed']).code, 0);
  assert.equal(etcdctl(s, ['del', '/app/y']).code, 0);
  const later = saved(snapshotCli(s, ['save', '--name', 'later']));
  const st = JSON.parse(ok(['stats', later, '-o', 'json'])) as { byResource: Array<{ type: string; keys: number }>; total: { keys: number } };
  assert.equal(st.byResource.find((r) => r.type === 'configmaps')?.keys, 2);
  assert.match(ok(['stats', later]), /^TYPE +KEYS +BYTES +SIZE +REVISIONS\n/);
  const d = ok(['diff', plain, later, '--prefix', '/app/', '--keys']);
  assert.match(d, /^\+ \/app\/z /m);
  assert.match(d, /^- \/app\/y /m);
  assert.match(d, /Total: 1 added, 1 removed, 0 changed, 1 unchanged/);
});

test('an S3 snapshot by name is downloaded to a private temp file that is removed afterwards', () => {
  const empty = path.join(tempDir(), 'empty');
  mkdirSync(empty);
  const tmp = path.join(tempDir(), 'tmp');
  mkdirSync(tmp);
  const env = { ...cliEnv(), TMPDIR: tmp };
  const missing = snapshotCli(s, ['status', plain, '--dir', empty], env);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /not found: looked in the snapshot folder .*add --s3/);
  const got = JSON.parse(ok(['status', plain, '--dir', empty, '-o', 'json', ...cliS3()], env)) as { snapshot: string; trailer: string };
  assert.match(got.snapshot, /^s3:\/\/inspect\//);
  assert.equal(got.trailer, 'ok');
  assert.equal(ok(['keys', plain, '--dir', empty, '--prefix', '/app/', ...cliS3()], env), '/app/x\n/app/y\n');
  assert.deepEqual(readdirSync(tmp), [], 'no temp file is left');
});

test('bad arguments are one-line errors; a missing snapshot or key is not-found; a truncated file is damaged', () => {
  assert.match(oneError(['keys', plain, '--limit', 'x']), /--limit.*not an integer/);
  assert.match(oneError(['keys', plain, '--limit', '0']), /invalid value for --limit: 0 is less than 1/);
  assert.match(oneError(['get', plain, '/app/x', '--revision', '-3']), /--revision/);
  assert.match(oneError(['status', plain, '-o', 'yaml']), /--output: "yaml" is not one of table, json/);
  assert.match(oneError(['status', plain, '-o', 'xml']), /xml/);
  assert.match(oneError(['status', 'no-such-snapshot']), /snapshot "no-such-snapshot" not found: looked in the snapshot folder/);
  assert.match(oneError(['status', '/nonexistent/file.db']), /snapshot file \/nonexistent\/file\.db does not exist/);
  assert.match(oneError(['get', plain, '/nope']), /key "\/nope" is not in /);
  assert.match(oneError(['status']), /missing required argument 'snapshot'/);
  const cut = path.join(tempDir(), 'cut.db');
  copyFileSync(path.join(snapDir(), plain), cut);
  truncateSync(cut, 12_000);
  assert.match(oneError(['status', cut]), /damaged snapshot: .*truncated/);
  assert.match(oneError(['stauts', plain]), /unknown command 'stauts' for etcd-snapshot; did you mean (status|stats)\?/);
});

test('the API: the same reads by name, token-protected; keys is NDJSON; names are checked', async () => {
  const auth = { authorization: `Bearer ${s.token().split('::server:')[1] ?? s.token()}` };
  const url = (p: string): string => `${s.url}${p}`;
  const denied = await apiRequest(url(`/v1/snapshots/status?name=${plain}`));
  assert.equal(denied.status, 401);
  const st = await apiRequest(url(`/v1/snapshots/status?name=${plain}`), { headers: auth });
  assert.equal(st.status, 200, st.body);
  const cli = JSON.parse(ok(['status', plain, '-o', 'json'])) as Record<string, unknown>;
  const api = JSON.parse(st.body) as Record<string, unknown>;
  for (const k of ['hash', 'revision', 'totalKey', 'totalSize']) assert.equal(api[k], cli[k]);
  const keys = await apiRequest(url(`/v1/snapshots/keys?name=${zipped}&prefix=/app/`), { headers: auth });
  assert.equal(keys.status, 200, keys.body);
  assert.deepEqual(
    keys.body
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { key: string }).key),
    ['/app/x', '/app/y'],
  );
  const head = await new Promise<import('node:http').IncomingHttpHeaders>((resolve, reject) => {
    const req = https.request(url(`/v1/snapshots/keys?name=${plain}`), { headers: auth, rejectUnauthorized: false }, (res) => {
      res.resume();
      resolve(res.headers);
    });
    req.on('error', reject);
    req.end();
  });
  assert.equal(head['content-type'], 'application/x-ndjson');
  assert.equal(head['transfer-encoding'], 'chunked', 'streamed, not sent in one piece');
  assert.equal(head['content-length'], undefined);
  const get = await apiRequest(url(`/v1/snapshots/get?name=${plain}&key=${encodeURIComponent('/registry/configmaps/default/a')}`), { headers: auth });
  assert.equal(get.status, 200, get.body);
  assert.equal((JSON.parse(get.body) as { value: { kind?: string } }).value.kind, 'ConfigMap');
  assert.equal((await apiRequest(url(`/v1/snapshots/get?name=${plain}&key=/nope`), { headers: auth })).status, 404);
  assert.equal((await apiRequest(url('/v1/snapshots/status?name=..%2Fetc'), { headers: auth })).status, 400);
  assert.equal((await apiRequest(url('/v1/snapshots/status?name=/etc/passwd'), { headers: auth })).status, 400);
  assert.equal((await apiRequest(url(`/v1/snapshots/keys?name=${plain}&limit=x`), { headers: auth })).status, 400);
  assert.equal((await apiRequest(url('/v1/snapshots/status?name=missing'), { headers: auth })).status, 404);
  const stats = await apiRequest(url(`/v1/snapshots/stats?name=${plain}`), { headers: auth });
  assert.equal(stats.status, 200, stats.body);
  const diff = await apiRequest(url(`/v1/snapshots/diff?name=${zipped}&against=${plain}`), { headers: auth });
  assert.equal(diff.status, 200, diff.body);
});

test('SIGINT while a large .zip is being extracted removes the private temp folder (exit 130)', async () => {
  await fillEtcd(s, 192, 256 * 1024, 'big/'); // 48 MiB of random bytes: the zip takes a while to extract
  const big = saved(snapshotCli(s, ['save', '--name', 'big', '--snapshot-compress']));
  const tmp = path.join(tempDir(), 'tmp');
  mkdirSync(tmp);
  const watcher = watch(tmp);
  const created = new Promise<void>((resolve) => watcher.once('change', () => resolve()));
  // at the lowest priority, so that on a busy machine the signal still comes while it extracts
  // (nice execs node: the pid is the CLI's)
  const child = spawn('nice', ['-n', '19', process.execPath, BIN, 'etcd-snapshot', 'stats', big, '--data-dir', s.dataDir], {
    env: cleanEnv({ TMPDIR: tmp }),
    stdio: 'ignore',
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await created; // the temp folder exists: the extraction is under way
  watcher.close();
  child.kill('SIGINT');
  assert.equal(await exited, 130, 'ended by the signal, not finished');
  assert.deepEqual(readdirSync(tmp), [], 'the temp folder is gone');
});
