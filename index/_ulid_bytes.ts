/**
 * Manifest ids as the index stores them (schema version 4): a ULID's 128
 * bits as 16 bytes, big-endian, instead of its 26 characters. Byte order is
 * the ids' text order (both are the same big-endian number), so "the greatest
 * manifest id" is the same row either way.
 *
 * Only canonical ids convert: 26 characters of the lower-case Crockford
 * alphabet with a first character of at most `7` (`format/ulid.ts`), so
 * {@linkcode ulidFromBytes} gives back exactly the text that went in.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ulidFromBytes, ulidToBytes } from "./_ulid_bytes.ts";
 * const id = "01arz3ndektsv4rrffq69g5fav";
 * assert.deepEqual(ulidFromBytes(ulidToBytes(id)), id);
 * ```
 *
 * @module
 */

import { InvalidArgumentError } from "../errors.ts";

const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";
const CODES = new Uint8Array(ALPHABET.length);
for (let i = 0; i < ALPHABET.length; i++) CODES[i] = ALPHABET.charCodeAt(i);
/** Character code → 5-bit value, 255 for a character outside the alphabet. */
const VALUES = new Uint8Array(128).fill(255);
for (let i = 0; i < ALPHABET.length; i++) VALUES[ALPHABET.charCodeAt(i)] = i;

/**
 * Writes a ULID's 16 bytes into `out` at `at`.
 * @param id The ULID (26 characters).
 * @param out Where to write.
 * @param at The offset.
 * @returns `false` (and `out` partly written) when `id` is not a canonical ULID.
 */
export function ulidInto(id: string, out: Uint8Array, at: number): boolean {
  if (id.length !== 26) return false;
  const first = id.charCodeAt(0);
  let acc = first < 128 ? VALUES[first]! : 255;
  if (acc > 7) return false;
  let bits = 3;
  let o = at;
  for (let i = 1; i < 26; i++) {
    const c = id.charCodeAt(i);
    const v = c < 128 ? VALUES[c]! : 255;
    if (v === 255) return false;
    acc = ((acc << 5) | v) & 0x1fff;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >>> bits) & 0xff;
    }
  }
  return true;
}

/**
 * A ULID as 16 bytes.
 * @param id The ULID.
 * @returns Its bytes.
 * @throws {InvalidArgumentError} when `id` is not a canonical ULID.
 */
export function ulidToBytes(id: string): Uint8Array {
  const out = new Uint8Array(16);
  if (!ulidInto(id, out, 0)) {
    throw new InvalidArgumentError(`manifest id ${JSON.stringify(id)} is not a ULID`);
  }
  return out;
}

const TEXT = new TextDecoder();
const CHARS = new Uint8Array(26);

/**
 * The ULID text of 16 bytes.
 * @param bytes The bytes (16).
 * @returns The 26 characters.
 * @throws {InvalidArgumentError} when `bytes` is not 16 bytes long.
 */
export function ulidFromBytes(bytes: Uint8Array): string {
  if (bytes.length !== 16) {
    throw new InvalidArgumentError(`a manifest id is 16 bytes, got ${bytes.length}`);
  }
  // 128 bits after two zero bits: 130 bits, 26 characters of 5.
  let acc = 0;
  let bits = 2;
  let o = 0;
  for (let i = 0; i < 16; i++) {
    acc = ((acc << 8) | bytes[i]!) & 0xfff;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      CHARS[o++] = CODES[(acc >>> bits) & 31]!;
    }
  }
  return TEXT.decode(CHARS);
}
