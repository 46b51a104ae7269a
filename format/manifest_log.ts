/**
 * The host-side manifest log, used when `StoreConfig.manifestStorage` is
 * `Local` (manifests live only on the host) or `Replicated` (on the host and
 * in the pack TOCs).
 *
 * One entry per pack that committed manifests, at `manifest-log/<pack id>` in
 * the host storage, written after the pack is durable and before the puts it
 * commits resolve. An entry is UTF-8 JSON:
 * `{format: "capsa-manifest-log", version: 1, storeId, packId, manifests, checksum}`
 * where `checksum` is the SHA-256 (hex) of the same JSON without the
 * `checksum` field, and `manifests` are manifests in their JSON form.
 *
 * A store that compresses writes the entry compressed when that saves at
 * least 1/16: the 8 ASCII bytes `CAPSAMLZ`, the JSON's length as a `u32`
 * (little-endian), then one zstd frame of the JSON. A reader tells the two
 * apart by the first byte (`{` or `C`) and never decompresses past the
 * recorded length (docs/FORMAT.md §2.3).
 *
 * An encrypted store seals the entry (either form): the 8 ASCII bytes
 * `CAPSAMLE`, then `nonce ‖ ciphertext ‖ tag` of it, with the pack id as
 * associated data (docs/FORMAT.md §9.4).
 *
 * This module is the pure codec; `index/manifest_log.ts` reads entries from
 * the host storage.
 *
 * @module
 */

import { CorruptObjectError } from "../errors.ts";
import { compressIfWorthIt, decompressExactly, maxCompressedLength } from "./compression.ts";
import { hashBytes } from "./hashing.ts";
import { AAD, type StoreKeys } from "./crypto.ts";
import { type Manifest, manifestToJson, validateManifest } from "./manifest.ts";
import { decodeUtf8 } from "./_json.ts";

/** The largest entry accepted (bounded before reading). */
export const MAX_MANIFEST_LOG_ENTRY_BYTES = 256 * 1024 * 1024;

const enc = new TextEncoder();

/** The magic of a compressed entry (8 ASCII bytes). */
export const MANIFEST_LOG_ZSTD_MAGIC = "CAPSAMLZ";
const ZSTD_HEADER = enc.encode(MANIFEST_LOG_ZSTD_MAGIC);
const ZSTD_HEADER_BYTES = ZSTD_HEADER.length + 4;
/** The magic of a sealed entry (8 ASCII bytes). */
export const MANIFEST_LOG_SEALED_MAGIC = "CAPSAMLE";
const SEALED_HEADER = enc.encode(MANIFEST_LOG_SEALED_MAGIC);

function startsWith(bytes: Uint8Array, magic: Uint8Array): boolean {
  return bytes.length >= magic.length && magic.every((b, i) => bytes[i] === b);
}

/** The pack id an entry's key ends with (`manifest-log/<pack id>`). */
function packIdOfKey(key: string): string {
  return key.slice(key.lastIndexOf("/") + 1);
}

function body(storeId: string, packId: string, manifests: readonly Manifest[]) {
  return {
    format: "capsa-manifest-log",
    version: 1,
    storeId,
    packId,
    manifests: manifests.map(manifestToJson),
  };
}

/**
 * Encodes an entry, compressed when a level is given and that saves 1/16.
 * @param storeId The store. @param packId The pack. @param manifests Its manifests.
 * @param compressionLevel The zstd level (`undefined`: plain JSON).
 * @param keys An encrypted store's keys: the entry is sealed.
 * @returns The bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeManifestLogEntry, encodeManifestLogEntry } from "./manifest_log.ts";
 * const storeId = "0123456789abcdef0123456789abcdef";
 * const bytes = encodeManifestLogEntry(storeId, "01arz3ndektsv4rrffq69g5fav", [], 3);
 * assert.deepEqual(decodeManifestLogEntry("manifest-log/x", bytes, storeId).manifests, []);
 * ```
 */
export function encodeManifestLogEntry(
  storeId: string,
  packId: string,
  manifests: readonly Manifest[],
  compressionLevel?: number,
  keys?: StoreKeys,
): Uint8Array {
  const inner = encodePlain(storeId, packId, manifests, compressionLevel);
  if (keys === undefined) return inner;
  const sealed = keys.seal(AAD.manifestLog(packId), inner);
  const out = new Uint8Array(SEALED_HEADER.length + sealed.length);
  out.set(SEALED_HEADER, 0);
  out.set(sealed, SEALED_HEADER.length);
  return out;
}

function encodePlain(
  storeId: string,
  packId: string,
  manifests: readonly Manifest[],
  compressionLevel: number | undefined,
): Uint8Array {
  const b = body(storeId, packId, manifests);
  const checksum = hashBytes("sha256", enc.encode(JSON.stringify(b)));
  const json = enc.encode(JSON.stringify({ ...b, checksum }));
  if (compressionLevel === undefined || json.length > MAX_MANIFEST_LOG_ENTRY_BYTES) return json;
  const packed = compressIfWorthIt(json, compressionLevel);
  // The 1/16 saving counts the header.
  if (
    packed === undefined || packed.length + ZSTD_HEADER_BYTES > maxCompressedLength(json.length)
  ) {
    return json;
  }
  const out = new Uint8Array(ZSTD_HEADER_BYTES + packed.length);
  out.set(ZSTD_HEADER, 0);
  new DataView(out.buffer).setUint32(ZSTD_HEADER.length, json.length, true);
  out.set(packed, ZSTD_HEADER_BYTES);
  return out;
}

function unpack(key: string, bytes: Uint8Array): Uint8Array {
  if (bytes[0] !== ZSTD_HEADER[0]) return bytes;
  if (bytes.length < ZSTD_HEADER_BYTES) {
    throw new CorruptObjectError(key, `compressed entry truncated to ${bytes.length} bytes`);
  }
  for (let i = 0; i < ZSTD_HEADER.length; i++) {
    if (bytes[i] !== ZSTD_HEADER[i]) throw new CorruptObjectError(key, "not a manifest log entry");
  }
  const rawLength = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    .getUint32(ZSTD_HEADER.length, true);
  if (rawLength > MAX_MANIFEST_LOG_ENTRY_BYTES) {
    throw new CorruptObjectError(
      key,
      `compressed entry's raw length ${rawLength} exceeds ${MAX_MANIFEST_LOG_ENTRY_BYTES}`,
    );
  }
  return decompressExactly(key, bytes.subarray(ZSTD_HEADER_BYTES), rawLength, "entry");
}

/**
 * Decodes and checks an entry.
 * @param key The entry's key, for errors.
 * @param bytes Its bytes.
 * @param storeId The store it must belong to.
 * @param keys An encrypted store's keys (its entries are sealed).
 * @returns The pack id and its manifests.
 * @throws {CorruptObjectError} when anything is wrong, including a compressed
 *   entry that does not decompress to exactly its recorded length.
 */
export function decodeManifestLogEntry(
  key: string,
  bytes: Uint8Array,
  storeId: string,
  keys?: StoreKeys,
): { packId: string; manifests: Manifest[] } {
  if (startsWith(bytes, SEALED_HEADER)) {
    if (keys === undefined) {
      throw new CorruptObjectError(key, "the entry is encrypted and no key was given to read it");
    }
    bytes = keys.open(AAD.manifestLog(packIdOfKey(key)), bytes.subarray(SEALED_HEADER.length)) ??
      (() => {
        throw new CorruptObjectError(key, "the sealed entry fails authentication (tampered)");
      })();
  } else if (keys !== undefined) {
    throw new CorruptObjectError(key, "the entry is not encrypted, in an encrypted store");
  }
  const json = unpack(key, bytes);
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(decodeUtf8(json));
  } catch (cause) {
    throw new CorruptObjectError(key, "not valid UTF-8 JSON", { cause });
  }
  if (typeof v !== "object" || v === null || v.format !== "capsa-manifest-log") {
    throw new CorruptObjectError(key, "not a manifest log entry");
  }
  if (v.version !== 1) {
    throw new CorruptObjectError(key, `unknown manifest log version ${String(v.version)}`);
  }
  if (v.storeId !== storeId) {
    throw new CorruptObjectError(key, `belongs to store ${String(v.storeId)}, expected ${storeId}`);
  }
  if (typeof v.packId !== "string" || !Array.isArray(v.manifests)) {
    throw new CorruptObjectError(key, "missing packId or manifests");
  }
  const { checksum, ...rest } = v;
  if (checksum !== hashBytes("sha256", enc.encode(JSON.stringify(rest)))) {
    throw new CorruptObjectError(key, "checksum mismatch");
  }
  const manifests = v.manifests.map((m, i) =>
    validateManifest(key, m, { storeId, label: `manifest ${i}` })
  );
  return { packId: v.packId, manifests };
}
