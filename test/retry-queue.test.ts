/**
 * Unit tests of `RetryQueue` (src/snapshot/retry-queue.ts) and `SerialExecutor`
 * (src/util/serial.ts): pure logic, no processes. Delays are injected (zero, or a fake timer
 * fired by hand), so nothing waits for a real delay and nothing asserts on time.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RetryQueue, UPLOAD_RETRY_DELAYS_MS, type StartTimer } from '../src/snapshot/retry-queue.js';
import { SerialExecutor } from '../src/util/serial.js';

interface FakeTimerEntry {
  fn: () => void;
  ms: number;
  cancelled: boolean;
  fired: boolean;
}

/** A timer that fires only when the test says so (`fire`); `live` are neither fired nor cancelled. */
function fakeTimer(): { start: StartTimer; entries: FakeTimerEntry[]; live: () => FakeTimerEntry[]; fire: (e: FakeTimerEntry | undefined) => void } {
  const entries: FakeTimerEntry[] = [];
  const start: StartTimer = (fn, ms) => {
    const e = { fn, ms, cancelled: false, fired: false };
    entries.push(e);
    return () => {
      e.cancelled = true;
    };
  };
  const fire = (e: FakeTimerEntry | undefined): void => {
    assert.ok(e && !e.cancelled && !e.fired, 'a live timer');
    e.fired = true;
    e.fn();
  };
  return { start, entries, live: () => entries.filter((e) => !e.cancelled && !e.fired), fire };
}

/** Node's timers, not unref'd (the default's are, and a test awaiting only them would end early). */
const refTimer: StartTimer = (fn, ms) => {
  const t = setTimeout(fn, ms);
  return () => clearTimeout(t);
};

/** A promise and its resolve function. */
function gate<T = void>(): { promise: Promise<T>; open: (v: T) => void } {
  let open!: (v: T) => void;
  const promise = new Promise<T>((r) => (open = r));
  return { promise, open };
}

/** Lets pending callbacks (promise reactions, immediates) run. */
const settle = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

test('the default delays are the upload delays; schedule answers the delay of the attempt', () => {
  const fake = fakeTimer();
  const q = new RetryQueue({ timer: fake.start });
  assert.equal(q.maxAttempts, UPLOAD_RETRY_DELAYS_MS.length);
  assert.deepEqual(
    q.schedule(async () => undefined, 0),
    { scheduled: true, delayMs: 5_000 },
  );
  assert.deepEqual(
    q.schedule(async () => undefined, 4),
    { scheduled: true, delayMs: 300_000 },
  );
  assert.deepEqual(
    fake.live().map((e) => e.ms),
    [5_000, 300_000],
  );
  for (const bad of [5, -1, 1.5, Number.NaN])
    assert.deepEqual(
      q.schedule(async () => undefined, bad),
      { scheduled: false, reason: 'exhausted' },
      String(bad),
    );
  assert.equal(q.pendingCount, 2);
});

test('attempts are bounded by the delays: a job that always fails runs delays.length times', async () => {
  const q = new RetryQueue({ delays: [0, 0, 0], timer: refTimer });
  const runs: number[] = [];
  const exhausted = gate<number>();
  const job = (attempt: number) => async (): Promise<void> => {
    runs.push(attempt);
    const next = q.schedule(job(attempt + 1), attempt + 1);
    if (!next.scheduled) exhausted.open(attempt + 1);
    throw new Error('upload failed'); // swallowed by the queue
  };
  assert.equal(q.schedule(job(0), 0).scheduled, true);
  assert.equal(await exhausted.promise, 3);
  assert.deepEqual(runs, [0, 1, 2]);
  await q.drain(1_000);
  assert.equal(q.runningCount, 0);
});

test('jobs run in the order they are due; equal delays in the order scheduled', async () => {
  const fake = fakeTimer();
  const q = new RetryQueue({ delays: [10, 20], timer: fake.start });
  const order: string[] = [];
  q.schedule(async () => void order.push('late'), 1);
  q.schedule(async () => void order.push('a'), 0);
  q.schedule(async () => void order.push('b'), 0);
  // fire like a clock would: by due time, then by insertion
  const due = fake
    .live()
    .map((e, i) => ({ e, i }))
    .sort((x, y) => x.e.ms - y.e.ms || x.i - y.i);
  for (const { e } of due) fake.fire(e);
  await settle();
  assert.deepEqual(order, ['a', 'b', 'late']);

  // the same with Node's timers and zero delays
  const real = new RetryQueue({ delays: [0], timer: refTimer });
  const seen: number[] = [];
  const all = gate();
  for (let i = 0; i < 5; i++) {
    real.schedule(async () => {
      seen.push(i);
      if (seen.length === 5) all.open();
    }, 0);
  }
  await all.promise;
  assert.deepEqual(seen, [0, 1, 2, 3, 4]);
});

test('a job that throws synchronously or rejects does not stop the others', async () => {
  const q = new RetryQueue({ delays: [0], timer: refTimer });
  const done = gate();
  q.schedule(() => {
    throw new Error('sync');
  }, 0);
  q.schedule(() => Promise.reject(new Error('async')), 0);
  q.schedule(async () => done.open(), 0);
  await done.promise;
  await q.drain(1_000);
});

test('drain cancels pending jobs; none runs afterwards, and schedule answers "closed"', async () => {
  const fake = fakeTimer();
  const q = new RetryQueue({ delays: [5_000, 15_000], timer: fake.start });
  let ran = 0;
  q.schedule(async () => void ran++, 0);
  q.schedule(async () => void ran++, 1);
  assert.equal(q.pendingCount, 2);
  await q.drain(1_000);
  assert.equal(q.pendingCount, 0);
  assert.equal(fake.live().length, 0, 'every timer cancelled (no drain timer either: nothing ran)');
  // even a timer that fires anyway (a race with clearTimeout) starts nothing
  for (const e of fake.entries) e.fn();
  await settle();
  assert.equal(ran, 0);
  assert.deepEqual(
    q.schedule(async () => void ran++, 0),
    { scheduled: false, reason: 'closed' },
  );
  assert.equal(fake.live().length, 0);
});

test('drain waits for a running job to finish; its signal is not aborted before the timeout', async () => {
  const fake = fakeTimer();
  const q = new RetryQueue({ delays: [0], timer: fake.start });
  const started = gate<AbortSignal>();
  const release = gate();
  const events: string[] = [];
  q.schedule(async (signal) => {
    started.open(signal);
    await release.promise;
    events.push('job finished');
  }, 0);
  fake.fire(fake.entries[0]);
  const signal = await started.promise;
  assert.equal(q.runningCount, 1);
  const drained = q.drain(60_000).then(() => events.push('drained'));
  await settle();
  assert.deepEqual(events, [], 'drain still waiting');
  assert.equal(signal.aborted, false);
  release.open();
  await drained;
  assert.deepEqual(events, ['job finished', 'drained']);
  assert.equal(signal.aborted, false);
  assert.equal(fake.live().length, 0, 'the abort timer is cancelled');
  assert.equal(q.runningCount, 0);
});

test('drain aborts a running job at the timeout and resolves once it has stopped; it cannot reschedule', async () => {
  const fake = fakeTimer();
  const q = new RetryQueue({ delays: [0, 0], timer: fake.start });
  const started = gate();
  const events: string[] = [];
  let rescheduled: ReturnType<RetryQueue['schedule']> | undefined;
  q.schedule(async (signal) => {
    started.open();
    await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    events.push(`job aborted: ${(signal.reason as Error).message}`);
    rescheduled = q.schedule(async () => void events.push('must not run'), 1);
  }, 0);
  fake.fire(fake.entries[0]);
  await started.promise;
  const drained = q.drain(2_000).then(() => events.push('drained'));
  await settle();
  assert.deepEqual(events, []);
  const abortTimer = fake.live();
  assert.deepEqual(
    abortTimer.map((e) => e.ms),
    [2_000],
    'one timer: the drain timeout',
  );
  fake.fire(abortTimer[0]); // the timeout passes
  await drained;
  assert.deepEqual(events, ['job aborted: shutting down', 'drained']);
  assert.deepEqual(rescheduled, { scheduled: false, reason: 'closed' });
  for (const e of fake.entries) e.fn();
  await settle();
  assert.deepEqual(events, ['job aborted: shutting down', 'drained']);
});

test('SerialExecutor: one operation at a time, in order; a failure does not block the next', async () => {
  const serial = new SerialExecutor();
  assert.equal(serial.busy, false);
  const events: string[] = [];
  const first = gate();
  const a = serial.run(async () => {
    events.push('a start');
    await first.promise;
    events.push('a end');
    throw new Error('a failed');
  });
  const b = serial.run(async () => {
    events.push('b');
    return 2;
  });
  assert.equal(serial.busy, true);
  await settle();
  assert.deepEqual(events, ['a start'], 'b waits for a');
  first.open();
  await assert.rejects(a, /a failed/);
  assert.equal(await b, 2);
  assert.deepEqual(events, ['a start', 'a end', 'b']);
  await settle();
  assert.equal(serial.busy, false);
});
