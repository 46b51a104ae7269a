/**
 * Pack volumes: the unit of commit. A pack holds blob bodies back to back,
 * then its table of contents (TOC) — every blob's id, kind, offset and
 * lengths, and the manifests committed with the pack — then a fixed-size
 * trailer that locates and checksums the TOC.
 *
 * ```
 * offset 0            header (16 bytes): magic "CAPSAPAK", format version
 * 16                  blob bodies, back to back
 * tocOffset           TOC (tocLength bytes)
 * size - 64           trailer (64 bytes): magic "CAPSATOC", version, cipher,
 *                     tocOffset, tocLength, SHA-256 checksum
 * ```
 *
 * The byte-exact layout and the rules readers and writers follow are in
 * `docs/FORMAT.md (§5)`. Every multi-byte integer is little-endian. Reading
 * a TOC costs one ranged read of the pack's tail when the tail covers the TOC,
 * two otherwise; every length read from a pack is bounded before anything is
 * allocated from it, and anything malformed is a {@linkcode CorruptObjectError}
 * naming the pack and the reason.
 *
 * @example Writing a pack and reading its TOC back
 * ```ts
 * import assert from "node:assert/strict";
 * import { hashBytes } from "./hashing.ts";
 * import { PackWriter, readPackToc } from "./pack.ts";
 * import { MemoryDriver } from "../drivers/memory.ts";
 *
 * const storeId = "0123456789abcdef0123456789abcdef";
 * const bytes = new TextEncoder().encode("a blob body");
 * const writer = new PackWriter({
 *   packId: "01arz3ndektsv4rrffq69g5fav", storeId, hash: "blake3",
 * });
 * writer.addBlob({ id: hashBytes("blake3", bytes), kind: "regular", bytes });
 * const driver = new MemoryDriver();
 * await driver.put("packs/01arz/01arz3ndektsv4rrffq69g5fav", writer.finish());
 *
 * const toc = await readPackToc(driver, "packs/01arz/01arz3ndektsv4rrffq69g5fav", { storeId });
 * assert.deepEqual([toc.blobs[0]?.offset, toc.blobs[0]?.storedLength], [16, 11]);
 * ```
 *
 * @module
 */

import { createHash } from "node:crypto";
import {
  CorruptObjectError,
  InvalidArgumentError,
  UnsupportedFormatVersionError,
} from "../errors.ts";
import { blobIdToBytes, type HashAlgorithm, hashBytes, isBlobId } from "./hashing.ts";
import { AAD, SEAL_OVERHEAD, type StoreKeys } from "./crypto.ts";
import { isStoreId } from "./fields.ts";
import { InlineArena, type Manifest, manifestToJson, validateManifest } from "./manifest.ts";
import { isUlid, ULID_LENGTH } from "./ulid.ts";
import { decodeUtf8 } from "./_json.ts";
import {
  type BlobCompression,
  compressIfWorthIt,
  COMPRESSION_IDS,
  decompressExactly,
  DecompressScratch,
  maxCompressedLength,
  ZSTD_LEVELS,
} from "./compression.ts";

export type { BlobCompression } from "./compression.ts";

/** The pack format version this code writes and the only one it reads. */
export const PACK_FORMAT_VERSION = 1;
/** The size of the header at offset 0. */
export const PACK_HEADER_BYTES = 16;
/** The size of the trailer at the end of every pack. */
export const PACK_TRAILER_BYTES = 64;
/** The size of one blob entry in the TOC. */
export const PACK_BLOB_ENTRY_BYTES = 64;
/** The largest TOC a reader accepts (and a writer produces): 64 MiB. */
export const MAX_TOC_BYTES = 64 * 1024 * 1024;

/**
 * capsa's writers count a pack as full once its TOC's raw length reaches
 * this, whatever its size ({@linkcode PackWriter.isFull}): the manifests of
 * deduplicated puts (blobs already stored) cost TOC bytes but few pack
 * bytes, and a TOC may not pass {@linkcode MAX_TOC_BYTES}. A quarter of that
 * limit leaves room for what joins a full pack before it is sealed: the
 * largest manifest (500,000 blob ids, about 34 MB of JSON) and the puts of a
 * session already under way (docs/DESIGN.md §4.8).
 */
export const TOC_FULL_BYTES: number = MAX_TOC_BYTES / 4;
/** The default tail read of {@linkcode readPackToc}: 64 KiB. */
export const DEFAULT_TAIL_GUESS = 64 * 1024;

/** The ASCII magic at offset 0. */
export const PACK_HEADER_MAGIC = "CAPSAPAK";
/** The ASCII magic that starts the trailer. */
export const PACK_TRAILER_MAGIC = "CAPSATOC";

// The TOC's fixed fields and pack id; the store id follows.
const TOC_FIXED_BYTES = 16 + ULID_LENGTH;
// The smallest TOC (a 1-byte store id, no blob, "[]") and so the smallest pack.
const MIN_TOC_BYTES = TOC_FIXED_BYTES + 1 + 2;
const MIN_PACK_BYTES = PACK_HEADER_BYTES + MIN_TOC_BYTES + PACK_TRAILER_BYTES;
const CHECKSUMMED_TRAILER_BYTES = 32;

const HASH_IDS: Record<HashAlgorithm, number> = { blake3: 1, sha256: 2 };
const HASH_BY_ID: readonly (HashAlgorithm | undefined)[] = [undefined, "blake3", "sha256"];
const KIND_IDS: Record<BlobKind, number> = { regular: 1, chunk: 2 };
const KIND_BY_ID: readonly (BlobKind | undefined)[] = [undefined, "regular", "chunk"];
const CIPHER_NONE = 0;
const CIPHER_AES_GCM = 1;
const COMPRESSION_BY_ID: readonly (BlobCompression | undefined)[] = ["none", "zstd"];
/** Trailer flag bit 0: the TOC is stored as one zstd frame (docs/FORMAT.md §5.5.3). */
const FLAG_TOC_ZSTD = 1;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });
const HEADER_MAGIC_BYTES = encoder.encode(PACK_HEADER_MAGIC);
const TRAILER_MAGIC_BYTES = encoder.encode(PACK_TRAILER_MAGIC);

/** What a blob is: a whole body (`regular`) or a piece of a chunked one (`chunk`). */
export type BlobKind = "regular" | "chunk";

/** One blob of a pack, as its TOC lists it. */
export interface PackBlobEntry {
  /** The blob id (hex digest of the raw bytes). */
  id: string;
  /** Its kind. */
  kind: BlobKind;
  /** Where its stored bytes start in the pack. */
  offset: number;
  /** How many bytes it occupies in the pack. */
  storedLength: number;
  /** Its length once decompressed (equal to `storedLength` when not compressed). */
  rawLength: number;
  /** How its stored bytes are encoded: `"none"` (the raw bytes) or `"zstd"`. */
  compression: BlobCompression;
}

/** A blob handed to {@linkcode PackWriter.addBlob}. */
export interface PackBlobInput {
  /** The blob id: the hex digest of `bytes` with the pack's hash algorithm. */
  id: string;
  /** Its kind. */
  kind: BlobKind;
  /**
   * The bytes: raw bytes when `compression` is not given (the writer then
   * compresses them if it was given a level), else the stored bytes, copied
   * as they are.
   */
  bytes: Uint8Array;
  /**
   * How `bytes` are already encoded, for a copy of a stored blob (garbage
   * collection): `"none"` stores them as they are even in a compressing
   * writer; `"zstd"` needs `rawLength`. Omitted: `bytes` are raw. In a
   * sealing writer (`keys` given) the stored bytes of a copy are sealed
   * (`nonce ‖ ciphertext ‖ tag` of the raw or compressed bytes).
   */
  compression?: BlobCompression;
  /** The raw length: required with `"zstd"`, else it must equal `bytes.length`. */
  rawLength?: number;
}

/** The parsed trailer of a pack. */
export interface PackTrailer {
  /** The pack format version. */
  version: number;
  /** The cipher of blob bodies and TOC: 0 = none, 1 = AES-256-GCM (docs/FORMAT.md §9). */
  cipher: number;
  /** Flags: bit 0 set when the TOC is stored zstd-compressed (the only flag). */
  flags: number;
  /** The TOC's decompressed length when it is compressed, else 0. */
  tocRawLength: number;
  /** Where the TOC starts. */
  tocOffset: number;
  /** The TOC's length in bytes, as stored. */
  tocLength: number;
  /** SHA-256 of the TOC followed by the trailer's first 32 bytes, hex. */
  checksum: string;
}

/** A decoded TOC. */
export interface PackToc {
  /** The pack id (a ULID). */
  packId: string;
  /** The id of the store the pack belongs to. */
  storeId: string;
  /** The hash algorithm of the blob ids (and manifest digests) in this pack. */
  hash: HashAlgorithm;
  /** Every blob in the pack, in offset order. */
  blobs: PackBlobEntry[];
  /** The manifests committed with the pack, in commit order. */
  manifests: Manifest[];
  /**
   * The packs this one supersedes (written by garbage collection): ids in
   * ascending order, each smaller than `packId`. Indexing this pack replaces
   * them (docs/FORMAT.md §5.5.4, §8). Empty for an ordinary pack.
   */
  supersedes: string[];
}

/** Options of {@linkcode decodePackToc}. */
export interface DecodePackTocOptions {
  /** When given, a pack of another store is refused. */
  storeId?: string;
  /** When given, a pack hashed with another algorithm is refused. */
  hash?: HashAlgorithm;
  /** When given, a pack whose TOC names another pack id is refused. */
  packId?: string;
  /**
   * The store's keys: needed to read a sealed pack (cipher 1); a sealed pack
   * read without them, or a plain pack read with them, is refused.
   */
  keys?: StoreKeys | undefined;
  /**
   * Where a compressed TOC is decompressed, reused from one TOC to the next
   * (a caller decoding many: the TOC's bytes are not kept, only what is
   * decoded from them); without one, a new buffer for each.
   */
  scratch?: DecompressScratch;
}

/** Options of {@linkcode readPackToc}. */
export interface ReadPackTocOptions extends DecodePackTocOptions {
  /** The pack's size, when the caller knows it (from a listing); else it is `stat`ed. */
  size?: number;
  /** How many bytes the first (tail) read fetches (default 64 KiB; at least the trailer). */
  tailGuess?: number;
}

/** Options of {@linkcode PackWriter}. */
export interface PackWriterOptions {
  /** The pack id: a ULID (docs/DESIGN.md §4.3: pack ids are ordered by write time). */
  packId: string;
  /** The id of the store the pack belongs to. */
  storeId: string;
  /** The store's hash algorithm. */
  hash: HashAlgorithm;
  /** The expected final size, to allocate the buffer once (default 1 MiB; it grows). */
  sizeHint?: number;
  /**
   * A buffer to fill instead of a new one (a pack buffer given back after its
   * pack was written: reusing it spares the page faults of a fresh one). Used
   * when it holds at least `sizeHint` bytes; its old content is overwritten.
   */
  buffer?: Uint8Array | undefined;
  /**
   * The packs this one supersedes (garbage collection's rewrite): distinct
   * ULIDs, each smaller than `packId`, at most {@linkcode MAX_SUPERSEDED}.
   */
  supersedes?: readonly string[];
  /**
   * Compress blobs given raw, and the TOC, with zstd at this level
   * ({@linkcode ZSTD_LEVELS}), each only when that saves at least 1/16.
   * Omitted: nothing is compressed (a store whose config says `"none"`).
   */
  compressionLevel?: number | undefined;
  /** Seal blobs and the TOC with these keys (an encrypted store: cipher 1). */
  keys?: StoreKeys | undefined;
}

/** The most packs one pack may supersede (the TOC counts them in a `u16`). */
export const MAX_SUPERSEDED = 65_535;

/** Where a blob lives in a pack: what {@linkcode readBlobFromPack} needs. */
export interface PackBlobRef {
  /** The pack's key on the Location. */
  key: string;
  /** The blob id. */
  id: string;
  /** Where its stored bytes start. */
  offset: number;
  /** How many bytes it occupies. */
  storedLength: number;
  /** Its raw length; omitted means equal to `storedLength`. */
  rawLength?: number;
  /**
   * How it is stored. Omitted: inferred from the lengths (`"zstd"` when
   * `storedLength < rawLength`, the only case where they differ without
   * encryption, docs/FORMAT.md §5.5.7).
   */
  compression?: BlobCompression;
}

/**
 * What reading a pack needs from a Location: ranged reads and sizes. Every
 * capsa `Driver` has these two methods, so any driver can be passed.
 */
export interface PackSource {
  /**
   * Reads `length` bytes from `offset`, clipped at the end of the object.
   * @param key The object's key.
   * @param offset Where to start.
   * @param length How many bytes at most.
   * @returns The bytes read.
   */
  getRange(key: string, offset: number, length: number): Promise<Uint8Array>;
  /**
   * Reports an object's size.
   * @param key The object's key.
   * @returns Its size in bytes.
   */
  stat(key: string): Promise<{ size: number }>;
}

/** Options of {@linkcode readBlobFromPack}. */
export interface ReadBlobOptions {
  /** The store's hash algorithm, to check the bytes against the id. */
  hash: HashAlgorithm;
  /** An encrypted store's keys: the stored bytes are sealed, and ids keyed. */
  keys?: StoreKeys | undefined;
}

/** The stored bytes' overhead of sealing: 28 with keys, else 0. */
function overheadOf(keys: StoreKeys | undefined): number {
  return keys === undefined ? 0 : SEAL_OVERHEAD;
}

function writeU64(view: DataView, at: number, value: number): void {
  view.setUint32(at, value % 2 ** 32, true);
  view.setUint32(at + 4, Math.floor(value / 2 ** 32), true);
}

/** Reads a u64; returns -1 when it exceeds Number.MAX_SAFE_INTEGER. */
function readU64(view: DataView, at: number): number {
  const lo = view.getUint32(at, true);
  const hi = view.getUint32(at + 4, true);
  if (hi >= 2 ** 21) return -1;
  return hi * 2 ** 32 + lo;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function allZero(bytes: Uint8Array): boolean {
  for (const b of bytes) if (b !== 0) return false;
  return true;
}

function encodeTrailerPrefix(t: Omit<PackTrailer, "checksum">): Uint8Array {
  const out = new Uint8Array(CHECKSUMMED_TRAILER_BYTES);
  const view = new DataView(out.buffer);
  out.set(TRAILER_MAGIC_BYTES, 0);
  view.setUint16(8, t.version, true);
  out[10] = t.cipher;
  out[11] = t.flags;
  view.setUint32(12, t.tocRawLength, true);
  writeU64(view, 16, t.tocOffset);
  writeU64(view, 24, t.tocLength);
  return out;
}

function tocChecksum(toc: Uint8Array, trailerPrefix: Uint8Array): string {
  return createHash("sha256").update(toc).update(trailerPrefix).digest("hex");
}

/** How much manifest text a writer compresses at a time to learn its TOC's ratio. */
const TOC_SAMPLE_BYTES = 64 * 1024;

/**
 * Manifest text buffers of finished writers, for the next ones (at most two
 * kept). A writer encodes each manifest's JSON into one as it is added: the
 * text of a pack's thousands of manifests is then no string kept until the
 * pack is finished (each would outlive a young-generation collection and be
 * copied into the old one: most of the main thread's collection time in a
 * 200,000-file `put --from`), and no fresh buffer is faulted in per pack.
 */
const spareManifestBuffers: Uint8Array[] = [];
/** The largest manifest text buffer kept for reuse (a full pack's raw TOC). */
const SPARE_MANIFEST_BUFFER_MAX = 16 * 1024 * 1024;

/**
 * The zstd level a pack's TOC is compressed at, for a store compressing its
 * data at `level`. Up to the default level 3 it is level 1: on capsa's
 * manifest JSON, level 1 both ran faster and came out smaller than level 3
 * (TOCs of 200,000 small files: 5.3× against 4.8×, in a third of the time;
 * of 1,000,000 small artifacts: 10.9× against 9.8×). A store asking for more
 * (4 and up) gets its own level, and one asking for less its own too.
 * @param level The store's level.
 * @returns The TOC's level.
 */
function tocLevel(level: number): number {
  return level > 3 ? level : Math.min(level, 1);
}

/**
 * Writes one pack in memory: add blobs and manifests, then
 * {@linkcode PackWriter.finish} returns the pack's bytes, ready for one
 * atomic put. Blob bytes are copied when added, so the caller may reuse its
 * buffers; the writer holds one growing buffer (give `sizeHint` = the pack
 * target size to allocate it once).
 *
 * The writer does not re-hash blobs: the caller vouches that each id is the
 * digest of its bytes (readers check it on every read).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { hashBytes } from "./hashing.ts";
 * import { PackWriter } from "./pack.ts";
 *
 * const storeId = "0123456789abcdef0123456789abcdef";
 * const w = new PackWriter({ packId: "01arz3ndektsv4rrffq69g5fav", storeId, hash: "sha256" });
 * const bytes = new Uint8Array([1, 2, 3]);
 * const id = hashBytes("sha256", bytes);
 * w.addBlob({ id, kind: "chunk", bytes });
 * assert.deepEqual([w.has(id), w.byteLength], [true, 19]);
 * const pack = w.finish();
 * ```
 */
export class PackWriter {
  readonly #packId: string;
  readonly #storeId: string;
  readonly #hash: HashAlgorithm;
  readonly #supersedes: readonly string[];
  readonly #level: number | undefined;
  /** The level the TOC is compressed at ({@linkcode tocLevel}). */
  readonly #tocLevel: number | undefined;
  readonly #keys: StoreKeys | undefined;
  #buffer: Uint8Array;
  #length = PACK_HEADER_BYTES;
  readonly #entries: PackBlobEntry[] = [];
  readonly #ids = new Set<string>();
  /** The manifests' JSON as UTF-8, comma-separated (the brackets come on finish). */
  #manifestText: Uint8Array | undefined;
  /** Bytes of `#manifestText` used. */
  #manifestBytes = 0;
  #manifestCount = 0;
  readonly #manifestIds = new Set<string>();
  /** Manifest text compressed to learn the TOC's ratio: next sample at `bytes`; bytes sampled, raw and stored. */
  #sample = { bytes: TOC_SAMPLE_BYTES, raw: 0, stored: 0 };
  #finished = false;

  /**
   * Starts an empty pack.
   *
   * @param options The pack id, store id, hash algorithm and size hint.
   * @throws {InvalidArgumentError} when an option is malformed.
   */
  constructor(options: PackWriterOptions) {
    if (!isUlid(options.packId)) {
      throw new InvalidArgumentError(
        `pack id must be a ULID, got ${JSON.stringify(options.packId)}`,
      );
    }
    if (!isStoreId(options.storeId)) {
      throw new InvalidArgumentError(
        `store id must be 32 lowercase hex digits, got ${JSON.stringify(options.storeId)}`,
      );
    }
    if (!(options.hash in HASH_IDS)) {
      throw new InvalidArgumentError(`unknown hash algorithm ${JSON.stringify(options.hash)}`);
    }
    const hint = options.sizeHint ?? 1024 * 1024;
    if (!Number.isSafeInteger(hint) || hint < 0) {
      throw new InvalidArgumentError(`sizeHint must be a non-negative integer, got ${hint}`);
    }
    const supersedes = [...new Set(options.supersedes ?? [])].sort();
    if (supersedes.length > MAX_SUPERSEDED) {
      throw new InvalidArgumentError(
        `a pack may supersede at most ${MAX_SUPERSEDED} packs, got ${supersedes.length}`,
      );
    }
    for (const id of supersedes) {
      if (!isUlid(id) || id >= options.packId) {
        throw new InvalidArgumentError(
          `a superseded pack id must be a ULID smaller than the pack's own, got ${
            JSON.stringify(id)
          }`,
        );
      }
    }
    this.#packId = options.packId;
    this.#storeId = options.storeId;
    this.#hash = options.hash;
    const level = options.compressionLevel;
    if (
      level !== undefined &&
      (!Number.isSafeInteger(level) || level < ZSTD_LEVELS.min || level > ZSTD_LEVELS.max)
    ) {
      throw new InvalidArgumentError(
        `compressionLevel must be an integer in [${ZSTD_LEVELS.min}, ${ZSTD_LEVELS.max}], got ${level}`,
      );
    }
    this.#level = level;
    this.#tocLevel = level === undefined ? undefined : tocLevel(level);
    this.#keys = options.keys;
    this.#supersedes = supersedes;
    const given = options.buffer;
    this.#buffer = given !== undefined && given.length >= Math.max(hint, 4096)
      ? given
      : new Uint8Array(Math.max(hint, 4096));
  }

  /** The pack's bytes so far: header and blob bodies (the TOC and trailer come on finish). */
  get byteLength(): number {
    return this.#length;
  }

  /** About how large the pack would be if finished now (TOC and trailer included). */
  get estimatedSize(): number {
    return this.#length + this.#tocBaseBytes() + this.#manifestBytesEstimate() +
      PACK_TRAILER_BYTES;
  }

  /**
   * What the manifests will take in the stored TOC. With compression on, the
   * TOC is compressed at finish; a writer that sealed on the raw length made
   * packs of small files an eighth short of the target (their manifests, JSON,
   * shrink about 4×). The ratio is learnt from the manifests themselves: the
   * newest {@linkcode TOC_SAMPLE_BYTES} of text is compressed when the text
   * reaches 64 KiB, then each time it has grown fourfold.
   */
  #manifestBytesEstimate(): number {
    const s = this.#sample;
    if (s.raw === 0) return this.#manifestBytes;
    const ratio = Math.min(1, s.stored / s.raw);
    return Math.ceil(this.#manifestBytes * ratio);
  }

  #learnTocRatio(): void {
    const s = this.#sample;
    // Samples at 64 KiB, 256 KiB, 1 MiB… of manifest text, each the newest ≈64 KiB of it: a
    // few small compressions per pack (compressing all of it again cost as much as the TOC's own).
    if (this.#level === undefined || this.#manifestBytes < s.bytes) return;
    const end = this.#manifestBytes;
    const text = this.#manifestText!.subarray(Math.max(0, end - TOC_SAMPLE_BYTES), end);
    const packed = compressIfWorthIt(text, this.#tocLevel!);
    s.raw += text.length;
    s.stored += packed?.length ?? text.length;
    s.bytes = Math.max(end, TOC_SAMPLE_BYTES) * 4;
  }

  /**
   * The TOC's raw (uncompressed, unsealed) length if the pack were finished
   * now: what {@linkcode MAX_TOC_BYTES} bounds. Packs of manifests whose blobs
   * are elsewhere (a deduplicated put) are small in bytes but not in TOC: a
   * committer seals them on this too (docs/DESIGN.md §4.8).
   */
  get tocRawLength(): number {
    return this.#tocBaseBytes() + this.#manifestBytes;
  }

  /**
   * Whether the pack is full: its estimated size reached `targetSize`, or its
   * TOC's raw length reached {@linkcode TOC_FULL_BYTES}.
   * @param targetSize The store's `packTargetSize`.
   * @returns Whether to seal it before adding more.
   */
  isFull(targetSize: number): boolean {
    return this.estimatedSize >= targetSize || this.tocRawLength >= TOC_FULL_BYTES;
  }

  /** How many blobs were added. */
  get blobCount(): number {
    return this.#entries.length;
  }

  /** How many manifests were added. */
  get manifestCount(): number {
    return this.#manifestCount;
  }

  #tocBaseBytes(): number {
    return TOC_FIXED_BYTES + this.#storeId.length + this.#supersedes.length * ULID_LENGTH +
      this.#entries.length * PACK_BLOB_ENTRY_BYTES + 2;
  }

  #check(): void {
    if (this.#finished) throw new InvalidArgumentError("pack writer already finished");
  }

  #reserve(extra: number): void {
    const need = this.#length + extra;
    if (need <= this.#buffer.length) return;
    const grown = new Uint8Array(Math.max(need, this.#buffer.length * 2));
    grown.set(this.#buffer.subarray(0, this.#length));
    this.#buffer = grown;
  }

  /**
   * Tells whether a blob is already in this pack (for deduplication).
   *
   * @param id A blob id.
   * @returns `true` when {@linkcode PackWriter.addBlob} was called with it.
   */
  has(id: string): boolean {
    return this.#ids.has(id);
  }

  /**
   * Appends a blob's bytes.
   *
   * @param blob The blob id, kind and bytes.
   * @returns Its TOC entry (with its offset in the pack).
   * @throws {InvalidArgumentError} for a malformed id or kind, a raw length
   *   that differs from the byte count, a blob already in the pack, or after
   *   {@linkcode PackWriter.finish}.
   */
  addBlob(blob: PackBlobInput): PackBlobEntry {
    this.#check();
    if (!isBlobId(blob.id)) {
      throw new InvalidArgumentError(`not a blob id: ${JSON.stringify(blob.id)}`);
    }
    if (!(blob.kind in KIND_IDS)) {
      throw new InvalidArgumentError(`unknown blob kind ${JSON.stringify(blob.kind)}`);
    }
    if (!(blob.bytes instanceof Uint8Array)) {
      throw new InvalidArgumentError("blob bytes must be a Uint8Array");
    }
    if (blob.compression !== undefined && !(blob.compression in COMPRESSION_IDS)) {
      throw new InvalidArgumentError(
        `unknown blob compression ${JSON.stringify(blob.compression)}`,
      );
    }
    const over = blob.compression === undefined ? 0 : overheadOf(this.#keys);
    const rawLength = blob.rawLength ?? blob.bytes.length - over;
    if (blob.compression !== undefined && blob.bytes.length < over) {
      throw new InvalidArgumentError(
        `blob ${blob.id}: ${blob.bytes.length} bytes cannot be sealed`,
      );
    }
    if (blob.compression === "zstd") {
      // A copy of a compressed blob: the format's rule must hold for it too.
      if (
        !Number.isSafeInteger(rawLength) || blob.rawLength === undefined ||
        blob.bytes.length - over > maxCompressedLength(rawLength)
      ) {
        throw new InvalidArgumentError(
          `blob ${blob.id}: a zstd blob needs a raw length at least 1/16 above its ` +
            `${blob.bytes.length} stored bytes, got ${blob.rawLength}`,
        );
      }
    } else if (rawLength !== blob.bytes.length - over) {
      throw new InvalidArgumentError(
        `blob ${blob.id}: raw length ${rawLength} differs from its ${blob.bytes.length} bytes ` +
          "without compression",
      );
    }
    if (this.#ids.has(blob.id)) {
      throw new InvalidArgumentError(`blob ${blob.id} is already in this pack`);
    }
    let stored = blob.bytes;
    let compression: BlobCompression = blob.compression ?? "none";
    if (blob.compression === undefined && this.#level !== undefined) {
      const packed = compressIfWorthIt(blob.bytes, this.#level);
      if (packed !== undefined) [stored, compression] = [packed, "zstd"];
    }
    if (blob.compression === undefined && this.#keys !== undefined) {
      stored = this.#keys.seal(AAD.blob(blob.id), stored);
    }
    this.#reserve(stored.length);
    this.#buffer.set(stored, this.#length);
    const entry: PackBlobEntry = {
      id: blob.id,
      kind: blob.kind,
      offset: this.#length,
      storedLength: stored.length,
      rawLength,
      compression,
    };
    this.#length += stored.length;
    this.#entries.push(entry);
    this.#ids.add(blob.id);
    return { ...entry };
  }

  /**
   * Adds a manifest to the TOC. Its blobs may be in this pack or in earlier
   * ones; the caller orders writes so that they are durable first (docs/DESIGN.md §4.3
   * item 4).
   *
   * @param manifest The manifest (checked, and of this pack's store).
   * @throws {InvalidArgumentError} for a malformed manifest, one of another
   *   store, one already added, or after {@linkcode PackWriter.finish}.
   */
  addManifest(manifest: Manifest): void {
    this.#check();
    const json = manifestToJson(manifest);
    if (json.storeId !== this.#storeId) {
      throw new InvalidArgumentError(
        `manifest ${json.id} belongs to store ${json.storeId}, this pack to ${this.#storeId}`,
      );
    }
    if (this.#manifestIds.has(json.id)) {
      throw new InvalidArgumentError(`manifest ${json.id} is already in this pack`);
    }
    const text = JSON.stringify(json);
    // UTF-8 takes at least a byte per UTF-16 unit and at most three; a comma before all but the first.
    const at = this.#manifestBytes + (this.#manifestCount === 0 ? 0 : 1);
    let buffer = this.#manifestRoom(at + text.length);
    let written = encoder.encodeInto(text, buffer.subarray(at));
    if (written.read < text.length) {
      buffer = this.#manifestRoom(at + 3 * text.length);
      written = encoder.encodeInto(text, buffer.subarray(at));
    }
    if (at > 0) buffer[at - 1] = 0x2c; // ","
    this.#manifestBytes = at + written.written;
    this.#manifestCount++;
    this.#manifestIds.add(json.id);
    this.#learnTocRatio();
  }

  /** The manifest text buffer, grown (by doubling, copying what it holds) to at least `need` bytes. */
  #manifestRoom(need: number): Uint8Array {
    let buffer = this.#manifestText;
    if (buffer === undefined) {
      buffer = spareManifestBuffers.pop() ?? new Uint8Array(64 * 1024);
      this.#manifestText = buffer;
    }
    if (buffer.length >= need) return buffer;
    const grown = new Uint8Array(Math.max(need, 2 * buffer.length));
    grown.set(buffer.subarray(0, this.#manifestBytes));
    this.#manifestText = grown;
    return grown;
  }

  #tooLarge(tocLength: number): never {
    throw new InvalidArgumentError(
      `pack TOC would be ${tocLength} bytes, more than ${MAX_TOC_BYTES}: seal packs sooner`,
    );
  }

  /**
   * Writes the TOC and the trailer and returns the whole pack.
   *
   * @returns The pack's bytes (a view of the writer's buffer).
   * @throws {InvalidArgumentError} when the TOC would exceed
   *   {@linkcode MAX_TOC_BYTES} (seal packs sooner), or when called twice.
   */
  finish(): Uint8Array {
    this.#check();
    const manifestsLength = this.#manifestBytes + 2;
    const storeId = encoder.encode(this.#storeId);
    const supersededStart = TOC_FIXED_BYTES + storeId.length;
    const entriesStart = supersededStart + this.#supersedes.length * ULID_LENGTH;
    const entriesEnd = entriesStart + this.#entries.length * PACK_BLOB_ENTRY_BYTES;
    const tocLength = entriesEnd + manifestsLength;
    if (tocLength > MAX_TOC_BYTES) this.#tooLarge(tocLength);
    const tocOffset = this.#length;
    const t = tocOffset;
    // Written straight into the pack's buffer (reused from pack to pack): a new array of a few
    // MiB for each TOC cost more in fresh memory than the encoding itself.
    this.#reserve(tocLength + PACK_TRAILER_BYTES);
    const m = t + entriesEnd;
    this.#buffer[m] = 0x5b; // "["
    if (this.#manifestText !== undefined) {
      this.#buffer.set(this.#manifestText.subarray(0, this.#manifestBytes), m + 1);
      if (
        this.#manifestText.length <= SPARE_MANIFEST_BUFFER_MAX && spareManifestBuffers.length < 2
      ) {
        spareManifestBuffers.push(this.#manifestText);
      }
      this.#manifestText = undefined;
    }
    this.#buffer[m + manifestsLength - 1] = 0x5d; // "]"
    this.#finished = true;
    const buf = this.#buffer;
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);

    buf.set(HEADER_MAGIC_BYTES, 0);
    view.setUint16(8, PACK_FORMAT_VERSION, true);
    buf.fill(0, 10, PACK_HEADER_BYTES);

    buf.fill(0, t, t + entriesEnd);
    buf[t] = HASH_IDS[this.#hash];
    buf[t + 1] = storeId.length;
    view.setUint16(t + 2, this.#supersedes.length, true);
    view.setUint32(t + 4, this.#entries.length, true);
    view.setUint32(t + 8, this.#manifestCount, true);
    view.setUint32(t + 12, manifestsLength, true);
    buf.set(encoder.encode(this.#packId), t + 16);
    buf.set(storeId, t + TOC_FIXED_BYTES);
    this.#supersedes.forEach((id, i) =>
      buf.set(encoder.encode(id), t + supersededStart + i * ULID_LENGTH)
    );
    let at = t + entriesStart;
    for (const e of this.#entries) {
      buf.set(blobIdToBytes(e.id), at);
      buf[at + 32] = KIND_IDS[e.kind];
      buf[at + 33] = COMPRESSION_IDS[e.compression];
      writeU64(view, at + 40, e.offset);
      writeU64(view, at + 48, e.storedLength);
      writeU64(view, at + 56, e.rawLength);
      at += PACK_BLOB_ENTRY_BYTES;
    }

    // The TOC is compressed as a whole when that saves 1/16 (blob ids do not
    // compress; manifests, mostly JSON, do).
    let inner = buf.subarray(t, t + tocLength);
    let flags = 0;
    if (this.#tocLevel !== undefined) {
      const packed = compressIfWorthIt(inner, this.#tocLevel);
      // Never below the smallest TOC, so that one size rule bounds every pack.
      if (packed !== undefined && packed.length >= MIN_TOC_BYTES) {
        inner = packed;
        flags = FLAG_TOC_ZSTD;
      }
    }
    const keys = this.#keys;
    const storedTocLength = inner.length + overheadOf(keys);
    const prefix = encodeTrailerPrefix({
      version: PACK_FORMAT_VERSION,
      cipher: keys === undefined ? CIPHER_NONE : CIPHER_AES_GCM,
      flags,
      tocRawLength: flags === 0 ? 0 : tocLength,
      tocOffset,
      tocLength: storedTocLength,
    });
    if (keys !== undefined) {
      const sealed = keys.seal(AAD.toc(prefix), inner);
      this.#reserve(sealed.length + PACK_TRAILER_BYTES);
      this.#buffer.set(sealed, t);
    } else if (inner.buffer !== buf.buffer || inner.byteOffset !== t) {
      buf.set(inner, t);
    }
    const trailerAt = tocOffset + storedTocLength;
    const out = this.#buffer;
    out.set(prefix, trailerAt);
    const checksum = tocChecksum(out.subarray(tocOffset, trailerAt), prefix);
    out.set(Uint8Array.fromHex(checksum), trailerAt + CHECKSUMMED_TRAILER_BYTES);
    this.#length = trailerAt + PACK_TRAILER_BYTES;
    return out.subarray(0, this.#length);
  }
}

/**
 * Encodes a whole pack in one call (a convenience over {@linkcode PackWriter}).
 *
 * @param pack The pack id, store id, hash algorithm, blobs and manifests.
 * @returns The pack's bytes.
 * @throws {InvalidArgumentError} as {@linkcode PackWriter} does.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodePack } from "./pack.ts";
 * const storeId = "0123456789abcdef0123456789abcdef";
 * const bytes = encodePack({
 *   packId: "01arz3ndektsv4rrffq69g5fav", storeId, hash: "blake3", blobs: [], manifests: [],
 * });
 * assert.deepEqual(bytes.length, 156);
 * ```
 */
export function encodePack(pack: {
  packId: string;
  storeId: string;
  hash: HashAlgorithm;
  blobs: readonly PackBlobInput[];
  manifests: readonly Manifest[];
  supersedes?: readonly string[];
  compressionLevel?: number | undefined;
  keys?: StoreKeys | undefined;
}): Uint8Array {
  // Room for the TOC too (entries, manifests, superseded ids): the buffer is allocated once.
  let size = PACK_HEADER_BYTES + PACK_TRAILER_BYTES + 64 * 1024 +
    pack.blobs.length * PACK_BLOB_ENTRY_BYTES + pack.manifests.length * 1024 +
    (pack.supersedes?.length ?? 0) * ULID_LENGTH;
  for (const b of pack.blobs) size += b.bytes?.length ?? 0;
  const writer = new PackWriter({
    packId: pack.packId,
    storeId: pack.storeId,
    hash: pack.hash,
    sizeHint: size,
    ...(pack.supersedes ? { supersedes: pack.supersedes } : {}),
    compressionLevel: pack.compressionLevel,
    keys: pack.keys,
  });
  for (const b of pack.blobs) writer.addBlob(b);
  for (const m of pack.manifests) writer.addManifest(m);
  return writer.finish();
}

/**
 * Checks a pack's header (its first {@linkcode PACK_HEADER_BYTES} bytes).
 *
 * @param key The pack's key (for errors).
 * @param bytes At least the pack's first 16 bytes.
 * @returns The format version the header states.
 * @throws {CorruptObjectError} for a short input, a wrong magic, an unknown
 *   version or non-zero reserved bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodePack, parsePackHeader } from "./pack.ts";
 * const storeId = "0123456789abcdef0123456789abcdef";
 * const pack = encodePack({
 *   packId: "01arz3ndektsv4rrffq69g5fav", storeId, hash: "blake3", blobs: [], manifests: [],
 * });
 * assert.deepEqual(parsePackHeader("packs/x", pack), 1);
 * ```
 */
export function parsePackHeader(key: string, bytes: Uint8Array): number {
  if (bytes.length < PACK_HEADER_BYTES) {
    throw new CorruptObjectError(
      key,
      `truncated: ${bytes.length} bytes, the header needs ${PACK_HEADER_BYTES}`,
    );
  }
  if (!sameBytes(bytes.subarray(0, 8), HEADER_MAGIC_BYTES)) {
    throw new CorruptObjectError(key, "not a capsa pack: bad header magic");
  }
  const version = bytes[8]! | (bytes[9]! << 8);
  if (version !== PACK_FORMAT_VERSION) {
    throw new UnsupportedFormatVersionError(key, version, [PACK_FORMAT_VERSION]);
  }
  if (!allZero(bytes.subarray(10, PACK_HEADER_BYTES))) {
    throw new CorruptObjectError(key, "reserved header bytes are not zero");
  }
  return version;
}

/**
 * Parses a pack's trailer: the last {@linkcode PACK_TRAILER_BYTES} of `bytes`
 * (pass the pack's tail, or the trailer alone). Checks the magic, the version,
 * the cipher and the reserved bytes, and bounds the TOC's position and length
 * (at most {@linkcode MAX_TOC_BYTES}) before anything is read or allocated
 * from them. The checksum is checked by {@linkcode decodePackToc}.
 *
 * @param key The pack's key (for errors).
 * @param bytes The pack's last bytes (at least 64).
 * @returns The trailer's fields.
 * @throws {CorruptObjectError} naming the problem.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodePack, parsePackTrailer } from "./pack.ts";
 * const storeId = "0123456789abcdef0123456789abcdef";
 * const pack = encodePack({
 *   packId: "01arz3ndektsv4rrffq69g5fav", storeId, hash: "blake3", blobs: [], manifests: [],
 * });
 * assert.deepEqual(parsePackTrailer("packs/x", pack).tocOffset, 16);
 * ```
 */
export function parsePackTrailer(key: string, bytes: Uint8Array): PackTrailer {
  if (bytes.length < PACK_TRAILER_BYTES) {
    throw new CorruptObjectError(
      key,
      `truncated: ${bytes.length} bytes, the trailer needs ${PACK_TRAILER_BYTES}`,
    );
  }
  const t = bytes.subarray(bytes.length - PACK_TRAILER_BYTES);
  const view = new DataView(t.buffer, t.byteOffset, t.byteLength);
  if (!sameBytes(t.subarray(0, 8), TRAILER_MAGIC_BYTES)) {
    throw new CorruptObjectError(key, "not a capsa pack, or truncated: bad trailer magic");
  }
  const version = view.getUint16(8, true);
  if (version !== PACK_FORMAT_VERSION) {
    throw new UnsupportedFormatVersionError(key, version, [PACK_FORMAT_VERSION]);
  }
  const cipher = t[10]!;
  if (cipher !== CIPHER_NONE && cipher !== CIPHER_AES_GCM) {
    throw new CorruptObjectError(
      key,
      `pack is sealed with cipher ${cipher}, which this version of capsa cannot read`,
    );
  }
  const over = cipher === CIPHER_AES_GCM ? SEAL_OVERHEAD : 0;
  const flags = t[11]!;
  if ((flags & ~FLAG_TOC_ZSTD) !== 0) {
    throw new CorruptObjectError(
      key,
      `trailer flags ${flags} set bits this version of capsa does not know`,
    );
  }
  const tocRawLength = view.getUint32(12, true);
  const tocOffset = readU64(view, 16);
  const tocLength = readU64(view, 24);
  if (flags === 0 && tocRawLength !== 0) {
    throw new CorruptObjectError(key, "trailer reserved bytes are not zero");
  }
  if (flags !== 0) {
    if (tocRawLength < MIN_TOC_BYTES || tocRawLength > MAX_TOC_BYTES) {
      throw new CorruptObjectError(
        key,
        `compressed TOC's raw length ${tocRawLength} is outside [${MIN_TOC_BYTES}, ${MAX_TOC_BYTES}]`,
      );
    }
    if (tocLength - over > maxCompressedLength(tocRawLength)) {
      throw new CorruptObjectError(
        key,
        `compressed TOC of ${tocLength} bytes does not save 1/16 of its raw ${tocRawLength}`,
      );
    }
  }
  if (tocLength < 0 || tocLength > MAX_TOC_BYTES) {
    throw new CorruptObjectError(
      key,
      `TOC length ${tocLength < 0 ? "≥ 2^53" : tocLength} exceeds the limit of ${MAX_TOC_BYTES}`,
    );
  }
  if (tocLength < MIN_TOC_BYTES + over) {
    throw new CorruptObjectError(
      key,
      `TOC length ${tocLength} is below the minimum ${MIN_TOC_BYTES + over}`,
    );
  }
  if (tocOffset < 0) throw new CorruptObjectError(key, "TOC offset ≥ 2^53 is out of range");
  if (tocOffset < PACK_HEADER_BYTES) {
    throw new CorruptObjectError(key, `TOC offset ${tocOffset} is inside the header`);
  }
  return {
    version,
    cipher,
    flags,
    tocRawLength,
    tocOffset,
    tocLength,
    checksum: t.subarray(CHECKSUMMED_TRAILER_BYTES).toHex(),
  };
}

/**
 * Decodes and checks a TOC: its checksum against the trailer, its fixed
 * fields, every blob entry (kind, lengths, offsets inside the blob area, in
 * order and not overlapping, no id twice) and every manifest (with
 * {@linkcode validateManifest}, each of the pack's store).
 *
 * @param key The pack's key (for errors).
 * @param toc The TOC's bytes (exactly `trailer.tocLength`).
 * @param trailer The pack's parsed trailer.
 * @param options Expected store id, hash algorithm and pack id.
 * @returns The decoded TOC.
 * @throws {CorruptObjectError} naming the problem, e.g. "TOC checksum mismatch",
 *   "belongs to store X, expected Y", "blob entry 3 extends past the TOC start".
 *
 * @example
 * ```ts
 * import { decodePackToc, encodePack, parsePackTrailer } from "./pack.ts";
 * const storeId = "0123456789abcdef0123456789abcdef";
 * const pack = encodePack({
 *   packId: "01arz3ndektsv4rrffq69g5fav", storeId, hash: "blake3", blobs: [], manifests: [],
 * });
 * const trailer = parsePackTrailer("packs/x", pack);
 * const tocBytes = pack.subarray(trailer.tocOffset, trailer.tocOffset + trailer.tocLength);
 * console.log(decodePackToc("packs/x", tocBytes, trailer, { storeId }).packId);
 * ```
 */
export function decodePackToc(
  key: string,
  toc: Uint8Array,
  trailer: PackTrailer,
  options: DecodePackTocOptions = {},
): PackToc {
  const bad = (reason: string): never => {
    throw new CorruptObjectError(key, reason);
  };
  if (toc.length !== trailer.tocLength) {
    bad(`TOC is ${toc.length} bytes, the trailer says ${trailer.tocLength}`);
  }
  const prefix = encodeTrailerPrefix(trailer);
  if (tocChecksum(toc, prefix) !== trailer.checksum) bad("TOC checksum mismatch");
  const keys = options.keys;
  if (trailer.cipher === CIPHER_AES_GCM) {
    if (keys === undefined) bad("the pack is encrypted (cipher 1) and no key was given to read it");
    toc = keys!.open(AAD.toc(prefix), toc) ??
      bad("the sealed TOC fails authentication (tampered, or sealed with another store's key)");
  } else if (keys !== undefined) {
    bad("the pack is not encrypted, in an encrypted store");
  }
  const over = overheadOf(keys);
  if ((trailer.flags & FLAG_TOC_ZSTD) !== 0) {
    // Bounded by the trailer's raw length, itself bounded by MAX_TOC_BYTES.
    // Always through a scratch (the zstd handle, where it works), whatever the TOC's size: a TOC
    // is then held to exactly its frames, bytes after them refused (the one-shot API ignores them).
    toc = decompressExactly(
      key,
      toc,
      trailer.tocRawLength,
      "TOC",
      options.scratch ?? new DecompressScratch(),
    );
  }

  const view = new DataView(toc.buffer, toc.byteOffset, toc.byteLength);
  const hash = HASH_BY_ID[toc[0]!] ?? bad(`unknown hash algorithm id ${toc[0]}`);
  const storeIdLength = toc[1]!;
  const supersededCount = view.getUint16(2, true);
  const blobCount = view.getUint32(4, true);
  const manifestCount = view.getUint32(8, true);
  const manifestsLength = view.getUint32(12, true);
  const supersededStart = TOC_FIXED_BYTES + storeIdLength;
  const entriesStart = supersededStart + supersededCount * ULID_LENGTH;
  // Every count is checked against the TOC's (bounded) length before use.
  if (entriesStart + blobCount * PACK_BLOB_ENTRY_BYTES + manifestsLength !== toc.length) {
    bad(
      `TOC sections (${supersededCount} superseded packs, ${blobCount} blob entries, ` +
        `${manifestsLength} bytes of manifests) do not add up to its ${toc.length} bytes`,
    );
  }
  let packId = "";
  let storeId = "";
  try {
    packId = decoder.decode(toc.subarray(16, TOC_FIXED_BYTES));
    storeId = decoder.decode(toc.subarray(TOC_FIXED_BYTES, supersededStart));
  } catch {
    bad("pack id or store id is not UTF-8");
  }
  if (!isUlid(packId)) bad(`pack id ${JSON.stringify(packId)} is not a ULID`);
  if (!isStoreId(storeId)) bad(`store id ${JSON.stringify(storeId)} is malformed`);
  if (options.storeId !== undefined && storeId !== options.storeId) {
    bad(`belongs to store ${storeId}, expected ${options.storeId}`);
  }
  if (options.hash !== undefined && hash !== options.hash) {
    bad(`uses hash ${hash}, expected ${options.hash}`);
  }
  if (options.packId !== undefined && packId !== options.packId) {
    bad(`TOC names pack ${packId}, expected ${options.packId}`);
  }
  const supersedes: string[] = new Array(supersededCount);
  for (let i = 0, at = supersededStart; i < supersededCount; i++, at += ULID_LENGTH) {
    let id = "";
    try {
      id = decoder.decode(toc.subarray(at, at + ULID_LENGTH));
    } catch {
      bad(`superseded pack ${i} is not UTF-8`);
    }
    if (!isUlid(id) || id >= packId || (i > 0 && id <= supersedes[i - 1]!)) {
      bad(
        `superseded pack ${i} (${
          JSON.stringify(id)
        }) is not a ULID in ascending order below the pack's own`,
      );
    }
    supersedes[i] = id;
  }

  const blobs: PackBlobEntry[] = new Array(blobCount);
  const ids = new Set<string>();
  let end = PACK_HEADER_BYTES;
  for (let i = 0, at = entriesStart; i < blobCount; i++, at += PACK_BLOB_ENTRY_BYTES) {
    const id = toc.subarray(at, at + 32).toHex();
    const kind = KIND_BY_ID[toc[at + 32]!] ??
      bad(`blob entry ${i} has unknown kind ${toc[at + 32]}`);
    const compression = COMPRESSION_BY_ID[toc[at + 33]!] ??
      bad(`blob entry ${i} uses unknown compression ${toc[at + 33]}`);
    if (!allZero(toc.subarray(at + 34, at + 40))) {
      bad(`blob entry ${i} has non-zero reserved bytes`);
    }
    const offset = readU64(view, at + 40);
    const storedLength = readU64(view, at + 48);
    const rawLength = readU64(view, at + 56);
    if (offset < 0 || storedLength < 0 || rawLength < 0) bad(`blob entry ${i} has a length ≥ 2^53`);
    if (offset < end) {
      bad(
        i === 0
          ? `blob entry 0 starts at ${offset}, inside the header`
          : `blob entry ${i} overlaps entry ${i - 1}`,
      );
    }
    if (offset + storedLength > trailer.tocOffset) {
      bad(
        `blob entry ${i} extends past the TOC start (${offset} + ${storedLength} > ${trailer.tocOffset})`,
      );
    }
    if (compression === "none" && rawLength !== storedLength - over) {
      bad(
        `blob entry ${i}: stored length ${storedLength} ≠ raw length ${rawLength}${
          over === 0 ? "" : ` + ${over}`
        } without compression`,
      );
    }
    if (
      compression === "zstd" &&
      (storedLength < over || storedLength - over > maxCompressedLength(rawLength))
    ) {
      bad(
        `blob entry ${i}: zstd stored length ${storedLength} does not save 1/16 of raw length ${rawLength}`,
      );
    }
    if (ids.has(id)) bad(`blob entry ${i} repeats blob ${id}`);
    ids.add(id);
    end = offset + storedLength;
    blobs[i] = { id, kind, offset, storedLength, rawLength, compression };
  }

  let parsed: unknown;
  try {
    const at = entriesStart + blobCount * PACK_BLOB_ENTRY_BYTES;
    parsed = JSON.parse(decodeUtf8(toc.subarray(at, at + manifestsLength)));
  } catch (e) {
    bad(`manifests are not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (!Array.isArray(parsed)) return bad("manifests are not a JSON array");
  if (parsed.length !== manifestCount) {
    bad(`TOC says ${manifestCount} manifests, holds ${parsed.length}`);
  }
  const manifests: Manifest[] = new Array(parsed.length);
  const manifestIds = new Set<string>();
  // Inline bodies share a few buffers: a TOC's manifests are decoded at once.
  const inlineArena = new InlineArena();
  for (let i = 0; i < parsed.length; i++) {
    // The parsed values are this function's own: adopt them rather than copy.
    const m = validateManifest(key, parsed[i], {
      storeId,
      label: `manifest ${i}`,
      adopt: true,
      inlineArena,
    });
    if (manifestIds.has(m.id)) bad(`manifest ${i} repeats manifest id ${m.id}`);
    manifestIds.add(m.id);
    manifests[i] = m;
  }
  return { packId, storeId, hash, blobs, manifests, supersedes };
}

/**
 * Reads and decodes a pack's TOC from a Location with at most two ranged
 * reads: the tail (`tailGuess` bytes, default 64 KiB), then the TOC itself
 * when the tail did not cover it. When a read covers offset 0 the header is
 * checked too.
 *
 * Read failures (not found, transient errors) propagate as the driver threw
 * them: only bytes that were read and found wrong are a
 * {@linkcode CorruptObjectError}.
 *
 * @param driver The Location's driver.
 * @param key The pack's key.
 * @param options The pack's size when known (else one `stat`), the tail
 *   read's size, and the expected store id, hash and pack id.
 * @returns The decoded TOC.
 * @throws {CorruptObjectError} for anything truncated, malformed or foreign.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodePack, readPackToc } from "./pack.ts";
 * import { MemoryDriver } from "../drivers/memory.ts";
 * const storeId = "0123456789abcdef0123456789abcdef";
 * const driver = new MemoryDriver();
 * const pack = encodePack({
 *   packId: "01arz3ndektsv4rrffq69g5fav", storeId, hash: "blake3", blobs: [], manifests: [],
 * });
 * await driver.put("packs/01arz/01arz3ndektsv4rrffq69g5fav", pack);
 * const toc = await readPackToc(driver, "packs/01arz/01arz3ndektsv4rrffq69g5fav", {
 *   size: pack.length, storeId,
 * });
 * assert.deepEqual([toc.blobs.length, toc.manifests.length], [0, 0]);
 * ```
 */
export async function readPackToc(
  driver: PackSource,
  key: string,
  options: ReadPackTocOptions = {},
): Promise<PackToc> {
  const size = options.size ?? (await driver.stat(key)).size;
  if (!Number.isSafeInteger(size) || size < 0) {
    throw new InvalidArgumentError(`pack size must be a non-negative integer, got ${size}`);
  }
  const tailGuess = options.tailGuess ?? DEFAULT_TAIL_GUESS;
  if (!Number.isSafeInteger(tailGuess) || tailGuess < 0) {
    throw new InvalidArgumentError(`tailGuess must be a non-negative integer, got ${tailGuess}`);
  }
  if (size < MIN_PACK_BYTES) {
    throw new CorruptObjectError(
      key,
      `truncated: ${size} bytes, a pack needs at least ${MIN_PACK_BYTES}`,
    );
  }
  const tailLength = Math.min(size, Math.max(tailGuess, PACK_TRAILER_BYTES));
  const tailStart = size - tailLength;
  const tail = await readExactly(driver, key, tailStart, tailLength);
  const trailer = parsePackTrailer(key, tail);
  if (tailStart === 0) parsePackHeader(key, tail);
  const trailerStart = size - PACK_TRAILER_BYTES;
  if (trailer.tocOffset + trailer.tocLength !== trailerStart) {
    throw new CorruptObjectError(
      key,
      `the trailer puts the TOC at ${trailer.tocOffset} + ${trailer.tocLength} bytes, ` +
        `but the pack is ${size} bytes (TOC must end at ${trailerStart})`,
    );
  }
  let toc: Uint8Array;
  if (trailer.tocOffset >= tailStart) {
    toc = tail.subarray(trailer.tocOffset - tailStart, trailerStart - tailStart);
  } else {
    toc = await readExactly(driver, key, trailer.tocOffset, trailer.tocLength);
  }
  return decodePackToc(key, toc, trailer, options);
}

async function readExactly(
  driver: PackSource,
  key: string,
  offset: number,
  length: number,
): Promise<Uint8Array> {
  const bytes = await driver.getRange(key, offset, length);
  if (bytes.length !== length) {
    throw new CorruptObjectError(
      key,
      `truncated: read ${bytes.length} bytes at offset ${offset}, expected ${length}`,
    );
  }
  return bytes;
}

/**
 * Turns a blob's stored bytes, already read, into its raw bytes: decompresses
 * them as its entry says (never past its raw length) and checks that the raw
 * bytes hash to its id. Readers that fetch many blobs in one ranged read
 * (verification, garbage collection) use this; {@linkcode readBlobFromPack}
 * is this after one read.
 *
 * @param ref The pack's key and the blob's id, offset and lengths (its compression
 *   is inferred from them when not given).
 * @param stored Its stored bytes (exactly `storedLength`).
 * @param options The store's hash algorithm.
 * @returns The raw bytes.
 * @throws {CorruptObjectError} naming the pack and the blob when the bytes do
 *   not decompress to exactly the raw length or do not match the id.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { hashBytes } from "./hashing.ts";
 * import { decodeStoredBlob } from "./pack.ts";
 * const raw = new TextEncoder().encode("as it is");
 * const id = hashBytes("blake3", raw);
 * const ref = { key: "packs/p", id, offset: 16, storedLength: raw.length };
 * assert.deepEqual(decodeStoredBlob(ref, raw, { hash: "blake3" }), raw);
 * ```
 */
export function decodeStoredBlob(
  ref: PackBlobRef,
  stored: Uint8Array,
  options: ReadBlobOptions,
): Uint8Array {
  const keys = options.keys;
  const over = overheadOf(keys);
  const rawLength = ref.rawLength ?? ref.storedLength - over;
  const compression = ref.compression ?? (ref.storedLength - over < rawLength ? "zstd" : "none");
  if (stored.length !== ref.storedLength) {
    throw new CorruptObjectError(
      ref.key,
      `blob ${ref.id} at offset ${ref.offset}: ${stored.length} stored bytes, expected ${ref.storedLength}`,
    );
  }
  if (compression === "none" && rawLength !== ref.storedLength - over) {
    throw new CorruptObjectError(
      ref.key,
      `blob ${ref.id} at offset ${ref.offset}: raw length ${rawLength} ≠ stored length ${ref.storedLength} without compression`,
    );
  }
  let inner = stored;
  if (keys !== undefined) {
    inner = keys.open(AAD.blob(ref.id), stored) ??
      corruptBlob(ref, "its sealed bytes fail authentication (tampered, or moved from elsewhere)");
  }
  const raw = compression === "zstd"
    ? decompressExactly(ref.key, inner, rawLength, `blob ${ref.id} at offset ${ref.offset}`)
    : inner;
  const actual = keys === undefined ? hashBytes(options.hash, raw) : keys.ids.bytes(raw);
  if (actual !== ref.id) {
    throw new CorruptObjectError(
      ref.key,
      `blob ${ref.id} at offset ${ref.offset} does not match its id (its ${options.hash} is ${actual})`,
    );
  }
  return raw;
}

function corruptBlob(ref: PackBlobRef, reason: string): never {
  throw new CorruptObjectError(ref.key, `blob ${ref.id} at offset ${ref.offset}: ${reason}`);
}

/**
 * Reads one blob from a pack with one ranged read, decompresses it when it
 * is stored compressed (never past its raw length) and checks that its raw
 * bytes hash to its id.
 *
 * @param driver The Location's driver.
 * @param ref The pack's key and the blob's id, offset and lengths.
 * @param options The store's hash algorithm.
 * @returns The blob's raw bytes.
 * @throws {CorruptObjectError} when fewer bytes come back, they do not
 *   decompress to the raw length, or they do not match the id.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { hashBytes } from "./hashing.ts";
 * import { encodePack, readBlobFromPack, readPackToc } from "./pack.ts";
 * import { MemoryDriver } from "../drivers/memory.ts";
 *
 * const storeId = "0123456789abcdef0123456789abcdef";
 * const bytes = new TextEncoder().encode("body");
 * const id = hashBytes("blake3", bytes);
 * const driver = new MemoryDriver();
 * await driver.put("packs/p", encodePack({
 *   packId: "01arz3ndektsv4rrffq69g5fav", storeId, hash: "blake3",
 *   blobs: [{ id, kind: "regular", bytes }], manifests: [],
 * }));
 * const { blobs } = await readPackToc(driver, "packs/p");
 * const back = await readBlobFromPack(driver, { key: "packs/p", ...blobs[0]! }, { hash: "blake3" });
 * assert.deepEqual(new TextDecoder().decode(back), "body");
 * ```
 */
export async function readBlobFromPack(
  driver: PackSource,
  ref: PackBlobRef,
  options: ReadBlobOptions,
): Promise<Uint8Array> {
  if (!isBlobId(ref.id)) throw new InvalidArgumentError(`not a blob id: ${JSON.stringify(ref.id)}`);
  const bytes = await readExactly(driver, ref.key, ref.offset, ref.storedLength);
  return decodeStoredBlob(ref, bytes, options);
}
