/**
 * The Store: a handle on one opened Location.
 *
 * {@linkcode initStore} creates a store and hands back its Recovery Kit;
 * {@linkcode openStore} opens one: it reconciles the descriptor replicas,
 * follows the config pointer, loads the index (host cache, else the newest
 * valid snapshot, else empty) and catches up on packs written since.
 *
 * Writes follow docs/FORMAT.md §2: bodies are cut into inline / regular /
 * chunked, blobs are deduplicated against the index and the open pack, and a
 * put resolves only once the pack carrying its manifest is durable.
 *
 * This module is the facade: the handle's state and its public methods. The
 * work lives beside it: `open.ts` (open, heal, load, catch up; init),
 * `gate.ts` (moved marker and maintenance mode), `write.ts` (the put
 * pipeline and pack writes), `read.ts` (blobs, bodies, ranges, pages),
 * `persistence.ts` (index snapshots and the host cache), `replicas.ts`
 * (descriptor replicas), `clock.ts` (the pack clock), `status.ts` and
 * `types.ts` (the public types). It runs a little over 600 lines because
 * each of its ~30 public methods carries its documentation; what is left in
 * the methods is delegation and the handle's own state (closing, refresh).
 *
 * @example Put and get
 * ```ts
 * import assert from "node:assert/strict";
 * import { initStore } from "@capsa/capsa";
 * import { MemoryDriver } from "@capsa/capsa";
 *
 * const { store, recoveryKit } = await initStore(new MemoryDriver());
 * await store.put("docs", "hello.txt", new TextEncoder().encode("hello"));
 * assert.deepEqual(new TextDecoder().decode(await store.get("docs", "hello.txt")), "hello");
 * await store.close();
 * ```
 *
 * @module
 */

import type { Driver } from "../drivers/driver.ts";
import {
  ArtifactNotFoundError,
  CapsaError,
  ClosedError,
  CorruptObjectError,
  InvalidArgumentError,
  NotFoundError,
  ReadOnlyStoreError,
  StoreCorruptedError,
} from "../errors.ts";
import { readConfigHistory, type StoreConfig } from "../format/config.ts";
import type { Descriptor } from "../format/descriptor.ts";
import type { KdfCost, KeySlot, StoreKeys } from "../format/crypto.ts";
import type { Hasher } from "../format/hashing.ts";
import { deleteKeySlot, readKeySlots, unlock, type Unlocked, writeKeySlot } from "./keyslots.ts";
import { encodeRecoveryKit } from "../format/kit.ts";
import { validateArtifactKey, validateNamespace } from "../format/manifest.ts";
import { UlidGenerator } from "../format/ulid.ts";
import type { ManifestRecord, StoreIndex } from "../index/store_index.ts";
import { EventBus, type StoreState } from "./events.ts";
import { PackClock } from "./clock.ts";
import { type GateKind, MaintenanceGate } from "./gate.ts";
import {
  catchUp,
  createOnLocation,
  type OpenContext,
  type OpenedStore,
  openLocation,
} from "./open.ts";
import { saveHostCache, SnapshotSchedule, writeIndexSnapshot } from "./persistence.ts";
import {
  findManifest,
  infoOf,
  listPage,
  readBlob,
  readBody,
  readBodyRange,
  streamBody,
  validateByteRange,
} from "./read.ts";
import { ReadAhead } from "./read_ahead.ts";
import { storeStatus } from "./status.ts";
import {
  type BatchItem,
  type BatchOptions,
  type BatchResult,
  type BatchSummary,
  WriteBatch,
} from "./batch.ts";
import type {
  ArtifactInfo,
  ArtifactPage,
  Body,
  GetOptions,
  InitStoreOptions,
  InitStoreResult,
  KeySlotInfo,
  ListArtifactsOptions,
  OpenStoreOptions,
  PutOptions,
  StoreStatus,
} from "./types.ts";
import { DEFAULT_REFRESH_INTERVAL_MS, MISS_REFRESH_MS } from "./types.ts";
import { bodyDigestHasher, type Live, Writer } from "./write.ts";

export type * from "./types.ts";
export { type BatchItem, type BatchOptions, type BatchResult, type BatchSummary, WriteBatch };
export { readMaintenanceMode } from "./gate.ts";

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
  /** State, problems, descriptor, config and index: what open found, changed by a rebuild. */
  #s: OpenedStore;
  #ids: UlidGenerator;
  #packClock: PackClock;
  #readOnly: boolean;
  #parallelism: number;
  #passphrase: string | undefined;
  #gate: MaintenanceGate;
  /** Pack reads, read ahead once a pack is read in order (a restore). */
  #readAhead: ReadAhead;
  #writer: Writer;
  #schedule: SnapshotSchedule;
  #closed = false;
  #closing = false;
  #snapshotting: Promise<string> | undefined;
  #refreshing: Promise<void> | undefined;
  /** When the index last finished looking at the Location (open, refresh, auto catch-up). */
  #caughtUpAt: number;
  #refreshIntervalMs = DEFAULT_REFRESH_INTERVAL_MS;
  #inFlight = new Set<Promise<unknown>>();
  #batches = new Set<WriteBatch>();

  /**
   * Use {@linkcode openStore}.
   * @param driver The Location. @param init How it was opened. @param opened What open found.
   */
  private constructor(driver: Driver, init: OpenContext, opened: OpenedStore) {
    this.driver = driver;
    this.hostStorage = init.host;
    this.bus = init.bus;
    this.clock = init.clock;
    this.#readOnly = init.readOnly;
    this.#parallelism = init.parallelism;
    this.#passphrase = init.passphrase;
    this.#s = opened;
    this.#caughtUpAt = init.clock();
    this.#packClock = new PackClock(driver, init.clock, init.bus, () => this.storeId);
    this.#ids = new UlidGenerator({ clock: this.#packClock.now });
    this.#gate = new MaintenanceGate(driver, init.clock);
    this.#readAhead = new ReadAhead(driver);
    this.#schedule = new SnapshotSchedule(init.clock);
    this.#writer = new Writer({
      driver,
      host: init.host,
      bus: init.bus,
      clock: init.clock,
      packClock: this.#packClock.now,
      ids: this.#ids,
      live: () => this.#live(),
      check: (kind) => this.#check(kind),
      syncClock: () => this.#packClock.sync(),
      packWritten: (config) => this.#packWritten(config),
    });
  }

  /** @internal Opens a store; see {@linkcode openStore}. */
  static async open(driver: Driver, options: OpenStoreOptions = {}): Promise<Store> {
    const context: OpenContext = {
      host: options.hostStorage,
      bus: options.bus ?? new EventBus(),
      clock: options.clock ?? Date.now,
      readOnly: options.readOnly ?? false,
      parallelism: options.parallelism ?? 8,
      passphrase: options.passphrase,
      deferIndex: options.deferIndex ?? false,
    };
    const store = new Store(driver, context, await openLocation(driver, context));
    store.#refreshIntervalMs = options.refreshIntervalMs ?? DEFAULT_REFRESH_INTERVAL_MS;
    store.#publishState(undefined);
    return store;
  }

  #publishState(from: StoreState | undefined): void {
    this.bus.publish({
      type: "store.state",
      at: this.clock(),
      storeId: this.storeId,
      from,
      to: this.#s.state,
      reasons: [...this.#s.problems],
    });
  }

  // ---------------------------------------------------------------- guards

  #live(): Live {
    if (this.#closed) throw new ClosedError("the store");
    if (this.#s.state !== "Corrupted" && !this.#s.index && this.#s.config) {
      throw new InvalidArgumentError(
        "this handle was opened with deferIndex: it has no index until a rebuild " +
          "(RebuildIndexAgent) installs one",
      );
    }
    if (this.#s.state === "Corrupted" || !this.#s.index || !this.#s.descriptor || !this.#s.config) {
      throw new StoreCorruptedError(this.#s.problems.length > 0 ? this.#s.problems : ["unknown"]);
    }
    return {
      index: this.#s.index,
      descriptor: this.#s.descriptor,
      config: this.#s.config,
      keys: this.#s.keys,
    };
  }

  #writable(): Live {
    const live = this.#live();
    if (this.#closing) throw new ClosedError("the store (closing)");
    if (this.#readOnly) throw new ReadOnlyStoreError();
    return live;
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

  /**
   * The gate, then garbage collection: a put or commit on an index that has
   * not applied the newest gc run catches up first, so that it never
   * deduplicates against what the run deletes (docs/FORMAT.md §8, G3).
   */
  async #check(kind: GateKind): Promise<void> {
    await this.#gate.check(kind);
    if (kind === "read") return;
    const run = this.#gate.gcRun;
    if (run !== "" && run > this.#live().index.gcSeen) await this.refresh();
  }

  #packWritten(config: StoreConfig): void {
    const due = this.#schedule.packWritten(config);
    if (!due || this.#snapshotting) return;
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

  // ---------------------------------------------------------------- writes

  /**
   * Writes a new version of an artifact. Resolves once its manifest is
   * durable (with every blob it names).
   *
   * @param namespace The namespace (`[A-Za-z0-9._-]`, 1–128 chars).
   * @param key The artifact key (1–1024 UTF-8 bytes, no control characters).
   * @param body The body: bytes, a stream (never held whole in memory), or a string (its UTF-8 bytes).
   * @param options Content type and metadata.
   * @returns The new version.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { initStore } from "./store.ts";
   * import { MemoryDriver } from "../drivers/memory.ts";
   * const { store } = await initStore(new MemoryDriver());
   * const v = await store.put("ns", "a/b.txt", new TextEncoder().encode("hi"), { contentType: "text/plain" });
   * assert.deepEqual(v.size, 2);
   * await store.close();
   * ```
   */
  put(namespace: string, key: string, body: Body, options: PutOptions = {}): Promise<ArtifactInfo> {
    return this.#track(() => this.#writer.put(namespace, key, body, options));
  }

  /**
   * Opens a write session: many puts into packs sealed at the config's
   * `packTargetSize`, for bulk loads. A put of the session resolves once it
   * is accepted (body read, placed in a pack); each pack is a commit of its
   * own, written when full; {@linkcode WriteBatch.close} seals the last one
   * and resolves when every put is durable and indexed, with each put's
   * outcome. Single puts keep group commit (small packs, low latency).
   * Closing the store closes its open sessions.
   *
   * @param options A callback per outcome.
   * @returns The session.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { initStore } from "./store.ts";
   * import { MemoryDriver } from "../drivers/memory.ts";
   * const { store } = await initStore(new MemoryDriver());
   * const batch = store.batch();
   * for (let i = 0; i < 100; i++) {
   *   await batch.put("ns", `file-${i}`, new Uint8Array(2000).fill(i));
   * }
   * await batch.put("ns", "bad\u0000key", new Uint8Array(1)); // fails alone
   * const { stored, failed, results } = await batch.close();
   * assert.deepEqual([stored, failed], [100, 1]);
   * assert.ok(results[0]!.ok && results[0]!.info.size === 2000);
   * assert.deepEqual((await store.get("ns", "file-7"))[0], 7);
   * assert.deepEqual((await store.status()).counts?.packs, 1); // one pack for the 100 puts
   * await store.close();
   * ```
   */
  batch(options: BatchOptions = {}): WriteBatch {
    this.#writable();
    const batch = new WriteBatch({
      writer: this.#writer.session(),
      track: (fn) => this.#track(fn),
      closed: (b) => this.#batches.delete(b),
    }, options);
    this.#batches.add(batch);
    return batch;
  }

  /**
   * Stores many artifacts through one write session
   * ({@linkcode Store.batch}), `concurrency` bodies read at once.
   *
   * @param items The artifacts (an array, or any iterable or async iterable:
   *   it is read as the session goes, never all at once).
   * @param options Concurrency (default 8), a callback per outcome.
   * @returns Every put's outcome, in the order of `items`, and counts.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { initStore } from "./store.ts";
   * import { MemoryDriver } from "../drivers/memory.ts";
   * const { store } = await initStore(new MemoryDriver());
   * const text = new TextEncoder();
   * const summary = await store.putMany([
   *   { namespace: "ns", key: "a", body: text.encode("alpha") },
   *   { namespace: "ns", key: "b", body: text.encode("beta"), contentType: "text/plain" },
   * ]);
   * assert.deepEqual(summary.stored, 2);
   * assert.deepEqual(new TextDecoder().decode(await store.get("ns", "b")), "beta");
   * await store.close();
   * ```
   */
  async putMany(
    items: Iterable<BatchItem> | AsyncIterable<BatchItem>,
    options: BatchOptions & { concurrency?: number } = {},
  ): Promise<BatchSummary> {
    const batch = this.batch(options);
    const concurrency = options.concurrency ?? 8;
    const running = new Set<Promise<void>>();
    let summary: BatchSummary | undefined;
    try {
      for await (const item of items) {
        const { namespace, key, body, ...rest } = item;
        const p = batch.put(namespace, key, body, rest).catch(() => {});
        running.add(p);
        p.finally(() => running.delete(p));
        if (running.size >= concurrency) await Promise.race(running);
      }
    } finally {
      // Also when `items` throws: what was accepted is committed, then the error propagates.
      await Promise.allSettled([...running]);
      summary = await batch.close();
    }
    return summary;
  }

  /**
   * Deletes an artifact: commits a tombstone (older versions stay readable
   * through {@linkcode Store.versions} until garbage collection).
   * The handle first catches up on what other handles wrote, so a key another
   * process deleted (or wrote) is judged as it is now: a second delete finds
   * nothing and writes no second tombstone.
   * @param namespace The namespace. @param key The key.
   * @returns `true` when a tombstone was written, `false` when there was
   *   nothing to delete (the CLI and HTTP report that as `not_found`).
   */
  delete(namespace: string, key: string): Promise<boolean> {
    return this.#track(async () => {
      validateNamespace(namespace);
      validateArtifactKey(key);
      if (!this.#gate.ownAgentRuns) await this.refresh();
      return await this.#writer.delete(namespace, key);
    });
  }

  /** Seals the open pack and waits until every pending put is durable. */
  async flush(): Promise<void> {
    await this.#writer.flush();
  }

  // ----------------------------------------------------------------- reads

  /**
   * The index, once the handle is live, the names are valid and the gate lets
   * reads pass; caught up first when it has not looked at the Location for
   * longer than the refresh interval (a long-lived handle keeps up on its own).
   */
  async #readable(namespace: string, key?: string): Promise<StoreIndex> {
    this.#live();
    validateNamespace(namespace);
    if (key !== undefined) validateArtifactKey(key);
    await this.#gate.check("read");
    if (this.clock() - this.#caughtUpAt >= this.#refreshIntervalMs) await this.#autoRefresh();
    return this.#live().index;
  }

  /** A catch-up the handle starts on its own; skipped while this handle's own agent runs. */
  async #autoRefresh(): Promise<void> {
    if (this.#gate.ownAgentRuns || this.#closing) return;
    await this.refresh();
  }

  /**
   * The manifest of a version. A miss catches up once and looks again, so an
   * artifact another process stored is found at once, not after the refresh
   * interval; misses in a burst share one catch-up.
   */
  async #manifest(namespace: string, key: string, version?: string): Promise<ManifestRecord> {
    const index = await this.#readable(namespace, key);
    try {
      return findManifest(index, namespace, key, version);
    } catch (e) {
      if (
        !(e instanceof ArtifactNotFoundError) ||
        this.clock() - this.#caughtUpAt < MISS_REFRESH_MS
      ) throw e;
      await this.#autoRefresh();
      return findManifest(this.#live().index, namespace, key, version);
    }
  }

  /**
   * Reads one blob, checking its bytes against its id.
   * @param blobId The blob id.
   * @returns Its bytes.
   * @throws {CorruptObjectError} when the bytes do not match the id.
   */
  async readBlob(blobId: string): Promise<Uint8Array> {
    const { index, descriptor, keys } = this.#live();
    try {
      return await readBlob(this.driver, index, descriptor.hash, blobId, keys, this.#readAhead);
    } catch (e) {
      // A pack garbage collection deleted after this index last looked, or a blob it
      // does not know (a rescue pack it has not read yet): catch up and try once more.
      const gone = e instanceof NotFoundError ||
        (e instanceof CorruptObjectError && !index.hasBlob(blobId));
      if (!gone) throw e;
      await this.refresh();
      const live = this.#live();
      return await readBlob(
        this.driver,
        live.index,
        live.descriptor.hash,
        blobId,
        live.keys,
        this.#readAhead,
      );
    }
  }

  /**
   * A fresh time-ordered id (a ULID) from this handle's clock corrected to
   * the Location's (docs/FORMAT.md §7 K3): what maintenance agents name the
   * packs and records they write with.
   * @returns The id.
   */
  async newId(): Promise<string> {
    await this.#packClock.sync();
    return this.#ids.next();
  }

  /**
   * This handle's clock corrected to the Location's, in ms since the epoch.
   * @returns The time.
   */
  locationNow(): number {
    return this.#packClock.now();
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
    return await readBody(m, (id) => this.readBlob(id));
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
    return streamBody(m, (id) => this.readBlob(id));
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
    validateByteRange(offset, length);
    const m = await this.#manifest(namespace, key, options.version);
    const { index } = this.#live();
    return await readBodyRange(
      m,
      offset,
      length,
      (id) => index.blob(id)?.rawSize,
      (id) => this.readBlob(id),
    );
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
    return listPage(await this.#readable(namespace), namespace, options);
  }

  /**
   * Every live artifact of a namespace (under a prefix), in key order, page
   * after page: nothing is cut at a page size.
   * @param namespace The namespace.
   * @param options Only keys starting with `prefix`.
   * @returns The artifacts.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { initStore } from "./store.ts";
   * import { MemoryDriver } from "../drivers/memory.ts";
   * const { store } = await initStore(new MemoryDriver());
   * for (let i = 0; i < 3; i++) await store.put("ns", `k${i}`, `body ${i}`);
   * const keys: string[] = [];
   * for await (const a of store.iterate("ns")) keys.push(a.key);
   * assert.deepEqual(keys, ["k0", "k1", "k2"]);
   * await store.close();
   * ```
   */
  async *iterate(
    namespace: string,
    options: { prefix?: string } = {},
  ): AsyncIterableIterator<ArtifactInfo> {
    let after: string | undefined;
    for (;;) {
      const page = await this.list(namespace, {
        limit: 1000,
        ...(options.prefix === undefined ? {} : { prefix: options.prefix }),
        ...(after === undefined ? {} : { after }),
      });
      yield* page.items;
      if (page.after === undefined) return;
      after = page.after;
    }
  }

  /**
   * Every version of an artifact, newest first, deletions included.
   * @param namespace The namespace. @param key The key.
   * @returns The versions.
   */
  async versions(namespace: string, key: string): Promise<ArtifactInfo[]> {
    return (await this.#readable(namespace, key)).versions(namespace, key).map(infoOf);
  }

  /**
   * The namespaces holding live artifacts, caught up like every read (async,
   * as every other read is).
   * @returns The namespaces, in byte order.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { initStore } from "./store.ts";
   * import { MemoryDriver } from "../drivers/memory.ts";
   * const { store } = await initStore(new MemoryDriver());
   * await store.put("photos", "a.jpg", "…");
   * assert.deepEqual(await store.namespaces(), ["photos"]);
   * await store.close();
   * ```
   */
  async namespaces(): Promise<string[]> {
    this.#live();
    await this.#gate.check("read");
    if (this.clock() - this.#caughtUpAt >= this.#refreshIntervalMs) await this.#autoRefresh();
    return this.#live().index.namespaces();
  }

  /**
   * Reads in the packs other handles wrote since this one last looked.
   */
  async refresh(): Promise<void> {
    const { index, descriptor, config, keys } = this.#live();
    await this.#gate.check("read");
    const started = this.clock();
    this.#refreshing ??= catchUp(index, {
      driver: this.driver,
      host: this.hostStorage,
      descriptor,
      config,
      parallelism: this.#parallelism,
      now: this.#packClock.now,
      keys,
    }, this.#s.problems).then(() => {
      this.#caughtUpAt = Math.max(this.#caughtUpAt, started);
    }).finally(() => {
      this.#refreshing = undefined;
    });
    await this.#refreshing;
  }

  // ------------------------------------------------------------ admin reads

  /** The store id. @returns The id, or `""` when Corrupted before the descriptor could be read. */
  get storeId(): string {
    return this.#s.descriptor?.storeId ?? "";
  }

  /** The state. @returns `Ready`, `Degraded` or `Corrupted`. */
  get state(): StoreState {
    return this.#s.state;
  }

  /** The descriptor, when one could be read. @returns A copy. */
  get descriptor(): Descriptor | undefined {
    return this.#s.descriptor ? structuredClone(this.#s.descriptor) : undefined;
  }

  /** The config in force. @returns It, when one could be read. */
  get config(): StoreConfig | undefined {
    return this.#s.config;
  }

  /**
   * An encrypted store's keys, for maintenance agents (`undefined` for an
   * unencrypted store, or one opened Corrupted).
   * @internal
   * @returns The keys.
   */
  get keys(): StoreKeys | undefined {
    return this.#s.keys;
  }

  /**
   * Unlocks an encrypted store's keys with the passphrase this handle was
   * opened with (a rebuild from the Recovery Kit, whose handle opened
   * Corrupted and has no keys).
   * @internal For maintenance agents.
   * @param descriptor The store's descriptor.
   * @param slots The key slots to try.
   * @returns The keys and data key.
   */
  unlockWith(descriptor: Descriptor, slots: readonly KeySlot[]): Promise<Unlocked> {
    return unlock(descriptor, slots, this.#passphrase);
  }

  /**
   * A hasher of body digests as this store computes them (`ArtifactInfo.digest`):
   * the descriptor's algorithm, keyed in an encrypted store. Compare a local
   * file with a stored version without reading the version back.
   * @returns A fresh hasher.
   * @throws {StoreCorruptedError} when the store is Corrupted.
   */
  digestHasher(): Hasher {
    return bodyDigestHasher(this.#live());
  }

  /**
   * The store's Recovery Kit, from its descriptor and, for an encrypted
   * store, its key slots as they are now (docs/FORMAT.md §6.5).
   * @returns The kit's text.
   * @throws {StoreCorruptedError} when no descriptor replica could be read.
   */
  async recoveryKit(): Promise<string> {
    const descriptor = this.#s.descriptor;
    if (!descriptor) {
      throw new StoreCorruptedError([
        ...this.#s.problems,
        "no descriptor replica is readable, so no kit can be made from it; use the kit saved at init",
      ]);
    }
    const keySlots = descriptor.encryption === null
      ? []
      : (await readKeySlots(this.driver, descriptor.storeId)).slots;
    return encodeRecoveryKit(descriptor, { location: this.driver.location, keySlots });
  }

  /**
   * The key slots of an encrypted store.
   * @returns One entry per slot, by slot id.
   * @throws {InvalidArgumentError} when the store is not encrypted.
   *
   * @example Adding a passphrase, then retiring the first
   * ```ts
   * import assert from "node:assert/strict";
   * import { initStore, openStore } from "./store.ts";
   * import { MemoryDriver } from "../drivers/memory.ts";
   *
   * const kdf = { memoryKiB: 1024, iterations: 1, parallelism: 1 }; // cheap, for the example
   * const driver = new MemoryDriver();
   * const { store } = await initStore(driver, { encryption: { passphrase: "first", kdf } });
   * const added = await store.addKeySlot("second", { kdf, label: "ops" });
   * const first = (await store.keySlots()).find((s) => s.current)!;
   * await store.removeKeySlot(first.slotId);
   * assert.deepEqual((await store.keySlots()).map((s) => s.slotId), [added.slotId]);
   * await store.close();
   * const again = await openStore(driver, { passphrase: "second" });
   * await again.close();
   * ```
   */
  async keySlots(): Promise<KeySlotInfo[]> {
    const { descriptor } = this.#encrypted();
    const reading = await readKeySlots(this.driver, descriptor.storeId);
    return reading.slots.map((slot) => this.#slotInfo(slot));
  }

  #slotInfo(slot: KeySlot): KeySlotInfo {
    return {
      slotId: slot.slotId,
      label: slot.label,
      createdAt: slot.createdAt,
      kdf: {
        memoryKiB: slot.kdf.memoryKiB,
        iterations: slot.kdf.iterations,
        parallelism: slot.kdf.parallelism,
      },
      current: slot.slotId === this.#s.slotId,
    };
  }

  #encrypted(): Live & { keys: StoreKeys } {
    const live = this.#live();
    if (live.keys === undefined) {
      throw new InvalidArgumentError("the store is not encrypted: it has no key slots");
    }
    return live as Live & { keys: StoreKeys };
  }

  /**
   * Adds a key slot: the store's data key wrapped under another passphrase.
   * Nothing else is rewritten.
   * @param passphrase The new passphrase (not empty).
   * @param options A label and the Argon2id cost (default 64 MiB, 3 passes).
   * @returns The new slot.
   */
  async addKeySlot(
    passphrase: string,
    options: { label?: string; kdf?: KdfCost } = {},
  ): Promise<KeySlotInfo> {
    const { keys } = this.#encrypted();
    this.#writable();
    const slot = await keys.createSlot(passphrase, { ...options, clock: this.clock });
    await writeKeySlot(this.driver, slot);
    return this.#slotInfo(slot);
  }

  /**
   * Removes a key slot; its passphrase no longer opens the store. The last
   * slot is refused (`last_key_slot`).
   * @param slotId The slot's id (see {@linkcode Store.keySlots}).
   * @throws {NotFoundError} for an unknown slot.
   */
  async removeKeySlot(slotId: string): Promise<void> {
    const { descriptor } = this.#encrypted();
    this.#writable();
    const { slots } = await readKeySlots(this.driver, descriptor.storeId);
    if (!slots.some((s) => s.slotId === slotId)) {
      throw new NotFoundError(
        `no key slot ${JSON.stringify(slotId)} (see: capsa key list)`,
      );
    }
    if (slots.length === 1) {
      throw new CapsaError(
        "last_key_slot",
        `key slot ${slotId} is the store's last: nothing could open the store without it; ` +
          "add another first (capsa key add)",
      );
    }
    await deleteKeySlot(this.driver, slotId);
  }

  /**
   * Changes the passphrase this handle was opened with: a new slot under the
   * new passphrase, then the old slot removed.
   * @param passphrase The new passphrase.
   * @param options Label and cost of the new slot.
   * @returns The new slot.
   */
  async changePassphrase(
    passphrase: string,
    options: { label?: string; kdf?: KdfCost } = {},
  ): Promise<KeySlotInfo> {
    const old = this.#s.slotId;
    const label = options.label ??
      (await this.keySlots()).find((s) => s.slotId === old)?.label;
    const added = await this.addKeySlot(passphrase, {
      ...options,
      ...(label === undefined ? {} : { label }),
    });
    if (old !== undefined) await deleteKeySlot(this.driver, old);
    this.#s = { ...this.#s, slotId: added.slotId };
    return { ...added, current: true };
  }

  /** Whether the store is encrypted. @returns `true` when its descriptor says so. */
  get encrypted(): boolean {
    return (this.#s.descriptor?.encryption ?? null) !== null;
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
    return [...this.#s.problems];
  }

  /**
   * The config history: every valid version, oldest first, and the invalid keys.
   * @returns The history.
   */
  async configHistory(): Promise<
    { versions: StoreConfig[]; invalid: Array<{ key: string; reason: string }> }
  > {
    const chunking = this.#s.descriptor?.chunking;
    const h = await readConfigHistory(this.driver, chunking ? { chunking } : {});
    return {
      versions: [...h.versions],
      invalid: h.invalid.map(({ key, reason }) => ({ key, reason })),
    };
  }

  /**
   * The store's state, counts, index, snapshots, lease and maintenance mode.
   * @returns The status.
   */
  status(): Promise<StoreStatus> {
    return storeStatus({ driver: this.driver, ...this.#s });
  }

  // ----------------------------------------------------- index persistence

  /**
   * Writes an index snapshot to the Location now, and keeps only the newest
   * `snapshotsKept`.
   * @returns The snapshot's key.
   */
  snapshotIndex(): Promise<string> {
    this.#snapshotting ??= this.#snapshot().finally(() => {
      this.#snapshotting = undefined;
    });
    return this.#snapshotting;
  }

  async #snapshot(): Promise<string> {
    const { index, descriptor, config, keys } = this.#writable();
    await this.#gate.check("commit");
    // Snapshot ids come from the same generator as pack ids: never draw one before the clock
    // is measured, or a host whose clock runs ahead would push every later id into the future.
    await this.#packClock.sync();
    const written = await writeIndexSnapshot(this.driver, index, {
      storeId: descriptor.storeId,
      config,
      clock: this.#packClock.now,
      ids: this.#ids,
      keys,
    });
    this.#schedule.snapshotWritten();
    this.bus.publish({
      type: "snapshot.written",
      at: this.clock(),
      storeId: descriptor.storeId,
      key: written.key,
      highWaterMark: written.highWaterMark,
      bytes: written.bytes.length,
    });
    return written.key;
  }

  /** Writes the host cache of the index (atomically: the host driver's put is). */
  async saveHostCache(): Promise<void> {
    if (!this.hostStorage || this.#readOnly || !this.#s.index || !this.#s.descriptor) return;
    const index = this.#s.index;
    if (index.hostCacheCurrent) return;
    await saveHostCache(this.hostStorage, index, {
      storeId: this.#s.descriptor.storeId,
      createdAt: this.clock(),
      keys: this.#s.keys,
    });
  }

  // ------------------------------------------------------- for agents only

  /**
   * Marks this handle as the one whose agent holds the maintenance mode: it
   * keeps reading its current index and refuses puts and deletes.
   * @internal For maintenance agents.
   * @param nonce The agent's lease nonce, or `undefined` to stop.
   */
  setMaintenanceNonce(nonce: string | undefined): void {
    this.#gate.setNonce(nonce);
  }

  /**
   * Takes a config version an agent just committed as the one in force.
   * @internal For maintenance agents.
   * @param config The new version.
   */
  adoptConfig(config: StoreConfig): void {
    this.#s = { ...this.#s, config };
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
      keys?: StoreKeys | undefined;
    },
  ): void {
    const from = this.#s.state;
    const old = this.#s.index;
    this.#s = {
      ...next,
      keys: next.keys ?? this.#s.keys,
      state: "Ready",
      problems: [],
      indexSource: "empty",
      indexLoadedFrom: "rebuild",
    };
    this.#writer.reset();
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
      // Open write sessions seal their last pack and finish.
      for (const b of [...this.#batches]) await b.close().catch(() => {});
      // Puts and deletes already started finish (or fail) before the committer closes.
      while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
      await this.#writer.close();
      await this.#snapshotting?.catch(() => {});
      if (this.#s.state !== "Corrupted") await this.saveHostCache().catch(() => {});
    } finally {
      this.#closed = true;
      this.#s.index?.close();
    }
  }
}

/**
 * Opens a store on a Location.
 *
 * @param driver The Location's driver.
 * @param options Host storage, event bus, clock, read-only.
 * @returns The store; its {@linkcode Store.state} may be `Degraded` or `Corrupted`.
 * @throws {CapsaError} `no_store` when the Location holds nothing at all (a
 *   wrong path); a Location whose descriptor replicas are all lost but that
 *   holds the rest of a store opens `Corrupted` instead (rebuild it with its kit).
 * @throws {StoreMovedError} when the store was moved away.
 * @throws {HostStorageRequiredError} when its manifests live only on the host
 *   (`manifestStorage` `Local`) and no host storage was given.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { initStore, openStore } from "@capsa/capsa";
 * import { MemoryDriver } from "@capsa/capsa";
 * const driver = new MemoryDriver();
 * await (await initStore(driver)).store.close();
 * const store = await openStore(driver);
 * assert.deepEqual(store.state, "Ready");
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
 * import assert from "node:assert/strict";
 * import { initStore } from "@capsa/capsa";
 * import { MemoryDriver } from "@capsa/capsa";
 * const { store, recoveryKit } = await initStore(new MemoryDriver(), { hash: "sha256" });
 * assert.deepEqual(recoveryKit.split("\n")[0], "capsa recovery kit v1");
 * await store.close();
 * ```
 */
export async function initStore(
  driver: Driver,
  options: InitStoreOptions = {},
): Promise<InitStoreResult> {
  const recoveryKit = await createOnLocation(driver, options);
  const store = await openStore(driver, {
    ...options,
    ...(options.encryption === undefined ? {} : { passphrase: options.encryption.passphrase }),
  });
  return { store, recoveryKit };
}
