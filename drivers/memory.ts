/**
 * The `memory` driver: a Location held in a `Map`, for tests and demos.
 *
 * The map and the clock can be owned by the caller, so a test can inspect or
 * corrupt objects directly and move time forward without sleeping. Two
 * drivers given the same map see one Location, like two processes sharing a
 * directory.
 *
 * @example A test that owns the map and the clock
 * ```ts
 * import { MemoryDriver } from "@capsa/capsa";
 *
 * const objects = new Map<string, Uint8Array>();
 * let now = 1_700_000_000_000;
 * const driver = new MemoryDriver({ objects, clock: () => now });
 * await driver.put("a/b", new Uint8Array([1]));
 * objects.get("a/b")![0] = 9; // flip a byte behind the driver's back
 * now += 60_000; // a minute passes
 * ```
 *
 * @module
 */

import {
  ClosedError,
  compareKeys,
  type Driver,
  type DriverCapabilities,
  type ListOptions,
  NotFoundError,
  type ObjectInfo,
  PreconditionFailedError,
  type PutOptions,
  validateKey,
  validateListArgs,
  validateRange,
} from "./driver.ts";

/** When each stored copy was put, by the clock of the driver that put it (a shared map shares it). */
const WRITTEN_AT = new WeakMap<Uint8Array, number>();

/** Options of {@linkcode MemoryDriver}. */
export interface MemoryDriverOptions {
  /** The map holding the objects; share it between drivers to share a Location. */
  objects?: Map<string, Uint8Array>;
  /** The clock, in milliseconds since the epoch (default `Date.now`). */
  clock?: () => number;
  /** A name shown in {@linkcode Driver.location} (default `"memory:"`). */
  name?: string;
}

/**
 * A {@linkcode Driver} over an in-memory map. Puts copy their input and gets
 * return copies, so callers can never alias stored bytes by accident.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MemoryDriver } from "@capsa/capsa";
 * const d = new MemoryDriver();
 * await d.put("k", new TextEncoder().encode("hello"));
 * assert.deepEqual(new TextDecoder().decode(await d.get("k")), "hello");
 * ```
 */
export class MemoryDriver implements Driver {
  /** Always `"memory"`. */
  readonly kind = "memory";
  /** Create-only puts are exact; nothing survives the process. */
  readonly capabilities: DriverCapabilities = { createOnly: true, durable: false };
  /** The Location's printable name. */
  readonly location: string;
  /** The objects; owned by the caller when passed in. */
  readonly objects: Map<string, Uint8Array>;
  /** The clock this driver (and code that asks it) uses. */
  readonly clock: () => number;
  #closed = false;

  /**
   * Creates a driver over `options.objects` or a new map.
   * @param options The map, clock and name to use.
   */
  constructor(options: MemoryDriverOptions = {}) {
    this.objects = options.objects ?? new Map();
    this.clock = options.clock ?? Date.now;
    this.location = options.name ?? "memory:";
  }

  #open(): void {
    if (this.#closed) throw new ClosedError(`driver ${this.location}`);
  }

  #read(key: string): Uint8Array {
    this.#open();
    validateKey(key);
    const bytes = this.objects.get(key);
    if (bytes === undefined) throw new NotFoundError(key);
    return bytes;
  }

  /** Reads a whole object. @param key The key. @returns A copy of its bytes. */
  get(key: string): Promise<Uint8Array> {
    try {
      return Promise.resolve(this.#read(key).slice());
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * Reads a range, clipped at the end.
   * @param key The key. @param offset The start. @param length The length.
   * @returns A copy of the bytes in range.
   */
  getRange(key: string, offset: number, length: number): Promise<Uint8Array> {
    try {
      validateRange(offset, length);
      const bytes = this.#read(key);
      return Promise.resolve(bytes.slice(offset, Math.min(bytes.length, offset + length)));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * Stores a copy of `bytes`.
   * @param key The key. @param bytes The content. @param options `ifAbsent` for create-only.
   */
  put(key: string, bytes: Uint8Array, options: PutOptions = {}): Promise<void> {
    try {
      this.#open();
      validateKey(key);
      if (options.ifAbsent && this.objects.has(key)) throw new PreconditionFailedError(key);
      const copy = bytes.slice();
      WRITTEN_AT.set(copy, this.clock());
      this.objects.set(key, copy);
      return Promise.resolve();
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Removes an object; a missing key is fine. @param key The key. */
  delete(key: string): Promise<void> {
    try {
      this.#open();
      validateKey(key);
      this.objects.delete(key);
      return Promise.resolve();
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Reports an object's size. @param key The key. @returns Its info. */
  stat(key: string): Promise<ObjectInfo> {
    try {
      const bytes = this.#read(key);
      const modified = WRITTEN_AT.get(bytes);
      return Promise.resolve(
        modified === undefined
          ? { key, size: bytes.length }
          : { key, size: bytes.length, modified },
      );
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * Lists keys under `prefix` in order.
   * @param prefix The prefix. @param options `startAfter`.
   * @returns The objects, in key order.
   */
  async *list(prefix: string, options: ListOptions = {}): AsyncIterable<ObjectInfo> {
    this.#open();
    validateListArgs(prefix, options);
    const after = options.startAfter;
    const keys = [...this.objects.keys()]
      .filter((k) => k.startsWith(prefix) && (after === undefined || compareKeys(k, after) > 0))
      .sort(compareKeys);
    for (const key of keys) {
      this.#open();
      const bytes = this.objects.get(key);
      if (bytes !== undefined) yield { key, size: bytes.length };
    }
  }

  /** Marks the driver closed; the map is left to its owner. */
  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }
}
