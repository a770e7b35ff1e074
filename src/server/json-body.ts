/**
 * Reads an authenticated request's JSON body for the supervisor API.
 *
 * Contract: a body is a JSON object of at most MAX_BODY_BYTES; an empty body is `{}`.
 * Otherwise `readJsonBody` throws a BodyError carrying the HTTP status (400 for bad JSON or a
 * non-object, 413 for a body too large). Past DRAIN_LIMIT_BYTES the connection is cut
 * instead of drained. A client that stops sending is cut by the server's requestTimeout.
 */
import type { IncomingMessage } from 'node:http';

export const MAX_BODY_BYTES = 64 * 1024;

export class BodyError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

/** Past this the connection is cut instead of drained (a 413 needs the body read). */
const DRAIN_LIMIT_BYTES = 16 * 1024 * 1024;

/** Reads the request's body as a JSON object; {} when empty. Throws BodyError (400/413). */
export async function readJsonBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const b = chunk as Buffer;
    size += b.length;
    if (size > DRAIN_LIMIT_BYTES) {
      req.destroy();
      break;
    }
    if (size <= MAX_BODY_BYTES) chunks.push(b); // past the limit: read and drop, then answer 413
  }
  if (size > MAX_BODY_BYTES) throw new BodyError(`request body larger than ${MAX_BODY_BYTES} bytes`, 413);
  if (size === 0) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new BodyError('request body is not valid JSON', 400);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new BodyError('request body must be a JSON object', 400);
  }
  return parsed as Record<string, unknown>;
}
