/**
 * Progress of `etcd-snapshot save`: the save runs on the server, so while its request is
 * pending the CLI asks `GET /db/snapshot/progress` every `intervalMs` (the first time after
 * at most FIRST_POLL_MS, so that a save of a second is seen) and shows the bytes read from
 * etcd of about the db size (cli/progress.ts).
 *
 * Contract: the answer is `run`'s, unchanged; the progress task starts at the first answer
 * that shows a save, and ends with `run` (done when it resolved, stopped when it threw). A
 * progress request that fails is ignored; a server without the route (404) or an answer of
 * another shape stops the polling. No poll starts after `run` settled, and at most one is in
 * flight.
 */
import { EtcdsnapError } from '../errors.js';
import { decodeSaveProgress } from '../model/api.js';
import type { ProgressReporter, ProgressTask } from '../util/progress.js';

/** What the poller needs of the supervisor client. */
export interface ProgressSource {
  get(pathname: string): Promise<unknown>;
}

/** The first poll's delay: a save of a few hundred MiB takes under a second. */
const FIRST_POLL_MS = 100;

export async function withSaveProgress<T>(source: ProgressSource, reporter: ProgressReporter, run: Promise<T>, intervalMs = 500): Promise<T> {
  let settled = false;
  let task: ProgressTask | undefined;
  let wake: (() => void) | undefined;
  const finished = run.then(
    () => undefined,
    () => undefined,
  );
  const poll = async (): Promise<void> => {
    let delay = Math.min(intervalMs, FIRST_POLL_MS);
    while (!settled) {
      await Promise.race([
        finished,
        new Promise<void>((r) => {
          const t = setTimeout(r, delay);
          wake = () => {
            clearTimeout(t);
            r();
          };
        }),
      ]);
      if (settled) return;
      delay = intervalMs;
      let answer: unknown;
      try {
        answer = await source.get('/db/snapshot/progress');
      } catch (err) {
        if (err instanceof EtcdsnapError && err.kind === 'not-found') return; // an older server
        continue;
      }
      let p: ReturnType<typeof decodeSaveProgress>;
      try {
        p = decodeSaveProgress(answer);
      } catch {
        return;
      }
      if (settled || !p.saving) continue;
      task ??= reporter.start(`saving ${p.name}`, p.totalBytes);
      task.update(p.bytes);
    }
  };
  const polling = poll();
  try {
    const value = await run;
    settled = true;
    task?.done(true);
    return value;
  } catch (err) {
    settled = true;
    task?.done(false);
    throw err;
  } finally {
    wake?.();
    await polling;
  }
}
