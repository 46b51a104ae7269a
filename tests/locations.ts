/**
 * Locations for tests that must run the same bodies on every kind of
 * Location: a memory map, a local directory, an S3 bucket (see
 * `tests/s3_scenarios_test.ts`). A test gets a fresh, empty Location, opens
 * as many driver handles on it as it likes ("processes"), and manipulates
 * objects behind the store's back through `raw`.
 */

import type { Driver } from "../drivers/driver.ts";
import { openLocalFs } from "../drivers/localfs/mod.ts";
import { MemoryDriver } from "../drivers/memory.ts";

/** One fresh Location under test. */
export interface TestLocation {
  /** Opens another driver handle on the Location (closed by `dispose`). */
  open(): Promise<Driver>;
  /** A handle for manipulating objects behind the store's back. */
  raw: Driver;
  /** Every object, for byte-for-byte comparisons. */
  dump(): Promise<Map<string, Uint8Array>>;
  /** Flips one byte of an object (offset counted from its end when negative). */
  flip(key: string, offset: number): Promise<void>;
  /** Closes every handle and removes the Location. */
  dispose(): Promise<void>;
}

/** A kind of Location. */
export interface LocationKind {
  /** Its name in test titles. */
  name: string;
  /** Makes a fresh, empty Location. */
  create(): Promise<TestLocation>;
}

/**
 * Builds a TestLocation from a function that opens driver handles.
 * @param openDriver Opens a new handle.
 * @param remove Removes the Location's data after the handles are closed.
 * @returns The Location.
 */
export async function testLocation(
  openDriver: () => Promise<Driver>,
  remove: () => Promise<void>,
): Promise<TestLocation> {
  const handles: Driver[] = [];
  const open = async () => {
    const d = await openDriver();
    handles.push(d);
    return d;
  };
  const raw = await open();
  return {
    open,
    raw,
    async dump() {
      const out = new Map<string, Uint8Array>();
      for await (const { key } of raw.list("")) out.set(key, await raw.get(key));
      return out;
    },
    async flip(key, offset) {
      const bytes = await raw.get(key);
      const at = offset < 0 ? bytes.length + offset : offset;
      bytes[at]! ^= 0xff;
      await raw.put(key, bytes);
    },
    async dispose() {
      for (const d of handles) await d.close().catch(() => {});
      await remove();
    },
  };
}

/** A Location in memory: handles share one map. */
export const memoryLocations: LocationKind = {
  name: "memory",
  create() {
    const objects = new Map<string, Uint8Array>();
    return testLocation(
      () => Promise.resolve(new MemoryDriver({ objects })),
      () => Promise.resolve(),
    );
  },
};

/** A Location in a temporary directory (durable mode off: tests need no fsync). */
export const localfsLocations: LocationKind = {
  name: "localfs",
  async create() {
    const dir = await Deno.makeTempDir({ prefix: "capsa-loc-" });
    return testLocation(
      () => openLocalFs(dir, { create: true, durable: false }),
      () => Deno.remove(dir, { recursive: true }),
    );
  },
};
