/**
 * The encoding half of the save pipeline: which snapshot encoding a save uses (the server's
 * settings and a request's, checked) and the stream stages that write it.
 *
 *   etcd's bytes (already hash-checked) → [compress: zip | zstd | gzip] → [encrypt: age] → stores
 *
 * Compression runs off the main thread (zip and gzip: deflate of independent blocks in
 * libuv's thread pool, codec/deflate-parallel.ts; zstd: Debian's zstd program, codec/zstd.ts);
 * encryption is age (codec/age.ts), its payload on Node's native ChaCha20-Poly1305.
 */
import { Duplex, PassThrough } from 'node:stream';
import { parseRecipient, readRecipientsFile, createAgeEncryptStream } from '../codec/age.js';
import { createGzipStream } from '../codec/gzip.js';
import { checkZstdAvailable, createZstdCompressStream } from '../codec/zstd.js';
import { zipSingleEntry } from '../codec/zip-writer.js';
import { EtcdsnapError, messageOf } from '../errors.js';
import { type Compression, compressionOf, type SnapshotEncoding, splitEncodedName } from '../model/encoding.js';
import { MAX_RECORD_RECIPIENTS } from '../model/records.js';

export { compressionOf } from '../model/encoding.js';

/** Most recipients one snapshot may be encrypted for: as many as its record keeps. */
export const MAX_RECIPIENTS = MAX_RECORD_RECIPIENTS;

/** The encoding settings as flags, config keys or a request give them. */
export interface EncodingInput {
  /** `--etcd-snapshot-compress` (k3s's zip switch), when given. */
  compress?: boolean;
  /** `--etcd-snapshot-compression`, when given. */
  compression?: string;
  /** `--etcd-snapshot-encrypt-recipient` values. */
  recipients?: readonly string[];
  /** `--etcd-snapshot-encrypt-recipients-file`. */
  recipientsFile?: string;
}

/**
 * The recipients of `input`: the flag's values and the file's lines, each checked (bech32
 * with its checksum), without duplicates, in the order given. Throws `config` naming the bad
 * value or line.
 */
export async function recipientsOf(input: EncodingInput): Promise<string[]> {
  const out: string[] = [];
  for (const r of input.recipients ?? []) out.push(parseRecipient(r));
  if (input.recipientsFile !== undefined && input.recipientsFile !== '') out.push(...(await readRecipientsFile(input.recipientsFile)));
  const unique = [...new Set(out)];
  if (unique.length > MAX_RECIPIENTS) {
    throw new EtcdsnapError('config', `too many age recipients (${unique.length}): a snapshot is encrypted for at most ${MAX_RECIPIENTS}`);
  }
  return unique;
}

/**
 * The server's encoding from its settings, checked before it starts: the compression (zip
 * when only `--etcd-snapshot-compress` is given), the recipients, and, for zstd, that the
 * zstd program is installed.
 */
export async function resolveEncoding(input: EncodingInput): Promise<SnapshotEncoding> {
  const compression = compressionOf(input.compress, input.compression) ?? 'none';
  if (compression === 'zstd') await checkZstdAvailable();
  return { compression, recipients: await recipientsOf(input) };
}

/**
 * The encoding of one save: the request's compression, else the server's; the server's
 * recipients plus the request's (a request can add readers, never take the server's away or
 * turn encryption off).
 */
export function mergeEncoding(server: SnapshotEncoding, request: { compression?: Compression; recipients?: readonly string[] }): SnapshotEncoding {
  const recipients = [...new Set([...server.recipients, ...(request.recipients ?? [])])];
  if (recipients.length > MAX_RECIPIENTS) {
    throw new EtcdsnapError('usage', `too many age recipients (${recipients.length}): a snapshot is encrypted for at most ${MAX_RECIPIENTS}`);
  }
  return { compression: request.compression ?? server.compression, recipients };
}

/** A stage from a function that wraps a whole readable (the zip writer) as a Duplex. */
function wrapAsStage(wrap: (input: PassThrough) => NodeJS.ReadableStream): Duplex {
  const input = new PassThrough({ highWaterMark: 1 << 20 });
  const output = wrap(input);
  return Duplex.from({ writable: input, readable: output });
}

/**
 * The stream stages that encode a snapshot named `fileName` (its zip entry is the name
 * without its extensions, as k3s names it; `mtime` the entry's time): none for a plain
 * snapshot. Each stage fails the pipeline on its own errors.
 */
export async function encodeStages(enc: SnapshotEncoding, fileName: string, mtime: Date): Promise<Duplex[]> {
  const stages: Duplex[] = [];
  switch (enc.compression) {
    case 'zip': {
      const entry = splitEncodedName(fileName).base;
      stages.push(wrapAsStage((input) => zipSingleEntry(input, entry, mtime)));
      break;
    }
    case 'zstd':
      stages.push(createZstdCompressStream());
      break;
    case 'gzip':
      stages.push(createGzipStream());
      break;
    case 'none':
      break;
  }
  if (enc.recipients.length > 0) {
    try {
      stages.push(await createAgeEncryptStream(enc.recipients));
    } catch (err) {
      for (const s of stages) s.destroy();
      throw err instanceof EtcdsnapError ? err : new EtcdsnapError('config', `cannot encrypt for the age recipients: ${messageOf(err)}`);
    }
  }
  return stages;
}
