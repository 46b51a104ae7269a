/**
 * zstd compression of stored bytes (docs/FORMAT.md §5.5.7): blob bodies in
 * packs, pack TOCs and manifest log entries. zstd comes from `node:zlib`
 * (built into Deno), so there is no dependency.
 *
 * Two rules hold everywhere:
 *
 * - bytes are stored compressed only when that saves at least 1/16 of their
 *   raw size ({@linkcode compressIfWorthIt}), so incompressible data costs
 *   nothing but the attempt;
 * - a reader always knows the raw length before it decompresses, and
 *   {@linkcode decompressExactly} never produces more than that many bytes:
 *   a stream that would decompress larger (a "zstd bomb"), that is damaged,
 *   or that comes out shorter is a {@linkcode CorruptObjectError}.
 *
 * @example Round trip
 * ```ts
 * import assert from "node:assert/strict";
 * import { compressIfWorthIt, decompressExactly } from "./compression.ts";
 *
 * const raw = new TextEncoder().encode("abc ".repeat(100));
 * const stored = compressIfWorthIt(raw, 3)!;
 * assert.ok(stored.length < raw.length);
 * assert.deepEqual(decompressExactly("packs/p", stored, raw.length, "blob"), raw);
 * ```
 *
 * @module
 */

import { constants, zstdCompressSync, zstdDecompressSync } from "node:zlib";
import { CorruptObjectError, InvalidArgumentError } from "../errors.ts";

/** How a stored blob's bytes are encoded: as they are, or one zstd frame. */
export type BlobCompression = "none" | "zstd";

/** The compression ids of a pack's blob entries (docs/FORMAT.md §5.5.4). */
export const COMPRESSION_IDS: Readonly<Record<BlobCompression, number>> = Object.freeze({
  none: 0,
  zstd: 1,
});

/** The zstd levels a store may be configured with. */
export const ZSTD_LEVELS: { readonly min: number; readonly max: number } = Object.freeze({
  min: 1,
  max: 19,
});

/** The four bytes every zstd frame starts with (`28 B5 2F FD`). */
export const ZSTD_MAGIC: Uint8Array = Uint8Array.of(0x28, 0xb5, 0x2f, 0xfd);

/**
 * Tells whether bytes start with the zstd frame magic.
 *
 * @param bytes Any bytes.
 * @returns `true` when their first four bytes are `28 B5 2F FD`.
 */
export function hasZstdMagic(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x28 && bytes[1] === 0xb5 && bytes[2] === 0x2f &&
    bytes[3] === 0xfd;
}

/**
 * The largest stored size at which compression is kept: it must save at
 * least 1/16 of the raw size, i.e. `stored ≤ raw − ceil(raw / 16)`.
 *
 * @param rawLength The raw size.
 * @returns The largest acceptable compressed size (−1 when none is).
 */
export function maxCompressedLength(rawLength: number): number {
  return rawLength - Math.ceil(rawLength / 16);
}

/**
 * Compresses bytes with zstd at `level` and keeps the result only when it
 * saves at least 1/16 of the raw size.
 *
 * @param raw The raw bytes.
 * @param level The zstd level ({@linkcode ZSTD_LEVELS}).
 * @returns The zstd frame, or `undefined` when the bytes should be stored as they are.
 * @throws {InvalidArgumentError} for a level out of range.
 *
 * @example Random bytes stay as they are
 * ```ts
 * import assert from "node:assert/strict";
 * import { compressIfWorthIt } from "./compression.ts";
 * const random = crypto.getRandomValues(new Uint8Array(4096));
 * assert.deepEqual(compressIfWorthIt(random, 3), undefined);
 * ```
 */
export function compressIfWorthIt(raw: Uint8Array, level: number): Uint8Array | undefined {
  if (!Number.isSafeInteger(level) || level < ZSTD_LEVELS.min || level > ZSTD_LEVELS.max) {
    throw new InvalidArgumentError(
      `zstd level must be an integer in [${ZSTD_LEVELS.min}, ${ZSTD_LEVELS.max}], got ${level}`,
    );
  }
  // Nothing this small can save 1/16 once the frame header is paid for.
  if (raw.length < 32) return undefined;
  if (raw.length <= ESTIMATE_TO && !estimateMayShrink(raw)) return undefined;
  if (raw.length >= PROBE_FROM && !probeShrinks(raw, level)) return undefined;
  const out = zstd(raw, level);
  if (out.length > maxCompressedLength(raw.length)) return undefined;
  return out;
}

/**
 * Bodies up to this size are estimated ({@linkcode estimateMayShrink}) before
 * zstd is tried: for them a zstd call costs about 50 µs whatever the bytes
 * (most of it setting up the compressor), the estimate 6–25 µs.
 */
export const ESTIMATE_TO = 8 * 1024;

/**
 * The fewest bytes a zstd frame of Huffman-coded literals adds to them: a
 * frame header (6), a block header (3), a literals section header (3).
 */
const ZSTD_LEAST_OVERHEAD = 12;

/** The estimate's byte histogram and table of sampled 4-byte sequences (reused, one thread). */
const HISTOGRAM = new Int32Array(256);
const SEEN = new Int32Array(8192);

/**
 * Whether zstd could save the 1/16 that storing a small body compressed
 * requires, estimated in one pass over it, without compressing (FORMAT.md
 * §5.5.7: storing a blob as it is is always the writer's choice). Two things
 * let zstd shrink bytes: a skewed byte distribution (its Huffman-coded
 * literals cannot take fewer bits than the bytes' order-0 entropy, so
 * `entropy / 8` is a lower bound of their size), and repeated sequences (its
 * matches). Repeats are sampled: one position in 8, picked by a hash of the
 * 4 bytes ending there (so a repeated region is sampled at the same places
 * both times), is looked up among the sampled sequences seen before. The
 * body is taken as incompressible only when the entropy bound plus the
 * least a frame adds, less twice the bytes the sampled repeats stand for,
 * still exceeds the largest size worth storing. Random bytes (entropy ≈ 7.8–8 bits a byte, no
 * repeats) are never compressed; text, base64 or hex, and a body repeating a
 * part of itself, are tried. A body that is compressible in some other way
 * is stored as it is: a missed saving, never a wrong byte.
 *
 * @param raw The raw bytes (at most {@linkcode ESTIMATE_TO} long).
 * @returns `false` when zstd cannot be expected to save 1/16.
 */
export function estimateMayShrink(raw: Uint8Array): boolean {
  const n = raw.length;
  const histogram = HISTOGRAM;
  const seen = SEEN;
  histogram.fill(0);
  seen.fill(0);
  let v = 0;
  let sampled = 0;
  let repeated = 0;
  for (let i = 0; i < n; i++) {
    const b = raw[i]!;
    histogram[b]!++;
    v = (v << 8) | b; // the last 4 bytes
    const h = Math.imul(v, 0x9e3779b1);
    if (h >>> 29 === 0 && i >= 3) {
      sampled++;
      const slot = (h >>> 16) & 8191;
      const was = seen[slot]!;
      if (was === (v | 1)) repeated++; // (| 1: 0 marks an empty slot; a rare false repeat only costs a try)
      else if (was === 0) seen[slot] = v | 1;
    }
  }
  let bits = 0;
  for (let s = 0; s < 256; s++) {
    const c = histogram[s]!;
    if (c !== 0) bits -= c * Math.log2(c / n);
  }
  const repeatedBytes = sampled === 0 ? 0 : 2 * n * repeated / sampled;
  return bits / 8 + ZSTD_LEAST_OVERHEAD - repeatedBytes <= maxCompressedLength(n);
}

/** Bodies at least this large are probed before they are compressed whole. */
const PROBE_FROM = 256 * 1024;
/** The size of each probe sample. */
const PROBE_BYTES = 16 * 1024;

/**
 * Whether any of three samples of `raw` (its start, middle and end) shrinks
 * by at least 1/64 under zstd. When none does — random data, media, archives,
 * already-compressed files — the whole cannot be expected to save the 1/16
 * that storing it compressed requires, and compressing it whole (with an
 * output buffer as large as the input) would be paid for nothing: about 15 %
 * of the ingest of a large random body. A body that is incompressible at all
 * three places but compressible elsewhere is stored as it is: a missed
 * saving, never a wrong byte.
 *
 * @param raw The raw bytes (at least {@linkcode PROBE_FROM} long).
 * @param level The zstd level.
 * @returns `true` when compressing the whole is worth trying.
 */
function probeShrinks(raw: Uint8Array, level: number): boolean {
  for (const at of [0, (raw.length - PROBE_BYTES) >>> 1, raw.length - PROBE_BYTES]) {
    const sample = raw.subarray(at, at + PROBE_BYTES);
    if (zstd(sample, level).length <= PROBE_BYTES - PROBE_BYTES / 64) return true;
  }
  return false;
}

/** One zstd frame of `raw` (no checksum, the content size in its header). */
function zstd(raw: Uint8Array, level: number): Uint8Array {
  const out = zstdCompressSync(raw, {
    // One output buffer as large as the input: the default (16 KiB pieces, joined at the end)
    // allocates and copies the output twice, which halves the speed on incompressible data.
    chunkSize: Math.max(64, raw.length),
    params: {
      [constants.ZSTD_c_compressionLevel]: level,
      [constants.ZSTD_c_checksumFlag]: 0,
      [constants.ZSTD_c_contentSizeFlag]: 1,
    },
  });
  return new Uint8Array(out.buffer, out.byteOffset, out.length);
}

/**
 * Decompresses a zstd stream that must yield exactly `rawLength` bytes.
 * Never allocates more than `rawLength` bytes of output: a stream that would
 * decompress larger is refused as soon as it passes the bound.
 *
 * @param key The object's key, named in errors.
 * @param stored The stored (compressed) bytes.
 * @param rawLength The raw length the format recorded.
 * @param what What the bytes are, for errors (e.g. "blob 1f2e… at offset 16").
 * @returns The raw bytes.
 * @throws {CorruptObjectError} when the stream is damaged, larger or smaller than `rawLength`.
 *
 * @example A stream that decompresses larger than announced is refused
 * ```ts
 * import assert from "node:assert/strict";
 * import { compressIfWorthIt, decompressExactly } from "./compression.ts";
 * import { CorruptObjectError } from "../errors.ts";
 * const bomb = compressIfWorthIt(new Uint8Array(1 << 20), 3)!;
 * assert.throws(() => decompressExactly("packs/p", bomb, 100, "blob"), CorruptObjectError);
 * ```
 */
export function decompressExactly(
  key: string,
  stored: Uint8Array,
  rawLength: number,
  what: string,
): Uint8Array {
  let out: Uint8Array;
  try {
    // maxOutputLength must be ≥ 1; a zero-length raw never is stored compressed anyway. One
    // output piece of the announced size (plus the byte that detects a longer stream): with the
    // default 16 KiB pieces, joining them cost more than the decompression (2.7 against 8.8 ms
    // for a 1.4 MB TOC).
    const b = zstdDecompressSync(stored, {
      maxOutputLength: Math.max(1, rawLength),
      chunkSize: Math.max(64, rawLength + 1),
    });
    out = new Uint8Array(b.buffer, b.byteOffset, b.length);
  } catch (cause) {
    const code = (cause as { code?: string }).code;
    const reason = code === "ERR_BUFFER_TOO_LARGE"
      ? `decompresses to more than its raw length ${rawLength}`
      : `does not decompress (${(cause as Error).message})`;
    throw new CorruptObjectError(key, `${what}: zstd stream ${reason}`, { cause });
  }
  if (out.length !== rawLength) {
    throw new CorruptObjectError(
      key,
      `${what}: zstd stream decompresses to ${out.length} bytes, its raw length is ${rawLength}`,
    );
  }
  return out;
}
