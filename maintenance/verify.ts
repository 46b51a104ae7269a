/**
 * VerificationAgent: checks that a store is whole, and reports every problem
 * with the object it concerns. It only reads: the Location is left exactly as
 * it was (apart from the lease and the maintenance mode it holds while it
 * runs, both removed at the end).
 *
 * **Structure** (always): every pack the index knows exists with the size the
 * index records, its TOC parses and passes its checksum, and it agrees with
 * the index (blob offsets and lengths, manifest ids, counts); every loose blob
 * the index knows exists with its size; every blob a manifest names exists;
 * packs and loose blobs the index does not know are listed (never deleted).
 *
 * **Data** (`data: true`): the blobs are re-read and re-hashed, all of them or
 * a subset: the `n`-th of `m` slices (a pack or loose blob belongs to the
 * slice given by the SHA-256 of its key, so `m` runs with `n = 1…m` cover each
 * object exactly once, and an object stays in its slice as the store grows),
 * or a random fraction drawn from a seed.
 *
 * A read that fails (I/O, not found after a listing, timeout) is retried, then
 * fails the run: a failed read means "unknown", and is never reported as a
 * missing object.
 *
 * The module runs a little over 600 lines: its problem table, config and
 * stats types are documented where users read them, beside the two passes
 * (structure and data) they describe; splitting them apart would scatter one
 * agent's contract over files.
 *
 * @module
 */

import type { Driver } from "../drivers/driver.ts";
import type { ManifestStorage } from "../format/config.ts";
import { CapsaError, CorruptObjectError, InvalidArgumentError } from "../errors.ts";
import { EventBus } from "../store/events.ts";
import { createHasher, type HashAlgorithm, hashBytes, isBlobId } from "../format/hashing.ts";
import type { PackRecord, StoreIndex } from "../index/store_index.ts";
import { decodeStoredBlob, type PackSource, type PackToc, readPackToc } from "../format/pack.ts";
import { AAD } from "../format/crypto.ts";
import type { Store } from "../store/store.ts";
import { isUlid } from "../format/ulid.ts";
import { retry } from "../drivers/retrying.ts";
import { pool } from "../pool.ts";
import {
  AgentBase,
  type MaintenanceAgent,
  type MaintenanceContext,
  requireIntegers,
} from "./agent.ts";
import { LOOSE_BLOB_PREFIX, looseBlobKey, PACK_PREFIX, packKey, parsePackKey } from "../layout.ts";

/**
 * Which objects the data checks cover: the `n`-th of `m` deterministic slices
 * (`1 ≤ n ≤ m`), or a random `fraction` (0…1) drawn from `seed` (default: a
 * random seed, so each run samples anew).
 */
export type VerifySubset =
  | { slice: readonly [n: number, m: number] }
  | { fraction: number; seed?: number };

/** Configures the VerificationAgent. */
export interface VerifyConfig {
  /** Re-read and re-hash blobs. Default `false` (structure only). */
  data?: boolean;
  /** Restrict the data checks to a subset (requires `data: true`). Default: every blob. */
  subset?: VerifySubset;
  /** Objects checked in parallel. Default 8. */
  parallelism?: number;
  /** The lease's hold time in ms. Default 30 minutes. */
  leaseTTL?: number | string;
  /** Break a live lease held by someone else (loudly: a warning event). Default `false`. */
  force?: boolean;
}

/** The defaults of {@linkcode VerifyConfig}. */
export const VERIFY_DEFAULTS = {
  data: false,
  parallelism: 8,
  leaseTTL: 30 * 60_000,
} as const;

/**
 * What is wrong with an object:
 *
 * | kind | key | when |
 * | --- | --- | --- |
 * | `missing_pack` | `packs/<id>` | the index holds the pack, the Location does not |
 * | `pack_size_mismatch` | `packs/<id>` | the pack's size differs from the index's (its TOC is not read) |
 * | `corrupt_toc` | `packs/<id>` | the TOC or trailer does not parse, is truncated or fails its checksum |
 * | `toc_index_mismatch` | `packs/<id>` | the TOC disagrees with the index (blob offsets or lengths, manifest ids, counts) |
 * | `missing_blob` | the blob id | a manifest names a blob that is nowhere: not in the index, not a loose object |
 * | `blob_hash_mismatch` | `packs/<id>` or `blobs/…` | (data) the stored bytes do not hash to the blob id |
 * | `missing_loose_blob` | `blobs/<2 hex>/<id>` | the index holds the loose blob, the Location does not |
 * | `loose_blob_size_mismatch` | `blobs/<2 hex>/<id>` | the loose blob's size differs from the index's |
 * | `orphan_pack` | `packs/…` | on the Location, not in the index (listed, never deleted) |
 * | `orphan_loose_blob` | `blobs/…` | on the Location, not a loose blob of the index (listed, never deleted) |
 */
export type VerifyProblemKind =
  | "missing_pack"
  | "pack_size_mismatch"
  | "corrupt_toc"
  | "toc_index_mismatch"
  | "missing_blob"
  | "blob_hash_mismatch"
  | "missing_loose_blob"
  | "loose_blob_size_mismatch"
  | "orphan_pack"
  | "orphan_loose_blob";

/** One problem found by the VerificationAgent. */
export interface VerifyProblem {
  /** What is wrong (see {@linkcode VerifyProblemKind}). */
  kind: VerifyProblemKind;
  /** The object's key on the Location (the blob id for `missing_blob`). */
  key: string;
  /** What exactly, for a human. */
  detail: string;
  /**
   * For `blob_hash_mismatch`: every artifact version whose body holds the
   * damaged blob (`namespace`, `key`, `version`), so that an operator knows
   * what to restore from elsewhere.
   */
  artifacts?: Array<{ namespace: string; key: string; version: string }>;
}

/** Statistics of a verification; a progress snapshot while it runs. */
export interface VerifyStats {
  /** Packs of the index examined. */
  packsChecked: number;
  /** Blobs re-read and re-hashed (data checks). */
  blobsChecked: number;
  /** Bytes read from the Location (TOCs and blob data). */
  bytesRead: number;
  /** Manifests whose blobs were checked to exist. */
  manifestsChecked: number;
  /** Problems found so far. */
  problemsFound: number;
  /** Elapsed time in ms. */
  duration: number;
}

/** The VerificationAgent. */
export interface VerificationAgent extends MaintenanceAgent {
  /** Always `"Verify"`. */
  readonly kind: "Verify";
  /**
   * A progress snapshot while running (safe to call at any time); the final
   * statistics after `run`.
   * @returns A copy of the stats.
   */
  stats(): VerifyStats;
  /**
   * The problems found, ordered by key then kind (complete once `run` resolved).
   * @returns A copy of the problems.
   */
  problems(): VerifyProblem[];
}

const enc = new TextEncoder();
/** The largest single read of blob data. */
const MAX_READ_BYTES = 8 * 1024 * 1024;
/** Attempts per read before a failure fails the run. */
const READ_ATTEMPTS = 3;
/** How many differences a `toc_index_mismatch` detail lists. */
const MAX_DIFFS_SHOWN = 5;

function u32Of(text: string): number {
  return parseInt(hashBytes("sha256", enc.encode(text)).slice(0, 8), 16);
}

/**
 * Whether the data checks of a subset cover an object. Slices: the object is
 * in slice `1 + (u32(SHA-256(key)) mod m)`. Fractions: the object is in when
 * `u32(SHA-256(seed + ":" + key)) < fraction × 2^32`.
 *
 * @param key The object's key (`packs/<id>` or `blobs/<2 hex>/<id>`).
 * @param subset The subset (a fraction needs its seed here).
 * @returns `true` when the object's data is checked.
 *
 * @example Three slices cover each pack exactly once
 * ```ts
 * import assert from "node:assert/strict";
 * import { inVerifySubset } from "@capsa/capsa/maintenance";
 * const key = "packs/01arz/01arz3ndektsv4rrffq69g5fav";
 * const hits = [1, 2, 3].filter((n) => inVerifySubset(key, { slice: [n, 3] }));
 * assert.deepEqual(hits.length, 1);
 * ```
 */
export function inVerifySubset(
  key: string,
  subset: { slice: readonly [number, number] } | { fraction: number; seed: number },
): boolean {
  if ("slice" in subset) {
    const [n, m] = subset.slice;
    return u32Of(key) % m === n - 1;
  }
  return u32Of(`${subset.seed}:${key}`) < subset.fraction * 2 ** 32;
}

/** One read, retried like every read (`drivers/retrying.ts`). */
function retrying<T>(fn: () => Promise<T>): Promise<T> {
  return retry(fn, { maxAttempts: READ_ATTEMPTS, baseDelayMs: 40 });
}

async function listAll(driver: Driver, prefix: string): Promise<Map<string, number>> {
  return await retrying(async () => {
    const out = new Map<string, number>();
    for await (const info of driver.list(prefix)) out.set(info.key, info.size);
    return out;
  });
}

/** A short read of blob data is an I/O fault (the size was just checked), not corruption. */
class ShortReadError extends CapsaError {
  constructor(key: string, offset: number, got: number, wanted: number) {
    super(
      "transient",
      `short read of "${key}": ${got} bytes at offset ${offset}, expected ${wanted}`,
      true,
    );
  }
}

class VerificationAgentImpl extends AgentBase<VerifyStats, VerifyProblem>
  implements VerificationAgent {
  override readonly kind = "Verify" as const;
  #config: {
    data: boolean;
    subset: VerifySubset | undefined;
    parallelism: number;
  };
  #done = 0;
  #total = 0;
  #subset: { slice: readonly [number, number] } | { fraction: number; seed: number } | undefined;

  constructor(store: Store, bus: EventBus, config: VerifyConfig) {
    super(store, bus, {
      mode: "read-only",
      leaseTTL: config.leaseTTL ?? VERIFY_DEFAULTS.leaseTTL,
      force: config.force ?? false,
    }, {
      packsChecked: 0,
      blobsChecked: 0,
      bytesRead: 0,
      manifestsChecked: 0,
      problemsFound: 0,
      duration: 0,
    });
    this.#config = {
      data: config.data ?? VERIFY_DEFAULTS.data,
      subset: config.subset,
      parallelism: config.parallelism ?? VERIFY_DEFAULTS.parallelism,
    };
  }

  /** Ordered by key, then kind. */
  override problems(): VerifyProblem[] {
    return super.problems().sort((a, b) =>
      a.key < b.key ? -1 : a.key > b.key ? 1 : a.kind < b.kind ? -1 : a.kind > b.kind ? 1 : 0
    );
  }

  protected override check(): void {
    const c = this.#config;
    this.requireStore("config", "a Corrupted store cannot be verified: rebuild it first");
    if (typeof c.data !== "boolean") {
      throw new InvalidArgumentError(`data must be a boolean, got ${JSON.stringify(c.data)}`);
    }
    requireIntegers({ parallelism: [c.parallelism, 1] });
    const s = c.subset;
    if (s === undefined) return;
    if (!c.data) {
      throw new InvalidArgumentError(
        "subset must come with data: true (it restricts the data checks)",
      );
    }
    if ("slice" in s) {
      const [n, m] = s.slice;
      if (!Number.isSafeInteger(m) || m < 1 || !Number.isSafeInteger(n) || n < 1 || n > m) {
        throw new InvalidArgumentError(
          `subset slice must be [n, m] with integers 1 ≤ n ≤ m, got [${n}, ${m}]`,
        );
      }
      this.#subset = { slice: [n, m] };
    } else if ("fraction" in s) {
      if (typeof s.fraction !== "number" || !(s.fraction >= 0 && s.fraction <= 1)) {
        throw new InvalidArgumentError(`subset fraction must be in [0, 1], got ${s.fraction}`);
      }
      if (s.seed !== undefined && !Number.isSafeInteger(s.seed)) {
        throw new InvalidArgumentError(`subset seed must be an integer, got ${s.seed}`);
      }
      this.#subset = {
        fraction: s.fraction,
        seed: s.seed ?? crypto.getRandomValues(new Uint32Array(1))[0]!,
      };
    } else {
      throw new InvalidArgumentError("subset must be { slice: [n, m] } or { fraction, seed? }");
    }
  }

  protected override progress(): { done: number; total: number } {
    return { done: this.#done, total: this.#total };
  }

  protected override work(ctx: MaintenanceContext): Promise<void> {
    return this.#verify(ctx.signal);
  }

  #report(kind: VerifyProblemKind, key: string, detail: string): VerifyProblem {
    const problem: VerifyProblem = { kind, key, detail };
    this.found.push(problem);
    this.counters.problemsFound++;
    return problem;
  }

  /** Damaged blobs found by the data checks, by blob id: their artifacts are named at the end. */
  readonly #damaged = new Map<string, VerifyProblem[]>();

  #reportDamagedBlob(blobId: string, key: string, detail: string): void {
    const problem = this.#report("blob_hash_mismatch", key, detail);
    const list = this.#damaged.get(blobId);
    if (list) list.push(problem);
    else this.#damaged.set(blobId, [problem]);
  }

  /** Names, in each damaged blob's problem, the artifact versions whose bodies hold it. */
  #nameDamagedArtifacts(index: StoreIndex): void {
    const named = index.manifestsNamingBlobs(new Set(this.#damaged.keys()));
    for (const [blobId, problems] of this.#damaged) {
      const manifests = named.get(blobId) ?? [];
      const artifacts = manifests.map((m) => ({
        namespace: m.namespace,
        key: m.key,
        version: m.id,
      }));
      const shown = artifacts.slice(0, 10).map((a) =>
        `${a.namespace}/${a.key} (version ${a.version})`
      );
      const more = artifacts.length > 10 ? ` and ${artifacts.length - 10} more` : "";
      for (const p of problems) {
        p.artifacts = artifacts;
        p.detail += artifacts.length === 0
          ? "; no manifest names it"
          : `; damaged artifact${artifacts.length === 1 ? "" : "s"}: ${shown.join(", ")}${more}`;
      }
    }
  }

  #dataChecked(key: string): boolean {
    if (!this.#config.data) return false;
    return this.#subset === undefined || inVerifySubset(key, this.#subset);
  }

  async #verify(signal: AbortSignal): Promise<void> {
    const store = this.store;
    // Take in packs committed before the maintenance mode was set (reads only).
    await store.refresh();
    const index = store.index;
    const descriptor = store.descriptor!;
    const storage = store.config!.manifestStorage;
    const driver = store.driver;
    // Counts every byte read, for the stats.
    const source: PackSource = {
      getRange: async (key, offset, length) => {
        const bytes = await driver.getRange(key, offset, length);
        this.counters.bytesRead += bytes.length;
        return bytes;
      },
      stat: (key) => driver.stat(key),
    };

    const concurrency = this.#config.parallelism;
    const packsOnLocation = await listAll(driver, PACK_PREFIX);
    const looseOnLocation = await listAll(driver, LOOSE_BLOB_PREFIX);
    signal.throwIfAborted();
    const packs = index.packs();
    const loose = index.looseBlobs();
    this.#total = packs.length + loose.length;

    await pool(packs, async (pack) => {
      await this.#checkPack(
        pack,
        index,
        storage,
        descriptor.storeId,
        descriptor.hash,
        source,
        packsOnLocation,
      );
      this.counters.packsChecked++;
      this.#done++;
    }, { concurrency, signal });

    await pool(loose, async (blob) => {
      const key = looseBlobKey(blob.blobId);
      const size = looseOnLocation.get(key);
      if (size === undefined) {
        this.#report(
          "missing_loose_blob",
          key,
          `the index holds loose blob ${blob.blobId}, the Location does not`,
        );
      } else if (size !== blob.storedSize) {
        this.#report(
          "loose_blob_size_mismatch",
          key,
          `the index records ${blob.storedSize} bytes, the Location has ${size}`,
        );
      } else if (this.#dataChecked(key)) {
        await this.#checkLooseData(key, blob.blobId, size, descriptor.hash, source);
      }
      this.#done++;
    }, { concurrency, signal });

    // Manifests: every blob they name must exist somewhere.
    this.counters.manifestsChecked = index.counts().manifests;
    const unknown = new Map(index.unknownManifestBlobs().map((u) => [u.blobId, u]));
    for (const u of unknown.values()) {
      if (looseOnLocation.has(looseBlobKey(u.blobId))) continue; // a loose object: checked below
      const m = u.example;
      const others = u.references > 1 ? ` (and ${u.references - 1} more references)` : "";
      this.#report(
        "missing_blob",
        u.blobId,
        `named by manifest ${m.id} (${m.namespace}/${m.key})${others}, but in no pack of the index and not a loose object`,
      );
    }

    // Objects on the Location that the index does not know: listed, never deleted.
    // A pack garbage collection retired is on its way out, not an orphan (docs/FORMAT.md §8).
    const orphans = [...packsOnLocation].filter(([key]) => {
      const id = parsePackKey(key) ?? "";
      return !isUlid(id) || (!index.hasPack(id) && !index.isRetired(id));
    });
    await pool(orphans, async ([key, size]) => {
      const id = parsePackKey(key) ?? "";
      if (!isUlid(id)) {
        this.#report("orphan_pack", key, "not a pack id: a foreign object, never used");
        return;
      }
      let detail: string;
      try {
        const toc = await retrying(() =>
          readPackToc(source, key, {
            size,
            storeId: descriptor.storeId,
            hash: descriptor.hash,
            packId: id,
            keys: this.store.keys,
          })
        );
        detail =
          `not in the index; its TOC holds ${toc.blobs.length} blobs and ${toc.manifests.length} ` +
          `manifests: rebuild the index to take it in`;
      } catch (e) {
        if (!(e instanceof CorruptObjectError)) throw e;
        detail = `not in the index, and its TOC is unusable (${e.reason})`;
      }
      this.#report("orphan_pack", key, detail);
    }, { concurrency, signal });
    const looseKeys = [...looseOnLocation.keys()];
    await pool(looseKeys, async (key) => {
      const id = key.slice(key.lastIndexOf("/") + 1);
      if (!isBlobId(id) || key !== looseBlobKey(id)) {
        this.#report(
          "orphan_loose_blob",
          key,
          "not a loose blob key: a foreign object, never used",
        );
        return;
      }
      const row = index.blob(id);
      if (row && row.packId === null) return; // checked above
      if (!row && index.isRetiredBlob(id)) return; // garbage collection deletes it
      if (!row && unknown.has(id)) {
        // Named by a manifest and read by its key: sound, though the index has no row for it
        // (a store catching up from packs alone does not list loose blobs).
        if (this.#dataChecked(key)) {
          await this.#checkLooseData(key, id, looseOnLocation.get(key)!, descriptor.hash, source);
        }
        return;
      }
      this.#report(
        "orphan_loose_blob",
        key,
        row
          ? `a loose copy of a blob the index places in ${packKey(row.packId!)}`
          : "not in the index and named by no manifest (garbage of an interrupted put)",
      );
    }, { concurrency, signal });
    this.#nameDamagedArtifacts(index);
  }

  async #checkPack(
    pack: PackRecord,
    index: StoreIndex,
    storage: ManifestStorage,
    storeId: string,
    hash: HashAlgorithm,
    source: PackSource,
    onLocation: ReadonlyMap<string, number>,
  ): Promise<void> {
    const key = packKey(pack.packId);
    const size = onLocation.get(key);
    if (size === undefined) {
      this.#report(
        "missing_pack",
        key,
        `the index holds pack ${pack.packId} (${pack.blobCount} blobs, ${pack.manifestCount} manifests), the Location does not`,
      );
      return;
    }
    if (size !== pack.size) {
      this.#report(
        "pack_size_mismatch",
        key,
        `the index records ${pack.size} bytes, the Location has ${size}`,
      );
      return;
    }
    let toc: PackToc;
    try {
      toc = await retrying(() =>
        readPackToc(source, key, {
          size,
          storeId,
          hash,
          packId: pack.packId,
          keys: this.store.keys,
        })
      );
    } catch (e) {
      if (!(e instanceof CorruptObjectError)) throw e;
      this.#report("corrupt_toc", key, e.reason);
      return;
    }
    const diffs = this.#compare(pack, toc, index, storage);
    if (diffs.length > 0) {
      const more = diffs.length > MAX_DIFFS_SHOWN
        ? ` (and ${diffs.length - MAX_DIFFS_SHOWN} more)`
        : "";
      this.#report("toc_index_mismatch", key, diffs.slice(0, MAX_DIFFS_SHOWN).join("; ") + more);
    }
    if (this.#dataChecked(key)) await this.#checkPackData(key, toc, hash, source);
  }

  /** The differences between a pack's TOC and what the index holds of it. */
  #compare(pack: PackRecord, toc: PackToc, index: StoreIndex, storage: ManifestStorage): string[] {
    const diffs: string[] = [];
    if (pack.blobCount !== toc.blobs.length) {
      diffs.push(`the index counts ${pack.blobCount} blobs, the TOC has ${toc.blobs.length}`);
    }
    if (pack.manifestCount !== toc.manifests.length) {
      diffs.push(
        `the index counts ${pack.manifestCount} manifests, the TOC has ${toc.manifests.length}`,
      );
    }
    const entries = new Map(toc.blobs.map((b) => [b.id, b]));
    const placed = new Set<string>();
    for (const row of index.blobsInPack(pack.packId)) {
      placed.add(row.blobId);
      const e = entries.get(row.blobId);
      if (!e) {
        diffs.push(`blob ${row.blobId} is in the index but not in the TOC`);
      } else if (
        e.offset !== row.offset || e.storedLength !== row.storedSize || e.rawLength !== row.rawSize
      ) {
        diffs.push(
          `blob ${row.blobId}: the index has offset ${row.offset}, ${row.storedSize} bytes stored, ${row.rawSize} raw; ` +
            `the TOC has offset ${e.offset}, ${e.storedLength} stored, ${e.rawLength} raw`,
        );
      }
    }
    // A blob of the TOC may be placed in an earlier pack (the index keeps the first copy).
    for (const e of toc.blobs) {
      if (!placed.has(e.id) && !index.hasBlob(e.id)) {
        diffs.push(`blob ${e.id} is in the TOC but not in the index`);
      }
    }
    const tocIds = new Set(toc.manifests.map((m) => m.id));
    // A manifest indexed twice keeps its first pack, so a TOC manifest only needs to be indexed.
    for (const id of tocIds) {
      if (!index.hasManifest(id)) diffs.push(`manifest ${id} is in the TOC but not in the index`);
    }
    // In Local/Replicated storage the index also holds the pack's manifests from the host log.
    if (storage === "Remote") {
      for (const id of index.manifestIdsInPack(pack.packId)) {
        if (!tocIds.has(id)) diffs.push(`manifest ${id} is in the index but not in the TOC`);
      }
    }
    return diffs;
  }

  /**
   * Re-hashes every blob of a pack, reading runs of adjacent blobs together;
   * a compressed blob is decompressed (never past its raw length) and its raw
   * bytes hashed.
   */
  async #checkPackData(
    key: string,
    toc: PackToc,
    hash: HashAlgorithm,
    source: PackSource,
  ): Promise<void> {
    const blobs = toc.blobs;
    let i = 0;
    while (i < blobs.length) {
      // One read covers blobs i..j-1: contiguous, at most MAX_READ_BYTES (or one larger blob).
      const start = blobs[i]!.offset;
      let end = start + blobs[i]!.storedLength;
      let j = i + 1;
      while (
        j < blobs.length && blobs[j]!.offset === end &&
        blobs[j]!.offset + blobs[j]!.storedLength - start <= MAX_READ_BYTES
      ) {
        end = blobs[j]!.offset + blobs[j]!.storedLength;
        j++;
      }
      const bytes = await retrying(async () => {
        const got = await source.getRange(key, start, end - start);
        if (got.length !== end - start) {
          throw new ShortReadError(key, start, got.length, end - start);
        }
        return got;
      });
      for (let k = i; k < j; k++) {
        const b = blobs[k]!;
        const stored = bytes.subarray(b.offset - start, b.offset - start + b.storedLength);
        this.counters.blobsChecked++;
        try {
          decodeStoredBlob({ key, ...b }, stored, { hash, keys: this.store.keys });
        } catch (e) {
          if (!(e instanceof CorruptObjectError)) throw e;
          this.#reportDamagedBlob(
            b.id,
            key,
            `blob ${b.id} at offset ${b.offset} (${b.storedLength} bytes stored, ${b.rawLength} raw, ` +
              `${b.compression}): ${e.reason}`,
          );
        }
      }
      i = j;
    }
  }

  /** Re-hashes a loose blob, reading it in bounded pieces. */
  async #checkLooseData(
    key: string,
    blobId: string,
    size: number,
    hash: HashAlgorithm,
    source: PackSource,
  ): Promise<void> {
    const keys = this.store.keys;
    const actual = await retrying(async () => {
      if (keys !== undefined) {
        // A sealed loose blob is opened whole (its tag comes last), then hashed with the id key.
        const got = await source.getRange(key, 0, size);
        if (got.length !== size) throw new ShortReadError(key, 0, got.length, size);
        const raw = await keys.openAsync(AAD.blob(blobId), got);
        return raw === undefined ? "its sealed bytes fail authentication" : keys.ids.bytes(raw);
      }
      const hasher = createHasher(hash);
      for (let at = 0; at < size; at += MAX_READ_BYTES) {
        const want = Math.min(MAX_READ_BYTES, size - at);
        const got = await source.getRange(key, at, want);
        if (got.length !== want) throw new ShortReadError(key, at, got.length, want);
        hasher.update(got);
      }
      return hasher.digestHex();
    });
    this.counters.blobsChecked++;
    if (actual !== blobId) {
      this.#reportDamagedBlob(
        blobId,
        key,
        `loose blob ${blobId} (${size} bytes) hashes to ${actual} (${hash})`,
      );
    }
  }
}

/**
 * Creates the agent, publishing on `store.bus`.
 * @param store The store.
 * @param config The configuration.
 * @returns The agent.
 */
export function createVerificationAgent(store: Store, config?: VerifyConfig): VerificationAgent;
/**
 * Creates a VerificationAgent.
 *
 * @param store The store to verify (not Corrupted: rebuild it first).
 * @param bus Where the agent publishes its events (default: `store.bus`, so it may be left out).
 * @param config The configuration; every field has a default.
 * @returns The agent; call `validate()`, then `run()`, then read `problems()`.
 *
 * @example Verifying structure and data of a store
 * ```ts
 * import assert from "node:assert/strict";
 * import { initStore } from "@capsa/capsa";
 * import { EventBus } from "@capsa/capsa";
 * import { MemoryDriver } from "@capsa/capsa";
 * import { createVerificationAgent } from "@capsa/capsa/maintenance";
 *
 * const { store } = await initStore(new MemoryDriver());
 * await store.put("ns", "k", new Uint8Array(4096));
 * const agent = createVerificationAgent(store, new EventBus(), { data: true });
 * agent.validate();
 * await agent.run();
 * assert.deepEqual(agent.problems(), []);
 * assert.deepEqual(agent.stats().blobsChecked, 1);
 * await store.close();
 * ```
 */
export function createVerificationAgent(
  store: Store,
  bus: EventBus,
  config?: VerifyConfig,
): VerificationAgent;
export function createVerificationAgent(
  store: Store,
  busOrConfig?: EventBus | VerifyConfig,
  config?: VerifyConfig,
): VerificationAgent {
  const [bus, cfg] = busOrConfig instanceof EventBus
    ? [busOrConfig, config]
    : [store.bus, busOrConfig];
  return new VerificationAgentImpl(store, bus, cfg ?? {});
}
