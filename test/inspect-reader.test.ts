/**
 * Integration tests of the snapshot reader (issue 13, src/inspect/) against real etcd 3.4:
 * snapshots taken with `etcdctl snapshot save`, `etcdsnap etcd-snapshot save` and its zip
 * (`--snapshot-compress`, unzipped here) read back as etcdctl sees them: `status()` equals
 * `etcdctl snapshot status -w json`, `entries`/`get` equal `etcdctl get -w json` taken just
 * before the snapshot (also at an older revision), and damaged or foreign files are refused
 * with an `integrity` error.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, copyFileSync, openSync, readdirSync, readSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { EtcdsnapError } from '../src/errors.js';
import { EtcdClient } from '../src/etcd/client.js';
import { tlsPaths } from '../src/etcd/tls.js';
import { BoltFile } from '../src/inspect/bbolt.js';
import { openSnapshotReader } from '../src/inspect/mvcc.js';
import { statusScan } from '../src/inspect/mvcc-scan.js';
import type { SnapshotKeyValue, SnapshotReader } from '../src/inspect/types.js';
import { etcdctl, etcdctlFlags, killStarted, snapshotCli, startReady, tempDir, type ServerProcess } from './helpers/server.js';

after(() => killStarted());

interface Kv {
  key: string; // base64
  value: string; // base64
  create_revision: number;
  mod_revision: number;
  version: number;
  lease: string;
}

/** `etcdctl get "" --prefix -w json` (leases kept exact as strings; zero fields filled in as etcdctl omits them). */
function ctlGet(s: ServerProcess, extra: string[] = []): { kvs: Kv[]; revision: number } {
  // not the helper's etcdctl(): the output (a 1 MiB value in base64) is beyond spawnSync's default buffer
  const r = spawnSync('etcdctl', [...etcdctlFlags(s), 'get', '', '--prefix', '-w', 'json', ...extra], {
    env: { ...process.env, ETCDCTL_API: '3' },
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout.replace(/"lease":(\d+)/g, '"lease":"$1"')) as { header: { revision: number }; kvs?: Array<Partial<Kv>> };
  const kvs = (j.kvs ?? []).map((k) => ({
    key: k.key ?? '',
    value: k.value ?? '',
    create_revision: k.create_revision ?? 0,
    mod_revision: k.mod_revision ?? 0,
    version: k.version ?? 0,
    lease: k.lease ?? '0',
  }));
  return { kvs, revision: j.header.revision };
}

const asCtl = (kv: SnapshotKeyValue): Kv => ({
  key: kv.key.toString('base64'),
  value: kv.value.toString('base64'),
  create_revision: kv.createRevision,
  mod_revision: kv.modRevision,
  version: kv.version,
  lease: kv.lease,
});

async function all(r: SnapshotReader, opts: { prefix?: Buffer; revision?: number; values?: boolean } = {}): Promise<Kv[]> {
  const out: Kv[] = [];
  for await (const kv of r.entries({ values: true, ...opts })) out.push(asCtl(kv));
  return out;
}

function ctlStatus(file: string): { hash: number; revision: number; totalKey: number; totalSize: number } {
  const r = spawnSync('etcdctl', ['snapshot', 'status', '-w', 'json', file], { encoding: 'utf8', env: { ...process.env, ETCDCTL_API: '3' } });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as { hash: number; revision: number; totalKey: number; totalSize: number };
}

/** Expects an integrity error naming the file, with the sha256 checked on this thread and in a worker. */
async function rejectsIntegrity(file: string, what: RegExp, act: (r: SnapshotReader) => Promise<unknown> = (r) => r.status()): Promise<void> {
  for (const hashInWorkerAbove of [undefined, 0]) await rejectsIntegrityOnce(file, what, act, hashInWorkerAbove);
}

async function rejectsIntegrityOnce(
  file: string,
  what: RegExp,
  act: (r: SnapshotReader) => Promise<unknown>,
  hashInWorkerAbove: number | undefined,
): Promise<void> {
  let reader: SnapshotReader | undefined;
  await assert.rejects(
    async () => {
      reader = await openSnapshotReader(file, { hashInWorkerAbove });
      await act(reader);
    },
    (err: unknown) => {
      assert.ok(err instanceof EtcdsnapError, String(err));
      assert.equal(err.kind, 'integrity', err.message);
      assert.ok(err.message.startsWith(`${file}: damaged snapshot: `), err.message);
      assert.match(err.message, what);
      return true;
    },
  );
  await reader?.close();
}

const dir = tempDir('etcdsnap-inspect-');
let s: ServerProcess;
let expected: { kvs: Kv[]; revision: number };
/** The view at the compact revision, and that revision. */
let atCompact: { kvs: Kv[]; revision: number };
const files: Record<'etcdctl' | 'etcdsnap' | 'zip', string> = { etcdctl: '', etcdsnap: '', zip: '' };
let leaseId = '';

before(async () => {
  s = await startReady();
  const ctl = (args: string[]): string => {
    const r = etcdctl(s, args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const client = await EtcdClient.connect({ endpoint: `https://127.0.0.1:${s.ports.client}`, tls: tlsPaths(s.dataDir) });
  try {
    // values of many sizes, up to several overflow pages (and one of 1 MiB)
    for (const n of [0, 1, 15, 100, 1000, 2000, 4000, 4096, 5000, 10_000, 65_536, 200_000, 1 << 20]) {
      await client.kv
        .put(`size/${String(n).padStart(8, '0')}`)
        .value(randomBytes(n))
        .exec();
    }
    // enough small keys for branch pages, written concurrently
    for (let i = 0; i < 3000; i += 100) {
      await Promise.all(
        Array.from({ length: 100 }, (_, j) =>
          client.kv
            .put(`many/${String(i + j).padStart(5, '0')}`)
            .value(`v${i + j}`)
            .exec(),
        ),
      );
    }
    // a key that is not UTF-8
    await client.kv
      .put(Buffer.from([0x62, 0x69, 0x6e, 0xff, 0x00, 0x80]))
      .value(Buffer.from([0, 1, 2]))
      .exec();
  } finally {
    client.close();
  }
  ctl(['put', 'multi', 'one']);
  ctl(['put', 'gone', 'x']);
  ctl(['put', 'reborn', 'first']);
  ctl(['put', 'multi', 'two']);
  ctl(['del', 'reborn']);
  const compactAt = ctlGet(s).revision;
  ctl(['compact', String(compactAt)]);
  atCompact = { kvs: ctlGet(s, [`--rev=${compactAt}`]).kvs, revision: compactAt };
  ctl(['put', 'multi', 'three']);
  ctl(['del', 'gone']);
  ctl(['put', 'reborn', 'second']);
  const grant = ctl(['lease', 'grant', '3600']);
  const hex = /lease ([0-9a-f]+) granted/.exec(grant)?.[1] ?? '';
  leaseId = BigInt(`0x${hex}`).toString();
  ctl(['put', '--lease', hex, 'leased', 'with a lease']);
  expected = ctlGet(s);

  files.etcdctl = path.join(dir, 'etcdctl.db');
  ctl(['snapshot', 'save', files.etcdctl]);
  const snaps = path.join(s.dataDir, 'server', 'db', 'snapshots');
  const saved = snapshotCli(s, ['save']);
  assert.equal(saved.code, 0, saved.stderr);
  const plain = /^Snapshot (\S+) saved\.\n$/.exec(saved.stdout)?.[1] ?? '';
  files.etcdsnap = path.join(snaps, plain);
  const zipped = snapshotCli(s, ['save', '--snapshot-compress']);
  assert.equal(zipped.code, 0, zipped.stderr);
  const zipName = /^Snapshot (\S+\.zip) saved\.\n$/.exec(zipped.stdout)?.[1] ?? '';
  assert.ok(readdirSync(snaps).includes(zipName), zipped.stdout);
  files.zip = path.join(dir, 'from-zip.db');
  const unz = spawnSync('unzip', ['-p', path.join(snaps, zipName)], { maxBuffer: 1 << 30 });
  assert.equal(unz.status, 0, String(unz.stderr));
  writeFileSync(files.zip, unz.stdout);
  // nothing was written while the three were taken
  assert.deepEqual(ctlGet(s), expected);
});

for (const kind of ['etcdctl', 'etcdsnap', 'zip'] as const) {
  test(`${kind} snapshot: status() equals etcdctl snapshot status -w json, and says more`, async () => {
    // the etcdctl file's sha256 is checked in a worker thread (as for files over 32 MiB), the others' on this thread
    const r = await openSnapshotReader(files[kind], kind === 'etcdctl' ? { hashInWorkerAbove: 0 } : {});
    try {
      const st = await r.status();
      const ctl = ctlStatus(files[kind]);
      assert.deepEqual({ hash: st.hash, revision: st.revision, totalKey: st.totalKey, totalSize: st.totalSize }, ctl);
      assert.equal(st.revision, expected.revision);
      assert.equal(st.trailer, 'ok');
      assert.equal(st.pageSize, 4096);
      assert.equal(statSync(files[kind]).size, st.totalSize + 32);
      assert.equal(st.compactRevision, atCompact.revision);
      assert.equal(st.scheduledCompactRevision, atCompact.revision);
      assert.ok(st.consistentIndex > expected.revision, String(st.consistentIndex));
      assert.equal(st.liveKeys, expected.kvs.length);
      assert.equal(st.members.length, 1);
      assert.match(st.members[0]?.name ?? '', /^node1-/);
      assert.match(st.members[0]?.id ?? '', /^[0-9a-f]+$/);
      assert.deepEqual(st.members[0]?.peerURLs, [`https://127.0.0.1:${s.ports.peer}`]);
      // the tree walk (the fallback of the one-pass status) gives the same answer
      const bolt = new BoltFile(files[kind]);
      try {
        const walked = statusScan(bolt);
        assert.deepEqual(
          {
            hash: walked.hash,
            revision: walked.revision,
            totalKey: walked.totalKey,
            liveKeys: walked.liveKeys,
            members: walked.members,
            compact: walked.compactRevision,
          },
          { hash: st.hash, revision: st.revision, totalKey: st.totalKey, liveKeys: st.liveKeys, members: st.members, compact: st.compactRevision },
        );
      } finally {
        bolt.close();
      }
    } finally {
      await r.close();
    }
  });

  test(`${kind} snapshot: entries and get equal etcdctl get -w json before the snapshot (values, revisions, versions, lease)`, async () => {
    const r = await openSnapshotReader(files[kind]);
    try {
      assert.deepEqual(await all(r), expected.kvs);
      const many = expected.kvs.filter((k) => Buffer.from(k.key, 'base64').toString('latin1').startsWith('many/'));
      assert.equal(many.length, 3000);
      assert.deepEqual(await all(r, { prefix: Buffer.from('many/') }), many);
      const keysOnly = await all(r, { prefix: Buffer.from('size/'), values: false });
      assert.deepEqual(
        keysOnly,
        expected.kvs.filter((k) => Buffer.from(k.key, 'base64').toString().startsWith('size/')).map((k) => ({ ...k, value: '' })),
      );
      // without values, each entry still says its value's size (stats reads no value)
      const sizes: Array<[string, number | undefined]> = [];
      for await (const kv of r.entries({ prefix: Buffer.from('size/'), values: false })) sizes.push([kv.key.toString('latin1'), kv.valueSize]);
      assert.deepEqual(
        sizes,
        expected.kvs
          .filter((k) => Buffer.from(k.key, 'base64').toString().startsWith('size/'))
          .map((k) => [Buffer.from(k.key, 'base64').toString('latin1'), Buffer.from(k.value, 'base64').length]),
      );
      const leased = await r.get(Buffer.from('leased'));
      assert.equal(leased?.lease, leaseId);
      assert.equal(leased?.value.toString(), 'with a lease');
      const big = await r.get(Buffer.from(`size/${String(1 << 20).padStart(8, '0')}`));
      assert.equal(big?.value.length, 1 << 20);
      assert.equal(await r.get(Buffer.from('gone')), undefined);
      assert.equal(await r.get(Buffer.from('size/')), undefined, 'a prefix is not a key');
      const reborn = await r.get(Buffer.from('reborn'));
      assert.equal(reborn?.version, 1);
      assert.equal(reborn?.value.toString(), 'second');
      const counts = await r.revisionCounts();
      assert.equal(counts.get('multi'), 2, 'compaction kept the newest revision of multi at it, then one put');
      assert.equal(counts.get('gone'), 2, 'one put kept by compaction, then the delete');
      assert.equal((await r.revisionCounts(Buffer.from('many/'))).size, 3000);
      // counted per group (the first path segment here): the per-key counts summed per group
      const segment = (key: Buffer): string => key.toString('latin1').split('/')[0] ?? '';
      const expectedGroups = new Map<string, number>();
      for (const [k, n] of counts) expectedGroups.set(segment(Buffer.from(k, 'latin1')), (expectedGroups.get(segment(Buffer.from(k, 'latin1'))) ?? 0) + n);
      assert.deepEqual(await r.revisionCounts(undefined, segment), expectedGroups);
      assert.deepEqual(await r.revisionCounts(Buffer.from('many/'), segment), new Map([['many', 3000]]));
      // keyed by latin1 strings: a key that is not UTF-8 round-trips
      assert.equal(counts.get(Buffer.from([0x62, 0x69, 0x6e, 0xff, 0x00, 0x80]).toString('latin1')), 1);
    } finally {
      await r.close();
    }
  });
}

test('an older revision still held reads as etcd read it; below the compaction or after the latest is refused', async () => {
  const r = await openSnapshotReader(files.etcdctl);
  try {
    assert.deepEqual(await all(r, { revision: atCompact.revision }), atCompact.kvs);
    assert.equal((await r.get(Buffer.from('multi'), atCompact.revision))?.value.toString(), 'two');
    assert.equal((await r.get(Buffer.from('gone'), atCompact.revision))?.value.toString(), 'x');
    assert.equal(await r.get(Buffer.from('reborn'), atCompact.revision), undefined);
    const refused = (err: unknown, what: RegExp): boolean => err instanceof EtcdsnapError && err.kind === 'usage' && what.test(err.message);
    await assert.rejects(r.get(Buffer.from('multi'), atCompact.revision - 1), (e) => refused(e, /has been compacted/));
    await assert.rejects(all(r, { revision: 1 }), (e) => refused(e, /compacted up to/));
    await assert.rejects(all(r, { revision: expected.revision + 1 }), (e) => refused(e, /after the snapshot's latest revision/));
  } finally {
    await r.close();
  }
});

/** A copy of the etcdctl snapshot with `edit` applied to its bytes in place. */
function damagedCopy(name: string, edit: (fd: number, size: number) => void): string {
  const file = path.join(dir, name);
  copyFileSync(files.etcdctl, file);
  const fd = openSync(file, 'r+');
  try {
    edit(fd, statSync(file).size);
  } finally {
    closeSync(fd);
  }
  return file;
}

function flip(fd: number, pos: number): void {
  const b = Buffer.alloc(1);
  readSync(fd, b, 0, 1, pos);
  b[0] = (b[0] ?? 0) ^ 0x40;
  writeSync(fd, b, 0, 1, pos);
}

/** The offset of the first leaf page after the meta pages holding some KeyValue bytes. */
function leafPageOffset(fd: number, size: number): number {
  const h = Buffer.alloc(16);
  for (let pos = 2 * 4096; pos + 4096 <= size; pos += 4096) {
    readSync(fd, h, 0, 16, pos);
    if (h.readUInt16LE(8) === 0x02 && h.readUInt16LE(10) > 2 && h.readBigUInt64LE(0) === BigInt(pos / 4096)) return pos;
  }
  throw new Error('no leaf page');
}

test('truncated files are damaged: mid-page, at a page boundary, inside the trailer', async () => {
  const size = statSync(files.etcdctl).size;
  const cut = (name: string, to: number): string => damagedCopy(name, (fd) => truncateSync(path.join(dir, name), to) ?? fd);
  await rejectsIntegrity(cut('cut-mid.db', size - 1000), /not a whole number of 4096-byte pages .* truncated/);
  await rejectsIntegrity(cut('cut-page.db', size - 32 - 4096), /the database needs \d+ bytes .* truncated/);
  await rejectsIntegrity(cut('cut-trailer.db', size - 10), /truncated/);
});

test('a flipped byte in a leaf page or a meta page is damage, for status and entries alike', async () => {
  const leaf = damagedCopy('flip-leaf.db', (fd, size) => flip(fd, leafPageOffset(fd, size) + 3000));
  await rejectsIntegrity(leaf, /sha256 trailer does not match|damaged/);
  await rejectsIntegrity(leaf, /sha256 trailer does not match|damaged/, (r) => all(r));
  await rejectsIntegrity(leaf, /sha256 trailer does not match|damaged/, (r) => r.get(Buffer.from('multi')));
  const meta = damagedCopy('flip-meta.db', (fd) => flip(fd, 16 + 20));
  await rejectsIntegrity(meta, /sha256 trailer does not match/);
  // without a trailer: both meta pages bad is named; a page that is not where its parent says is named
  const metas = damagedCopy('flip-metas.db', (fd, size) => {
    flip(fd, 16 + 20);
    flip(fd, 4096 + 16 + 20);
    truncateSync(path.join(dir, 'flip-metas.db'), size - 32);
  });
  await rejectsIntegrity(metas, /no valid meta page \(page 0: meta checksum mismatch; page 1: meta checksum mismatch\)/);
  const header = damagedCopy('flip-header.db', (fd, size) => {
    flip(fd, leafPageOffset(fd, size) + 1);
    truncateSync(path.join(dir, 'flip-header.db'), size - 32);
  });
  await rejectsIntegrity(header, /page \d+ says it is page \d+/);
});

test('files that are not snapshots are damaged: random bytes, an empty file, a text file', async () => {
  const random = path.join(dir, 'random.db');
  writeFileSync(random, randomBytes(3 * 4096 + 32));
  await rejectsIntegrity(random, /no valid meta page/);
  const empty = path.join(dir, 'empty.db');
  writeFileSync(empty, '');
  await rejectsIntegrity(empty, /no valid meta page/);
  const text = path.join(dir, 'text.db');
  writeFileSync(text, 'this is not an etcd snapshot\n'.repeat(500));
  await rejectsIntegrity(text, /no valid meta page \(page 0: no bbolt magic number/);
  await assert.rejects(openSnapshotReader(path.join(dir, 'missing.db')), (e) => e instanceof EtcdsnapError && e.kind === 'not-found');
});
