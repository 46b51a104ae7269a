/**
 * MoveStoreAgent: moves a whole store from its Location to another one
 * (e.g. a directory to an S3 bucket), then marks the source as moved.
 *
 * The order of the writes is what makes a move safe to interrupt at any
 * point and to run again:
 *
 * 1. The source's lease is taken in `read-only` maintenance mode: the source
 *    stays readable, every other handle's writes are refused.
 * 2. The destination is checked before anything is written to it: it must be
 *    empty or a partial copy of this very store (every object it holds is an
 *    object of the source, and any descriptor replica it holds names this
 *    store; index snapshots of this store that the source has pruned since
 *    are removed before the commit). Anything else is refused with a typed
 *    error.
 * 3. Every object of the source but the descriptor replicas is copied, with
 *    `parallelism` workers. An object the destination already holds with the
 *    same bytes (same size, same SHA-256) is skipped: a rerun after a crash
 *    copies only what is missing or differs. Every copy is read back from the
 *    destination and its SHA-256 compared with the source's; a mismatch is
 *    copied once more, and a second mismatch is a `copy_mismatch` problem that
 *    fails the run before the commit point.
 * 4. The source is listed again, and anything that appeared or changed size
 *    meanwhile (a commit that read the maintenance mode just before it was
 *    written) is copied too, until a listing brings nothing new.
 * 5. **Commit point**: the descriptor replicas are written at the
 *    destination, `store.json` last. Until then the destination is not a
 *    store.
 * 6. `system.state/moved` is written at the source:
 *    `{format: "capsa-moved", version: 1, destination, storeId, movedAt}`
 *    (`movedAt` in ms since the epoch). Opening the source now throws
 *    `StoreMovedError` naming the destination.
 * 7. Only with `deleteSource`, and only when every object was verified, the
 *    source's objects are deleted: data first, then the descriptor replicas
 *    (`store.json` last), so the source says what it is, then where it went,
 *    at every moment. `system.state/moved` is kept.
 *
 * What is not copied: the maintenance lease, mode and takeover markers
 * (everything under `system.state/maintenance/`), and `system.state/moved`.
 * The host storage (host cache, host descriptor replica, manifest log) is not
 * part of the Location and is not touched: open the destination with the same
 * host storage.
 *
 * @module
 */

import type { Driver } from "../drivers/driver.ts";
import {
  decodeDescriptor,
  type Descriptor,
  descriptorChecksum,
  encodeDescriptor,
  MAX_DESCRIPTOR_BYTES,
} from "../format/descriptor.ts";
import { CapsaError, CorruptObjectError, InvalidArgumentError, NotFoundError } from "../errors.ts";
import { EventBus } from "../store/events.ts";
import { hashBytes } from "../format/hashing.ts";
import { readLease } from "../store/lease.ts";
import {
  DESCRIPTOR_KEY,
  DESCRIPTOR_REPLICA_KEY,
  LEASE_KEY,
  MAINTENANCE_PREFIX,
  MOVED_KEY,
  SNAPSHOT_PREFIX,
} from "../layout.ts";
import { decodeSnapshot } from "../format/snapshot.ts";
import { encodeMovedMarker } from "../format/markers.ts";
import { writeDescriptorLast } from "../store/replicas.ts";
import type { Store } from "../store/store.ts";
import { pool } from "../pool.ts";
import {
  AgentBase,
  type MaintenanceAgent,
  type MaintenanceContext,
  requireIntegers,
} from "./agent.ts";

/** Configures the MoveStoreAgent. */
export interface MoveConfig {
  /** An opened driver on the destination Location. */
  destination: Driver;
  /**
   * The destination as an operator would type it (a Location URL, never with
   * credentials): written into `system.state/moved` at the source, and named
   * by the `StoreMovedError` of whoever opens the source afterwards.
   */
  destinationLocation: string;
  /** Objects copied in parallel. Default 8. */
  parallelism?: number;
  /** The lease's hold time in ms. Default 30 minutes. */
  leaseTTL?: number | string;
  /** Break a live lease held by someone else (loudly: a warning event). Default `false`. */
  force?: boolean;
  /**
   * Delete the source's objects once the move is committed and every object
   * verified, keeping only `system.state/moved`. Default `false`.
   */
  deleteSource?: boolean;
}

/** Statistics of a move; a progress snapshot while it runs. */
export interface MoveStats {
  /** Objects of the source to move (descriptor replicas included). */
  objectsTotal: number;
  /** Objects written to the destination and verified. */
  objectsCopied: number;
  /** Objects the destination already held intact (same SHA-256): not written again. */
  objectsSkipped: number;
  /** Bytes written to the destination (a retried copy counts twice). */
  bytesCopied: number;
  /** Bytes read back from the destination whose SHA-256 matched the source's. */
  bytesVerified: number;
  /** Whether the source's objects were deleted. */
  sourceDeleted: boolean;
  /** Elapsed time in ms. */
  duration: number;
}

/** The kinds of {@linkcode MoveProblem}. */
export type MoveProblemKind = "copy_mismatch";

/** A problem found by a move, with the object it concerns. */
export interface MoveProblem {
  /** `copy_mismatch`: the destination's copy differed from the source twice in a row. */
  kind: MoveProblemKind;
  /** The object's key. */
  key: string;
  /** What exactly, for a human. */
  detail: string;
}

/** The MoveStoreAgent. */
export interface MoveStoreAgent extends MaintenanceAgent {
  /** Always `"MoveStore"`. */
  readonly kind: "MoveStore";
  /**
   * A progress snapshot while running (safe to call at any time); the final
   * statistics after `run`.
   * @returns A copy of the stats.
   */
  stats(): MoveStats;
  /**
   * The objects that did not arrive intact, each with its key (complete once
   * `run` settled; a run with problems fails with {@linkcode CopyMismatchError}).
   * @returns A copy of the problems.
   */
  problems(): MoveProblem[];
}

/** The defaults of {@linkcode MoveConfig}. */
export const MOVE_DEFAULTS = {
  parallelism: 8,
  leaseTTL: 30 * 60_000,
  force: false,
  deleteSource: false,
} as const;

/**
 * The destination holds a store of another id: a move never mixes two stores.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DestinationHoldsStoreError } from "@capsa/capsa/maintenance";
 * const e = new DestinationHoldsStoreError("/srv/b", "0123", "store.json");
 * assert.deepEqual(e.code, "destination_holds_store");
 * ```
 */
export class DestinationHoldsStoreError extends CapsaError {
  /** The store id found at the destination (`"unreadable"` when it cannot be decoded). */
  readonly storeId: string;
  /** The object that names it. */
  readonly key: string;
  /**
   * Creates the error.
   * @param location The destination.
   * @param storeId The store id found there.
   * @param key The object that names it.
   */
  constructor(location: string, storeId: string, key: string) {
    super(
      "destination_holds_store",
      `the destination ${location} already holds another store (${key}: ${storeId}): choose an empty destination`,
    );
    this.storeId = storeId;
    this.key = key;
  }
}

/**
 * The destination is not empty and is not a partial copy of the store being
 * moved (it holds an object the source does not), or it is the source itself.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DestinationNotEmptyError } from "@capsa/capsa/maintenance";
 * const e = new DestinationNotEmptyError("/srv/b", "notes.txt");
 * assert.deepEqual([e.code, e.key], ["destination_not_empty", "notes.txt"]);
 * ```
 */
export class DestinationNotEmptyError extends CapsaError {
  /** An object of the destination that is not an object of the source. */
  readonly key: string;
  /**
   * Creates the error.
   * @param location The destination.
   * @param key An object of the destination the source does not hold.
   * @param why What it means, when more than "not ours".
   */
  constructor(location: string, key: string, why?: string) {
    super(
      "destination_not_empty",
      why ??
        `the destination ${location} is not empty and is not a partial copy of this store ("${key}" is not an object of the source): choose an empty destination`,
    );
    this.key = key;
  }
}

/**
 * Some objects could not be copied intact: the move stopped before its commit
 * point (the destination has no descriptor, the source is not marked moved).
 * Run it again once the cause is fixed; what arrived intact is not copied again.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CopyMismatchError } from "@capsa/capsa/maintenance";
 * const e = new CopyMismatchError([{ kind: "copy_mismatch", key: "packs/01J", detail: "…" }]);
 * assert.deepEqual(e.code, "copy_mismatch");
 * ```
 */
export class CopyMismatchError extends CapsaError {
  /** Every object that did not arrive intact. */
  readonly problems: readonly MoveProblem[];
  /**
   * Creates the error.
   * @param problems The objects that did not arrive intact.
   */
  constructor(problems: readonly MoveProblem[]) {
    const shown = problems.slice(0, 5).map((p) => p.key).join(", ");
    super(
      "copy_mismatch",
      `${problems.length} object(s) did not arrive intact at the destination (${shown}${
        problems.length > 5 ? ", …" : ""
      }): the move was not committed; run it again`,
      true,
    );
    this.problems = problems;
  }
}

const DESCRIPTOR_KEYS: ReadonlySet<string> = new Set([DESCRIPTOR_KEY, DESCRIPTOR_REPLICA_KEY]);
/** Re-listings of the source after the first copy pass, at most. */
const MAX_EXTRA_PASSES = 5;
const MAX_LOCATION_CHARS = 4096;

/** Whether a key of the source is moved: everything but the lease machinery and the moved marker. */
function isMoved(key: string): boolean {
  return !key.startsWith(MAINTENANCE_PREFIX) && key !== MOVED_KEY;
}

const sha256 = (bytes: Uint8Array) => hashBytes("sha256", bytes);

class MoveStoreAgentImpl extends AgentBase<MoveStats, MoveProblem> implements MoveStoreAgent {
  override readonly kind = "MoveStore" as const;
  #config: {
    destination: Driver;
    destinationLocation: string;
    parallelism: number;
    deleteSource: boolean;
  };

  constructor(store: Store, bus: EventBus, config: MoveConfig) {
    super(store, bus, {
      mode: "read-only",
      leaseTTL: config.leaseTTL ?? MOVE_DEFAULTS.leaseTTL,
      force: config.force ?? MOVE_DEFAULTS.force,
    }, {
      objectsTotal: 0,
      objectsCopied: 0,
      objectsSkipped: 0,
      bytesCopied: 0,
      bytesVerified: 0,
      sourceDeleted: false,
      duration: 0,
    });
    this.#config = {
      destination: config.destination,
      destinationLocation: config.destinationLocation,
      parallelism: config.parallelism ?? MOVE_DEFAULTS.parallelism,
      deleteSource: config.deleteSource ?? MOVE_DEFAULTS.deleteSource,
    };
  }

  protected override check(): void {
    const c = this.#config;
    const d = c.destination as Partial<Driver> | undefined;
    if (
      !d || typeof d.get !== "function" || typeof d.put !== "function" ||
      typeof d.list !== "function"
    ) {
      throw new InvalidArgumentError("destination must be an opened driver on the target Location");
    }
    if (c.destination === this.store.driver) {
      throw new InvalidArgumentError("the destination is the source's own driver");
    }
    const loc = c.destinationLocation;
    if (
      typeof loc !== "string" || loc.trim() === "" || loc.length > MAX_LOCATION_CHARS ||
      [...loc].some((ch) => ch.charCodeAt(0) < 0x20 || (ch >= "\x7f" && ch <= "\x9f"))
    ) {
      throw new InvalidArgumentError(
        `destinationLocation must be a printable, non-empty string of at most ${MAX_LOCATION_CHARS} characters`,
      );
    }
    requireIntegers({ parallelism: [c.parallelism, 1] });
    this.requireStore(
      "descriptor",
      "no valid descriptor: rebuild the store with its Recovery Kit before moving it",
    );
  }

  protected override progress(): { done: number; total: number } {
    return {
      done: this.counters.objectsCopied + this.counters.objectsSkipped,
      total: this.counters.objectsTotal,
    };
  }

  protected override async work(ctx: MaintenanceContext): Promise<void> {
    const descriptor = this.store.descriptor!;
    const source = this.store.driver;
    let listing = await this.#listSource();
    const { found: destSizes, stale } = await this.#checkDestination(
      listing,
      descriptor,
      ctx.lease.record.nonce,
    );
    this.counters.objectsTotal = listing.size + this.#missingDescriptorReplicas(listing);

    // Data first, every object but the descriptor replicas.
    const done = new Map<string, number>();
    const pending = (objects: Map<string, number>) =>
      [...objects].filter(([key, size]) => !DESCRIPTOR_KEYS.has(key) && done.get(key) !== size);
    for (let pass = 0;; pass++) {
      const todo = pending(listing);
      if (todo.length === 0) break;
      if (pass > MAX_EXTRA_PASSES) {
        throw new CapsaError(
          "source_changing",
          `the source kept changing during the move (${todo.length} new or resized objects after ${pass} listings): is another writer ignoring the maintenance mode?`,
          true,
        );
      }
      await pool(todo, async ([key, size]) => {
        await this.#transfer(key, () => source.get(key), destSizes.get(key));
        done.set(key, size);
      }, { concurrency: this.#config.parallelism, signal: ctx.signal });
      // Anything committed by a writer that read the mode just before it was written.
      listing = await this.#listSource();
      this.counters.objectsTotal = listing.size + this.#missingDescriptorReplicas(listing);
    }
    if (this.found.length > 0) throw new CopyMismatchError([...this.found]);
    for (const key of stale) await this.#config.destination.delete(key);

    // The commit point: the descriptor replicas, store.json last.
    await ctx.lease.check();
    ctx.signal.throwIfAborted();
    await writeDescriptorLast(this.#config.destination, undefined, undefined, async (t) => {
      await this.#transfer(
        t.key,
        () => this.#descriptorBytes(t.key, descriptor),
        destSizes.get(t.key),
      );
      if (this.found.length > 0) throw new CopyMismatchError([...this.found]);
    });

    // The source now says where the store went.
    await ctx.lease.check();
    await source.put(
      MOVED_KEY,
      encodeMovedMarker({
        destination: this.#config.destinationLocation,
        storeId: descriptor.storeId,
        movedAt: this.store.clock(),
      }),
    );

    if (this.#config.deleteSource) {
      await ctx.lease.check();
      await this.#deleteSource(ctx.signal);
    }
  }

  /** Lists the objects of the source to move, key → size. */
  async #listSource(): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for await (const info of this.store.driver.list("")) {
      if (isMoved(info.key)) out.set(info.key, info.size);
    }
    return out;
  }

  /** Descriptor replicas the source lacks (a Degraded store): the destination gets them all. */
  #missingDescriptorReplicas(listing: Map<string, number>): number {
    return [...DESCRIPTOR_KEYS].filter((k) => !listing.has(k)).length;
  }

  /**
   * Refuses a destination that is not empty and not a partial copy of this
   * store, before anything is written to it. Its objects must all be objects
   * of the source, except index snapshots of this store that the source has
   * pruned since an interrupted move copied them ("stale": removed before the
   * commit point).
   * @returns The destination's objects, key → size, and the stale ones.
   */
  async #checkDestination(
    source: Map<string, number>,
    descriptor: Descriptor,
    nonce: string,
  ): Promise<{ found: Map<string, number>; stale: string[] }> {
    const dest = this.#config.destination;
    const where = this.#config.destinationLocation;
    const found = new Map<string, number>();
    for await (const info of dest.list("")) found.set(info.key, info.size);
    if (found.has(LEASE_KEY)) {
      const lease = await readLease(dest).catch(() => null);
      if (lease !== null && lease !== "invalid" && lease.nonce === nonce) {
        throw new DestinationNotEmptyError(
          where,
          LEASE_KEY,
          `the destination ${where} is the source's own Location: choose another one`,
        );
      }
    }
    for (const key of DESCRIPTOR_KEYS) {
      if (!found.has(key)) continue;
      let storeId: string;
      try {
        storeId = decodeDescriptor(key, await dest.getRange(key, 0, MAX_DESCRIPTOR_BYTES + 1))
          .storeId;
      } catch (e) {
        if (!(e instanceof CorruptObjectError)) throw e;
        storeId = "unreadable";
      }
      if (storeId !== descriptor.storeId) throw new DestinationHoldsStoreError(where, storeId, key);
    }
    const stale: string[] = [];
    for (const key of found.keys()) {
      if (source.has(key) || DESCRIPTOR_KEYS.has(key)) continue;
      // A snapshot the source pruned since an interrupted move copied it.
      if (key.startsWith(SNAPSHOT_PREFIX) && await this.#isOwnSnapshot(key, descriptor)) {
        stale.push(key);
        continue;
      }
      throw new DestinationNotEmptyError(where, key);
    }
    return { found, stale };
  }

  async #isOwnSnapshot(key: string, descriptor: Descriptor): Promise<boolean> {
    try {
      decodeSnapshot(
        key,
        await this.#config.destination.get(key),
        descriptor.storeId,
        this.store.keys,
      );
      return true;
    } catch (e) {
      if (e instanceof CorruptObjectError || e instanceof NotFoundError) return false;
      throw e;
    }
  }

  /** The bytes of a descriptor replica: the source's own when it is sound, else re-encoded. */
  async #descriptorBytes(key: string, descriptor: Descriptor): Promise<Uint8Array> {
    try {
      const bytes = await this.store.driver.getRange(key, 0, MAX_DESCRIPTOR_BYTES + 1);
      if (descriptorChecksum(decodeDescriptor(key, bytes)) === descriptorChecksum(descriptor)) {
        return bytes;
      }
    } catch (e) {
      if (!(e instanceof NotFoundError || e instanceof CorruptObjectError)) throw e;
    }
    return encodeDescriptor(descriptor);
  }

  /**
   * Copies one object unless the destination already holds the same bytes,
   * then reads the copy back and compares digests; one retry on a mismatch.
   */
  async #transfer(
    key: string,
    load: () => Promise<Uint8Array>,
    destSize: number | undefined,
  ): Promise<void> {
    const dest = this.#config.destination;
    const bytes = await load();
    const digest = sha256(bytes);
    if (destSize === bytes.length) {
      const there = await dest.get(key).catch((e) => {
        if (e instanceof NotFoundError) return undefined;
        throw e;
      });
      if (there && sha256(there) === digest) {
        this.counters.objectsSkipped++;
        this.counters.bytesVerified += bytes.length;
        return;
      }
    }
    let got = "";
    for (let attempt = 1; attempt <= 2; attempt++) {
      await dest.put(key, bytes);
      this.counters.bytesCopied += bytes.length;
      const back = await dest.get(key);
      got = back.length === bytes.length ? sha256(back) : `${back.length} bytes`;
      if (got === digest) {
        this.counters.objectsCopied++;
        this.counters.bytesVerified += bytes.length;
        if (attempt > 1) {
          this.bus.publish({
            type: "warning",
            at: this.store.clock(),
            storeId: this.store.storeId,
            code: "copy_retried",
            message:
              `"${key}" read back different from the source at ${this.#config.destinationLocation}; copied again, now intact`,
          });
        }
        return;
      }
    }
    this.found.push({
      kind: "copy_mismatch",
      key,
      detail:
        `copied twice, read back differently each time (source sha256 ${digest}, destination ${got})`,
    });
  }

  /** Deletes the source's objects: data first, the descriptor replicas last, `store.json` last of all. */
  async #deleteSource(signal: AbortSignal): Promise<void> {
    const source = this.store.driver;
    const listing = await this.#listSource();
    const data = [...listing.keys()].filter((k) => !DESCRIPTOR_KEYS.has(k));
    await pool(data, (key) => source.delete(key), {
      concurrency: this.#config.parallelism,
      signal,
    });
    await source.delete(DESCRIPTOR_REPLICA_KEY);
    await source.delete(DESCRIPTOR_KEY);
    this.counters.sourceDeleted = true;
  }
}

/**
 * Creates the agent, publishing on `store.bus`.
 * @param store The store.
 * @param config The configuration.
 * @returns The agent.
 */
export function createMoveStoreAgent(store: Store, config: MoveConfig): MoveStoreAgent;
/**
 * Creates a MoveStoreAgent: moves the store to `config.destination`, then
 * marks the source as moved (see the module doc for the order of the writes).
 *
 * @param store The store to move (its descriptor must be readable).
 * @param bus Where the agent publishes its events (default: `store.bus`, so it may be left out).
 * @param config The destination and options.
 * @returns The agent; call `validate()` then `run()`.
 *
 * @example Moving a store from memory to another Location
 * ```ts
 * import assert from "node:assert/strict";
 * import { initStore, openStore } from "@capsa/capsa";
 * import { EventBus } from "@capsa/capsa";
 * import { MemoryDriver } from "@capsa/capsa";
 * import { createMoveStoreAgent } from "@capsa/capsa/maintenance";
 *
 * const source = new MemoryDriver({ name: "memory:old" });
 * const destination = new MemoryDriver({ name: "memory:new" });
 * const { store } = await initStore(source);
 * await store.put("ns", "k", new TextEncoder().encode("v"));
 * const agent = createMoveStoreAgent(store, {
 *   destination,
 *   destinationLocation: "memory:new",
 * });
 * agent.validate();
 * await agent.run();
 * await store.close();
 * assert.deepEqual(agent.stats().objectsCopied > 0, true);
 * const moved = await openStore(destination);
 * assert.deepEqual(new TextDecoder().decode(await moved.get("ns", "k")), "v");
 * await moved.close();
 * await assert.rejects(openStore(source), (e: Error & { code?: string }) => e.code === "store_moved");
 * ```
 */
export function createMoveStoreAgent(
  store: Store,
  bus: EventBus,
  config: MoveConfig,
): MoveStoreAgent;
export function createMoveStoreAgent(
  store: Store,
  busOrConfig?: EventBus | MoveConfig,
  config?: MoveConfig,
): MoveStoreAgent {
  const [bus, cfg] = busOrConfig instanceof EventBus
    ? [busOrConfig, config]
    : [store.bus, busOrConfig];
  return new MoveStoreAgentImpl(store, bus, cfg!);
}
