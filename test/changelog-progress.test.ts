/**
 * The change log's commit point (changelog/progress.ts) without etcd: the record's strict
 * parsing, and at start a `.part` committed just before a crash (its seal is etcd's record)
 * completed, any other `.part` left for the writer to remove.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { encodeFooter, encodeHeader, encodeRecord, partName, segmentName } from '../src/changelog/format.js';
import { completeCommittedParts, parseSealedRecord, type SealedRecord } from '../src/changelog/progress.js';

const A = 'aaaaaaaaaaaaaaaa';

/** A `.part` holding revisions first..first+n-1, sealed when `sealed`. */
function writePart(dir: string, first: number, n: number, sealed: boolean): string {
  const records = Array.from({ length: n }, (_, i) =>
    encodeRecord({ revision: first + i, time: 1000 + i, events: [{ type: 'delete', key: Buffer.from(`k${i}`) }] }),
  );
  const body = Buffer.concat([encodeHeader({ chain: A, cluster: '42', first }), ...records]);
  const last = first + n - 1;
  const footer = encodeFooter({
    first,
    last,
    records: n,
    firstTime: 1000,
    lastTime: 1000 + n - 1,
    sealedAt: 2000,
    sha256: createHash('sha256').update(body).digest('hex'),
  });
  const name = partName(A, first);
  writeFileSync(path.join(dir, name), sealed ? Buffer.concat([body, footer]) : body);
  return name;
}

const record = (first: number, last: number): SealedRecord => ({
  cluster: '42',
  chain: A,
  first,
  last,
  lastTime: 1002,
  sealedAt: 2000,
  since: 500,
  node: 'server-1',
});

test('the etcd record: strict parsing (a beginning is first = last + 1)', () => {
  const r = record(3, 5);
  assert.deepEqual(parseSealedRecord(JSON.stringify(r)), r);
  assert.deepEqual(parseSealedRecord(JSON.stringify(record(6, 5))), record(6, 5), 'a chain that begins: nothing sealed yet');
  for (const bad of [
    '',
    'null',
    '[]',
    '{}',
    JSON.stringify({ ...r, last: 1 }),
    JSON.stringify({ ...r, chain: 'x' }),
    JSON.stringify({ ...r, cluster: 7 }),
    JSON.stringify({ ...r, first: 0 }),
  ]) {
    assert.equal(parseSealedRecord(bad), undefined, bad);
  }
});

test('at start: the .part whose seal is the record is completed; others are left', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'cl-progress-'));
  try {
    writePart(dir, 3, 3, true);
    assert.deepEqual(await completeCommittedParts(dir, undefined), [], 'no record: nothing');
    assert.deepEqual(await completeCommittedParts(dir, record(3, 4)), [], 'another range: not the committed segment');
    assert.deepEqual(await completeCommittedParts(dir, { ...record(3, 5), cluster: '43' }), [], 'another cluster');
    assert.deepEqual(await completeCommittedParts(dir, record(3, 5)), [segmentName(A, 3, 5)]);
    assert.deepEqual(readdirSync(dir), [segmentName(A, 3, 5)]);
    const unsealed = writePart(dir, 6, 2, false);
    assert.deepEqual(await completeCommittedParts(dir, record(6, 7)), [], 'not sealed: never committed');
    assert.deepEqual(readdirSync(dir).sort(), [segmentName(A, 3, 5), unsealed].sort());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
