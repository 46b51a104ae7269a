/**
 * Every key capsa uses on a Location, and on a host directory, in one place.
 *
 * Only capsa chooses these keys (user keys live inside manifests), so they are
 * plain: `/`-separated lower-case segments of `[a-z0-9._-]`, with capsa's own
 * fan-out written into the key. `docs/FORMAT.md` §2 is the normative list;
 * `docs/DESIGN.md` §3 says why.
 *
 * @module
 */

/** Replica 1 of the descriptor, at the root of the Location. */
export const DESCRIPTOR_KEY = "store.json";
/** Replica 2 of the descriptor. */
export const DESCRIPTOR_REPLICA_KEY = "system.state/descriptor/store.json";
/** The descriptor replica kept in a host directory (relative to it). */
export const HOST_DESCRIPTOR_KEY = "descriptor/store.json";

/** The prefix of every key of the config history. */
export const CONFIG_PREFIX = "system.config/";
/** The key of the pointer to the current config version. */
export const CONFIG_CURRENT_KEY = "system.config/current";

/** Where index snapshots live. */
export const SNAPSHOT_PREFIX = "system.state/index/snapshots/";

/** The prefix of everything that belongs to maintenance. */
export const MAINTENANCE_PREFIX = "system.state/maintenance/";
/** The maintenance lease. */
export const LEASE_KEY = "system.state/maintenance/lease";
/** Takeover markers of the lease. */
export const TAKEOVER_PREFIX = "system.state/maintenance/takeover/";
/** Present while an agent holds the store read-only or offline. */
export const MAINTENANCE_MODE_KEY = "system.state/maintenance/mode";
/** Present once the store was moved: where to. */
export const MOVED_KEY = "system.state/moved";
/** Where a driver may write probe objects (capability checks). */
export const PROBE_PREFIX = "system.state/probe/";

/** Where packs live on a Location. */
export const PACK_PREFIX = "packs/";
/** Where loose blobs live on a Location. */
export const LOOSE_BLOB_PREFIX = "blobs/";

/** The host-side manifest log (relative to the host directory). */
export const MANIFEST_LOG_PREFIX = "manifest-log/";

/**
 * The key of a pack.
 * @param packId The pack id.
 * @returns `packs/<id>`.
 */
export function packKey(packId: string): string {
  return PACK_PREFIX + packId;
}

/**
 * The key of a loose blob.
 * @param blobId The blob id.
 * @returns `blobs/<first 2 hex>/<id>`.
 */
export function looseBlobKey(blobId: string): string {
  return `${LOOSE_BLOB_PREFIX}${blobId.slice(0, 2)}/${blobId}`;
}

/**
 * The key of a pack's entry in the host-side manifest log.
 * @param packId The pack id.
 * @returns `manifest-log/<id>`.
 */
export function manifestLogKey(packId: string): string {
  return MANIFEST_LOG_PREFIX + packId;
}
