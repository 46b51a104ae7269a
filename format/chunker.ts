/**
 * Content-defined chunking: cutting a large body into `chunk` blobs whose
 * boundaries depend on the content, not on offsets, so that an edit in the
 * middle of a large artifact changes only the chunks around it.
 *
 * The algorithm is FastCDC's (Xia et al., 2016) gear hash with normalized
 * chunking, specified exactly here because chunk boundaries are part of the
 * store format: two writers must cut the same bytes at the same places, or
 * deduplication across versions is lost.
 *
 * ## The cut rule
 *
 * For parameters `{min, avg, max}` let `bits = round(log2(avg))`,
 * `maskS` = the top `bits + 2` bits of a 32-bit word set, `maskL` = the top
 * `bits - 2` bits set. A chunk starts at offset `s` with a hash `h = 0`. The
 * first `min` bytes are skipped (never hashed). Then for each byte `b` at
 * chunk offset `p = min, min + 1, …`:
 *
 * ```
 * h = (h * 2 + GEAR[b]) mod 2^32
 * cut after this byte (chunk length p + 1) when (h & (p < avg ? maskS : maskL)) == 0
 * ```
 *
 * A chunk that reaches `max` bytes is cut there. The last chunk of a body is
 * whatever remains, and may be shorter than `min`; an empty body has no chunk.
 *
 * ## The gear table
 *
 * `GEAR[i]` (for `i` in 0…255) is the first four bytes, read as a
 * little-endian unsigned 32-bit integer, of `SHA-256("capsa/gear/v1" ‖ i)`,
 * where `"capsa/gear/v1"` is ASCII and `i` is one byte. See
 * {@linkcode gearTable}.
 *
 * @example Chunking a body whole, or streamed in pieces
 * ```ts
 * import assert from "node:assert/strict";
 * import { Chunker, chunkBytes } from "./chunker.ts";
 *
 * const params = { min: 64 * 1024, avg: 256 * 1024, max: 1024 * 1024 };
 * const body = crypto.getRandomValues(new Uint8Array(60_000));
 * const whole = chunkBytes(body, params);
 *
 * const chunker = new Chunker(params);
 * const streamed = [...chunker.push(body.subarray(0, 1000)), ...chunker.push(body.subarray(1000))];
 * const last = chunker.finish();
 * if (last) streamed.push(last);
 * assert.deepEqual(whole.length === streamed.length, true);
 * ```
 *
 * @module
 */

import { InvalidArgumentError } from "../errors.ts";
import { hashBytes } from "./hashing.ts";

/** Chunking parameters, in bytes. */
export interface ChunkingParams {
  /** The smallest chunk (except a body's last one). */
  min: number;
  /** The target average: the point where the cut condition becomes easier. */
  avg: number;
  /** The largest chunk: a chunk that reaches it is cut there. */
  max: number;
}

/** The smallest `min` accepted: 64 bytes. */
export const MIN_CHUNK_BYTES = 64;

/** The largest `max` accepted: 64 MiB. */
export const MAX_CHUNK_BYTES = 64 * 1024 * 1024;

/** Sensible defaults for artifacts: 256 KiB / 1 MiB / 4 MiB. */
export const DEFAULT_CHUNKING: Readonly<ChunkingParams> = Object.freeze({
  min: 256 * 1024,
  avg: 1024 * 1024,
  max: 4 * 1024 * 1024,
});

/** The ASCII prefix hashed to derive the gear table (see the module doc). */
export const GEAR_TABLE_SEED = "capsa/gear/v1";

function deriveGear(): Int32Array {
  const seed = new TextEncoder().encode(GEAR_TABLE_SEED);
  const input = new Uint8Array(seed.length + 1);
  input.set(seed);
  const table = new Int32Array(256);
  for (let i = 0; i < 256; i++) {
    input[seed.length] = i;
    const digest = Uint8Array.fromHex(hashBytes("sha256", input));
    table[i] = new DataView(digest.buffer).getInt32(0, true);
  }
  return table;
}

// Held as Int32 so the inner loop stays in 32-bit integer arithmetic; the bits
// are those of the unsigned values the format specifies.
const GEAR = deriveGear();

/**
 * Returns a copy of the gear table: 256 unsigned 32-bit values derived as the
 * module doc says. Part of the format; other implementations can compare.
 *
 * @returns A fresh `Uint32Array` of 256 entries.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { gearTable } from "./chunker.ts";
 * assert.deepEqual(gearTable().length, 256);
 * ```
 */
export function gearTable(): Uint32Array {
  return new Uint32Array(GEAR.buffer.slice(0));
}

/**
 * Checks chunking parameters: integers with
 * `MIN_CHUNK_BYTES ≤ min < avg < max ≤ MAX_CHUNK_BYTES`.
 *
 * @param params The parameters to check.
 * @returns The same parameters, as a fresh frozen object.
 * @throws {InvalidArgumentError} naming the first rule broken.
 *
 * @example
 * ```ts
 * import { validateChunkingParams } from "./chunker.ts";
 * validateChunkingParams({ min: 2048, avg: 8192, max: 65536 }); // fine
 * try {
 *   validateChunkingParams({ min: 8192, avg: 4096, max: 65536 });
 * } catch (e) {
 *   console.log((e as Error).message);
 * }
 * ```
 */
export function validateChunkingParams(params: ChunkingParams): Readonly<ChunkingParams> {
  if (typeof params !== "object" || params === null) {
    throw new InvalidArgumentError("chunking parameters must be an object {min, avg, max}");
  }
  const { min, avg, max } = params;
  for (const [name, v] of [["min", min], ["avg", avg], ["max", max]] as const) {
    if (!Number.isSafeInteger(v)) {
      throw new InvalidArgumentError(`chunking ${name} must be an integer, got ${String(v)}`);
    }
  }
  if (min < MIN_CHUNK_BYTES) {
    throw new InvalidArgumentError(`chunking min must be at least ${MIN_CHUNK_BYTES}, got ${min}`);
  }
  if (max > MAX_CHUNK_BYTES) {
    throw new InvalidArgumentError(
      `chunking max must be at most ${MAX_CHUNK_BYTES} (64 MiB), got ${max}`,
    );
  }
  if (!(min < avg && avg < max)) {
    throw new InvalidArgumentError(
      `chunking parameters must satisfy min < avg < max, got min ${min}, avg ${avg}, max ${max}`,
    );
  }
  return Object.freeze({ min, avg, max });
}

function topBits(n: number): number {
  // The top n bits of a 32-bit word, as an Int32 bit pattern.
  return n >= 32 ? -1 : ~((1 << (32 - n)) - 1);
}

/**
 * A streaming content-defined chunker. Push the body's pieces in order (any
 * sizes), collect the chunks each push completes, then call
 * {@linkcode Chunker.finish} for the last one. The cut points are exactly
 * those of {@linkcode chunkBytes} on the whole body, however it was split.
 *
 * Memory: the chunker keeps at most `max` bytes of its own (the unfinished
 * chunk). A returned chunk that lies wholly inside one pushed piece is a view
 * of that piece (no copy): do not modify a pushed piece while holding its
 * chunks. A chunk that spans pieces is a fresh array.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Chunker } from "./chunker.ts";
 * const chunker = new Chunker({ min: 64, avg: 256, max: 1024 });
 * let total = 0;
 * for (let i = 0; i < 10; i++) {
 *   for (const chunk of chunker.push(crypto.getRandomValues(new Uint8Array(777)))) {
 *     total += chunk.length;
 *   }
 * }
 * total += chunker.finish()?.length ?? 0;
 * assert.deepEqual(total, 7770);
 * ```
 */
export class Chunker {
  readonly #min: number;
  readonly #avg: number;
  readonly #max: number;
  readonly #maskS: number;
  readonly #maskL: number;
  // The unfinished chunk: its first #held bytes live in #buffer.
  #buffer: Uint8Array | undefined;
  #held = 0;
  // The gear hash of the unfinished chunk (meaningful once #held > min).
  #hash = 0;
  #finished = false;

  /**
   * Starts chunking a new body.
   *
   * @param params The chunking parameters (checked with {@linkcode validateChunkingParams}).
   * @throws {InvalidArgumentError} when the parameters are invalid.
   */
  constructor(params: ChunkingParams) {
    const p = validateChunkingParams(params);
    this.#min = p.min;
    this.#avg = p.avg;
    this.#max = p.max;
    const bits = Math.round(Math.log2(p.avg));
    this.#maskS = topBits(bits + 2);
    this.#maskL = topBits(Math.max(1, bits - 2));
  }

  /** How many bytes of the unfinished chunk the chunker holds (always less than `max`). */
  get buffered(): number {
    return this.#held;
  }

  /** The chunking parameters in use. */
  get params(): Readonly<ChunkingParams> {
    return { min: this.#min, avg: this.#avg, max: this.#max };
  }

  /**
   * Scans `data` from `from` for the end of a chunk that already holds
   * `held` bytes (with gear hash `this.#hash`). Returns the index in `data`
   * just past the cut, or -1 when `data` ends first; either way `this.#hash`
   * holds the hash at the stop.
   */
  #scan(data: Uint8Array, from: number, held: number): number {
    const end = data.length;
    // The chunk offset of data[i] is base + i.
    const base = held - from;
    let i = Math.max(from, this.#min - base);
    if (i >= end) return -1; // still inside the skipped first min bytes
    let h = this.#hash;
    const gear = GEAR;
    // Normalized chunking: the harder mask up to avg, the easier one up to max.
    const avgEnd = Math.min(end, this.#avg - base);
    const maskS = this.#maskS;
    for (; i < avgEnd; i++) {
      h = ((h << 1) + gear[data[i]!]!) | 0;
      if ((h & maskS) === 0) {
        this.#hash = h;
        return i + 1;
      }
    }
    const maxEnd = Math.min(end, this.#max - base);
    const maskL = this.#maskL;
    for (; i < maxEnd; i++) {
      h = ((h << 1) + gear[data[i]!]!) | 0;
      if ((h & maskL) === 0) {
        this.#hash = h;
        return i + 1;
      }
    }
    this.#hash = h;
    return base + i === this.#max ? i : -1;
  }

  #hold(bytes: Uint8Array): void {
    if (this.#buffer === undefined || this.#buffer.length < this.#held + bytes.length) {
      const grown = new Uint8Array(
        Math.min(this.#max, Math.max(this.#held + bytes.length, 2 * (this.#buffer?.length ?? 0))),
      );
      if (this.#buffer !== undefined) grown.set(this.#buffer.subarray(0, this.#held));
      this.#buffer = grown;
    }
    this.#buffer.set(bytes, this.#held);
    this.#held += bytes.length;
  }

  /**
   * Adds the next piece of the body.
   *
   * @param bytes The next piece (any length, including zero).
   * @returns The chunks this piece completed, in order (often none).
   * @throws {InvalidArgumentError} after {@linkcode Chunker.finish}.
   */
  push(bytes: Uint8Array): Uint8Array[] {
    if (this.#finished) throw new InvalidArgumentError("chunker already finished");
    const chunks: Uint8Array[] = [];
    let start = 0;
    if (this.#held > 0) {
      // Continue the chunk begun in earlier pieces.
      const cut = this.#scan(bytes, 0, this.#held);
      if (cut < 0) {
        this.#hold(bytes);
        return chunks;
      }
      const chunk = new Uint8Array(this.#held + cut);
      chunk.set(this.#buffer!.subarray(0, this.#held));
      chunk.set(bytes.subarray(0, cut), this.#held);
      chunks.push(chunk);
      this.#held = 0;
      this.#hash = 0;
      start = cut;
    }
    while (start < bytes.length) {
      const cut = this.#scan(bytes, start, 0);
      if (cut < 0) {
        this.#hold(bytes.subarray(start));
        break;
      }
      chunks.push(bytes.subarray(start, cut));
      this.#hash = 0;
      start = cut;
    }
    return chunks;
  }

  /**
   * Ends the body.
   *
   * @returns The last chunk (possibly shorter than `min`), or `undefined` when
   *   nothing is left (an empty body, or one that ended exactly on a cut).
   * @throws {InvalidArgumentError} when called twice.
   */
  finish(): Uint8Array | undefined {
    if (this.#finished) throw new InvalidArgumentError("chunker already finished");
    this.#finished = true;
    if (this.#held === 0) return undefined;
    const last = this.#buffer!.slice(0, this.#held);
    this.#buffer = undefined;
    this.#held = 0;
    return last;
  }
}

/**
 * Finds the cut points of a whole body: the end offset of every chunk, in
 * order (the last one is `bytes.length` unless the body is empty).
 *
 * @param bytes The whole body.
 * @param params The chunking parameters.
 * @returns The chunks' end offsets.
 * @throws {InvalidArgumentError} when the parameters are invalid.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { cutPoints } from "./chunker.ts";
 * const ends = cutPoints(new Uint8Array(5000), { min: 64, avg: 256, max: 1024 });
 * assert.deepEqual(ends.at(-1), 5000);
 * ```
 */
export function cutPoints(bytes: Uint8Array, params: ChunkingParams): number[] {
  const ends: number[] = [];
  let offset = 0;
  for (const chunk of chunkBytes(bytes, params)) {
    offset += chunk.length;
    ends.push(offset);
  }
  return ends;
}

/**
 * Chunks a whole body held in memory. Every chunk but the last is a view of
 * `bytes`; the last is a copy.
 *
 * @param bytes The whole body.
 * @param params The chunking parameters.
 * @returns The chunks, in order (none for an empty body).
 * @throws {InvalidArgumentError} when the parameters are invalid.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { chunkBytes } from "./chunker.ts";
 * const chunks = chunkBytes(new Uint8Array(100), { min: 64, avg: 256, max: 1024 });
 * assert.deepEqual(chunks.length, 1);
 * ```
 */
export function chunkBytes(bytes: Uint8Array, params: ChunkingParams): Uint8Array[] {
  const chunker = new Chunker(params);
  const chunks = chunker.push(bytes);
  const last = chunker.finish();
  if (last !== undefined) chunks.push(last);
  return chunks;
}
