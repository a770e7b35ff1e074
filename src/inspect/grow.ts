/**
 * `grown(a, n)`: a typed array of the same kind as `a`, `n` long (n ≥ a.length), holding a's
 * values first and zeros after: how the column tables of the key scans (`slot-table.ts`,
 * `key-positions.ts`) grow.
 */
type Column = Float64Array<ArrayBuffer> | Int32Array<ArrayBuffer> | Uint32Array<ArrayBuffer> | Uint16Array<ArrayBuffer> | Uint8Array<ArrayBuffer>;

export function grown<T extends Column>(a: T, n: number): T {
  const b = new (a.constructor as new (length: number) => T)(n);
  b.set(a);
  return b;
}
