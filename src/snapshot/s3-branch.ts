/**
 * Sends the bytes of a save to S3 in the same pass as the local write.
 *
 * `S3Branch` is a pass-through Transform placed after the trailer check: every chunk goes
 * on to the local file and is also written to the upload's body (waiting for it, so a slow
 * S3 slows the stream instead of filling memory). The body ends only when this Transform
 * flushes, which happens only after the verifier upstream accepted the trailer; if the
 * pipeline fails, the body is destroyed with the error and the multipart upload is
 * aborted, so a cut-off or corrupt snapshot never becomes an object.
 *
 * An upload failure never fails the local save: the branch detaches, the error is kept in
 * `failure`, and the caller records it and retries later from the local file.
 */
import { PassThrough, Transform, type TransformCallback } from 'node:stream';

export class S3Branch extends Transform {
  /** The upload's body; hand it to the uploader. */
  readonly body = new PassThrough({ highWaterMark: 1 << 20 });
  /** Why the upload failed, once it did. */
  failure: Error | undefined;
  private upload: Promise<void> | undefined;

  constructor() {
    super({ highWaterMark: 1 << 20 });
    // the uploader may have stopped listening by the time the body is destroyed: the
    // failure is reported through `failure`, never as an unhandled 'error' event
    this.body.on('error', () => undefined);
  }

  /** Attaches the upload promise (which consumes `body`). */
  attach(upload: Promise<void>): void {
    this.upload = upload.catch((err: unknown) => {
      this.detach(err instanceof Error ? err : new Error(String(err)));
    });
  }

  /** Resolves when the upload finished or failed (never rejects). */
  async settled(): Promise<void> {
    await this.upload;
  }

  private detach(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    this.body.destroy(err);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.failure || this.body.destroyed) return cb(null, chunk);
    if (this.body.write(chunk)) return cb(null, chunk);
    const onDrain = (): void => {
      this.body.off('close', onDrain);
      this.body.off('drain', onDrain);
      cb(null, chunk);
    };
    this.body.once('drain', onDrain);
    this.body.once('close', onDrain);
  }

  override _flush(cb: TransformCallback): void {
    // reached only after the whole stream passed the trailer check
    if (!this.failure && !this.body.destroyed) this.body.end();
    cb();
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    if (err && !this.body.writableFinished) {
      this.failure ??= err;
      this.body.destroy(err);
    }
    cb(err);
  }
}
