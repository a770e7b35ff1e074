/**
 * Snapshot schedules as robfig/cron (k3s) accepts them: 5-field cron, the descriptors
 * @yearly @annually @monthly @weekly @daily @midnight @hourly, `@every <duration>`, and an
 * optional `CRON_TZ=<zone> ` (or `TZ=<zone> `) prefix. Cron fields use croner in strict
 * 5-part mode; times are system local time unless a zone is given.
 *
 * `@every <d>` ticks start from the process's start (as robfig/cron), or, with
 * `epochAligned` (the agent, whose agents of one group must agree on each tick's time),
 * fall on the multiples of `d` since the Unix epoch.
 *
 * `Scheduler` fires a job at each tick (told the tick's scheduled time) after a random
 * delay (0-5 s, at most half the interval), skips a tick while the previous run is still
 * going, and never replays ticks missed while the process was down.
 */
import { Cron } from 'croner';
import { configError, messageOf } from '../errors.js';
import { parseDuration } from '../config/values.js';

export interface Schedule {
  readonly spec: string;
  /** The first tick strictly after `from`, or null when there is none. */
  next(from: Date): Date | null;
}

export function parseSchedule(spec: string, opts: { epochAligned?: boolean; flag?: string; what?: string } = {}): Schedule {
  const original = spec;
  let rest = spec.trim();
  let timezone: string | undefined;
  const tz = /^(?:CRON_TZ|TZ)=(\S+)\s+(.*)$/.exec(rest);
  if (tz) {
    timezone = tz[1];
    rest = (tz[2] ?? '').trim();
  }
  const fail = (why: string): never => {
    throw configError(`invalid ${opts.what ?? 'snapshot'} schedule "${original}" (${opts.flag ?? '--etcd-snapshot-schedule-cron'}): ${why}`);
  };
  if (timezone !== undefined) {
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: timezone });
    } catch {
      fail(`unknown time zone ${timezone}`);
    }
  }
  const every = /^@every\s+(\S+)$/.exec(rest);
  if (every) {
    let ms = 0;
    try {
      ms = parseDuration(every[1] ?? '');
    } catch (err) {
      fail(messageOf(err));
    }
    if (ms < 1000) fail('@every needs a duration of at least 1s');
    if (opts.epochAligned) return { spec: original, next: (from) => new Date((Math.floor(from.getTime() / ms) + 1) * ms) };
    return { spec: original, next: (from) => new Date(Math.floor(from.getTime() / 1000) * 1000 + ms) };
  }
  if (rest.startsWith('@')) {
    const known = ['@yearly', '@annually', '@monthly', '@weekly', '@daily', '@midnight', '@hourly'];
    if (!known.includes(rest)) fail(`unknown descriptor ${rest} (use one of ${known.join(' ')} or @every <duration>)`);
  }
  if (!rest.startsWith('@')) {
    // robfig/cron's standard parser (k3s): exactly 5 fields; croner's own message would
    // offer six or seven, which are refused here
    const fields = rest.split(/\s+/).filter((f) => f !== '').length;
    if (fields !== 5) {
      fail(`expected exactly 5 fields (minute hour day-of-month month day-of-week), found ${fields}; or use @hourly, @daily... or @every <duration>`);
    }
  }
  let cron: Cron | undefined;
  try {
    cron = new Cron(rest, { mode: '5-part', paused: true, ...(timezone ? { timezone } : {}) });
  } catch (err) {
    fail(messageOf(err).replace(/^CronPattern: /, ''));
  }
  const c = cron as Cron;
  if (c.nextRun(new Date()) === null) fail('it never fires');
  return { spec: original, next: (from) => c.nextRun(from) };
}

export interface SchedulerOptions {
  schedule: Schedule;
  /** The job, told the tick's scheduled time; a tick that comes while it still runs is skipped. */
  job: (tick: Date) => Promise<void>;
  onSkip?: (tick: Date) => void;
  onError?: (err: unknown) => void;
  /** Upper bound of the random delay before each run (default 5 s). */
  maxJitterMs?: number;
  random?: () => number;
}

const MAX_TIMER_MS = 2 ** 31 - 1;

export class Scheduler {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = true;

  constructor(private readonly opts: SchedulerOptions) {}

  /** The next tick after now. */
  nextRun(from = new Date()): Date | null {
    return this.opts.schedule.next(from);
  }

  /** True while a job started by this scheduler runs (jitter included). */
  get busy(): boolean {
    return this.running !== undefined;
  }

  start(): void {
    this.stopped = false;
    this.arm(new Date());
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Resolves when the current run (if any) is over. */
  async idle(): Promise<void> {
    await this.running;
  }

  private arm(from: Date): void {
    if (this.stopped) return;
    const tick = this.opts.schedule.next(from);
    if (!tick) return;
    const wait = Math.min(MAX_TIMER_MS, Math.max(0, tick.getTime() - Date.now()));
    this.timer = setTimeout(() => {
      if (Date.now() < tick.getTime() - 5) return this.arm(from); // woke early (timer cap): wait again
      this.fire(tick);
      this.arm(tick);
    }, wait);
    this.timer.unref?.();
  }

  private fire(tick: Date): void {
    if (this.running) {
      this.opts.onSkip?.(tick);
      return;
    }
    const after = this.opts.schedule.next(tick);
    const interval = after ? after.getTime() - tick.getTime() : 10_000;
    const jitter = Math.floor((this.opts.random ?? Math.random)() * Math.min(this.opts.maxJitterMs ?? 5000, interval / 2));
    this.running = (async () => {
      await new Promise((r) => setTimeout(r, jitter));
      if (this.stopped) return;
      await this.opts.job(tick);
    })()
      .catch((err: unknown) => this.opts.onError?.(err))
      .finally(() => {
        this.running = undefined;
      });
  }
}
