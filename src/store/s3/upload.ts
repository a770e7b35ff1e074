/**
 * The streamed upload of one object: the state machine behind `S3Store.upload()`.
 *
 * Contract (see `S3Store.upload` for the caller's view): the body is cut by `sendInParts`
 * into parts of `partSizeBytes` in UPLOAD_BUFFERS reused buffers, that many in flight at
 * most; a body shorter than one part goes as one PutObject. The object only appears when the
 * body ended normally and nothing failed or aborted. On any failure everything in flight is
 * cancelled, the multipart upload is aborted, an object a commit request may have created is
 * deleted, the body is left undestroyed (and drained when nothing else reads it), and the
 * promise rejects with one `EtcdsnapError` saying which source failed first.
 *
 * Steps: `watchSources` (body errors/early close and the caller's signal cancel the upload),
 * `partSink` (CreateMultipartUpload on the first part, UploadPart, Complete; or PutObject),
 * `cleanUp` (AbortMultipartUpload, DeleteObject after a commit), `failure` (the error).
 */
import type { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  PutObjectCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { EtcdsnapError, messageOf } from '../../errors.js';
import { scrubSecrets } from '../../log/logger.js';
import { sendInParts, type PartSink } from '../parts.js';
import type { S3Target } from './client.js';
import { abortedError, abortReason, translate } from './errors.js';
import { cfg } from './settings.js';

/** Options of `S3Store.upload()`. */
export interface S3UploadOptions {
  contentType: string;
  /** User metadata (sent as `x-amz-meta-<key>`); keys should be lower case. */
  metadata: Record<string, string>;
  /** Aborting it aborts the upload (the promise rejects; nothing is left in the bucket). */
  signal?: AbortSignal;
  /** Multipart part size, at least 5 MiB; default 16 MiB. */
  partSizeBytes?: number;
  /**
   * Holds the commit (CompleteMultipartUpload, or the PutObject of a body shorter than one
   * part) until `hold.gate` resolves; `hold.ready()` is called once every part was uploaded
   * (or the short body is in memory). A rejected gate fails the upload like any failure
   * (the multipart upload is aborted). Without it the commit follows the body's end.
   */
  hold?: CommitHold;
}

/** See `S3UploadOptions.hold`. */
export interface CommitHold {
  ready(): void;
  gate: Promise<void>;
}

const MiB = 1024 * 1024;
/** Default multipart part size. */
export const DEFAULT_PART_SIZE = 16 * MiB;
/** Reused part buffers per upload, which is also the most parts in flight: memory is partSize × UPLOAD_BUFFERS. */
export const UPLOAD_BUFFERS = 3;
const MIN_PART_SIZE = 5 * MiB;

/** What happened during one upload; the first failure of each source is kept. */
interface UploadState {
  /** Cancels every request in flight and the part cutting. */
  readonly ctl: AbortController;
  bodyError: unknown;
  callerAborted: boolean;
  s3Error: unknown;
  /** A Complete/PutObject was sent: an object may exist even after a failure. */
  commitSent: boolean;
  /** The UploadId, once CreateMultipartUpload was sent. */
  created?: Promise<string>;
}

/** Uploads `body` to `key` (see the module contract). */
export async function uploadStream(t: S3Target, key: string, body: Readable, opts: S3UploadOptions): Promise<void> {
  const what = `upload of s3://${t.bucket}/${key}`;
  const partSize = opts.partSizeBytes ?? DEFAULT_PART_SIZE;
  if (!Number.isInteger(partSize) || partSize < MIN_PART_SIZE) throw cfg(`S3 part size must be at least ${MIN_PART_SIZE} bytes`);

  const st: UploadState = { ctl: new AbortController(), bodyError: undefined, callerAborted: false, s3Error: undefined, commitSent: false };
  const detach = watchSources(body, opts.signal, st);
  let failed = true;
  try {
    await sendInParts(body, partSink(t, key, opts, st), { partSize, buffers: UPLOAD_BUFFERS, signal: st.ctl.signal });
    failed = false;
  } catch (err) {
    if (!st.ctl.signal.aborted) st.ctl.abort(err);
    const abortMpuError = await cleanUp(t, key, st);
    throw failure(t, what, err, st, abortMpuError, opts.signal);
  } finally {
    detach();
    // Drain the rest unless something else still reads it.
    if (failed && !body.destroyed && body.listenerCount('data') === 0) body.resume();
  }
}

/**
 * Step 1: a body 'error', a 'close' before 'end' (or a body already destroyed) and the
 * caller's abort each record themselves and cancel the upload. Returns the detacher.
 */
function watchSources(body: Readable, signal: AbortSignal | undefined, st: UploadState): () => void {
  const onBodyError = (err: unknown): void => {
    st.bodyError ??= err;
    if (!st.ctl.signal.aborted) st.ctl.abort(err);
  };
  const onBodyClose = (): void => {
    if (!body.readableEnded) onBodyError(st.bodyError ?? new Error('the stream closed before its end'));
  };
  const onAbort = (): void => {
    st.callerAborted = true;
    if (!st.ctl.signal.aborted) st.ctl.abort(signal ? abortReason(signal) : new Error('aborted'));
  };
  body.on('error', onBodyError);
  body.on('close', onBodyClose);
  if (signal?.aborted) onAbort();
  signal?.addEventListener('abort', onAbort, { once: true });
  if (body.destroyed && !body.readableEnded) onBodyError(body.errored ?? new Error('the stream was destroyed'));
  return () => {
    signal?.removeEventListener('abort', onAbort);
    body.off('error', onBodyError);
    body.off('close', onBodyClose);
  };
}

/**
 * Step 2: the sink `sendInParts` feeds. Data requests are cancelled by any failure, and their
 * own failure cancels the rest. CreateMultipartUpload is not tied to the cancellation (only to
 * the deadline): a started upload is always known, and aborted by `cleanUp`, never left
 * behind by a request cancelled after S3 acted on it.
 */
function partSink(t: S3Target, key: string, opts: S3UploadOptions, st: UploadState): PartSink {
  const base = { Bucket: t.bucket, Key: key };
  const abortSignal = st.ctl.signal;
  const data = async <T>(request: Promise<T>): Promise<T> => {
    try {
      return await request;
    } catch (err) {
      if (!abortSignal.aborted) {
        st.s3Error ??= err;
        st.ctl.abort(err);
      }
      throw err;
    }
  };
  const create = (): Promise<string> =>
    (st.created ??= data(
      t.client.send(new CreateMultipartUploadCommand({ ...base, ContentType: opts.contentType, Metadata: opts.metadata }), {
        abortSignal: AbortSignal.timeout(t.timeoutMs),
      }),
    ).then((r) => {
      if (r.UploadId === undefined) throw new Error('CreateMultipartUpload returned no UploadId');
      return r.UploadId;
    }));
  const etags: string[] = [];
  return {
    part: async (n, bytes) => {
      const uploadId = await create();
      const r = await data(
        t.client.send(new UploadPartCommand({ ...base, UploadId: uploadId, PartNumber: n, Body: bytes, ContentLength: bytes.length }), { abortSignal }),
      );
      if (r.ETag === undefined) throw new Error(`UploadPart ${n} returned no ETag`);
      etags[n - 1] = r.ETag;
    },
    single: async (bytes) => {
      await waitForCommit(opts.hold);
      if (abortSignal.aborted) throw abortSignal.reason;
      st.commitSent = true;
      await data(
        t.client.send(new PutObjectCommand({ ...base, Body: bytes, ContentLength: bytes.length, ContentType: opts.contentType, Metadata: opts.metadata }), {
          abortSignal,
        }),
      );
    },
    complete: async (parts) => {
      const uploadId = await create();
      await waitForCommit(opts.hold);
      if (abortSignal.aborted) throw abortSignal.reason;
      st.commitSent = true;
      const Parts = etags.slice(0, parts).map((ETag, i) => ({ ETag, PartNumber: i + 1 }));
      await data(t.client.send(new CompleteMultipartUploadCommand({ ...base, UploadId: uploadId, MultipartUpload: { Parts } }), { abortSignal }));
    },
  };
}

/** Every part is uploaded: tell the holder, then wait for its go (a rejection fails the upload). */
async function waitForCommit(hold: CommitHold | undefined): Promise<void> {
  if (!hold) return;
  hold.ready();
  await hold.gate;
}

/**
 * Step 3, after a failure: AbortMultipartUpload when one was created (a failed Create left
 * nothing to abort), and a best-effort DeleteObject when a commit request was sent (it may
 * have succeeded on the server even though we saw a failure). Returns the Abort's error.
 */
async function cleanUp(t: S3Target, key: string, st: UploadState): Promise<unknown> {
  let abortMpuError: unknown;
  const uploadId = await st.created?.catch(() => undefined);
  if (uploadId !== undefined) {
    try {
      await t.client.send(new AbortMultipartUploadCommand({ Bucket: t.bucket, Key: key, UploadId: uploadId }), {
        abortSignal: AbortSignal.timeout(t.timeoutMs),
      });
    } catch (err) {
      abortMpuError = err;
    }
  }
  if (st.commitSent) {
    try {
      await t.client.send(new DeleteObjectCommand({ Bucket: t.bucket, Key: key }), { abortSignal: AbortSignal.timeout(t.timeoutMs) });
    } catch {
      /* S3 unreachable: nothing more we can do */
    }
  }
  return abortMpuError;
}

/**
 * Step 4: the error of a failed upload, by the first source that failed: the body (its kind
 * when it is an EtcdsnapError, else `unavailable`; not retryable), the caller's abort
 * (`unavailable`, not retryable), else the translated S3 error. A failed Abort is noted.
 */
function failure(t: S3Target, what: string, err: unknown, st: UploadState, abortMpuError: unknown, signal: AbortSignal | undefined): EtcdsnapError {
  const note =
    abortMpuError !== undefined
      ? `; aborting the multipart upload failed too (${scrubSecrets(messageOf(abortMpuError))}), so its parts may remain until a bucket lifecycle rule for incomplete uploads removes them`
      : '';
  if (st.bodyError !== undefined) {
    const kind = st.bodyError instanceof EtcdsnapError ? st.bodyError.kind : 'unavailable';
    return new EtcdsnapError(kind, `${what} failed: the snapshot stream failed: ${scrubSecrets(messageOf(st.bodyError))}${note}`, {
      cause: st.bodyError,
      retryable: false,
    });
  }
  if (st.callerAborted) return abortedError(what, signal, note);
  const tr = translate(st.s3Error ?? err, what, t.endpoint);
  return note === '' ? tr : new EtcdsnapError(tr.kind, `${tr.message}${note}`, { cause: tr.cause, retryable: tr.retryable });
}
