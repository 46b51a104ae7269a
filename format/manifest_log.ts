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
 * This module is the pure codec; `index/manifest_log.ts` reads entries from
 * the host storage.
 *
 * @module
 */

import { CorruptObjectError } from "../errors.ts";
import { hashBytes } from "./hashing.ts";
import { type Manifest, manifestToJson, validateManifest } from "./manifest.ts";

/** The largest entry accepted (bounded before reading). */
export const MAX_MANIFEST_LOG_ENTRY_BYTES = 256 * 1024 * 1024;

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });

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
 * Encodes an entry.
 * @param storeId The store. @param packId The pack. @param manifests Its manifests.
 * @returns The bytes.
 */
export function encodeManifestLogEntry(
  storeId: string,
  packId: string,
  manifests: readonly Manifest[],
): Uint8Array {
  const b = body(storeId, packId, manifests);
  const checksum = hashBytes("sha256", enc.encode(JSON.stringify(b)));
  return enc.encode(JSON.stringify({ ...b, checksum }));
}

/**
 * Decodes and checks an entry.
 * @param key The entry's key, for errors.
 * @param bytes Its bytes.
 * @param storeId The store it must belong to.
 * @returns The pack id and its manifests.
 * @throws {CorruptObjectError} when anything is wrong.
 */
export function decodeManifestLogEntry(
  key: string,
  bytes: Uint8Array,
  storeId: string,
): { packId: string; manifests: Manifest[] } {
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(dec.decode(bytes));
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
