/**
 * RebuildIndexAgent: rebuilds the StoreIndex from the pack TOCs (and the host
 * manifest log), rewrites lost descriptor replicas from the Recovery Kit, and
 * repoints a dangling `system.config/current`.
 *
 * The new index is built beside the live one and swapped in only when it is
 * complete, after a last check of the lease: an interrupted rebuild (error,
 * abort, lost lease, killed process) leaves the old index in use.
 *
 * @module
 */

import type { Driver } from "../drivers/driver.ts";
import { NotFoundError } from "../drivers/driver.ts";
import {
  defaultConfig,
  type ManifestStorage,
  resolveCurrentConfig,
  type StoreConfig,
  writeConfigVersion,
  writeCurrentPointer,
} from "../format/config.ts";
import {
  decodeDescriptor,
  type Descriptor,
  descriptorChecksum,
  MAX_DESCRIPTOR_BYTES,
} from "../format/descriptor.ts";
import { CapsaError, CorruptObjectError, InvalidArgumentError } from "../errors.ts";
import { EventBus } from "../store/events.ts";
import { StoreIndex } from "../index/store_index.ts";
import { readPackToc } from "../format/pack.ts";
import { type KeySlot, SEAL_OVERHEAD, type StoreKeys } from "../format/crypto.ts";
import { readKeySlots, writeKeySlot } from "../store/keyslots.ts";
import { indexPacks, listPacksSinceMark } from "../index/pack_indexer.ts";
import { applyGcRuns } from "../index/gc_runs.ts";
import { decodeSnapshot, ForeignSnapshotError } from "../format/snapshot.ts";
import {
  hostIndexDir,
  listSnapshots,
  loadNewestIndex,
  saveHostCache,
  writeIndexSnapshot,
} from "../store/persistence.ts";
import { readDescriptorReplicas, writeDescriptorReplicas } from "../store/replicas.ts";
import type { Store } from "../store/store.ts";
import { descriptorFromKit, parseRecoveryKit } from "../format/kit.ts";
import {
  AgentBase,
  HostStorageRequiredError,
  type MaintenanceAgent,
  type MaintenanceContext,
  NoSnapshotError,
  RecoveryKitMismatchError,
  RecoveryKitRequiredError,
  requireIntegers,
} from "./agent.ts";
import {
  configVersionKey,
  DESCRIPTOR_KEY,
  DESCRIPTOR_REPLICA_KEY,
  LOOSE_BLOB_PREFIX,
  looseBlobKey,
  MANIFEST_LOG_PREFIX,
  PACK_PREFIX,
  SNAPSHOT_PREFIX,
} from "../layout.ts";

/** The strategy for picking a source when rebuilding the index. */
export type RebuildSource = "Auto" | "Snapshot" | "FullScan";

/** Configures the RebuildIndexAgent. */
export interface RebuildConfig {
  /**
   * The strategy: `"Auto"` (default), `"Snapshot"` or `"FullScan"`, or the
   * CLI's spellings `"auto"`, `"snapshot"`, `"full-scan"`.
   */
  source?: RebuildSource | "auto" | "snapshot" | "full-scan";
  /**
   * The Recovery Kit's content: its text (as `initStore` returns it) or its
   * bytes (as read from the file). Required when the store is Corrupted
   * because every descriptor replica was lost; otherwise omitted.
   */
  recoveryKit?: Uint8Array | string;
  /**
   * The host storage, when `ManifestStorage` is `Local` or `Replicated`
   * (default: the store's). Without it: `Local` → {@linkcode HostStorageRequiredError}
   * from `validate()`; `Replicated` → falls back to `Remote`.
   */
  hostStorage?: Driver;
  /** Manifests per index transaction. Default 1000. */
  batchSize?: number;
  /** Workers reading TOCs in parallel. Default 8 (16–32 for S3, 4–8 for localfs). */
  parallelism?: number;
  /** The lease's hold time in ms. Default 30 minutes. */
  leaseTTL?: number | string;
  /** Break a live lease held by someone else (loudly: a warning event). Default `false`. */
  force?: boolean;
}

/** Final statistics of a rebuild, and a progress snapshot while it runs. */
export interface RebuildStats {
  /** The path actually taken (relevant for `Auto`). */
  source: RebuildSource;
  /** The snapshot's id when `source` is not `FullScan`; `""` when starting from scratch. */
  snapshotUsed: string;
  /** Manifests read from the Location (and host log). */
  manifestsScanned: number;
  /** Manifests added to the StoreIndex. */
  manifestsIndexed: number;
  /** Manifests already in the snapshot, not re-read. */
  manifestsSkipped: number;
  /** Rows in the blobs table (regular + chunks) registered by this rebuild. */
  blobsRegistered: number;
  /** Pack TOCs read and parsed. */
  packsIndexed: number;
  /** Whether `system.config/current` was restored. */
  pointerRecovered: boolean;
  /** Whether `store.json` was rewritten from the Recovery Kit. */
  descriptorRewrote: boolean;
  /**
   * Whether the rebuild wrote a fresh index snapshot: always after a full
   * scan; after starting from a snapshot only when it read
   * `snapshotEveryPacks` packs or more past it, or a newer snapshot was
   * unusable (docs/DESIGN.md §5.3).
   */
  snapshotWritten: boolean;
  /** Elapsed time in ms. */
  duration: number;
}

/** The RebuildIndexAgent. */
export interface RebuildIndexAgent extends MaintenanceAgent {
  /** Always `"RebuildIndex"`. */
  readonly kind: "RebuildIndex";
  /**
   * A progress snapshot while running (safe to call at any time); the final
   * statistics after `run`.
   * @returns A copy of the stats.
   */
  stats(): RebuildStats;
  /** Problems found (unparsable TOCs, manifests, log entries), each with its key. */
  problems(): Array<{ key: string; reason: string }>;
}

/** The defaults of {@linkcode RebuildConfig}. */
export const REBUILD_DEFAULTS = {
  source: "Auto" as RebuildSource,
  batchSize: 1000,
  parallelism: 8,
  leaseTTL: 30 * 60_000,
} as const;

const SOURCES: readonly RebuildSource[] = ["Auto", "Snapshot", "FullScan"];
const SOURCE_ALIASES: Readonly<Record<string, RebuildSource>> = {
  auto: "Auto",
  snapshot: "Snapshot",
  "full-scan": "FullScan",
};

/** The strategy named by a config (either spelling); an unknown one is kept for `validate()`. */
function sourceOf(source: RebuildConfig["source"]): RebuildSource {
  if (source === undefined) return REBUILD_DEFAULTS.source;
  return SOURCE_ALIASES[source] ?? (source as RebuildSource);
}

class RebuildIndexAgentImpl extends AgentBase<RebuildStats, { key: string; reason: string }>
  implements RebuildIndexAgent {
  override readonly kind = "RebuildIndex" as const;
  #config: {
    source: RebuildSource;
    recoveryKit: Uint8Array | undefined;
    hostStorage: Driver | undefined;
    batchSize: number;
    parallelism: number;
  };
  #packsTotal = 0;
  /** The index came from the newest snapshot listed (none newer was unusable). */
  #newestSnapshotUsed = false;
  #kit: Descriptor | undefined;
  #kitSlots: readonly KeySlot[] = [];
  /** An encrypted store's keys, unlocked before anything is written. */
  #keys: StoreKeys | undefined;
  /** Key slots to write because none is left on the Location (from the kit). */
  #slotsToWrite: readonly KeySlot[] = [];
  /** The descriptor replicas name another store than the one the packs hold (found in work()). */
  #foreignDescriptors = false;

  constructor(store: Store, bus: EventBus, config: RebuildConfig) {
    super(store, bus, {
      mode: "offline",
      leaseTTL: config.leaseTTL ?? REBUILD_DEFAULTS.leaseTTL,
      force: config.force ?? false,
    }, {
      source: sourceOf(config.source),
      snapshotUsed: "",
      manifestsScanned: 0,
      manifestsIndexed: 0,
      manifestsSkipped: 0,
      blobsRegistered: 0,
      packsIndexed: 0,
      pointerRecovered: false,
      descriptorRewrote: false,
      snapshotWritten: false,
      duration: 0,
    });
    this.#config = {
      source: sourceOf(config.source),
      recoveryKit: typeof config.recoveryKit === "string"
        ? new TextEncoder().encode(config.recoveryKit)
        : config.recoveryKit,
      hostStorage: config.hostStorage ?? store.hostStorage,
      batchSize: config.batchSize ?? REBUILD_DEFAULTS.batchSize,
      parallelism: config.parallelism ?? REBUILD_DEFAULTS.parallelism,
    };
  }

  protected override check(): void {
    const c = this.#config;
    if (!SOURCES.includes(c.source)) {
      throw new InvalidArgumentError(
        `source must be one of ${SOURCES.join(", ")}, got ${JSON.stringify(c.source)}`,
      );
    }
    requireIntegers({ batchSize: [c.batchSize, 1], parallelism: [c.parallelism, 1] });
    if (c.recoveryKit !== undefined) {
      // A descriptor naming another store is judged in work(): the packs and snapshots say
      // whether the kit is foreign or the descriptors are (copied from another store).
      const parsed = parseRecoveryKit(c.recoveryKit);
      this.#kit = descriptorFromKit(parsed);
      this.#kitSlots = parsed.keySlots;
    } else if (!this.store.descriptor) {
      throw new RecoveryKitRequiredError();
    }
    const storage = this.store.config?.manifestStorage;
    if (storage === "Local" && !c.hostStorage) throw new HostStorageRequiredError();
  }

  /** The kit's store when the descriptor is lost: that is the store being rebuilt. */
  protected override leaseStoreId(): string {
    return this.#kit?.storeId ?? super.leaseStoreId();
  }

  protected override progress(): { done: number; total: number } {
    return { done: this.counters.packsIndexed, total: this.#packsTotal };
  }

  protected override async work(ctx: MaintenanceContext): Promise<void> {
    const check = () => ctx.lease.check();
    this.#keys = await this.#unlock(this.#kit ?? this.store.descriptor!);
    const descriptor = await this.#descriptor(check);
    ctx.signal.throwIfAborted();
    const { config, pointer } = await this.#configPointer(descriptor, check);
    ctx.signal.throwIfAborted();
    const index = await this.#buildIndex(descriptor, config, ctx.signal);
    try {
      // The commit point: nothing above touched the live index.
      await ctx.lease.check();
      // Started from the newest snapshot and read fewer packs past it than the snapshot schedule
      // allows: that snapshot, caught up, is what any host loads anyway, and writing a new one
      // would recompress the whole database for those few packs (most of the snapshot path's time).
      const fresh = this.counters.source === "Snapshot" && this.#newestSnapshotUsed &&
        config.snapshotEveryPacks > 0 && this.counters.packsIndexed < config.snapshotEveryPacks;
      await this.#persist(index, descriptor, config, !fresh);
      this.store.adoptRebuild({ index, descriptor, config, pointer, keys: this.#keys });
    } catch (e) {
      index.close();
      throw e;
    }
  }

  /**
   * An encrypted store's keys, before anything is written: the handle's own,
   * else the slots on the Location (or, when none is left, the kit's) opened
   * with the handle's passphrase. A wrong or missing passphrase stops the
   * rebuild here.
   */
  async #unlock(descriptor: Descriptor): Promise<StoreKeys | undefined> {
    if (descriptor.encryption === null) return undefined;
    const store = this.store;
    if (store.keys !== undefined && store.storeId === descriptor.storeId) return store.keys;
    const reading = await readKeySlots(store.driver, descriptor.storeId);
    const slots = reading.slots.length > 0 ? reading.slots : this.#kitSlots;
    const { keys } = await store.unlockWith(descriptor, slots);
    if (reading.slots.length === 0) this.#slotsToWrite = slots;
    return keys;
  }

  /** The descriptor to use; with a kit, rewrites the replicas that are lost. */
  async #descriptor(check: () => Promise<void>): Promise<Descriptor> {
    const store = this.store;
    if (!this.#kit) return store.descriptor!;
    const kit = this.#kit;
    await this.#refuseForeignKit(kit);
    const readings = await readDescriptorReplicas(store.driver, this.#config.hostStorage);
    const kitSum = descriptorChecksum(kit);
    const toWrite: string[] = [];
    for (const r of readings) {
      if (r.result instanceof Error) {
        if (r.result instanceof NotFoundError || r.result instanceof CorruptObjectError) {
          toWrite.push(r.where);
        } else throw r.result; // unreadable: unknown, never overwritten blindly
      } else if (descriptorChecksum(r.result) !== kitSum) {
        if (r.result.storeId !== kit.storeId && !this.#foreignDescriptors) {
          throw new RecoveryKitMismatchError(kit.storeId, r.result.storeId, r.where);
        }
        toWrite.push(r.where);
      }
    }
    if (this.#slotsToWrite.length > 0) {
      // Every key slot was lost: the kit's are written back, before any descriptor replica.
      await check();
      for (const slot of this.#slotsToWrite) await writeKeySlot(store.driver, slot);
      this.bus.publish({
        type: "warning",
        at: store.clock(),
        storeId: kit.storeId,
        code: "key_slots_restored",
        message: `no key slot was left on the Location: wrote the ${this.#slotsToWrite.length} ` +
          "slot(s) of the Recovery Kit back",
      });
    }
    if (toWrite.length > 0) {
      await check();
      // store.json last: it is what makes the Location a store.
      const written = await writeDescriptorReplicas(
        store.driver,
        this.#config.hostStorage,
        kit,
        toWrite,
      );
      this.counters.descriptorRewrote = true;
      this.bus.publish({
        type: "descriptor.healed",
        at: store.clock(),
        storeId: kit.storeId,
        replicas: written,
      });
    }
    return kit;
  }

  /**
   * Refuses a kit of another store before writing anything. The packs and
   * index snapshots are the evidence: when a readable descriptor names
   * another store but every pack and snapshot read names the kit's, the
   * descriptors are the foreign ones (copied over from another store) and
   * are rewritten from the kit; when a pack or snapshot names another store,
   * the kit is refused.
   */
  async #refuseForeignKit(kit: Descriptor): Promise<void> {
    const driver = this.store.driver;
    let named: { storeId: string; key: string } | undefined;
    for (const key of [DESCRIPTOR_KEY, DESCRIPTOR_REPLICA_KEY]) {
      try {
        const d = decodeDescriptor(key, await driver.getRange(key, 0, MAX_DESCRIPTOR_BYTES + 1));
        if (d.storeId !== kit.storeId) named ??= { storeId: d.storeId, key };
        else return; // a replica of the kit's store: the kit is this store's
      } catch {
        // Unreadable: the packs and snapshots decide.
      }
    }
    let matches = 0;
    let checked = 0;
    for await (const info of driver.list(PACK_PREFIX)) {
      if (checked >= 16) break;
      try {
        const toc = await readPackToc(driver, info.key, { size: info.size, keys: this.#keys });
        checked++;
        if (toc.storeId !== kit.storeId) {
          // The descriptor said so first, when it names the same store.
          const where = named?.storeId === toc.storeId ? named.key : info.key;
          throw new RecoveryKitMismatchError(kit.storeId, toc.storeId, where);
        }
        matches++;
      } catch (e) {
        if (!(e instanceof CorruptObjectError)) throw e;
      }
    }
    for (const key of await listSnapshots(driver)) {
      try {
        decodeSnapshot(key, await driver.get(key), kit.storeId);
        matches++;
        break;
      } catch (e) {
        if (e instanceof ForeignSnapshotError) {
          const where = named?.storeId === e.storeId ? named.key : key;
          throw new RecoveryKitMismatchError(kit.storeId, e.storeId, where);
        }
      }
    }
    if (named === undefined) return;
    if (matches === 0) throw new RecoveryKitMismatchError(kit.storeId, named.storeId, named.key);
    // Every pack and snapshot read is the kit's store: the descriptors are foreign.
    this.#foreignDescriptors = true;
    this.bus.publish({
      type: "warning",
      at: this.store.clock(),
      storeId: kit.storeId,
      code: "foreign_descriptor",
      message: `${named.key} names store ${named.storeId}, but the packs and index snapshots ` +
        `belong to ${kit.storeId}, the kit's store: the descriptor replicas are rewritten from the kit`,
    });
  }

  /** Resolves the config; repoints a dangling `system.config/current` at the newest valid version. */
  async #configPointer(
    descriptor: Descriptor,
    check: () => Promise<void>,
  ): Promise<{ config: StoreConfig; pointer: "ok" | "dangling" }> {
    const driver = this.store.driver;
    const chunking = descriptor.chunking;
    let resolved;
    try {
      resolved = await resolveCurrentConfig(driver, { chunking });
    } catch (e) {
      if (!(e instanceof CorruptObjectError)) throw e;
      // No copy of any config version survives: write a new version from the defaults, so
      // the store works again; the operator checks its settings (docs/OPERATIONS.md).
      await check();
      const hostLog = this.#config.hostStorage !== undefined &&
        await hasAny(this.#config.hostStorage, MANIFEST_LOG_PREFIX);
      const config = await writeConfigVersion(driver, {
        ...defaultConfig(),
        manifestStorage: hostLog ? "Replicated" : "Remote",
      }, { chunking, clock: this.store.clock });
      this.counters.pointerRecovered = true;
      this.store.bus.publish({
        type: "warning",
        at: this.store.clock(),
        storeId: descriptor.storeId,
        code: "config_restored",
        message: `no config version could be read (${e.reason}); wrote ${
          configVersionKey(config.seq)
        } with the default settings (manifestStorage ${config.manifestStorage}): check them`,
      });
      return { config, pointer: "ok" };
    }
    if (resolved.toHeal.length > 0) {
      await check();
      for (const copy of resolved.toHeal) await driver.put(copy.key, copy.bytes);
    }
    if (resolved.pointer === "ok") return { config: resolved.config, pointer: "ok" };
    await check();
    await writeCurrentPointer(driver, resolved.newestValid.seq, { chunking });
    this.counters.pointerRecovered = true;
    return { config: resolved.newestValid, pointer: "ok" };
  }

  async #buildIndex(
    descriptor: Descriptor,
    config: StoreConfig,
    signal: AbortSignal,
  ): Promise<StoreIndex> {
    const driver = this.store.driver;
    let storage: ManifestStorage = config.manifestStorage;
    const host = this.#config.hostStorage;
    if (storage === "Local" && !host) throw new HostStorageRequiredError();
    if (storage === "Replicated" && !host) storage = "Remote";

    let index: StoreIndex | undefined;
    const source = this.#config.source;
    if (source !== "FullScan") {
      const found = await loadNewestIndex(
        driver,
        descriptor.storeId,
        await hostIndexDir(host, this.#keys),
        this.#keys,
      );
      if (found.index && found.key) {
        index = found.index;
        this.#newestSnapshotUsed = found.rejected.length === 0;
        this.counters.snapshotUsed = found.key.slice(SNAPSHOT_PREFIX.length);
      }
      if (!index && source === "Snapshot") throw new NoSnapshotError(found.rejected);
    }
    this.counters.source = index ? "Snapshot" : "FullScan";
    // A full scan fills a fresh index: a bulk load (secondary indexes built at the end).
    // In a local host directory it is built in a file there, published as the host cache at the end.
    if (!index) {
      const dir = await hostIndexDir(host, this.#keys);
      index = await StoreIndex.createBulk(descriptor.storeId, dir === undefined ? {} : { dir });
    }
    this.counters.manifestsSkipped = index.counts().manifests;

    try {
      // Garbage collection's runs first: what they delete (or deleted) is not part of the
      // store, and packs they retired are skipped when listed (docs/FORMAT.md §8, G4).
      const runProblems: string[] = [];
      await applyGcRuns(driver, index, descriptor.storeId, runProblems);
      for (const line of runProblems) {
        const at = line.indexOf(": corrupt: ");
        this.found.push({ key: line.slice(0, at), reason: line.slice(at + 11) });
      }
      // Diff the whole listing against what the index holds, not only a time cut.
      const { missing, listedThrough } = await listPacksSinceMark(
        driver,
        index,
        this.store.clock(),
        { all: true, signal },
      );
      this.#packsTotal = missing.length;
      const result = await indexPacks(driver, index, missing, {
        storeId: descriptor.storeId,
        hash: descriptor.hash,
        keys: this.#keys,
        manifestStorage: storage,
        hostStorage: host,
        parallelism: this.#config.parallelism,
        batchSize: this.#config.batchSize,
        signal,
        onPack: (p) => {
          this.counters.packsIndexed++;
          this.counters.manifestsScanned += p.manifests;
          this.counters.manifestsIndexed += p.added;
          this.counters.blobsRegistered += p.blobs;
        },
      });
      this.found.push(...result.problems);
      if (listedThrough !== undefined) index.setHighWaterMark(listedThrough);
      // The blob rows are in place once the bulk load ends: loose blobs are checked against them.
      index.finishBulk();
      // Loose blobs are found by listing; they are always whole (regular) blobs.
      for await (const info of driver.list(LOOSE_BLOB_PREFIX)) {
        signal.throwIfAborted();
        const id = info.key.slice(info.key.lastIndexOf("/") + 1);
        if (
          !/^[0-9a-f]{64}$/.test(id) || info.key !== looseBlobKey(id)
        ) {
          this.found.push({ key: info.key, reason: "not a loose blob key" });
          continue;
        }
        if (index.hasBlob(id) || index.isRetiredBlob(id)) continue;
        index.registerLooseBlob({
          blobId: id,
          kind: "regular",
          // A sealed loose blob carries its nonce and tag (docs/FORMAT.md §9.4).
          rawSize: info.size - (this.#keys === undefined ? 0 : SEAL_OVERHEAD),
          storedSize: info.size,
          packId: null,
          offset: null,
        });
        this.counters.blobsRegistered++;
      }
      return index;
    } catch (e) {
      index.close();
      throw e;
    }
  }

  /**
   * Writes a fresh snapshot of the new index (when `snapshot`), pruned to the
   * `snapshotsKept` of the config this rebuild resolved (the one in force now,
   * not the handle's), and the host cache.
   */
  async #persist(
    index: StoreIndex,
    descriptor: Descriptor,
    config: StoreConfig,
    snapshot: boolean,
  ): Promise<void> {
    const store = this.store;
    const host = this.#config.hostStorage;
    // The host cache is published while the snapshot is being written (once its bytes are
    // taken): the two reads of the database file (compression, the stamp's hash) and the two
    // writes overlap instead of following each other.
    let caching: Promise<unknown> | undefined;
    const saveCache = () => {
      if (!host || store.readOnly) return;
      caching ??= saveHostCache(host, index, {
        storeId: descriptor.storeId,
        createdAt: store.clock(),
        keys: this.#keys,
      }).then(() => undefined, (e: unknown) => e ?? new Error("host cache"));
    };
    let written: Awaited<ReturnType<typeof writeIndexSnapshot>> | undefined;
    let failure: unknown;
    try {
      written = snapshot
        ? await writeIndexSnapshot(store.driver, index, {
          storeId: descriptor.storeId,
          config,
          clock: store.clock,
          keys: this.#keys,
          onEncoded: saveCache,
        })
        : undefined;
    } finally {
      // (A failed snapshot write still leaves the host cache saved, then fails the rebuild.)
      saveCache();
      failure = await caching;
    }
    this.counters.snapshotWritten = written !== undefined;
    if (failure === undefined) return;
    // The host cache is disposable (docs/DESIGN.md §5.2): the snapshot just written (or the one
    // the rebuild started from, with the few packs past it) holds the rebuilt index, so a host
    // directory that cannot take it (full, read-only) costs the next open a snapshot load, not
    // the rebuild.
    if (!(failure instanceof CapsaError)) throw failure;
    const where = written === undefined ? "" : ` and in ${written.key}`;
    this.bus.publish({
      type: "warning",
      at: store.clock(),
      storeId: descriptor.storeId,
      code: "host_cache_unwritable",
      message: `the index is rebuilt${where}, but the host cache in ${host!.location} could not ` +
        `be written (${failure.message}): the next open loads the snapshot`,
    });
  }
}

/**
 * Creates the agent, publishing on `store.bus`.
 * @param store The store.
 * @param config The configuration.
 * @returns The agent.
 */
export function createRebuildIndexAgent(store: Store, config?: RebuildConfig): RebuildIndexAgent;
/**
 * Creates a RebuildIndexAgent.
 *
 * @param store The store (it may be Corrupted: that is what a rebuild is for).
 * @param bus Where the agent publishes its events (default: `store.bus`, so it may be left out).
 * @param config The configuration; every field has a default.
 * @returns The agent; call `validate()` then `run()`.
 *
 * @example Rebuilding the index of a store
 * ```ts
 * import assert from "node:assert/strict";
 * import { initStore } from "@capsa/capsa";
 * import { EventBus } from "@capsa/capsa";
 * import { MemoryDriver } from "@capsa/capsa";
 * import { createRebuildIndexAgent } from "@capsa/capsa/maintenance";
 *
 * const { store } = await initStore(new MemoryDriver());
 * await store.put("ns", "k", new TextEncoder().encode("v"));
 * const agent = createRebuildIndexAgent(store, { source: "FullScan" });
 * agent.validate();
 * await agent.run();
 * assert.deepEqual(agent.stats().manifestsIndexed, 1);
 * await store.close();
 * ```
 */
export function createRebuildIndexAgent(
  store: Store,
  bus: EventBus,
  config?: RebuildConfig,
): RebuildIndexAgent;
export function createRebuildIndexAgent(
  store: Store,
  busOrConfig?: EventBus | RebuildConfig,
  config?: RebuildConfig,
): RebuildIndexAgent {
  const [bus, cfg] = busOrConfig instanceof EventBus
    ? [busOrConfig, config]
    : [store.bus, busOrConfig];
  return new RebuildIndexAgentImpl(store, bus, cfg ?? {});
}

async function hasAny(driver: Driver, prefix: string): Promise<boolean> {
  for await (const _ of driver.list(prefix)) return true;
  return false;
}
