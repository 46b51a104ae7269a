/**
 * The checks `capsa init` and `capsa move` make on the directory they are
 * about to write a store into: it holds nothing capsa did not write, and the
 * Recovery Kit is never written inside it.
 *
 * A `localfs` listing shows only names capsa could have written (keys), so
 * a directory full of the user's files looks empty to the store: these
 * checks read the directory itself.
 *
 * @module
 */

import { CapsaError } from "../errors.ts";
import type { Driver } from "../drivers/driver.ts";
import { TEMP_PREFIX } from "../drivers/localfs/paths.ts";

/**
 * The directory `init` or `move` would write a store into holds a file (or
 * link, or anything but a directory) that is not an object of a store.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { LocationNotEmptyError } from "./_target.ts";
 * const e = new LocationNotEmptyError("/srv/capsa", "notes.txt", "init");
 * assert.deepEqual([e.code, e.path], ["location_not_empty", "notes.txt"]);
 * ```
 */
export class LocationNotEmptyError extends CapsaError {
  /** The first entry found that is not a store object, relative to the directory. */
  readonly path: string;
  /**
   * Creates the error.
   * @param location The directory.
   * @param path The entry found, relative to it.
   * @param command `init` or `move`.
   */
  constructor(location: string, path: string, command: "init" | "move") {
    super(
      "location_not_empty",
      `${location} is not empty (it holds ${
        JSON.stringify(path)
      }, which is not part of a store): ` +
        `${command} writes a store only into an empty directory; choose a new or empty one`,
    );
    this.path = path;
  }
}

/** The directory of a local Location (the driver's real path), or `undefined` for others. */
function localRoot(driver: Driver): string | undefined {
  const location = driver.location;
  return location.startsWith("/") || /^[A-Za-z]:[\\/]/.test(location) ? location : undefined;
}

/**
 * Refuses a local directory holding any entry but the objects the driver
 * lists (an interrupted init's config, a partial copy of a move: the store
 * code judges those) and capsa's own temporary files. Directories themselves
 * hold no data and are walked, not counted. Other Locations list every
 * object they hold, so the store code's own check suffices.
 *
 * @param driver The opened target.
 * @param command `init` or `move`, for the message.
 * @throws {LocationNotEmptyError} naming the first foreign entry.
 */
export async function refuseForeignEntries(
  driver: Driver,
  command: "init" | "move",
): Promise<void> {
  const root = localRoot(driver);
  if (root === undefined) return;
  const keys = new Set<string>();
  for await (const info of driver.list("")) keys.add(info.key);
  const walk = async (dir: string, rel: string): Promise<void> => {
    const entries: Deno.DirEntry[] = [];
    for await (const e of Deno.readDir(dir)) entries.push(e);
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      const path = `${rel}${e.name}`;
      if (e.isDirectory) await walk(`${dir}/${e.name}`, `${path}/`);
      else if (!e.name.startsWith(TEMP_PREFIX) && !keys.has(path)) {
        throw new LocationNotEmptyError(driver.location, path, command);
      }
    }
  };
  await walk(root, "");
}

/**
 * Refuses to write the Recovery Kit inside the store's own directory: the
 * kit is what rebuilds a store whose descriptors are lost, so it must live
 * apart from it (and a file there would make the directory not empty).
 *
 * @param kitDir The directory the kit would be written to.
 * @param storeDir The store's directory, when the Location is local.
 * @throws {CapsaError} `kit_inside_store`.
 */
export async function refuseKitInsideStore(
  kitDir: string,
  storeDir: string | undefined,
): Promise<void> {
  if (storeDir === undefined) return;
  const real = async (path: string) => {
    try {
      return await Deno.realPath(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return undefined;
      throw e;
    }
  };
  const store = await real(storeDir);
  const kit = await real(kitDir);
  if (store === undefined || kit === undefined) return;
  if (kit === store || kit.startsWith(store.endsWith("/") ? store : `${store}/`)) {
    throw new CapsaError(
      "kit_inside_store",
      `the Recovery Kit would be written inside the store directory ${store}: ` +
        `give --kit FILE outside it (keep the kit apart from the store), or run capsa init from another directory`,
    );
  }
}
