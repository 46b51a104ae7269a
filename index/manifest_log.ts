/**
 * Reading the host-side manifest log (`docs/FORMAT.md` §2.3): one entry per
 * pack, bounded before it is read, decoded by `format/manifest_log.ts`.
 *
 * @module
 */

import { type Driver, NotFoundError } from "../drivers/driver.ts";
import { CorruptObjectError } from "../errors.ts";
import type { Manifest } from "../format/manifest.ts";
import { decodeManifestLogEntry, MAX_MANIFEST_LOG_ENTRY_BYTES } from "../format/manifest_log.ts";
import { manifestLogKey } from "../layout.ts";
import type { StoreKeys } from "../format/crypto.ts";

/**
 * Reads the entry of one pack.
 * @param host The host storage.
 * @param packId The pack.
 * @param storeId The store.
 * @param keys An encrypted store's keys.
 * @returns Its manifests, or `undefined` when the pack has no entry.
 * @throws {CorruptObjectError} for a damaged entry; I/O errors propagate.
 */
export async function readManifestLogEntry(
  host: Driver,
  packId: string,
  storeId: string,
  keys?: StoreKeys,
): Promise<Manifest[] | undefined> {
  const key = manifestLogKey(packId);
  let bytes: Uint8Array;
  try {
    const { size } = await host.stat(key);
    if (size > MAX_MANIFEST_LOG_ENTRY_BYTES) {
      throw new CorruptObjectError(key, `${size} bytes is larger than any entry`);
    }
    bytes = await host.get(key);
  } catch (e) {
    if (e instanceof NotFoundError) return undefined;
    throw e;
  }
  const entry = decodeManifestLogEntry(key, bytes, storeId, keys);
  if (entry.packId !== packId) {
    throw new CorruptObjectError(key, `names pack ${entry.packId}, expected ${packId}`);
  }
  return entry.manifests;
}
