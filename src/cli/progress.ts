/**
 * How the CLI shows long byte work (util/progress.ts `ProgressReporter`): a bar with bytes,
 * rate and ETA on a terminal (cli-progress), plain periodic lines otherwise, nothing with
 * `--quiet`.
 *
 * Contract:
 * - `progressMode(quiet, isTTY)`: `none` when quiet, else `bar` on a TTY, else `lines`.
 * - `bar`: one cli-progress bar per task on the stream, redrawn at most every 100 ms,
 *   cleared at `done` and replaced by the line `progressDoneLine` gives (done or stopped).
 * - `lines`: a line when a task starts, then at most one every `intervalMs` (default
 *   5 s) while it runs, and one at `done`; each is `progressLine`/`progressDoneLine`.
 * - Either way a task shows nothing until it has run `showAfterMs` (default 1 s; seen at
 *   its updates): a quick task (a small inspection, a refusal) prints no progress at all, so
 *   a refused command still prints its one error line. The server's log uses 0.
 *   The server (`server --cluster-reset`) passes its logger as the line sink, so a JSON log
 *   stays JSON.
 * - `progressLine` and `progressDoneLine` are pure.
 */
import { SingleBar } from 'cli-progress';
import { NO_PROGRESS, type ProgressReporter, type ProgressTask } from '../util/progress.js';

export type ProgressMode = 'bar' | 'lines' | 'none';

/** Nothing when `quiet`, a bar on a terminal, plain lines otherwise. */
export function progressMode(quiet: boolean, isTTY: boolean | undefined): ProgressMode {
  if (quiet) return 'none';
  return isTTY === true ? 'bar' : 'lines';
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** `n` bytes in binary units with one decimal (`1.5 MiB`; bytes as a whole number). */
export function formatBytes(n: number): string {
  let v = n;
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${Math.round(v)} B` : `${v.toFixed(1)} ${UNITS[u]}`;
}

/** Whole seconds as `45s`, `3m05s`, `1h02m`. */
export function formatSeconds(s: number): string {
  const t = Math.max(0, Math.round(s));
  if (t < 60) return `${t}s`;
  if (t < 3600) return `${Math.floor(t / 60)}m${String(t % 60).padStart(2, '0')}s`;
  return `${Math.floor(t / 3600)}h${String(Math.floor((t % 3600) / 60)).padStart(2, '0')}m`;
}

/**
 * One line of a running task: `label: 120.0 MiB of 300.0 MiB (40%), 55.2 MiB/s, ETA 3s`;
 * without a total (or past it) no percentage nor ETA; no rate when none is known yet.
 */
export function progressLine(label: string, bytes: number, total: number | undefined, bytesPerSecond: number | undefined): string {
  const parts = [
    total !== undefined && total > 0
      ? `${formatBytes(bytes)} of ${formatBytes(total)} (${Math.min(100, Math.floor((bytes / total) * 100))}%)`
      : formatBytes(bytes),
  ];
  if (bytesPerSecond !== undefined && bytesPerSecond > 0) {
    parts.push(`${formatBytes(bytesPerSecond)}/s`);
    if (total !== undefined && total > bytes) parts.push(`ETA ${formatSeconds((total - bytes) / bytesPerSecond)}`);
  }
  return `${label}: ${parts.join(', ')}`;
}

/**
 * The last line of a task: `label: done, 300.0 MiB in 5s, 55.2 MiB/s`; of a failed one
 * (`ok` false) `label: stopped after 120.0 MiB in 2s`.
 */
export function progressDoneLine(label: string, bytes: number, elapsedMs: number, bytesPerSecond: number | undefined, ok = true): string {
  const took = formatSeconds(elapsedMs / 1000);
  if (!ok) return `${label}: stopped after ${formatBytes(bytes)} in ${took}`;
  const rate = bytesPerSecond !== undefined && bytesPerSecond > 0 ? `, ${formatBytes(bytesPerSecond)}/s` : '';
  return `${label}: done, ${formatBytes(bytes)} in ${took}${rate}`;
}

/**
 * The rate of a task, measured from its first update: a task may begin late (a save seen by
 * polling has read bytes before), so the bytes before the first update do not count.
 */
class Meter {
  private b0: number | undefined;
  private t0 = 0;
  bytes = 0;
  constructor(private readonly now: () => number) {}
  seen(b: number): void {
    if (this.b0 === undefined) {
      this.b0 = b;
      this.t0 = this.now();
    }
    this.bytes = b;
  }
  /** Bytes per second since the first update; undefined before time passed. */
  rate(): number | undefined {
    const ms = this.now() - this.t0;
    return this.b0 === undefined || ms <= 0 || this.bytes <= this.b0 ? undefined : (this.bytes - this.b0) / (ms / 1000);
  }
}

export interface ReporterOptions {
  mode: ProgressMode;
  /** Where a bar is drawn (a TTY; stderr by default). */
  stream?: NodeJS.WriteStream;
  /** Where plain lines go (default: the stream, one line each). */
  line?: (text: string) => void;
  /** Least time between plain lines of one task (default 5000 ms). */
  intervalMs?: number;
  /**
   * A task shows nothing until it has run this long (default 1000 ms), so a quick one (a
   * small inspection, a refusal) prints no progress at all; 0 shows every task from its start.
   */
  showAfterMs?: number;
  /** Clock (ms), injectable for tests. */
  now?: () => number;
}

/** How a task is drawn once it shows (a bar or lines). */
interface View {
  show(meter: Meter): void;
  update(meter: Meter): void;
  end(meter: Meter, elapsedMs: number, ok: boolean): void;
}

/** A reporter for `opts.mode` (see the module's contract). */
export function progressReporter(opts: ReporterOptions): ProgressReporter {
  if (opts.mode === 'none') return NO_PROGRESS;
  const stream = opts.stream ?? process.stderr;
  const now = opts.now ?? Date.now;
  const line = opts.line ?? ((t: string): void => void stream.write(`${t}\n`));
  const showAfterMs = opts.showAfterMs ?? 1000;
  const intervalMs = opts.intervalMs ?? 5000;
  return {
    start: (label, total) => task(opts.mode === 'bar' ? barView(label, total, stream) : lineView(label, total, line, intervalMs, now), showAfterMs, now),
  };
}

/** One task: shown once it has run `showAfterMs`, ended once; nothing after its end. */
function task(view: View, showAfterMs: number, now: () => number): ProgressTask {
  const t0 = now();
  const meter = new Meter(now);
  let shown = false;
  let ended = false;
  const showIfDue = (): void => {
    if (!shown && now() - t0 >= showAfterMs) {
      shown = true;
      view.show(meter);
    }
  };
  showIfDue();
  return {
    update(b) {
      if (ended) return;
      meter.seen(b);
      showIfDue();
      if (shown) view.update(meter);
    },
    done(ok = true) {
      if (ended) return;
      ended = true;
      if (shown) view.end(meter, now() - t0, ok);
    },
  };
}

function lineView(label: string, total: number | undefined, line: (t: string) => void, intervalMs: number, now: () => number): View {
  let last = 0;
  return {
    show() {
      last = now();
      line(total !== undefined ? `${label}: started, ${formatBytes(total)}` : `${label}: started`);
    },
    update(meter) {
      const t = now();
      if (t - last < intervalMs) return;
      last = t;
      line(progressLine(label, meter.bytes, total, meter.rate()));
    },
    end(meter, elapsedMs, ok) {
      line(progressDoneLine(label, meter.bytes, elapsedMs, meter.rate(), ok));
    },
  };
}

function barView(label: string, total: number | undefined, stream: NodeJS.WriteStream): View {
  const known = total !== undefined && total > 0;
  const bar = new SingleBar({
    stream,
    format: known ? '{label} [{bar}] {percentage}% | {done} of {size} | {rate} | ETA {eta_formatted}' : '{label} {done} | {rate}',
    barsize: 24,
    hideCursor: true,
    clearOnComplete: true,
    fps: 10,
    etaBuffer: 50,
  });
  const payload = (meter: Meter): Record<string, string> => {
    const rate = meter.rate();
    return { label, done: formatBytes(meter.bytes), size: known ? formatBytes(total) : '', rate: rate !== undefined ? `${formatBytes(rate)}/s` : '-' };
  };
  const value = (meter: Meter): number => (known ? Math.min(meter.bytes, total) : 0);
  return {
    show(meter) {
      bar.start(known ? total : 1, value(meter), payload(meter));
    },
    update(meter) {
      bar.update(value(meter), payload(meter));
    },
    end(meter, elapsedMs, ok) {
      bar.stop();
      stream.write(`${progressDoneLine(label, meter.bytes, elapsedMs, meter.rate(), ok)}\n`);
    },
  };
}
