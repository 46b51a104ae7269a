/**
 * Index snapshots: copies of the StoreIndex written to the Location at
 * `system.state/index/snapshots/<ULID>`, stamped with how far into the pack
 * stream they reach, so that a lost host cache costs a read of the snapshot
 * plus the packs written after it — not a full scan.
 *
 * ## Encoding (version 2, written; version 1 is still read)
 *
 * ```
 * offset  size  field
 * 0       8     magic "CAPSASNP"
 * 8       2     format version, u16 big-endian (2)
 * 10      2     reserved, zero
 * 12      4     header length H, u32 big-endian (at most 64 KiB)
 * 16      H     header: UTF-8 JSON {storeId, schemaVersion, highWaterMark,
 *               createdAt, dbBytes, compression: "zstd", bodyBytes}
 * 16+H    N     the exported SQLite database as one zstd frame with its
 *               content checksum (N = bodyBytes; dbBytes once decompressed)
 * ```
 *
 * Version 1 has the same frame with the database stored as is and its
 * SHA-256 in the header (`dbSha256`) instead of `compression`/`bodyBytes`.
 * In version 2 the zstd frame's own checksum (XXH64 of the content) and the
 * decompressed length stand for it: hashing the database again would cost
 * as much as decompressing it.
 *
 * An encrypted store seals the body: the header then also holds
 * `cipher: "aes-256-gcm"`, and the body is `nonce ‖ ciphertext ‖ tag` of the
 * zstd frame, with the header's bytes as associated data, so neither can be
 * changed alone (docs/FORMAT.md §9.4). `bodyBytes` counts the sealed body.
 *
 * A snapshot that fails any check — magic, version, header, length,
 * decompression, checksum, store id — is never used ({@linkcode decodeSnapshot}
 * throws {@linkcode CorruptObjectError} naming the object); readers fall back
 * to an older one or a full scan. This module is the pure codec;
 * `store/persistence.ts` lists, loads, writes and prunes snapshots.
 *
 * @module
 */

import { CorruptObjectError } from "../errors.ts";
import { hashBytes } from "./hashing.ts";
import { AAD, SEAL_OVERHEAD, type StoreKeys } from "./crypto.ts";
import { constants, zstdCompressSync, zstdDecompressSync } from "node:zlib";

/** The encoding version written. */
export const SNAPSHOT_VERSION = 2;
/** The zstd level snapshots are written with: fast, since a rebuild waits for it. */
const ZSTD_LEVEL = 1;
/** The largest snapshot accepted (4 GiB): bounds allocation before reading. */
export const MAX_SNAPSHOT_BYTES = 4 * 1024 * 1024 * 1024;

const MAGIC = "CAPSASNP";
const FIXED = 16;
const MAX_HEADER = 64 * 1024;
const enc = new TextEncoder();
const MAGIC_BYTES = enc.encode(MAGIC);
const dec = new TextDecoder("utf-8", { fatal: true });

/** What a snapshot's header records. */
export interface SnapshotHeader {
  /** The store it belongs to. */
  storeId: string;
  /** The index schema version of the database. */
  schemaVersion: number;
  /** The greatest pack id the index holds. */
  highWaterMark: string;
  /** When it was taken (ms). */
  createdAt: number;
  /** Size of the database (decompressed). */
  dbBytes: number;
  /** Version 1: SHA-256 of the database, hex. */
  dbSha256?: string;
  /** Version 2: how the database is stored (`"zstd"`). */
  compression?: "zstd";
  /** Version 2: size of the stored (compressed, and sealed when `cipher` is set) database. */
  bodyBytes?: number;
  /** Version 2, an encrypted store: the body is sealed. */
  cipher?: "aes-256-gcm";
}

/**
 * Encodes a snapshot (version 2: the database compressed with zstd).
 * @param header Everything but the sizes, which are computed.
 * @param db The exported database.
 * @param keys An encrypted store's keys: the body is sealed.
 * @returns The snapshot's bytes.
 */
export function encodeSnapshot(
  header: Omit<SnapshotHeader, "dbBytes" | "dbSha256" | "compression" | "bodyBytes" | "cipher">,
  db: Uint8Array,
  keys?: StoreKeys,
): Uint8Array {
  const body = zstdCompressSync(db, { params: SNAPSHOT_ZSTD_PARAMS });
  return frameSnapshot(header, db.length, body, keys);
}

/** The zstd parameters of a snapshot's body (level and content checksum). */
export const SNAPSHOT_ZSTD_PARAMS: Record<number, number> = {
  [constants.ZSTD_c_compressionLevel]: ZSTD_LEVEL,
  [constants.ZSTD_c_checksumFlag]: 1,
};

/**
 * Frames a snapshot (version 2) around a body compressed elsewhere (a writer
 * that compresses a database file piece by piece).
 * @param header Everything but the sizes.
 * @param dbBytes The database's size, decompressed.
 * @param body The zstd frame (with {@linkcode SNAPSHOT_ZSTD_PARAMS}), whole or in
 *   consecutive pieces.
 * @param keys An encrypted store's keys: the body is sealed.
 * @returns The snapshot's bytes.
 */
export function frameSnapshot(
  header: Omit<SnapshotHeader, "dbBytes" | "dbSha256" | "compression" | "bodyBytes" | "cipher">,
  dbBytes: number,
  body: Uint8Array | readonly Uint8Array[],
  keys?: StoreKeys,
): Uint8Array {
  // A body in pieces (a compressor's output) is copied once, straight into the frame.
  let pieces = body instanceof Uint8Array ? [body] : body;
  if (keys !== undefined && pieces.length !== 1) pieces = [concatPieces(pieces)];
  let bodyLength = 0;
  for (const p of pieces) bodyLength += p.length;
  const full: SnapshotHeader = {
    ...header,
    dbBytes,
    compression: "zstd",
    bodyBytes: bodyLength + (keys === undefined ? 0 : SEAL_OVERHEAD),
    ...(keys === undefined ? {} : { cipher: "aes-256-gcm" as const }),
  };
  const h = enc.encode(JSON.stringify(full));
  if (keys !== undefined) {
    pieces = [keys.seal(AAD.snapshot(h), pieces[0]!)];
    bodyLength = pieces[0]!.length;
  }
  const out = new Uint8Array(FIXED + h.length + bodyLength);
  writeHead(out, 0, h);
  let at = FIXED + h.length;
  for (const p of pieces) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function writeHead(out: Uint8Array, at: number, h: Uint8Array): void {
  out.set(MAGIC_BYTES, at);
  const view = new DataView(out.buffer, out.byteOffset + at, FIXED);
  view.setUint16(8, SNAPSHOT_VERSION);
  view.setUint16(10, 0);
  view.setUint32(12, h.length);
  out.set(h, at + FIXED);
}

/**
 * Frames a snapshot (version 2, not sealed) whose zstd body was written
 * into `out` at `bodyAt` by its maker: the fixed part and the header are
 * written just before the body, and the snapshot is the view from there to
 * the body's end (no copy of the body). `bodyAt` must leave room for them
 * ({@linkcode SNAPSHOT_HEAD_BYTES} always does).
 * @param header Everything but the sizes.
 * @param dbBytes The database's size, decompressed.
 * @param out The buffer holding the body.
 * @param bodyAt Where the body starts in `out`.
 * @param bodyLength The body's length.
 * @returns The snapshot's bytes (a view of `out`).
 */
export function frameSnapshotInPlace(
  header: Omit<SnapshotHeader, "dbBytes" | "dbSha256" | "compression" | "bodyBytes" | "cipher">,
  dbBytes: number,
  out: Uint8Array,
  bodyAt: number,
  bodyLength: number,
): Uint8Array {
  const full: SnapshotHeader = { ...header, dbBytes, compression: "zstd", bodyBytes: bodyLength };
  const h = enc.encode(JSON.stringify(full));
  const start = bodyAt - FIXED - h.length;
  if (start < 0 || h.length > MAX_HEADER) {
    throw new RangeError(`no room for a ${h.length}-byte snapshot header before the body`);
  }
  writeHead(out, start, h);
  return out.subarray(start, bodyAt + bodyLength);
}

function concatPieces(pieces: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of pieces) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of pieces) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * A well-formed snapshot of another store: unusable here, and evidence of
 * which store the Location holds.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CorruptObjectError } from "../errors.ts";
 * import { ForeignSnapshotError } from "./snapshot.ts";
 *
 * const e = new ForeignSnapshotError("system.state/index/snapshots/01", "aaaa", "bbbb");
 * assert.ok(e instanceof CorruptObjectError);
 * assert.equal(e.storeId, "aaaa");
 * ```
 */
export class ForeignSnapshotError extends CorruptObjectError {
  /** The store the snapshot belongs to. */
  readonly storeId: string;
  /**
   * Creates the error.
   * @param key The snapshot's key.
   * @param storeId The store it belongs to.
   * @param expectedStoreId The store it was read for.
   */
  constructor(key: string, storeId: string, expectedStoreId: string) {
    super(key, `belongs to store ${storeId}, expected ${expectedStoreId}`);
    this.storeId = storeId;
  }
}

/** The most bytes {@linkcode readSnapshotHead} needs: the fixed part and the largest header. */
export const SNAPSHOT_HEAD_BYTES: number = FIXED + MAX_HEADER;

/**
 * Checks a snapshot's fixed part and header from its first bytes (at least
 * {@linkcode SNAPSHOT_HEAD_BYTES} of them, or all when it is shorter) and its
 * total length: what a reader that fetches the body in pieces checks first.
 * @param key The snapshot's key, for errors.
 * @param head Its first bytes.
 * @param total Its whole length.
 * @param expectedStoreId The store it must belong to.
 * @returns The header, the encoding version, and where the body starts.
 * @throws {ForeignSnapshotError} for a snapshot of another store.
 * @throws {CorruptObjectError} for anything else wrong.
 */
export function readSnapshotHead(
  key: string,
  head: Uint8Array,
  total: number,
  expectedStoreId: string,
): { header: SnapshotHeader; version: number; bodyOffset: number } {
  if (head.length < FIXED) {
    throw new CorruptObjectError(
      key,
      `truncated: ${total} bytes, the fixed header needs ${FIXED}`,
    );
  }
  if (!MAGIC_BYTES.every((b, i) => head[i] === b)) {
    throw new CorruptObjectError(key, "not an index snapshot (bad magic)");
  }
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const version = view.getUint16(8);
  if (version !== 1 && version !== SNAPSHOT_VERSION) {
    throw new CorruptObjectError(
      key,
      `unknown snapshot format version ${version} (this capsa reads 1 and ${SNAPSHOT_VERSION})`,
    );
  }
  const hLen = view.getUint32(12);
  if (hLen > MAX_HEADER || FIXED + hLen > head.length) {
    throw new CorruptObjectError(key, `header length ${hLen} is out of bounds`);
  }
  let header: SnapshotHeader;
  try {
    header = JSON.parse(dec.decode(head.subarray(FIXED, FIXED + hLen)));
  } catch (cause) {
    throw new CorruptObjectError(key, "the header is not valid JSON", { cause });
  }
  if (
    typeof header !== "object" || header === null || typeof header.storeId !== "string" ||
    !Number.isSafeInteger(header.schemaVersion) || typeof header.highWaterMark !== "string" ||
    !Number.isSafeInteger(header.createdAt) || !Number.isSafeInteger(header.dbBytes) ||
    (version === 1
      ? typeof header.dbSha256 !== "string"
      : header.compression !== "zstd" || !Number.isSafeInteger(header.bodyBytes)) ||
    (header.cipher !== undefined && header.cipher !== "aes-256-gcm")
  ) {
    throw new CorruptObjectError(key, "the header is missing fields or has wrong types");
  }
  if (header.storeId !== expectedStoreId) {
    throw new ForeignSnapshotError(key, header.storeId, expectedStoreId);
  }
  const stored = version === 1 ? header.dbBytes : header.bodyBytes!;
  if (FIXED + hLen + stored !== total) {
    throw new CorruptObjectError(
      key,
      `length mismatch: the header announces ${stored} stored database bytes, ${
        total - FIXED - hLen
      } are present`,
    );
  }
  return { header, version, bodyOffset: FIXED + hLen };
}

/**
 * Checks a snapshot's frame, header and store id, and (version 1) its
 * checksum, without decompressing the database: a reader that decompresses
 * it piece by piece checks the zstd frame's checksum and the length itself.
 * @param key The snapshot's key, for errors.
 * @param bytes Its bytes.
 * @param expectedStoreId The store it must belong to.
 * @param keys An encrypted store's keys (its snapshots are sealed).
 * @returns The header, the encoding version, and the stored database (zstd in
 *   version 2; opened when it was sealed).
 * @throws {ForeignSnapshotError} for a snapshot of another store.
 * @throws {CorruptObjectError} for anything else wrong.
 */
export function openSnapshot(
  key: string,
  bytes: Uint8Array,
  expectedStoreId: string,
  keys?: StoreKeys,
): { header: SnapshotHeader; version: number; body: Uint8Array } {
  const { header, version, bodyOffset } = readSnapshotHead(
    key,
    bytes,
    bytes.length,
    expectedStoreId,
  );
  const hLen = bodyOffset - FIXED;
  let body = bytes.subarray(FIXED + hLen);
  if (header.cipher !== undefined) {
    if (keys === undefined) {
      throw new CorruptObjectError(
        key,
        "the snapshot is encrypted and no key was given to read it",
      );
    }
    body = keys.open(AAD.snapshot(bytes.subarray(FIXED, FIXED + hLen)), body) ??
      (() => {
        throw new CorruptObjectError(key, "the sealed snapshot fails authentication (tampered)");
      })();
  } else if (keys !== undefined) {
    throw new CorruptObjectError(key, "the snapshot is not encrypted, in an encrypted store");
  }
  if (version === 1) {
    if (hashBytes("sha256", body) !== header.dbSha256) {
      throw new CorruptObjectError(key, "database checksum mismatch");
    }
  } else if (header.dbBytes > MAX_SNAPSHOT_BYTES) {
    throw new CorruptObjectError(key, `${header.dbBytes} database bytes is more than any index`);
  }
  return { header, version, body };
}

/**
 * Decodes and checks a snapshot.
 * @param key The snapshot's key, for errors.
 * @param bytes Its bytes.
 * @param expectedStoreId The store it must belong to.
 * @param keys An encrypted store's keys.
 * @returns The header and the database bytes.
 * @throws {ForeignSnapshotError} for a snapshot of another store.
 * @throws {CorruptObjectError} for anything else wrong.
 */
export function decodeSnapshot(
  key: string,
  bytes: Uint8Array,
  expectedStoreId: string,
  keys?: StoreKeys,
): { header: SnapshotHeader; db: Uint8Array } {
  const { header, version, body } = openSnapshot(key, bytes, expectedStoreId, keys);
  if (version === 1) return { header, db: body };
  let db: Uint8Array;
  try {
    // The frame's content checksum is checked by the decompressor.
    const out = zstdDecompressSync(body, {
      maxOutputLength: Math.max(1, header.dbBytes),
      // One output piece of the announced size (and a byte to detect a longer stream): joining
      // default 16 KiB pieces costs more than decompressing (format/compression.ts).
      chunkSize: Math.max(64, header.dbBytes + 1),
    });
    db = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  } catch (cause) {
    throw new CorruptObjectError(
      key,
      `the compressed database is damaged (zstd: ${(cause as Error).message})`,
      { cause },
    );
  }
  if (db.length !== header.dbBytes) {
    throw new CorruptObjectError(
      key,
      `length mismatch: ${db.length} database bytes decompressed, the header announces ${header.dbBytes}`,
    );
  }
  return { header, db };
}
