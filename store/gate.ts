/**
 * The gate every store operation passes: is the store still here (no moved
 * marker, `docs/FORMAT.md` §4.3), and does a maintenance agent hold it
 * (`docs/FORMAT.md` §4.2)?
 *
 * A commit (before each pack write) always reads both records; puts, deletes
 * and reads use a maintenance mode at most a second old, so a busy writer
 * does not read the record per call. A mode whose lease is gone, expired,
 * another's, or held by a dead process of this host was left by a dead agent
 * and is ignored.
 *
 * @module
 */

import { type Driver, NotFoundError } from "../drivers/driver.ts";
import {
  CorruptObjectError,
  MaintenanceModeError,
  StoreMovedError,
  UnsupportedFormatVersionError,
} from "../errors.ts";
import {
  decodeMaintenanceMode,
  decodeMovedMarker,
  type MaintenanceMode,
  MAX_MARKER_BYTES,
} from "../format/markers.ts";
import { MAINTENANCE_MODE_KEY, MOVED_KEY } from "../layout.ts";
import { leaseHolderMayBeAlive, readLease } from "./lease.ts";
import { readGcEpoch } from "../index/gc_runs.ts";

/** Reads a small record, or `undefined` when it does not exist. */
async function readRecord(driver: Driver, key: string): Promise<Uint8Array | undefined> {
  try {
    return await driver.getRange(key, 0, MAX_MARKER_BYTES + 1);
  } catch (e) {
    if (e instanceof NotFoundError) return undefined;
    throw e;
  }
}

/**
 * Where the store was moved, from `system.state/moved`, or `undefined` when it
 * was not moved.
 * @param driver The Location.
 * @returns The destination.
 * @throws {CorruptObjectError} when the marker exists but cannot be read: the
 * store may have moved, so it is never taken as "not moved".
 */
export async function readMovedTo(driver: Driver): Promise<string | undefined> {
  const bytes = await readRecord(driver, MOVED_KEY);
  return bytes === undefined ? undefined : decodeMovedMarker(MOVED_KEY, bytes).destination;
}

/**
 * Reads the maintenance mode record, if any. A damaged one reads as `offline`
 * by an unknown holder with no nonce: no live lease matches it, so the gate
 * ignores it, and `status` still shows it for the operator to clear.
 * @param driver The Location.
 * @returns The mode, or `undefined` when no maintenance runs.
 * @throws {UnsupportedFormatVersionError} for a record of a newer capsa.
 */
export async function readMaintenanceMode(driver: Driver): Promise<MaintenanceMode | undefined> {
  const bytes = await readRecord(driver, MAINTENANCE_MODE_KEY);
  if (bytes === undefined) return undefined;
  try {
    return decodeMaintenanceMode(MAINTENANCE_MODE_KEY, bytes);
  } catch (e) {
    if (!(e instanceof CorruptObjectError) || e instanceof UnsupportedFormatVersionError) throw e;
    return { mode: "offline", agent: "unknown", holder: "unknown", nonce: "" };
  }
}

/** What is about to happen: the gate is stricter for a commit. */
export type GateKind = "read" | "write" | "commit";

/** The moved and maintenance checks of one store handle. */
export class MaintenanceGate {
  readonly #driver: Driver;
  readonly #clock: () => number;
  #nonce: string | undefined;
  #checkedAt = -Infinity;
  #seen: MaintenanceMode | undefined;
  #gcRun = "";

  /**
   * @param driver The Location.
   * @param clock The handle's clock.
   */
  constructor(driver: Driver, clock: () => number) {
    this.#driver = driver;
    this.#clock = clock;
  }

  /**
   * The newest garbage collection run the gate has seen published (`""`
   * for none): read with the maintenance mode before writes and commits, so
   * that a writer applies a run before it deduplicates against what the run
   * deletes (docs/FORMAT.md §8, G3).
   * @returns The run id.
   */
  get gcRun(): string {
    return this.#gcRun;
  }

  /**
   * Marks the handle as the one whose agent holds the mode (or stops).
   * @param nonce The agent's lease nonce, or `undefined`.
   */
  setNonce(nonce: string | undefined): void {
    this.#nonce = nonce;
    this.#checkedAt = -Infinity;
  }

  /** Whether this handle's own maintenance agent runs. @returns `true` while it does. */
  get ownAgentRuns(): boolean {
    return this.#nonce !== undefined;
  }

  /** The epoch's run id; a damaged epoch is the catch-up's to report (the run records decide). */
  async #readGcRun(): Promise<string> {
    try {
      return (await readGcEpoch(this.#driver))?.runId ?? "";
    } catch (e) {
      if (e instanceof CorruptObjectError && !(e instanceof UnsupportedFormatVersionError)) {
        return "~";
      }
      throw e;
    }
  }

  /**
   * Throws when the operation must not run now.
   * @param kind A read, a put or delete, or a commit (a pack or snapshot write).
   * @throws {StoreMovedError} before a commit to a store that was moved away.
   * @throws {MaintenanceModeError} while a live agent holds the store.
   */
  async check(kind: GateKind): Promise<void> {
    if (this.#nonce !== undefined) {
      // This handle's own agent runs: it reads the index as it is, and writes only
      // through the driver. A put here would land in an index about to be replaced.
      if (kind === "read") return;
      throw new MaintenanceModeError("offline", "this handle's own maintenance agent");
    }
    const now = this.#clock();
    if (kind === "commit") {
      // Both read before every pack write, at once: they sit on the commit's critical path.
      // A store moved away while this handle was open must not take writes the move left behind.
      const [moved, mode, run] = await Promise.all([
        readMovedTo(this.#driver),
        readMaintenanceMode(this.#driver),
        this.#readGcRun(),
      ]);
      if (moved !== undefined) throw new StoreMovedError(moved);
      this.#seen = mode;
      if (run > this.#gcRun) this.#gcRun = run;
      this.#checkedAt = now;
    } else if (now - this.#checkedAt >= 1000) {
      const [mode, run] = await Promise.all([
        readMaintenanceMode(this.#driver),
        kind === "write" ? this.#readGcRun() : Promise.resolve(""),
      ]);
      this.#seen = mode;
      if (run > this.#gcRun) this.#gcRun = run;
      this.#checkedAt = now;
    }
    const m = this.#seen;
    if (!m) return;
    if (kind === "read" && m.mode === "read-only") return;
    const lease = await readLease(this.#driver);
    const live = lease !== null && lease !== "invalid" && lease.nonce === m.nonce &&
      lease.expiresAt > this.#clock() && leaseHolderMayBeAlive(lease);
    if (!live) {
      this.#seen = undefined;
      return;
    }
    throw new MaintenanceModeError(m.mode, m.holder, lease.expiresAt);
  }
}
