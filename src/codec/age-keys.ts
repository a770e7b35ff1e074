/**
 * age keys: X25519 recipients (`age1...`, public) and identities (age-keygen's secret keys).
 *
 * Secrets never leave this module except through `identitySecrets` (for the header decryption in
 * age-header.ts): an `AgeIdentities` value shows only its file and public keys to `util.inspect`
 * and `JSON.stringify`, and no message here echoes an identity file's line or a value that looks
 * like a secret key (the bech32 parser's own errors do echo their input, so they are dropped).
 */
import { promises as fsp } from 'node:fs';
import { inspect } from 'node:util';
import { Encrypter, identityToRecipient } from 'age-encryption';
import { EtcdsnapError, errnoCode, messageOf } from '../errors.js';

/** Recipients and identity files are small; anything bigger is the wrong file. */
const MAX_KEY_FILE_BYTES = 1024 * 1024;
const AGE_HEADER_START = 'age-encryption.org/';
const ARMOR_START = '-----BEGIN AGE ENCRYPTED FILE-----';

/** Identities read from an identity file: public recipients for messages; the secrets are hidden. */
export interface AgeIdentities {
  /** The identity file they came from. */
  readonly source: string;
  /** The public key (`age1...`) of each identity, in file order. */
  readonly recipients: readonly string[];
}

const secrets = new WeakMap<AgeIdentities, readonly string[]>();

class Identities implements AgeIdentities {
  readonly source: string;
  readonly recipients: readonly string[];

  constructor(source: string, recipients: readonly string[]) {
    this.source = source;
    this.recipients = Object.freeze([...recipients]);
    Object.freeze(this);
  }

  toJSON(): { source: string; recipients: readonly string[] } {
    return { source: this.source, recipients: this.recipients };
  }

  [inspect.custom](): string {
    return `AgeIdentities { source: ${JSON.stringify(this.source)}, recipients: [${this.recipients.join(', ')}] }`;
  }
}

/** The secret keys behind `ids`; only for the codec's header decryption. */
export function identitySecrets(ids: AgeIdentities): readonly string[] {
  const keys = secrets.get(ids);
  if (keys === undefined) throw new EtcdsnapError('usage', 'age identities must come from readIdentityFile (internal error: a hand-made value was passed)');
  return keys;
}

/** A value that must not be echoed: a secret key, or anything shaped like age's secret strings. */
const looksSecret = (value: string): boolean => /^age-(secret|plugin)-/i.test(value) || /secret-key/i.test(value);

/** A public value quoted for a one-line message, shortened. */
function quote(value: string): string {
  const shown = value.length > 80 ? `${value.slice(0, 77)}...` : value;
  return JSON.stringify(shown);
}

/** An X25519 recipient `age1...` checked (bech32, the library's parser); throws `config` naming the bad value. */
export function parseRecipient(text: string): string {
  const value = text.trim();
  if (looksSecret(value)) {
    throw new EtcdsnapError(
      'config',
      'a secret age key was given where a recipient is expected: give its public key instead (age-keygen -y IDENTITY_FILE prints it)',
    );
  }
  if (value.startsWith('age1') && value.lastIndexOf('1') > 3) {
    throw new EtcdsnapError(
      'config',
      `age recipient ${quote(value)} is not an X25519 key: only age1... keys from age-keygen are supported (no plugin or post-quantum keys)`,
    );
  }
  try {
    if (!value.startsWith('age1')) throw new Error('not age1');
    new Encrypter().addRecipient(value);
  } catch {
    throw new EtcdsnapError(
      'config',
      `age recipient ${quote(value)} is not valid: expected an X25519 public key, age1 followed by 58 characters (age-keygen -y prints it)`,
    );
  }
  return value;
}

/** The text of a key file: regular, at most 1 MiB; `config` errors name the file and what to do. */
async function readKeyFile(file: string, kind: string): Promise<string> {
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(file, 'r');
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT') throw new EtcdsnapError('config', `${kind} ${file} does not exist: check the path`);
    if (code === 'EACCES') throw new EtcdsnapError('config', `${kind} ${file} is not readable by this user: fix its permissions`);
    throw new EtcdsnapError('config', `${kind} ${file} cannot be opened (${messageOf(err)}): check the path`);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new EtcdsnapError('config', `${kind} ${file} is not a regular file: give the path of a file`);
    if (st.size > MAX_KEY_FILE_BYTES) throw new EtcdsnapError('config', `${kind} ${file} is larger than 1 MiB (${st.size} bytes): it is not a key file`);
    const bytes = Buffer.alloc(MAX_KEY_FILE_BYTES + 1);
    let used = 0;
    for (;;) {
      const { bytesRead } = await fh.read(bytes, used, bytes.length - used, null);
      if (bytesRead === 0) break;
      used += bytesRead;
      if (used > MAX_KEY_FILE_BYTES) throw new EtcdsnapError('config', `${kind} ${file} is larger than 1 MiB: it is not a key file`);
    }
    return bytes.subarray(0, used).toString('utf8');
  } catch (err) {
    if (err instanceof EtcdsnapError) throw err;
    throw new EtcdsnapError('config', `${kind} ${file} cannot be read (${messageOf(err)}): check the file`);
  } finally {
    await fh.close();
  }
}

/** The non-blank, non-comment lines of a key file, trimmed, with their 1-based line numbers. */
function keyLines(text: string): Array<{ line: number; value: string }> {
  const out: Array<{ line: number; value: string }> = [];
  text.split('\n').forEach((raw, i) => {
    const value = raw.trim();
    if (value !== '' && !value.startsWith('#')) out.push({ line: i + 1, value });
  });
  return out;
}

/** Lines of a recipients file (age -R format: one `age1...` per line, `#` comments, blank lines); throws `config` with file:line on a bad line; refuses >1 MiB or an empty list. */
export async function readRecipientsFile(file: string): Promise<string[]> {
  const text = await readKeyFile(file, 'age recipients file');
  const out: string[] = [];
  for (const { line, value } of keyLines(text)) {
    let recipient: string;
    try {
      recipient = parseRecipient(value);
    } catch (err) {
      throw new EtcdsnapError('config', `${file}:${line}: ${messageOf(err)}`);
    }
    if (!out.includes(recipient)) out.push(recipient);
  }
  if (out.length === 0) throw new EtcdsnapError('config', `age recipients file ${file} lists no recipients: add one age1... public key per line`);
  return out;
}

/** An identity file (age-keygen output: `AGE-SECRET-KEY-1...` lines, `#` comments). Returns an opaque AgeIdentities value (keys + their public recipients for messages); throws `config` (missing file, no identity, bad line as file:line WITHOUT echoing the line's content). */
export async function readIdentityFile(file: string): Promise<AgeIdentities> {
  const text = await readKeyFile(file, 'age identity file');
  if (text.startsWith(AGE_HEADER_START) || text.trimStart().startsWith(ARMOR_START)) {
    throw new EtcdsnapError('config', `age identity file ${file} is itself encrypted: decrypt it (age -d) to a private file and give that one`);
  }
  const keys: string[] = [];
  const recipients: string[] = [];
  for (const { line, value } of keyLines(text)) {
    const where = `${file}:${line}`;
    if (value.startsWith('AGE-SECRET-KEY-PQ-'))
      throw new EtcdsnapError('config', `${where}: post-quantum age identities are not supported: use an X25519 key (age-keygen)`);
    if (value.startsWith('AGE-PLUGIN-')) throw new EtcdsnapError('config', `${where}: age plugin identities are not supported: use an X25519 key (age-keygen)`);
    if (!value.startsWith('AGE-SECRET-KEY-1')) {
      throw new EtcdsnapError('config', `${where}: not an age identity line (expected a secret key as age-keygen writes it, a # comment or a blank line)`);
    }
    let recipient: string;
    try {
      recipient = await identityToRecipient(value);
    } catch {
      // The parser's message would contain the key: say only where.
      throw new EtcdsnapError(
        'config',
        `${where}: the age secret key on this line is malformed (bad length or checksum): restore the file from age-keygen's output`,
      );
    }
    if (recipients.includes(recipient)) continue;
    keys.push(value);
    recipients.push(recipient);
  }
  if (keys.length === 0) throw new EtcdsnapError('config', `age identity file ${file} holds no identity: give the file age-keygen wrote`);
  const ids = new Identities(file, recipients);
  secrets.set(ids, Object.freeze(keys));
  return ids;
}
