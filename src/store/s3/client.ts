/**
 * Building the SDK client of one S3 target from `S3Settings`.
 *
 * Contract: `openTarget()` validates the settings (`resolveSettings`, then the proxy), builds
 * one `S3Client` with its own connection pool (per-request connection/request/socket timeout
 * `timeoutMs`, maxAttempts 3, checksums only `WHEN_REQUIRED`, the compatibility middlewares)
 * and returns it with what every operation needs. Throws `config` `EtcdsnapError`s; no
 * network I/O and no `process.env` access. The SDK's Node-version warning switch is set by
 * the process entry (cli/main.ts), not here.
 */
import https from 'node:https';
import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { addCompatMiddlewares } from './middleware.js';
import { chooseProxy, TargetTlsProxyAgent } from './proxy.js';
import { resolveSettings, type S3Settings } from './settings.js';
import { CLI_S3_OPTIONS, stringDefault } from '../../config/schema.js';

/** The schema's default endpoint: AWS itself, where the SDK's own endpoint rules apply. */
const DEFAULT_AWS_ENDPOINT = stringDefault(CLI_S3_OPTIONS, 's3-endpoint');

/** One bucket on one endpoint, as the store's operations use it. */
export interface S3Target {
  readonly client: S3Client;
  readonly bucket: string;
  /** host[:port] as configured, for messages. */
  readonly endpoint: string;
  /** Deadline per operation (and per HTTP request), in milliseconds. */
  readonly timeoutMs: number;
}

/** The client of `settings`, plus the normalised folder. */
export function openTarget(settings: S3Settings): { target: S3Target; folder: string } {
  const r = resolveSettings(settings);
  const targetTls = { ...(r.ca ? { ca: r.ca } : {}), rejectUnauthorized: !settings.skipSslVerify };
  const proxyUrl = chooseProxy(settings.proxy, settings.proxyEnv, { hostname: r.hostname, port: r.port, secure: !settings.insecure });

  const agent = proxyUrl ? new TargetTlsProxyAgent(proxyUrl, targetTls) : undefined;
  const requestHandler = {
    connectionTimeout: settings.timeoutMs,
    requestTimeout: settings.timeoutMs,
    throwOnRequestTimeout: true,
    socketTimeout: settings.timeoutMs,
    httpsAgent: agent ?? new https.Agent({ keepAlive: true, ...targetTls }),
    ...(agent ? { httpAgent: agent } : {}),
  };

  const config: S3ClientConfig = {
    region: r.region,
    forcePathStyle: r.forcePathStyle,
    maxAttempts: 3,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler,
    ...(r.credentials ? { credentials: r.credentials } : {}),
  };
  // For AWS itself leave the endpoint to the SDK, so that the region picks the right host.
  if (settings.insecure || settings.endpoint !== DEFAULT_AWS_ENDPOINT) {
    config.endpoint = `${settings.insecure ? 'http' : 'https'}://${settings.endpoint}`;
  }

  const client = new S3Client(config);
  addCompatMiddlewares(client);
  return { target: { client, bucket: settings.bucket, endpoint: settings.endpoint, timeoutMs: settings.timeoutMs }, folder: r.folder };
}
