/**
 * The public option and result types of the Store, in one place: what
 * `openStore`, `initStore` and the Store's methods take
 * and return. `store/store.ts` and `mod.ts` re-export them.
 *
 * @module
 */

import type { KdfCost } from "../format/crypto.ts";
import type { Driver } from "../drivers/driver.ts";
import type { ChunkingParams } from "../format/chunker.ts";
import type { ConfigSettings } from "../format/config.ts";
import type { HashAlgorithm } from "../format/hashing.ts";
import type { IndexCounts } from "../index/store_index.ts";
import type { EventBus, StoreState } from "./events.ts";
import type { Store } from "./store.ts";

export type { MaintenanceMode } from "../format/markers.ts";

/** A body: bytes, or a stream of bytes (never held whole in memory). */
export type Body = Uint8Array | ReadableStream<Uint8Array> | string;

/** Options of {@linkcode Store.put}. */
export interface PutOptions {
  /** The media type. */
  contentType?: string;
  /** User metadata (string to string, bounded). */
  metadata?: Record<string, string>;
}

/** What a put or stat reports about one artifact version. */
export interface ArtifactInfo {
  /** The namespace. */
  namespace: string;
  /** The key. */
  key: string;
  /** The version id (the manifest id, a ULID). */
  version: string;
  /** Body size in bytes. */
  size: number;
  /** Hex digest of the whole body with the store's hash. */
  digest: string;
  /** When it was written (ms). */
  created: number;
  /** The media type (`""` when unknown). */
  contentType: string;
  /** User metadata. */
  metadata: Record<string, string>;
  /** Whether this version is a deletion (only in {@linkcode Store.versions}). */
  deleted: boolean;
}

/** Options of {@linkcode Store.list}. */
export interface ListArtifactsOptions {
  /** Only keys starting with this. */
  prefix?: string;
  /** Only keys after this one: the `after` of the previous page. */
  after?: string;
  /** Page size (default 1000, at most 10,000). */
  limit?: number;
}

/** One page of {@linkcode Store.list}. */
export interface ArtifactPage {
  /** The artifacts, in key order. */
  items: ArtifactInfo[];
  /** Pass it as `after` to get the next page; absent on the last page. */
  after?: string;
  /** The same as `after` (its name before version 0.2). @deprecated Use `after`. */
  cursor?: string;
}

/** Options of {@linkcode Store.get}. */
export interface GetOptions {
  /** A version id from {@linkcode Store.versions} (default: the current version). */
  version?: string;
}

/** Options shared by `openStore` and `initStore`. */
export interface StoreOptions {
  /** A host directory driver: host descriptor replica, index cache, manifest log. */
  hostStorage?: Driver | undefined;
  /** Where events go (default: a new bus). */
  bus?: EventBus;
  /** The clock (default `Date.now`). */
  clock?: () => number;
  /** Refuse every write, healing included. */
  readOnly?: boolean;
  /** Concurrent TOC reads during catch-up (default 8). */
  parallelism?: number;
  /**
   * The longest a read (`get`, `stat`, `list`, `versions`) may answer from an
   * index that has not looked at the Location; older, the read catches up
   * first (default {@linkcode DEFAULT_REFRESH_INTERVAL_MS}). A lookup that
   * misses also catches up before it answers "not found", unless the index
   * looked less than {@linkcode MISS_REFRESH_MS} ago. `0` catches up before
   * every read; `Infinity` only when asked (`refresh()`).
   */
  refreshIntervalMs?: number;
  /**
   * The passphrase of an encrypted store (ignored for an unencrypted one).
   * Opening an encrypted store without it throws `passphrase_required`; a
   * passphrase that opens none of its key slots, `wrong_passphrase`.
   */
  passphrase?: string | undefined;
  /**
   * Open without an index: the descriptor and config are read (and an
   * encrypted store unlocked) as usual, but neither the host cache nor a
   * snapshot is loaded and nothing is caught up. Reads and writes through
   * the handle are refused until a RebuildIndexAgent run on it installs the
   * index it builds. For a process whose first act is a rebuild (`capsa
   * rebuild`): the rebuild loads or builds its own index, so an open that did
   * too would do the work twice — with no host cache and no snapshot, a
   * whole indexing of every pack before the full scan. Default `false`.
   */
  deferIndex?: boolean;
}

/** How stale a long-lived handle's reads may be, by default: 5 s (docs/OPERATIONS.md). */
export const DEFAULT_REFRESH_INTERVAL_MS = 5_000;

/** A lookup that misses catches up first unless the index looked this recently. */
export const MISS_REFRESH_MS = 250;

/** Options of `openStore`. */
export type OpenStoreOptions = StoreOptions;

/** Options of `initStore`. */
export interface InitStoreOptions extends StoreOptions {
  /** The hash of blob ids (default `"blake3"`). */
  hash?: HashAlgorithm;
  /** Content-defined chunking parameters (default min 256 KiB, avg 1 MiB, max 4 MiB). */
  chunking?: ChunkingParams;
  /** Settings of the first config version (defaults from `defaultConfig()`). */
  config?: Partial<ConfigSettings>;
  /** The Location as the operator knows it, printed in the Recovery Kit. */
  location?: string;
  /**
   * Encrypt the store (docs/FORMAT.md §9): a random data key is made and
   * wrapped under `passphrase` in the first key slot; the store is opened
   * with it. Omitted: an unencrypted store.
   */
  encryption?: EncryptionOptions;
}

/** One key slot of an encrypted store, as {@linkcode Store.keySlots} lists it. */
export interface KeySlotInfo {
  /** 16 hex digits. */
  slotId: string;
  /** Its label (may be empty). */
  label: string;
  /** When it was added (ISO 8601). */
  createdAt: string;
  /** Its Argon2id cost. */
  kdf: KdfCost;
  /** Whether it is the slot this handle's passphrase opened. */
  current: boolean;
}

/** Options of an encrypted store at init. */
export interface EncryptionOptions {
  /** The passphrase of the first key slot (not empty). */
  passphrase: string;
  /**
   * Argon2id cost of the slot (default 64 MiB, 3 passes, 1 lane). Lower costs
   * make a guessed passphrase cheaper to try: lower them only for tests or
   * very small machines.
   */
  kdf?: KdfCost;
  /** A label for the slot (`capsa key list`). */
  label?: string;
}

/** What `initStore` returns. */
export interface InitStoreResult {
  /** The new, open store. */
  store: Store;
  /** The Recovery Kit: give it to the operator to keep offline. */
  recoveryKit: string;
}

/** How the index was obtained at open. */
export type IndexSource = "host-cache" | "snapshot" | "empty";

/** What {@linkcode Store.status} reports. */
export interface StoreStatus {
  /** The store id (`""` when Corrupted before it could be read). */
  storeId: string;
  /** The Location. */
  location: string;
  /** `Ready`, `Degraded` or `Corrupted`. */
  state: StoreState;
  /** Problems found on open or since, each naming its object. */
  problems: string[];
  /** The hash algorithm. */
  hash: HashAlgorithm | undefined;
  /** `"aes-256-gcm"` for an encrypted store, `"none"` otherwise (`undefined` without a descriptor). */
  encryption: "aes-256-gcm" | "none" | undefined;
  /** The config in force: its version, pointer, where manifests live, how new data is compressed. */
  config: {
    seq: number;
    pointer: "ok" | "dangling";
    manifestStorage: string;
    compression: "zstd" | "none";
    compressionLevel: number;
  } | undefined;
  /** Counts and sizes from the index. */
  counts: IndexCounts | undefined;
  /** The index. */
  index: {
    source: IndexSource;
    loadedFrom: string | undefined;
    highWaterMark: string;
    highWaterMarkTime: number | undefined;
    schemaVersion: number;
  } | undefined;
  /** Index snapshots on the Location, newest first. */
  snapshots: string[];
  /** The maintenance lease, when one is held. */
  lease: { holder: string; agent: string; expiresAt: number } | undefined;
  /** The maintenance mode, when maintenance runs. */
  maintenance: { mode: string; holder: string } | undefined;
}
