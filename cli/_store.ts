/**
 * Opening stores for the CLI: the Location's driver, this host's directory
 * (`--host-dir`, by default a per-user cache directory named after the
 * Location), the store itself, and closing all of them, whatever happens.
 *
 * @module
 */

import { CapsaError, InvalidArgumentError, StoreCorruptedError } from "../errors.ts";
import {
  canonicalLocation,
  defaultCacheRoot as sharedCacheRoot,
  defaultHostDir as sharedDefaultHostDir,
} from "../drivers/localfs/host.ts";
import { EventBus } from "../store/events.ts";
import type { Driver } from "../drivers/driver.ts";
import { createLocationRegistry, parseLocation } from "../drivers/location.ts";
import "../drivers/s3_lazy.ts";
import { openLocalFs } from "../drivers/localfs/mod.ts";
import { type ArtifactInfo, openStore, type Store } from "../store/store.ts";
import { type Output, UsageError } from "./_output.ts";
import type { Passphrases } from "./_passphrase.ts";
import { holdHostDir, recordHostLocation } from "./_cache.ts";

/** What every command knows besides its own arguments. */
export interface CommandContext {
  /** Where output goes. */
  out: Output;
  /** `--host-dir`, when given. */
  hostDir: string | undefined;
  /** An encrypted store's passphrases (file, environment, prompt). */
  passphrases: Passphrases;
}

export { canonicalLocation } from "../drivers/localfs/host.ts";

/**
 * The default host directory of a Location (see `drivers/localfs/host.ts`),
 * its "cannot find one" error a usage error that names `--host-dir`.
 * @param location The canonical Location.
 * @returns The directory, or `undefined` for `memory:`.
 */
export async function defaultHostDir(location: string): Promise<string | undefined> {
  try {
    return await sharedDefaultHostDir(location);
  } catch (e) {
    if (!(e instanceof InvalidArgumentError)) throw e;
    throw new UsageError(e.message.replace("choose a host directory", "give --host-dir DIR"));
  }
}

/**
 * The directory holding every default host directory (see
 * `drivers/localfs/host.ts`), its error a usage error naming `--host-dir`.
 * @returns The directory.
 */
export function defaultCacheRoot(): string {
  try {
    return sharedCacheRoot();
  } catch (e) {
    if (!(e instanceof InvalidArgumentError)) throw e;
    throw new UsageError(e.message.replace("choose a host directory", "give --host-dir DIR"));
  }
}

/**
 * Turns `Deno.cwd()`'s permission error into a clear one (relative paths
 * need the working directory).
 * @returns The working directory.
 */
export function workingDirectory(): string {
  try {
    return Deno.cwd();
  } catch (e) {
    if (!(e instanceof Deno.errors.NotCapable)) throw e;
    throw new UsageError(
      "a relative path needs read access to the working directory: use absolute paths, " +
        "or grant --allow-read of the working directory",
    );
  }
}

/**
 * Makes a path absolute against the working directory.
 * @param path A path.
 * @returns The absolute path.
 */
export function absolutePath(path: string): string {
  if (path.startsWith("/") || /^[A-Za-z]:[\\/]/.test(path)) return path;
  return `${workingDirectory().replace(/[/\\]+$/, "")}/${path}`;
}

/**
 * The directory of a local Location (a path or `file:` URL) as typed, made
 * absolute; `undefined` for other Locations.
 * @param location The Location as typed.
 * @returns The path, or `undefined`.
 */
export function localPath(location: string): string | undefined {
  const withCwd = /^[A-Za-z][A-Za-z0-9+.-]+:/.test(location) ? location : absolutePath(location);
  const url = parseLocation(withCwd);
  return url.protocol === "file:" ? decodeURIComponent(url.pathname) : undefined;
}

/** The drivers of an opened Location. */
export interface OpenedLocation {
  /** The Location's driver. */
  driver: Driver;
  /** This host's storage, when there is one. */
  host: Driver | undefined;
  /** This host's directory, when there is one. */
  hostDir: string | undefined;
  /** Closes both drivers. */
  close(): Promise<void>;
}

/**
 * Opens a Location and its host directory.
 * @param ctx The command context.
 * @param location The Location as typed.
 * @param options `create`: create a missing directory Location (init only).
 * @returns The drivers.
 */
export async function openLocation(
  ctx: CommandContext,
  location: string,
  options: { create?: boolean } = {},
): Promise<OpenedLocation> {
  const withCwd = /^[A-Za-z][A-Za-z0-9+.-]+:/.test(location) ? location : absolutePath(location);
  const url = parseLocation(withCwd);
  if (url.protocol === "file:" && !options.create) {
    const path = decodeURIComponent(url.pathname);
    const exists = await Deno.stat(path).then(() => true, (e) => {
      if (e instanceof Deno.errors.NotFound) return false;
      throw e;
    });
    if (!exists) {
      throw new CapsaError(
        "no_store",
        `there is no store at ${path} (the directory does not exist): check the Location, or create one with \`capsa init\``,
      );
    }
  }
  const driver = await createLocationRegistry().open(withCwd, {
    create: options.create ?? false,
    durable: true,
  });
  let host: Driver | undefined;
  let hostDir: string | undefined;
  let inUse: Deno.FsFile | undefined;
  try {
    hostDir = ctx.hostDir !== undefined
      ? absolutePath(ctx.hostDir)
      : await defaultHostDir(canonicalLocation(driver));
    if (hostDir !== undefined) {
      // Private to this user: the host directory holds the index (every key name).
      await Deno.mkdir(hostDir, { recursive: true, mode: 0o700 });
      if (ctx.hostDir === undefined) inUse = await holdHostDir(hostDir);
      host = await openLocalFs(hostDir, { create: true, durable: true });
      if (ctx.hostDir === undefined) await recordHostLocation(host, canonicalLocation(driver));
    }
  } catch (e) {
    inUse?.close();
    await driver.close().catch(() => {});
    throw e;
  }
  return {
    driver,
    host,
    hostDir,
    async close() {
      await host?.close().catch(() => {});
      await driver.close().catch(() => {});
      inUse?.close();
    },
  };
}

/** Options of {@linkcode withStore}. */
export interface WithStoreOptions {
  /** Open read-only: no healing, no host cache written (status, ls, stat, get: reads write nothing). */
  readOnly?: boolean;
  /** Hand over a Corrupted store instead of failing with exit code 5 (status, rebuild). */
  allowCorrupted?: boolean;
  /** Open without loading the index (`capsa rebuild`, which builds or loads its own). */
  deferIndex?: boolean;
}

/**
 * Opens the store on a Location, runs `fn`, and always closes the store
 * (pending puts flushed, host cache saved) and the drivers. Warnings the
 * store publishes go to stderr.
 *
 * @param ctx The command context.
 * @param location The Location as typed.
 * @param fn The command's work.
 * @param options Read-only, and whether a Corrupted store is acceptable.
 * @returns What `fn` returns.
 * @throws {CapsaError} `no_store` when the Location holds nothing at all,
 *   {@linkcode StoreCorruptedError} when the store is Corrupted (unless allowed).
 */
export async function withStore<T>(
  ctx: CommandContext,
  location: string,
  fn: (store: Store, opened: OpenedLocation) => Promise<T>,
  options: WithStoreOptions = {},
): Promise<T> {
  const opened = await openLocation(ctx, location);
  let store: Store | undefined;
  const bus = new EventBus();
  const off = bus.subscribe((e) => {
    if (e.type === "warning") ctx.out.warn(e.code, e.message);
  }, { types: ["warning"] });
  try {
    const open = async (passphrase: string | undefined) =>
      await openStore(opened.driver, {
        hostStorage: opened.host,
        bus,
        readOnly: options.readOnly ?? false,
        passphrase,
        deferIndex: options.deferIndex ?? false,
      });
    try {
      store = await open(await ctx.passphrases.given());
    } catch (e) {
      // An encrypted store and no passphrase given: ask on the terminal (or say the three ways).
      if (!(e instanceof CapsaError && e.code === "passphrase_required")) throw e;
      store = await open(await ctx.passphrases.get());
    }
    if (store.state === "Corrupted" && store.storeId === "") {
      await refuseEmptyLocation(opened.driver);
    }
    if (store.state === "Corrupted" && !options.allowCorrupted) {
      throw new StoreCorruptedError(store.problems);
    }
    const result = await fn(store, opened);
    await store.close();
    return result;
  } catch (e) {
    await store?.close().catch(() => {});
    throw e;
  } finally {
    off();
    await opened.close();
  }
}

/**
 * Refuses a Location that holds no object at all: it is no store (a typo in
 * the path, or a store never created), not a corrupted one.
 * @param driver The Location.
 */
async function refuseEmptyLocation(driver: Driver): Promise<void> {
  for await (const _ of driver.list("")) return;
  throw new CapsaError(
    "no_store",
    `there is no store at ${driver.location} (it is empty): check the Location, or create one with \`capsa init\``,
  );
}

/**
 * Every live artifact of a namespace (under a prefix), page after page.
 * @param store The store.
 * @param namespace The namespace.
 * @param prefix Only keys starting with this.
 * @returns The artifacts, in key order.
 */
export async function* listAll(
  store: Store,
  namespace: string,
  prefix?: string,
): AsyncGenerator<ArtifactInfo> {
  let after: string | undefined;
  for (;;) {
    const page = await store.list(namespace, {
      ...(prefix === undefined ? {} : { prefix }),
      ...(after === undefined ? {} : { after }),
      limit: 1000,
    });
    yield* page.items;
    if (page.after === undefined) return;
    after = page.after;
  }
}
