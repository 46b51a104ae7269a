/**
 * Deterministic test data, the one generator every test uses.
 *
 * @module
 */

/**
 * A seeded xorshift32 generator: the same seed always gives the same
 * sequence. Seed 0 (which xorshift cannot use) is mapped to a constant of its
 * own, so that it does not repeat seed 1.
 */
export class Xorshift {
  #x: number;
  /** @param seed Any number; its low 32 bits are used. */
  constructor(seed: number) {
    this.#x = (seed >>> 0) || 0x9e3779b9;
  }
  /** @returns The next 32-bit unsigned value. */
  next(): number {
    let x = this.#x;
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    this.#x = x;
    return x;
  }
  /**
   * Fills `out` with the next values, four bytes (little-endian) per value,
   * the last 0–3 bytes one value each.
   * @param out The array to fill.
   * @returns `out`.
   */
  fill<T extends Uint8Array>(out: T): T {
    const words = out.length >>> 2;
    const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
    for (let i = 0; i < words; i++) view.setUint32(i * 4, this.next(), true);
    for (let i = words * 4; i < out.length; i++) out[i] = this.next() & 0xff;
    return out;
  }
}

/**
 * Pseudo-random bytes from a seed: the same seed and size always give the same
 * bytes, different seeds different bytes. The chunker's pinned cut points
 * (`format/chunker_test.ts`) are computed on these bytes.
 * @param seed Any number.
 * @param size How many bytes.
 * @returns The bytes.
 */
export function body(seed: number, size: number): Uint8Array<ArrayBuffer> {
  return new Xorshift(seed).fill(new Uint8Array(size));
}
