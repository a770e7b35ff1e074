/**
 * Runs async operations one at a time, in the order they were submitted (a mutex without
 * try-locks).
 *
 * Contract:
 * - `run(fn)` starts `fn` only after every operation submitted before it has settled
 *   (resolved or rejected), and answers what `fn` answers (its rejection included). A
 *   failed operation never blocks the next.
 * - `busy` is true from the first `run` until the last submitted operation has settled.
 * - No timeouts and no cancellation here: an operation that never settles blocks the ones
 *   behind it, so operations must be bounded themselves.
 */
export class SerialExecutor {
  private tail: Promise<void> = Promise.resolve();
  private queued = 0;

  get busy(): boolean {
    return this.queued > 0;
  }

  run<T>(fn: () => Promise<T>): Promise<T> {
    this.queued++;
    const result = this.tail.then(fn);
    this.tail = result
      .then(
        () => undefined,
        () => undefined,
      )
      .finally(() => {
        this.queued--;
      });
    return result;
  }
}
