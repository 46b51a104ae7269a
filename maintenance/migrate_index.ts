/**
 * MigrateIndexAgent: brings a store's StoreIndex and its index snapshots to
 * the current schema version, and moves a store between `ManifestStorage`
 * modes.
 *
 * Order of work, under the maintenance lease (offline mode):
 *
 * 1. a snapshot of the index in use is written first: a restore point;
 * 2. the index is migrated beside the live one (export, load: the
 *    forward-only migrations of `index/schema.ts` run one transaction
 *    per step) and checked against it — counts, and every artifact's current
 *    manifest — before anything else changes;
 * 3. for a mode change, manifests are copied where the new mode needs them:
 *    host manifest log entries for every pack that carries manifests (to
 *    `Replicated` or `Local`), or new manifest-only packs on the Location for
 *    manifests that live only on the host (from `Local`); copies are
 *    harmless under the old mode, so a failure here changes no answer;
 * 4. the new config version is written, `system.config/current` last (the
 *    commit point of a mode change);
 * 5. a fresh snapshot at the current schema replaces the older-schema ones,
 *    which are deleted only after it is written, and the host cache is
 *    rewritten; then the migrated index is swapped in.
 *
 * A failure at any point leaves the config, the descriptors and every answer
 * of the store as they were (or the migration wholly done).
 *
 * @module
 */

import type { Driver, ObjectInfo } from "../drivers/driver.ts";
import {
  compressionLevelOf,
  MANIFEST_STORAGES,
  type ManifestStorage,
  type StoreConfig,
  writeConfigVersion,
} from "../format/config.ts";
import type { Descriptor } from "../format/descriptor.ts";
import { CorruptObjectError, InvalidArgumentError, NotFoundError } from "../errors.ts";
import { EventBus } from "../store/events.ts";
import { type ManifestRecord, StoreIndex } from "../index/store_index.ts";
import { INDEX_SCHEMA_VERSION } from "../index/schema.ts";
import type { Manifest } from "../format/manifest.ts";
import { encodeManifestLogEntry } from "../format/manifest_log.ts";
import { readManifestLogEntry } from "../index/manifest_log.ts";
import { PackWriter, readPackToc } from "../format/pack.ts";
import {
  hostCacheFileVersion,
  listSnapshots,
  pruneSnapshots,
  saveHostCache,
  writeIndexSnapshot,
} from "../store/persistence.ts";
import type { Store } from "../store/store.ts";
import { UlidGenerator } from "../format/ulid.ts";
import {
  AgentBase,
  HostStorageRequiredError,
  type MaintenanceAgent,
  type MaintenanceContext,
} from "./agent.ts";
import { HOST_CACHE_KEY, manifestLogKey, PACK_PREFIX, packKey, parsePackKey } from "../layout.ts";

/** Configures the MigrateIndexAgent. */
export interface MigrateConfig {
  /**
   * The manifest storage mode to move the store to. Omitted: only the index
   * schema (and the snapshots) are migrated.
   */
  manifestStorage?: ManifestStorage;
  /**
   * The host storage holding (or to hold) the manifest log (default: the
   * store's). Required when the current or the target mode is `Local`, and
   * for a move to `Replicated`.
   */
  hostStorage?: Driver;
  /** The lease's hold time in ms. Default 30 minutes. */
  leaseTTL?: number | string;
  /** Break a live lease held by someone else (loudly: a warning event). Default `false`. */
  force?: boolean;
}

/** Statistics of a migration, and a progress snapshot while it runs. */
export interface MigrateStats {
  /** The oldest schema version found: the index in use, the host cache or a snapshot. */
  fromSchema: number;
  /** The schema version after the migration (the current one). */
  toSchema: number;
  /** Index snapshots on the Location at an older schema, replaced by one at the current schema. */
  snapshotsMigrated: number;
  /** Manifests copied to the host manifest log or committed again in new packs. */
  manifestsMoved: number;
  /** The seq of the config version in force afterwards (a new one after a mode change). */
  configSeq: number;
  /** Elapsed time in ms. */
  duration: number;
}

/** Something the migration found and worked around, with the object it concerns. */
export interface MigrateProblem {
  /** The object's key. */
  key: string;
  /** What is wrong with it. */
  reason: string;
}

/** The MigrateIndexAgent. */
export interface MigrateIndexAgent extends MaintenanceAgent {
  /** Always `"MigrateIndex"`. */
  readonly kind: "MigrateIndex";
  /**
   * A progress snapshot while running (safe to call at any time); the final
   * statistics after `run`.
   * @returns A copy of the stats.
   */
  stats(): MigrateStats;
  /**
   * Problems found: unreadable snapshot headers, damaged manifest log
   * entries or TOCs (skipped, as a rebuild skips them), each with its key.
   * @returns A copy of the list.
   */
  problems(): MigrateProblem[];
}

/** The defaults of {@linkcode MigrateConfig}. */
export const MIGRATE_DEFAULTS = {
  leaseTTL: 30 * 60_000,
} as const;

const SNAPSHOT_FIXED_BYTES = 16;
const MAX_SNAPSHOT_HEADER = 64 * 1024;
const dec = new TextDecoder();

/** A pack on the Location with the manifests of its TOC. */
interface PackManifests {
  info: ObjectInfo;
  packId: string;
  manifests: Manifest[];
}

/** Whether a mode keeps manifests in the host manifest log. */
function onHost(mode: ManifestStorage): boolean {
  return mode !== "Remote";
}

class MigrateIndexAgentImpl extends AgentBase<MigrateStats, MigrateProblem>
  implements MigrateIndexAgent {
  override readonly kind = "MigrateIndex" as const;
  #target: ManifestStorage | undefined;
  #host: Driver | undefined;
  #done = 0;
  #total = 0;

  constructor(store: Store, bus: EventBus, config: MigrateConfig) {
    super(store, bus, {
      mode: "offline",
      leaseTTL: config.leaseTTL ?? MIGRATE_DEFAULTS.leaseTTL,
      force: config.force ?? false,
    }, {
      fromSchema: INDEX_SCHEMA_VERSION,
      toSchema: INDEX_SCHEMA_VERSION,
      snapshotsMigrated: 0,
      manifestsMoved: 0,
      configSeq: store.config?.seq ?? 0,
      duration: 0,
    });
    this.#target = config.manifestStorage;
    this.#host = config.hostStorage ?? store.hostStorage;
  }

  protected override check(): void {
    this.requireStore(
      "config",
      "a Corrupted store cannot be migrated: run the RebuildIndexAgent first",
    );
    if (this.#target !== undefined && !MANIFEST_STORAGES.includes(this.#target)) {
      throw new InvalidArgumentError(
        `manifestStorage must be one of ${MANIFEST_STORAGES.join(", ")}, got ${
          JSON.stringify(this.#target)
        }`,
      );
    }
    const from = this.store.config!.manifestStorage;
    const to = this.#target ?? from;
    // Local holds manifests only on the host; a move to a host mode writes the log.
    const needsHost = from === "Local" || (to !== from && onHost(to));
    if (needsHost && !this.#host) throw new HostStorageRequiredError();
  }

  protected override progress(): { done: number; total: number } {
    return { done: this.#done, total: this.#total };
  }

  protected override async work(ctx: MaintenanceContext): Promise<void> {
    const store = this.store;
    const descriptor = store.descriptor!;
    const live = store.index;
    const config = store.config!;
    const old = await this.#persistedVersions();
    this.counters.fromSchema = Math.min(
      live.schemaVersion,
      old.host ?? Infinity,
      ...old.snapshots.map((s) => s.version),
    );

    // Both snapshots of this run, unpruned: the older-schema ones go only once the fresh one exists.
    const ids = new UlidGenerator({ clock: store.clock });
    const snapshot = (index: StoreIndex, current: StoreConfig) =>
      writeIndexSnapshot(store.driver, index, {
        storeId: descriptor.storeId,
        config: current,
        clock: store.clock,
        ids,
        prune: false,
        keys: store.keys,
      });

    // A restore point before anything else is written.
    await ctx.lease.check();
    const restorePoint = (await snapshot(live, config)).key;

    // The migrated index, built beside the live one and checked against it.
    const next = await StoreIndex.load(live.export(), {
      storeId: descriptor.storeId,
      key: "index in use",
    });
    try {
      verifySame(live, next);
      ctx.signal.throwIfAborted();

      let newConfig: StoreConfig = config;
      const from = config.manifestStorage;
      const to = this.#target ?? from;
      if (to !== from) {
        await this.#moveManifests(ctx, descriptor, config, from, to, next);
        await ctx.lease.check();
        // The commit point of a mode change: the pointer moves last.
        newConfig = await writeConfigVersion(store.driver, { ...config, manifestStorage: to }, {
          chunking: descriptor.chunking,
          clock: store.clock,
        });
      }
      this.counters.configSeq = newConfig.seq;

      // Older-schema snapshots are replaced: the fresh one first, then the deletions.
      await ctx.lease.check();
      const fresh = await snapshot(next, newConfig);
      for (const s of old.snapshots) {
        if (s.version >= INDEX_SCHEMA_VERSION || s.key === restorePoint || s.key === fresh.key) {
          continue;
        }
        await ctx.lease.check();
        await store.driver.delete(s.key);
        this.counters.snapshotsMigrated++;
      }
      await pruneSnapshots(store.driver, newConfig.snapshotsKept, fresh.key);
      if (this.#host && !store.readOnly) {
        await saveHostCache(this.#host, next, {
          storeId: descriptor.storeId,
          createdAt: store.clock(),
          keys: store.keys,
        });
      }
      store.adoptRebuild({ index: next, descriptor, config: newConfig, pointer: "ok" });
    } catch (e) {
      next.close();
      throw e;
    }
  }

  /** The schema versions of the host cache and of every snapshot on the Location. */
  async #persistedVersions(): Promise<
    { host: number | undefined; snapshots: Array<{ key: string; version: number }> }
  > {
    const store = this.store;
    const snapshots: Array<{ key: string; version: number }> = [];
    for (const key of await listSnapshots(store.driver)) {
      const version = await this.#headerVersion(store.driver, key);
      if (version !== undefined) snapshots.push({ key, version });
    }
    let host: number | undefined;
    if (this.#host) {
      // A cache kept as a SQLite file (a local host directory) has its version in its meta table.
      host = await hostCacheFileVersion(this.#host) ??
        await this.#headerVersion(this.#host, HOST_CACHE_KEY);
    }
    return { host, snapshots };
  }

  /**
   * The `schemaVersion` of a snapshot's header (two small range reads, not
   * the whole database); `undefined` for a missing object or an unreadable
   * header, which a loader rejects anyway.
   */
  async #headerVersion(driver: Driver, key: string): Promise<number | undefined> {
    try {
      const fixed = await driver.getRange(key, 0, SNAPSHOT_FIXED_BYTES);
      if (fixed.length < SNAPSHOT_FIXED_BYTES) throw new CorruptObjectError(key, "truncated");
      const hLen = new DataView(fixed.buffer, fixed.byteOffset, fixed.byteLength).getUint32(12);
      if (hLen > MAX_SNAPSHOT_HEADER) throw new CorruptObjectError(key, "header too long");
      const header = JSON.parse(
        dec.decode(await driver.getRange(key, SNAPSHOT_FIXED_BYTES, hLen)),
      );
      const v = header?.schemaVersion;
      if (!Number.isSafeInteger(v)) throw new CorruptObjectError(key, "no schemaVersion");
      return v as number;
    } catch (e) {
      if (e instanceof NotFoundError) return undefined;
      if (e instanceof CorruptObjectError || e instanceof SyntaxError) {
        this.found.push({ key, reason: `unreadable snapshot header: ${e.message}` });
        return undefined;
      }
      throw e;
    }
  }

  /** Every pack on the Location with its TOC's manifests (a TOC that cannot be parsed is reported). */
  async #packs(ctx: MaintenanceContext, descriptor: Descriptor): Promise<PackManifests[]> {
    const driver = this.store.driver;
    const infos: ObjectInfo[] = [];
    for await (const info of driver.list(PACK_PREFIX)) infos.push(info);
    this.#total = infos.length;
    const out: PackManifests[] = [];
    for (const info of infos) {
      ctx.signal.throwIfAborted();
      const packId = parsePackKey(info.key);
      if (packId === undefined) {
        this.found.push({ key: info.key, reason: "not a pack key" });
        continue;
      }
      try {
        const toc = await readPackToc(driver, info.key, {
          size: info.size,
          storeId: descriptor.storeId,
          hash: descriptor.hash,
          packId,
          keys: this.store.keys,
        });
        out.push({ info, packId, manifests: toc.manifests });
      } catch (e) {
        if (!(e instanceof CorruptObjectError)) throw e;
        this.found.push({ key: e.key, reason: e.reason });
      }
      this.#done++;
    }
    return out;
  }

  /** Copies manifests to where mode `to` needs them; harmless under mode `from`. */
  async #moveManifests(
    ctx: MaintenanceContext,
    descriptor: Descriptor,
    config: StoreConfig,
    from: ManifestStorage,
    to: ManifestStorage,
    next: StoreIndex,
  ): Promise<void> {
    const packs = await this.#packs(ctx, descriptor);
    if (from !== "Local" && onHost(to)) {
      // Every pack's TOC manifests join its host log entry (what the entry held stays).
      const host = this.#host!;
      for (const p of packs) {
        if (p.manifests.length === 0) continue;
        ctx.signal.throwIfAborted();
        const logged = await this.#logged(p.packId, descriptor.storeId);
        const inToc = new Set(p.manifests.map((m) => m.id));
        if (logged && p.manifests.every((m) => logged.some((l) => l.id === m.id))) continue;
        const merged = [...p.manifests, ...(logged ?? []).filter((m) => !inToc.has(m.id))];
        await ctx.lease.check();
        await host.put(
          manifestLogKey(p.packId),
          encodeManifestLogEntry(
            descriptor.storeId,
            p.packId,
            merged,
            compressionLevelOf(config),
            this.store.keys,
          ),
        );
        this.counters.manifestsMoved += p.manifests.length;
      }
    }
    if (from === "Local") {
      await this.#commitHostOnly(ctx, descriptor, config, packs, next);
    }
  }

  /** A pack's host log entry, or `undefined` (none, or damaged: reported). */
  async #logged(packId: string, storeId: string): Promise<Manifest[] | undefined> {
    try {
      return await readManifestLogEntry(this.#host!, packId, storeId, this.store.keys);
    } catch (e) {
      if (!(e instanceof CorruptObjectError)) throw e;
      this.found.push({ key: e.key, reason: e.reason });
      return undefined;
    }
  }

  /**
   * Commits again, in new manifest-only packs on the Location, every manifest
   * of the host log (of a pack on the Location, as a rebuild reads it) that
   * no TOC carries. Their blobs are already durable in earlier packs.
   */
  async #commitHostOnly(
    ctx: MaintenanceContext,
    descriptor: Descriptor,
    config: StoreConfig,
    packs: readonly PackManifests[],
    next: StoreIndex,
  ): Promise<void> {
    const store = this.store;
    const inTocs = new Set<string>();
    for (const p of packs) for (const m of p.manifests) inTocs.add(m.id);
    const hostOnly = new Map<string, Manifest>();
    for (const p of packs) {
      ctx.signal.throwIfAborted();
      for (const m of (await this.#logged(p.packId, descriptor.storeId)) ?? []) {
        if (!inTocs.has(m.id)) hostOnly.set(m.id, m);
      }
    }
    const ordered = [...hostOnly.values()].sort((a, b) => (a.id < b.id ? -1 : 1));
    const ids = new UlidGenerator({ clock: store.clock });
    let at = 0;
    while (at < ordered.length) {
      const packId = ids.next();
      const writer = new PackWriter({
        packId,
        storeId: descriptor.storeId,
        hash: descriptor.hash,
        sizeHint: 64 * 1024,
        compressionLevel: compressionLevelOf(config),
        keys: store.keys,
      });
      const batch: Manifest[] = [];
      while (
        at < ordered.length && (batch.length === 0 || !writer.isFull(config.packTargetSize))
      ) {
        writer.addManifest(ordered[at]!);
        batch.push(ordered[at]!);
        at++;
      }
      const bytes = writer.finish();
      await ctx.lease.check();
      await store.driver.put(packKey(packId), bytes, {
        ifAbsent: store.driver.capabilities.createOnly,
      });
      next.indexPack({
        pack: { packId, size: bytes.length, blobCount: 0, manifestCount: batch.length },
        blobs: [],
        manifests: batch.map((m): ManifestRecord => ({ ...m, packId })),
      });
      this.counters.manifestsMoved += batch.length;
    }
  }
}

/** Every live artifact with its current manifest id, namespace by namespace, in key order. */
function currentIds(index: StoreIndex): string[] {
  const out: string[] = [];
  for (const ns of index.namespaces()) {
    let after: string | undefined;
    for (;;) {
      const page = index.list(ns, { limit: 10_000, ...(after === undefined ? {} : { after }) });
      for (const m of page) out.push(`${ns}\u0000${m.key}\u0000${m.id}`);
      if (page.length < 10_000) break;
      after = page[page.length - 1]!.key;
    }
  }
  return out;
}

/** Checks that a migrated index answers as the one in use. */
function verifySame(live: StoreIndex, next: StoreIndex): void {
  const what = (reason: string) =>
    new CorruptObjectError("index in use", `the migrated index differs: ${reason}`);
  if (next.schemaVersion !== INDEX_SCHEMA_VERSION) {
    throw what(`schema version ${next.schemaVersion}, expected ${INDEX_SCHEMA_VERSION}`);
  }
  const a = live.counts();
  const b = next.counts();
  for (const k of Object.keys(a) as Array<keyof typeof a>) {
    if (a[k] !== b[k]) throw what(`${k}: ${a[k]} before, ${b[k]} after`);
  }
  const x = currentIds(live);
  const y = currentIds(next);
  if (x.length !== y.length || x.some((v, i) => v !== y[i])) {
    throw what("the current version of an artifact changed");
  }
}

/**
 * Creates the agent, publishing on `store.bus`.
 * @param store The store.
 * @param config The configuration.
 * @returns The agent.
 */
export function createMigrateIndexAgent(store: Store, config?: MigrateConfig): MigrateIndexAgent;
/**
 * Creates a MigrateIndexAgent.
 *
 * @param store The store (not Corrupted: rebuild it first).
 * @param bus Where the agent publishes its events (default: `store.bus`, so it may be left out).
 * @param config The target manifest storage mode, if any, and the lease settings.
 * @returns The agent; call `validate()` then `run()`.
 *
 * @example Move a store's manifests to the host as well (Replicated)
 * ```ts
 * import assert from "node:assert/strict";
 * import { initStore } from "@capsa/capsa";
 * import { EventBus } from "@capsa/capsa";
 * import { MemoryDriver } from "@capsa/capsa";
 * import { createMigrateIndexAgent } from "@capsa/capsa/maintenance";
 *
 * const host = new MemoryDriver();
 * const { store } = await initStore(new MemoryDriver(), { hostStorage: host });
 * await store.put("ns", "k", new TextEncoder().encode("v"));
 * await store.flush();
 * const agent = createMigrateIndexAgent(store, { manifestStorage: "Replicated" });
 * agent.validate();
 * await agent.run();
 * assert.deepEqual([store.config?.manifestStorage, agent.stats().manifestsMoved], ["Replicated", 1]);
 * await store.close();
 * ```
 */
export function createMigrateIndexAgent(
  store: Store,
  bus: EventBus,
  config?: MigrateConfig,
): MigrateIndexAgent;
export function createMigrateIndexAgent(
  store: Store,
  busOrConfig?: EventBus | MigrateConfig,
  config?: MigrateConfig,
): MigrateIndexAgent {
  const [bus, cfg] = busOrConfig instanceof EventBus
    ? [busOrConfig, config]
    : [store.bus, busOrConfig];
  return new MigrateIndexAgentImpl(store, bus, cfg ?? {});
}
