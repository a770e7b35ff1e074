/**
 * The payload of an age v1 file (https://age-encryption.org/v1, "Payload"), with Node's native
 * ChaCha20-Poly1305 (the age-encryption package's pure-JS cipher is ~12x slower).
 *
 * Format, exactly as the spec and the package's `stream.js` have it:
 * - payload key = HKDF-SHA256(ikm = file key, salt = the 16-byte nonce after the header, info = "payload"), 32 bytes;
 * - the plaintext is cut into 64 KiB chunks, each sealed with ChaCha20-Poly1305 (16-byte tag appended)
 *   under the nonce `11-byte big-endian chunk counter || last flag` (0x01 on the final chunk only);
 * - the final chunk is shorter than or exactly 64 KiB; it is empty only when the whole plaintext is
 *   empty (a plaintext of exactly N x 64 KiB ends with a full chunk marked last, no empty chunk).
 *
 * `PayloadSealer` and `PayloadOpener` hold one chunk each (64 KiB, 64 KiB + 16): a full chunk is
 * sealed or opened only when the next byte arrives or the input ends, since only then is it known
 * whether it is the last one. Whole chunks inside a large input are processed in place, uncopied.
 */
import { createCipheriv, createDecipheriv, hkdfSync } from 'node:crypto';
import { EtcdsnapError } from '../errors.js';

export const CHUNK_BYTES = 64 * 1024;
export const TAG_BYTES = 16;
export const SEALED_CHUNK_BYTES = CHUNK_BYTES + TAG_BYTES;
/** The random nonce between the header and the payload, the HKDF salt of the payload key. */
export const PAYLOAD_NONCE_BYTES = 16;
/** The counter is 11 bytes; 6 are plenty (2^48 chunks = 16 EiB) and keep it a safe integer. */
const MAX_CHUNKS = 2 ** 48;

export function payloadKey(fileKey: Uint8Array, nonce: Uint8Array): Buffer {
  return Buffer.from(hkdfSync('sha256', fileKey, nonce, 'payload', 32));
}

function chunkNonce(counter: number, last: boolean): Buffer {
  if (counter >= MAX_CHUNKS) throw new EtcdsnapError('usage', 'the age payload is too long (2^48 chunks): split the data');
  const nonce = Buffer.alloc(12);
  nonce.writeUIntBE(counter, 5, 6);
  nonce[11] = last ? 1 : 0;
  return nonce;
}

/** Seals one chunk: the ciphertext and its tag, as two buffers (not concatenated, to spare a copy). */
export function sealChunk(key: Buffer, counter: number, last: boolean, plaintext: Uint8Array): [Buffer, Buffer] {
  const cipher = createCipheriv('chacha20-poly1305', key, chunkNonce(counter, last), { authTagLength: TAG_BYTES });
  const body = cipher.update(plaintext);
  cipher.final();
  return [body, cipher.getAuthTag()];
}

/** Opens one sealed chunk (ciphertext || tag); null when the tag does not match. */
export function openChunk(key: Buffer, counter: number, last: boolean, sealed: Buffer): Buffer | null {
  if (sealed.length < TAG_BYTES) return null;
  const decipher = createDecipheriv('chacha20-poly1305', key, chunkNonce(counter, last), { authTagLength: TAG_BYTES });
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
  const body = decipher.update(sealed.subarray(0, sealed.length - TAG_BYTES));
  try {
    decipher.final();
  } catch {
    return null;
  }
  return body;
}

type Emit = (bytes: Buffer) => void;

/** Plaintext in (any slicing), sealed chunks out. */
export class PayloadSealer {
  readonly #key: Buffer;
  readonly #buf = Buffer.allocUnsafe(CHUNK_BYTES);
  #used = 0;
  #counter = 0;

  constructor(key: Buffer) {
    this.#key = key;
  }

  write(data: Buffer, emit: Emit): void {
    let off = 0;
    while (off < data.length) {
      if (this.#used === CHUNK_BYTES) {
        this.#seal(this.#buf, false, emit);
        this.#used = 0;
      }
      if (this.#used === 0 && data.length - off > CHUNK_BYTES) {
        this.#seal(data.subarray(off, off + CHUNK_BYTES), false, emit);
        off += CHUNK_BYTES;
        continue;
      }
      const n = Math.min(CHUNK_BYTES - this.#used, data.length - off);
      data.copy(this.#buf, this.#used, off, off + n);
      this.#used += n;
      off += n;
    }
  }

  /** Seals what is held as the final chunk (empty only if nothing was written). */
  end(emit: Emit): void {
    this.#seal(this.#buf.subarray(0, this.#used), true, emit);
    this.#used = 0;
  }

  #seal(plaintext: Buffer, last: boolean, emit: Emit): void {
    const [body, tag] = sealChunk(this.#key, this.#counter++, last, plaintext);
    if (body.length > 0) emit(body);
    emit(tag);
  }
}

/** Sealed chunks in (any slicing), plaintext out; fails with 'integrity' errors naming `what`. */
export class PayloadOpener {
  readonly #key: Buffer;
  readonly #what: string;
  readonly #buf = Buffer.allocUnsafe(SEALED_CHUNK_BYTES);
  #used = 0;
  #counter = 0;

  constructor(key: Buffer, what: string) {
    this.#key = key;
    this.#what = what;
  }

  write(data: Buffer, emit: Emit): void {
    let off = 0;
    while (off < data.length) {
      if (this.#used === SEALED_CHUNK_BYTES) {
        this.#openMiddle(this.#buf, emit);
        this.#used = 0;
      }
      if (this.#used === 0 && data.length - off > SEALED_CHUNK_BYTES) {
        this.#openMiddle(data.subarray(off, off + SEALED_CHUNK_BYTES), emit);
        off += SEALED_CHUNK_BYTES;
        continue;
      }
      const n = Math.min(SEALED_CHUNK_BYTES - this.#used, data.length - off);
      data.copy(this.#buf, this.#used, off, off + n);
      this.#used += n;
      off += n;
    }
  }

  /** The input ended: what is held must be the final chunk. */
  end(emit: Emit): void {
    const held = this.#buf.subarray(0, this.#used);
    if (this.#used === 0) throw this.#fail('ends where its encrypted payload should begin (truncated)');
    const plaintext = openChunk(this.#key, this.#counter, true, held);
    if (plaintext === null) {
      if (this.#used === SEALED_CHUNK_BYTES && openChunk(this.#key, this.#counter, false, held) !== null) {
        throw this.#fail(`is truncated: it ends after payload chunk ${this.#counter + 1}, which is not marked as the final one`);
      }
      throw this.#fail(`is damaged or truncated: payload chunk ${this.#counter + 1} (the last one read) failed authentication`);
    }
    if (plaintext.length === 0 && this.#counter > 0) throw this.#fail('is malformed: its final payload chunk is empty, which age forbids');
    this.#counter++;
    this.#used = 0;
    if (plaintext.length > 0) emit(plaintext);
  }

  /** A full sealed chunk followed by more input: not the last one. */
  #openMiddle(sealed: Buffer, emit: Emit): void {
    const plaintext = openChunk(this.#key, this.#counter, false, sealed);
    if (plaintext === null) {
      if (openChunk(this.#key, this.#counter, true, sealed) !== null) {
        throw this.#fail(`has data after its final payload chunk (chunk ${this.#counter + 1}): something was appended`);
      }
      throw this.#fail(`is damaged: payload chunk ${this.#counter + 1} failed authentication`);
    }
    this.#counter++;
    emit(plaintext);
  }

  #fail(problem: string): EtcdsnapError {
    return new EtcdsnapError('integrity', `${this.#what} ${problem}; use an intact copy`);
  }
}
