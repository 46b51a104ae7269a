/**
 * Opening and creating a store: what happens before a `Store`
 * handle exists.
 *
 * {@linkcode openLocation} refuses a moved store, reconciles the descriptor
 * replicas (healing the ones that are missing, damaged or differ), follows the
 * config pointer, loads the index (host cache, else the newest valid
 * snapshot, else empty) and catches up on the packs written since.
 * {@linkcode createOnLocation} writes a new store: the first config version
 * and its pointer, then the descriptor replicas, `store.json` last.
 *
 * @module
 */

import { type Driver, NotFoundError } from "../drivers/driver.ts";
import {
  CapsaError,
  CorruptObjectError,
  HostStorageRequiredError,
  InvalidArgumentError,
  StoreMovedError,
} from "../errors.ts";
import {
  type ConfigSettings,
  defaultConfig,
  resolveCurrentConfig,
  type ResolvedConfig,
  type StoreConfig,
  validateConfig,
  writeConfigVersion,
} from "../format/config.ts";
import { createDescriptor, type Descriptor, reconcileDescriptors } from "../format/descriptor.ts";
import { encodeRecoveryKit } from "../format/kit.ts";
import { indexPacks, listPacksSinceMark } from "../index/pack_indexer.ts";
import { applyGcRuns } from "../index/gc_runs.ts";
import type { StoreIndex } from "../index/store_index.ts";
import {
  CONFIG_CURRENT_KEY,
  CONFIG_PREFIX,
  CONFIG_REPLICA_PREFIX,
  DESCRIPTOR_KEY,
  DESCRIPTOR_REPLICA_KEY,
  KEY_SLOT_PREFIX,
  KEY_SLOT_REPLICA_PREFIX,
} from "../layout.ts";
import { createKeySlot, keyCheckOf, newDataKey, type StoreKeys } from "../format/crypto.ts";
import { newStoreId } from "../format/fields.ts";
import { readKeySlots, unlock, writeKeySlot } from "./keyslots.ts";
import type { EventBus, StoreState } from "./events.ts";
import { readMovedTo } from "./gate.ts";
import { loadIndex } from "./persistence.ts";
import { HOST_REPLICA, readDescriptorReplicas, writeDescriptorReplicas } from "./replicas.ts";
import type { IndexSource, InitStoreOptions } from "./types.ts";

/** What opening found: the state a `Store` handle starts from. */
export interface OpenedStore {
  /** `Ready`, `Degraded` or `Corrupted`. */
  state: StoreState;
  /** Problems found, each naming its object. */
  problems: string[];
  /** The descriptor (absent when Corrupted before it could be read). */
  descriptor: Descriptor | undefined;
  /** The config in force (absent when Corrupted before it could be read). */
  config: StoreConfig | undefined;
  /** Whether `system.config/current` names a valid version. */
  pointer: "ok" | "dangling";
  /** The index, caught up (absent when Corrupted). */
  index: StoreIndex | undefined;
  /** Where the index came from. */
  indexSource: IndexSource;
  /** The snapshot key or host cache it was loaded from. */
  indexLoadedFrom: string | undefined;
  /** An encrypted store's keys (`undefined` for an unencrypted one). */
  keys: StoreKeys | undefined;
  /** The key slot the passphrase opened. */
  slotId?: string | undefined;
}

/** What {@linkcode openLocation} needs besides the Location. */
export interface OpenContext {
  /** The host storage, if any. */
  host: Driver | undefined;
  /** Where events go. */
  bus: EventBus;
  /** The clock. */
  clock: () => number;
  /** Refuse every write, healing included. */
  readOnly: boolean;
  /** Concurrent TOC reads during catch-up. */
  parallelism: number;
  /** An encrypted store's passphrase. */
  passphrase?: string | undefined;
  /** Load no index (a rebuild installs its own): see `StoreOptions.deferIndex`. */
  deferIndex?: boolean;
}

/** What a catch-up reads with. */
export interface CatchUpOptions {
  /** The Location. */
  driver: Driver;
  /** The host storage, if any (the manifest log). */
  host: Driver | undefined;
  /** The store's descriptor. */
  descriptor: Descriptor;
  /** The config in force. */
  config: StoreConfig;
  /** Concurrent TOC reads. */
  parallelism: number;
  /** The pack clock: the lister's time, read just before the listing. */
  now: () => number;
  /** An encrypted store's keys. */
  keys?: StoreKeys | undefined;
}

/**
 * Indexes the packs the index does not hold, listed from its high-water mark
 * less the overlap, then moves the mark to what was listed
 * ({@linkcode listPacksSinceMark}; docs/FORMAT.md §7).
 * @param index The index to bring up to date.
 * @param options The Location, host storage, descriptor, config, parallelism and clock.
 * @param problems The handle's problem list: packs that cannot be indexed are added, once each.
 */
export async function catchUp(
  index: StoreIndex,
  options: CatchUpOptions,
  problems: string[],
): Promise<void> {
  const { driver, descriptor } = options;
  // Garbage collection's runs first: their packs are then skipped when listed, and what their
  // superseding and rescue packs hold is indexed after (docs/FORMAT.md §8, G4).
  await applyGcRuns(driver, index, descriptor.storeId, problems, options.now());
  const { missing, listedThrough } = await listPacksSinceMark(driver, index, options.now());
  if (missing.length > 0) {
    const result = await indexPacks(driver, index, missing, {
      storeId: descriptor.storeId,
      hash: descriptor.hash,
      keys: options.keys,
      manifestStorage: options.config.manifestStorage,
      hostStorage: options.host,
      parallelism: options.parallelism,
    });
    for (const p of result.problems) {
      const line = `${p.key}: corrupt: ${p.reason}`;
      if (!problems.includes(line)) problems.push(line);
    }
  }
  if (listedThrough !== undefined) index.setHighWaterMark(listedThrough);
}

/**
 * Opens the store on a Location: everything `Store` needs to start.
 * @param driver The Location.
 * @param context Host storage, bus, clock, read-only, parallelism.
 * @returns The state found; `Corrupted` when the descriptor or config cannot be read.
 * @throws {StoreMovedError} when the store was moved away.
 * @throws {HostStorageRequiredError} when its manifests live only on the host
 *   (`manifestStorage` `Local`) and no host storage was given; nothing is written.
 */
export async function openLocation(driver: Driver, context: OpenContext): Promise<OpenedStore> {
  const { host, bus, clock } = context;
  const movedTo = await readMovedTo(driver);
  if (movedTo !== undefined) throw new StoreMovedError(movedTo);

  const readings = await readDescriptorReplicas(driver, host);
  const rec = reconcileDescriptors(readings);
  refuseDowngrade(rec.descriptor, readings);
  // A host without its replica (a new host, a new host directory after a move, a deleted cache)
  // is not a degraded store: the replica is written quietly on the first writable open.
  // With no replica left at all, every missing one is reported (the store is Corrupted).
  const hostMissing = rec.descriptor !== undefined &&
    rec.problems.some((p) => p.where === HOST_REPLICA && p.kind === "missing");
  const problems = rec.problems.filter((p) => !(hostMissing && p.where === HOST_REPLICA));
  const opened: OpenedStore = {
    state: rec.state === "Degraded" && problems.length === 0 ? "Ready" : rec.state,
    problems: problems.map((p) => `${p.where}: ${p.kind}: ${p.detail}`),
    descriptor: undefined,
    config: undefined,
    pointer: "ok",
    index: undefined,
    indexSource: "empty",
    indexLoadedFrom: undefined,
    keys: undefined,
  };
  if (rec.state === "Corrupted" || rec.descriptor === undefined) {
    // Nothing at all on the Location: no store (a wrong path), not a corrupted one.
    let empty = true;
    for await (const _ of driver.list("")) {
      empty = false;
      break;
    }
    if (empty) {
      throw new CapsaError(
        "no_store",
        `there is no store at ${driver.location} (it is empty): check the Location, or create one with initStore / \`capsa init\``,
      );
    }
    opened.state = "Corrupted";
    return opened;
  }
  const descriptor = rec.descriptor;
  // An encrypted store is unlocked before anything is healed or read: a wrong or missing
  // passphrase changes nothing.
  let slotsToHeal: Array<{ key: string; bytes: Uint8Array }> = [];
  if (descriptor.encryption !== null) {
    const reading = await readKeySlots(driver, descriptor.storeId);
    const unlocked = await unlock(descriptor, reading.slots, context.passphrase);
    opened.keys = unlocked.keys;
    opened.slotId = unlocked.slot.slotId;
    slotsToHeal = reading.toHeal;
    opened.problems.push(...reading.problems);
  }
  opened.descriptor = descriptor;

  // The config is read before anything is healed: a store this handle cannot serve is
  // refused before it writes.
  let resolved: ResolvedConfig | CorruptObjectError;
  try {
    resolved = await resolveCurrentConfig(driver, { chunking: descriptor.chunking });
  } catch (e) {
    if (!(e instanceof CorruptObjectError)) throw e;
    resolved = e;
  }
  if (!(resolved instanceof CorruptObjectError)) {
    if (resolved.config.manifestStorage === "Local" && !host) {
      throw new HostStorageRequiredError();
    }
  }

  if (rec.toHeal.length > 0 && !context.readOnly) {
    await writeDescriptorReplicas(driver, host, descriptor, rec.toHeal);
    const healed = rec.toHeal.filter((w) => !(hostMissing && w === HOST_REPLICA));
    if (healed.length > 0) {
      bus.publish({
        type: "descriptor.healed",
        at: clock(),
        storeId: descriptor.storeId,
        replicas: healed,
      });
    }
    opened.problems = opened.problems.filter((p) => !rec.toHeal.some((w) => p.startsWith(`${w}:`)));
  }

  if (resolved instanceof CorruptObjectError) {
    opened.problems.push(`${resolved.key}: ${resolved.reason}`);
    opened.state = "Corrupted";
    return opened;
  }
  opened.config = resolved.config;
  opened.pointer = resolved.pointer;
  if (resolved.pointer === "dangling") {
    opened.problems.push(`${CONFIG_CURRENT_KEY}: dangling: ${resolved.danglingReason}`);
  }
  // A copy of a config version that is missing, damaged or different is rewritten from its
  // valid twin on a writable open (docs/FORMAT.md §6); a read-only open reports it.
  const healed = new Set<string>();
  if (resolved.toHeal.length > 0 && !context.readOnly) {
    for (const copy of resolved.toHeal) {
      await driver.put(copy.key, copy.bytes);
      healed.add(copy.key);
    }
    bus.publish({
      type: "warning",
      at: clock(),
      storeId: descriptor.storeId,
      code: "config_healed",
      message: `rewrote ${[...healed].join(", ")} from the other copy of the same config version`,
    });
  }
  for (const i of resolved.invalid) {
    if (!healed.has(i.key)) opened.problems.push(`${i.key}: invalid: ${i.reason}`);
  }
  for (const copy of resolved.toHeal) {
    if (!healed.has(copy.key) && !resolved.invalid.some((i) => i.key === copy.key)) {
      opened.problems.push(`${copy.key}: missing or different: the other copy is sound`);
    }
  }

  if (slotsToHeal.length > 0) {
    if (context.readOnly) {
      opened.problems.push(
        ...slotsToHeal.map((h) => `${h.key}: missing or different: its twin is sound`),
      );
    } else {
      for (const h of slotsToHeal) await driver.put(h.key, h.bytes);
    }
  }

  if (context.deferIndex) {
    opened.state = opened.problems.length === 0 ? "Ready" : "Degraded";
    return opened;
  }
  const loaded = await loadIndex(driver, host, {
    storeId: descriptor.storeId,
    bus,
    clock,
    keys: opened.keys,
  });
  opened.index = loaded.index;
  opened.indexSource = loaded.source;
  opened.indexLoadedFrom = loaded.loadedFrom;
  try {
    await catchUp(loaded.index, {
      driver,
      host,
      descriptor,
      config: resolved.config,
      parallelism: context.parallelism,
      now: context.clock,
      keys: opened.keys,
    }, opened.problems);
  } catch (e) {
    loaded.index.close();
    throw e;
  }
  // Every pack of another store, none of this one: the descriptor replicas are the foreign ones
  // (copied from another store), and nothing this handle would answer could be trusted.
  const foreign = opened.problems.map((p) => / belongs to store ([0-9a-f]{32}), expected /.exec(p))
    .filter((m) => m !== null);
  if (foreign.length > 0 && loaded.index.counts().packs === 0) {
    opened.state = "Corrupted";
    opened.problems.unshift(
      `${DESCRIPTOR_KEY}: names store ${descriptor.storeId}, but the packs on the Location belong ` +
        `to store ${foreign[0]![1]}: if the descriptor replicas were copied from another store, ` +
        "rebuild with this store's Recovery Kit (capsa rebuild LOCATION --kit FILE)",
    );
    return opened;
  }
  opened.state = opened.problems.length === 0 ? "Ready" : "Degraded";
  return opened;
}

/**
 * Refuses to open a store as unencrypted when any readable replica of the
 * same store says it is encrypted. Descriptors never change, so such a
 * disagreement means replicas were replaced — and a majority of replaced
 * Location replicas must not make writers store plain bytes in what this
 * host knows is an encrypted store (docs/FORMAT.md §9.3).
 * @param chosen The descriptor the replicas agreed on.
 * @param readings Every replica's reading.
 * @throws {CorruptObjectError} naming the replica that says encrypted.
 */
function refuseDowngrade(
  chosen: Descriptor | undefined,
  readings: readonly { where: string; result: Descriptor | Error }[],
): void {
  if (chosen === undefined || chosen.encryption !== null) return;
  for (const r of readings) {
    if (r.result instanceof Error) continue;
    if (r.result.storeId === chosen.storeId && r.result.encryption !== null) {
      throw new CorruptObjectError(
        DESCRIPTOR_KEY,
        `${r.where} says store ${chosen.storeId} is encrypted, other replicas say it is not: ` +
          "descriptors never change, so replicas were replaced; refusing to open it unencrypted " +
          "(rebuild the descriptor with the store's Recovery Kit: capsa rebuild LOCATION --kit FILE)",
      );
    }
  }
}

/** Whether a key exists (a failed stat other than "not found" propagates). */
function exists(driver: Driver, key: string): Promise<boolean> {
  return driver.stat(key).then(() => true, (e) => {
    if (e instanceof NotFoundError) return false;
    throw e;
  });
}

/**
 * Writes a new store on an empty Location: the first config version and its
 * pointer, then the descriptor replicas, `store.json` last. Until it exists
 * the Location is not a store, so an interrupted init can simply be run again.
 * @param driver The Location.
 * @param options Hash, chunking, first config, host storage, clock, location.
 * @returns The Recovery Kit.
 * @throws {InvalidArgumentError} when the Location already holds a store or other data.
 */
export async function createOnLocation(
  driver: Driver,
  options: InitStoreOptions,
): Promise<string> {
  for (const key of [DESCRIPTOR_KEY, DESCRIPTOR_REPLICA_KEY]) {
    if (await exists(driver, key)) {
      throw new InvalidArgumentError(`${driver.location} already holds a store (${key} exists)`);
    }
  }
  // An init interrupted before its descriptor (the commit point) may have left config
  // versions, which a new init writes after; anything else means the Location is in use.
  for await (const info of driver.list("")) {
    if (
      !info.key.startsWith(CONFIG_PREFIX) && !info.key.startsWith(CONFIG_REPLICA_PREFIX) &&
      !info.key.startsWith(KEY_SLOT_PREFIX) && !info.key.startsWith(KEY_SLOT_REPLICA_PREFIX)
    ) {
      throw new InvalidArgumentError(
        `${driver.location} is not empty (it holds ${info.key}): init needs an empty Location`,
      );
    }
  }
  // Encryption: a random data key, pinned by its key check in the descriptor and wrapped under
  // the passphrase in the first key slot (docs/FORMAT.md §9).
  const storeId = newStoreId();
  const dataKey = options.encryption === undefined ? undefined : newDataKey();
  const descriptor = createDescriptor({
    storeId,
    ...(options.hash === undefined ? {} : { hash: options.hash }),
    ...(options.chunking === undefined ? {} : { chunking: options.chunking }),
    ...(options.clock === undefined ? {} : { clock: options.clock }),
    ...(dataKey === undefined
      ? {}
      : { encryption: { cipher: "aes-256-gcm" as const, keyCheck: keyCheckOf(dataKey, storeId) } }),
  });
  const slot = dataKey === undefined ? undefined : await createKeySlot(
    dataKey,
    storeId,
    options.encryption!.passphrase,
    {
      ...(options.encryption!.kdf === undefined ? {} : { kdf: options.encryption!.kdf }),
      ...(options.encryption!.label === undefined ? {} : { label: options.encryption!.label }),
      ...(options.clock === undefined ? {} : { clock: options.clock }),
    },
  );
  const settings: ConfigSettings = { ...defaultConfig(), ...options.config };
  validateConfig(settings, { chunking: descriptor.chunking });
  if (settings.manifestStorage !== "Remote" && !options.hostStorage) {
    throw new InvalidArgumentError(`manifestStorage ${settings.manifestStorage} needs hostStorage`);
  }
  await writeConfigVersion(driver, settings, {
    chunking: descriptor.chunking,
    ...(options.clock === undefined ? {} : { clock: options.clock }),
  });
  if (slot !== undefined) await writeKeySlot(driver, slot);
  await writeDescriptorReplicas(driver, options.hostStorage, descriptor);
  return encodeRecoveryKit(descriptor, {
    ...(options.location === undefined ? {} : { location: options.location }),
    ...(slot === undefined ? {} : { keySlots: [slot] }),
  });
}
