/**
 * The maintenance lease: the exclusive right to run maintenance on a store,
 * held in the Location at `system.state/maintenance/lease` with a TTL.
 *
 * ## Protocol
 *
 * - **Acquire**: a create-only put of the lease. Exactly one of racing
 *   acquirers wins where the driver's create-only put is race-free.
 * - **Takeover** of a lease past its expiry, of one left by a dead process on
 *   this host, or of any lease with `force`: the taker first wins a
 *   create-only put of `system.state/maintenance/takeover/<generation+1>`
 *   (the generation is in the lease), then overwrites the lease. Two takers of
 *   one stale lease race on that marker, so exactly one wins.
 * - **Renew** at a third of the TTL at most: re-read the lease, check its
 *   nonce is still ours, write it back with a new expiry. A lease found
 *   changed, or not renewed before it expires, is lost: the holder must stop
 *   before its next write ({@linkcode LeaseLostError}).
 * - **Release**: delete the lease if it is still ours.
 *
 * Where create-only puts are not race-free (`capabilities.createOnly` false,
 * e.g. an S3 server without `If-None-Match`), acquisition writes the lease,
 * waits {@linkcode LeaseOptions.settleMs} and reads it back: the last writer
 * wins and every other contender sees a foreign nonce and backs off. The
 * holder also re-checks its nonce before every commit point
 * ({@linkcode Lease.check}).
 *
 * @example
 * ```ts
 * import { acquireLease } from "@capsa/capsa";
 * import { MemoryDriver } from "@capsa/capsa";
 *
 * const driver = new MemoryDriver();
 * const lease = await acquireLease(driver, { storeId: "s1", agent: "RebuildIndex", ttlMs: 60_000 });
 * await lease.check(); // before a commit point
 * await lease.release();
 * ```
 *
 * @module
 */

import process from "node:process";
import { type Driver, NotFoundError, PreconditionFailedError } from "../drivers/driver.ts";
import { CapsaError } from "../errors.ts";
import type { EventBus } from "./events.ts";

import { LEASE_KEY, TAKEOVER_PREFIX } from "../layout.ts";

/** What the lease object records. */
export interface LeaseRecord {
  /** Always `"capsa-lease"`. */
  format: "capsa-lease";
  /** Encoding version (1). */
  version: 1;
  /** The store it belongs to. */
  storeId: string;
  /** The agent holding it. */
  agent: string;
  /** The host name of the holder. */
  host: string;
  /** The process id of the holder. */
  pid: number;
  /** The holder's process start time (to tell a reused pid), when known. */
  processStart: string | null;
  /** A random value only the holder knows. */
  nonce: string;
  /** Takeovers so far; the next taker must win marker `generation + 1`. */
  generation: number;
  /** When it was acquired (ms). */
  acquiredAt: number;
  /** When it expires unless renewed (ms). */
  expiresAt: number;
  /** Its TTL (ms). */
  ttlMs: number;
}

/**
 * Another holder has the lease.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MemoryDriver } from "@capsa/capsa";
 * import { acquireLease, LeaseHeldError } from "@capsa/capsa";
 *
 * const driver = new MemoryDriver();
 * const first = await acquireLease(driver, { storeId: "s", agent: "RebuildIndex" });
 * await assert.rejects(
 *   acquireLease(driver, { storeId: "s", agent: "VerifyStore" }),
 *   (e) => e instanceof LeaseHeldError && e.holder.includes("RebuildIndex"),
 * );
 * await first.release();
 * ```
 */
export class LeaseHeldError extends CapsaError {
  /** Who holds it, as `agent on host (pid N)`. */
  readonly holder: string;
  /** When it expires (ms), or 0 when unknown. */
  readonly expiresAt: number;
  /**
   * Creates the error.
   * @param holder Who holds it.
   * @param expiresAt When it expires.
   * @param next What to do (default: wait, or `--force` if the holder is gone).
   */
  constructor(
    holder: string,
    expiresAt: number,
    next = "wait for it to finish, or use --force if that holder is gone",
  ) {
    const when = expiresAt > 0 ? new Date(expiresAt).toISOString() : "an unknown time";
    super("lease_held", `maintenance lease held by ${holder} until ${when}: ${next}`);
    this.holder = holder;
    this.expiresAt = expiresAt;
  }
}

/**
 * The lease was lost (taken over, or not renewed in time); the holder must
 * stop before its next write.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { LeaseLostError } from "@capsa/capsa";
 * const e = new LeaseLostError("taken over by RebuildIndex on host-b (pid 7)");
 * assert.deepEqual(e.code, "lease_lost");
 * ```
 */
export class LeaseLostError extends CapsaError {
  /**
   * Creates the error.
   * @param why What happened.
   */
  constructor(why: string) {
    super("lease_lost", `maintenance lease lost: ${why}; nothing more was written`);
  }
}

/** Options of {@linkcode acquireLease}. */
export interface LeaseOptions {
  /** The store. */
  storeId: string;
  /** The agent's kind. */
  agent: string;
  /** Time to live in ms (default 30 min). */
  ttlMs?: number;
  /** Break a live lease (loudly: a warning event). */
  force?: boolean;
  /** The clock (default `Date.now`). */
  clock?: () => number;
  /** Published to on a forced break or takeover. */
  bus?: EventBus;
  /** This host's name (default `Deno.hostname()`). */
  host?: string;
  /** This process's id (default `Deno.pid`). */
  pid?: number;
  /** Whether a process of this host is alive (default: `/proc` on Linux, else assume alive). */
  isAlive?: (pid: number, processStart: string | null) => boolean;
  /** Wait before reading back a lease written without race-free create-only (default 250 ms). */
  settleMs?: number;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

function defaultHost(): string {
  try {
    return Deno.hostname();
  } catch {
    return "unknown-host";
  }
}

/**
 * The start time of a process of this host, from `/proc/<pid>/stat` (field
 * 22), or `null` when it cannot be read.
 * @param pid The process id.
 * @returns The start time in clock ticks since boot, as text.
 */
export function processStartOf(pid: number): string | null {
  const start = procStart(pid);
  return typeof start === "string" ? start : null;
}

/** `/proc` start time; `null` when the process does not exist; `undefined` when `/proc` cannot be read. */
function procStart(pid: number): string | null | undefined {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return fields[19] ?? undefined;
  } catch (e) {
    return e instanceof Deno.errors.NotFound ? null : undefined;
  }
}

/**
 * Whether the holder of a lease may still be running: `false` only when it
 * ran on this host and its process is gone (or its pid was reused). A holder
 * on another host is assumed alive until its lease expires.
 * @param record The lease.
 * @param host This host's name (default `Deno.hostname()`).
 * @returns `false` when the holder is known dead.
 */
export function leaseHolderMayBeAlive(record: LeaseRecord, host: string = defaultHost()): boolean {
  return record.host !== host || defaultIsAlive(record.pid, record.processStart);
}

/**
 * Whether a process of this host is alive. Deno 2.9 lets a program read
 * `/proc` only with `--allow-all`; there, a reused pid is told apart by its
 * start time. Otherwise `kill(pid, 0)` is used where `--allow-run` is
 * granted. Without either, capsa cannot tell and assumes the holder alive:
 * its lease is then taken over only once it expires, or with `force`.
 */
function defaultIsAlive(pid: number, processStart: string | null): boolean {
  const start = procStart(pid);
  if (start !== undefined) {
    return start !== null && (processStart === null || start === processStart);
  }
  let canSignal = false;
  try {
    canSignal = Deno.permissions.querySync({ name: "run" }).state === "granted";
  } catch {
    canSignal = false;
  }
  if (!canSignal) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as { code?: string }).code !== "ESRCH";
  }
}

/**
 * Decodes a lease object.
 * @param bytes Its bytes.
 * @returns The record, or `undefined` when it is not a valid lease.
 */
export function decodeLease(bytes: Uint8Array): LeaseRecord | undefined {
  if (bytes.length > 16 * 1024) return undefined;
  try {
    const v = JSON.parse(dec.decode(bytes));
    if (
      v?.format !== "capsa-lease" || v.version !== 1 || typeof v.storeId !== "string" ||
      typeof v.agent !== "string" || typeof v.host !== "string" || !Number.isSafeInteger(v.pid) ||
      typeof v.nonce !== "string" || !Number.isSafeInteger(v.generation) ||
      !Number.isSafeInteger(v.expiresAt) || !Number.isSafeInteger(v.acquiredAt) ||
      !Number.isSafeInteger(v.ttlMs)
    ) return undefined;
    return { ...v, processStart: typeof v.processStart === "string" ? v.processStart : null };
  } catch {
    return undefined;
  }
}

function describe(r: LeaseRecord): string {
  return `${r.agent} on ${r.host} (pid ${r.pid})`;
}

/**
 * Reads the current lease, if any.
 * @param driver The Location.
 * @returns The record, `null` when there is none, or `"invalid"` when unreadable as a lease.
 */
export async function readLease(driver: Driver): Promise<LeaseRecord | null | "invalid"> {
  try {
    return decodeLease(await driver.get(LEASE_KEY)) ?? "invalid";
  } catch (e) {
    if (e instanceof NotFoundError) return null;
    throw e;
  }
}

/**
 * A held lease. Renew it while working ({@linkcode Lease.startRenewing}),
 * check it before each commit point, release it at the end.
 */
export class Lease {
  #driver: Driver;
  #record: LeaseRecord;
  #clock: () => number;
  #lost: LeaseLostError | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #renewing: Promise<void> | undefined;
  #onLost: Array<(e: LeaseLostError) => void> = [];

  /**
   * Wraps a lease just acquired (use {@linkcode acquireLease}).
   * @param driver The Location.
   * @param record The lease as written.
   * @param clock The clock.
   */
  constructor(driver: Driver, record: LeaseRecord, clock: () => number) {
    this.#driver = driver;
    this.#record = record;
    this.#clock = clock;
  }

  /** The lease as last written. @returns A copy of the record. */
  get record(): LeaseRecord {
    return { ...this.#record };
  }

  /** Who holds it, for messages. @returns `agent on host (pid N)`. */
  get holder(): string {
    return describe(this.#record);
  }

  /** The loss, once detected. @returns The error, or `undefined`. */
  get lost(): LeaseLostError | undefined {
    return this.#lost;
  }

  /**
   * Confirms the lease is still ours and unexpired: re-reads it from the
   * Location. Call before every commit point.
   * @throws {LeaseLostError} when it is not.
   */
  async check(): Promise<void> {
    if (this.#lost) throw this.#lost;
    const now = this.#clock();
    if (now >= this.#record.expiresAt) this.#lose("it expired before it was renewed");
    let current: LeaseRecord | null | "invalid";
    try {
      current = await readLease(this.#driver);
    } catch (e) {
      // Unknown is not "still ours": a lease we cannot read cannot be trusted.
      this.#lose(`it could not be read back (${(e as Error).message})`);
    }
    if (current === null) this.#lose("it was deleted");
    if (current === "invalid") this.#lose("it was overwritten with something unreadable");
    if (current.nonce !== this.#record.nonce) this.#lose(`taken over by ${describe(current)}`);
  }

  #lose(why: string): never {
    if (!this.#lost) {
      this.#lost = new LeaseLostError(why);
      for (const fn of this.#onLost) fn(this.#lost);
    }
    throw this.#lost;
  }

  /**
   * Calls `fn` once, as soon as the loss of the lease is detected (by a
   * renewal or a check).
   * @param fn The callback.
   */
  onLost(fn: (e: LeaseLostError) => void): void {
    if (this.#lost) fn(this.#lost);
    else this.#onLost.push(fn);
  }

  /**
   * Extends the expiry by a TTL from now, after checking the lease is ours.
   * @throws {LeaseLostError} when it is not.
   */
  async renew(): Promise<void> {
    await this.check();
    const next = { ...this.#record, expiresAt: this.#clock() + this.#record.ttlMs };
    await this.#driver.put(LEASE_KEY, enc.encode(JSON.stringify(next)));
    this.#record = next;
  }

  /**
   * Renews in the background every `ttl / 3` (or `everyMs`, never more than
   * that). A failed renewal is retried at the next tick; once the lease is
   * lost, {@linkcode Lease.lost} is set and {@linkcode Lease.check} throws.
   * @param everyMs The interval (capped at a third of the TTL).
   */
  startRenewing(everyMs?: number): void {
    if (this.#timer !== undefined) return;
    const cap = Math.max(10, Math.floor(this.#record.ttlMs / 3));
    const interval = Math.min(everyMs ?? cap, cap);
    this.#timer = setInterval(() => {
      if (this.#renewing || this.#lost) return;
      this.#renewing = this.renew().catch(() => {
        // A lost lease is recorded by check(); a transient failure is retried next tick,
        // and check() notices the expiry if renewals keep failing.
      }).finally(() => {
        this.#renewing = undefined;
      });
    }, interval);
  }

  /** Stops background renewal and waits for one in flight. */
  async stopRenewing(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#renewing;
  }

  /**
   * Stops renewing and deletes the lease if it is still ours. Never throws
   * for a lease already lost.
   */
  async release(): Promise<void> {
    await this.stopRenewing();
    if (this.#lost) return;
    const current = await readLease(this.#driver).catch(() => "invalid" as const);
    if (current !== null && current !== "invalid" && current.nonce === this.#record.nonce) {
      await this.#driver.delete(LEASE_KEY);
    }
  }
}

function randomNonce(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/**
 * Takes the maintenance lease of a store.
 *
 * @param driver The store's Location.
 * @param options Who takes it, for how long, and whether to force.
 * @returns The held lease.
 * @throws {LeaseHeldError} when another holder has a live lease (and `force` is not set).
 *
 * @example
 * ```ts
 * import { acquireLease, LeaseHeldError } from "@capsa/capsa";
 * import { MemoryDriver } from "@capsa/capsa";
 * const d = new MemoryDriver();
 * const a = await acquireLease(d, { storeId: "s", agent: "Verify" });
 * await acquireLease(d, { storeId: "s", agent: "Verify" }).catch((e) => console.log(e instanceof LeaseHeldError));
 * await a.release();
 * ```
 */
export async function acquireLease(driver: Driver, options: LeaseOptions): Promise<Lease> {
  const clock = options.clock ?? Date.now;
  const ttlMs = options.ttlMs ?? 30 * 60_000;
  const host = options.host ?? defaultHost();
  const pid = options.pid ?? Deno.pid;
  const isAlive = options.isAlive ?? defaultIsAlive;
  const make = (generation: number): LeaseRecord => {
    const now = clock();
    return {
      format: "capsa-lease",
      version: 1,
      storeId: options.storeId,
      agent: options.agent,
      host,
      pid,
      processStart: processStartOf(pid),
      nonce: randomNonce(),
      generation,
      acquiredAt: now,
      expiresAt: now + ttlMs,
      ttlMs,
    };
  };

  // A fresh lease continues the generations of the takeover markers still present (a finished
  // takeover leaves its marker): the next taker then needs a marker nobody holds.
  const record = make(await highestMarker(driver));
  try {
    await driver.put(LEASE_KEY, enc.encode(JSON.stringify(record)), { ifAbsent: true });
    return await confirm(driver, record, clock, options);
  } catch (e) {
    if (!(e instanceof PreconditionFailedError)) throw e;
  }

  // Someone holds it, or held it: see whether it may be taken over.
  const existing = await readLease(driver);
  if (existing === null) {
    // Released between our put and our read: try once more from the top.
    return acquireLease(driver, options);
  }
  const now = clock();
  let why: string | undefined;
  let generation = 0;
  let holder = "an unreadable lease";
  let expiresAt = 0;
  if (existing === "invalid") {
    if (!options.force) {
      // Nothing in it says when it expires or whose it is: waiting never ends it.
      throw new LeaseHeldError(
        `an unreadable lease (${LEASE_KEY} is damaged)`,
        0,
        "a damaged lease never expires: check that no maintenance agent runs, then use --force to break it",
      );
    }
    why = "forced over an unreadable lease";
  } else {
    generation = existing.generation;
    holder = describe(existing);
    expiresAt = existing.expiresAt;
    if (existing.storeId !== options.storeId && !options.force) {
      throw new LeaseHeldError(`${holder} for another store (${existing.storeId})`, expiresAt);
    }
    if (now >= existing.expiresAt) why = `expired ${now - existing.expiresAt} ms ago`;
    else if (existing.host === host && !isAlive(existing.pid, existing.processStart)) {
      why = `its process ${existing.pid} on this host is gone`;
    } else if (options.force) why = "forced";
  }
  if (why === undefined) throw new LeaseHeldError(holder, expiresAt);

  const won = await winTakeoverMarker(driver, generation, {
    host,
    pid,
    now,
    holder,
    clock,
    force: options.force ?? false,
  });
  const taken = make(won);
  await driver.put(LEASE_KEY, enc.encode(JSON.stringify(taken)));
  options.bus?.publish({
    type: "warning",
    at: now,
    storeId: options.storeId,
    code: options.force ? "lease_broken" : "lease_taken_over",
    message: `maintenance lease of ${holder} taken over by ${describe(taken)}: ${why}`,
  });
  // Older markers are not needed once a newer generation holds the lease.
  for (let g = won - 1; g > 0 && g >= won - 10; g--) {
    await driver.delete(markerKey(g)).catch(() => {});
  }
  return await confirm(driver, taken, clock, options);
}

/** How old a takeover marker must be before a later taker may skip it (its taker died). */
export const STALE_MARKER_MS = 60_000;

function markerKey(generation: number): string {
  return `${TAKEOVER_PREFIX}${String(generation).padStart(10, "0")}`;
}

/** The highest generation among the takeover markers present (0 when there is none). */
async function highestMarker(driver: Driver): Promise<number> {
  let highest = 0;
  for await (const { key } of driver.list(TAKEOVER_PREFIX)) {
    const g = Number(key.slice(TAKEOVER_PREFIX.length));
    if (Number.isSafeInteger(g) && g > highest) highest = g;
  }
  return highest;
}

/**
 * Wins the create-only marker of the next generation. A marker left by a
 * taker that died before writing the lease is skipped once it is older than
 * {@linkcode STALE_MARKER_MS} (or at once with `force`); a fresh one means
 * another taker is at work.
 */
async function winTakeoverMarker(
  driver: Driver,
  generation: number,
  who: {
    host: string;
    pid: number;
    now: number;
    holder: string;
    clock: () => number;
    force: boolean;
  },
): Promise<number> {
  for (let g = generation + 1; g <= generation + 10; g++) {
    const body = enc.encode(JSON.stringify({ host: who.host, pid: who.pid, at: who.now }));
    try {
      await driver.put(markerKey(g), body, { ifAbsent: true });
      return g;
    } catch (e) {
      if (!(e instanceof PreconditionFailedError)) throw e;
    }
    let at = Number.NaN;
    try {
      // `?.`: a damaged marker may hold any JSON (`null`, a number…).
      at = Number(JSON.parse(dec.decode(await driver.get(markerKey(g))))?.at);
    } catch (e) {
      if (!(e instanceof NotFoundError) && !(e instanceof SyntaxError)) throw e;
    }
    if (!who.force && Number.isNaN(at)) {
      throw new LeaseHeldError(
        `an unreadable takeover marker (${markerKey(g)} is damaged)`,
        0,
        "a damaged marker never goes stale: check that no maintenance agent runs, then use --force to break it",
      );
    }
    if (!who.force && !(who.clock() - at >= STALE_MARKER_MS)) {
      throw new LeaseHeldError(`another process taking over from ${who.holder}`, 0);
    }
  }
  throw new LeaseHeldError(`${who.holder} (too many abandoned takeovers; use --force)`, 0);
}

async function confirm(
  driver: Driver,
  record: LeaseRecord,
  clock: () => number,
  options: LeaseOptions,
): Promise<Lease> {
  if (!driver.capabilities.createOnly) {
    // Without race-free create-only puts, the last writer wins: wait, then see who that was.
    await new Promise((r) => setTimeout(r, options.settleMs ?? 250));
    const back = await readLease(driver);
    if (back === null || back === "invalid" || back.nonce !== record.nonce) {
      const who = back !== null && back !== "invalid" ? describe(back) : "another process";
      throw new LeaseHeldError(who, back !== null && back !== "invalid" ? back.expiresAt : 0);
    }
  }
  return new Lease(driver, record, clock);
}
