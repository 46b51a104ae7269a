/**
 * The Store: a handle on one opened Location.
 *
 * {@linkcode initStore} creates a store and hands back its Recovery Kit;
 * {@linkcode openStore} opens one: it reconciles the descriptor replicas,
 * follows the config pointer, loads the index (host cache, else the newest
 * valid snapshot, else empty) and catches up on packs written since.
 *
 * Writes follow docs/FORMAT.md: bodies are cut into inline / regular /
 * chunked, blobs are deduplicated against the index and the open pack, and a
 * put resolves only once the pack carrying its manifest is durable.
 *
 * @example Put and get
 * ```ts
 * import { initStore } from "./store.ts";
 * import { MemoryDriver } from "../drivers/memory.ts";
 *
 * const { store, recoveryKit } = await initStore(new MemoryDriver());
 * await store.put("docs", "hello.txt", new TextEncoder().encode("hello"));
 * console.log(new TextDecoder().decode(await store.get("docs", "hello.txt"))); // "hello"
 * await store.close();
 * ```
 *
 * @module
 */

import { type Driver, NotFoundError } from "../drivers/driver.ts";
import { type BlobHandle, Committer, type SealedPack } from "./_commit.ts";
import {
  type ConfigSettings,
  defaultConfig,
  resolveCurrentConfig,
  type StoreConfig,
  validateConfig,
  writeConfigVersion,
} from "../format/config.ts";
import {
  createDescriptor,
  type Descriptor,
  type DescriptorReading,
  encodeDescriptor,
  readDescriptorReplica,
  reconcileDescriptors,
} from "../format/descriptor.ts";
import { Chunker, type ChunkingParams } from "../format/chunker.ts";
import {
  ArtifactNotFoundError,
  CapsaError,
  ClosedError,
  CorruptObjectError,
  InvalidArgumentError,
  MaintenanceModeError,
  ReadOnlyStoreError,
  StoreCorruptedError,
  StoreMovedError,
} from "../errors.ts";
import { EventBus, type StoreState } from "./events.ts";
import { createHasher, type HashAlgorithm, hashBytes } from "../format/hashing.ts";
import { type IndexCounts, type ManifestRecord, StoreIndex } from "../index/store_index.ts";
import { leaseHolderMayBeAlive, readLease } from "./lease.ts";
import { encodeManifestLogEntry } from "../format/manifest_log.ts";
import {
  type Manifest,
  validateArtifactKey,
  validateContentType,
  validateMetadata,
  validateNamespace,
} from "../format/manifest.ts";
import { readBlobFromPack } from "../format/pack.ts";
import { type IndexingProblem, indexPacks } from "../index/pack_indexer.ts";
import {
  decodeSnapshot,
  encodeSnapshot,
  listSnapshots,
  loadNewestIndex,
} from "../format/snapshot.ts";
import { ulidFloor, UlidGenerator, ulidTime } from "../format/ulid.ts";
import { encodeRecoveryKit } from "../format/kit.ts";

import {
  CONFIG_PREFIX,
  DESCRIPTOR_KEY,
  DESCRIPTOR_REPLICA_KEY,
  HOST_CACHE_KEY,
  HOST_DESCRIPTOR_KEY,
  looseBlobKey,
  MAINTENANCE_MODE_KEY,
  manifestLogKey,
  MOVED_KEY,
  PACK_PREFIX,
  packKey,
  parsePackKey,
  SNAPSHOT_PREFIX,
} from "../layout.ts";
/**
 * How far before its high-water mark a catch-up re-reads the pack listing:
 * writers' clocks disagree and a slow upload can land after a newer pack.
 */
export const CATCH_UP_OVERLAP_MS = 15 * 60_000;

/** A body: bytes, or a stream of bytes (never held whole in memory). */
export type Body = Uint8Array | ReadableStream<Uint8Array>;

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
  /** Only keys after this one: the cursor of the previous page. */
  after?: string;
  /** Page size (default 1000, at most 10,000). */
  limit?: number;
}

/** One page of {@linkcode Store.list}. */
export interface ArtifactPage {
  /** The artifacts, in key order. */
  items: ArtifactInfo[];
  /** Pass as `after` for the next page; absent on the last page. */
  cursor?: string;
}

/** Options of {@linkcode Store.get}. */
export interface GetOptions {
  /** A version id from {@linkcode Store.versions} (default: the current version). */
  version?: string;
}

/** Options shared by {@linkcode openStore} and {@linkcode initStore}. */
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
}

/** Options of {@linkcode openStore}. */
export type OpenStoreOptions = StoreOptions;

/** Options of {@linkcode initStore}. */
export interface InitStoreOptions extends StoreOptions {
  /** The hash of blob ids (default `"blake3"`). */
  hash?: HashAlgorithm;
  /** Content-defined chunking parameters (default min 256 KiB, avg 1 MiB, max 4 MiB). */
  chunking?: ChunkingParams;
  /** Settings of the first config version (defaults from `defaultConfig()`). */
  config?: Partial<ConfigSettings>;
  /** The Location as the operator knows it, printed in the Recovery Kit. */
  location?: string;
}

/** What {@linkcode initStore} returns. */
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
  /** The config in force. */
  config: { seq: number; pointer: "ok" | "dangling"; manifestStorage: string } | undefined;
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

/** What a maintenance agent writes to {@linkcode MAINTENANCE_MODE_KEY}. */
export interface MaintenanceMode {
  /** `read-only`: reads that need no index refresh still work; `offline`: nothing. */
  mode: "read-only" | "offline";
  /** The agent. */
  agent: string;
  /** Who runs it. */
  holder: string;
  /** The lease nonce (the holder's own handle ignores its own mode). */
  nonce: string;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

function concat(parts: Uint8Array[], total: number): Uint8Array {
  if (parts.length === 1 && parts[0]!.length === total) return parts[0]!;
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function infoOf(m: Manifest): ArtifactInfo {
  return {
    namespace: m.namespace,
    key: m.key,
    version: m.id,
    size: m.size,
    digest: m.digest,
    created: m.created,
    contentType: m.contentType,
    metadata: { ...m.metadata },
    deleted: m.deleted,
  };
}

async function* chunksOf(body: Body): AsyncGenerator<Uint8Array> {
  if (body instanceof Uint8Array) {
    yield body;
    return;
  }
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      if (!(value instanceof Uint8Array)) {
        throw new InvalidArgumentError("a body stream must yield Uint8Array chunks");
      }
      if (value.length > 0) yield value;
    }
  } finally {
    reader.releaseLock();
  }
}

/**
 * Reads the descriptor replicas (two on the Location, one on the host).
 * @param driver The Location.
 * @param host The host storage, if any.
 * @returns One reading per replica.
 */
export function readDescriptorReplicas(
  driver: Driver,
  host: Driver | undefined,
): Promise<DescriptorReading[]> {
  const reads = [
    readDescriptorReplica(driver, DESCRIPTOR_KEY),
    readDescriptorReplica(driver, DESCRIPTOR_REPLICA_KEY),
  ];
  if (host) {
    reads.push(
      readDescriptorReplica(host, HOST_DESCRIPTOR_KEY, { where: `host:${HOST_DESCRIPTOR_KEY}` }),
    );
  }
  return Promise.all(reads);
}

/**
 * Writes descriptor replicas: `store.json` last, because its presence is what
 * makes a Location a store.
 * @param driver The Location.
 * @param host The host storage, if any.
 * @param descriptor The descriptor.
 * @param which The replicas to write (default all), as named by {@linkcode readDescriptorReplicas}.
 */
export async function writeDescriptorReplicas(
  driver: Driver,
  host: Driver | undefined,
  descriptor: Descriptor,
  which?: readonly string[],
): Promise<void> {
  const bytes = encodeDescriptor(descriptor);
  const want = (w: string) => which === undefined || which.includes(w);
  if (want(DESCRIPTOR_REPLICA_KEY)) await driver.put(DESCRIPTOR_REPLICA_KEY, bytes);
  if (host && want(`host:${HOST_DESCRIPTOR_KEY}`)) await host.put(HOST_DESCRIPTOR_KEY, bytes);
  if (want(DESCRIPTOR_KEY)) await driver.put(DESCRIPTOR_KEY, bytes);
}

/**
 * Where the store was moved, from `system.state/moved`, or `undefined` when it
 * was not moved.
 * @param driver The Location.
 * @returns The destination.
 */
export async function readMovedTo(driver: Driver): Promise<string | undefined> {
  let text: string;
  try {
    text = dec.decode(await driver.getRange(MOVED_KEY, 0, 16 * 1024));
  } catch (e) {
    if (e instanceof NotFoundError) return undefined;
    throw e;
  }
  try {
    return String(JSON.parse(text).destination ?? text.trim());
  } catch {
    return text.trim();
  }
}

/**
 * Reads the maintenance mode object, if any.
 * @param driver The Location.
 * @returns The mode, or `undefined` when no maintenance runs.
 */
export async function readMaintenanceMode(driver: Driver): Promise<MaintenanceMode | undefined> {
  try {
    const v = JSON.parse(dec.decode(await driver.getRange(MAINTENANCE_MODE_KEY, 0, 16 * 1024)));
    return {
      mode: v?.mode === "read-only" ? "read-only" : "offline",
      agent: String(v?.agent ?? "unknown"),
      holder: String(v?.holder ?? "unknown"),
      nonce: String(v?.nonce ?? ""),
    };
  } catch (e) {
    if (e instanceof NotFoundError) return undefined;
    if (e instanceof SyntaxError) {
      return { mode: "offline", agent: "unknown", holder: "unknown", nonce: "" };
    }
    throw e;
  }
}

/**
 * A handle on an opened store. Get one from {@linkcode openStore} or
 * {@linkcode initStore}.
 */
export class Store {
  /** The Location. */
  readonly driver: Driver;
  /** The host storage, if any. */
  readonly hostStorage: Driver | undefined;
  /** Where events go. */
  readonly bus: EventBus;
  /** The clock. */
  readonly clock: () => number;
  #descriptor: Descriptor | undefined;
  #config: StoreConfig | undefined;
  #pointer: "ok" | "dangling" = "ok";
  #state: StoreState;
  #problems: string[];
  #index: StoreIndex | undefined;
  #indexSource: IndexSource = "empty";
  #indexLoadedFrom: string | undefined;
  #committer: Committer | undefined;
  #ids: UlidGenerator;
  #readOnly: boolean;
  #parallelism: number;
  #closed = false;
  #packsSinceSnapshot = 0;
  #lastSnapshotAt = 0;
  #snapshotting: Promise<string> | undefined;
  #refreshing: Promise<void> | undefined;
  #loosePending = new Map<string, Promise<void>>();
  #maintenanceNonce: string | undefined;
  #closing = false;
  #inFlight = new Set<Promise<unknown>>();
  #modeCheckedAt = -Infinity;
  #modeSeen: MaintenanceMode | undefined;

  /** Use {@linkcode openStore}. @param init Internal. */
  private constructor(init: {
    driver: Driver;
    host: Driver | undefined;
    bus: EventBus;
    clock: () => number;
    readOnly: boolean;
    parallelism: number;
    state: StoreState;
    problems: string[];
  }) {
    this.driver = init.driver;
    this.hostStorage = init.host;
    this.bus = init.bus;
    this.clock = init.clock;
    this.#readOnly = init.readOnly;
    this.#parallelism = init.parallelism;
    this.#state = init.state;
    this.#problems = init.problems;
    this.#ids = new UlidGenerator({ clock: init.clock });
  }

  /** @internal Opens a store; see {@linkcode openStore}. */
  static async open(driver: Driver, options: OpenStoreOptions = {}): Promise<Store> {
    const clock = options.clock ?? Date.now;
    const bus = options.bus ?? new EventBus();
    const host = options.hostStorage;
    const readOnly = options.readOnly ?? false;

    const movedTo = await readMovedTo(driver);
    if (movedTo !== undefined) throw new StoreMovedError(movedTo);

    const problems: string[] = [];
    const readings = await readDescriptorReplicas(driver, host);
    const rec = reconcileDescriptors(readings);
    const store = new Store({
      driver,
      host,
      bus,
      clock,
      readOnly,
      parallelism: options.parallelism ?? 8,
      state: rec.state,
      problems,
    });
    for (const p of rec.problems) problems.push(`${p.where}: ${p.kind}: ${p.detail}`);
    if (rec.state === "Corrupted" || rec.descriptor === undefined) {
      store.#state = "Corrupted";
      store.#publishState(undefined);
      return store;
    }
    if (rec.descriptor.encryption !== null) {
      throw new CapsaError(
        "unsupported_feature",
        "this store is encrypted, which this version of capsa cannot open: upgrade capsa",
      );
    }
    store.#descriptor = rec.descriptor;

    if (rec.toHeal.length > 0 && !readOnly) {
      await writeDescriptorReplicas(driver, host, rec.descriptor, rec.toHeal);
      bus.publish({
        type: "descriptor.healed",
        at: clock(),
        storeId: rec.descriptor.storeId,
        replicas: [...rec.toHeal],
      });
      const healed = new Set(rec.toHeal);
      store.#problems = problems.filter((p) => ![...healed].some((w) => p.startsWith(`${w}:`)));
    }

    try {
      const resolved = await resolveCurrentConfig(driver, { chunking: rec.descriptor.chunking });
      store.#config = resolved.config;
      store.#pointer = resolved.pointer;
      if (resolved.pointer === "dangling") {
        store.#problems.push(`system.config/current: dangling: ${resolved.danglingReason}`);
      }
      for (const i of resolved.invalid) store.#problems.push(`${i.key}: invalid: ${i.reason}`);
    } catch (e) {
      if (!(e instanceof CorruptObjectError)) throw e;
      store.#problems.push(`${e.key}: ${e.reason}`);
      store.#state = "Corrupted";
      store.#publishState(undefined);
      return store;
    }

    await store.#loadIndex();
    store.#state = store.#problems.length === 0 ? "Ready" : "Degraded";
    store.#publishState(undefined);
    return store;
  }

  #publishState(from: StoreState | undefined): void {
    this.bus.publish({
      type: "store.state",
      at: this.clock(),
      storeId: this.#descriptor?.storeId ?? "",
      from,
      to: this.#state,
      reasons: [...this.#problems],
    });
  }

  async #loadIndex(): Promise<void> {
    const d = this.#descriptor!;
    let index: StoreIndex | undefined;
    if (this.hostStorage) {
      try {
        const bytes = await this.hostStorage.get(HOST_CACHE_KEY);
        const { db } = decodeSnapshot(`host:${HOST_CACHE_KEY}`, bytes, d.storeId);
        index = await StoreIndex.load(db, { storeId: d.storeId, key: `host:${HOST_CACHE_KEY}` });
        this.#indexSource = "host-cache";
        this.#indexLoadedFrom = `host:${HOST_CACHE_KEY}`;
      } catch (e) {
        if (!(e instanceof NotFoundError)) {
          if (!(e instanceof CapsaError)) throw e;
          // A damaged cache is only a cache: note it and fall back to a snapshot.
          this.bus.publish({
            type: "warning",
            at: this.clock(),
            storeId: d.storeId,
            code: "host_cache_unusable",
            message:
              `the host cache of the index is unusable (${e.message}); loading from the Location`,
          });
        }
      }
    }
    if (!index) {
      const found = await loadNewestIndex(this.driver, d.storeId);
      for (const r of found.rejected) {
        this.bus.publish({
          type: "warning",
          at: this.clock(),
          storeId: d.storeId,
          code: "snapshot_rejected",
          message: `index snapshot ${r.key} is unusable: ${r.reason}`,
        });
      }
      if (found.index) {
        index = found.index;
        this.#indexSource = "snapshot";
        this.#indexLoadedFrom = found.key;
      }
    }
    this.#index = index ?? await StoreIndex.create(d.storeId);
    await this.#catchUp();
  }

  async #catchUp(): Promise<void> {
    const index = this.#index!;
    const d = this.#descriptor!;
    const hwm = index.highWaterMark();
    const startAfter = hwm === ""
      ? undefined
      : packKey(ulidFloor(ulidTime(hwm) - CATCH_UP_OVERLAP_MS));
    const missing = [];
    for await (
      const info of this.driver.list(PACK_PREFIX, startAfter === undefined ? {} : { startAfter })
    ) {
      if (!index.hasPack(parsePackKey(info.key) ?? "")) missing.push(info);
    }
    if (missing.length === 0) return;
    const result = await indexPacks(this.driver, index, missing, {
      storeId: d.storeId,
      hash: d.hash,
      manifestStorage: this.#config!.manifestStorage,
      hostStorage: this.hostStorage,
      parallelism: this.#parallelism,
    });
    this.#noteProblems(result.problems);
  }

  #noteProblems(problems: readonly IndexingProblem[]): void {
    for (const p of problems) {
      const line = `${p.key}: corrupt: ${p.reason}`;
      if (!this.#problems.includes(line)) this.#problems.push(line);
    }
  }

  // ---------------------------------------------------------------- guards

  #live(): { index: StoreIndex; descriptor: Descriptor; config: StoreConfig } {
    if (this.#closed) throw new ClosedError("the store");
    if (this.#state === "Corrupted" || !this.#index || !this.#descriptor || !this.#config) {
      throw new StoreCorruptedError(this.#problems.length > 0 ? this.#problems : ["unknown"]);
    }
    return { index: this.#index, descriptor: this.#descriptor, config: this.#config };
  }

  /**
   * Checks the maintenance mode on the Location. `commit` (before a pack
   * write) always reads it; puts, deletes and reads use a value at most a
   * second old, so a busy writer does not read the mode object per call.
   */
  async #checkMaintenance(kind: "read" | "write" | "commit"): Promise<void> {
    if (this.#maintenanceNonce !== undefined) {
      // This handle's own agent runs: it reads the index as it is, and writes only
      // through the driver. A put here would land in an index about to be replaced.
      if (kind === "read") return;
      throw new MaintenanceModeError("offline", "this handle's own maintenance agent");
    }
    const now = this.clock();
    if (kind === "commit") {
      // Both read before every pack write, at once: they sit on the commit's critical path.
      // A store moved away while this handle was open must not take writes the move left behind.
      const [moved, mode] = await Promise.all([
        readMovedTo(this.driver),
        readMaintenanceMode(this.driver),
      ]);
      if (moved !== undefined) throw new StoreMovedError(moved);
      this.#modeSeen = mode;
      this.#modeCheckedAt = now;
    } else if (now - this.#modeCheckedAt >= 1000) {
      this.#modeSeen = await readMaintenanceMode(this.driver);
      this.#modeCheckedAt = now;
    }
    const m = this.#modeSeen;
    if (!m) return;
    if (kind === "read" && m.mode === "read-only") return;
    if (kind === "commit") kind = "write";
    // A mode whose lease is gone, expired, another's, or held by a dead process of this
    // host was left by a dead agent: ignore it.
    const lease = await readLease(this.driver);
    const live = lease !== null && lease !== "invalid" && lease.nonce === m.nonce &&
      lease.expiresAt > this.clock() && leaseHolderMayBeAlive(lease);
    if (!live) {
      this.#modeSeen = undefined;
      return;
    }
    throw new MaintenanceModeError(m.mode, m.holder);
  }

  #writable(): { index: StoreIndex; descriptor: Descriptor; config: StoreConfig } {
    const live = this.#live();
    if (this.#closing) throw new ClosedError("the store (closing)");
    if (this.#readOnly) throw new ReadOnlyStoreError();
    return live;
  }

  #commit(): Committer {
    const { descriptor, config } = this.#live();
    this.#committer ??= new Committer(
      {
        storeId: descriptor.storeId,
        hash: descriptor.hash,
        packTargetSize: config.packTargetSize,
        lingerMs: config.packLingerMs,
        manifestsInToc: config.manifestStorage !== "Local",
      },
      {
        newPackId: () => this.#ids.next(),
        writePack: (sealed) => this.#writePack(sealed),
      },
    );
    return this.#committer;
  }

  async #writePack(sealed: SealedPack): Promise<void> {
    const { index, descriptor, config } = this.#live();
    await this.#checkMaintenance("commit");
    const key = packKey(sealed.packId);
    // Pack ids are unique: create-only where it is race-free, so nothing is ever overwritten.
    await this.driver.put(key, sealed.bytes, { ifAbsent: this.driver.capabilities.createOnly });
    if (config.manifestStorage !== "Remote" && sealed.manifests.length > 0) {
      if (!this.hostStorage) {
        throw new InvalidArgumentError(
          `manifestStorage ${config.manifestStorage} needs host storage`,
        );
      }
      await this.hostStorage.put(
        manifestLogKey(sealed.packId),
        encodeManifestLogEntry(descriptor.storeId, sealed.packId, sealed.manifests),
      );
    }
    index.indexPack({
      pack: {
        packId: sealed.packId,
        size: sealed.bytes.length,
        blobCount: sealed.blobs.length,
        manifestCount: config.manifestStorage === "Local" ? 0 : sealed.manifests.length,
      },
      blobs: sealed.blobs.map((b) => ({
        blobId: b.id,
        kind: b.kind,
        rawSize: b.rawLength,
        storedSize: b.storedLength,
        packId: sealed.packId,
        offset: b.offset,
      })),
      manifests: sealed.manifests.map((m): ManifestRecord => ({ ...m, packId: sealed.packId })),
    });
    this.bus.publish({
      type: "pack.written",
      at: this.clock(),
      storeId: descriptor.storeId,
      packId: sealed.packId,
      bytes: sealed.bytes.length,
      blobs: sealed.blobs.length,
      manifests: sealed.manifests.length,
    });
    this.#packsSinceSnapshot++;
    this.#maybeSnapshot(config);
  }

  #maybeSnapshot(config: StoreConfig): void {
    if (this.#snapshotting) return;
    const byCount = config.snapshotEveryPacks > 0 &&
      this.#packsSinceSnapshot >= config.snapshotEveryPacks;
    const byTime = config.snapshotIntervalMs > 0 && this.#lastSnapshotAt > 0 &&
      this.clock() - this.#lastSnapshotAt >= config.snapshotIntervalMs;
    if (this.#lastSnapshotAt === 0) this.#lastSnapshotAt = this.clock();
    if (byCount || byTime) {
      this.snapshotIndex().catch((e) =>
        this.bus.publish({
          type: "warning",
          at: this.clock(),
          storeId: this.storeId,
          code: "snapshot_failed",
          message: `periodic index snapshot failed: ${(e as Error).message}`,
        })
      );
    }
  }

  // ---------------------------------------------------------------- writes

  async #storeBlob(id: string, kind: "regular" | "chunk", bytes: Uint8Array) {
    const { index, config } = this.#live();
    if (index.hasBlob(id)) return undefined;
    const committer = this.#commit();
    const pending = committer.pendingBlob(id);
    if (pending) return pending;
    if (bytes.length <= config.packTargetSize) return await committer.addBlob(id, kind, bytes);
    // Too large for any pack: written loose, before any pack naming it.
    let writing = this.#loosePending.get(id);
    if (!writing) {
      writing = (async () => {
        const key = looseBlobKey(id);
        const exists = await this.driver.stat(key).then((i) => i.size === bytes.length, (e) => {
          if (e instanceof NotFoundError) return false;
          throw e;
        });
        if (!exists) await this.driver.put(key, bytes);
        index.registerLooseBlob({
          blobId: id,
          kind,
          rawSize: bytes.length,
          storedSize: bytes.length,
          packId: null,
          offset: null,
        });
      })().finally(() => this.#loosePending.delete(id));
      this.#loosePending.set(id, writing);
    }
    await writing;
    return undefined;
  }

  /**
   * Writes a new version of an artifact. Resolves once its manifest is
   * durable (with every blob it names).
   *
   * @param namespace The namespace (`[A-Za-z0-9._-]`, 1–128 chars).
   * @param key The artifact key (1–1024 UTF-8 bytes, no control characters).
   * @param body The body: bytes, or a stream (never held whole in memory).
   * @param options Content type and metadata.
   * @returns The new version.
   *
   * @example
   * ```ts
   * import { initStore } from "./store.ts";
   * import { MemoryDriver } from "../drivers/memory.ts";
   * const { store } = await initStore(new MemoryDriver());
   * const v = await store.put("ns", "a/b.txt", new TextEncoder().encode("hi"), { contentType: "text/plain" });
   * console.log(v.size); // 2
   * await store.close();
   * ```
   */
  put(namespace: string, key: string, body: Body, options: PutOptions = {}): Promise<ArtifactInfo> {
    return this.#track(() => this.#put(namespace, key, body, options));
  }

  /** Runs a write so that `close()` waits for it. */
  #track<T>(fn: () => Promise<T>): Promise<T> {
    let p: Promise<T>;
    try {
      this.#writable();
      p = fn();
    } catch (e) {
      return Promise.reject(e);
    }
    this.#inFlight.add(p);
    const done = () => this.#inFlight.delete(p);
    p.then(done, done);
    return p;
  }

  async #put(
    namespace: string,
    key: string,
    body: Body,
    options: PutOptions,
  ): Promise<ArtifactInfo> {
    const { descriptor, config } = this.#live();
    validateNamespace(namespace);
    validateArtifactKey(key);
    const metadata = options.metadata ?? {};
    validateMetadata(metadata);
    const contentType = options.contentType ?? "";
    if (contentType !== "") validateContentType(contentType);
    await this.#checkMaintenance("write");

    const hash = descriptor.hash;
    // The packs this put waits on (a set: many chunks share a pack).
    const deps = new Set<BlobHandle>();
    const blobs: string[] = [];
    let size = 0;
    let inline: Uint8Array | undefined;
    let digest: string;

    // Hold bytes until the body is known to exceed the chunk threshold.
    const head: Uint8Array[] = [];
    let headBytes = 0;
    let chunker: Chunker | undefined;
    let whole: ReturnType<typeof createHasher> | undefined;
    for await (const piece of chunksOf(body)) {
      size += piece.length;
      if (!chunker) {
        head.push(piece);
        headBytes += piece.length;
        if (headBytes <= config.chunkThreshold) continue;
        chunker = new Chunker(descriptor.chunking);
        whole = createHasher(hash);
        for (const h of head.splice(0)) {
          whole.update(h);
          for (const c of chunker.push(h)) {
            const id = hashBytes(hash, c);
            blobs.push(id);
            deps.add(await this.#storeBlob(id, "chunk", c));
          }
        }
        continue;
      }
      whole!.update(piece);
      for (const c of chunker.push(piece)) {
        const id = hashBytes(hash, c);
        blobs.push(id);
        deps.add(await this.#storeBlob(id, "chunk", c));
      }
    }
    if (chunker) {
      const last = chunker.finish();
      if (last && last.length > 0) {
        const id = hashBytes(hash, last);
        blobs.push(id);
        deps.add(await this.#storeBlob(id, "chunk", last));
      }
      digest = whole!.digestHex();
    } else {
      const bytes = concat(head, headBytes);
      digest = hashBytes(hash, bytes);
      if (bytes.length <= config.inlineThreshold) inline = bytes.slice();
      else {
        blobs.push(digest);
        deps.add(await this.#storeBlob(digest, "regular", bytes));
      }
    }

    const manifest: Manifest = {
      id: this.#ids.next(),
      storeId: descriptor.storeId,
      namespace,
      key,
      created: this.clock(),
      deleted: false,
      size,
      digest,
      contentType,
      metadata: { ...metadata },
      blobs,
    };
    if (inline) manifest.inline = inline;
    await this.#commit().commitManifest(manifest, deps);
    return infoOf(manifest);
  }

  /**
   * Deletes an artifact: commits a tombstone (older versions stay readable
   * through {@linkcode Store.versions} until garbage collection).
   * @param namespace The namespace. @param key The key.
   * @returns `true` when a tombstone was written, `false` when there was nothing to delete.
   */
  delete(namespace: string, key: string): Promise<boolean> {
    return this.#track(() => this.#delete(namespace, key));
  }

  async #delete(namespace: string, key: string): Promise<boolean> {
    const { index, descriptor } = this.#live();
    validateNamespace(namespace);
    validateArtifactKey(key);
    await this.#checkMaintenance("write");
    if (!index.current(namespace, key)) return false;
    const tombstone: Manifest = {
      id: this.#ids.next(),
      storeId: descriptor.storeId,
      namespace,
      key,
      created: this.clock(),
      deleted: true,
      size: 0,
      digest: "",
      contentType: "",
      metadata: {},
      blobs: [],
    };
    await this.#commit().commitManifest(tombstone, []);
    return true;
  }

  /** Seals the open pack and waits until every pending put is durable. */
  async flush(): Promise<void> {
    await this.#committer?.flush();
  }

  // ----------------------------------------------------------------- reads

  async #manifest(namespace: string, key: string, version?: string): Promise<ManifestRecord> {
    const { index } = this.#live();
    validateNamespace(namespace);
    validateArtifactKey(key);
    await this.#checkMaintenance("read");
    if (version === undefined) {
      const m = index.current(namespace, key);
      if (!m) throw new ArtifactNotFoundError(namespace, key);
      return m;
    }
    const m = index.versions(namespace, key).find((v) => v.id === version);
    if (!m || m.deleted) throw new ArtifactNotFoundError(namespace, key, version);
    return m;
  }

  /**
   * Reads one blob, checking its bytes against its id.
   * @param blobId The blob id.
   * @returns Its bytes.
   * @throws {CorruptObjectError} when the bytes do not match the id.
   */
  async readBlob(blobId: string): Promise<Uint8Array> {
    const { index, descriptor } = this.#live();
    const rec = index.blob(blobId);
    if (rec && rec.packId !== null && rec.offset !== null) {
      return await readBlobFromPack(this.driver, {
        key: packKey(rec.packId),
        id: blobId,
        offset: rec.offset,
        storedLength: rec.storedSize,
      }, { hash: descriptor.hash });
    }
    // Loose blobs live at a key derived from their id, indexed or not.
    const key = looseBlobKey(blobId);
    const bytes = await this.driver.get(key).catch((e) => {
      if (e instanceof NotFoundError) {
        throw new CorruptObjectError(
          key,
          `blob ${blobId} is named by a manifest but exists nowhere`,
        );
      }
      throw e;
    });
    const actual = hashBytes(descriptor.hash, bytes);
    if (actual !== blobId) {
      throw new CorruptObjectError(key, `blob does not match its id (its hash is ${actual})`);
    }
    return bytes;
  }

  /**
   * Reads a whole artifact into memory. For large bodies use
   * {@linkcode Store.getStream}.
   * @param namespace The namespace. @param key The key.
   * @param options A version, if not the current one.
   * @returns The body.
   */
  async get(namespace: string, key: string, options: GetOptions = {}): Promise<Uint8Array> {
    const m = await this.#manifest(namespace, key, options.version);
    if (m.inline) return m.inline.slice();
    const parts: Uint8Array[] = [];
    for (const id of m.blobs) parts.push(await this.readBlob(id));
    const body = concat(parts, m.size);
    if (body.length !== m.size) {
      throw new CorruptObjectError(
        `manifest ${m.id}`,
        `blobs total ${body.length} bytes, the manifest says ${m.size}`,
      );
    }
    return body;
  }

  /**
   * Streams an artifact blob by blob: memory stays at one chunk.
   * @param namespace The namespace. @param key The key.
   * @param options A version, if not the current one.
   * @returns The body as a stream.
   */
  async getStream(
    namespace: string,
    key: string,
    options: GetOptions = {},
  ): Promise<ReadableStream<Uint8Array>> {
    const m = await this.#manifest(namespace, key, options.version);
    if (m.inline) {
      const bytes = m.inline.slice();
      return new ReadableStream({
        start(c) {
          c.enqueue(bytes);
          c.close();
        },
      });
    }
    let i = 0;
    return new ReadableStream<Uint8Array>({
      pull: async (c) => {
        if (i >= m.blobs.length) return c.close();
        c.enqueue(await this.readBlob(m.blobs[i++]!));
      },
    }, { highWaterMark: 1 });
  }

  /**
   * Reads `length` bytes from `offset` of an artifact, clipped at its end.
   * Only the blobs covering the range are read.
   * @param namespace The namespace. @param key The key.
   * @param offset The start. @param length The length.
   * @param options A version, if not the current one.
   * @returns The bytes.
   */
  async getRange(
    namespace: string,
    key: string,
    offset: number,
    length: number,
    options: GetOptions = {},
  ): Promise<Uint8Array> {
    if (
      !Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0
    ) {
      throw new InvalidArgumentError(
        `range must be non-negative integers, got ${offset}+${length}`,
      );
    }
    const m = await this.#manifest(namespace, key, options.version);
    const end = Math.min(m.size, offset + length);
    if (offset >= end) return new Uint8Array(0);
    if (m.inline) return m.inline.slice(offset, end);
    const { index } = this.#live();
    const out = new Uint8Array(end - offset);
    let at = 0;
    for (const id of m.blobs) {
      const size = index.blob(id)?.rawSize ?? (await this.readBlob(id)).length;
      const from = Math.max(offset, at);
      const to = Math.min(end, at + size);
      if (from < to) {
        const bytes = await this.readBlob(id);
        out.set(bytes.subarray(from - at, to - at), from - offset);
      }
      at += size;
      if (at >= end) break;
    }
    return out;
  }

  /**
   * Describes the current (or a given) version of an artifact.
   * @param namespace The namespace. @param key The key.
   * @param options A version, if not the current one.
   * @returns Its info.
   */
  async stat(namespace: string, key: string, options: GetOptions = {}): Promise<ArtifactInfo> {
    return infoOf(await this.#manifest(namespace, key, options.version));
  }

  /**
   * Lists the live artifacts of a namespace in key order, one page at a time.
   * @param namespace The namespace.
   * @param options Prefix, cursor and page size.
   * @returns A page and the cursor of the next one.
   */
  async list(namespace: string, options: ListArtifactsOptions = {}): Promise<ArtifactPage> {
    const { index } = this.#live();
    validateNamespace(namespace);
    await this.#checkMaintenance("read");
    const limit = Math.max(1, Math.min(options.limit ?? 1000, 10_000));
    const rows = index.list(namespace, {
      ...(options.prefix === undefined ? {} : { prefix: options.prefix }),
      ...(options.after === undefined ? {} : { after: options.after }),
      limit,
    });
    const page: ArtifactPage = { items: rows.map(infoOf) };
    if (rows.length === limit) page.cursor = rows[rows.length - 1]!.key;
    return page;
  }

  /**
   * Every version of an artifact, newest first, deletions included.
   * @param namespace The namespace. @param key The key.
   * @returns The versions.
   */
  async versions(namespace: string, key: string): Promise<ArtifactInfo[]> {
    const { index } = this.#live();
    validateNamespace(namespace);
    validateArtifactKey(key);
    await this.#checkMaintenance("read");
    return index.versions(namespace, key).map(infoOf);
  }

  /** The namespaces holding live artifacts. @returns The namespaces. */
  namespaces(): string[] {
    return this.#live().index.namespaces();
  }

  /**
   * Reads in the packs other handles wrote since this one last looked.
   */
  async refresh(): Promise<void> {
    this.#live();
    await this.#checkMaintenance("read");
    this.#refreshing ??= this.#catchUp().finally(() => {
      this.#refreshing = undefined;
    });
    await this.#refreshing;
  }

  // ------------------------------------------------------------ admin reads

  /** The store id. @returns The id, or `""` when Corrupted before the descriptor could be read. */
  get storeId(): string {
    return this.#descriptor?.storeId ?? "";
  }

  /** The state. @returns `Ready`, `Degraded` or `Corrupted`. */
  get state(): StoreState {
    return this.#state;
  }

  /** The descriptor, when one could be read. @returns A copy. */
  get descriptor(): Descriptor | undefined {
    return this.#descriptor ? structuredClone(this.#descriptor) : undefined;
  }

  /** The config in force. @returns It, when one could be read. */
  get config(): StoreConfig | undefined {
    return this.#config;
  }

  /** Whether this handle refuses writes. @returns The flag. */
  get readOnly(): boolean {
    return this.#readOnly;
  }

  /**
   * The StoreIndex, for maintenance agents and diagnostics.
   * @returns The index.
   * @throws {StoreCorruptedError} when the store is Corrupted.
   */
  get index(): StoreIndex {
    return this.#live().index;
  }

  /** Problems found on open or since. @returns A copy. */
  get problems(): string[] {
    return [...this.#problems];
  }

  /**
   * The config history: every valid version, oldest first, and the invalid keys.
   * @returns The history.
   */
  async configHistory(): Promise<
    { versions: StoreConfig[]; invalid: Array<{ key: string; reason: string }> }
  > {
    const { readConfigHistory } = await import("../format/config.ts");
    const h = await readConfigHistory(
      this.driver,
      this.#descriptor ? { chunking: this.#descriptor.chunking } : {},
    );
    return {
      versions: [...h.versions],
      invalid: h.invalid.map((i) => ({ key: i.key, reason: i.reason })),
    };
  }

  /**
   * The store's state, counts, index, snapshots, lease and maintenance mode.
   * @returns The status.
   */
  async status(): Promise<StoreStatus> {
    const lease = await readLease(this.driver).catch(() => null);
    const mode = await readMaintenanceMode(this.driver).catch(() => undefined);
    const snapshots = await listSnapshots(this.driver).catch(() => []);
    const index = this.#index;
    const hwm = index?.highWaterMark() ?? "";
    return {
      storeId: this.storeId,
      location: this.driver.location,
      state: this.#state,
      problems: [...this.#problems],
      hash: this.#descriptor?.hash,
      config: this.#config
        ? {
          seq: this.#config.seq,
          pointer: this.#pointer,
          manifestStorage: this.#config.manifestStorage,
        }
        : undefined,
      counts: index?.counts(),
      index: index
        ? {
          source: this.#indexSource,
          loadedFrom: this.#indexLoadedFrom,
          highWaterMark: hwm,
          highWaterMarkTime: hwm === "" ? undefined : ulidTime(hwm),
          schemaVersion: index.schemaVersion,
        }
        : undefined,
      snapshots,
      lease: lease && lease !== "invalid"
        ? {
          holder: `${lease.agent} on ${lease.host} (pid ${lease.pid})`,
          agent: lease.agent,
          expiresAt: lease.expiresAt,
        }
        : lease === "invalid"
        ? { holder: "unreadable lease", agent: "unknown", expiresAt: 0 }
        : undefined,
      maintenance: mode ? { mode: mode.mode, holder: mode.holder } : undefined,
    };
  }

  // ----------------------------------------------------- index persistence

  /**
   * Writes an index snapshot to the Location now (after flushing), and keeps
   * only the newest `snapshotsKept`.
   * @returns The snapshot's key.
   */
  snapshotIndex(): Promise<string> {
    this.#snapshotting ??= this.#snapshot().finally(() => {
      this.#snapshotting = undefined;
    });
    return this.#snapshotting;
  }

  async #snapshot(): Promise<string> {
    const { index, descriptor, config } = this.#writable();
    await this.#checkMaintenance("commit");
    const db = index.export();
    const hwm = index.highWaterMark();
    const key = SNAPSHOT_PREFIX + this.#ids.next();
    const bytes = encodeSnapshot({
      storeId: descriptor.storeId,
      schemaVersion: index.schemaVersion,
      highWaterMark: hwm,
      createdAt: this.clock(),
    }, db);
    await this.driver.put(key, bytes);
    this.#packsSinceSnapshot = 0;
    this.#lastSnapshotAt = this.clock();
    this.bus.publish({
      type: "snapshot.written",
      at: this.clock(),
      storeId: descriptor.storeId,
      key,
      highWaterMark: hwm,
      bytes: bytes.length,
    });
    const all = await listSnapshots(this.driver);
    for (const old of all.slice(config.snapshotsKept)) await this.driver.delete(old);
    return key;
  }

  /** Writes the host cache of the index (atomically: the host driver's put is). */
  async saveHostCache(): Promise<void> {
    if (!this.hostStorage || this.#readOnly || !this.#index || !this.#descriptor) return;
    const index = this.#index;
    const bytes = encodeSnapshot({
      storeId: this.#descriptor.storeId,
      schemaVersion: index.schemaVersion,
      highWaterMark: index.highWaterMark(),
      createdAt: this.clock(),
    }, index.export());
    await this.hostStorage.put(HOST_CACHE_KEY, bytes);
  }

  // ------------------------------------------------------- for agents only

  /**
   * Marks this handle as the one whose agent holds the maintenance mode: it
   * keeps reading its current index and refuses puts and deletes.
   * @internal For maintenance agents.
   * @param nonce The agent's lease nonce, or `undefined` to stop.
   */
  setMaintenanceNonce(nonce: string | undefined): void {
    this.#maintenanceNonce = nonce;
    this.#modeCheckedAt = -Infinity;
  }

  /**
   * Replaces the index (after a rebuild) and the descriptor/config state.
   * @internal For maintenance agents.
   * @param next The new index, descriptor and config.
   */
  adoptRebuild(
    next: {
      index: StoreIndex;
      descriptor: Descriptor;
      config: StoreConfig;
      pointer: "ok" | "dangling";
    },
  ): void {
    const from = this.#state;
    const old = this.#index;
    this.#index = next.index;
    this.#descriptor = next.descriptor;
    this.#config = next.config;
    this.#pointer = next.pointer;
    this.#indexSource = "empty";
    this.#indexLoadedFrom = "rebuild";
    this.#committer = undefined;
    this.#problems = [];
    this.#state = "Ready";
    if (old && old !== next.index) old.close();
    this.#publishState(from);
  }

  /**
   * Flushes pending puts, saves the host cache and releases the index. The
   * driver is left to its owner.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closing = true;
    try {
      // Puts and deletes already started finish (or fail) before the committer closes.
      while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
      await this.#committer?.close();
      await this.#snapshotting?.catch(() => {});
      if (this.#state !== "Corrupted") await this.saveHostCache().catch(() => {});
    } finally {
      this.#closed = true;
      this.#index?.close();
    }
  }
}

/**
 * Opens a store on a Location.
 *
 * @param driver The Location's driver.
 * @param options Host storage, event bus, clock, read-only.
 * @returns The store; its {@linkcode Store.state} may be `Degraded` or `Corrupted`.
 * @throws {StoreMovedError} when the store was moved away.
 *
 * @example
 * ```ts
 * import { initStore, openStore } from "./store.ts";
 * import { MemoryDriver } from "../drivers/memory.ts";
 * const driver = new MemoryDriver();
 * await (await initStore(driver)).store.close();
 * const store = await openStore(driver);
 * console.log(store.state); // "Ready"
 * await store.close();
 * ```
 */
export function openStore(driver: Driver, options: OpenStoreOptions = {}): Promise<Store> {
  return Store.open(driver, options);
}

/**
 * Creates a store on an empty Location and opens it.
 *
 * Writes the first config version and its pointer, then the descriptor
 * replicas, `store.json` last: until it exists the Location is not a store,
 * so an interrupted init can simply be run again.
 *
 * @param driver The Location's driver.
 * @param options Hash, chunking, first config, host storage.
 * @returns The store and its Recovery Kit.
 * @throws {InvalidArgumentError} when the Location already holds a store or other data.
 *
 * @example
 * ```ts
 * import { initStore } from "./store.ts";
 * import { MemoryDriver } from "../drivers/memory.ts";
 * const { store, recoveryKit } = await initStore(new MemoryDriver(), { hash: "sha256" });
 * console.log(recoveryKit.split("\n")[0]); // "capsa recovery kit v1"
 * await store.close();
 * ```
 */
export async function initStore(
  driver: Driver,
  options: InitStoreOptions = {},
): Promise<InitStoreResult> {
  for (const key of [DESCRIPTOR_KEY, DESCRIPTOR_REPLICA_KEY]) {
    const exists = await driver.stat(key).then(() => true, (e) => {
      if (e instanceof NotFoundError) return false;
      throw e;
    });
    if (exists) {
      throw new InvalidArgumentError(`${driver.location} already holds a store (${key} exists)`);
    }
  }
  for await (const info of driver.list("")) {
    if (!info.key.startsWith(CONFIG_PREFIX)) {
      throw new InvalidArgumentError(
        `${driver.location} is not empty (it holds ${info.key}): init needs an empty Location`,
      );
    }
  }
  const descriptor = createDescriptor({
    ...(options.hash === undefined ? {} : { hash: options.hash }),
    ...(options.chunking === undefined ? {} : { chunking: options.chunking }),
    ...(options.clock === undefined ? {} : { clock: options.clock }),
  });
  const settings: ConfigSettings = { ...defaultConfig(), ...options.config };
  validateConfig(settings, { chunking: descriptor.chunking });
  if (settings.manifestStorage !== "Remote" && !options.hostStorage) {
    throw new InvalidArgumentError(`manifestStorage ${settings.manifestStorage} needs hostStorage`);
  }
  await writeConfigVersion(driver, settings, {
    chunking: descriptor.chunking,
    ...(options.clock === undefined ? {} : { clock: options.clock }),
  });
  await writeDescriptorReplicas(driver, options.hostStorage, descriptor);
  const recoveryKit = encodeRecoveryKit(
    descriptor,
    options.location === undefined ? {} : { location: options.location },
  );
  const store = await openStore(driver, options);
  return { store, recoveryKit };
}

export { enc as _utf8 };
