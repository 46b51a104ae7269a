/**
 * Every key capsa uses on a Location, and on a host directory, in one place.
 *
 * Only capsa chooses these keys (user keys live inside manifests), so they are
 * plain: `/`-separated lower-case segments of `[a-z0-9._-]` (the rule every
 * driver enforces, `drivers/driver.ts` `validateKey`), with capsa's own
 * fan-out written into the key. `docs/FORMAT.md` §1 is the normative list.
 *
 * A key of capsa's is never also the folder of other keys (no `K` beside
 * `K/…`), so a driver may store key `K` at path `K` (`localfs` does).
 *
 * Pack keys carry a time fan-out: `packs/<first 5 characters of the pack
 * id>/<pack id>`. Pack ids are ULIDs (`format/ulid.ts`), whose first 10
 * characters are the time, so the 5-character prefix spans 2^25 ms (about
 * 9.3 hours): a writer of one pack a day makes one directory a day, a heavy
 * writer a few dozen a day, each holding what it wrote in those hours. Keys
 * still sort by pack id, so "every pack after pack X" is still a listing of
 * `packs/` that starts after {@linkcode packKey}`(X)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { packKey, parsePackKey } from "./layout.ts";
 *
 * const key = packKey("01j9z3kxabcdefghjkmnpqrstv");
 * assert.equal(key, "packs/01j9z/01j9z3kxabcdefghjkmnpqrstv");
 * assert.equal(parsePackKey(key), "01j9z3kxabcdefghjkmnpqrstv");
 * assert.equal(parsePackKey("packs/01j9z3kxabcdefghjkmnpqrstv"), undefined);
 * ```
 *
 * @module
 */

import { InvalidArgumentError } from "./errors.ts";

/** Replica 1 of the descriptor, at the root of the Location. */
export const DESCRIPTOR_KEY = "store.json";
/** Replica 2 of the descriptor. */
export const DESCRIPTOR_REPLICA_KEY = "system.state/descriptor/store.json";
/** The descriptor replica kept in a host directory (relative to it). */
export const HOST_DESCRIPTOR_KEY = "descriptor/store.json";
/** Where the host keeps its copy of the index (relative to the host directory). */
export const HOST_CACHE_KEY = "index/cache";
/**
 * The Location a default host directory belongs to (relative to it): JSON
 * `{"location": "<canonical Location URL>"}`, written on first use, read by
 * `capsa cache list` and `capsa cache prune`.
 */
export const HOST_LOCATION_KEY = "location.json";
/**
 * The lock file of a default host directory (relative to it): every `capsa`
 * process using the directory holds a shared `flock` on it, and
 * `capsa cache prune` removes only a directory whose lock it can take
 * exclusively.
 */
export const HOST_LOCK_KEY = "in-use.lock";

/** The prefix of every key of the config history. */
export const CONFIG_PREFIX = "system.config/";
/**
 * Where the replica of every config version lives: the same bytes as
 * `system.config/<seq>.json`, so that one damaged file never leaves a store
 * without its config (docs/FORMAT.md §6).
 */
export const CONFIG_REPLICA_PREFIX = "system.state/config/";
/** The key of the pointer to the current config version. */
export const CONFIG_CURRENT_KEY = "system.config/current";
/** The largest config seq: the key spells it in ten digits. */
export const MAX_CONFIG_SEQ = 9_999_999_999;

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
/** Garbage collection's run records (docs/FORMAT.md §8). */
export const GC_RUN_PREFIX = "system.state/gc/runs/";
/** The id of the newest garbage collection run. */
export const GC_EPOCH_KEY = "system.state/gc/epoch";
/** Where a driver may write probe objects (capability checks). */
export const PROBE_PREFIX = "system.state/probe/";
/** Key slots of an encrypted store: `system.keys/<slot id>.json` (docs/FORMAT.md §9.3). */
export const KEY_SLOT_PREFIX = "system.keys/";
/** The replica of each key slot: `system.state/keys/<slot id>.json`. */
export const KEY_SLOT_REPLICA_PREFIX = "system.state/keys/";

/** Where packs live on a Location. */
export const PACK_PREFIX = "packs/";
/** How many leading characters of a pack id name its fan-out folder (about 9.3 hours of ids). */
export const PACK_FANOUT_CHARS = 5;
/** Where loose blobs live on a Location. */
export const LOOSE_BLOB_PREFIX = "blobs/";

/** The host-side manifest log (relative to the host directory). */
export const MANIFEST_LOG_PREFIX = "manifest-log/";

/** A pack id as it appears in a key: 26 characters of lower-case Crockford base 32. */
const PACK_ID_SEGMENT = /^[0-9a-hjkmnp-tv-z]{26}$/;
const CONFIG_VERSION_KEY = /^system\.(?:config|state\/config)\/(\d{10})\.json$/;

/**
 * The key of a pack: its id under a folder named by the id's first
 * {@linkcode PACK_FANOUT_CHARS} characters.
 *
 * @param packId The pack id (a lower-case ULID).
 * @returns `packs/<first 5 characters>/<id>`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { packKey } from "./layout.ts";
 * assert.equal(packKey("01arz3ndektsv4rrffq69g5fav"), "packs/01arz/01arz3ndektsv4rrffq69g5fav");
 * ```
 */
export function packKey(packId: string): string {
  return `${PACK_PREFIX}${packId.slice(0, PACK_FANOUT_CHARS)}/${packId}`;
}

/**
 * The pack id a key names, when the key is where {@linkcode packKey} puts a
 * pack; `undefined` for any other key (a foreign object under `packs/`). The
 * id has the shape of a ULID; whether it is a valid one (first character at
 * most `7`) is the caller's check (`format/ulid.ts` `isUlid`).
 *
 * @param key A key listed under {@linkcode PACK_PREFIX}.
 * @returns The pack id, or `undefined`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parsePackKey } from "./layout.ts";
 * assert.equal(parsePackKey("packs/01arz/01arz3ndektsv4rrffq69g5fav"), "01arz3ndektsv4rrffq69g5fav");
 * assert.equal(parsePackKey("packs/01arz/01bx5zzkbkactav9wevgemmvrz"), undefined); // wrong folder
 * assert.equal(parsePackKey("packs/readme"), undefined);
 * ```
 */
export function parsePackKey(key: string): string | undefined {
  if (!key.startsWith(PACK_PREFIX)) return undefined;
  const rest = key.slice(PACK_PREFIX.length);
  const slash = rest.indexOf("/");
  if (slash !== PACK_FANOUT_CHARS) return undefined;
  const id = rest.slice(slash + 1);
  if (!PACK_ID_SEGMENT.test(id) || !id.startsWith(rest.slice(0, slash))) return undefined;
  return id;
}

/**
 * The key of a loose blob.
 *
 * @param blobId The blob id (lower-case hex).
 * @returns `blobs/<first 2 hex>/<id>`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { looseBlobKey } from "./layout.ts";
 * assert.equal(looseBlobKey("ab" + "0".repeat(62)), "blobs/ab/ab" + "0".repeat(62));
 * ```
 */
export function looseBlobKey(blobId: string): string {
  return `${LOOSE_BLOB_PREFIX}${blobId.slice(0, 2)}/${blobId}`;
}

/**
 * The key of a garbage collection run record.
 *
 * @param runId The run's id (a lower-case ULID).
 * @returns `system.state/gc/runs/<run id>`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { gcRunKey } from "./layout.ts";
 * assert.equal(gcRunKey("01arz3ndektsv4rrffq69g5fav"), "system.state/gc/runs/01arz3ndektsv4rrffq69g5fav");
 * ```
 */
export function gcRunKey(runId: string): string {
  return `${GC_RUN_PREFIX}${runId}`;
}

/**
 * The key of one version of the config history.
 *
 * @param seq The version number, 1 to {@linkcode MAX_CONFIG_SEQ}.
 * @returns `system.config/<seq, ten digits>.json`.
 * @throws {InvalidArgumentError} for a seq out of range.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { configVersionKey } from "./layout.ts";
 * assert.equal(configVersionKey(7), "system.config/0000000007.json");
 * ```
 */
export function configVersionKey(seq: number): string {
  return CONFIG_PREFIX + configFileName(seq);
}

/**
 * The key of the replica of one config version.
 *
 * @param seq The version number, 1 to {@linkcode MAX_CONFIG_SEQ}.
 * @returns `system.state/config/<seq, ten digits>.json`.
 * @throws {InvalidArgumentError} for a seq out of range.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { configReplicaKey } from "./layout.ts";
 * assert.equal(configReplicaKey(7), "system.state/config/0000000007.json");
 * ```
 */
export function configReplicaKey(seq: number): string {
  return CONFIG_REPLICA_PREFIX + configFileName(seq);
}

function configFileName(seq: number): string {
  if (!Number.isSafeInteger(seq) || seq < 1 || seq > MAX_CONFIG_SEQ) {
    throw new InvalidArgumentError(
      `config seq must be an integer in [1, ${MAX_CONFIG_SEQ}], got ${seq}`,
    );
  }
  return `${String(seq).padStart(10, "0")}.json`;
}

/**
 * The seq named by a config version key or its replica's key, or
 * `undefined` for any other key (the pointer, a stray object).
 *
 * @param key A key.
 * @returns The seq, or `undefined`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfigVersionKey } from "./layout.ts";
 * assert.equal(parseConfigVersionKey("system.config/0000000007.json"), 7);
 * assert.equal(parseConfigVersionKey("system.state/config/0000000007.json"), 7);
 * assert.equal(parseConfigVersionKey("system.config/current"), undefined);
 * ```
 */
export function parseConfigVersionKey(key: string): number | undefined {
  const m = CONFIG_VERSION_KEY.exec(key);
  if (m === null) return undefined;
  const seq = Number(m[1]);
  return seq >= 1 ? seq : undefined;
}

/**
 * The key of a pack's entry in the host-side manifest log.
 *
 * @param packId The pack id.
 * @returns `manifest-log/<id>`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { manifestLogKey } from "./layout.ts";
 * assert.equal(manifestLogKey("01arz3ndektsv4rrffq69g5fav"), "manifest-log/01arz3ndektsv4rrffq69g5fav");
 * ```
 */
export function manifestLogKey(packId: string): string {
  return MANIFEST_LOG_PREFIX + packId;
}

/**
 * The key of a clock probe: a tiny object a writer puts, stats (for the
 * Location's time) and deletes (store/clock.ts).
 * @param nonce Lower-case hex, unique to the probe.
 * @returns `system.state/probe/clock-<nonce>`.
 */
export function clockProbeKey(nonce: string): string {
  return `${PROBE_PREFIX}clock-${nonce}`;
}

/**
 * The key of a key slot and of its replica.
 * @param slotId 16 lower-case hex digits.
 * @returns `[system.keys/<id>.json, system.state/keys/<id>.json]`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { keySlotKeys } from "./layout.ts";
 * assert.deepEqual(keySlotKeys("0123456789abcdef")[0], "system.keys/0123456789abcdef.json");
 * ```
 */
export function keySlotKeys(slotId: string): [string, string] {
  return [`${KEY_SLOT_PREFIX}${slotId}.json`, `${KEY_SLOT_REPLICA_PREFIX}${slotId}.json`];
}

/**
 * The slot id of a key slot's key (either copy), or `undefined`.
 * @param key A Location key.
 * @returns The slot id.
 */
export function parseKeySlotKey(key: string): string | undefined {
  const m = /^(?:system\.keys|system\.state\/keys)\/([0-9a-f]{16})\.json$/.exec(key);
  return m?.[1];
}
