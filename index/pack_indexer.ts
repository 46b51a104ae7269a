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
import { CorruptObjectError } from "../errors.ts";
import { retry } from "../drivers/retrying.ts";
import type { HashAlgorithm } from "../format/hashing.ts";
import type { IndexedPack, StoreIndex } from "./store_index.ts";
import type { ManifestStorage } from "../format/config.ts";
import { readManifestLogEntry } from "./manifest_log.ts";
import type { Manifest } from "../format/manifest.ts";
import { readPackToc } from "../format/pack.ts";
import { isUlid } from "../format/ulid.ts";

import { parsePackKey } from "../layout.ts";

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

  let next = 0;
  let failure: unknown;
  const work = async () => {
    while (failure === undefined && next < packs.length) {
      options.signal?.throwIfAborted();
      const info = packs[next++]!;
      const packId = parsePackKey(info.key);
      if (packId === undefined || !isUlid(packId)) {
        result.problems.push({ key: info.key, reason: "not a pack id" });
        continue;
      }
      let manifests: Manifest[];
      let indexed: IndexedPack;
      try {
        const toc = await retry(() =>
          readPackToc(driver, info.key, {
            size: info.size,
            storeId: options.storeId,
            hash: options.hash,
            packId,
          }), { ...policy, operation: "read", key: info.key });
        manifests = toc.manifests;
        if (readLog) {
          const logged = await retry(
            () => readManifestLogEntry(options.hostStorage!, packId, options.storeId),
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
        };
      } catch (e) {
        if (e instanceof CorruptObjectError) {
          result.problems.push({ key: e.key, reason: e.reason });
          continue;
        }
        failure ??= e;
        return;
      }
      result.packsIndexed++;
      result.manifestsScanned += indexed.manifests.length;
      result.blobsRegistered += indexed.blobs.length;
      pending.push(indexed);
      pendingManifests += indexed.manifests.length;
      if (pendingManifests >= batchSize || pending.length >= 64) flush();
    }
  };
  await Promise.all(Array.from({ length: Math.min(workers, Math.max(1, packs.length)) }, work));
  if (failure !== undefined) throw failure;
  flush();
  return result;
}
