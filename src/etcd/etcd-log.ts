/**
 * Re-logs etcd's output (one `EtcdLogRelay` per etcd process) and remembers why it died.
 *
 * Contract:
 * - A zap JSON line (`--logger=zap`) is logged at its own level with its fields (`ts` and
 *   `caller` dropped; `stacktrace` kept only for panic/fatal lines or when the logger is at
 *   debug). `dpanic`, `panic` and `fatal` lines are logged as errors.
 * - Text lines: Go panic text (`panic: ...`, `fatal error: ...`) and every text line after it
 *   (the goroutine stack) until the next JSON line or the end of the output are logged as ONE
 *   error record: the first line as its message, the rest (bounded) as `stack`. capnslog
 *   lines (`<date> <time> W | pkg: msg`) and Go log lines with a level prefix (`WARNING: ...`)
 *   keep their level, except that grpc's own warnings (`[core] grpc: ...`: the reconnects of
 *   etcd's internal client, e.g. at every stop) are one level down, at info; etcd's usage
 *   text (from a line `Usage:` on, printed after a flag it refused) is one debug record; any
 *   other text is unexpected output and logged as a warning.
 * - The logger given decides what shows: its level is etcd's log level (the level etcd runs
 *   at), so routine lines below it are dropped; errors always show.
 * - `cause` is the last panic/fatal message seen (with zap's `error` field), else the last
 *   error line, else the first unexpected text line (e.g. a flag etcd refused): what the
 *   "etcd exited unexpectedly" line reports. Bounded to one line of at most 300 characters.
 */
import type { Logger } from '../log/logger.js';

/** The levels `--etcd-log-level` accepts (etcd's `--log-level` also has panic and fatal). */
export const ETCD_LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type EtcdLogLevel = (typeof ETCD_LOG_LEVELS)[number];

type Level = EtcdLogLevel;

const ZAP_LEVELS: Readonly<Record<string, Level>> = {
  debug: 'debug',
  info: 'info',
  warn: 'warn',
  error: 'error',
  dpanic: 'error',
  panic: 'error',
  fatal: 'error',
};
const FATAL_ZAP = new Set(['dpanic', 'panic', 'fatal']);

/** capnslog's level letters: Critical, Error, Warning, Notice, Info, Debug, Trace. */
const CAPNSLOG = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ ([CEWNIDT]) \| (.*)$/;
const CAPNSLOG_LEVELS: Readonly<Record<string, Level>> = { C: 'error', E: 'error', W: 'warn', N: 'info', I: 'info', D: 'debug', T: 'debug' };
/** Go's log package with a level prefix (grpclog: `WARNING: 2024/01/02 03:04:05 msg`). */
const GO_LOG = /^(INFO|WARNING|ERROR|FATAL): (?:\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d(?:\.\d+)? )?(.*)$/;
/** grpc-go's own log lines (its logger writes through Go's log package). */
const GRPC = /^(\[core\] )?grpc: /;
const GO_LOG_LEVELS: Readonly<Record<string, Level>> = { INFO: 'info', WARNING: 'warn', ERROR: 'error', FATAL: 'error' };
/** The first line of Go panic text (runtime panics, zap's Panic, runtime fatal errors). */
const GO_PANIC = /^(panic: |fatal error: )/;

const MAX_STACK_LINES = 60;
const MAX_CAUSE = 300;

const oneLine = (s: string): string => {
  const t = s.replace(/\s+/g, ' ').trim();
  return t.length > MAX_CAUSE ? `${t.slice(0, MAX_CAUSE - 3)}...` : t;
};

interface PanicBlock {
  head: string;
  stack: string[];
  dropped: number;
}

export class EtcdLogRelay {
  private panic: PanicBlock | undefined;
  /** Lines of etcd's usage text seen since its `Usage:` line (undefined: not in it). */
  private usageLines: number | undefined;
  private fatalCause: string | undefined;
  private errorCause: string | undefined;
  private textCause: string | undefined;
  /** A zap panic line was just logged: the Go panic text that follows repeats its message. */
  private zapPanicked = false;

  /** @param log etcd's logger; its level is the level etcd runs at. */
  constructor(private readonly log: Logger) {}

  /** Why etcd stopped, as far as its output tells (see the module contract). */
  get cause(): string | undefined {
    return this.fatalCause ?? this.errorCause ?? this.textCause;
  }

  /** One line of etcd's stdout or stderr. */
  line(text: string): void {
    if (text.trim() === '') {
      if (this.panic) this.addToPanic(text);
      return;
    }
    const rec = parseZap(text);
    if (rec) {
      this.flush();
      this.zapLine(rec, text);
      return;
    }
    if (GO_PANIC.test(text)) {
      this.flush();
      this.panic = { head: text.trim(), stack: [], dropped: 0 };
      if (!this.zapPanicked) this.fatalCause = oneLine(text);
      this.zapPanicked = false;
      return;
    }
    if (this.panic) {
      this.addToPanic(text);
      return;
    }
    if (this.usageLines !== undefined || text.trim() === 'Usage:') {
      this.usageLines = (this.usageLines ?? 0) + 1;
      return;
    }
    this.textLine(text);
  }

  /** etcd's output ended: logs a panic block still open. */
  end(): void {
    this.flush();
  }

  private zapLine(rec: Record<string, unknown>, raw: string): void {
    const { level, msg, ts: _ts, caller: _caller, stacktrace, ...fields } = rec;
    const zapLevel = String(level);
    const lvl = ZAP_LEVELS[zapLevel] ?? 'info';
    const message = typeof msg === 'string' ? msg : raw;
    const fatal = FATAL_ZAP.has(zapLevel);
    const withStack = stacktrace !== undefined && (fatal || this.log.isLevelEnabled('debug')) ? { stacktrace } : {};
    this.log[lvl]({ ...fields, ...withStack, ...(fatal ? { etcdLevel: zapLevel } : {}) }, message);
    const detail = typeof fields.error === 'string' ? `${message}: ${fields.error}` : message;
    if (fatal) this.fatalCause = oneLine(detail);
    else if (lvl === 'error') this.errorCause = oneLine(detail);
    this.zapPanicked = zapLevel === 'panic' || zapLevel === 'dpanic';
  }

  private textLine(text: string): void {
    this.zapPanicked = false;
    const capn = CAPNSLOG.exec(text);
    const golog = capn ? null : GO_LOG.exec(text);
    if (capn || golog) {
      const msg = (capn ? capn[2] : golog?.[2]) ?? text;
      let lvl = capn ? (CAPNSLOG_LEVELS[capn[1] ?? ''] ?? 'info') : (GO_LOG_LEVELS[golog?.[1] ?? ''] ?? 'info');
      if (golog && lvl === 'warn' && GRPC.test(msg)) lvl = 'info';
      this.log[lvl](msg);
      if (capn?.[1] === 'C' || golog?.[1] === 'FATAL') this.fatalCause = oneLine(msg);
      else if (lvl === 'error') this.errorCause = oneLine(msg);
      return;
    }
    // not a format etcd logs in: flag errors, usage text, stray prints
    this.log.warn(text);
    this.textCause ??= oneLine(text);
  }

  private addToPanic(text: string): void {
    const p = this.panic;
    if (!p) return;
    if (p.stack.length < MAX_STACK_LINES) p.stack.push(text);
    else p.dropped++;
  }

  private flush(): void {
    if (this.usageLines !== undefined) {
      this.log.debug({ lines: this.usageLines }, 'etcd printed its usage text (it refused a flag or a value; see the line before)');
      this.usageLines = undefined;
    }
    const p = this.panic;
    if (!p) return;
    this.panic = undefined;
    while (p.stack.length > 0 && (p.stack[p.stack.length - 1] ?? '').trim() === '') p.stack.pop();
    while (p.stack.length > 0 && (p.stack[0] ?? '').trim() === '') p.stack.shift();
    const stack = p.dropped > 0 ? [...p.stack, `... ${p.dropped} more lines`] : p.stack;
    this.log.error({ etcdLevel: 'panic', ...(stack.length > 0 ? { stack: stack.join('\n') } : {}) }, p.head);
  }
}

/** A zap JSON record (an object with a string `level`), or undefined for any other line. */
function parseZap(text: string): Record<string, unknown> | undefined {
  if (!text.startsWith('{')) return undefined;
  try {
    const v: unknown = JSON.parse(text);
    if (typeof v === 'object' && v !== null && !Array.isArray(v) && typeof (v as { level?: unknown }).level === 'string') return v as Record<string, unknown>;
  } catch {
    /* not JSON */
  }
  return undefined;
}

/** The level etcd runs at: the last `--log-level=` among its arguments (as etcd reads them), else info. */
export function etcdLogLevelOf(args: readonly string[]): EtcdLogLevel {
  let level: string = 'info';
  for (const a of args) {
    const m = /^--?log-level=(.*)$/.exec(a);
    if (m) level = m[1] ?? level;
  }
  // etcd's panic and fatal levels: only errors of ours show (panic/fatal lines are errors)
  if (level === 'panic' || level === 'fatal' || level === 'dpanic') return 'error';
  return (ETCD_LOG_LEVELS as readonly string[]).includes(level) ? (level as EtcdLogLevel) : 'info';
}
