/**
 * Reads pack TOCs (and host manifest log entries) and records them in a
 * StoreIndex. Shared by a store's catch-up on open or `refresh()` and by the
 * RebuildIndexAgent.
 *
 * A TOC that cannot be *parsed* is reported with its key and skipped; one that
 * cannot be *read* (I/O) is retried, then fails the whole operation: a failed
 * read means "unknown", never "absent".
 *
 * @module
 */

import type { Driver, ObjectInfo } from "../drivers/driver.ts";
import { CorruptObjectError, NotFoundError } from "../errors.ts";
import { retry } from "../drivers/retrying.ts";
import type { HashAlgorithm } from "../format/hashing.ts";
import type { IndexedPack, StoreIndex } from "./store_index.ts";
import type { ManifestStorage } from "../format/config.ts";
import { readManifestLogEntry } from "./manifest_log.ts";
import type { Manifest } from "../format/manifest.ts";
import { readPackToc } from "../format/pack.ts";
import { DecompressScratch } from "../format/compression.ts";
import type { StoreKeys } from "../format/crypto.ts";
import { isUlid, ulidFloor, ulidTime } from "../format/ulid.ts";
import { pool } from "../pool.ts";

import { PACK_PREFIX, packKey, parsePackKey } from "../layout.ts";

/**
 * How far before its high-water mark a catch-up lists the packs again. It
 * covers the longest a commit may take ({@linkcode MAX_COMMIT_MS}) plus the
 * clock difference between any two parties ({@linkcode MAX_CLOCK_SKEW_MS},
 * twice), with room to spare (docs/FORMAT.md §7).
 */
export const CATCH_UP_OVERLAP_MS = 15 * 60_000;

/**
 * The largest difference allowed between a writer's pack clock and the
 * Location's clock. Writers measure theirs and correct their pack ids; a
 * lister never lets its high-water mark pass its own clock plus this.
 */
export const MAX_CLOCK_SKEW_MS = 2 * 60_000;

/**
 * The longest a pack may take from the moment its id is drawn to the moment
 * it is durable. A commit that took longer is refused before it resolves.
 */
export const MAX_COMMIT_MS = 5 * 60_000;

/** What {@linkcode listPacksSinceMark} found. */
export interface PackListing {
  /** The packs listed that the index does not hold, in key order. */
  missing: ObjectInfo[];
  /**
   * The high-water mark this listing earns once `missing` is indexed: the
   * last pack id listed, but never past the lister's clock plus
   * {@linkcode MAX_CLOCK_SKEW_MS} (a pack from a clock running ahead must be
   * listed again later). `undefined` when nothing was listed.
   */
  listedThrough: string | undefined;
}

/**
 * Lists the packs from the index's high-water mark less
 * {@linkcode CATCH_UP_OVERLAP_MS} (every pack when the index has no mark)
 * and returns those the index does not hold. The caller indexes them, then
 * moves the mark with `index.setHighWaterMark(listing.listedThrough)`: the
 * mark says what was *listed*, never what this process wrote.
 *
 * @param driver The Location.
 * @param index The index.
 * @param now The lister's clock, read before the listing starts.
 * @param options `all` lists every pack whatever the mark (a rebuild diffs
 *   the whole listing against what its index holds); `signal` stops it.
 * @returns The packs to index and the mark earned.
 */
export async function listPacksSinceMark(
  driver: Driver,
  index: StoreIndex,
  now: number,
  options: { all?: boolean; signal?: AbortSignal | undefined } = {},
): Promise<PackListing> {
  const mark = options.all ? "" : index.highWaterMark();
  const startAfter = mark === ""
    ? undefined
    : packKey(ulidFloor(Math.max(0, ulidTime(mark) - CATCH_UP_OVERLAP_MS)));
  const missing: ObjectInfo[] = [];
  let last: string | undefined;
  for await (
    const info of driver.list(PACK_PREFIX, startAfter === undefined ? {} : { startAfter })
  ) {
    options.signal?.throwIfAborted();
    const packId = parsePackKey(info.key);
    if (packId !== undefined && (last === undefined || packId > last)) last = packId;
    if (!index.hasPack(packId ?? "")) missing.push(info);
  }
  const ceiling = ulidFloor(now + MAX_CLOCK_SKEW_MS);
  const listedThrough = last === undefined ? undefined : last < ceiling ? last : ceiling;
  return { missing, listedThrough };
}

/** A problem found while indexing: the object and what is wrong with it. */
export interface IndexingProblem {
  /** The object's key. */
  key: string;
  /** What is wrong. */
  reason: string;
}

/** Options of {@linkcode indexPacks}. */
export interface IndexPacksOptions {
  /** The store. */
  storeId: string;
  /** Its hash algorithm. */
  hash: HashAlgorithm;
  /** An encrypted store's keys. */
  keys?: StoreKeys | undefined;
  /** Where manifests live. */
  manifestStorage: ManifestStorage;
  /** The host storage (for the manifest log), when there is one. */
  hostStorage?: Driver | undefined;
  /** Concurrent TOC reads (default 8). */
  parallelism?: number;
  /** Attempts per read before a failure is fatal (default 3). */
  attempts?: number;
  /** Called after each pack is indexed. */
  onPack?: (info: { packId: string; manifests: number; blobs: number; added: number }) => void;
  /** Stops the work. */
  signal?: AbortSignal | undefined;
  /** Indexes `IndexedPack`s in transactions of this many manifests at least (default: one per pack). */
  batchSize?: number;
}

/** What {@linkcode indexPacks} did. */
export interface IndexPacksResult {
  /** Packs whose TOC was read and parsed. */
  packsIndexed: number;
  /** Manifests read. */
  manifestsScanned: number;
  /** Manifests new to the index. */
  manifestsIndexed: number;
  /** Blob entries recorded. */
  blobsRegistered: number;
  /** Unparsable TOCs and manifest log entries. */
  problems: IndexingProblem[];
}

/**
 * Reads the TOCs of `packs` with `parallelism` workers and indexes them.
 *
 * @param driver The Location.
 * @param index The index to fill.
 * @param packs The packs to read (from a listing: key and size).
 * @param options The store's identity, the manifest storage and tuning.
 * @returns Counts and the problems found.
 */
export async function indexPacks(
  driver: Driver,
  index: StoreIndex,
  packs: readonly ObjectInfo[],
  options: IndexPacksOptions,
): Promise<IndexPacksResult> {
  const result: IndexPacksResult = {
    packsIndexed: 0,
    manifestsScanned: 0,
    manifestsIndexed: 0,
    blobsRegistered: 0,
    problems: [],
  };
  // Reads are retried here because the driver need not be a RetryingDriver
  // (localfs is not); a read that keeps failing fails the whole operation.
  const policy = { maxAttempts: options.attempts ?? 3, baseDelayMs: 40, signal: options.signal };
  const workers = Math.max(1, options.parallelism ?? 8);
  const readLog = options.manifestStorage !== "Remote" && options.hostStorage !== undefined;
  const batchSize = Math.max(1, options.batchSize ?? 1);
  let pending: IndexedPack[] = [];
  let pendingManifests = 0;
  // Every TOC is decompressed into one buffer (each is decoded at once, synchronously, and none
  // of its bytes kept): a fresh buffer per TOC cost 0.5 s of a 200,000-file rebuild here.
  const scratch = new DecompressScratch();
  const flush = () => {
    if (pending.length === 0) return;
    const batch = pending;
    pending = [];
    pendingManifests = 0;
    index.transaction(() => {
      for (const p of batch) {
        const added = index.indexPack(p, { nested: true });
        result.manifestsIndexed += added;
        options.onPack?.({
          packId: p.pack.packId,
          manifests: p.manifests.length,
          blobs: p.blobs.length,
          added,
        });
      }
    });
  };

  await pool(packs, async (info) => {
    const packId = parsePackKey(info.key);
    if (packId === undefined || !isUlid(packId)) {
      result.problems.push({ key: info.key, reason: "not a pack id" });
      return;
    }
    // Garbage collection retired it: never indexed again, and it may be deleted by now.
    if (index.isRetired(packId)) return;
    let manifests: Manifest[];
    let indexed: IndexedPack;
    try {
      const toc = await retry(() =>
        readPackToc(driver, info.key, {
          size: info.size,
          storeId: options.storeId,
          hash: options.hash,
          packId,
          keys: options.keys,
          scratch,
        }), { ...policy, operation: "read", key: info.key });
      manifests = toc.manifests;
      if (readLog) {
        const logged = await retry(
          () => readManifestLogEntry(options.hostStorage!, packId, options.storeId, options.keys),
          { ...policy, operation: "read", key: packId },
        ).catch((e) => {
          if (e instanceof CorruptObjectError) {
            result.problems.push({ key: e.key, reason: e.reason });
            return undefined;
          }
          throw e;
        });
        if (logged) manifests = [...manifests, ...logged];
      }
      indexed = {
        pack: {
          packId,
          size: info.size,
          blobCount: toc.blobs.length,
          manifestCount: toc.manifests.length,
        },
        blobs: toc.blobs.map((b) => ({
          blobId: b.id,
          kind: b.kind,
          rawSize: b.rawLength,
          storedSize: b.storedLength,
          packId,
          offset: b.offset,
        })),
        manifests: manifests.map((m) => ({ ...m, packId })),
        ...(toc.supersedes.length > 0 ? { supersedes: toc.supersedes } : {}),
      };
    } catch (e) {
      if (e instanceof CorruptObjectError) {
        result.problems.push({ key: e.key, reason: e.reason });
        return;
      }
      // Listed, then gone: only garbage collection deletes a pack (docs/FORMAT.md §8), after
      // publishing a run that the next catch-up applies.
      if (e instanceof NotFoundError) return;
      throw e;
    }
    result.packsIndexed++;
    result.manifestsScanned += indexed.manifests.length;
    result.blobsRegistered += indexed.blobs.length;
    pending.push(indexed);
    pendingManifests += indexed.manifests.length;
    if (pendingManifests >= batchSize || pending.length >= 64) flush();
  }, { concurrency: workers, signal: options.signal });
  flush();
  return result;
}
