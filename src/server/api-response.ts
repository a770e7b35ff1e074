/**
 * The answers of the supervisor API (api.ts) and how they are written: JSON or text
 * (`ApiResponse`), NDJSON streams (`StreamResponse`) and file downloads (`DownloadResponse`).
 *
 * Contract:
 * - Every answer carries `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY`,
 *   `Cache-Control: no-store`, `Referrer-Policy: no-referrer` and a Content-Security-Policy
 *   that allows only the API's own origin (`default-src 'self'`, no inline script or style,
 *   no framing, no form posts elsewhere): the dashboard's pages (docs/dashboard.md) run under
 *   it, and a JSON answer opened as a page can run nothing.
 * - Every answer also carries `Etcdsnap-Api-Version` (model/format-version.ts API_VERSION):
 *   a client refuses a server whose API is newer than its own.
 * - A stream or download is written with the client's backpressure and stopped when the
 *   client goes away; nothing holds a whole file in memory.
 */
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { API_VERSION, API_VERSION_HEADER } from '../model/format-version.js';

export interface ApiResponse {
  status: number;
  /** Objects are sent as JSON; strings as text/plain unless `contentType` says otherwise. */
  body: unknown;
  /** The content type of a string body, instead of `text/plain; charset=utf-8` (e.g. Prometheus's text format, HTML). */
  contentType?: string;
  /** Extra headers (e.g. Set-Cookie); the security headers above always win. */
  headers?: OutgoingHttpHeaders;
}

/**
 * A streamed answer: `application/x-ndjson`, one JSON value a line, sent as `ndjson` yields
 * them (waiting on the client's backpressure; stopped when the client goes away). The first
 * value is read before the status line is sent, so an error up to it is an ordinary error
 * answer (`statusOf`); an error after it ends the stream with a last line
 * `{"error": "<message>"}`, and a complete stream never has one.
 */
export interface StreamResponse {
  status: number;
  ndjson: AsyncIterable<unknown>;
}

/**
 * A file sent as an attachment (`application/octet-stream`, `Content-Disposition: attachment`
 * with `fileName`), piped from `stream`, opened by the handler (so that a missing file is an
 * ordinary error answer). A read error after the first byte cuts the connection: the client
 * sees a short download, never a complete-looking one.
 */
export interface DownloadResponse {
  status: number;
  download: { fileName: string; size?: number; stream: Readable };
}

export type AnyResponse = ApiResponse | StreamResponse | DownloadResponse;

export const SECURITY_HEADERS: Readonly<OutgoingHttpHeaders> = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'cache-control': 'no-store',
  'referrer-policy': 'no-referrer',
  'content-security-policy': "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'",
};

/** What every answer carries: the security headers and the API version. */
export const ANSWER_HEADERS: Readonly<OutgoingHttpHeaders> = { ...SECURITY_HEADERS, [API_VERSION_HEADER]: String(API_VERSION) };

export function send(res: ServerResponse, status: number, body: unknown, headers: OutgoingHttpHeaders = {}): void {
  if (res.headersSent || res.destroyed) return;
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, {
    'content-type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json',
    ...headers,
    ...ANSWER_HEADERS,
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

/**
 * Answers with an error and closes the connection after the answer, without reading the
 * request's body (Node ends the socket once the response is written, as it says `close`).
 */
export function refuse(res: ServerResponse, status: number, message: string, headers: OutgoingHttpHeaders = {}): void {
  if (res.headersSent || res.destroyed) return;
  const socket = res.socket; // Node detaches it from the response when the response finishes
  res.once('finish', () => socket?.destroySoon());
  send(res, status, { error: message }, { ...headers, connection: 'close' });
}

/** Resolves when `res` can take more data or is gone. */
export function drainOrClose(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.once('drain', done);
    res.once('close', done);
  });
}

/** A `filename` parameter that any client reads: ASCII as is, with the exact name as `filename*`. */
function disposition(fileName: string): string {
  const ascii = fileName.replace(/[^\x20-\x7e]|["\\]/g, '_');
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(fileName)}`;
}

/** Sends a `DownloadResponse` (see its contract); resolves when done or cut. */
export async function sendDownload(res: ServerResponse, out: DownloadResponse, signal: AbortSignal): Promise<void> {
  const { stream, fileName, size } = out.download;
  if (res.headersSent || res.destroyed) {
    stream.destroy();
    return;
  }
  res.writeHead(out.status, {
    'content-type': 'application/octet-stream',
    'content-disposition': disposition(fileName),
    ...(size !== undefined ? { 'content-length': size } : {}),
    ...ANSWER_HEADERS,
  });
  try {
    for await (const chunk of stream) {
      if (signal.aborted) break;
      if (!res.write(chunk as Buffer)) await drainOrClose(res);
    }
    if (signal.aborted) res.destroy();
    else res.end();
  } catch {
    res.destroy(); // a short download, never a complete-looking one
  } finally {
    stream.destroy();
  }
}
