/**
 * The contract every maintenance agent implements, the base class that holds
 * what they share, and the machinery under it: the lease, the maintenance
 * mode, and the started / progress / completed / failed events.
 *
 * An agent's work runs only inside {@linkcode runExclusive}, which holds the
 * lease for the whole run: the {@linkcode MaintenanceContext} handed to the
 * work cannot be built anywhere else, so no agent can write without the lease.
 *
 * {@linkcode AgentBase} is that skeleton once: one run per agent, `stats()` as
 * a copy with a live `duration`, `problems()` as a copy, the lease and mode
 * wiring, and the check that the store is not Corrupted. A new agent states
 * its kind, its maintenance mode, its checks and its work:
 *
 * @example A new agent in a few lines
 * ```ts
 * import assert from "node:assert/strict";
 * import { AgentBase, type MaintenanceContext } from "./agent.ts";
 * import { initStore, type Store } from "@capsa/capsa";
 * import { EventBus } from "@capsa/capsa";
 * import { MemoryDriver } from "@capsa/capsa";
 *
 * type CountStats = { packs: number; duration: number };
 * class CountAgent extends AgentBase<CountStats, { key: string; reason: string }> {
 *   override readonly kind = "Count";
 *   constructor(store: Store, bus: EventBus) {
 *     const lease = { mode: "read-only" as const, leaseTTL: 60_000, force: false };
 *     super(store, bus, lease, { packs: 0, duration: 0 });
 *   }
 *   protected override check(): void {
 *     this.requireStore("config", "a Corrupted store cannot be counted");
 *   }
 *   protected override work(ctx: MaintenanceContext): Promise<void> {
 *     this.counters.packs = ctx.store.index.counts().packs;
 *     return Promise.resolve();
 *   }
 * }
 *
 * const { store } = await initStore(new MemoryDriver());
 * await store.put("ns", "k", new TextEncoder().encode("v"));
 * await store.flush();
 * const agent = new CountAgent(store, new EventBus());
 * agent.validate();
 * await agent.run();
 * assert.equal(agent.stats().packs, 1);
 * await assert.rejects(agent.run(), /runs once/);
 * await store.close();
 * ```
 *
 * @module
 */

import { CapsaError, InvalidArgumentError, StoreCorruptedError } from "../errors.ts";
import { encodeMaintenanceMode, type MaintenanceMode } from "../format/markers.ts";
import { MAINTENANCE_MODE_KEY } from "../layout.ts";
import type { EventBus } from "../store/events.ts";
import { acquireLease, type Lease } from "../store/lease.ts";
import type { Store } from "../store/store.ts";

// The store refuses a `Local` store without host storage at open, so the error lives in errors.ts.
export { HostStorageRequiredError } from "../errors.ts";

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
 * A one-shot maintenance agent. Started only explicitly (CLI, API, HTTP),
 * never automatically.
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
 * The store is Corrupted because every descriptor replica is lost, and no
 * Recovery Kit was given.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { RecoveryKitRequiredError } from "@capsa/capsa/maintenance";
 * assert.deepEqual(new RecoveryKitRequiredError().code, "recovery_kit_required");
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
 * import { RecoveryKitMismatchError } from "@capsa/capsa/maintenance";
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
 * import assert from "node:assert/strict";
 * import { NoSnapshotError } from "@capsa/capsa/maintenance";
 * assert.deepEqual(new NoSnapshotError([]).code, "no_snapshot");
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
  /**
   * What other handles may still do; `"none"`: everything (no mode record is
   * written; garbage collection works beside readers and writers).
   */
  mode: MaintenanceMode["mode"] | "none";
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
    // "none": this handle keeps serving writes too (garbage collection works beside them).
    if (options.mode !== "none") store.setMaintenanceNonce(lease.record.nonce);
    if (options.mode !== "none") {
      const mode: MaintenanceMode = {
        mode: options.mode,
        agent: options.agent,
        holder: lease.holder,
        nonce: lease.record.nonce,
      };
      await store.driver.put(MAINTENANCE_MODE_KEY, encodeMaintenanceMode(mode));
    }
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
    if (!lease.lost && options.mode !== "none") {
      await store.driver.delete(MAINTENANCE_MODE_KEY).catch(() => {});
    }
    store.setMaintenanceNonce(undefined);
    await lease.release().catch(() => {});
  }
}

/** What an agent gives {@linkcode AgentBase}: how it holds the store, and for how long. */
export interface AgentLeaseSettings {
  /** What other handles may do while the agent runs (`"none"`: everything). */
  mode: MaintenanceMode["mode"] | "none";
  /**
   * The lease's hold time: ms, or a duration like the CLI's (`"30m"`, `"90s"`)
   * (checked by `validate()`: at least 1 s).
   */
  leaseTTL: number | string;
  /** Break a live lease held by someone else (loudly: a warning event). */
  force: boolean;
}

/**
 * A lease TTL in ms from ms or a duration text (`"30m"`); `NaN` when it is neither.
 * @param value The TTL.
 * @returns Milliseconds.
 */
function leaseTtlMs(value: number | string): number {
  if (typeof value === "number") return value;
  const m = /^([0-9]{1,12})(ms|s|m|h|d)$/.exec(value.trim());
  if (!m) return NaN;
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as "ms"];
  return Number(m[1]) * unit;
}

/**
 * The skeleton every maintenance agent shares. A subclass states its
 * {@linkcode AgentBase.kind}, its checks ({@linkcode AgentBase.check}) and its
 * work ({@linkcode AgentBase.work}); the base gives it:
 *
 * - `validate()`: the lease TTL, then the subclass's checks;
 * - `run()`: once per agent; validates, then runs the work inside
 *   {@linkcode runExclusive} (lease, maintenance mode, events with the live
 *   stats and {@linkcode AgentBase.progress}), and records the duration;
 * - `stats()` and `problems()`: copies, safe to call at any time (`duration`
 *   is live while the agent runs);
 * - {@linkcode AgentBase.requireStore}: the refusal of a Corrupted store.
 *
 * @typeParam S The agent's statistics (flat: numbers, strings, booleans).
 * @typeParam P What one problem found looks like.
 */
export abstract class AgentBase<S extends { duration: number }, P extends object>
  implements MaintenanceAgent {
  /** The agent's kind, e.g. `"RebuildIndex"`: the lease holder's name and the events' `agent`. */
  abstract readonly kind: string;
  /** The store the agent works on. */
  protected readonly store: Store;
  /** Where the agent publishes its events. */
  protected readonly bus: EventBus;
  /** How the agent holds the store. */
  protected readonly lease: AgentLeaseSettings & { leaseTTL: number };
  /** The statistics, updated by the work as it goes; read through `stats()`. */
  protected readonly counters: S;
  /** The problems found so far; read through `problems()`. */
  protected readonly found: P[] = [];
  #ran = false;
  #startedAt: number | undefined;

  /**
   * Sets the agent up.
   * @param store The store.
   * @param bus Where the agent publishes its events.
   * @param lease The maintenance mode, lease TTL and `force`.
   * @param stats The statistics before any work (`duration` 0).
   */
  protected constructor(store: Store, bus: EventBus, lease: AgentLeaseSettings, stats: S) {
    this.store = store;
    this.bus = bus;
    this.lease = { ...lease, leaseTTL: leaseTtlMs(lease.leaseTTL) };
    this.counters = stats;
  }

  /**
   * A progress snapshot while running (safe to call at any time); the final
   * statistics after `run`.
   * @returns A copy of the stats.
   */
  stats(): S {
    const duration = this.#startedAt === undefined
      ? this.counters.duration
      : Math.round(performance.now() - this.#startedAt);
    return { ...this.counters, duration };
  }

  /**
   * The problems found so far (complete once `run` settled), each naming its object.
   * @returns A copy of the problems.
   */
  problems(): P[] {
    return this.found.map((p) => ({ ...p }));
  }

  /**
   * Checks the configuration against the store without touching the Location.
   * @throws {CapsaError} a typed error naming what is wrong.
   */
  validate(): void {
    requireIntegers({ leaseTTL: [this.lease.leaseTTL, 1000] });
    this.check();
  }

  /**
   * Does the work, holding the maintenance lease throughout. An agent runs once.
   * @param options The cancellation signal.
   */
  async run(options: RunOptions = {}): Promise<void> {
    if (this.#ran) {
      throw new InvalidArgumentError(`a ${this.kind} agent runs once; create another`);
    }
    this.#ran = true;
    this.validate();
    this.#startedAt = performance.now();
    try {
      await runExclusive(this.store, {
        agent: this.kind,
        storeId: this.leaseStoreId(),
        mode: this.lease.mode,
        leaseTTL: this.lease.leaseTTL,
        force: this.lease.force,
        bus: this.bus,
        signal: options.signal,
        stats: () => ({ ...this.stats() }),
        progress: () => this.progress(),
      }, (ctx) => this.work(ctx));
    } finally {
      this.counters.duration = Math.round(performance.now() - this.#startedAt);
      this.#startedAt = undefined;
    }
  }

  /**
   * The agent's own checks, run by `validate()` after the lease TTL's.
   * @throws {CapsaError} a typed error naming what is wrong.
   */
  protected abstract check(): void;

  /**
   * The work, inside the lease; it calls `ctx.lease.check()` before each commit point.
   * @param ctx The lease, the store and the cancellation signal.
   */
  protected abstract work(ctx: MaintenanceContext): Promise<void>;

  /**
   * Work done and to do, for the progress events (default: unknown).
   * @returns The counts, or `undefined`.
   */
  protected progress(): { done: number; total: number } | undefined {
    return undefined;
  }

  /**
   * The store id the lease is taken for (default: the descriptor's).
   * @returns The id.
   */
  protected leaseStoreId(): string {
    return this.store.descriptor!.storeId;
  }

  /**
   * Refuses a store the agent cannot work on.
   * @param needs `"descriptor"`: a valid descriptor; `"config"`: not Corrupted, with a
   *   descriptor and a config.
   * @param why What the agent cannot do, added to the store's problems.
   * @throws {StoreCorruptedError} when the store lacks what is needed.
   */
  protected requireStore(needs: "descriptor" | "config", why: string): void {
    const store = this.store;
    const ok = needs === "descriptor"
      ? store.descriptor !== undefined
      : store.state !== "Corrupted" && store.descriptor !== undefined && store.config !== undefined;
    if (!ok) throw new StoreCorruptedError([...store.problems, why]);
  }
}
