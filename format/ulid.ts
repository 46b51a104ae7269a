/**
 * Time-ordered ids (ULIDs) for packs and manifests.
 *
 * A ULID is 128 bits: a 48-bit big-endian count of milliseconds since the Unix
 * epoch, then 80 random bits, written as 26 characters of Crockford's base32
 * in lower case (`0123456789abcdefghjkmnpqrstvwxyz`; the first character is at
 * most `7`), because ids appear in Location keys, which are lower case
 * (`docs/FORMAT.md` §1, §5.3). Digits sort before letters in lower case as in
 * upper case, so ids still sort as their creation times do, and a listing of
 * `packs/` that starts after a given id returns the packs written later.
 *
 * Within one {@linkcode UlidGenerator} ids are strictly increasing: several ids
 * in the same millisecond (or after the clock stepped back) keep the last time
 * and add one to the random part. Across processes and hosts the order is only
 * that of their clocks; readers allow an overlap for that.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isUlid, ulid, ulidTime } from "./ulid.ts";
 * const id = ulid();
 * assert.deepEqual([isUlid(id), Math.abs(ulidTime(id) - Date.now()) < 1000], [true, true]);
 * ```
 *
 * @module
 */

import { InvalidArgumentError } from "../errors.ts";

/** The length of a ULID in characters. */
export const ULID_LENGTH = 26;

/** The largest time a ULID can hold: 2^48 - 1 milliseconds (year 10889). */
export const MAX_ULID_TIME = 2 ** 48 - 1;

const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";
const ULID_RE = /^[0-7][0-9a-hjkmnp-tv-z]{25}$/;
const RANDOM_BYTES = 10;

/** Options of {@linkcode UlidGenerator}. */
export interface UlidGeneratorOptions {
  /** Milliseconds since the epoch (default `Date.now`). */
  clock?: () => number;
  /** Fills an array with random bytes (default `crypto.getRandomValues`). */
  random?: (bytes: Uint8Array) => void;
}

function encodeTime(time: number): string {
  let out = "";
  for (let i = 9; i >= 0; i--) {
    out += ALPHABET[Math.floor(time / 32 ** i) % 32];
  }
  return out;
}

function encodeRandom(bytes: Uint8Array): string {
  // 80 bits, most significant first, 5 bits per character.
  let out = "";
  let acc = 0;
  let bits = 0;
  for (const b of bytes) {
    acc = ((acc << 8) | b) & 0xfff;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += ALPHABET[(acc >>> bits) & 31];
    }
  }
  return out;
}

/** Adds one to a big-endian number; returns false when it wrapped to zero. */
function increment(bytes: Uint8Array): boolean {
  for (let i = bytes.length - 1; i >= 0; i--) {
    if (bytes[i] !== 0xff) {
      bytes[i] = bytes[i]! + 1;
      return true;
    }
    bytes[i] = 0;
  }
  return false;
}

/**
 * Makes strictly increasing ULIDs from a clock and a random source, both
 * injectable for tests.
 *
 * @example A test that owns the clock
 * ```ts
 * import assert from "node:assert/strict";
 * import { UlidGenerator, ulidTime } from "./ulid.ts";
 * let now = 1_700_000_000_000;
 * const ids = new UlidGenerator({ clock: () => now });
 * const a = ids.next();
 * const b = ids.next(); // same millisecond: still greater
 * now -= 5000; // the clock steps back
 * const c = ids.next();
 * assert.deepEqual([a < b && b < c, ulidTime(c)], [true, 1700000000000]);
 * ```
 */
export class UlidGenerator {
  readonly #clock: () => number;
  readonly #random: (bytes: Uint8Array) => void;
  #lastTime = -1;
  readonly #lastRandom = new Uint8Array(RANDOM_BYTES);

  /**
   * Creates a generator.
   *
   * @param options The clock and the random source.
   */
  constructor(options: UlidGeneratorOptions = {}) {
    this.#clock = options.clock ?? Date.now;
    this.#random = options.random ?? ((b) => crypto.getRandomValues(b));
  }

  /**
   * Makes the next id.
   *
   * @returns A ULID greater than every id this generator made before.
   * @throws {InvalidArgumentError} when the clock gives a time a ULID cannot hold.
   */
  next(): string {
    const now = this.#clock();
    if (!Number.isSafeInteger(now) || now < 0 || now > MAX_ULID_TIME) {
      throw new InvalidArgumentError(
        `the clock gave ${now}: a ULID time is an integer from 0 to ${MAX_ULID_TIME} ms`,
      );
    }
    if (now > this.#lastTime) {
      this.#lastTime = now;
      this.#random(this.#lastRandom);
    } else if (!increment(this.#lastRandom)) {
      // 2^80 ids in one millisecond: borrow the next one.
      if (this.#lastTime >= MAX_ULID_TIME) {
        throw new InvalidArgumentError("ULID space exhausted");
      }
      this.#lastTime++;
      this.#random(this.#lastRandom);
    }
    return encodeTime(this.#lastTime) + encodeRandom(this.#lastRandom);
  }
}

const defaultGenerator = new UlidGenerator();

/**
 * Makes a ULID from the system clock, strictly greater than every ULID this
 * function returned before in this process.
 *
 * @returns A new ULID.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ulid } from "./ulid.ts";
 * const a = ulid();
 * const b = ulid();
 * assert.deepEqual(a < b, true);
 * ```
 */
export function ulid(): string {
  return defaultGenerator.next();
}

/**
 * Tells whether a string is a canonical ULID: 26 characters of lower-case
 * Crockford base32, the first at most `7`. Upper case is refused: the format
 * has one spelling of each id, so ids compare and sort as plain strings.
 *
 * @param value Any value.
 * @returns `true` for a canonical ULID.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isUlid } from "./ulid.ts";
 * assert.deepEqual([isUlid("01arz3ndektsv4rrffq69g5fav"), isUlid("01ARZ3NDEKTSV4RRFFQ69G5FAV")], [true, false]);
 * ```
 */
export function isUlid(value: unknown): value is string {
  return typeof value === "string" && value.length === ULID_LENGTH && ULID_RE.test(value);
}

/**
 * Reads the time of a ULID.
 *
 * @param id A ULID.
 * @returns Its time, in milliseconds since the epoch.
 * @throws {InvalidArgumentError} when `id` is not a canonical ULID.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ulidTime } from "./ulid.ts";
 * assert.deepEqual(ulidTime("01arz3ndektsv4rrffq69g5fav"), 1469922850259);
 * ```
 */
export function ulidTime(id: string): number {
  if (!isUlid(id)) {
    throw new InvalidArgumentError(`not a ULID: ${JSON.stringify(String(id).slice(0, 40))}`);
  }
  let time = 0;
  for (let i = 0; i < 10; i++) time = time * 32 + ALPHABET.indexOf(id[i]!);
  return time;
}

/**
 * The smallest ULID of a given millisecond: every ULID made at `time` or later
 * sorts at or after it. Use it to list what was written after a time, minus a
 * safety overlap for clock skew.
 *
 * @param time Milliseconds since the epoch (clamped to the range a ULID holds).
 * @returns The ULID with that time and an all-zero random part.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ulidFloor } from "./ulid.ts";
 * assert.deepEqual(ulidFloor(1469922850259), "01arz3ndek0000000000000000");
 * ```
 */
export function ulidFloor(time: number): string {
  const t = Math.min(MAX_ULID_TIME, Math.max(0, Math.floor(Number.isFinite(time) ? time : 0)));
  return encodeTime(t) + "0".repeat(16);
}
