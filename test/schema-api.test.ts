/**
 * The option schema as the one source of validation and defaults (checks, JSON fields of API
 * requests), and the decoders of the snapshot API's answers (model/api.ts). Pure: no server.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkValue, jsonValue, numberDefault, S3_OPTIONS, SERVER_OPTIONS, SNAPSHOT_CLI_OPTIONS, specOf, stringDefault } from '../src/config/schema.js';
import { formatDuration, valueFromJson, within } from '../src/config/values.js';
import { decodeClusterBootstrap, decodeMemberAdd, decodeSnapshotResponse, ResponseShapeError } from '../src/model/api.js';
import { parseS3Request } from '../src/snapshot/s3-config.js';
import { parseSnapshotRequest } from '../src/snapshot/request.js';

const server = (key: string) => specOf(SERVER_OPTIONS, key);
const cli = (key: string) => specOf(SNAPSHOT_CLI_OPTIONS, key);

test('spec checks: node names, addresses, etcd args, api dirs, join URL, name prefixes, retention and S3 timeout bounds', () => {
  assert.equal(checkValue(server('node-name'), 'node-1.example'), 'node-1.example');
  assert.throws(() => checkValue(server('node-name'), 'bad_name'), /"bad_name" is not a node name/);
  assert.throws(() => checkValue(server('bind-address'), 'localhost'), /"localhost" is not an IP address/);
  assert.equal(checkValue(server('advertise-address'), '::1'), '::1');
  assert.throws(() => checkValue(server('etcd-arg'), ['a=1', 'nokey']), /"nokey" is not key=value/);
  assert.throws(() => checkValue(server('etcd-snapshot-api-dir'), ['/a,rel/b']), /"rel\/b" is not an absolute path/);
  assert.throws(() => checkValue(server('server'), 'http://x:9345'), /is not https:\/\/<host>:<supervisor-port>/);
  assert.equal(checkValue(server('server'), ''), '');
  assert.throws(() => checkValue(server('etcd-snapshot-name'), '../x'), /invalid snapshot name prefix/);
  assert.throws(() => checkValue(cli('name'), '.hidden'), /must not start with '\.'/);
  assert.throws(() => checkValue(cli('snapshot-retention'), 100_001), /100001 is more than 100000/);
  assert.throws(() => checkValue(server('etcd-s3-timeout'), 500), /500ms is less than 1s; use 1s to 24h/);
  assert.throws(() => checkValue(cli('s3-bucket-lookup-type'), 'vhost'), /"vhost" is not one of auto, dns, path/);
  // aliases share their spec's check
  assert.throws(() => checkValue(cli('etcd-s3-retention'), 200_000), /more than/);
});

test("defaults are read from the specs; the CLI shares the server's supervisor port default", () => {
  assert.equal(numberDefault(SERVER_OPTIONS, 'supervisor-port'), 9345);
  assert.equal(numberDefault(SNAPSHOT_CLI_OPTIONS, 'supervisor-port'), 9345);
  assert.equal(stringDefault(S3_OPTIONS, 's3-endpoint'), 's3.amazonaws.com');
  assert.equal(numberDefault(S3_OPTIONS, 's3-timeout'), 300_000);
  assert.throws(() => stringDefault(SERVER_OPTIONS, 'token'), /bug: option token has no string default/);
  assert.equal(formatDuration(90_000), '90s');
  assert.equal(formatDuration(1500), '1500ms');
  within(0, 1)('x'); // a non-number is left to the type's parser
});

test('JSON fields: the JSON type first (no "5" for 5), then the spec', () => {
  assert.equal(valueFromJson('count', 3), 3);
  assert.throws(() => valueFromJson('count', '3'), /must be a whole number/);
  assert.throws(() => valueFromJson('count', -1), /-1 is negative/);
  assert.throws(() => valueFromJson('port', 70_000), /not a port number/);
  assert.throws(() => valueFromJson('duration', 1.5), /whole number of milliseconds/);
  assert.throws(() => valueFromJson('boolean', 'yes'), /must be true or false/);
  assert.throws(() => jsonValue(cli('snapshot-retention'), 100_001), /more than 100000/);
});

test('API requests use the specs: defaults of absent S3 fields, the same checks as the flags', () => {
  const o = parseS3Request({ bucket: 'b' });
  assert.deepEqual(o, {
    settings: {
      endpoint: 's3.amazonaws.com',
      skipSslVerify: false,
      bucket: 'b',
      region: 'us-east-1',
      folder: '',
      insecure: false,
      timeoutMs: 300_000,
      bucketLookup: 'auto',
    },
    retention: 5,
  });
  assert.throws(() => parseS3Request({ bucket: 'b', timeoutMs: 10 }), /^EtcdsnapError: invalid field "s3": "timeoutMs": 10ms is less than 1s/);
  assert.throws(() => parseS3Request({ bucket: 'b', bucketLookup: 'x' }), /"bucketLookup": "x" is not one of auto, dns, path/);
  assert.throws(() => parseS3Request({ bucket: 'b', retention: 100_001 }), /"retention": 100001 is more than 100000/);
  assert.throws(() => parseS3Request({ bucket: 'b', region: 1 }), /"region" must be a string/);
  assert.throws(() => parseSnapshotRequest({ operation: 'prune', name: ['a/b'] }), /invalid field "name": invalid snapshot name prefix/);
  assert.throws(() => parseSnapshotRequest({ operation: 'prune', retention: 100_001 }), /invalid field "retention": 100001 is more than/);
  // delete takes file names, not a prefix: the service checks those
  assert.deepEqual(parseSnapshotRequest({ operation: 'delete', name: ['.x'] }).name, ['.x']);
});

const record = {
  name: 'on-demand-n1-1700000000',
  location: 'file:///s/on-demand-n1-1700000000',
  nodeName: 'n1',
  createdAt: '2023-11-14T22:13:20Z',
  size: 10,
  compressed: false,
  status: 'successful',
};

test('answers are decoded per operation and returned as sent (field order kept)', () => {
  const list = {
    items: [{ ...record, sha256: 'a'.repeat(64), s3: { location: 's3://b/x', status: 'failed', attempts: 1, updatedAt: record.createdAt } }],
    s3Error: 'down',
  };
  assert.equal(decodeSnapshotResponse('list', list), list);
  const save = { created: [record], deleted: [] };
  assert.equal(decodeSnapshotResponse('save', save).created[0]?.name, record.name);
  assert.deepEqual(decodeSnapshotResponse('delete', { deleted: ['a'], notFound: [] }), { deleted: ['a'], notFound: [] });
  assert.deepEqual(decodeSnapshotResponse('prune', { deleted: [] }), { deleted: [] });
});

test('a malformed answer is one line naming the wrong field', () => {
  const cases: Array<[Parameters<typeof decodeSnapshotResponse>[0], unknown, string]> = [
    ['save', undefined, 'the answer is not an object'],
    ['save', { created: 'x', deleted: [] }, 'the answer.created is not a list'],
    ['list', { items: [{ ...record, size: '10' }] }, 'the answer.items[0].size is not a number'],
    ['list', { items: [{ ...record, status: 'ok' }] }, 'the answer.items[0].status is not successful or failed'],
    ['list', { items: [], s3Error: 5 }, 'the answer.s3Error is not a string'],
    ['delete', { deleted: [] }, 'the answer.notFound is not a list'],
    ['prune', { deleted: [1] }, 'the answer.deleted[0] is not a string'],
  ];
  for (const [op, body, message] of cases) {
    assert.throws(
      () => decodeSnapshotResponse(op, body),
      (err: unknown) => err instanceof ResponseShapeError && err.message === message && !err.message.includes('\n'),
      `${op} ${JSON.stringify(body)}`,
    );
  }
});

test('the cluster answers a joining server decodes are typed: the CA pair and the learner, anything else a one-line shape error', () => {
  assert.deepEqual(decodeClusterBootstrap({ caCert: 'C', caKey: 'K' }), { caCert: 'C', caKey: 'K' });
  assert.throws(
    () => decodeClusterBootstrap({ caCert: 'C' }),
    (e: unknown) => e instanceof ResponseShapeError && e.message === 'the answer.caKey is not a string',
  );
  assert.throws(() => decodeClusterBootstrap('C'), /the answer is not an object/);
  assert.deepEqual(decodeMemberAdd({ id: '1a', initialCluster: 'n=https://x:2380' }), { id: '1a', initialCluster: 'n=https://x:2380' });
  assert.throws(() => decodeMemberAdd({ id: 7, initialCluster: '' }), /the answer\.id is not a string/);
});
