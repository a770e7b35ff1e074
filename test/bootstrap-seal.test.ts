/**
 * Unit tests of the sealing of the cluster CA with the token's secret (server/bootstrap-data.ts).
 * Kept apart from config.test.ts because every seal and open runs scrypt (about 0.6 s here):
 * the mutation run (npm run mutate) runs this file only for the mutants it reaches.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { caHash } from '../src/etcd/token.js';
import { openBootstrap, sealBootstrap, sealedCaHash } from '../src/server/bootstrap-data.js';

test('bootstrap data: the CA sealed with the secret opens only with it; altered or foreign text does not', async () => {
  const ca = {
    certPem: '-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\n',
    keyPem: '-----BEGIN PRIVATE KEY-----\nxyz\n-----END PRIVATE KEY-----\n',
  };
  const sealed = await sealBootstrap(ca, 'secret1');
  assert.ok(!sealed.includes('xyz') && !sealed.includes('secret1'), 'neither the key nor the secret in clear');
  assert.notEqual(await sealBootstrap(ca, 'secret1'), sealed, 'a fresh salt and IV each time');
  assert.deepEqual(await openBootstrap(sealed, 'secret1'), { ok: true, ca });
  assert.deepEqual(await openBootstrap(sealed, 'secret2'), { ok: false, reason: 'wrong-secret' });
  const o = JSON.parse(sealed) as { data: string };
  const data = Buffer.from(o.data, 'base64');
  data[0] = (data[0] ?? 0) ^ 1;
  assert.deepEqual(await openBootstrap(JSON.stringify({ ...o, data: data.toString('base64') }), 'secret1'), { ok: false, reason: 'wrong-secret' });
  assert.deepEqual(await openBootstrap('not json', 'secret1'), { ok: false, reason: 'malformed' });
  assert.deepEqual(await openBootstrap(JSON.stringify({ ...o, v: 99 }), 'secret1'), { ok: false, reason: 'malformed' });
  // the CA hash in clear must be the sealed CA's
  assert.equal(sealedCaHash(sealed), caHash(ca.certPem));
  assert.deepEqual(await openBootstrap(JSON.stringify({ ...o, ca: 'ab'.repeat(32) }), 'secret1'), { ok: false, reason: 'malformed' });
  assert.equal(sealedCaHash('not json'), undefined);
});
