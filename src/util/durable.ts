/**
 * Durable writes: every file etcdsnap must find whole after a crash (snapshot files and
 * downloads, sidecars, the token, certificates and keys, the member name, the cluster ID, the
 * restore record, the reset flag) and every folder it swaps in is written here, one way:
 *
 *   data written to a temporary name → fsync(file) → rename(temp, final) → fsync(folder)
 *
 * so a final name only ever holds complete, flushed bytes, and the name itself survives a
 * power cut. Swapping any two of these steps is a real bug that no functional test sees (the
 * bytes are in the page cache either way); test/fs-order.test.ts records the calls below in
 * order, on every path, to catch it.
 *
 * Test seam: the calls go through `calls`, a narrow set of real `fs` operations. Tests wrap
 * them with `useDurableFs` (to record them, or to make one fail); production code never calls
 * it, and the defaults are the plain `node:fs` operations.
 */
import { promises as fsp, constants as fsc } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { Writable } from 'node:stream';
import path from 'node:path';
import { randomBytes } from 'node:crypto';

/** The file-system calls a durable write makes (all of them; nothing here calls `fsp` directly). */
export interface DurableFs {
  open(file: string, flags: string | number, mode?: number): Promise<FileHandle>;
  /** Writes all of `data` at the file's start (a small whole file). */
  writeFile(fh: FileHandle, data: string | Uint8Array): Promise<void>;
  writev(fh: FileHandle, bufs: Buffer[], position: number): Promise<number>;
  fsync(fh: FileHandle): Promise<void>;
  rename(from: string, to: string): Promise<void>;
}

const realFs: DurableFs = {
  open: (file, flags, mode) => fsp.open(file, flags, mode),
  writeFile: (fh, data) => fh.writeFile(data),
  writev: async (fh, bufs, position) => (await fh.writev(bufs, position)).bytesWritten,
  fsync: (fh) => fh.sync(),
  rename: (from, to) => fsp.rename(from, to),
};

let calls: DurableFs = realFs;

/**
 * Test seam: replaces the calls with `make(real)` (e.g. a recorder around the real ones) until
 * the returned function is called. Never called by production code.
 */
export function useDurableFs(make: (real: DurableFs) => DurableFs): () => void {
  calls = make(realFs);
  return () => {
    calls = realFs;
  };
}

/** fsyncs a folder so that a rename (or a creation) inside it survives a crash. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await calls.open(dir, fsc.O_RDONLY | fsc.O_DIRECTORY);
  try {
    await calls.fsync(fh);
  } finally {
    await fh.close();
  }
}

/** Creates `file` for writing, exclusively (it must not exist), with `mode`. */
export function createExclusive(file: string, mode = 0o600): Promise<FileHandle> {
  return calls.open(file, 'wx', mode);
}

/** Writes all of `buf` at `position` of `fh` (short writes continued); for files that grow by appends (the change log's `.part`). */
export async function writeAllAt(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) done += await calls.writev(fh, [buf.subarray(done)], position + done);
}

/**
 * Gives the complete file `tmp` its final name: fsync of `tmp` (through a descriptor of its
 * own: fsync applies to the file, whatever descriptor wrote it), rename to `final`, fsync of
 * the folder. `tmp` and `final` are in the same folder.
 */
export async function commitFile(tmp: string, final: string): Promise<void> {
  const fh = await calls.open(tmp, 'r');
  try {
    await calls.fsync(fh);
  } finally {
    await fh.close();
  }
  await calls.rename(tmp, final);
  await fsyncDir(path.dirname(final));
}

/**
 * Renames `from` to `to` (files or folders whose contents are already flushed) and fsyncs
 * the folders of both names, so that the move survives a crash.
 */
export async function renameDurably(from: string, to: string): Promise<void> {
  await calls.rename(from, to);
  await fsyncDir(path.dirname(to));
  if (path.dirname(from) !== path.dirname(to)) await fsyncDir(path.dirname(from));
}

/** The temp file name `writeFileAtomic` uses for `base` (a hidden name beside the file). */
const atomicTempName = (base: string): string => `.${base}.${randomBytes(4).toString('hex')}.tmp`;

/** Whether `name` is a temp file of `writeFileAtomic` (one a crash can leave behind). */
export const isAtomicTemp = (name: string): boolean => /^\..+\.[0-9a-f]{8}\.tmp$/.test(name);

/**
 * Writes `data` to `file` atomically with `mode` (default 0600): a reader sees the old
 * content or the new one, never a part, also after a crash (temp file beside it, fsync,
 * rename, fsync of the folder).
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
  const tmp = path.join(path.dirname(file), atomicTempName(path.basename(file)));
  const fh = await calls.open(tmp, 'w', mode);
  try {
    await calls.writeFile(fh, data);
    await calls.fsync(fh);
  } finally {
    await fh.close();
  }
  try {
    await fsp.chmod(tmp, mode);
    await calls.rename(tmp, file);
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    throw err;
  }
  await fsyncDir(path.dirname(file));
}

/**
 * A Writable over an open file that writes in batches of about `batchBytes`, each with one
 * `writev`. A snapshot arrives in 32 KiB chunks; `fs.WriteStream` writes most of them one by
 * one (a thread-pool round trip and a syscall each), which cost the server more CPU than the
 * copy into the page cache. Chunks are kept (not copied) until the batch is full, so at most
 * about `batchBytes` more is held than with a plain write stream.
 *
 * The file handle is closed when the stream is destroyed (after 'finish', or on an error);
 * 'close' follows. Short writes are continued; write errors (ENOSPC...) fail the stream.
 * It does not fsync: `commitFile` does, before the file gets its final name.
 */
export class BatchedFileWriter extends Writable {
  private batch: Buffer[] = [];
  private batched = 0;
  private position = 0;

  constructor(
    private readonly fh: FileHandle,
    private readonly batchBytes = 1 << 20,
  ) {
    super({ highWaterMark: batchBytes });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (error?: Error | null) => void): void {
    this.batch.push(chunk);
    this.batched += chunk.length;
    if (this.batched < this.batchBytes) cb();
    else this.flushBatch().then(() => cb(), cb);
  }

  override _final(cb: (error?: Error | null) => void): void {
    this.flushBatch().then(() => cb(), cb);
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    this.batch = [];
    this.fh.close().then(
      () => cb(err),
      (closeErr: unknown) => cb(err ?? (closeErr instanceof Error ? closeErr : new Error(String(closeErr)))),
    );
  }

  private async flushBatch(): Promise<void> {
    let bufs = this.batch;
    let left = this.batched;
    this.batch = [];
    this.batched = 0;
    while (left > 0) {
      const bytesWritten = await calls.writev(this.fh, bufs, this.position);
      this.position += bytesWritten;
      left -= bytesWritten;
      if (left > 0) bufs = dropBytes(bufs, bytesWritten);
    }
  }
}

/** `bufs` without its first `n` bytes (views, no copies). */
function dropBytes(bufs: Buffer[], n: number): Buffer[] {
  const out: Buffer[] = [];
  let skip = n;
  for (const b of bufs) {
    if (skip >= b.length) {
      skip -= b.length;
      continue;
    }
    out.push(skip > 0 ? b.subarray(skip) : b);
    skip = 0;
  }
  return out;
}
