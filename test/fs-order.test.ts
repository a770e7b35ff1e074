/**
 * Crash consistency, in-process: every durable write runs for real in a temp dir while the
 * test seam of util/durable.ts (`useDurableFs`) records its file-system calls in order. Each
 * file with a final name must have been written (data) → fsync(temp file) → rename(temp,
 * final) → fsync(folder), each call finished before the next began; a folder swapped in
 * must have been renamed → fsync(folder). Swapping any two of these steps (the bug the
 * issue describes: the rename before the fsync) fails here, though every functional test
 * stays green, since the page cache hides it until a power cut.
 *
 * Not durable by design, so not checked: the pid files (server/etcdsnap.pid, db/etcd.pid),
 * written in place and only ever read to find a live process (a torn one reads as "none");
 * the extraction of a zip for a restore (a private temp folder, removed when the reset ends
 * and by the next reset after a crash).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Command } from 'commander';
import { useDurableFs, type DurableFs } from '../src/util/durable.js';
import { LocalStore } from '../src/store/local.js';
import { MemoryStore } from '../src/store/memory.js';
import { downloadSnapshot } from '../src/snapshot/transfer.js';
import type { SnapshotRecord } from '../src/model/records.js';
import { addOptions, normalizeBooleanArgs, resolveValues } from '../src/config/resolve.js';
import { SERVER_OPTIONS } from '../src/config/schema.js';
import { buildServerConfig, certHosts, serverPaths, type ServerPaths } from '../src/server/config.js';
import { bootstrap, checkToken, prepareDataDir } from '../src/server/bootstrap.js';
import { tlsPaths } from '../src/etcd/tls.js';
import { recordClusterId, writeRestoreRecord } from '../src/server/identity.js';
import { installRestoredMember, moveAsidePreviousData, writeResetFlag } from '../src/server/reset.js';
import { ensurePrivateDir } from '../src/util/fs.js';
import { tempDir } from './helpers/server.js';

type Call = { op: 'open' | 'write' | 'fsync'; path: string } | { op: 'rename'; from: string; to: string };

interface Recorder {
  calls: Call[];
  /** Calls that began while another was still running. */
  overlapping: string[];
  stop(): void;
}

/** Records the durable-write calls (each once it finished) until `stop`. */
function record(): Recorder {
  const calls: Call[] = [];
  const overlapping: string[] = [];
  const pathOf = new Map<number, string>();
  let running = 0;
  const run = async <T>(what: string, f: () => Promise<T>, done: (r: T) => Call): Promise<T> => {
    if (running > 0) overlapping.push(what);
    running++;
    try {
      const r = await f();
      calls.push(done(r));
      return r;
    } finally {
      running--;
    }
  };
  const at = (fd: number): string => pathOf.get(fd) ?? `fd ${fd}`;
  const stop = useDurableFs(
    (real): DurableFs => ({
      open: (file, flags, mode) =>
        run(
          `open ${file}`,
          () => real.open(file, flags, mode),
          (fh) => {
            pathOf.set(fh.fd, file);
            return { op: 'open', path: file };
          },
        ),
      writeFile: (fh, data) =>
        run(
          `write ${at(fh.fd)}`,
          () => real.writeFile(fh, data),
          () => ({ op: 'write', path: at(fh.fd) }),
        ),
      writev: (fh, bufs, position) =>
        run(
          `write ${at(fh.fd)}`,
          () => real.writev(fh, bufs, position),
          () => ({ op: 'write', path: at(fh.fd) }),
        ),
      fsync: (fh) =>
        run(
          `fsync ${at(fh.fd)}`,
          () => real.fsync(fh),
          () => ({ op: 'fsync', path: at(fh.fd) }),
        ),
      rename: (from, to) =>
        run(
          `rename ${from}`,
          () => real.rename(from, to),
          () => ({ op: 'rename', from, to }),
        ),
    }),
  );
  return { calls, overlapping, stop };
}

const show = (calls: Call[]): string => calls.map((c, i) => `  ${i}: ${c.op === 'rename' ? `rename ${c.from} -> ${c.to}` : `${c.op} ${c.path}`}`).join('\n');

/**
 * Asserts the order for the file `final`: its temp file was written, then fsynced (after its
 * last write), then renamed to `final`, then the folder was fsynced (before the next write
 * or rename: the durable write is complete before anything else is written).
 */
function assertDurableFile(calls: Call[], final: string): void {
  const trace = `\ncalls:\n${show(calls)}`;
  const renameAt = calls.findLastIndex((c) => c.op === 'rename' && c.to === final);
  assert.ok(renameAt >= 0, `${final} got its name by a rename through util/durable.ts${trace}`);
  const rename = calls[renameAt];
  assert.ok(rename?.op === 'rename');
  const tmp = rename.from;
  assert.equal(path.dirname(tmp), path.dirname(final), `${final}: the temp file is in the same folder`);
  const lastWrite = calls.findLastIndex((c) => c.op === 'write' && c.path === tmp);
  assert.ok(lastWrite >= 0, `${final}: its data was written to ${tmp} through util/durable.ts${trace}`);
  const fsyncAt = calls.findIndex((c, i) => i > lastWrite && c.op === 'fsync' && c.path === tmp);
  assert.ok(
    fsyncAt > lastWrite && fsyncAt < renameAt,
    `${final}: fsync of ${tmp} after its last write (${lastWrite}) and before its rename (${renameAt})${trace}`,
  );
  assertFolderSyncedAfter(calls, renameAt, path.dirname(final), trace);
}

/** Asserts that the folder `to` was renamed into place and its parent fsynced right after. */
function assertDurableRename(calls: Call[], to: string): void {
  const trace = `\ncalls:\n${show(calls)}`;
  const renameAt = calls.findLastIndex((c) => c.op === 'rename' && c.to === to);
  assert.ok(renameAt >= 0, `${to} was renamed through util/durable.ts${trace}`);
  assertFolderSyncedAfter(calls, renameAt, path.dirname(to), trace);
}

function assertFolderSyncedAfter(calls: Call[], renameAt: number, dir: string, trace: string): void {
  const dirSync = calls.findIndex((c, i) => i > renameAt && c.op === 'fsync' && c.path === dir);
  const nextWrite = calls.findIndex((c, i) => i > renameAt && (c.op === 'write' || c.op === 'rename'));
  assert.ok(
    dirSync > renameAt && (nextWrite < 0 || dirSync < nextWrite),
    `fsync of the folder ${dir} after the rename (${renameAt}), before the next write or rename${trace}`,
  );
}

/** Runs `f` with the recorder on; checks that no two calls overlapped. */
async function recorded(f: () => Promise<void>): Promise<Call[]> {
  const r = record();
  try {
    await f();
  } finally {
    r.stop();
  }
  assert.deepEqual(r.overlapping, [], 'each call finished before the next began');
  return r.calls;
}

const NAME = 'on-demand-node1-1700000000';
const recordOf = (name: string, location: string, bytes: Buffer): SnapshotRecord => ({
  name,
  location,
  nodeName: 'node1',
  createdAt: '2023-11-14T22:13:20Z',
  size: bytes.length,
  sha256: createHash('sha256').update(bytes).digest('hex'),
  compressed: false,
  status: 'successful',
});

test('a snapshot file (the save): written to .part in batches, fsync, rename, fsync of the folder', async () => {
  const dir = path.join(tempDir(), 'snapshots');
  mkdirSync(dir, { mode: 0o700 });
  const store = new LocalStore(dir);
  const bytes = randomBytes(3 * 1024 * 1024 + 123); // several writev batches
  const calls = await recorded(async () => {
    const sink = await store.beginWrite(NAME, { contentType: 'application/octet-stream', metadata: {} });
    const chunks = Array.from({ length: Math.ceil(bytes.length / 65536) }, (_, i) => bytes.subarray(i * 65536, (i + 1) * 65536));
    await pipeline(Readable.from(chunks), sink.stream);
    await sink.commit();
  });
  const final = path.join(dir, NAME);
  assertDurableFile(calls, final);
  assert.ok(calls.filter((c) => c.op === 'write' && c.path === `${final}.part`).length >= 3, 'written in batches');
  assert.ok(readFileSync(final).equals(bytes));
});

test('a sidecar (the record of a snapshot): temp file, fsync, rename, fsync of .metadata', async () => {
  const dir = path.join(tempDir(), 'snapshots');
  mkdirSync(dir, { mode: 0o700 });
  const store = new LocalStore(dir);
  const rec = recordOf(NAME, `file://${path.join(dir, NAME)}`, Buffer.from('x'));
  const calls = await recorded(() => store.writeRecord(rec));
  assertDurableFile(calls, store.sidecarPath(NAME));
  // rewriting an existing record takes the same path
  const again = await recorded(() => store.writeRecord({ ...rec, status: 'failed', message: 'x' }));
  assertDurableFile(again, store.sidecarPath(NAME));
});

test('a download (a snapshot fetched from another store, e.g. S3 for a restore): .part, fsync, rename, fsync; then its sidecar', async () => {
  const dir = path.join(tempDir(), 'snapshots');
  mkdirSync(dir, { mode: 0o700 });
  const local = new LocalStore(dir);
  const remote = new MemoryStore('s3');
  const bytes = randomBytes(2 * 1024 * 1024 + 7);
  const sink = await remote.beginWrite(NAME, { contentType: 'application/octet-stream', metadata: {} });
  await pipeline(Readable.from([bytes]), sink.stream);
  await sink.commit();
  await remote.writeRecord(recordOf(NAME, remote.location(NAME), bytes));
  const calls = await recorded(async () => {
    await downloadSnapshot(remote, NAME, local);
  });
  assertDurableFile(calls, path.join(dir, NAME));
  assertDurableFile(calls, local.sidecarPath(NAME));
  assert.ok(readFileSync(path.join(dir, NAME)).equals(bytes));
});

async function serverConfig(dataDir: string) {
  const cfgFile = path.join(path.dirname(dataDir), 'config.yaml');
  writeFileSync(cfgFile, '');
  const cmd = addOptions(new Command('server').exitOverride(), SERVER_OPTIONS).action(() => undefined);
  await cmd.parseAsync(normalizeBooleanArgs(['--config', cfgFile, '--data-dir', dataDir], SERVER_OPTIONS), { from: 'user' });
  return buildServerConfig(await resolveValues(cmd, SERVER_OPTIONS, { env: {}, warn: () => undefined }));
}

test('a first start: the token, the CA, every certificate and key, the member name', async () => {
  const dataDir = path.join(tempDir(), 'data');
  const cfg = await serverConfig(dataDir);
  const p = serverPaths(dataDir);
  await prepareDataDir(cfg, p);
  const check = await checkToken(cfg, p);
  const calls = await recorded(async () => {
    await bootstrap(cfg, p, certHosts(cfg), check);
  });
  const t = tlsPaths(dataDir);
  const files = [
    p.tokenFile,
    p.memberNameFile,
    t.caKey,
    t.caCert,
    t.etcdCa,
    t.supervisorCert,
    t.supervisorKey,
    t.etcdServerCert,
    t.etcdServerKey,
    t.etcdPeerCert,
    t.etcdPeerKey,
    t.clientCert,
    t.clientKey,
  ];
  for (const f of files) assertDurableFile(calls, f);
  // every final name written is one of these: nothing else is written in place of a rename
  const renamed = calls.flatMap((c) => (c.op === 'rename' ? [c.to] : []));
  assert.deepEqual([...renamed].sort(), [...files].sort());
});

async function resetPaths(): Promise<ServerPaths> {
  const p = serverPaths(path.join(tempDir(), 'data'));
  mkdirSync(p.dbDir, { recursive: true, mode: 0o700 });
  return p;
}

test('a cluster reset: the cluster ID, the restore record, the reset flag', async () => {
  const p = await resetPaths();
  const calls = await recorded(async () => {
    await recordClusterId(p, 'abc123');
    await writeRestoreRecord(p, { clusterId: 'abc123', restoredAt: '2024-01-01T00:00:00Z', snapshot: NAME });
    await writeResetFlag(p);
  });
  for (const f of [p.clusterIdFile, p.restoreRecordFile, p.resetFlag]) assertDurableFile(calls, f);
});

test('a restore swaps folders durably: the previous data moved aside, the restored member moved in, its name recorded', async () => {
  const p = await resetPaths();
  mkdirSync(path.join(p.etcdDataDir, 'member'), { recursive: true });
  const temp = path.join(p.dbDir, 'etcd-restore-1');
  mkdirSync(path.join(temp, 'member'), { recursive: true });
  const old = path.join(p.dbDir, 'etcd-old-1');
  assertDurableRename(await recorded(() => moveAsidePreviousData(p, old)), old);
  const calls = await recorded(() => installRestoredMember(p, temp, 'node1-0123abcd'));
  assertDurableRename(calls, p.etcdDataDir);
  assertDurableFile(calls, p.memberNameFile);
});

test('a new folder (e.g. .metadata on the first sidecar) is made durable: the parent of each folder created is fsynced', async () => {
  const base = tempDir();
  const leaf = path.join(base, 'a', 'b');
  const calls = await recorded(() => ensurePrivateDir(leaf));
  const fsynced = calls.flatMap((c) => (c.op === 'fsync' ? [c.path] : []));
  assert.deepEqual(fsynced, [path.join(base, 'a'), base], 'fsync of b in a, then of a in base');
  // an existing folder changes nothing on disk: no fsync
  const again = await recorded(() => ensurePrivateDir(leaf));
  assert.deepEqual(
    again.filter((c) => c.op === 'fsync'),
    [],
  );
});
