/**
 * SupervisorClient.connect and the token's CA pin: on the server's own host the CA file in the
 * data dir already has the hash the token pins, so the client trusts it without fetching
 * `/cacerts` (one TLS handshake and request fewer per CLI command); any other CA file, or
 * none, and the CA is fetched and checked as before. Proven against a closed port: a client
 * that fetched would fail to connect.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { SupervisorClient } from '../src/server/api-client.js';
import { createCa } from '../src/etcd/pki.js';
import { formatToken } from '../src/etcd/token.js';
import { EtcdsnapError } from '../src/errors.js';
import { freePort, tempDir } from './helpers/server.js';

const SECRET = '0123456789abcdef0123456789abcdef';

async function dataDirWithCa(pem: string | undefined): Promise<string> {
  const dataDir = path.join(tempDir('etcdsnap-api-client-'), 'data');
  const tls = path.join(dataDir, 'server', 'tls');
  mkdirSync(tls, { recursive: true });
  if (pem !== undefined) writeFileSync(path.join(tls, 'server-ca.crt'), pem);
  return dataDir;
}

test('a local CA file with the hash the token pins is trusted without /cacerts; another CA file, or none, makes the client fetch it', async () => {
  const ours = (await createCa('etcdsnap-ca@1')).certPem;
  const other = (await createCa('etcdsnap-ca@2')).certPem;
  const token = formatToken(ours, SECRET);
  // nothing listens here: a client that asks /cacerts cannot connect
  const server = `https://127.0.0.1:${await freePort()}`;

  const client = await SupervisorClient.connect({ server, token, dataDir: await dataDirWithCa(ours), timeoutMs: 2000 });
  assert.equal(client.caPem, ours, 'the local file is the CA');

  for (const pem of [other, undefined]) {
    await assert.rejects(
      SupervisorClient.connect({ server, token, dataDir: await dataDirWithCa(pem), timeoutMs: 2000 }),
      (err: unknown) =>
        err instanceof EtcdsnapError &&
        err.kind === 'unavailable' &&
        /cannot reach the etcdsnap server at https:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/.test(err.message),
      pem === undefined ? 'no CA file: /cacerts is fetched' : 'a CA file of another cluster: /cacerts is fetched',
    );
  }
});
