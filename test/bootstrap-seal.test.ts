/**
 * Unit tests of the sealing of the cluster CA with the token's secret (server/bootstrap-data.ts).
 * Kept apart from config.test.ts because every seal and open runs scrypt (about 0.6 s here):
 * the mutation run (npm run mutate) runs this file only for the mutants it reaches.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, randomBytes, scryptSync } from 'node:crypto';
import { caHash } from '../src/etcd/token.js';
import { CURRENT_KDF, KDF_LIMITS, kdfAcceptable, needsReseal, openBootstrap, sealBootstrap, sealedCaHash } from '../src/server/bootstrap-data.js';

test('bootstrap data: the CA sealed with the secret opens only with it; altered or foreign text does not', async () => {
  const ca = {
    certPem: '-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\n',
    keyPem: '-----BEGIN PRIVATE KEY-----\nxyz\n-----END PRIVATE KEY-----\n',
  };
  const sealed = await sealBootstrap(ca, 'secret1');
  const shape = JSON.parse(sealed) as Record<string, string>;
  assert.deepEqual(Object.keys(shape), ['v', 'kdf', 'ca', 'salt', 'iv', 'tag', 'data']);
  assert.deepEqual(shape.kdf, { name: 'scrypt', N: 131072, r: 8, p: 1 });
  assert.deepEqual(
    ['salt', 'iv', 'tag'].map((k) => Buffer.from(shape[k] ?? '', 'base64').length),
    [16, 12, 16],
  );
  assert.ok(!sealed.includes('xyz') && !sealed.includes('secret1'), 'neither the key nor the secret in clear');
  assert.notEqual(await sealBootstrap(ca, 'secret1'), sealed, 'a fresh salt and IV each time');
  assert.deepEqual(await openBootstrap(sealed, 'secret1'), { ok: true, ca });
  assert.deepEqual(await openBootstrap(sealed, 'secret2'), { ok: false, reason: 'wrong-secret' });
  const o = JSON.parse(sealed) as { data: string };
  const data = Buffer.from(o.data, 'base64');
  data[0] = (data[0] ?? 0) ^ 1;
  assert.deepEqual(await openBootstrap(JSON.stringify({ ...o, data: data.toString('base64') }), 'secret1'), { ok: false, reason: 'wrong-secret' });
  assert.deepEqual(await openBootstrap('not json', 'secret1'), { ok: false, reason: 'malformed' });
  // a newer version is not guessed at: refused as sealed by a newer etcdsnap (format-version.test.ts)
  assert.equal(((await openBootstrap(JSON.stringify({ ...o, v: 99 }), 'secret1')) as { reason?: string }).reason, 'newer');
  // the CA hash in clear must be the sealed CA's
  assert.equal(sealedCaHash(sealed), caHash(ca.certPem));
  assert.deepEqual(await openBootstrap(JSON.stringify({ ...o, ca: 'ab'.repeat(32) }), 'secret1'), { ok: false, reason: 'malformed' });
  assert.equal(sealedCaHash('not json'), undefined);
});

const CA = {
  certPem: '-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\n',
  keyPem: '-----BEGIN PRIVATE KEY-----\nxyz\n-----END PRIVATE KEY-----\n',
};
const CHEAP = { name: 'scrypt', N: 1 << 14, r: 8, p: 1 } as const;

/** A sealed text made with node:crypto only, at the cheapest accepted cost (N=2^14). */
function craft(o: { v: number; kdf?: object; aad: string; plain?: string; ca?: string; secret?: string }): string {
  const salt = randomBytes(16);
  const iv = randomBytes(12);
  const k = o.v === 1 ? { N: 1 << 15, r: 8, p: 1 } : CHEAP;
  const key = scryptSync(o.secret ?? 'a-strong-enough-secret', salt, 32, { N: k.N, r: k.r, p: k.p, maxmem: 64 * 1024 * 1024 });
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: 16 });
  cipher.setAAD(Buffer.from(o.aad));
  const data = Buffer.concat([cipher.update(o.plain ?? JSON.stringify({ caCert: CA.certPem, caKey: CA.keyPem }), 'utf8'), cipher.final()]);
  return JSON.stringify({
    v: o.v,
    ...(o.kdf ? { kdf: o.kdf } : {}),
    ca: o.ca ?? caHash(CA.certPem),
    salt: salt.toString('base64'),
    iv: iv.toString('base64'),
    tag: cipher.getAuthTag().toString('base64'),
    data: data.toString('base64'),
  });
}
const V2 = { v: 2, kdf: CHEAP, aad: 'etcdsnap-bootstrap-v2' };

test('kdfAcceptable: scrypt within the memory and work bounds, N a power of two from 2^14, r 1-32, p 1-16', () => {
  assert.deepEqual(KDF_LIMITS, { minN: 16384, maxMemBytes: 268435456, maxWork: 4194304, maxR: 32, maxP: 16 });
  const k = (N: unknown, r: unknown, p: unknown, name: unknown = 'scrypt') => kdfAcceptable({ name, N, r, p });
  assert.ok(kdfAcceptable(CURRENT_KDF));
  assert.ok(k(1 << 14, 8, 1), 'the floor');
  assert.ok(!k(1 << 13, 8, 1), 'under the floor');
  assert.ok(k(1 << 20, 2, 1), '128*N*r = 256 MiB exactly');
  assert.ok(!k(1 << 20, 3, 1), 'over 256 MiB');
  assert.ok(k(1 << 17, 8, 4), '4x the current work exactly');
  assert.ok(!k(1 << 17, 8, 5), 'over 4x the work');
  assert.ok(k(1 << 14, 32, 1) && !k(1 << 14, 33, 1), 'r up to 32');
  assert.ok(!k(1 << 14, 0, 1) && !k(1 << 14, -8, 1), 'r from 1');
  assert.ok(k(1 << 14, 1, 16) && !k(1 << 14, 1, 17), 'p up to 16');
  assert.ok(!k(1 << 14, 8, 0), 'p from 1');
  assert.ok(!k(3 << 14, 8, 1), 'N a power of two');
  assert.ok(!k(1 << 14, 8.5, 1) && !k(1 << 14, 8, 1.5) && !k(2 ** 14 + 0.5, 8, 1), 'whole numbers');
  assert.ok(!k(2 ** 60, 1, 1), 'N a safe integer within bounds');
  assert.ok(!k('16384', 8, 1) && !k(1 << 14, '8', 1) && !k(1 << 14, 8, '1'), 'numbers');
  assert.ok(!k(1 << 14, 8, 1, 'argon2id'));
  assert.ok(!kdfAcceptable(null) && !kdfAcceptable('scrypt') && !kdfAcceptable(undefined));
});

test('needsReseal: version 1, an unknown shape, or weaker parameters; never a newer version or stronger parameters', () => {
  const v2 = (kdf: unknown, v: unknown = 2) => JSON.stringify({ v, kdf, ca: 'x' });
  assert.equal(needsReseal(v2(CURRENT_KDF)), false);
  assert.equal(needsReseal('not json'), true);
  assert.equal(needsReseal('null'), true);
  assert.equal(needsReseal(JSON.stringify({ kdf: CURRENT_KDF })), true, 'no version');
  assert.equal(needsReseal(v2(CURRENT_KDF, '2')), true, 'a version that is not a number');
  assert.equal(needsReseal(v2(undefined, 1)), true);
  assert.equal(needsReseal(v2({ name: 'x' }, 3)), false, 'a newer version is left alone');
  assert.equal(needsReseal(v2({ ...CURRENT_KDF, N: 3 })), true, 'unacceptable parameters');
  assert.equal(needsReseal(v2({ ...CURRENT_KDF, N: 1 << 16 })), true, 'less memory');
  assert.equal(needsReseal(v2({ ...CURRENT_KDF, N: 1 << 16, r: 16 })), false, 'the same memory and work');
  assert.equal(needsReseal(v2({ ...CURRENT_KDF, N: 1 << 16, r: 16, p: 2 })), false, 'more work');
  assert.equal(needsReseal(v2({ ...CURRENT_KDF, N: 1 << 18 })), false, 'more memory');
});

test('openBootstrap: refuses malformed texts before any scrypt; opens versions 1 and 2 with their own parameters and AAD', async () => {
  const good = craft(V2);
  assert.deepEqual(await openBootstrap(good, 'a-strong-enough-secret'), { ok: true, ca: CA });
  const o = JSON.parse(good) as Record<string, unknown>;
  const malformed = { ok: false, reason: 'malformed' };
  for (const key of ['ca', 'salt', 'iv', 'tag', 'data']) {
    assert.deepEqual(await openBootstrap(JSON.stringify({ ...o, [key]: undefined }), 'a-strong-enough-secret'), malformed, `no ${key}`);
    assert.deepEqual(await openBootstrap(JSON.stringify({ ...o, [key]: 5 }), 'a-strong-enough-secret'), malformed, `${key} not a string`);
  }
  assert.deepEqual(await openBootstrap('null', 'x'), malformed);
  assert.deepEqual(await openBootstrap('"text"', 'x'), malformed);
  for (const [key, bytes] of [
    ['salt', 15],
    ['salt', 17],
    ['iv', 11],
    ['iv', 13],
    ['tag', 15],
  ] as const) {
    assert.deepEqual(
      await openBootstrap(JSON.stringify({ ...o, [key]: randomBytes(bytes).toString('base64') }), 'a-strong-enough-secret'),
      malformed,
      `${key} of ${bytes} bytes`,
    );
  }
  // base64 that decodes to the right length but is not the canonical text of those bytes
  assert.deepEqual(await openBootstrap(JSON.stringify({ ...o, iv: `${String(o.iv)}\n` }), 'a-strong-enough-secret'), malformed, 'iv with a newline');
  assert.deepEqual(
    await openBootstrap(JSON.stringify({ ...o, salt: String(o.salt).replace(/=+$/, '') }), 'a-strong-enough-secret'),
    malformed,
    'salt without padding',
  );
  assert.deepEqual(await openBootstrap(JSON.stringify({ ...o, v: 1 }), 'a-strong-enough-secret'), malformed, 'version 1 names no parameters');
  assert.deepEqual(await openBootstrap(JSON.stringify({ ...o, kdf: undefined }), 'a-strong-enough-secret'), malformed, 'version 2 names them');
  assert.deepEqual(await openBootstrap(JSON.stringify({ ...o, v: '2' }), 'a-strong-enough-secret'), malformed);

  const v1 = craft({ v: 1, aad: 'etcdsnap-bootstrap-v1' });
  assert.deepEqual(await openBootstrap(v1, 'a-strong-enough-secret'), { ok: true, ca: CA });
  assert.deepEqual(await openBootstrap(v1, 'another-secret'), { ok: false, reason: 'wrong-secret' });
  assert.deepEqual(
    await openBootstrap(craft({ ...V2, aad: 'etcdsnap-bootstrap-v1' }), 'a-strong-enough-secret'),
    { ok: false, reason: 'wrong-secret' },
    'the AAD names the version',
  );
  assert.deepEqual(await openBootstrap(craft({ ...V2, plain: 'not json' }), 'a-strong-enough-secret'), malformed, 'contents not JSON');
  assert.deepEqual(await openBootstrap(craft({ ...V2, plain: JSON.stringify({ caCert: CA.certPem }) }), 'a-strong-enough-secret'), malformed, 'no key');
  assert.deepEqual(
    await openBootstrap(craft({ ...V2, plain: JSON.stringify({ caCert: 5, caKey: 'k' }) }), 'a-strong-enough-secret'),
    malformed,
    'cert not text',
  );
  assert.deepEqual(
    await openBootstrap(craft({ ...V2, plain: JSON.stringify({ caCert: CA.certPem, caKey: 5 }) }), 'a-strong-enough-secret'),
    malformed,
    'key not text, with the right certificate',
  );
  assert.deepEqual(await openBootstrap(craft({ ...V2, ca: caHash('other') }), 'a-strong-enough-secret'), malformed, 'another CA than the hash in clear says');
  assert.equal(sealedCaHash(JSON.stringify({ ca: 5 })), undefined);
  assert.equal(sealedCaHash('null'), undefined);
  assert.equal(sealedCaHash(JSON.stringify({ ca: 'h' })), 'h');
});
