/**
 * src/codec/age.ts against the real age tools (Debian's age 1.1): our files open with `age -d`,
 * `age -r`/`-R` files open with ours; wrong keys are 'auth', every kind of damage (truncation,
 * flipped bytes, appended data, an empty non-first final chunk) is 'integrity'; key files parse
 * as age's do; nothing ever shows a secret key.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { inspect } from 'node:util';
import { EtcdsnapError } from '../src/errors.js';
import {
  AGE_MAGIC,
  type AgeIdentities,
  createAgeDecryptStream,
  createAgeEncryptStream,
  parseRecipient,
  readIdentityFile,
  readRecipientsFile,
} from '../src/codec/age.js';
import { newAgeHeader } from '../src/codec/age-header.js';
import { CHUNK_BYTES, SEALED_CHUNK_BYTES, sealChunk } from '../src/codec/age-payload.js';

let dir = '';
const keyFile: string[] = [];
const pub: string[] = [];
const ids: AgeIdentities[] = [];
/** Every error message the tests saw, checked for secrets at the end. */
const messages: string[] = [];

const SIZES = [0, 1, 65535, 65536, 65537, 3 * 65536, 5 * 1024 * 1024 + 123];
const at = (name: string): string => path.join(dir, name);

before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'etcdsnap-age-'));
  for (let i = 0; i < 3; i++) {
    keyFile.push(at(`key${i}.txt`));
    execFileSync('age-keygen', ['-o', at(`key${i}.txt`)], { stdio: 'ignore' });
    pub.push(
      execFileSync('age-keygen', ['-y', at(`key${i}.txt`)])
        .toString()
        .trim(),
    );
    ids.push(await readIdentityFile(at(`key${i}.txt`)));
  }
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** `data` cut into `piece`-byte writes. */
function* pieces(data: Buffer, piece: number): Generator<Buffer> {
  for (let i = 0; i < data.length; i += piece) yield data.subarray(i, i + piece);
}
async function collect(source: Iterable<Buffer>, through: NodeJS.ReadWriteStream): Promise<Buffer> {
  const out: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _e, done) {
      out.push(chunk);
      done();
    },
  });
  await pipeline(Readable.from(source), through, sink);
  return Buffer.concat(out);
}
const encrypt = async (data: Buffer, recipients: readonly string[], piece = 7777): Promise<Buffer> =>
  collect(pieces(data, piece), await createAgeEncryptStream(recipients));
const decrypt = (file: Buffer, who: AgeIdentities, opts?: { what?: string; madeFor?: readonly string[] }, piece = 10000): Promise<Buffer> =>
  collect(pieces(file, piece), createAgeDecryptStream(who, opts));
/** The error a decryption fails with, after checking its kind. */
async function failure(
  kind: string,
  file: Buffer,
  who: AgeIdentities = ids[0],
  opts?: { what?: string; madeFor?: readonly string[] },
  piece?: number,
): Promise<string> {
  const err = await decrypt(file, who, opts, piece).then(
    () => assert.fail('decryption succeeded'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof EtcdsnapError, String(err));
  assert.equal(err.kind, kind, err.message);
  messages.push(err.message);
  return err.message;
}
async function thrown(kind: string, run: () => unknown): Promise<string> {
  try {
    await run();
  } catch (err) {
    assert.ok(err instanceof EtcdsnapError, String(err));
    assert.equal(err.kind, kind, err.message);
    messages.push(err.message);
    return err.message;
  }
  return assert.fail('no error');
}
function ageDecrypt(file: Buffer, key: string): Buffer {
  writeFileSync(at('in.age'), file);
  return execFileSync('age', ['-d', '-i', key, at('in.age')], { stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024 });
}
function ageEncrypt(data: Buffer, args: string[]): Buffer {
  writeFileSync(at('plain.bin'), data);
  execFileSync('age', [...args, '-o', at('made.age'), at('plain.bin')], { stdio: ['ignore', 'ignore', 'pipe'] });
  return readFileSync(at('made.age'));
}
const headerEnd = (file: Buffer): number => file.indexOf('\n', file.indexOf('\n--- ') + 1) + 1;
const flip = (file: Buffer, i: number): Buffer => {
  const copy = Buffer.from(file);
  copy[i] = (copy[i] ?? 0) ^ 0x01;
  return copy;
};

test('our files open with age -d, byte for byte, with no extra empty chunk', async () => {
  for (const size of SIZES) {
    const data = randomBytes(size);
    const file = await encrypt(data, [pub[0]]);
    assert.ok(file.subarray(0, AGE_MAGIC.length).equals(AGE_MAGIC));
    const chunks = Math.max(1, Math.ceil(size / CHUNK_BYTES));
    assert.equal(file.length, headerEnd(file) + 16 + size + 16 * chunks, `size ${size}`);
    assert.ok(ageDecrypt(file, keyFile[0]).equals(data), `size ${size}`);
    assert.ok((await decrypt(file, ids[0])).equals(data), `size ${size} (ours)`);
  }
  // Writes larger than a chunk are sealed in place: same bytes out.
  const big = randomBytes(3 * CHUNK_BYTES + 5);
  assert.ok(ageDecrypt(await encrypt(big, [pub[0]], 200_000), keyFile[0]).equals(big));
});

test('age -r files open with ours, whatever the input slicing', async () => {
  for (const size of SIZES) {
    const data = randomBytes(size);
    const file = ageEncrypt(data, ['-r', pub[1]]);
    for (const piece of size <= 65537 ? [1, 4096, SEALED_CHUNK_BYTES, 1 << 20] : [65536, 1 << 20]) {
      assert.ok((await decrypt(file, ids[1], undefined, piece)).equals(data), `size ${size} piece ${piece}`);
    }
  }
});

test('several recipients (age -R with comments, and ours): every identity opens, others get auth', async () => {
  writeFileSync(at('recipients.txt'), `# team keys\n\n${pub[0]}\r\n# second\n${pub[1]}\n${pub[0]}\n`);
  const recipients = await readRecipientsFile(at('recipients.txt'));
  assert.deepEqual(recipients, [pub[0], pub[1]]);
  const data = randomBytes(100_000);
  for (const file of [ageEncrypt(data, ['-R', at('recipients.txt')]), await encrypt(data, recipients)]) {
    assert.ok((await decrypt(file, ids[0])).equals(data));
    assert.ok((await decrypt(file, ids[1])).equals(data));
    await failure('auth', file, ids[2]);
  }
  const ours = await encrypt(data, recipients);
  assert.ok(ageDecrypt(ours, keyFile[0]).equals(data));
  assert.ok(ageDecrypt(ours, keyFile[1]).equals(data));
  writeFileSync(at('both.txt'), readFileSync(keyFile[1]).toString() + readFileSync(keyFile[2]).toString());
  const both = await readIdentityFile(at('both.txt'));
  assert.deepEqual(both.recipients, [pub[1], pub[2]]);
  assert.ok((await decrypt(await encrypt(data, [pub[2]]), both)).equals(data));
});

test('a wrong identity is auth, naming its keys, the stanza count and the recipients of our record', async () => {
  const file = await encrypt(randomBytes(10), [pub[0], pub[1]]);
  const message = await failure('auth', file, ids[2], { what: 'snapshot s1.age', madeFor: [pub[0], pub[1]] });
  assert.equal(
    message,
    `snapshot s1.age is encrypted for other keys: the identity file's keys (${pub[2]}) open none of its 2 recipient stanzas; made for ${pub[0]}, ${pub[1]}: give the identity file of one of its recipients`,
  );
  assert.match(await failure('auth', file, ids[2]), /^the age file is encrypted for other keys: .* open none of its 2 recipient stanzas: give/);
  // Our record says the file is for a key we hold: its stanza must be damaged.
  const stanzaFlipped = Buffer.from(file);
  const body = file.indexOf('\n', file.indexOf('-> X25519')) + 3;
  stanzaFlipped[body] = stanzaFlipped[body] === 0x41 ? 0x42 : 0x41;
  assert.match(await failure('integrity', stanzaFlipped, ids[0], { madeFor: [pub[0]] }), /damaged age header/);
  // Without our record a damaged stanza cannot be told from one made for another key.
  assert.match(await failure('auth', stanzaFlipped, ids[0]), /encrypted for other keys/);
});

test('truncated files are integrity errors', async () => {
  const file = await encrypt(randomBytes(3 * CHUNK_BYTES + 100), [pub[0]]);
  const payload = headerEnd(file) + 16;
  assert.match(await failure('integrity', file.subarray(0, 0)), /is empty/);
  assert.match(await failure('integrity', file.subarray(0, 30)), /ends inside its age header/);
  assert.match(await failure('integrity', file.subarray(0, headerEnd(file) - 1)), /ends inside its age header/);
  assert.match(await failure('integrity', file.subarray(0, payload - 3)), /ends before its payload/);
  assert.match(await failure('integrity', file.subarray(0, payload)), /ends where its encrypted payload should begin/);
  assert.match(await failure('integrity', file.subarray(0, payload + 1000)), /failed authentication/);
  assert.match(await failure('integrity', file.subarray(0, payload + SEALED_CHUNK_BYTES)), /truncated: it ends after payload chunk 1, which is not marked/);
  assert.match(await failure('integrity', file.subarray(0, payload + 2 * SEALED_CHUNK_BYTES)), /ends after payload chunk 2/);
});

test('flipped bytes (header MAC, payload, last tag) and appended data are integrity errors', async () => {
  const file = await encrypt(randomBytes(2 * CHUNK_BYTES + 10), [pub[0]]);
  const macAt = file.indexOf('\n--- ') + 10;
  const macFlipped = Buffer.from(file);
  macFlipped[macAt] = macFlipped[macAt] === 0x41 ? 0x42 : 0x41;
  assert.match(await failure('integrity', macFlipped), /damaged age header \(its MAC does not match\)/);
  assert.match(await failure('integrity', flip(file, headerEnd(file) + 16 + 70_000)), /payload chunk 2 failed authentication/);
  assert.match(await failure('integrity', flip(file, headerEnd(file) + 5)), /payload chunk 1 failed authentication/);
  assert.match(await failure('integrity', flip(file, file.length - 1)), /payload chunk 3 \(the last one read\) failed/);
  assert.match(await failure('integrity', Buffer.concat([file, Buffer.from('garbage')])), /failed authentication/);
  const full = await encrypt(randomBytes(CHUNK_BYTES), [pub[0]]);
  assert.match(await failure('integrity', Buffer.concat([full, Buffer.from('x')])), /has data after its final payload chunk \(chunk 1\)/);
  const empty = await encrypt(Buffer.alloc(0), [pub[0]]);
  assert.match(await failure('integrity', Buffer.concat([empty, Buffer.from('x')])), /failed authentication/);
});

test('an empty final chunk after a full one is refused, as by age itself', async () => {
  const { prefix, key } = await newAgeHeader([pub[0]]);
  const file = Buffer.concat([prefix, ...sealChunk(key, 0, false, randomBytes(CHUNK_BYTES)), ...sealChunk(key, 1, true, Buffer.alloc(0))]);
  assert.match(await failure('integrity', file), /final payload chunk is empty/);
  assert.throws(() => ageDecrypt(file, keyFile[0]));
});

test('not age, armored age and an oversized header are refused before any key is tried', async () => {
  assert.match(await failure('integrity', randomBytes(1000)), /is not an age file/);
  assert.match(await failure('integrity', Buffer.from('age-encryption.org/v2\n--- x\n')), /is not an age file/);
  const armored = ageEncrypt(Buffer.from('hello'), ['-a', '-r', pub[0]]);
  assert.match(await failure('integrity', armored, ids[0], undefined, 3), /ASCII-armored/);
  const huge = Buffer.concat([AGE_MAGIC, Buffer.from(`-> X25519 ${'A'.repeat(43)}\n${'A'.repeat(64)}\n`.repeat(800))]);
  assert.match(await failure('integrity', huge), /longer than 64 KiB/);
  assert.match(await failure('integrity', Buffer.concat([AGE_MAGIC, Buffer.from('--- AAAA\n'), randomBytes(40)])), /no recipient stanzas/);
  assert.match(await failure('integrity', Buffer.concat([AGE_MAGIC, Buffer.from('-> X25519 short\nAAAA\n--- AAAA\n'), randomBytes(40)])), /damaged age header/);
  const scrypt = Buffer.concat([AGE_MAGIC, Buffer.from(`-> scrypt ${'A'.repeat(22)} 10\n${'A'.repeat(43)}\n--- AAAA\n`), randomBytes(40)]);
  assert.match(await failure('auth', scrypt), /encrypted with a passphrase/);
});

test('recipients: X25519 age1 keys only; bad values named, secrets never echoed', async () => {
  assert.equal(parseRecipient(` ${pub[0]} `), pub[0]);
  const broken = pub[0].slice(0, -1) + (pub[0].endsWith('q') ? 'p' : 'q');
  assert.match(await thrown('config', () => parseRecipient(broken)), new RegExp(`"${broken}" is not valid`));
  for (const bad of ['', 'age1', 'hello', pub[0].toUpperCase(), `${pub[0]}q`]) await thrown('config', () => parseRecipient(bad));
  assert.match(await thrown('config', () => parseRecipient(`age1yubikey1${'q'.repeat(50)}`)), /not an X25519 key/);
  const secret =
    readFileSync(keyFile[0], 'utf8')
      .split('\n')
      .find((l) => l.startsWith('AGE-SECRET-KEY-1')) ?? '';
  assert.match(await thrown('config', () => parseRecipient(secret)), /a secret age key was given where a recipient is expected/);
  assert.match(await thrown('config', () => parseRecipient(secret.toLowerCase())), /a secret age key/);
  writeFileSync(at('r-bad.txt'), `# ok\n${pub[0]}\n\nnot-a-key\n`);
  assert.match(await thrown('config', () => readRecipientsFile(at('r-bad.txt'))), /r-bad\.txt:4: age recipient "not-a-key" is not valid/);
  writeFileSync(at('r-secret.txt'), `${secret}\n`);
  assert.match(await thrown('config', () => readRecipientsFile(at('r-secret.txt'))), /r-secret\.txt:1: a secret age key/);
  writeFileSync(at('r-empty.txt'), '# nobody\n\n');
  assert.match(await thrown('config', () => readRecipientsFile(at('r-empty.txt'))), /lists no recipients/);
  writeFileSync(at('r-huge.txt'), Buffer.alloc(1024 * 1024 + 1, 0x23));
  assert.match(await thrown('config', () => readRecipientsFile(at('r-huge.txt'))), /larger than 1 MiB/);
  assert.match(await thrown('config', () => readRecipientsFile(at('nope.txt'))), /nope\.txt does not exist/);
  assert.match(await thrown('usage', () => createAgeEncryptStream([])), /at least one recipient/);
});

test('identity files: missing, empty, bad lines (never echoed), encrypted, plugin keys', async () => {
  const secret =
    readFileSync(keyFile[0], 'utf8')
      .split('\n')
      .find((l) => l.startsWith('AGE-SECRET-KEY-1')) ?? '';
  assert.match(await thrown('config', () => readIdentityFile(at('missing.txt'))), /missing\.txt does not exist/);
  writeFileSync(at('empty.txt'), '');
  assert.match(await thrown('config', () => readIdentityFile(at('empty.txt'))), /holds no identity/);
  const badKey = `${secret.slice(0, -2)}QQ`;
  const lines: Array<[string, RegExp]> = [
    [badKey, /:3: the age secret key on this line is malformed/],
    [secret.slice(0, 40), /:3: the age secret key on this line is malformed/],
    ['hunter2 is my password', /:3: not an age identity line/],
    [secret.toLowerCase(), /:3: not an age identity line/],
    ['AGE-PLUGIN-YUBIKEY-1QQQQQQ', /:3: age plugin identities are not supported/],
    ['AGE-SECRET-KEY-PQ-1QQQQQQ', /:3: post-quantum age identities are not supported/],
  ];
  for (const [line, expected] of lines) {
    writeFileSync(at('bad-id.txt'), `# created: today\n\n${line}\n${secret}\n`);
    const message = await thrown('config', () => readIdentityFile(at('bad-id.txt')));
    assert.match(message, expected);
    assert.ok(!message.includes(line) && !message.includes(line.slice(10, 30)), message);
  }
  writeFileSync(at('enc-id.age'), ageEncrypt(readFileSync(keyFile[0]), ['-r', pub[1]]));
  assert.match(await thrown('config', () => readIdentityFile(at('enc-id.age'))), /is itself encrypted/);
  const fake: AgeIdentities = { source: 'x', recipients: [pub[0]] };
  await failure('usage', await encrypt(Buffer.from('x'), [pub[0]]), fake);
});

test('backpressure: a stream nobody reads takes a bounded amount, then everything flows', async () => {
  const enc = await createAgeEncryptStream([pub[0]]);
  const chunk = randomBytes(CHUNK_BYTES);
  let written = 0;
  while (enc.write(chunk) && written < 100) written++;
  assert.ok(written <= 3, `took ${written} chunks without a reader`);
  enc.end();
  const out: Buffer[] = [];
  for await (const piece of enc) out.push(piece as Buffer);
  const plain = await decrypt(Buffer.concat(out), ids[0]);
  assert.equal(plain.length, (written + 1) * CHUNK_BYTES);
});

test('no secret in inspect, JSON or any message', () => {
  const secrets = keyFile.map(
    (f) =>
      readFileSync(f, 'utf8')
        .split('\n')
        .find((l) => l.startsWith('AGE-SECRET-KEY-1')) ?? 'unset',
  );
  const shown = [inspect(ids[0]), inspect(ids[0], { showHidden: true, depth: 5 }), JSON.stringify(ids[0]), String(Object.entries(ids[0])), ...messages];
  assert.ok(inspect(ids[0]).includes(pub[0]));
  assert.ok(messages.length > 30);
  for (const text of shown) {
    assert.ok(!/AGE-SECRET-KEY/i.test(text), text);
    for (const s of secrets) assert.ok(!text.toUpperCase().includes(s.slice(16, 40)), text);
  }
});
