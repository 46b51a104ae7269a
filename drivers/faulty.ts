/**
 * A fault-injecting wrapper for tests: wraps any {@linkcode Driver} and makes
 * chosen calls fail, slow down or tear, and counts every call per method.
 *
 * Faults are rules checked in order on every call; the first rule that
 * matches the call (by method, key and position) fires. Keys are checked
 * first, like every driver does: a refused key never reaches a rule. With no rules the
 * wrapper is transparent and passes the conformance suite.
 *
 * The crash sweep (`tests/crash_sweep_test.ts`) is built on it: count the writes an operation
 * makes, then for every k rerun it with `{ methods: WRITE_METHODS, nth: k,
 * crash: true }` — the k-th write fails and every later call fails too, as if
 * the process had died — then reopen the store on the inner driver and check
 * that the operation is all-or-nothing.
 *
 * @example Fail the third write, then behave as a dead process
 * ```ts
 * import assert from "node:assert/strict";
 * import { FaultyDriver, WRITE_METHODS } from "@capsa/capsa/drivers/faulty";
 * import { MemoryDriver } from "@capsa/capsa";
 *
 * const inner = new MemoryDriver();
 * const faulty = new FaultyDriver(inner);
 * faulty.inject({ methods: WRITE_METHODS, nth: 3, crash: true });
 * await faulty.put("a", new Uint8Array([1]));
 * await faulty.put("b", new Uint8Array([2]));
 * await faulty.put("c", new Uint8Array([3])).catch((e) => console.log(e.message));
 * assert.deepEqual([faulty.calls.put, inner.objects.has("c")], [3, false]);
 * ```
 *
 * @module
 */

import {
  type Driver,
  type DriverCapabilities,
  type ListOptions,
  type ObjectInfo,
  type PutOptions,
  TransientError,
  validateKey,
  validateListArgs,
} from "./driver.ts";

/** The methods of {@linkcode Driver} that a fault can target. */
export type DriverMethod = "get" | "getRange" | "put" | "delete" | "stat" | "list";

/** Every method. */
export const ALL_METHODS: readonly DriverMethod[] = [
  "get",
  "getRange",
  "put",
  "delete",
  "stat",
  "list",
];
/** The methods that change the Location. */
export const WRITE_METHODS: readonly DriverMethod[] = ["put", "delete"];
/** The methods that only read. */
export const READ_METHODS: readonly DriverMethod[] = ["get", "getRange", "stat", "list"];

/**
 * How a failing `put` fails:
 * - `"before"` (default): nothing reaches the inner driver, the caller gets the error.
 * - `"after"`: the inner put completes, then the caller gets the error (a lost
 *   acknowledgement: the write happened but the writer cannot know).
 * - `"torn"`: the write fails part way through. Against an atomic medium
 *   nothing becomes visible, so this behaves as `"before"`; it exists as a
 *   separate name so tests state what they model.
 * - `"partial"`: models a non-atomic medium: the first `tornBytes` bytes are
 *   stored as the object, then the caller gets the error.
 */
export type FailMode = "before" | "after" | "torn" | "partial";

/** One fault rule. Every field narrows which calls it matches. */
export interface Fault {
  /** The methods it applies to (default: all). */
  methods?: readonly DriverMethod[];
  /** The keys it applies to: exact key, pattern or predicate (default: all). */
  key?: string | RegExp | ((key: string) => boolean);
  /** Fire on the n-th matching call only (1-based), counted from injection. */
  nth?: number;
  /** Fire on each matching call with this probability, from a seeded generator. */
  rate?: number;
  /** How many times at most it fires (default: 1 with `nth`, unlimited otherwise). */
  times?: number;
  /** Latency added to matching calls, in ms (does not fail them unless `error` or `nth`/`rate` say so). */
  latencyMs?: number;
  /** Only add latency, never fail (default `false`). */
  latencyOnly?: boolean;
  /** The error to throw (default: a {@linkcode TransientError} naming the call). */
  error?: (method: DriverMethod, key: string) => Error;
  /** How a failing `put` fails (default `"before"`). */
  mode?: FailMode;
  /** Bytes stored before a `"partial"` put fails (default: half the body). */
  tornBytes?: number;
  /** Once fired, every later call of any method fails too: a dead process. */
  crash?: boolean;
  /** For `list`: fail after yielding this many entries instead of before the first. */
  afterEntries?: number;
}

/** Options of {@linkcode FaultyDriver}. */
export interface FaultyDriverOptions {
  /** The seed of the generator behind `rate` faults (default 1). */
  seed?: number;
  /** Rules to start with. */
  faults?: Fault[];
}

interface ActiveFault {
  rule: Fault;
  seen: number;
  fired: number;
}

/**
 * A {@linkcode Driver} that wraps another and injects faults.
 *
 * @example Latency on every read of packs
 * ```ts
 * import { FaultyDriver } from "@capsa/capsa/drivers/faulty";
 * import { MemoryDriver } from "@capsa/capsa";
 * const slow = new FaultyDriver(new MemoryDriver(), {
 *   faults: [{ methods: ["get", "getRange"], key: /^packs\//, latencyMs: 20, latencyOnly: true }],
 * });
 * ```
 */
export class FaultyDriver implements Driver {
  /** `"faulty(<inner kind>)"`. */
  readonly kind: string;
  /** The inner driver's capabilities. */
  readonly capabilities: DriverCapabilities;
  /** The inner driver's Location. */
  readonly location: string;
  /** The wrapped driver. */
  readonly inner: Driver;
  /** Calls made so far, per method (failed ones included). */
  readonly calls: Record<DriverMethod, number> = {
    get: 0,
    getRange: 0,
    put: 0,
    delete: 0,
    stat: 0,
    list: 0,
  };
  /** Faults that fired so far, with the call each hit. */
  readonly fired: Array<{ method: DriverMethod; key: string }> = [];
  #faults: ActiveFault[] = [];
  #dead = false;
  #state: number;

  /**
   * Wraps `inner`.
   * @param inner The driver to wrap.
   * @param options Seed and initial faults.
   */
  constructor(inner: Driver, options: FaultyDriverOptions = {}) {
    this.inner = inner;
    this.kind = `faulty(${inner.kind})`;
    this.capabilities = inner.capabilities;
    this.location = inner.location;
    this.#state = (options.seed ?? 1) >>> 0 || 1;
    for (const f of options.faults ?? []) this.inject(f);
  }

  /**
   * Adds a fault rule after the existing ones.
   * @param fault The rule.
   * @returns A function that removes it.
   */
  inject(fault: Fault): () => void {
    const active = { rule: fault, seen: 0, fired: 0 };
    this.#faults.push(active);
    return () => {
      this.#faults = this.#faults.filter((f) => f !== active);
    };
  }

  /** Removes every rule and revives a crashed driver; counters are kept. */
  clear(): void {
    this.#faults = [];
    this.#dead = false;
  }

  /** Resets the call counters and the record of fired faults. */
  resetCounts(): void {
    for (const m of ALL_METHODS) this.calls[m] = 0;
    this.fired.length = 0;
  }

  /** Writes made so far (`put` + `delete`). */
  get writes(): number {
    return this.calls.put + this.calls.delete;
  }

  /** Whether a `crash` fault has fired. */
  get crashed(): boolean {
    return this.#dead;
  }

  #random(): number {
    // xorshift32: small, seeded, reproducible.
    let x = this.#state;
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    this.#state = x;
    return x / 0x1_0000_0000;
  }

  static #keyMatches(rule: Fault, key: string): boolean {
    const k = rule.key;
    if (k === undefined) return true;
    if (typeof k === "string") return k === key;
    if (k instanceof RegExp) return k.test(key);
    return k(key);
  }

  async #check(method: DriverMethod, key: string): Promise<ActiveFault | undefined> {
    this.calls[method]++;
    if (this.#dead) {
      throw new TransientError(`injected fault: driver crashed before ${method}("${key}")`);
    }
    for (const f of this.#faults) {
      const r = f.rule;
      if (r.methods !== undefined && !r.methods.includes(method)) continue;
      if (!FaultyDriver.#keyMatches(r, key)) continue;
      f.seen++;
      if (r.latencyMs !== undefined && r.latencyMs > 0) {
        await new Promise((res) => setTimeout(res, r.latencyMs));
      }
      if (r.latencyOnly) continue;
      const limit = r.times ?? (r.nth !== undefined ? 1 : Infinity);
      if (f.fired >= limit) continue;
      let fire: boolean;
      if (r.nth !== undefined) fire = f.seen >= r.nth;
      else if (r.rate !== undefined) fire = this.#random() < r.rate;
      else fire = true;
      if (!fire) continue;
      f.fired++;
      this.fired.push({ method, key });
      return f;
    }
    return undefined;
  }

  #fail(f: ActiveFault, method: DriverMethod, key: string): never {
    if (f.rule.crash) this.#dead = true;
    throw f.rule.error?.(method, key) ??
      new TransientError(`injected fault: ${method}("${key}") failed`);
  }

  /** Reads through, unless a fault fires. @param key The key. @returns The bytes. */
  async get(key: string): Promise<Uint8Array> {
    validateKey(key);
    const f = await this.#check("get", key);
    if (f) this.#fail(f, "get", key);
    return this.inner.get(key);
  }

  /**
   * Reads a range through, unless a fault fires.
   * @param key The key. @param offset The start. @param length The length.
   * @returns The bytes.
   */
  async getRange(key: string, offset: number, length: number): Promise<Uint8Array> {
    validateKey(key);
    const f = await this.#check("getRange", key);
    if (f) this.#fail(f, "getRange", key);
    return this.inner.getRange(key, offset, length);
  }

  /**
   * Writes through, unless a fault fires (see {@linkcode FailMode}).
   * @param key The key. @param bytes The body. @param options `ifAbsent`.
   */
  async put(key: string, bytes: Uint8Array, options: PutOptions = {}): Promise<void> {
    validateKey(key);
    const f = await this.#check("put", key);
    if (!f) return this.inner.put(key, bytes, options);
    const mode = f.rule.mode ?? "before";
    if (mode === "after") await this.inner.put(key, bytes, options);
    if (mode === "partial") {
      const n = Math.min(bytes.length, f.rule.tornBytes ?? Math.floor(bytes.length / 2));
      await this.inner.put(key, bytes.subarray(0, n), options);
    }
    this.#fail(f, "put", key);
  }

  /** Deletes through, unless a fault fires. @param key The key. */
  async delete(key: string): Promise<void> {
    validateKey(key);
    const f = await this.#check("delete", key);
    if (!f) return this.inner.delete(key);
    if (f.rule.mode === "after") await this.inner.delete(key);
    this.#fail(f, "delete", key);
  }

  /** Stats through, unless a fault fires. @param key The key. @returns The info. */
  async stat(key: string): Promise<ObjectInfo> {
    validateKey(key);
    const f = await this.#check("stat", key);
    if (f) this.#fail(f, "stat", key);
    return this.inner.stat(key);
  }

  /**
   * Lists through; a fault matched on the prefix fires before the first
   * entry, or after `afterEntries` entries (a listing cut short).
   * @param prefix The prefix. @param options `startAfter`.
   * @returns The entries.
   */
  async *list(prefix: string, options: ListOptions = {}): AsyncIterable<ObjectInfo> {
    validateListArgs(prefix, options);
    const f = await this.#check("list", prefix);
    const cut = f?.rule.afterEntries;
    if (f && cut === undefined) this.#fail(f, "list", prefix);
    let n = 0;
    for await (const info of this.inner.list(prefix, options)) {
      if (f && n === cut) this.#fail(f, "list", prefix);
      if (this.#dead) {
        throw new TransientError(`injected fault: driver crashed during list("${prefix}")`);
      }
      yield info;
      n++;
    }
    if (f && n === cut) this.#fail(f, "list", prefix);
  }

  /** Closes the inner driver. */
  close(): Promise<void> {
    return this.inner.close();
  }
}
