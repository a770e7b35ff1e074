/**
 * Streaming age v1 (https://age-encryption.org/v1) encryption and decryption for X25519 keys,
 * files that the real `age` tool reads and writes.
 *
 * The header comes from the age-encryption package (age-header.ts), the payload from Node's native
 * ChaCha20-Poly1305 (age-payload.ts), ~1 GB/s instead of the package's ~80 MB/s. Both streams are
 * plain `Transform`s: backpressure is Node's; each holds one 64 KiB chunk of its own plus about one
 * sealed chunk on each side (STREAM_BUFFERS), and the decrypter the header (at most 64 KiB) until
 * it has all of it.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { EtcdsnapError } from '../errors.js';
import { AGE_MAGIC, ARMOR_MAGIC, headerLength, MAX_HEADER_BYTES, macLineAt, newAgeHeader, type OpenOptions, openAgeHeader } from './age-header.js';
import { type AgeIdentities, parseRecipient } from './age-keys.js';
import { PAYLOAD_NONCE_BYTES, PayloadOpener, PayloadSealer, payloadKey, SEALED_CHUNK_BYTES } from './age-payload.js';

/**
 * Each side of a stream buffers about one sealed chunk (Node's default, 16 KiB, would report
 * backpressure after every 64 KiB write). Measured on a loaded 2-CPU machine, 16 KiB, one and
 * two chunks gave the same speed within the noise; one keeps memory at a few chunks per stream.
 */
const STREAM_BUFFERS = { readableHighWaterMark: SEALED_CHUNK_BYTES, writableHighWaterMark: SEALED_CHUNK_BYTES };

export { AGE_MAGIC } from './age-header.js';
export { type AgeIdentities, parseRecipient, readIdentityFile, readRecipientsFile } from './age-keys.js';

/** Transform: plaintext in, age file out (header first). Recipients already parsed (`parseRecipient`); at least one. */
export async function createAgeEncryptStream(recipients: readonly string[]): Promise<Transform> {
  if (recipients.length === 0) throw new EtcdsnapError('usage', 'age encryption needs at least one recipient: give an age1... public key');
  const { prefix, key } = await newAgeHeader(recipients.map(parseRecipient));
  const sealer = new PayloadSealer(key);
  const stream = new Transform({
    ...STREAM_BUFFERS,
    transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
      try {
        sealer.write(chunk, (bytes) => this.push(bytes));
        done();
      } catch (err) {
        done(err as Error);
      }
    },
    flush(done: TransformCallback): void {
      try {
        sealer.end((bytes) => this.push(bytes));
        done();
      } catch (err) {
        done(err as Error);
      }
    },
  });
  stream.push(prefix);
  return stream;
}

/** Transform: age file in, plaintext out. Fails the stream with EtcdsnapError:
 *  - 'auth' when no identity opens the header: `<what> is encrypted for other keys: the identity file's keys (age1..., ...)
 *    open none of its N recipient stanzas; made for age1..., ...` (the last part when `madeFor`, the recipients our
 *    record says the file was made for, is given); 'integrity' instead when `madeFor` names a key the identities hold
 *    (then the stanza must be damaged);
 *  - 'integrity' for a bad header (over 64 KiB, not age, armored, MAC mismatch), a truncated file, a flipped byte
 *    (tag failure), trailing data.
 *  `what` names the input in messages; default "the age file".
 */
export function createAgeDecryptStream(identities: AgeIdentities, opts?: { what?: string; madeFor?: readonly string[] }): Transform {
  return new AgeDecryptStream(identities, { what: opts?.what ?? 'the age file', madeFor: opts?.madeFor });
}

class AgeDecryptStream extends Transform {
  readonly #ids: AgeIdentities;
  readonly #opts: OpenOptions;
  /** The header as it arrives (then the nonce is read into `#nonce`). */
  #header: Buffer | undefined = Buffer.allocUnsafe(MAX_HEADER_BYTES);
  #headerUsed = 0;
  /** Where the header's MAC line starts, once seen. */
  #macAt = -1;
  #fileKey: Uint8Array | undefined;
  readonly #nonce = Buffer.alloc(PAYLOAD_NONCE_BYTES);
  #nonceUsed = 0;
  #opener: PayloadOpener | undefined;

  constructor(ids: AgeIdentities, opts: OpenOptions) {
    super(STREAM_BUFFERS);
    this.#ids = ids;
    this.#opts = opts;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.#take(chunk).then(
      () => done(),
      (err: unknown) => done(err as Error),
    );
  }

  override _flush(done: TransformCallback): void {
    try {
      if (this.#opener === undefined) {
        const where = this.#fileKey === undefined ? (this.#headerUsed === 0 ? 'is empty' : 'ends inside its age header') : 'ends before its payload';
        throw this.#integrity(`${where} (truncated): use an intact copy`);
      }
      this.#opener.end((bytes) => this.push(bytes));
      done();
    } catch (err) {
      done(err as Error);
    }
  }

  async #take(chunk: Buffer): Promise<void> {
    let rest = chunk;
    if (this.#header !== undefined) {
      const after = this.#takeHeader(rest);
      if (after === undefined) return;
      const header = this.#header.subarray(0, this.#headerUsed);
      this.#header = undefined;
      this.#fileKey = await openAgeHeader(this.#ids, header, this.#opts);
      rest = after;
    }
    if (this.#opener === undefined) {
      const n = Math.min(PAYLOAD_NONCE_BYTES - this.#nonceUsed, rest.length);
      rest.copy(this.#nonce, this.#nonceUsed, 0, n);
      this.#nonceUsed += n;
      rest = rest.subarray(n);
      if (this.#nonceUsed < PAYLOAD_NONCE_BYTES || this.#fileKey === undefined) return;
      this.#opener = new PayloadOpener(payloadKey(this.#fileKey, this.#nonce), this.#opts.what);
      this.#fileKey = undefined;
    }
    this.#opener.write(rest, (bytes) => this.push(bytes));
  }

  /** Adds `chunk` to the header; the bytes after the header once it is complete, else undefined. */
  #takeHeader(chunk: Buffer): Buffer | undefined {
    const header = this.#header as Buffer;
    const before = this.#headerUsed;
    const n = Math.min(header.length - before, chunk.length);
    chunk.copy(header, before, 0, n);
    this.#headerUsed += n;
    const seen = header.subarray(0, this.#headerUsed);
    const magic = seen.subarray(0, AGE_MAGIC.length);
    if (!magic.equals(AGE_MAGIC.subarray(0, magic.length))) {
      const armor = seen.subarray(0, ARMOR_MAGIC.length);
      if (armor.equals(ARMOR_MAGIC.subarray(0, armor.length))) {
        if (armor.length < ARMOR_MAGIC.length) return undefined;
        throw this.#integrity('is ASCII-armored (age -a), which is not supported: give the binary age file (age without -a)');
      }
      throw this.#integrity('is not an age file (it does not start with age-encryption.org/v1): check that this is the right file');
    }
    if (this.#macAt < 0) this.#macAt = macLineAt(seen, before);
    const length = headerLength(seen, this.#macAt, before);
    if (length >= 0) return Buffer.concat([seen.subarray(length), chunk.subarray(n)]);
    if (this.#headerUsed === header.length)
      throw this.#integrity('has an age header longer than 64 KiB, which etcdsnap refuses: check that this is the right file');
    return undefined;
  }

  #integrity(problem: string): EtcdsnapError {
    return new EtcdsnapError('integrity', `${this.#opts.what} ${problem}`);
  }
}
