/**
 * `S3Store`: one bucket/folder on one S3 endpoint. Everything outside store/s3 talks to S3
 * through it; the AWS SDK and `https-proxy-agent` are imported only under store/s3.
 *
 * Contract:
 * - `S3Store.create(settings)` validates the settings synchronously and throws a `config`
 *   `EtcdsnapError` (k3s's messages where k3s has one). It registers the access key, secret
 *   key, session token and any proxy password with `registerSecret()`; no message produced
 *   here ever contains them (SDK messages are passed through `scrubSecrets()`). It never
 *   reads or writes `process.env`: the proxy environment comes in `settings.proxyEnv`.
 * - Object keys follow k3s: `path.Join(folder, name)`; sidecars are `<folder>/.metadata/<name>`;
 *   the location string is `s3://<bucket>/<key>`.
 * - Every call gets its own deadline of `timeoutMs` (k3s's `--etcd-s3-timeout` per operation)
 *   covering the SDK's retries (maxAttempts 3); each HTTP request also has `timeoutMs` as
 *   connection and request timeout. `upload()` and the body of `getStream()` are the
 *   exceptions: their length depends on the data, so there the limit applies per HTTP request
 *   (each part) and to socket inactivity, not to the whole transfer.
 * - Failures are `EtcdsnapError`s as `translate()` (errors.ts) maps them: `not-found`,
 *   `auth`, `unavailable` (retryable unless aborted), `config`. Messages name the operation,
 *   the bucket/key and the endpoint, plus the S3 error code and HTTP status.
 * - S3-compatible servers: see middleware.ts (Content-MD5 instead of CRC32, unsigned parts);
 *   checksums are only computed/validated when an operation requires them.
 *
 * Parts: settings.ts (validation, CAs), proxy.ts, client.ts, middleware.ts, errors.ts,
 * call.ts (deadline), list.ts, upload.ts (the multipart state machine).
 */
import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import { EtcdsnapError } from '../../errors.js';
import { scrubSecrets } from '../../log/logger.js';
import { assertSafeName } from '../../model/naming.js';
import { callWithDeadline } from './call.js';
import { openTarget, type S3Target } from './client.js';
import { listMultipartUploads, listObjects, type S3ListOptions, type S3ObjectInfo } from './list.js';
import type { S3Settings } from './settings.js';
import { uploadStream, type S3UploadOptions } from './upload.js';

const DELETE_BATCH = 1000;

/** `not-found` as undefined; other errors rethrown. */
function unlessNotFound(err: unknown): undefined {
  if (err instanceof EtcdsnapError && err.kind === 'not-found') return undefined;
  throw err;
}

/**
 * One bucket/folder on one S3 endpoint. Create it with `S3Store.create()`; it keeps one
 * SDK client (with its connection pool) for its lifetime; call `destroy()` when done.
 */
export class S3Store {
  readonly bucket: string;
  /** Normalised folder ('' = bucket root), without leading or trailing slash. */
  readonly folder: string;
  /** host[:port] as configured, for messages. */
  readonly endpoint: string;
  private readonly t: S3Target;

  private constructor(target: S3Target, folder: string) {
    this.t = target;
    this.bucket = target.bucket;
    this.folder = folder;
    this.endpoint = target.endpoint;
  }

  /**
   * Validates `settings` and builds the client. Throws `config` EtcdsnapErrors:
   * a scheme in the endpoint, an empty bucket (`s3 bucket name was not set`), an endpoint CA
   * that yields no certificate (`no certificates loaded from etcd-s3-endpoint-ca`), a bad proxy
   * URL (`proxy URL must include scheme and host`), only one of access key / secret key, a
   * non-positive timeout. No network I/O happens here; use `checkBucket()` for that.
   */
  static create(settings: S3Settings): S3Store {
    const { target, folder } = openTarget(settings);
    return new S3Store(target, folder);
  }

  /** `<folder>/<name>`; `name` must pass `assertSafeName` (a `usage` error otherwise). */
  key(name: string): string {
    const n = assertSafeName(name);
    return this.folder === '' ? n : `${this.folder}/${n}`;
  }

  /** `<folder>/.metadata/<name>`, the sidecar key. */
  metadataKey(name: string): string {
    const n = assertSafeName(name);
    return this.folder === '' ? `.metadata/${n}` : `${this.folder}/.metadata/${n}`;
  }

  /** `s3://<bucket>/<key(name)>`. */
  location(name: string): string {
    return `s3://${this.bucket}/${this.key(name)}`;
  }

  /** `s3://<bucket>/<folder> at <endpoint>`, for logs; never contains credentials. */
  describe(): string {
    return `s3://${this.bucket}/${this.folder} at ${this.endpoint}`;
  }

  /** Closes the client's idle connections. The store must not be used afterwards. */
  destroy(): void {
    this.t.client.destroy();
  }

  /**
   * HeadBucket. Resolves when the bucket exists and the credentials may use it. Rejects with
   * `not-found` ("bucket X does not exist at ENDPOINT (NotFound, HTTP 404)"), `auth`,
   * `unavailable` or `config`; every message names the bucket and the endpoint.
   */
  async checkBucket(): Promise<void> {
    try {
      await callWithDeadline(this.t, `HeadBucket ${this.bucket}`, (abortSignal) =>
        this.t.client.send(new HeadBucketCommand({ Bucket: this.bucket }), { abortSignal }),
      );
    } catch (err) {
      if (err instanceof EtcdsnapError && err.kind === 'not-found') {
        const c = err.cause instanceof Error ? (err.cause as Error & { httpStatusCode?: number }) : undefined;
        const label = c ? ` (${[c.name, c.httpStatusCode ? `HTTP ${c.httpStatusCode}` : ''].filter(Boolean).join(', ')})` : '';
        throw new EtcdsnapError('not-found', `bucket ${this.bucket} does not exist at ${this.endpoint}${label}`, { cause: err.cause });
      }
      throw err;
    }
  }

  /**
   * Streams `body` to `key(name)` as a multipart upload: parts of `partSizeBytes` cut by
   * `sendInParts` into UPLOAD_BUFFERS reused buffers, that many in flight at most, so memory
   * stays at partSize × UPLOAD_BUFFERS whatever the size. A body shorter than one part is sent
   * with one PutObject once it ended.
   *
   * The object only appears when `body` ended normally (and no abort happened): if `body`
   * emits 'error' or closes before 'end', `signal` aborts, or any part fails (after the SDK's
   * retries), the in-flight requests are cancelled, the multipart upload is aborted (no parts
   * are left; if S3 is unreachable the abort itself may fail, which the message says), no
   * object is created, and the promise rejects with an EtcdsnapError: for a body failure the
   * kind of the body's error when it is an EtcdsnapError (else `unavailable`, not retryable);
   * for an abort `unavailable`, not retryable; for S3 failures the translated S3 error.
   *
   * `body` is never destroyed by this method; after a failure, unless another consumer reads
   * it, the rest is drained and discarded, so that a tee feeding both a local file and this
   * upload does not stall. If a commit request (Complete/PutObject) was sent before the
   * failure, a DeleteObject of the key is attempted so that no object remains.
   */
  async upload(name: string, body: Readable, opts: S3UploadOptions): Promise<void> {
    await uploadStream(this.t, this.key(name), body, opts);
  }

  /** PutObject of a small text object (sidecars). `key` is a full key (see `metadataKey`). */
  async putText(key: string, text: string, contentType: string): Promise<void> {
    await callWithDeadline(this.t, `PutObject s3://${this.bucket}/${key}`, (abortSignal) =>
      this.t.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: text, ContentType: contentType }), { abortSignal }),
    );
  }

  /** GetObject as UTF-8 text; `undefined` when the key does not exist. */
  async getText(key: string): Promise<string | undefined> {
    return callWithDeadline(this.t, `GetObject s3://${this.bucket}/${key}`, async (abortSignal) => {
      const out = await this.t.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }), { abortSignal });
      return out.Body ? await out.Body.transformToString('utf8') : '';
    }).catch(unlessNotFound);
  }

  /**
   * GetObject as a stream; rejects `not-found` when the key does not exist. The deadline
   * covers getting the response; the body then only has the socket inactivity timeout. Errors
   * while reading the stream are plain Node stream errors.
   */
  async getStream(key: string): Promise<Readable> {
    return callWithDeadline(this.t, `GetObject s3://${this.bucket}/${key}`, async (abortSignal) => {
      const out = await this.t.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }), { abortSignal });
      const body: unknown = out.Body;
      if (!(body instanceof Readable)) throw new EtcdsnapError('unavailable', `GetObject s3://${this.bucket}/${key} returned no stream`);
      return body;
    });
  }

  /** HeadObject: size, mtime and user metadata (keys without `x-amz-meta-`); `undefined` on 404. */
  async head(key: string): Promise<{ size: number; lastModified: Date; metadata: Record<string, string> } | undefined> {
    return callWithDeadline(this.t, `HeadObject s3://${this.bucket}/${key}`, async (abortSignal) => {
      const out = await this.t.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }), { abortSignal });
      return { size: out.ContentLength ?? 0, lastModified: out.LastModified ?? new Date(0), metadata: { ...(out.Metadata ?? {}) } };
    }).catch(unlessNotFound);
  }

  /**
   * All objects under `<folder>/` (plus `prefix`, relative to the folder), recursively,
   * including `.metadata/` sidecars, in key order; pages through ListObjectsV2 continuation
   * tokens (`pageSize` keys per request, each page under its own deadline). Keys are decoded
   * as list.ts says; a key that cannot be decoded is left out. `name` and `key` may hold any
   * character: callers check names before using them.
   */
  list(prefix = '', opts: S3ListOptions = {}): AsyncIterable<S3ObjectInfo> {
    return listObjects(this.t, this.folder, prefix, opts);
  }

  /**
   * In-progress multipart uploads under the folder (all pages), for tests and cleanup. Keys
   * are listed and decoded like `list()`.
   */
  async listMultipartUploads(): Promise<Array<{ key: string; uploadId: string }>> {
    return listMultipartUploads(this.t, this.folder);
  }

  /**
   * AbortMultipartUpload: removes the parts of an upload that `upload()` could not abort (S3 was
   * unreachable at the time). A missing upload (already aborted or completed) is not an error.
   */
  async abortMultipartUpload(key: string, uploadId: string): Promise<void> {
    await callWithDeadline(this.t, `AbortMultipartUpload s3://${this.bucket}/${key}`, (abortSignal) =>
      this.t.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId }), { abortSignal }),
    ).catch(unlessNotFound);
  }

  /**
   * DeleteObjects in batches of 1000 (`batchSize`, for tests; at most 1000), sent with
   * Content-MD5. Keys are full keys. Per-key failures are returned, not thrown; a failed
   * request (network, auth) rejects, with the earlier batches already deleted. Deleting a key
   * that does not exist counts as deleted (S3 semantics).
   */
  async deleteMany(keys: string[], opts: { batchSize?: number } = {}): Promise<{ deleted: string[]; errors: Array<{ key: string; message: string }> }> {
    const batchSize = Math.min(DELETE_BATCH, Math.max(1, Math.floor(opts.batchSize ?? DELETE_BATCH)));
    const deleted: string[] = [];
    const errors: Array<{ key: string; message: string }> = [];
    for (let i = 0; i < keys.length; i += batchSize) {
      const batch = keys.slice(i, i + batchSize);
      const out = await callWithDeadline(this.t, `DeleteObjects s3://${this.bucket} (${batch.length} keys)`, (abortSignal) =>
        this.t.client.send(new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: false } }), {
          abortSignal,
        }),
      );
      for (const d of out.Deleted ?? []) if (d.Key !== undefined) deleted.push(d.Key);
      for (const e of out.Errors ?? []) {
        errors.push({ key: e.Key ?? '', message: scrubSecrets([e.Code, e.Message].filter(Boolean).join(': ') || 'unknown error') });
      }
    }
    return { deleted, errors };
  }
}
