/**
 * Notifications (`--etcd-snapshot-notify-webhook`, docs/notifications.md): the snapshot
 * layer's events (snapshot/events.ts) become JSON messages POSTed to a webhook, Slack's
 * incoming webhooks among them (the `text` field).
 *
 * Contract:
 * - Which event sends which message, and what a message may carry: notify-policy.ts
 *   (`notificationFor`, pure).
 * - The webhook URL may hold a secret (Slack's do): it is registered as one, and logs and
 *   errors name only its origin (scheme://host:port).
 * - Delivery (`WebhookSender`): one message at a time, in order, from a queue of at most
 *   `maxQueue` (a full queue drops its oldest message, with a warning). Each message is
 *   POSTed with a timeout, tried up to `retryDelaysMs.length + 1` times (after a network
 *   error, a timeout, 408, 429 or 5xx; another answer is final); a message not delivered is
 *   logged and dropped. `send` never blocks and never throws: a save never waits for a
 *   notification. TLS is verified (Node's CA store, plus NODE_EXTRA_CA_CERTS).
 * - `drain(timeoutMs)` stops taking messages and gives the queued ones until `timeoutMs`;
 *   then the running request is aborted and what is left is dropped (a warning counts it).
 */
import http from 'node:http';
import https from 'node:https';
import type { Logger } from '../log/logger.js';
import { registerSecret } from '../log/secrets.js';
import { parseWebhookURL } from '../config/checks.js';
import { configError, messageOf } from '../errors.js';
import type { SnapshotObserver } from '../snapshot/events.js';
import { cleanError, INITIAL_NOTIFY_STATE, type Notification, notificationFor, type NotifyState, plural, slackEscape } from './notify-policy.js';

/** A URL's origin (scheme://host[:port]): all of it that logs and errors may show. */
export const originOf = (u: URL): string => `${u.protocol}//${u.host}`;

/** Whether `u`'s host is a loopback address or localhost (plain http to it stays on the machine). */
export function isLoopbackHost(u: URL): boolean {
  const h = u.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h.endsWith('.localhost') || /^127\.\d+\.\d+\.\d+$/.test(h) || h === '::1';
}

/** Waits `ms` unless `signal` aborts first (then resolves early). */
export type Sleep = (ms: number, signal: AbortSignal) => Promise<void>;

const nodeSleep: Sleep = (ms, signal) =>
  new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });

export interface WebhookOptions {
  url: URL;
  logger: Logger;
  /** Timeout of each POST; default 10 s. */
  timeoutMs?: number;
  /** Delay before each retry; its length is the number of retries. Default 1 s, 5 s (3 attempts). */
  retryDelaysMs?: readonly number[];
  /** Most messages waiting; default 100. */
  maxQueue?: number;
  /** Injectable for tests; default setTimeout. */
  sleep?: Sleep;
}

/** One POST's outcome: delivered, or why not and whether another try may help. */
type PostResult = { ok: true } | { ok: false; retry: boolean; reason: string };

/** Posts notifications to the webhook (see the module's contract). */
export class WebhookSender {
  private readonly queue: Notification[] = [];
  private readonly origin: string;
  private readonly abort = new AbortController();
  private readonly timeoutMs: number;
  private readonly delays: readonly number[];
  private readonly maxQueue: number;
  private readonly sleep: Sleep;
  private worker: Promise<void> | undefined;
  private closed = false;
  /** Messages delivered and given up (for tests and logs). */
  delivered = 0;
  dropped = 0;

  constructor(private readonly opts: WebhookOptions) {
    this.origin = originOf(opts.url);
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.delays = opts.retryDelaysMs ?? [1000, 5000];
    this.maxQueue = Math.max(1, opts.maxQueue ?? 100);
    this.sleep = opts.sleep ?? nodeSleep;
  }

  /** Messages waiting (the one being sent not counted). */
  get pending(): number {
    return this.queue.length;
  }

  /** Queues `n`; never blocks or throws. */
  send(n: Notification): void {
    const log = this.opts.logger;
    if (this.closed) {
      this.dropped++;
      log.warn({ event: n.event, webhook: this.origin }, `notification ${n.event} not sent: the server is stopping`);
      return;
    }
    this.queue.push(n);
    while (this.queue.length > this.maxQueue) {
      const old = this.queue.shift();
      this.dropped++;
      log.warn(
        { event: old?.event, webhook: this.origin, maxQueue: this.maxQueue },
        `notification queue full (${this.maxQueue}); dropped the oldest (${old?.event ?? ''})`,
      );
    }
    this.kick();
  }

  /** Starts the worker unless it runs; one that ends with messages left (queued as it ended) starts again. */
  private kick(): void {
    if (this.worker || this.abort.signal.aborted) return;
    this.worker = this.pump().finally(() => {
      this.worker = undefined;
      if (this.queue.length > 0) this.kick();
    });
  }

  private async pump(): Promise<void> {
    for (let n = this.queue.shift(); n !== undefined && !this.abort.signal.aborted; n = this.queue.shift()) {
      // deliver reports its own failures; anything else thrown is a bug, logged, never a rejection
      await this.deliver(n).catch((err: unknown) => this.opts.logger.error({ err: this.clean(messageOf(err)) }, 'notification delivery failed'));
    }
  }

  private async deliver(n: Notification): Promise<void> {
    const log = this.opts.logger.child({ event: n.event, webhook: this.origin });
    const body = JSON.stringify(n);
    const attempts = this.delays.length + 1;
    for (let attempt = 1; ; attempt++) {
      const r = await this.post(body);
      if (r.ok) {
        this.delivered++;
        log.info({ attempt }, `notification ${n.event} sent to ${this.origin}`);
        return;
      }
      const delay = this.delays[attempt - 1];
      if (!r.retry || delay === undefined || this.abort.signal.aborted) {
        this.dropped++;
        log.error(
          { attempt, err: r.reason },
          `notification ${n.event} not delivered to ${this.origin} after ${plural(attempt, 'attempt', 'attempts')}: ${r.reason}`,
        );
        return;
      }
      log.warn(
        { attempt, retryInMs: delay, err: r.reason },
        `notification ${n.event} to ${this.origin} failed (attempt ${attempt} of ${attempts}): ${r.reason}; retrying`,
      );
      await this.sleep(delay, this.abort.signal);
    }
  }

  /** An error text without the URL's path and query (they may hold its secret). */
  private clean(text: string): string {
    const u = this.opts.url;
    let t = text.split(u.href).join(this.origin);
    const tail = u.pathname + u.search;
    if (tail.length > 1) t = t.split(tail).join('/**redacted**');
    return cleanError(t);
  }

  private post(body: string): Promise<PostResult> {
    const u = this.opts.url;
    const mod = u.protocol === 'https:' ? https : http;
    return new Promise((resolve) => {
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
      const done = (r: PostResult): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.abort.signal.removeEventListener('abort', onAbort);
        resolve(r);
      };
      const req = mod.request(u, {
        method: 'POST',
        agent: false,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'user-agent': 'etcdsnap' },
      });
      timer = setTimeout(() => {
        req.destroy();
        done({ ok: false, retry: true, reason: `no answer within ${this.timeoutMs} ms` });
      }, this.timeoutMs);
      const onAbort = (): void => {
        req.destroy();
        done({ ok: false, retry: false, reason: 'the server is stopping' });
      };
      this.abort.signal.addEventListener('abort', onAbort, { once: true });
      req.on('response', (res) => {
        res.resume();
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) done({ ok: true });
        else done({ ok: false, retry: status === 408 || status === 429 || status >= 500, reason: `HTTP ${status}` });
      });
      req.on('error', (err: NodeJS.ErrnoException) => done({ ok: false, retry: true, reason: this.clean(messageOf(err)) }));
      req.end(body);
    });
  }

  /** Stops taking messages; gives queued ones until `timeoutMs`, then drops the rest (see the contract). */
  async drain(timeoutMs: number): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    if (worker) {
      let timer: NodeJS.Timeout | undefined;
      const expired = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
      });
      await Promise.race([worker, expired]);
      clearTimeout(timer);
    }
    this.abort.abort();
    const left = this.queue.length;
    this.queue.length = 0;
    await this.worker;
    if (left > 0) {
      this.dropped += left;
      this.opts.logger.warn(
        { webhook: this.origin, dropped: left },
        `stopping: ${plural(left, 'queued notification', 'queued notifications')} not delivered to ${this.origin}`,
      );
    }
  }
}

/** Turns snapshot events into webhook messages: the policy's state plus a sender. */
export class SnapshotNotifier {
  private state: NotifyState = INITIAL_NOTIFY_STATE;

  constructor(
    private readonly sender: WebhookSender,
    private readonly node: string,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** The `SnapshotObserver`: never throws, never waits. */
  readonly observe: SnapshotObserver = (e) => {
    const r = notificationFor(this.state, e, { node: this.node, time: this.now() });
    this.state = r.state;
    if (r.notification) this.sender.send(r.notification);
  };

  /** Sends an upkeep event (`text`: its log line, which holds no secret); never throws, never waits. */
  notifyUpkeep(event: 'etcd-quota-warning' | 'etcd-nospace' | 'etcd-nospace-cleared', text: string): void {
    this.sender.send({ event, node: this.node, time: this.now().toISOString(), text: slackEscape(`etcdsnap ${this.node}: ${text}`) });
  }

  drain(timeoutMs: number): Promise<void> {
    return this.sender.drain(timeoutMs);
  }
}

/**
 * The notifier of `--etcd-snapshot-notify-webhook` (`text`, checked by its spec; checked
 * again here, a config error naming no part of it). Registers the URL as a secret and warns
 * once when it is plain http to another host.
 */
export function webhookNotifier(text: string, node: string, logger: Logger, opts: Omit<WebhookOptions, 'url' | 'logger'> = {}): SnapshotNotifier {
  let url: URL | undefined;
  try {
    url = parseWebhookURL(text);
  } catch (err) {
    throw configError(`invalid value for --etcd-snapshot-notify-webhook: ${messageOf(err)}`);
  }
  if (!url) throw configError('invalid value for --etcd-snapshot-notify-webhook: empty');
  registerSecret(text);
  registerSecret(url.href);
  const tail = url.pathname + url.search;
  if (tail.length >= 12) registerSecret(tail);
  const origin = originOf(url);
  if (url.protocol === 'http:' && !isLoopbackHost(url)) {
    logger.warn(
      { webhook: origin },
      `the notification webhook ${origin} is plain http: messages (and the URL's secret) cross the network unencrypted; use https`,
    );
  }
  logger.info({ webhook: origin }, `snapshot failures and recoveries are sent to ${origin} (--etcd-snapshot-notify-webhook)`);
  return new SnapshotNotifier(new WebhookSender({ url, logger, ...opts }), node);
}
