/**
 * The sha256 trailer check of an etcd snapshot file (the 32 bytes etcd appends after the
 * database), run in a worker thread so it overlaps with a walk of the pages on the main
 * thread. The worker reads the file sequentially in 1 MiB positional reads (bounded memory)
 * and resolves with whether sha256(bytes before the trailer) equals the trailer.
 */
import { Worker } from 'node:worker_threads';

const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { openSync, readSync, closeSync } = require('node:fs');
const { createHash } = require('node:crypto');
const { file, dataSize } = workerData;
let fd;
try {
  fd = openSync(file, 'r');
  const hash = createHash('sha256');
  const buf = Buffer.allocUnsafe(1 << 20);
  let pos = 0;
  while (pos < dataSize) {
    const n = readSync(fd, buf, 0, Math.min(buf.length, dataSize - pos), pos);
    if (n === 0) throw new Error('the file ends at ' + pos);
    hash.update(buf.subarray(0, n));
    pos += n;
  }
  const trailer = Buffer.alloc(32);
  let got = 0;
  while (got < 32) {
    const n = readSync(fd, trailer, got, 32 - got, dataSize + got);
    if (n === 0) throw new Error('the file ends inside its sha256 trailer');
    got += n;
  }
  parentPort.postMessage({ ok: hash.digest().equals(trailer) });
} catch (err) {
  parentPort.postMessage({ error: String(err && err.message) });
} finally {
  if (fd !== undefined) closeSync(fd);
}
`;

/** A running check: `result` is true when the 32 bytes at `dataSize` are the sha256 of the bytes before; it rejects on a read error. */
export class TrailerCheck {
  readonly result: Promise<boolean>;
  private readonly worker: Worker;

  constructor(file: string, dataSize: number) {
    this.worker = new Worker(WORKER, { eval: true, workerData: { file, dataSize } });
    const w = this.worker;
    this.result = new Promise((resolve, reject) => {
      w.once('message', (m: { ok?: boolean; error?: string }) => {
        if (m.error !== undefined) reject(new Error(`${file}: ${m.error}`));
        else resolve(m.ok === true);
      });
      w.once('error', reject);
      w.once('exit', (code) => reject(new Error(`${file}: the sha256 check stopped (exit code ${code})`)));
    });
    this.result.catch(() => {
      /* the owner awaits it; stopping early rejects it on purpose */
    });
  }

  /** Stops the check if it still runs. */
  async stop(): Promise<void> {
    await this.worker.terminate();
  }
}
