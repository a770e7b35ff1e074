/**
 * Progress of long byte copies (S3 downloads, decoding), told by the code that copies to
 * whoever shows it (the CLI's bars and lines, cli/progress.ts). Lower layers only call this
 * interface; they never print.
 *
 * Contract:
 * - `start(label, total)` begins one task; `total` is the expected byte count when known.
 * - `update(bytes)` gives the bytes done so far (monotonic); it is called per chunk, so a
 *   reporter must be cheap and throttle its own output. `done(ok)` ends the task, once
 *   (`ok` false: it failed, the reporter says it stopped rather than done); `update` after
 *   `done` is ignored. A reporter never throws.
 * - `NO_PROGRESS` shows nothing (the default everywhere).
 */
import { Transform, type TransformCallback } from 'node:stream';

export interface ProgressTask {
  update(bytes: number): void;
  done(ok?: boolean): void;
}

export interface ProgressReporter {
  start(label: string, total?: number): ProgressTask;
}

const NO_TASK: ProgressTask = { update: () => undefined, done: () => undefined };

export const NO_PROGRESS: ProgressReporter = { start: () => NO_TASK };

/** A pass-through stream that tells `task` the bytes that went through it (not `done`). */
export function progressTap(task: ProgressTask): Transform {
  let bytes = 0;
  return new Transform({
    // Stryker disable next-line ObjectLiteral: a throughput setting (buffer size), not behaviour
    highWaterMark: 1 << 20,
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
      bytes += chunk.length;
      task.update(bytes);
      cb(null, chunk);
    },
  });
}
