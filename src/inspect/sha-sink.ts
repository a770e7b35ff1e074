/**
 * The chunks of the sequential status pass (`status-seq.ts`), in file order, and the sha256
 * trailer check on the same bytes, so the file is read once.
 *
 * - `LocalChunks` reads each chunk on the calling thread (and hashes it when the file has a
 *   trailer): for small files, where a thread costs more than it saves.
 * - `WorkerChunks` has a worker thread read the file ahead into a ring of 32 buffers in shared
 *   memory and hash each chunk right after reading it, while the pass works on earlier chunks:
 *   reading (the largest cost without mmap) and the sha256 run beside the pass. The two sides
 *   wait on each other with Atomics (the pass on a chunk not read yet, the reader on a slot
 *   not released yet), so memory is bounded to the ring.
 */
import { createHash, type Hash } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import type { BoltFile } from './bbolt.js';

export interface ChunkSource {
  /** Bytes `[start, start+len)`, the next chunk in order; valid until `release`. */
  get(start: number, len: number): Buffer;
  /** The pass is done with the chunk last given. */
  release(): void;
  /** The pass needs no more chunks; resolves with whether the sha256 matched the trailer (null: not checked). */
  end(): Promise<boolean | null>;
  stop(): Promise<void>;
}

export class LocalChunks implements ChunkSource {
  private readonly hash: Hash | null;
  private buf: Buffer = Buffer.alloc(0);
  private pos = 0;

  constructor(
    private readonly bolt: BoltFile,
    checkTrailer: boolean,
  ) {
    this.hash = checkTrailer ? createHash('sha256') : null;
  }

  get(start: number, len: number): Buffer {
    if (this.buf.length < len) this.buf = Buffer.allocUnsafe(len);
    this.bolt.readAt(this.buf, len, start);
    this.hash?.update(this.buf.subarray(0, len));
    this.pos = start + len;
    return this.buf;
  }

  release(): void {}

  async end(): Promise<boolean | null> {
    if (this.hash === null) return null;
    // the chunks the pass did not need
    while (this.pos < this.bolt.dataSize) this.get(this.pos, Math.min(1 << 20, this.bolt.dataSize - this.pos));
    const trailer = Buffer.alloc(32);
    this.bolt.readAt(trailer, 32, this.bolt.dataSize);
    return this.hash.digest().equals(trailer);
  }

  async stop(): Promise<void> {}
}

const SLOTS = 32;
/** Shared counters: chunks read by the worker, chunks released by the pass, and "the pass is done". */
const READ = 0;
const RELEASED = 1;
const DONE = 2;

const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { openSync, readSync, closeSync } = require('node:fs');
const { createHash } = require('node:crypto');
const { file, dataSize, size, slots, hash: withHash } = workerData;
const ctl = new Int32Array(workerData.ctl);
const ring = Buffer.from(workerData.ring);
const hash = withHash ? createHash('sha256') : null;
const readFull = (fd, buf, len, pos) => {
  for (let done = 0; done < len; ) {
    const n = readSync(fd, buf, done, len - done, pos + done);
    if (n === 0) throw new Error('the file ends at ' + (pos + done));
    done += n;
  }
};
let fd;
try {
  fd = openSync(file, 'r');
  const scratch = Buffer.allocUnsafe(size);
  for (let k = 0, pos = 0; pos < dataSize; k++, pos += size) {
    const len = Math.min(size, dataSize - pos);
    // once the pass is done, the rest is only hashed
    let buf = scratch;
    for (;;) {
      if (Atomics.load(ctl, ${DONE}) === 1) break;
      const released = Atomics.load(ctl, ${RELEASED});
      if (k - released < slots) { buf = ring.subarray((k % slots) * size, (k % slots) * size + size); break; }
      Atomics.wait(ctl, ${RELEASED}, released, 1000);
    }
    readFull(fd, buf, len, pos);
    if (hash) hash.update(buf.subarray(0, len));
    Atomics.add(ctl, ${READ}, 1);
    Atomics.notify(ctl, ${READ});
    if (!hash && Atomics.load(ctl, ${DONE}) === 1) break;
  }
  let ok = null;
  if (hash) {
    const trailer = Buffer.alloc(32);
    readFull(fd, trailer, 32, dataSize);
    ok = hash.digest().equals(trailer);
  }
  parentPort.postMessage({ ok });
} catch (err) {
  Atomics.store(ctl, ${READ}, -1);
  Atomics.notify(ctl, ${READ});
  parentPort.postMessage({ error: String(err && err.message) });
} finally {
  if (fd !== undefined) closeSync(fd);
}
`;

export class WorkerChunks implements ChunkSource {
  private readonly worker: Worker;
  private readonly ctl = new Int32Array(new SharedArrayBuffer(12));
  private readonly ring: SharedArrayBuffer;
  private readonly result: Promise<boolean | null>;
  private k = 0;
  private readonly file: string;

  constructor(
    bolt: BoltFile,
    private readonly size: number,
    checkTrailer: boolean,
  ) {
    this.file = bolt.file;
    this.ring = new SharedArrayBuffer(size * SLOTS);
    const w = new Worker(WORKER, {
      eval: true,
      workerData: { file: bolt.file, dataSize: bolt.dataSize, size, slots: SLOTS, hash: checkTrailer, ctl: this.ctl.buffer, ring: this.ring },
    });
    this.worker = w;
    this.result = new Promise((resolve, reject) => {
      w.once('message', (m: { ok?: boolean | null; error?: string }) =>
        m.error !== undefined ? reject(new Error(`${bolt.file}: ${m.error}`)) : resolve(m.ok ?? null),
      );
      w.once('error', reject);
      w.once('exit', (code) => reject(new Error(`${bolt.file}: the reading thread stopped (exit code ${code})`)));
    });
    this.result.catch(() => {
      /* awaited by end(); stop() rejects it on purpose */
    });
  }

  get(start: number, len: number): Buffer {
    if (start !== this.k * this.size) throw new Error('WorkerChunks: chunks are taken in order');
    // this thread does not return to its event loop during the pass: a worker that died shows as -1, or as silence
    let waited = 0;
    for (;;) {
      const read = Atomics.load(this.ctl, READ);
      if (read < 0) throw new Error(`${this.file}: the reading thread failed to read the file`);
      if (read > this.k) break;
      if (Atomics.wait(this.ctl, READ, read, 1000) === 'timed-out' && ++waited >= 60) throw new Error('the reading thread stopped answering');
    }
    const slot = this.k % SLOTS;
    this.k++;
    return Buffer.from(this.ring, slot * this.size, len);
  }

  release(): void {
    Atomics.add(this.ctl, RELEASED, 1);
    Atomics.notify(this.ctl, RELEASED);
  }

  async end(): Promise<boolean | null> {
    Atomics.store(this.ctl, DONE, 1);
    Atomics.notify(this.ctl, RELEASED);
    try {
      return await this.result;
    } finally {
      await this.worker.terminate();
    }
  }

  async stop(): Promise<void> {
    Atomics.store(this.ctl, DONE, 1);
    Atomics.notify(this.ctl, RELEASED);
    await this.worker.terminate();
  }
}
