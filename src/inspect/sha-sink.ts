/**
 * A sha256 of bytes pushed in order, for the sequential status pass (`status-seq.ts`): the
 * pass reads every byte of the database once and hands each chunk here, so the sha256 trailer
 * check costs no second read. For a large file the pass reads into a ring of 32 buffers in
 * shared memory that a worker thread hashes while the pass goes on (no copy, bounded memory:
 * the pass waits with Atomics.wait when the ring is full). A small file is hashed on the
 * calling thread.
 */
import { createHash, type Hash } from 'node:crypto';
import { Worker } from 'node:worker_threads';

export interface ShaSink {
  /** A buffer of `size` bytes to read the next chunk into (the sink's memory; valid until the next `push`). */
  next(size: number): Buffer;
  /** Hashes the first `len` bytes of the buffer last given by `next`. */
  push(len: number): void;
  /** Whether the sha256 of everything pushed equals `trailer`. */
  end(trailer: Buffer): Promise<boolean>;
  stop(): Promise<void>;
}

export class LocalShaSink implements ShaSink {
  private readonly hash: Hash = createHash('sha256');
  private buf: Buffer = Buffer.alloc(0);
  next(size: number): Buffer {
    if (this.buf.length !== size) this.buf = Buffer.allocUnsafe(size);
    return this.buf;
  }
  push(len: number): void {
    this.hash.update(this.buf.subarray(0, len));
  }
  async end(trailer: Buffer): Promise<boolean> {
    return this.hash.digest().equals(trailer);
  }
  async stop(): Promise<void> {}
}

/** Chunks in flight to the worker: the slots of the shared ring. */
const SLOTS = 32;

const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const done = new Int32Array(workerData.counter);
const ring = new Uint8Array(workerData.ring);
const hash = createHash('sha256');
parentPort.on('message', (m) => {
  if (m.trailer === undefined) {
    hash.update(ring.subarray(m.slot * m.size, m.slot * m.size + m.len));
    Atomics.add(done, 0, 1);
    Atomics.notify(done, 0);
  } else {
    parentPort.postMessage({ ok: hash.digest().equals(Buffer.from(m.trailer)) });
  }
});
`;

/**
 * The worker reads the chunks from a ring of SLOTS buffers in shared memory (no copy, no
 * allocation per chunk); `next` waits (Atomics.wait) while every slot is still being hashed.
 */
export class WorkerShaSink implements ShaSink {
  private worker: Worker | null = null;
  private readonly done = new Int32Array(new SharedArrayBuffer(4));
  private ring: SharedArrayBuffer | null = null;
  private size = 0;
  private sent = 0;
  private result: Promise<boolean> | null = null;

  private start(size: number): Worker {
    this.size = size;
    this.ring = new SharedArrayBuffer(size * SLOTS);
    const w = new Worker(WORKER, { eval: true, workerData: { counter: this.done.buffer, ring: this.ring } });
    this.worker = w;
    this.result = new Promise((resolve, reject) => {
      w.once('message', (m: { ok: boolean }) => resolve(m.ok));
      w.once('error', reject);
      w.once('exit', (code) => reject(new Error(`the sha256 worker stopped (exit code ${code})`)));
    });
    this.result.catch(() => {
      /* awaited by end(); stop() rejects it on purpose */
    });
    return w;
  }

  next(size: number): Buffer {
    if (this.worker === null) this.start(size);
    if (size !== this.size) throw new Error('WorkerShaSink: chunk size changed');
    // the worker's exit cannot be seen from here (this thread does not return to its event
    // loop while the pass runs): a ring that stays full for 60 s means it is gone
    let waited = 0;
    for (;;) {
      const d = Atomics.load(this.done, 0);
      if (this.sent - d < SLOTS) break;
      if (Atomics.wait(this.done, 0, d, 1000) === 'timed-out' && ++waited >= 60) throw new Error('the sha256 worker stopped answering');
    }
    return Buffer.from(this.ring as SharedArrayBuffer, (this.sent % SLOTS) * size, size);
  }

  push(len: number): void {
    this.worker?.postMessage({ slot: this.sent % SLOTS, size: this.size, len });
    this.sent++;
  }

  async end(trailer: Buffer): Promise<boolean> {
    const w = this.worker ?? this.start(1);
    w.postMessage({ trailer: new Uint8Array(trailer) });
    try {
      return await (this.result as Promise<boolean>);
    } finally {
      await w.terminate();
    }
  }

  async stop(): Promise<void> {
    await this.worker?.terminate();
  }
}
