/**
 * Listings: objects under a folder (ListObjectsV2) and open multipart uploads
 * (ListMultipartUploads), each paged to the end and each page under its own deadline.
 *
 * Contract: keys are requested with `encoding-type=url` (as minio-go, which k3s uses) and
 * decoded here, so that a key with characters XML cannot carry does not break a listing; an
 * S3 that ignores the parameter sends plain keys, used as they are. A key whose encoding
 * cannot be decoded is left out. Failures are translated `EtcdsnapError`s (`callWithDeadline`).
 */
import { ListMultipartUploadsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { callWithDeadline } from './call.js';
import type { S3Target } from './client.js';

/** One object from a listing. */
export interface S3ObjectInfo {
  /** The full object key. */
  key: string;
  /** The key relative to the folder (e.g. `snap-1`, `.metadata/snap-1`). */
  name: string;
  size: number;
  lastModified: Date;
}

/** Options of `S3Store.list()`. */
export interface S3ListOptions {
  /** Objects per ListObjectsV2 page (MaxKeys); default 1000. */
  pageSize?: number;
  signal?: AbortSignal;
}

/**
 * A key from a listing sent with `encoding-type=url`: form-style percent-encoding ('+' is a
 * space, as AWS sends it; Swift sends %20; a literal '+' is %2B in both). Undefined when it
 * is not valid percent-encoded UTF-8.
 */
function decodeListedKey(encoded: string): string | undefined {
  try {
    return decodeURIComponent(encoded.replace(/\+/g, ' '));
  } catch {
    return undefined;
  }
}

/** All objects whose key starts with `<folder>/<prefix>`, in key order (see `S3Store.list`). */
export async function* listObjects(t: S3Target, folder: string, prefix: string, opts: S3ListOptions): AsyncIterable<S3ObjectInfo> {
  const base = folder === '' ? '' : `${folder}/`;
  const fullPrefix = `${base}${prefix}`;
  let token: string | undefined;
  do {
    const page = await callWithDeadline(
      t,
      `ListObjectsV2 s3://${t.bucket}/${fullPrefix}`,
      (abortSignal) =>
        t.client.send(
          new ListObjectsV2Command({
            Bucket: t.bucket,
            Prefix: fullPrefix === '' ? undefined : fullPrefix,
            ContinuationToken: token,
            MaxKeys: opts.pageSize ?? 1000,
            EncodingType: 'url',
          }),
          { abortSignal },
        ),
      opts.signal,
    );
    const encoded = page.EncodingType === 'url';
    for (const o of page.Contents ?? []) {
      const key = o.Key === undefined ? undefined : encoded ? decodeListedKey(o.Key) : o.Key;
      if (key === undefined || !key.startsWith(base)) continue;
      yield { key, name: key.slice(base.length), size: o.Size ?? 0, lastModified: o.LastModified ?? new Date(0) };
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token !== undefined);
}

/** The in-progress multipart uploads under `<folder>/` (all pages). */
export async function listMultipartUploads(t: S3Target, folder: string): Promise<Array<{ key: string; uploadId: string }>> {
  const prefix = folder === '' ? undefined : `${folder}/`;
  const out: Array<{ key: string; uploadId: string }> = [];
  let keyMarker: string | undefined;
  let uploadIdMarker: string | undefined;
  for (;;) {
    const page = await callWithDeadline(t, `ListMultipartUploads s3://${t.bucket}/${prefix ?? ''}`, (abortSignal) =>
      t.client.send(
        new ListMultipartUploadsCommand({ Bucket: t.bucket, Prefix: prefix, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker, EncodingType: 'url' }),
        { abortSignal },
      ),
    );
    const encoded = page.EncodingType === 'url';
    for (const u of page.Uploads ?? []) {
      const key = u.Key === undefined ? undefined : encoded ? decodeListedKey(u.Key) : u.Key;
      if (key !== undefined && u.UploadId !== undefined) out.push({ key, uploadId: u.UploadId });
    }
    if (!page.IsTruncated || (page.NextKeyMarker === undefined && page.NextUploadIdMarker === undefined)) break;
    // the marker is a key: decoded like the keys (the request encodes it again)
    keyMarker = page.NextKeyMarker !== undefined && encoded ? (decodeListedKey(page.NextKeyMarker) ?? page.NextKeyMarker) : page.NextKeyMarker;
    uploadIdMarker = page.NextUploadIdMarker;
  }
  return out;
}
