/**
 * Sends the bytes of a save to a replica store (S3) in the same pass as the local write.
 *
 * `ReplicaBranch` is a pass-through Transform placed after the trailer check: every chunk goes
 * on to the local file and is also written to the replica sink's stream (waiting for it, so a
 * slow replica slows the stream instead of filling memory). The sink's stream ends only when
 * this Transform flushes, which happens only after the verifier upstream accepted the
 * trailer; if the pipeline fails, the sink's stream is destroyed with the error and the
 * caller aborts the sink, so a cut-off or corrupt snapshot never becomes an object.
 *
 * A replica failure never fails the local save: the branch detaches, the error is kept in
 * `failure`, and the caller records it and retries later from the local file.
 */
import { Transform, type TransformCallback, type Writable } from 'node:stream';

export class ReplicaBranch extends Transform {
  /** Why the copy failed, once it did. */
  failure: Error | undefined;
  private readonly finished: Promise<void>;

  constructor(private readonly target: Writable) {
    super({ highWaterMark: 1 << 20 });
    this.finished = new Promise<void>((resolve) => {
      target.once('finish', () => resolve());
      // the sink may fail at any time: reported through `failure`, never as an unhandled 'error'
      target.on('error', (err: Error) => {
        this.detach(err);
        resolve();
      });
      target.once('close', () => {
        if (!target.writableFinished) this.detach(target.errored ?? new Error('the copy closed before its end'));
        resolve();
      });
    });
  }

  /** Resolves once the sink's stream finished (every byte handed over) or failed; never rejects. */
  async settled(): Promise<void> {
    await this.finished;
  }

  private detach(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    if (!this.target.destroyed) this.target.destroy(err);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const t = this.target;
    if (this.failure || t.destroyed || t.write(chunk)) {
      cb(null, chunk);
      return;
    }
    const onDrain = (): void => {
      t.off('close', onDrain);
      t.off('drain', onDrain);
      cb(null, chunk);
    };
    t.once('drain', onDrain);
    t.once('close', onDrain);
  }

  override _flush(cb: TransformCallback): void {
    // reached only after the whole stream passed the trailer check
    if (!this.failure && !this.target.destroyed) this.target.end();
    cb();
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    if (err && !this.target.writableFinished) this.detach(err);
    cb(err);
  }
}
