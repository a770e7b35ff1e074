/**
 * Cuts a byte stream into multipart-upload parts held in a few reused buffers.
 *
 * Why not lib-storage's `Upload`: it gathers each part from the stream's chunks and joins
 * them with `Buffer.concat`, so every byte is held twice and every part is a new 16 MiB
 * allocation. The chunks it holds live long enough to reach V8's old generation, and the
 * external memory they account for forced a full mark-compact about every 100 ms during a
 * 1 GiB save (`--trace-incremental-marking`: "external memory pressure"), which cost the
 * server more CPU than the sha256 of the snapshot. Here each chunk is copied once into a
 * part buffer and released at once (it dies young), and the part buffers are allocated once
 * per upload and reused, so a save allocates `buffers × partSize` and nothing per part.
 *
 * No SDK here: the requests are the sink's business (`S3Store.upload`).
 */
import type { Readable } from 'node:stream';

/**
 * Part buffers kept between uploads. Freeing a 16 MiB block raises glibc's mmap threshold
 * above that size, so the next upload's buffers would come from the main heap, which does
 * not shrink after they are freed: RSS grew by about 50 MiB after the first saves. Keeping
 * the buffers costs the same memory once and saves the page faults of each upload.
 */
const spare: Buffer[] = [];
const SPARE_MAX = 4;

function takeSpare(size: number): Buffer {
  const i = spare.findIndex((b) => b.length === size);
  if (i >= 0) return spare.splice(i, 1)[0] ?? Buffer.allocUnsafeSlow(size);
  return Buffer.allocUnsafeSlow(size);
}

function keepSpare(bufs: Buffer[]): void {
  for (const b of bufs) {
    if (spare.length >= SPARE_MAX) spare.shift();
    spare.push(b);
  }
}

/** Where the parts go. */
export interface PartSink {
  /**
   * Sends part `n` (1-based, in order of the stream; parts may be in flight together).
   * `bytes` is a view of a reused buffer: it must not be kept after the promise settled.
   */
  part(n: number, bytes: Buffer): Promise<void>;
  /** The stream ended within the first part: send it as one object instead. */
  single(bytes: Buffer): Promise<void>;
  /** Every one of the `parts` parts was sent: commit them. */
  complete(parts: number): Promise<void>;
}

export interface PartOptions {
  /** Bytes per part (the last one may be shorter). */
  partSize: number;
  /** Part buffers, which is also the most parts in flight at once (at least 2). */
  buffers: number;
  /** Aborting stops reading and sending; the promise rejects with the signal's reason. */
  signal: AbortSignal;
  /** The most parts an upload may have (S3 allows 10000). */
  maxParts?: number;
}

/** S3's limit on the number of parts of one multipart upload. */
export const MAX_PARTS = 10_000;

/**
 * Reads `body` (non-object mode) to its end and sends it through `sink`: one `single()` if it
 * fits in one part, else `part()` for each part, at most `buffers` at a time, then
 * `complete()`. Reading pauses while every buffer is in flight, so a slow sink slows the
 * stream instead of filling memory.
 *
 * Resolves once the sink committed. Rejects with the first failure (a sink call's error,
 * too many parts, or the signal's reason) after the parts in flight settled, and without
 * calling `single()`/`complete()`; the caller cleans up (e.g. aborts the multipart upload).
 * `body` is neither destroyed nor resumed on failure: only this function's listeners are
 * removed and the stream is left paused.
 */
export function sendInParts(body: Readable, sink: PartSink, opts: PartOptions): Promise<void> {
  const { partSize, signal } = opts;
  const maxBuffers = Math.max(2, opts.buffers);
  const maxParts = opts.maxParts ?? MAX_PARTS;
  return new Promise<void>((resolve, reject) => {
    const free: Buffer[] = [];
    /** Every buffer this upload took, handed back to the spares once nothing uses them. */
    const all: Buffer[] = [];
    const acquire = (): Buffer | undefined => {
      const b = free.pop();
      if (b) return b;
      if (all.length >= maxBuffers) return undefined;
      const fresh = takeSpare(partSize);
      all.push(fresh);
      return fresh;
    };

    let cur: Buffer | undefined = acquire();
    let off = 0;
    let parts = 0;
    let inFlight = 0;
    /** The rest of a chunk that found no free buffer; reading is paused while it waits. */
    let stash: Buffer | undefined;
    let ended = false;
    let lastSent = false;
    let failure: { err: unknown } | undefined;
    let settled = false;

    const cleanup = (): void => {
      body.off('data', onData);
      body.off('end', onEnd);
      signal.removeEventListener('abort', onAbort);
    };
    const done = (ok: boolean, err?: unknown): void => {
      keepSpare(all);
      if (ok) resolve();
      else reject(err);
    };
    const settle = (): void => {
      if (settled || inFlight > 0 || !failure) return;
      settled = true;
      done(false, failure.err);
    };
    const fail = (err: unknown): void => {
      if (failure) return;
      failure = { err };
      cleanup();
      body.pause();
      settle();
    };
    const onAbort = (): void => fail(signal.reason);

    const dispatch = (buf: Buffer, len: number): void => {
      const n = ++parts;
      if (n > maxParts) {
        fail(new Error(`the snapshot needs more than ${maxParts} parts of ${partSize} bytes`));
        return;
      }
      inFlight++;
      sink.part(n, buf.subarray(0, len)).then(
        () => {
          inFlight--;
          free.push(buf);
          if (failure) return settle();
          if (!cur) {
            cur = acquire();
            off = 0;
            const rest = stash;
            stash = undefined;
            if (rest) fill(rest);
            if (!cur || failure) return;
            if (!ended) body.resume();
          }
          finish();
        },
        (err: unknown) => {
          inFlight--;
          fail(err);
          settle();
        },
      );
    };

    /** Copies `chunk` into part buffers, sending each one that fills up. */
    const fill = (chunk: Buffer): void => {
      let pos = 0;
      while (pos < chunk.length) {
        if (!cur) {
          stash = chunk.subarray(pos);
          body.pause();
          return;
        }
        const n = chunk.copy(cur, off, pos);
        off += n;
        pos += n;
        if (off === partSize) {
          const full = cur;
          cur = undefined;
          dispatch(full, partSize);
          if (failure) return;
          cur = acquire();
          off = 0;
        }
      }
    };

    /** After the end: send the last part, then commit once nothing is in flight. */
    const finish = (): void => {
      if (!ended || stash || failure || settled) return;
      if (parts === 0) {
        settled = true;
        cleanup();
        const bytes = (cur ?? Buffer.alloc(0)).subarray(0, off);
        sink.single(bytes).then(
          () => done(true),
          (err: unknown) => done(false, err),
        );
        return;
      }
      if (!lastSent) {
        lastSent = true;
        if (off > 0 && cur) {
          const last = cur;
          cur = undefined;
          dispatch(last, off);
          if (failure) return;
        }
      }
      if (inFlight > 0) return;
      settled = true;
      cleanup();
      sink.complete(parts).then(
        () => done(true),
        (err: unknown) => done(false, err),
      );
    };

    function onData(chunk: Buffer): void {
      if (!failure) fill(chunk);
    }
    function onEnd(): void {
      ended = true;
      finish();
    }

    if (signal.aborted) {
      fail(signal.reason);
      return;
    }
    signal.addEventListener('abort', onAbort, { once: true });
    body.on('data', onData);
    body.on('end', onEnd);
    body.resume();
  });
}
