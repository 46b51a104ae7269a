/**
 * Deterministic test data shared by the cross-cutting tests.
 */

/**
 * Pseudo-random bytes from a seed (xorshift32): the same seed and size always
 * give the same bytes, different seeds different bytes.
 * @param seed Any number.
 * @param size How many bytes.
 * @returns The bytes.
 */
export function body(seed: number, size: number): Uint8Array {
  const out = new Uint8Array(size);
  let x = seed * 2654435761 >>> 0 || 7;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x;
  }
  return out;
}
