/**
 * Where the StoreIndex is kept between processes (`docs/FORMAT.md` §3): index
 * snapshots on the Location and the host cache in the host storage. Both use
 * the snapshot codec of `format/snapshot.ts`; this module does their I/O.
 *
 * {@linkcode writeIndexSnapshot} is the one snapshot writer: the store's
 * periodic and on-demand snapshots, the end of a rebuild and a migration all
 * go through it. It prunes to the `snapshotsKept` of the config it is given,
 * which callers take from the config in force *now* (a rebuild passes the
 * config it resolved, not the one the handle opened with).
 *
 * @module
 */

import { type Driver, NotFoundError } from "../drivers/driver.ts";
import { CapsaError, CorruptObjectError } from "../errors.ts";
import type { StoreConfig } from "../format/config.ts";
import { decodeSnapshot, encodeSnapshot, MAX_SNAPSHOT_BYTES } from "../format/snapshot.ts";
import { UlidGenerator } from "../format/ulid.ts";
import { StoreIndex } from "../index/store_index.ts";
import { HOST_CACHE_KEY, SNAPSHOT_PREFIX } from "../layout.ts";
import type { EventBus } from "./events.ts";
import type { IndexSource } from "./types.ts";

/**
 * Encodes an index as a snapshot (the host cache uses the same encoding).
 * @param index The index.
 * @param storeId The store.
 * @param createdAt When (ms).
 * @returns The snapshot's bytes.
 */
export function encodeIndexSnapshot(
  index: StoreIndex,
  storeId: string,
  createdAt: number,
): Uint8Array {
  return encodeSnapshot({
    storeId,
    schemaVersion: index.schemaVersion,
    highWaterMark: index.highWaterMark(),
    createdAt,
  }, index.export());
}

/**
 * The snapshot keys of a store, newest first. A failed listing throws: it is
 * never taken to mean "no snapshot".
 * @param driver The Location.
 * @returns The keys.
 */
export async function listSnapshots(driver: Driver): Promise<string[]> {
  const keys: string[] = [];
  for await (const info of driver.list(SNAPSHOT_PREFIX)) keys.push(info.key);
  return keys.reverse();
}

/**
 * Deletes every snapshot but the newest `keep`, and never `except`.
 * @param driver The Location.
 * @param keep How many to keep (the config's `snapshotsKept`).
 * @param except A snapshot never deleted (the one just written, whatever its clock said).
 */
export async function pruneSnapshots(driver: Driver, keep: number, except?: string): Promise<void> {
  for (const key of (await listSnapshots(driver)).slice(keep)) {
    if (key !== except) await driver.delete(key);
  }
}

/** Options of {@linkcode writeIndexSnapshot}. */
export interface WriteSnapshotOptions {
  /** The store. */
  storeId: string;
  /** The config in force now: its `snapshotsKept` bounds the pruning. */
  config: Pick<StoreConfig, "snapshotsKept">;
  /** The clock. */
  clock: () => number;
  /** The id generator of the snapshot key (default: a new one on `clock`). */
  ids?: UlidGenerator;
  /** Prune older snapshots after writing (default `true`). */
  prune?: boolean;
}

/** What {@linkcode writeIndexSnapshot} wrote. */
export interface WrittenSnapshot {
  /** The snapshot's key. */
  key: string;
  /** Its bytes (a caller may write the same bytes as the host cache). */
  bytes: Uint8Array;
  /** The high-water mark it carries. */
  highWaterMark: string;
}

/**
 * Writes an index snapshot to the Location, then keeps only the newest
 * `config.snapshotsKept` (the new one always stays).
 * @param driver The Location.
 * @param index The index.
 * @param options The store, the config in force, the clock.
 * @returns The key, bytes and high-water mark written.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MemoryDriver } from "../drivers/memory.ts";
 * import { StoreIndex } from "../index/store_index.ts";
 * import { listSnapshots, writeIndexSnapshot } from "./persistence.ts";
 *
 * const driver = new MemoryDriver();
 * const index = await StoreIndex.create("s1");
 * for (let i = 0; i < 3; i++) {
 *   await writeIndexSnapshot(driver, index, { storeId: "s1", config: { snapshotsKept: 2 }, clock: Date.now });
 * }
 * assert.equal((await listSnapshots(driver)).length, 2);
 * index.close();
 * ```
 */
export async function writeIndexSnapshot(
  driver: Driver,
  index: StoreIndex,
  options: WriteSnapshotOptions,
): Promise<WrittenSnapshot> {
  const ids = options.ids ?? new UlidGenerator({ clock: options.clock });
  const key = SNAPSHOT_PREFIX + ids.next();
  const highWaterMark = index.highWaterMark();
  const bytes = encodeIndexSnapshot(index, options.storeId, options.clock());
  await driver.put(key, bytes);
  if (options.prune ?? true) await pruneSnapshots(driver, options.config.snapshotsKept, key);
  return { key, bytes, highWaterMark };
}

/** What {@linkcode loadNewestIndex} found. */
export interface IndexFound {
  /** The snapshot used, or `undefined` when none was valid. */
  key: string | undefined;
  /** The loaded index (when `key` is set). */
  index: StoreIndex | undefined;
  /** Snapshots newer than the one used (or all) that failed a check, with why. */
  rejected: Array<{ key: string; reason: string }>;
}

/**
 * Loads the newest snapshot that passes every check — its frame, checksum and
 * store id, and then the database itself. Corrupt ones are skipped and
 * reported; an I/O failure is thrown, never treated as "absent".
 * @param driver The Location.
 * @param storeId The store.
 * @returns The index and its snapshot key, or none, with the rejected snapshots.
 */
export async function loadNewestIndex(driver: Driver, storeId: string): Promise<IndexFound> {
  const rejected: Array<{ key: string; reason: string }> = [];
  for (const key of await listSnapshots(driver)) {
    let bytes: Uint8Array;
    try {
      const info = await driver.stat(key);
      if (info.size > MAX_SNAPSHOT_BYTES) {
        rejected.push({ key, reason: `${info.size} bytes is larger than any snapshot` });
        continue;
      }
      bytes = await driver.get(key);
    } catch (e) {
      if (e instanceof NotFoundError) continue; // deleted by a concurrent prune
      throw e;
    }
    try {
      const { db } = decodeSnapshot(key, bytes, storeId);
      return { key, index: await StoreIndex.load(db, { storeId, key }), rejected };
    } catch (e) {
      if (!(e instanceof CorruptObjectError)) throw e;
      rejected.push({ key, reason: e.reason });
    }
  }
  return { key: undefined, index: undefined, rejected };
}

/** What {@linkcode loadIndex} found. */
export interface LoadedIndex {
  /** The index (empty when nothing usable was found). */
  index: StoreIndex;
  /** Where it came from. */
  source: IndexSource;
  /** `host:index/cache` or the snapshot's key; `undefined` for an empty start. */
  loadedFrom: string | undefined;
}

/**
 * Loads the index at open: the host cache, else the newest valid snapshot,
 * else an empty one. A damaged cache or snapshot is only a warning event.
 * @param driver The Location.
 * @param host The host storage, if any.
 * @param context The store id, and where warnings go.
 * @returns The index and its source (not yet caught up).
 */
export async function loadIndex(
  driver: Driver,
  host: Driver | undefined,
  context: { storeId: string; bus: EventBus; clock: () => number },
): Promise<LoadedIndex> {
  const { storeId, bus, clock } = context;
  const warn = (code: string, message: string) =>
    bus.publish({ type: "warning", at: clock(), storeId, code, message });
  if (host) {
    const where = `host:${HOST_CACHE_KEY}`;
    try {
      const { header, db } = decodeSnapshot(where, await host.get(HOST_CACHE_KEY), storeId);
      const index = await StoreIndex.load(db, { storeId, key: where });
      // Unchanged (not migrated): closing need not write the cache again.
      if (index.schemaVersion === header.schemaVersion) index.markHostCacheCurrent();
      return { index, source: "host-cache", loadedFrom: where };
    } catch (e) {
      if (!(e instanceof NotFoundError)) {
        if (!(e instanceof CapsaError)) throw e;
        // A damaged cache is only a cache: note it and fall back to a snapshot.
        warn(
          "host_cache_unusable",
          `the host cache of the index is unusable (${e.message}); loading from the Location`,
        );
      }
    }
  }
  const found = await loadNewestIndex(driver, storeId);
  for (const r of found.rejected) {
    warn("snapshot_rejected", `index snapshot ${r.key} is unusable: ${r.reason}`);
  }
  if (found.index) return { index: found.index, source: "snapshot", loadedFrom: found.key };
  return { index: await StoreIndex.create(storeId), source: "empty", loadedFrom: undefined };
}

/**
 * Writes the host cache of the index (atomically: the host driver's put is).
 * @param host The host storage.
 * @param bytes The encoded index ({@linkcode encodeIndexSnapshot}).
 */
export async function writeHostCache(host: Driver, bytes: Uint8Array): Promise<void> {
  await host.put(HOST_CACHE_KEY, bytes);
}

/**
 * When a store handle takes its next periodic snapshot: after
 * `snapshotEveryPacks` packs, or `snapshotIntervalMs` after the last one.
 */
export class SnapshotSchedule {
  #packs = 0;
  #lastAt = 0;
  readonly #clock: () => number;

  /** @param clock The handle's clock. */
  constructor(clock: () => number) {
    this.#clock = clock;
  }

  /**
   * Counts a pack written.
   * @param config The config in force.
   * @returns Whether a snapshot is due.
   */
  packWritten(config: Pick<StoreConfig, "snapshotEveryPacks" | "snapshotIntervalMs">): boolean {
    this.#packs++;
    const byCount = config.snapshotEveryPacks > 0 && this.#packs >= config.snapshotEveryPacks;
    const byTime = config.snapshotIntervalMs > 0 && this.#lastAt > 0 &&
      this.#clock() - this.#lastAt >= config.snapshotIntervalMs;
    if (this.#lastAt === 0) this.#lastAt = this.#clock();
    return byCount || byTime;
  }

  /** Notes a snapshot written: both counts start again. */
  snapshotWritten(): void {
    this.#packs = 0;
    this.#lastAt = this.#clock();
  }
}
