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

import {
  constants,
  createZstdCompress,
  createZstdDecompress,
  zstdCompressSync,
  zstdDecompressSync,
} from "node:zlib";
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
 * @param scratch Where to write them, reused from call to call
 *   ({@linkcode DecompressScratch}): the result is then a view of it, valid
 *   until its next use. Without one, a new buffer.
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
  scratch?: DecompressScratch,
): Uint8Array {
  if (scratch !== undefined && zstdHandleWorks()) {
    const z = createZstdDecompress();
    try {
      const direct = zstdHandleOf(z);
      if (direct !== undefined) {
        return decompressInto(key, stored, rawLength, what, scratch, direct);
      }
    } finally {
      z.destroy();
    }
  }
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
    throw code === "ERR_BUFFER_TOO_LARGE"
      ? tooLong(key, what, rawLength, cause)
      : damaged(key, what, cause);
  }
  if (out.length !== rawLength) throw tooShort(key, what, out.length, rawLength);
  return out;
}

function tooLong(key: string, what: string, rawLength: number, cause?: unknown) {
  return new CorruptObjectError(
    key,
    `${what}: zstd stream decompresses to more than its raw length ${rawLength}`,
    { cause },
  );
}

function damaged(key: string, what: string, cause: unknown) {
  return new CorruptObjectError(
    key,
    `${what}: zstd stream does not decompress (${(cause as Error).message})`,
    { cause },
  );
}

function tooShort(key: string, what: string, length: number, rawLength: number) {
  return new CorruptObjectError(
    key,
    `${what}: zstd stream decompresses to ${length} bytes, its raw length is ${rawLength}`,
  );
}

/**
 * A buffer that {@linkcode decompressExactly} writes into and returns a view
 * of, reused from one call to the next: for a caller that decompresses many
 * large streams one after the other and keeps none of their bytes (a
 * rebuild decoding every pack's TOC into strings and numbers). On this kind
 * of VM the first touch of a page is dear: the one-shot API's fresh output
 * for each TOC cost 0.5 s of a 200,000-file rebuild, writing into one reused
 * buffer 0.14 s (docs/DESIGN.md §5.3). The view is valid until the next call
 * with the same scratch.
 */
export class DecompressScratch {
  /** The buffer (grown as needed, up to {@linkcode SCRATCH_MAX_BYTES} and a byte). */
  buffer: Uint8Array = new Uint8Array(0);
}

/**
 * Streams whose raw length is above this are decompressed into a buffer of
 * their own even when a scratch is given (through the same handle, held to
 * the same rules): a scratch keeps at most this much (a full pack's TOC,
 * docs/DESIGN.md §4.8).
 */
export const SCRATCH_MAX_BYTES = 16 * 1024 * 1024;

/** zstd's flush directives (`ZSTD_e_continue`, `ZSTD_e_end`), as the handle takes them. */
export const ZSTD_CONTINUE = 0;
/** See {@linkcode ZSTD_CONTINUE}. */
export const ZSTD_END = 2;

function decompressInto(
  key: string,
  stored: Uint8Array,
  rawLength: number,
  what: string,
  scratch: DecompressScratch,
  { handle, state }: ZstdHandle,
): Uint8Array {
  // One byte more than announced: a stream that fills it is longer than its raw length.
  const room = rawLength + 1;
  // A buffer above the scratch's bound is one of its own (rare, and not kept with the scratch).
  const kept = room <= SCRATCH_MAX_BYTES + 1;
  if (kept && scratch.buffer.length < room) {
    scratch.buffer = new Uint8Array(
      Math.min(Math.max(room, 2 * scratch.buffer.length), SCRATCH_MAX_BYTES + 1),
    );
  }
  const out = kept ? scratch.buffer : new Uint8Array(room);
  let produced = 0;
  let inOffset = 0;
  let inLength = stored.length;
  try {
    // zstd takes all of its input while it has room to write (a few turns at most; bounded).
    for (let turn = 0; turn < 64; turn++) {
      handle.writeSync(ZSTD_CONTINUE, stored, inOffset, inLength, out, produced, room - produced);
      const [outLeft, inLeft] = [state[0]!, state[1]!];
      produced = room - outLeft;
      if (produced > rawLength) throw tooLong(key, what, rawLength);
      inOffset += inLength - inLeft;
      inLength = inLeft;
      if (inLeft === 0) break;
    }
  } catch (e) {
    throw e instanceof CorruptObjectError ? e : damaged(key, what, e);
  }
  if (inLength !== 0 || produced !== rawLength) throw tooShort(key, what, produced, rawLength);
  return out.subarray(0, rawLength);
}

/**
 * The synchronous handle under a node:zlib stream (`writeSync(flush, input,
 * inOffset, inLength, output, outOffset, outLength)`, with the space left in
 * `output` and the input not consumed in `state`): Node's internal API,
 * which Deno's node:zlib keeps. It lets a decompressor write into reused
 * buffers, where the stream hands out a new piece for each output and the
 * one-shot API a new buffer for each call (fresh pages are dear on this kind
 * of VM: docs/DESIGN.md §5.1), and a compressor into a buffer of the
 * caller's. Used only where it passes its check ({@linkcode zstdHandleWorks}).
 */
export interface ZstdHandle {
  /** The stream's handle. */
  handle: {
    writeSync(
      flush: number,
      input: Uint8Array,
      inOffset: number,
      inLength: number,
      output: Uint8Array,
      outOffset: number,
      outLength: number,
    ): void;
  };
  /** After each `writeSync`: `[output room left, input bytes not taken]`. */
  state: Uint32Array;
}

/**
 * The handle of a node:zlib zstd stream, when this runtime has one that
 * passed its check ({@linkcode zstdHandleWorks}); else `undefined` (use
 * the stream or the one-shot API).
 * @param z A stream made by `createZstdCompress` or `createZstdDecompress`.
 * @returns Its handle and write state.
 */
export function zstdHandleOf(z: object): ZstdHandle | undefined {
  return zstdHandleWorks() ? rawHandleOf(z) : undefined;
}

function rawHandleOf(z: object): ZstdHandle | undefined {
  const { _handle: handle, _writeState: state } = z as {
    _handle?: { writeSync?: unknown };
    _writeState?: unknown;
  };
  if (typeof handle?.writeSync !== "function" || !(state instanceof Uint32Array)) return undefined;
  if (state.length < 2) return undefined;
  return { handle: handle as ZstdHandle["handle"], state };
}

/** Whether the handle behaves as this module expects (checked once per process). */
let handleWorks: boolean | undefined;

/**
 * Whether the zstd streams' synchronous handle ({@linkcode ZstdHandle})
 * behaves as expected in this runtime. The handle is an internal API:
 * before it is trusted, a small frame is compressed and decompressed
 * through it, in output pieces smaller than the data, and must come back as
 * the public one-shot API gives it. Anything else (no handle, another
 * behaviour, a throw) leaves the public APIs in use. Checked once per
 * process.
 * @returns `true` when the handle may be used.
 */
export function zstdHandleWorks(): boolean {
  return handleWorks ??= checkHandle();
}

function checkHandle(): boolean {
  const c = createZstdCompress({ params: { [constants.ZSTD_c_checksumFlag]: 1 } });
  const d = createZstdDecompress();
  try {
    const hc = rawHandleOf(c);
    const hd = rawHandleOf(d);
    if (hc === undefined || hd === undefined) return false;
    const data = new Uint8Array(40_000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7919) % 251 ^ (i >> 9);
    const run = (h: ZstdHandle, directive: number, input: Uint8Array, piece: number) => {
      const out: number[] = [];
      const buffer = new Uint8Array(piece);
      let inOffset = 0;
      let inLength = input.length;
      for (let turns = 0; turns < 10_000; turns++) {
        h.handle.writeSync(directive, input, inOffset, inLength, buffer, 0, piece);
        const [outLeft, inLeft] = [h.state[0]!, h.state[1]!];
        if (outLeft > piece || inLeft > inLength) return undefined;
        out.push(...buffer.subarray(0, piece - outLeft));
        inOffset += inLength - inLeft;
        inLength = inLeft;
        if (inLeft === 0 && outLeft !== 0) return new Uint8Array(out);
      }
      return undefined;
    };
    const frame = run(hc, ZSTD_END, data, 1024);
    if (frame === undefined) return false;
    const back = run(hd, ZSTD_CONTINUE, frame, 4096);
    const reference = zstdDecompressSync(frame);
    return back !== undefined && back.length === data.length &&
      back.every((b, i) => b === data[i]) && reference.length === data.length;
  } catch {
    return false;
  } finally {
    c.destroy();
    d.destroy();
  }
}
