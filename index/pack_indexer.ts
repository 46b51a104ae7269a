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
import { CapsaError, CorruptObjectError } from "../errors.ts";
import type { HashAlgorithm } from "../format/hashing.ts";
import type { IndexedPack, StoreIndex } from "./store_index.ts";
import type { ManifestStorage } from "../format/config.ts";
import { readManifestLogEntry } from "../format/manifest_log.ts";
import type { Manifest } from "../format/manifest.ts";
import { readPackToc } from "../format/pack.ts";
import { isUlid } from "../format/ulid.ts";
import { pool } from "../pool.ts";

export { LOOSE_BLOB_PREFIX, looseBlobKey, PACK_PREFIX, packKey } from "../layout.ts";
import { PACK_PREFIX } from "../layout.ts";

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

async function retrying<T>(attempts: number, fn: () => Promise<T>): Promise<T> {
  for (let i = 1;; i++) {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof CorruptObjectError || i >= attempts) throw e;
      if (e instanceof CapsaError && !e.retryable && e.code !== "transient") throw e;
      await new Promise((r) => setTimeout(r, 20 * 2 ** i));
    }
  }
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
  const attempts = options.attempts ?? 3;
  const workers = Math.max(1, options.parallelism ?? 8);
  const readLog = options.manifestStorage !== "Remote" && options.hostStorage !== undefined;
  const batchSize = Math.max(1, options.batchSize ?? 1);
  let pending: IndexedPack[] = [];
  let pendingManifests = 0;
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
    const packId = info.key.slice(PACK_PREFIX.length);
    if (!isUlid(packId)) {
      result.problems.push({ key: info.key, reason: "not a pack id" });
      return;
    }
    let manifests: Manifest[];
    let indexed: IndexedPack;
    try {
      const toc = await retrying(attempts, () =>
        readPackToc(driver, info.key, {
          size: info.size,
          storeId: options.storeId,
          hash: options.hash,
          packId,
        }));
      manifests = toc.manifests;
      if (readLog) {
        const logged = await retrying(
          attempts,
          () => readManifestLogEntry(options.hostStorage!, packId, options.storeId),
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
      };
    } catch (e) {
      if (e instanceof CorruptObjectError) {
        result.problems.push({ key: e.key, reason: e.reason });
        return;
      }
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
