/**
 * The decoding half: a stored snapshot file, whatever its encoding, as a plain etcd snapshot
 * file for a restore or an inspection. The format is read from the bytes (codec/magic.ts),
 * never from the name:
 *
 *   plain          used where it is (nothing copied)
 *   zip            k3s's one-entry zip, extracted (unzip.ts: entry and free-space checks)
 *   zstd, gzip     decompressed into the private folder
 *   age            decrypted with the identity file into the private folder, then the result
 *                  decoded again (plain, zip, zstd or gzip; age in age is refused)
 *
 * Where: a new private folder `<parent>/restore-XXXXXX` (mkdtemp, 0700; files 0600, O_EXCL,
 * O_NOFOLLOW); restore passes the data dir's `server/db` (a killed restore's folder is removed
 * by restore.ts `removeStaleExtractions`), inspection its own temp folder. On any failure the
 * folder is removed before the error is thrown, so a refused file changes nothing; on success
 * the caller calls `remove()` when done. A file that is none of the formats is handed on as
 * it is: the sha256 trailer check that follows refuses it.
 *
 * Errors: an encrypted file without `--etcd-snapshot-decrypt-identity-file` is a `config`
 * error; an identity that opens none of its recipient stanzas is an `auth` error naming the
 * recipients the record says it was made for; a damaged, truncated or altered file is
 * `integrity` (age authenticates every 64 KiB chunk and the end of the file).
 */
import { constants as fsc, promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createAgeDecryptStream, readIdentityFile } from '../codec/age.js';
import { createGunzipStream } from '../codec/gzip.js';
import { SNIFF_BYTES, sniffFormat } from '../codec/magic.js';
import { createZstdDecompressStream } from '../codec/zstd.js';
import { EtcdsnapError, errnoCode, messageOf } from '../errors.js';
import { extractSnapshotZip } from './unzip.js';
import { NO_PROGRESS, type ProgressReporter, progressTap } from '../util/progress.js';

/** The flag that names the identity file (in messages). */
export const IDENTITY_FLAG = '--etcd-snapshot-decrypt-identity-file';

/** What decoding may need besides the file. */
export interface DecodeContext {
  /** `--etcd-snapshot-decrypt-identity-file`: read only when the snapshot is encrypted. */
  identityFile?: string;
  /** The recipients its record says it was made for: named when no identity opens it. */
  madeFor?: readonly string[];
  /** Told the bytes read of each decrypting or decompressing pass (not of a zip's extraction). */
  progress?: ProgressReporter;
}

/** A plain snapshot file, and how to remove what it took to get it. */
export interface DecodedSnapshot {
  /** The plain snapshot file (`source` itself when it was plain). */
  readonly file: string;
  /** The encodings taken off, outermost first (`['age', 'zstd']`); empty for a plain file. */
  readonly layers: readonly string[];
  /** The private folder, when something was written. */
  readonly dir?: string;
  /** Removes the private folder (never the source); safe to call twice. */
  remove(): Promise<void>;
}

/** The format of `file` by its first bytes. */
async function formatOf(file: string): Promise<ReturnType<typeof sniffFormat>> {
  const fh = await fsp.open(file, fsc.O_RDONLY | fsc.O_NOFOLLOW);
  try {
    const head = Buffer.alloc(SNIFF_BYTES);
    const { bytesRead } = await fh.read(head, 0, SNIFF_BYTES, 0);
    return sniffFormat(head.subarray(0, bytesRead));
  } finally {
    await fh.close();
  }
}

/**
 * Streams `from` through `stage` into the new file `to` (0600, never over an existing file),
 * telling `progress` the bytes read of `from` under `label`.
 */
async function streamInto(from: string, stage: Duplex, to: string, progress: ProgressReporter, label: string): Promise<void> {
  const src = await fsp.open(from, fsc.O_RDONLY | fsc.O_NOFOLLOW);
  const dst = await fsp.open(to, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
  const task = progress.start(label, (await src.stat()).size);
  let ok = false;
  try {
    await pipeline(src.createReadStream({ highWaterMark: 1 << 20 }), progressTap(task), stage, dst.createWriteStream({ highWaterMark: 1 << 20 }));
    ok = true;
  } finally {
    task.done(ok);
  }
}

const decompressor = (format: 'zstd' | 'gzip'): Duplex => (format === 'zstd' ? createZstdDecompressStream() : createGunzipStream());

/** `err` with `source` and "nothing was changed" in its message, its kind kept (a system error is the machine's). */
function refusal(source: string, err: unknown): EtcdsnapError {
  if (err instanceof EtcdsnapError) return new EtcdsnapError(err.kind, `cannot decode ${source}: ${err.message}; nothing was changed`, { cause: err });
  if (errnoCode(err) !== undefined) return new EtcdsnapError('environment', `cannot decode ${source}: ${messageOf(err)}; nothing was changed`, { cause: err });
  return new EtcdsnapError('integrity', `cannot decode ${source}: ${messageOf(err)}; nothing was changed`, { cause: err });
}

/**
 * `source` as a plain snapshot file (see the module's rules), decoded into a new private
 * folder under `parent` when it is encoded.
 */
export async function decodeSnapshotFile(source: string, parent: string, ctx: DecodeContext = {}): Promise<DecodedSnapshot> {
  const outer = await formatOf(source);
  if (outer === undefined || outer === 'plain') return { file: source, layers: [], remove: () => Promise.resolve() };
  if (outer === 'zip') {
    const x = await extractSnapshotZip(source, parent);
    return { file: x.file, dir: x.dir, layers: ['zip'], remove: () => x.remove() };
  }
  if (outer === 'age' && (ctx.identityFile === undefined || ctx.identityFile === '')) {
    const madeFor = ctx.madeFor && ctx.madeFor.length > 0 ? ` for ${ctx.madeFor.join(', ')}` : '';
    throw new EtcdsnapError(
      'config',
      `${source} is encrypted with age${madeFor}: give ${IDENTITY_FLAG} (or ETCDSNAP_DECRYPT_IDENTITY_FILE) with an identity that opens it; nothing was changed`,
    );
  }
  const progress = ctx.progress ?? NO_PROGRESS;
  const dir = await fsp.mkdtemp(path.join(parent, 'restore-'));
  const remove = (): Promise<void> => fsp.rm(dir, { recursive: true, force: true });
  try {
    const plain = path.join(dir, 'snapshot.db');
    if (outer !== 'age') {
      await streamInto(source, decompressor(outer), plain, progress, `decompressing ${path.basename(source)} (${outer})`);
      return { file: plain, dir, layers: [outer], remove };
    }
    const identities = await readIdentityFile(ctx.identityFile ?? '');
    const decrypted = path.join(dir, 'decrypted');
    await streamInto(
      source,
      createAgeDecryptStream(identities, { what: 'it', ...(ctx.madeFor ? { madeFor: ctx.madeFor } : {}) }),
      decrypted,
      progress,
      `decrypting ${path.basename(source)}`,
    );
    const inner = await formatOf(decrypted);
    if (inner === 'age') throw new EtcdsnapError('integrity', 'it holds another age file inside; decrypt the outer layer with age -d first');
    if (inner === 'zip') {
      const x = await extractSnapshotZip(decrypted, dir);
      await fsp.rm(decrypted, { force: true });
      return { file: x.file, dir, layers: ['age', 'zip'], remove };
    }
    if (inner === 'zstd' || inner === 'gzip') {
      await streamInto(decrypted, decompressor(inner), plain, progress, `decompressing ${path.basename(source)} (${inner})`);
      await fsp.rm(decrypted, { force: true });
      return { file: plain, dir, layers: ['age', inner], remove };
    }
    await fsp.rename(decrypted, plain);
    return { file: plain, dir, layers: ['age'], remove };
  } catch (err) {
    await remove();
    throw refusal(source, err);
  }
}
