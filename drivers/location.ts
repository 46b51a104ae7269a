/**
 * Location URLs: from the string an operator types to the right driver.
 *
 * | Location | driver |
 * | --- | --- |
 * | `./store`, `/srv/store`, `store` (a path) | `localfs` |
 * | `file:///srv/store` | `localfs` |
 * | `memory:` (a fresh, empty Location) or `memory:NAME` (shared within the registry) | `memory` |
 * | `s3://bucket/prefix?endpoint=…&region=…&path-style=true` | `s3` (loaded only when used) |
 *
 * A {@linkcode LocationRegistry} maps URL schemes to openers. The default one
 * ({@linkcode createLocationRegistry}) knows `file`, `memory` and `s3`;
 * a plugin driver joins explicitly with {@linkcode LocationRegistry.register}.
 * Registering a scheme twice is an error (never "first one wins"), and so is
 * an unknown scheme. Openers of built-in drivers are imported lazily, so a
 * user of the memory driver never loads the AWS SDK.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createLocationRegistry } from "@capsa/capsa";
 *
 * const locations = createLocationRegistry();
 * const driver = await locations.open("memory:");
 * assert.deepEqual(driver.kind, "memory");
 * await driver.close();
 * ```
 *
 * @module
 */

import { InvalidArgumentError } from "../errors.ts";
import type { Driver } from "./driver.ts";
import { MemoryDriver } from "./memory.ts";

/** Options passed to every opener. */
export interface OpenLocationOptions {
  /** Create the Location if it does not exist (a directory, for `localfs`). Default `false`. */
  create?: boolean;
  /** Ask for durable writes (fsync for `localfs`). Default `true`. */
  durable?: boolean;
}

/** Opens a driver for a parsed Location URL. */
export type LocationOpener = (url: URL, options: OpenLocationOptions) => Promise<Driver>;

/**
 * Turns what an operator typed into a URL: a string with a scheme of two or
 * more letters is parsed as a URL; anything else is a filesystem path,
 * resolved against the working directory into a `file:` URL.
 *
 * @param location A path or a URL.
 * @param cwd The directory relative paths are resolved against (default: the working directory).
 * @returns The URL.
 * @throws {InvalidArgumentError} when the string is empty or not a valid URL.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseLocation } from "@capsa/capsa";
 * assert.deepEqual(parseLocation("/srv/store").href, "file:///srv/store");
 * assert.deepEqual(parseLocation("s3://bucket/prefix").protocol, "s3:");
 * ```
 */
export function parseLocation(location: string, cwd?: string): URL {
  if (typeof location !== "string" || location.trim() === "") {
    throw new InvalidArgumentError("a Location is required: a path, file://…, s3://… or memory:");
  }
  if (location.includes("\u0000")) {
    throw new InvalidArgumentError("a Location must not contain NUL");
  }
  if (/^[A-Za-z][A-Za-z0-9+.-]+:/.test(location)) {
    try {
      return new URL(location);
    } catch (cause) {
      throw new InvalidArgumentError(`"${location}" is not a valid Location URL`, { cause });
    }
  }
  const base = cwd ?? Deno.cwd();
  const abs = location.startsWith("/") ? location : `${base.replace(/\/+$/, "")}/${location}`;
  const url = new URL("file://");
  url.pathname = abs;
  return url;
}

/**
 * An explicit map from URL schemes to driver openers.
 *
 * @example A plugin driver joins the registry
 * ```ts
 * import { createLocationRegistry } from "@capsa/capsa";
 * import { MemoryDriver } from "@capsa/capsa";
 *
 * const locations = createLocationRegistry();
 * locations.register("scratch", () => Promise.resolve(new MemoryDriver({ name: "scratch:" })));
 * const d = await locations.open("scratch://anything");
 * await d.close();
 * ```
 */
export class LocationRegistry {
  #openers = new Map<string, LocationOpener>();

  /**
   * Adds a scheme.
   * @param scheme The scheme without `:` (e.g. `"gcs"`), lower case.
   * @param opener Opens a driver for a URL of that scheme.
   * @throws {InvalidArgumentError} when the scheme is malformed or already registered.
   */
  register(scheme: string, opener: LocationOpener): void {
    if (!/^[a-z][a-z0-9+.-]+$/.test(scheme)) {
      throw new InvalidArgumentError(
        `"${scheme}" is not a valid URL scheme (lower case, 2+ chars)`,
      );
    }
    if (this.#openers.has(scheme)) {
      throw new InvalidArgumentError(`a driver for "${scheme}:" is already registered`);
    }
    this.#openers.set(scheme, opener);
  }

  /** The registered schemes, sorted. @returns The schemes. */
  schemes(): string[] {
    return [...this.#openers.keys()].sort();
  }

  /**
   * Opens the driver for a Location.
   * @param location A path or URL (see {@linkcode parseLocation}).
   * @param options Creation and durability.
   * @returns The driver.
   * @throws {InvalidArgumentError} for a malformed Location or an unknown scheme.
   */
  open(location: string, options: OpenLocationOptions = {}): Promise<Driver> {
    let url: URL;
    try {
      url = parseLocation(location);
    } catch (e) {
      return Promise.reject(e);
    }
    const scheme = url.protocol.slice(0, -1).toLowerCase();
    const opener = this.#openers.get(scheme);
    if (!opener) {
      return Promise.reject(
        new InvalidArgumentError(
          `unknown Location scheme "${scheme}:" (known: ${
            this.schemes().map((s) => s + ":").join(", ")
          })`,
        ),
      );
    }
    return opener(url, options);
  }
}

/**
 * Creates a registry that knows the built-in drivers: `file` (paths too),
 * `memory` and `s3`. `memory:NAME` Locations with the same name share one
 * map within this registry; `memory:` alone is always fresh. An `s3:`
 * Location opens once the S3 driver is loaded (`import
 * "@capsa/capsa/drivers/s3"`); until then it is refused with an
 * `invalid_argument` error saying so, and the AWS SDK is never loaded by a
 * program that does not import it.
 *
 * @returns The registry.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createLocationRegistry } from "@capsa/capsa";
 * assert.deepEqual(createLocationRegistry().schemes(), ["file", "memory", "s3"]);
 * ```
 */
export function createLocationRegistry(): LocationRegistry {
  const registry = new LocationRegistry();
  const shared = new Map<string, Map<string, Uint8Array>>();
  registry.register("memory", (url) => {
    const name = url.pathname;
    if (name === "") return Promise.resolve(new MemoryDriver());
    let objects = shared.get(name);
    if (!objects) shared.set(name, objects = new Map());
    return Promise.resolve(new MemoryDriver({ objects, name: `memory:${name}` }));
  });
  registry.register("file", async (url, options) => {
    if (url.host !== "" && url.host !== "localhost") {
      throw new InvalidArgumentError(`file: Locations must be local, got host "${url.host}"`);
    }
    if (url.search !== "" || url.hash !== "") {
      throw new InvalidArgumentError("file: Locations take no query or fragment");
    }
    const { openLocalFs } = await import("./localfs/mod.ts");
    return openLocalFs(decodeURIComponent(url.pathname), {
      create: options.create ?? false,
      durable: options.durable ?? true,
    });
  });
  registry.register("s3", (url, options) => {
    if (s3Opener === undefined) {
      return Promise.reject(
        new InvalidArgumentError(
          `s3: Locations need the S3 driver, which is not loaded: import "@capsa/capsa/drivers/s3" ` +
            "once (it registers itself), or open the driver with its openS3()",
        ),
      );
    }
    return s3Opener(url, options);
  });
  return registry;
}

/**
 * How `s3:` Locations are opened, once the S3 driver (or a loader of it) has
 * said so; `undefined` until then. Kept out of this module's imports so
 * that a program using only local stores never loads the AWS SDK.
 */
let s3Opener: LocationOpener | undefined;

/**
 * Makes every registry open `s3:` Locations with `opener`. Called by
 * `drivers/s3/mod.ts` when it is imported, and by `drivers/s3_lazy.ts`
 * (the CLI and the HTTP server), which imports the driver only when an
 * `s3:` Location is opened. Internal: not part of the public API.
 * @param opener Opens an S3 driver for a URL.
 */
export function provideS3Opener(opener: LocationOpener): void {
  s3Opener = opener;
}
