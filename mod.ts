/**
 * capsa: a deduplicating, content-addressed object store for Deno.
 *
 * Data lives in a Location (a local directory, an S3 bucket, or memory)
 * behind a {@linkcode Driver}; a SQLite index answers every lookup and can be
 * rebuilt from the Location at any time.
 *
 * @example Open a Location and use its driver
 * ```ts
 * import { MemoryDriver } from "./mod.ts";
 *
 * const driver = new MemoryDriver();
 * await driver.put("hello", new TextEncoder().encode("world"));
 * await driver.close();
 * ```
 *
 * @module
 */

export * from "./core/errors.ts";
export {
  compareKeys,
  type Driver,
  type DriverCapabilities,
  type ListOptions,
  MAX_KEY_BYTES,
  type ObjectInfo,
  type PutOptions,
  validateKey,
  validateListArgs,
  validatePrefix,
  validateRange,
} from "./drivers/driver.ts";
export { MemoryDriver, type MemoryDriverOptions } from "./drivers/memory.ts";
