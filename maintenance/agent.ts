/**
 * The contract every maintenance agent implements, and the machinery they
 * share: the lease, the maintenance mode, and the started / progress /
 * completed / failed events.
 *
 * An agent's work runs only inside {@linkcode runExclusive}, which holds the
 * lease for the whole run: the {@linkcode MaintenanceContext} handed to the
 * work cannot be built anywhere else, so no agent can write without the lease.
 *
 * @module
 */

import { CapsaError, InvalidArgumentError } from "../errors.ts";
import type { EventBus } from "../store/events.ts";
import { acquireLease, type Lease } from "../store/lease.ts";
import { MAINTENANCE_MODE_KEY, type MaintenanceMode, type Store } from "../store/store.ts";

/**
 * Checks an agent's integer options, each against its minimum.
 * @param options Name → `[value, minimum]`.
 * @throws {InvalidArgumentError} naming the first option that is not an integer ≥ its minimum.
 *
 * @example
 * ```ts
 * import { requireIntegers } from "./agent.ts";
 * requireIntegers({ parallelism: [8, 1], leaseTTL: [1_800_000, 1000] });
 * ```
 */
export function requireIntegers(options: Record<string, readonly [number, number]>): void {
  for (const [name, [v, min]] of Object.entries(options)) {
    if (!Number.isSafeInteger(v) || v < min) {
      throw new InvalidArgumentError(`${name} must be an integer ≥ ${min}, got ${v}`);
    }
  }
}

/** Options of {@linkcode MaintenanceAgent.run}. */
export interface RunOptions {
  /** Stops the agent cleanly: lease released, the store as it was. */
  signal?: AbortSignal;
}

/**
 * A one-shot maintenance agent (the seed's `core.MaintenanceAgent`).
 * Started only explicitly, never automatically.
 */
export interface MaintenanceAgent {
  /** The agent's kind, e.g. `"RebuildIndex"`. */
  readonly kind: string;
  /**
   * Checks the configuration against the store without touching the Location.
   * @throws {CapsaError} a typed error naming what is wrong.
   */
  validate(): void;
  /**
   * Does the work, holding the maintenance lease throughout.
   * @param options The cancellation signal.
   */
  run(options?: RunOptions): Promise<void>;
}

/**
 * `ManifestStorage` is `Local` but no host storage was given.
 *
 * @example
 * ```ts
 * import { HostStorageRequiredError } from "./agent.ts";
 * console.log(new HostStorageRequiredError().code); // "host_storage_required"
 * ```
 */
export class HostStorageRequiredError extends CapsaError {
  /** Creates the error. */
  constructor() {
    super(
      "host_storage_required",
      "manifests are kept only on the host (manifestStorage Local): pass the host storage (--host-dir) that holds the manifest log",
    );
  }
}

/**
 * The store is Corrupted because every descriptor replica is lost, and no
 * Recovery Kit was given.
 *
 * @example
 * ```ts
 * import { RecoveryKitRequiredError } from "./agent.ts";
 * console.log(new RecoveryKitRequiredError().code); // "recovery_kit_required"
 * ```
 */
export class RecoveryKitRequiredError extends CapsaError {
  /** Creates the error. */
  constructor() {
    super(
      "recovery_kit_required",
      "every descriptor replica is lost: run the rebuild with the store's Recovery Kit (--kit FILE)",
    );
  }
}

/**
 * The Recovery Kit is valid but belongs to another store than the one on the
 * Location. Nothing was written.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { RecoveryKitMismatchError } from "./agent.ts";
 *
 * const e = new RecoveryKitMismatchError("aaa", "bbb", "store.json");
 * assert.deepEqual([e.code, e.kitStoreId, e.storeId, e.where], [
 *   "recovery_kit_mismatch",
 *   "aaa",
 *   "bbb",
 *   "store.json",
 * ]);
 * ```
 */
export class RecoveryKitMismatchError extends CapsaError {
  /** The store the kit belongs to. */
  readonly kitStoreId: string;
  /** The store found on the Location. */
  readonly storeId: string;
  /** The object that names {@linkcode RecoveryKitMismatchError.storeId} (a descriptor replica, a pack, a snapshot). */
  readonly where: string;
  /**
   * Creates the error.
   * @param kitStoreId The kit's store.
   * @param storeId The store found on the Location.
   * @param where The object that names it.
   */
  constructor(kitStoreId: string, storeId: string, where: string) {
    super(
      "recovery_kit_mismatch",
      `the Recovery Kit is for store ${kitStoreId}, but ${where} belongs to store ${storeId}: use this store's kit`,
    );
    this.kitStoreId = kitStoreId;
    this.storeId = storeId;
    this.where = where;
  }
}

/**
 * `Snapshot` was asked for but no valid index snapshot exists.
 *
 * @example
 * ```ts
 * import { NoSnapshotError } from "./agent.ts";
 * console.log(new NoSnapshotError([]).code); // "no_snapshot"
 * ```
 */
export class NoSnapshotError extends CapsaError {
  /**
   * Creates the error.
   * @param rejected Snapshots found but unusable, with why.
   */
  constructor(rejected: ReadonlyArray<{ key: string; reason: string }>) {
    const why = rejected.length === 0
      ? "there is none"
      : `${rejected.length} found, none valid (${
        rejected.map((r) => `${r.key}: ${r.reason}`).join("; ")
      })`;
    super("no_snapshot", `no valid index snapshot (${why}): use source Auto or FullScan`);
  }
}

/** What the work of an agent receives: proof that the lease is held. */
export interface MaintenanceContext {
  /** The lease; call `check()` before each commit point. */
  readonly lease: Lease;
  /** The store. */
  readonly store: Store;
  /** The cancellation signal (never undefined inside the work). */
  readonly signal: AbortSignal;
}

/** Options of {@linkcode runExclusive}. */
export interface ExclusiveOptions {
  /** The agent's kind. */
  agent: string;
  /** The store id to lease for (the kit's, when the descriptor is lost). */
  storeId: string;
  /** What other handles may still do. */
  mode: MaintenanceMode["mode"];
  /** Lease TTL in ms. */
  leaseTTL: number;
  /** Break a live lease. */
  force?: boolean;
  /** The events bus. */
  bus: EventBus;
  /** The cancellation signal. */
  signal?: AbortSignal | undefined;
  /** Returns a snapshot of the stats, for progress and completion events. */
  stats: () => Record<string, unknown>;
  /** Returns work done / total, when known. */
  progress?: () => { done: number; total: number } | undefined;
}

const enc = new TextEncoder();

/**
 * Runs `work` holding the maintenance lease and the maintenance mode:
 * acquires the lease (create-only), writes `system.state/maintenance/mode`,
 * renews the lease in the background, publishes `maintenance.started`,
 * `maintenance.progress` (at least once a second) and `maintenance.completed`
 * or `maintenance.failed`, and always removes the mode and releases the lease.
 *
 * @param store The store.
 * @param options Agent, mode, TTL, bus, signal.
 * @param work The work; it must call `ctx.lease.check()` before each commit point.
 * @returns What `work` returns.
 */
export async function runExclusive<T>(
  store: Store,
  options: ExclusiveOptions,
  work: (ctx: MaintenanceContext) => Promise<T>,
): Promise<T> {
  const bus = options.bus;
  options.signal?.throwIfAborted();
  // The work stops when the caller aborts or as soon as the lease is found lost.
  const stop = new AbortController();
  const signal = stop.signal;
  const onAbort = () => stop.abort(options.signal?.reason);
  options.signal?.addEventListener("abort", onAbort, { once: true });
  const lease = await acquireLease(store.driver, {
    storeId: options.storeId,
    agent: options.agent,
    ttlMs: options.leaseTTL,
    force: options.force ?? false,
    bus,
    clock: store.clock,
  });
  lease.onLost((e) => stop.abort(e));
  const base = { agent: options.agent, storeId: options.storeId };
  let ticker: ReturnType<typeof setInterval> | undefined;
  try {
    const mode: MaintenanceMode = {
      mode: options.mode,
      agent: options.agent,
      holder: lease.holder,
      nonce: lease.record.nonce,
    };
    store.setMaintenanceNonce(mode.nonce);
    await store.driver.put(MAINTENANCE_MODE_KEY, enc.encode(JSON.stringify(mode)));
    lease.startRenewing();
    bus.publish({ type: "maintenance.started", at: store.clock(), ...base, holder: lease.holder });
    const publishProgress = () => {
      const p = options.progress?.();
      bus.publish({
        type: "maintenance.progress",
        at: store.clock(),
        ...base,
        stats: options.stats(),
        ...(p ? { done: p.done, total: p.total } : {}),
      });
    };
    ticker = setInterval(publishProgress, 1000);
    const result = await work({ lease, store, signal });
    clearInterval(ticker);
    ticker = undefined;
    publishProgress();
    bus.publish({
      type: "maintenance.completed",
      at: store.clock(),
      ...base,
      stats: options.stats(),
    });
    return result;
  } catch (e) {
    const err = e instanceof CapsaError ? e : undefined;
    bus.publish({
      type: "maintenance.failed",
      at: store.clock(),
      ...base,
      code: err?.code ?? (signal.aborted ? "aborted" : "internal"),
      message: e instanceof Error ? e.message : String(e),
    });
    throw e;
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
    if (ticker !== undefined) clearInterval(ticker);
    await lease.stopRenewing();
    if (!lease.lost) {
      await store.driver.delete(MAINTENANCE_MODE_KEY).catch(() => {});
    }
    store.setMaintenanceNonce(undefined);
    await lease.release().catch(() => {});
  }
}
