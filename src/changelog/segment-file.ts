/**
 * One open segment of the change log, `<chain>-<first>.part` (0600): its header, the records
 * appended in revision order, and the footer that seals it (format.ts). It owns the file
 * handle and the running sha256; the writer (writer.ts) decides when a segment is sealed and
 * whether its file is renamed, committed first, or removed.
 */
import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { createExclusive, writeAllAt } from '../util/durable.js';
import { encodeFooter, encodeHeader, partName, segmentName } from './format.js';

/** A chain; `failed` once a write of it failed (its queued records are dropped). */
export interface Chain {
  id: string;
  cluster: string;
  /** When the chain began (ms; for the record). */
  since: number;
  failed?: boolean;
}

export class SegmentFile {
  /** The last revision appended (`first - 1` while empty). */
  last: number;
  records = 0;
  /** Bytes written so far (header and records). */
  bytes = 0;
  /** Record times (ms) of the first and the last record. */
  readonly firstTime: number;
  lastTime: number;
  private readonly hash = createHash('sha256');

  private constructor(
    readonly chain: Chain,
    readonly file: string,
    private readonly fh: FileHandle,
    readonly first: number,
    time: number,
  ) {
    this.last = first - 1;
    this.firstTime = time;
    this.lastTime = time;
  }

  /** Creates `<chain>-<first>.part` in `dir` (it must not exist) with its header. */
  static async create(dir: string, chain: Chain, first: number, time: number): Promise<SegmentFile> {
    const file = path.join(dir, partName(chain.id, first));
    const seg = new SegmentFile(chain, file, await createExclusive(file, 0o600), first, time);
    await seg.write(encodeHeader({ chain: chain.id, cluster: chain.cluster, first }));
    return seg;
  }

  /** Appends the encoded record of revision `rev` (the next one) at `time`. */
  async append(line: Buffer, rev: number, time: number): Promise<void> {
    await this.write(line);
    this.last = rev;
    this.records++;
    this.lastTime = time;
  }

  /** The sealed segment's name (`<chain>-<first>-<last>.jsonl`). */
  get sealedName(): string {
    return segmentName(this.chain.id, this.first, this.last);
  }

  /**
   * Writes the footer: records seen before `sealedAt` (raised to the last record's time) are
   * in this segment or an earlier one. Answers the footer's `sealedAt`. Neither syncs nor closes.
   */
  async writeFooter(sealedAt: number): Promise<number> {
    const at = Math.max(sealedAt, this.lastTime);
    const footer = encodeFooter({
      first: this.first,
      last: this.last,
      records: this.records,
      firstTime: this.firstTime,
      lastTime: this.lastTime,
      sealedAt: at,
      sha256: this.hash.digest('hex'),
    });
    await writeAllAt(this.fh, footer, this.bytes);
    return at;
  }

  sync(): Promise<void> {
    return this.fh.sync();
  }

  close(): Promise<void> {
    return this.fh.close();
  }

  /** Closes (errors ignored) and removes the file: a segment nobody will seal. */
  async discard(): Promise<void> {
    await this.fh.close().catch(() => undefined);
    await fsp.rm(this.file, { force: true });
  }

  private async write(buf: Buffer): Promise<void> {
    await writeAllAt(this.fh, buf, this.bytes);
    this.hash.update(buf);
    this.bytes += buf.length;
  }
}
