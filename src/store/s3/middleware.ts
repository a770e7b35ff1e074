/**
 * The SDK middlewares that make the client work with S3-compatible servers and stream parts
 * without hashing them twice.
 *
 * Contract: `addCompatMiddlewares(client)` adds two build-step middlewares at low priority
 * (after the SDK's own checksum middleware): DeleteObjects, and any request with a buffered
 * body that the SDK gave a flexible checksum, is sent with `Content-MD5` instead of the
 * `x-amz-checksum-*` headers (Swift, MinIO and Ceph need this); UploadPart is sent with
 * `x-amz-content-sha256: UNSIGNED-PAYLOAD`. Nothing else is changed.
 */
import { createHash } from 'node:crypto';
import type { S3Client } from '@aws-sdk/client-s3';

/** The SDK's HTTP request inside a middleware's args, when it is one (it has headers). */
function httpRequestOf(req: unknown): { headers: Record<string, string>; body?: unknown } | undefined {
  return typeof req === 'object' && req !== null && 'headers' in req ? (req as { headers: Record<string, string>; body?: unknown }) : undefined;
}

/**
 * Build-step middleware (aws-sdk-js-v3 supplemental-docs/MD5_FALLBACK.md): for DeleteObjects,
 * and for any request with a buffered body that the SDK gave a flexible checksum, drop the
 * `x-amz-checksum-*` / `x-amz-sdk-checksum-*` headers and send `Content-MD5` instead.
 */
function md5FallbackMiddleware<A extends { request: unknown }, R>(next: (args: A) => Promise<R>, context: { commandName?: string }): (args: A) => Promise<R> {
  return async (args: A): Promise<R> => {
    const req = httpRequestOf(args.request);
    if (!req) return next(args);
    const { headers, body } = req;
    const checksumHeaders = Object.keys(headers).filter((h) => {
      const l = h.toLowerCase();
      return l.startsWith('x-amz-checksum-') || l.startsWith('x-amz-sdk-checksum-');
    });
    const buffered = typeof body === 'string' || body instanceof Uint8Array;
    if (!buffered || (context.commandName !== 'DeleteObjectsCommand' && checksumHeaders.length === 0)) return next(args);
    for (const h of checksumHeaders) delete headers[h];
    for (const h of Object.keys(headers)) if (h.toLowerCase() === 'content-md5') delete headers[h];
    headers['Content-MD5'] = createHash('md5').update(body).digest('base64');
    return next(args);
  };
}

/**
 * Build-step middleware: upload parts go with `x-amz-content-sha256: UNSIGNED-PAYLOAD`, so
 * neither the SDK nor the server hashes each part a second time for the signature (the
 * headers are still signed). Integrity comes from our own sha256 (sidecar, checked on
 * download and restore), as the parts' content was already hashed once in the pipeline.
 */
function unsignedPartsMiddleware<A extends { request: unknown }, R>(next: (args: A) => Promise<R>, context: { commandName?: string }): (args: A) => Promise<R> {
  return async (args: A): Promise<R> => {
    const req = httpRequestOf(args.request);
    if (context.commandName === 'UploadPartCommand' && req) req.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
    return next(args);
  };
}

/** Adds both middlewares to `client`'s stack. */
export function addCompatMiddlewares(client: S3Client): void {
  client.middlewareStack.add(md5FallbackMiddleware, { step: 'build', priority: 'low', name: 'etcdsnapContentMd5Fallback' });
  client.middlewareStack.add(unsignedPartsMiddleware, { step: 'build', priority: 'low', name: 'etcdsnapUnsignedParts' });
}
