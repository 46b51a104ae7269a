/**
 * This host's directory for a store (its "host storage": the host cache of
 * the index, a descriptor replica, the manifest log): the same per-user
 * default the `capsa` CLI uses, so a library user and the CLI on one machine
 * share it.
 *
 * @example Opening a store with the default host directory
 * ```ts
 * import assert from "node:assert/strict";
 * import { initStore } from "@capsa/capsa";
 * import { openHostStorage, openLocalFs } from "@capsa/capsa/drivers/localfs";
 *
 * const dir = await Deno.makeTempDir();
 * Deno.env.set("XDG_CACHE_HOME", `${dir}/cache`); // normally left as it is
 * const driver = await openLocalFs(`${dir}/store`, { create: true });
 * const hostStorage = await openHostStorage(driver);
 * assert.ok(hostStorage !== undefined && hostStorage.location.startsWith(`${dir}/cache/capsa/`));
 * const { store } = await initStore(driver, { hostStorage });
 * await store.close();
 * await hostStorage.close();
 * await driver.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @module
 */

import type { Driver } from "../driver.ts";
import { InvalidArgumentError } from "../../errors.ts";
import { type LocalFsDriver, openLocalFs } from "./driver.ts";

/**
 * The canonical Location of an opened driver: the one spelling of a store
 * whatever was typed. A local directory is the `file:` URL of its real path
 * (symbolic links resolved, no trailing slash); other Locations are the
 * driver's own normalised URL.
 *
 * @param driver The opened Location.
 * @returns The canonical Location URL.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MemoryDriver } from "@capsa/capsa";
 * import { canonicalLocation } from "@capsa/capsa/drivers/localfs";
 * assert.ok(canonicalLocation(new MemoryDriver()).startsWith("memory:"));
 * ```
 */
export function canonicalLocation(driver: Driver): string {
  const location = driver.location;
  if (location.startsWith("/") || /^[A-Za-z]:[\\/]/.test(location)) {
    const url = new URL("file://");
    url.pathname = location;
    return url.href;
  }
  return location;
}

/**
 * The directory holding every default host directory: `$XDG_CACHE_HOME/capsa`
 * (or `~/.cache/capsa`, `%LOCALAPPDATA%/capsa` on Windows).
 * @returns The directory.
 * @throws {InvalidArgumentError} when no cache directory can be found (no
 *   `XDG_CACHE_HOME` or `HOME`, or no permission to read them).
 */
export function defaultCacheRoot(): string {
  let base: string | undefined;
  try {
    base = Deno.env.get("XDG_CACHE_HOME") || undefined;
    if (base === undefined) {
      const home = Deno.env.get("HOME");
      if (home) base = `${home}/.cache`;
      else if (Deno.build.os === "windows") base = Deno.env.get("LOCALAPPDATA") || undefined;
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotCapable)) throw e;
    throw new InvalidArgumentError(
      "cannot find the per-user cache directory without --allow-env=HOME,XDG_CACHE_HOME: " +
        "grant it, or choose a host directory",
    );
  }
  if (base === undefined) {
    throw new InvalidArgumentError(
      "neither XDG_CACHE_HOME nor HOME is set: choose a host directory",
    );
  }
  return `${base.replace(/[/\\]+$/, "")}/capsa`;
}

/**
 * The default host directory of a Location:
 * `<cache root>/<first 16 hex digits of SHA-256(canonical Location URL)>`.
 * `memory:` Locations get none: their data dies with the process.
 *
 * @param location The canonical Location ({@linkcode canonicalLocation}).
 * @returns The directory, or `undefined` for `memory:`.
 * @throws {InvalidArgumentError} when no cache directory can be found.
 */
export async function defaultHostDir(location: string): Promise<string | undefined> {
  if (location.startsWith("memory:")) return undefined;
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(location)),
  );
  return `${defaultCacheRoot()}/${digest.slice(0, 8).toHex()}`;
}

/**
 * Opens this host's default directory for a store's Location (made, private
 * to the user, when missing), as the `capsa` CLI does: pass it as
 * `hostStorage` to `openStore` / `initStore`.
 *
 * @param driver The store's Location.
 * @returns The host storage, or `undefined` for a `memory:` Location.
 * @throws {InvalidArgumentError} when no cache directory can be found.
 */
export async function openHostStorage(driver: Driver): Promise<LocalFsDriver | undefined> {
  const dir = await defaultHostDir(canonicalLocation(driver));
  if (dir === undefined) return undefined;
  // Private to this user: the host directory holds the index (every key name).
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  return await openLocalFs(dir, { create: true, durable: true });
}
