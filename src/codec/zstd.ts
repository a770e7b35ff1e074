/**
 * zstd streams through the system's `zstd` binary (Debian package `zstd`): it is multi-threaded
 * (`-T0`), runs in its own process (off our event loop and our 2 cores' main thread), and no
 * native npm module has to build offline. The binary is the documented pick over zstd-napi or
 * @mongodb-js/zstd for that reason.
 *
 * Each stream is one child: `zstd -q -c -T0 -<level>` (compress) or `zstd -q -d -c`
 * (decompress), started with a minimal environment (`childEnv`: never ours, it holds
 * secrets). The duplex's writable side is the child's stdin, its readable side the child's
 * stdout; both honour backpressure. The readable side ends only once stdout has ended AND
 * the child has exited with 0. Otherwise the stream fails with an EtcdsnapError carrying
 * the first line of zstd's stderr (kept up to 4 KiB):
 * - `environment`: the binary is missing ("zstd not found: install it with ...") or cannot run;
 * - `integrity`: decompressing exited non-zero (bad, truncated or non-zstd data);
 * - `environment`: compressing exited non-zero (the machine: memory, ...);
 * - `unavailable` (retryable): the child was killed by a signal we did not send (OOM killer...).
 * Destroying the duplex (an error upstream or downstream) kills the child with SIGKILL and
 * the duplex emits 'close' only after the child has exited, so no child outlives its stream
 * (Node reaps exited children itself: no zombie).
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { Duplex } from 'node:stream';
import { EtcdsnapError, errnoCode, messageOf } from '../errors.js';
import { childEnv } from '../util/child-env.js';
import { ZSTD_LEVEL } from './levels.js';

export interface ZstdOptions {
  /** zstd level 1..19; default `ZSTD_LEVEL`. */
  level?: number;
}

const STDERR_MAX = 4096;
const NOT_FOUND = 'zstd not found: install it with `apt-get install zstd`';

function notFound(cause?: unknown): EtcdsnapError {
  return new EtcdsnapError('environment', NOT_FOUND, { cause });
}

function spawnError(err: unknown): EtcdsnapError {
  return errnoCode(err) === 'ENOENT' ? notFound(err) : new EtcdsnapError('environment', `zstd could not be started: ${messageOf(err)}`, { cause: err });
}

/** One zstd child as a Duplex (see the module comment). */
class ZstdProcess extends Duplex {
  /** The child's pid (undefined when it could not be started). */
  readonly pid: number | undefined;
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly mode: 'compress' | 'decompress';
  private stderr = '';
  private exited = false;
  private stdoutEnded = false;
  private exitStatus: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private stdinError: Error | undefined;

  constructor(mode: 'compress' | 'decompress', args: string[]) {
    super();
    this.mode = mode;
    this.child = spawn('zstd', args, { env: childEnv(process.env, []), stdio: ['pipe', 'pipe', 'pipe'] });
    this.pid = this.child.pid;
    this.child.on('error', (err) => this.destroy(spawnError(err)));
    this.child.stdin.on('error', (err) => {
      // EPIPE when zstd stops reading (it failed): its exit status tells why.
      this.stdinError = err;
    });
    this.child.stderr.on('data', (d: Buffer) => {
      if (this.stderr.length < STDERR_MAX) this.stderr += d.toString('utf8').slice(0, STDERR_MAX - this.stderr.length);
    });
    this.child.stdout.on('data', (d: Buffer) => {
      if (!this.push(d)) this.child.stdout.pause();
    });
    this.child.stdout.on('end', () => {
      this.stdoutEnded = true;
      this.settle();
    });
    this.child.on('close', (code, signal) => {
      this.exited = true;
      this.exitStatus = { code, signal };
      this.settle();
    });
  }

  /** Ends or fails the readable side once the child has exited and stdout has ended. */
  private settle(): void {
    const status = this.exitStatus;
    if (!this.exited || !this.stdoutEnded || status === undefined || this.destroyed) return;
    const why =
      this.stderr
        .trim()
        .split('\n')[0]
        ?.replace(/^zstd: /, '') || 'no message';
    if (status.signal !== null) {
      this.destroy(new EtcdsnapError('unavailable', `zstd was killed by ${status.signal} while it ran (out of memory?); try again`));
    } else if (status.code !== 0) {
      this.destroy(
        this.mode === 'decompress'
          ? new EtcdsnapError('integrity', `zstd data is damaged, truncated or not zstd (${why}); use another copy`)
          : new EtcdsnapError('environment', `zstd failed to compress (exit ${status.code}: ${why}); check memory and the zstd install`),
      );
    } else if (this.stdinError !== undefined) {
      this.destroy(new EtcdsnapError('environment', `zstd stopped reading its input: ${messageOf(this.stdinError)}`));
    } else {
      this.push(null);
    }
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.stdinError !== undefined || this.exited) {
      callback(); // the exit status decides
      return;
    }
    if (this.child.stdin.write(chunk)) callback();
    else {
      const go = (): void => {
        this.child.stdin.off('drain', go);
        this.child.stdin.off('close', go);
        callback();
      };
      this.child.stdin.on('drain', go);
      this.child.stdin.on('close', go);
    }
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (this.child.stdin.writableFinished || this.child.stdin.destroyed) {
      callback();
      return;
    }
    this.child.stdin.end(() => callback());
  }

  override _read(): void {
    this.child.stdout.resume();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    if (this.exited || this.pid === undefined) {
      callback(err);
      return;
    }
    this.child.once('close', () => callback(err));
    this.child.stdin.destroy();
    this.child.stdout.destroy();
    this.child.kill('SIGKILL');
  }
}

function checkLevel(level: number): number {
  if (!Number.isInteger(level) || level < 1 || level > 19) throw new RangeError(`zstd level must be 1..19, got ${level}`);
  return level;
}

/** A zstd compressor (`zstd -q -c -T0 -<level>`); its `pid` is the child's. */
export function createZstdCompressStream(opts: ZstdOptions = {}): Duplex & { readonly pid: number | undefined } {
  return new ZstdProcess('compress', ['-q', '-c', '-T0', `-${checkLevel(opts.level ?? ZSTD_LEVEL)}`]);
}

/** A zstd decompressor (`zstd -q -d -c`); its `pid` is the child's. */
export function createZstdDecompressStream(): Duplex & { readonly pid: number | undefined } {
  return new ZstdProcess('decompress', ['-q', '-d', '-c']);
}

/** Resolves when `zstd --version` runs; else throws the `environment` error "zstd not found: ...". */
export async function checkZstdAvailable(): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = spawn('zstd', ['--version'], { env: childEnv(process.env, []), stdio: 'ignore' });
    child.once('error', (err) => reject(spawnError(err)));
    child.once('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(new EtcdsnapError('environment', `zstd --version failed (${signal ?? `exit ${code}`}): reinstall it with \`apt-get install zstd\``));
    });
  });
}
