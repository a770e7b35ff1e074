/**
 * The header of an age v1 file (https://age-encryption.org/v1, "Header"), made and opened by the
 * age-encryption package (recipient stanzas, header MAC); the payload is age-payload.ts's.
 *
 * Making one: the package's `Encrypter` encrypts an empty file for the recipients plus one extra
 * recipient of ours that adds no stanza and captures the file key. Its output is header || nonce ||
 * the 16-byte tag of the empty final chunk. The result is checked before use (a library change
 * must fail loudly, never produce a file that the real age cannot open): the captured key is 16
 * bytes, the header parses with the package and its MAC verifies under that key, there is exactly
 * one X25519 stanza per recipient, and the empty payload opens under our payload key derivation.
 */
import { Decrypter, Encrypter, type Stanza } from 'age-encryption';
import { EtcdsnapError, messageOf } from '../errors.js';
import { type AgeIdentities, identitySecrets } from './age-keys.js';
import { openChunk, PAYLOAD_NONCE_BYTES, payloadKey, TAG_BYTES } from './age-payload.js';

/** The magic prefix `age-encryption.org/v1\n` as bytes, for format sniffing. */
export const AGE_MAGIC: Buffer = Buffer.from('age-encryption.org/v1\n', 'ascii');
export const ARMOR_MAGIC: Buffer = Buffer.from('-----BEGIN AGE ENCRYPTED FILE-----', 'ascii');
/** A longer header is refused (ours are ~100 bytes per recipient). */
export const MAX_HEADER_BYTES = 64 * 1024;
const MAC_LINE_START = Buffer.from('\n--- ', 'ascii');

/**
 * Where the `--- <mac>` line starts in `buf` (the index of the newline before it), or -1: the
 * first line starting with `--- ` ends an age header (stanza lines start with `-> ` or are
 * base64). `from` lets a caller skip bytes it already scanned.
 */
export function macLineAt(buf: Buffer, from = 0): number {
  return buf.indexOf(MAC_LINE_START, Math.max(0, from - MAC_LINE_START.length + 1));
}

/** The length of the header at the start of `buf` (through the MAC line's newline), or -1 if it is not all there. */
export function headerLength(buf: Buffer, macAt = macLineAt(buf), from = 0): number {
  if (macAt < 0) return -1;
  const end = buf.indexOf(0x0a, Math.max(macAt + MAC_LINE_START.length, from));
  return end < 0 ? -1 : end + 1;
}

const libraryBroke = (detail: string): EtcdsnapError =>
  new EtcdsnapError(
    'environment',
    `the age-encryption package did not make the age header as expected (${detail}): reinstall etcdsnap's pinned dependencies (age-encryption 0.3.1)`,
  );

/** A fresh header + payload nonce for `recipients` (parsed X25519 keys) and the payload key. */
export async function newAgeHeader(recipients: readonly string[]): Promise<{ prefix: Buffer; key: Buffer }> {
  let fileKey: Uint8Array | undefined;
  let out: Buffer;
  try {
    const encrypter = new Encrypter();
    for (const r of recipients) encrypter.addRecipient(r);
    encrypter.addRecipient({
      wrapFileKey(key: Uint8Array): Stanza[] {
        fileKey = Uint8Array.from(key);
        return [];
      },
    });
    out = Buffer.from(await encrypter.encrypt(new Uint8Array(0)));
  } catch (err) {
    // The recipients are parsed: a refusal here is the package refusing our key-capturing recipient.
    throw libraryBroke(`it refused to encrypt: ${messageOf(err)}`);
  }
  if (fileKey?.length !== 16) throw libraryBroke('no 16-byte file key was handed to the recipients');
  const length = headerLength(out);
  if (length < 0 || out.length !== length + PAYLOAD_NONCE_BYTES + TAG_BYTES) throw libraryBroke('the output is not header, nonce and an empty payload');
  const header = out.subarray(0, length);
  let stanzas: readonly Stanza[] = [];
  const captured = fileKey;
  const decrypter = new Decrypter();
  decrypter.addIdentity({
    unwrapFileKey(found: Stanza[]): Uint8Array {
      stanzas = found;
      return captured;
    },
  });
  try {
    await decrypter.decryptHeader(header);
  } catch (err) {
    throw libraryBroke(`it does not verify: ${messageOf(err)}`);
  }
  if (stanzas.length !== recipients.length || stanzas.some((s) => s.args[0] !== 'X25519')) {
    throw libraryBroke(`${stanzas.length} stanzas for ${recipients.length} X25519 recipients`);
  }
  const key = payloadKey(fileKey, out.subarray(length, length + PAYLOAD_NONCE_BYTES));
  if (openChunk(key, 0, true, out.subarray(length + PAYLOAD_NONCE_BYTES))?.length !== 0) throw libraryBroke('its payload key derivation differs');
  return { prefix: Buffer.from(out.subarray(0, length + PAYLOAD_NONCE_BYTES)), key };
}

export interface OpenOptions {
  /** Names the file in messages ("the snapshot x.age"); default "the age file". */
  what: string;
  /** The recipients the file was made for, from our own record, for the messages. */
  madeFor?: readonly string[] | undefined;
}

/** The most keys a message lists. */
const LISTED = 4;
const listKeys = (keys: readonly string[]): string =>
  keys.length <= LISTED ? keys.join(', ') : `${keys.slice(0, LISTED).join(', ')} and ${keys.length - LISTED} more`;

/** The file key of `header` (exactly the header bytes); 'auth' when no identity opens it, 'integrity' when it is malformed. */
export async function openAgeHeader(ids: AgeIdentities, header: Buffer, opts: OpenOptions): Promise<Uint8Array> {
  let types: string[] | undefined;
  const decrypter = new Decrypter();
  // First identity: records the stanzas the package parsed, opens nothing.
  decrypter.addIdentity({
    unwrapFileKey(found: Stanza[]): null {
      types = found.map((s) => s.args[0] ?? '');
      return null;
    },
  });
  for (const secret of identitySecrets(ids)) decrypter.addIdentity(secret);
  try {
    return await decrypter.decryptHeader(header);
  } catch (err) {
    throw headerError(ids, types, messageOf(err), opts);
  }
}

function headerError(ids: AgeIdentities, types: string[] | undefined, libraryMessage: string, opts: OpenOptions): EtcdsnapError {
  const damaged = (detail: string): EtcdsnapError => new EtcdsnapError('integrity', `${opts.what} has a damaged age header (${detail}): use an intact copy`);
  if (types === undefined) return damaged(printable(libraryMessage));
  if (types.length === 0) return damaged('no recipient stanzas');
  if (!libraryMessage.startsWith('no identity matched')) {
    return damaged(libraryMessage === 'invalid header HMAC' ? 'its MAC does not match' : printable(libraryMessage));
  }
  if (types.includes('scrypt')) {
    return new EtcdsnapError('auth', `${opts.what} is encrypted with a passphrase, not for keys: decrypt it with age -d and a passphrase`);
  }
  const madeFor = opts.madeFor ?? [];
  const ours = ids.recipients.filter((r) => madeFor.includes(r));
  if (ours.length > 0) {
    // Our record says the file was made for a key we hold, yet its stanza does not open: damage.
    return damaged(`it was made for ${listKeys(ours)}, which the identity file holds, yet none of its ${types.length} recipient stanzas opens`);
  }
  const made = madeFor.length > 0 ? `; made for ${listKeys(madeFor)}` : '';
  return new EtcdsnapError(
    'auth',
    `${opts.what} is encrypted for other keys: the identity file's keys (${listKeys(ids.recipients)}) open none of its ${types.length} recipient stanzas${made}: give the identity file of one of its recipients`,
  );
}

/** A library message, safe for one line: printable ASCII, at most 100 characters. */
function printable(text: string): string {
  const clean = text.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > 100 ? `${clean.slice(0, 97)}...` : clean;
}
