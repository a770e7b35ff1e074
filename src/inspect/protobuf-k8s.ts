/**
 * A small schema-less protobuf reader (issue 13), enough to read Kubernetes' storage envelope
 * and ObjectMeta without generated code. (`protobuf.ts`, the reader's, decodes etcd's own
 * mvccpb.KeyValue and throws on damage; this one is general and never throws. Two small readers
 * for now, on purpose: merging them is an open point of issue 13.)
 *
 * Contract: `readMessage(buf)` splits one message into its fields, in wire order, and never
 * throws. Varints (wire type 0) come back as unsigned 64-bit `bigint`s, length-delimited fields
 * (2) as a Buffer view of their bytes, fixed64 (1) and fixed32 (5) as 8- and 4-byte views. Every
 * read is bounds-checked: a truncated varint, a varint longer than 10 bytes or above 2^64 − 1, a
 * length beyond the end, field number 0 or above 2^29 − 1, and the group wire types 3 and 4
 * (not used by Kubernetes) make the whole message `{ ok: false, error }`, so a caller never sees
 * a field read from misaligned bytes. Interpreting a field (string, int64, embedded message) is
 * the caller's job; `asString`, `asInt64` and `asBool` do it strictly (invalid UTF-8 is an error,
 * not a replacement character).
 */

export type ProtoField =
  | { field: number; wire: 0; value: bigint }
  | { field: number; wire: 1; value: Buffer }
  | { field: number; wire: 2; value: Buffer }
  | { field: number; wire: 5; value: Buffer };

export type ProtoResult<T> = { ok: true; value: T } | { ok: false; error: string };

const MAX_FIELD = 2 ** 29 - 1;
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Reads the varint at `pos`: its value and the position after it, or an error. */
export function readVarint(buf: Buffer, pos: number): ProtoResult<{ value: bigint; next: number }> {
  let value = 0n;
  for (let i = 0; i < 10; i++) {
    if (pos + i >= buf.length) return { ok: false, error: `truncated varint at byte ${pos}` };
    const b = buf[pos + i] as number;
    if (i === 9 && b > 1) return { ok: false, error: `varint above 64 bits at byte ${pos}` };
    value |= BigInt(b & 0x7f) << BigInt(7 * i);
    if ((b & 0x80) === 0) return { ok: true, value: { value, next: pos + i + 1 } };
  }
  return { ok: false, error: `varint longer than 10 bytes at byte ${pos}` };
}

/** All fields of one message, in the order they appear. */
export function readMessage(buf: Buffer): ProtoResult<ProtoField[]> {
  const fields: ProtoField[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const tag = readVarint(buf, pos);
    if (!tag.ok) return tag;
    const at = pos;
    pos = tag.value.next;
    const wire = Number(tag.value.value & 7n);
    const fieldBig = tag.value.value >> 3n;
    if (fieldBig === 0n || fieldBig > BigInt(MAX_FIELD)) return { ok: false, error: `invalid field number ${fieldBig} at byte ${at}` };
    const field = Number(fieldBig);
    if (wire === 0) {
      const v = readVarint(buf, pos);
      if (!v.ok) return v;
      fields.push({ field, wire: 0, value: v.value.value });
      pos = v.value.next;
    } else if (wire === 1 || wire === 5) {
      const size = wire === 1 ? 8 : 4;
      if (pos + size > buf.length) return { ok: false, error: `truncated fixed${size * 8} field ${field} at byte ${at}` };
      fields.push({ field, wire, value: buf.subarray(pos, pos + size) });
      pos += size;
    } else if (wire === 2) {
      const len = readVarint(buf, pos);
      if (!len.ok) return len;
      pos = len.value.next;
      if (len.value.value > BigInt(buf.length - pos)) return { ok: false, error: `field ${field} at byte ${at}: length ${len.value.value} beyond the end` };
      const end = pos + Number(len.value.value);
      fields.push({ field, wire: 2, value: buf.subarray(pos, end) });
      pos = end;
    } else {
      return { ok: false, error: `unsupported wire type ${wire} (field ${field}) at byte ${at}` };
    }
  }
  return { ok: true, value: fields };
}

/** A length-delimited field as strict UTF-8. */
export function asString(f: ProtoField): ProtoResult<string> {
  if (f.wire !== 2) return { ok: false, error: `field ${f.field}: wire type ${f.wire}, expected a string` };
  try {
    return { ok: true, value: utf8.decode(f.value) };
  } catch {
    return { ok: false, error: `field ${f.field}: not valid UTF-8` };
  }
}

/** A length-delimited field's bytes (an embedded message or `bytes`). */
export function asBytes(f: ProtoField): ProtoResult<Buffer> {
  if (f.wire !== 2) return { ok: false, error: `field ${f.field}: wire type ${f.wire}, expected bytes or a message` };
  return { ok: true, value: f.value };
}

/** A varint as a signed int64 (two's complement, as protobuf encodes negative int64). */
export function asInt64(f: ProtoField): ProtoResult<bigint> {
  if (f.wire !== 0) return { ok: false, error: `field ${f.field}: wire type ${f.wire}, expected a varint` };
  return { ok: true, value: BigInt.asIntN(64, f.value) };
}

/** A varint as a bool (any non-zero value is true, as protobuf decoders read it). */
export function asBool(f: ProtoField): ProtoResult<boolean> {
  if (f.wire !== 0) return { ok: false, error: `field ${f.field}: wire type ${f.wire}, expected a bool` };
  return { ok: true, value: f.value !== 0n };
}

/** A bigint as a JS number when it is safe, else its decimal string (so JSON output never rounds). */
export function safeNumber(v: bigint): number | string {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
}
