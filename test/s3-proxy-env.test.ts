/**
 * The proxy environment at the edge: `proxyEnvironment` reads HTTPS_PROXY/HTTP_PROXY/NO_PROXY
 * (either case) from the environment it is given, the server's settings and requests carry
 * them in `S3Settings.proxyEnv`, the CLI never sends them, and `S3Store.create` applies them
 * as Go's ProxyFromEnvironment does. No network: `create` does no I/O, and a bad proxy URL it
 * chose is a `config` error naming the variable.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Command } from 'commander';
import { addOptions, normalizeBooleanArgs, resolveValues } from '../src/config/resolve.js';
import { SERVER_OPTIONS } from '../src/config/schema.js';
import { EtcdsnapError } from '../src/errors.js';
import { parseS3Request, proxyEnvironment, s3OptionsFromValues, s3Request, withProxyEnvironment } from '../src/snapshot/s3-config.js';
import { S3Store, type ProxyEnvironment, type S3Settings } from '../src/store/s3.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'; // as cli/main.ts does

test('proxyEnvironment takes the six proxy variables, as given, and nothing else', () => {
  const env = { HTTPS_PROXY: 'http://p:3128', http_proxy: 'p2:8080', NO_PROXY: '.corp', no_proxy: '', PATH: '/bin', AWS_SECRET_ACCESS_KEY: 'x' };
  assert.deepEqual(proxyEnvironment(env), { HTTPS_PROXY: 'http://p:3128', http_proxy: 'p2:8080', NO_PROXY: '.corp', no_proxy: '' });
  assert.deepEqual(proxyEnvironment({}), {});
});

test('the server settings and a request get the proxy environment; the CLI request never carries it', async () => {
  const cmd = addOptions(new Command('server').exitOverride(), SERVER_OPTIONS).action(() => undefined);
  await cmd.parseAsync(normalizeBooleanArgs(['--etcd-s3', '--etcd-s3-bucket', 'b'], SERVER_OPTIONS), { from: 'user' });
  const v = await resolveValues(cmd, SERVER_OPTIONS, { env: {}, warn: () => undefined });
  const proxyEnv: ProxyEnvironment = { HTTPS_PROXY: 'http://p:3128' };
  assert.deepEqual(s3OptionsFromValues(v, 'etcd-', proxyEnv)?.settings.proxyEnv, proxyEnv);
  const without = s3OptionsFromValues(v, 'etcd-');
  assert.ok(without !== undefined && !('proxyEnv' in without.settings));
  const req = parseS3Request({ bucket: 'b' });
  assert.deepEqual(withProxyEnvironment(req, proxyEnv).settings.proxyEnv, proxyEnv);
  assert.ok(!('proxyEnv' in req.settings), 'the parsed request is not changed');
  const sent = s3Request(withProxyEnvironment(req, proxyEnv));
  assert.ok(!('proxyEnv' in sent));
  assert.throws(() => parseS3Request({ bucket: 'b', proxyEnv }), /unknown field "proxyEnv"/, 'a request cannot set it');
});

test('S3Store.create applies the proxy environment like Go: the variable, NO_PROXY, loopback, --etcd-s3-proxy first', () => {
  const settings = (o: Partial<S3Settings>): S3Settings => ({
    endpoint: 's3.example.com:9000',
    skipSslVerify: false,
    bucket: 'b',
    region: 'us-east-1',
    folder: '',
    insecure: false,
    timeoutMs: 1000,
    bucketLookup: 'path',
    ...o,
  });
  const bad = 'socks5://proxy:1080'; // only a proxy that is chosen fails, so a throw shows the choice
  const chosen = (o: Partial<S3Settings>, name: RegExp): void =>
    assert.throws(
      () => S3Store.create(settings(o)),
      (e: unknown) => e instanceof EtcdsnapError && e.kind === 'config' && name.test(e.message),
    );
  const notChosen = (o: Partial<S3Settings>): void => S3Store.create(settings(o)).destroy();
  chosen({ proxyEnv: { HTTPS_PROXY: bad } }, /not supported.*\(environment variable HTTPS_PROXY\)/);
  chosen({ proxyEnv: { https_proxy: bad } }, /\(environment variable https_proxy\)/);
  chosen({ insecure: true, proxyEnv: { HTTP_PROXY: bad, HTTPS_PROXY: 'http://ok:1' } }, /\(environment variable HTTP_PROXY\)/);
  notChosen({ proxyEnv: { HTTP_PROXY: bad } });
  notChosen({ proxyEnv: { HTTPS_PROXY: bad, NO_PROXY: '.example.com' } });
  notChosen({ proxyEnv: { HTTPS_PROXY: bad, no_proxy: 's3.example.com:9000' } });
  chosen({ proxyEnv: { HTTPS_PROXY: bad, NO_PROXY: 's3.example.com:443' } }, /HTTPS_PROXY/);
  notChosen({ endpoint: '127.0.0.1:9000', proxyEnv: { HTTPS_PROXY: bad } });
  notChosen({ proxy: 'none', proxyEnv: { HTTPS_PROXY: bad } });
  notChosen({ proxy: 'http://explicit:3128', proxyEnv: { HTTPS_PROXY: bad } });
  notChosen({ proxyEnv: undefined }); // no proxy environment: direct
});
