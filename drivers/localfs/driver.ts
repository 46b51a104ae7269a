/**
 * The `localfs` driver itself: {@linkcode LocalFsDriver} and
 * {@linkcode openLocalFs}. The public module, with the layout and the
 * guarantees, is `drivers/localfs/mod.ts`; key ↔ path mapping and listings
 * are in `paths.ts`, error mapping in `errors.ts`.
 *
 * Each operation checks every entry on its path against symlinks and races
 * before it touches a file; file I/O that does not depend on keys is in
 * `_io.ts`. The file is a little over 600 lines, a third of them the
 * examples of each method: the operations share the private path checks
 * (`#lstatPath`, `#existingDirs`, `#isAt`), so they stay in one class.
 *
 * @module
 */

import { constants as fsConstants } from "node:fs/promises";
import { close, closeSync, fstatSync, openSync } from "node:fs";
import {
  ClosedError,
  type Driver,
  type DriverCapabilities,
  InvalidArgumentError,
  type ListOptions,
  NotFoundError,
  type ObjectInfo,
  PreconditionFailedError,
  type PutOptions,
  TransientError,
  validateKey,
  validateListArgs,
  validateRange,
} from "../driver.ts";
import {
  conflict,
  describe,
  errnoOf,
  fsError,
  isMissing,
  LocalFsError,
  type Operation,
  refused,
  writeError,
} from "./errors.ts";
import { makeRoot, probeLink, readAt, syncDir, writeAll } from "./_io.ts";
import {
  isRealDir,
  isRealFile,
  joinPath,
  lstatOrUndefined,
  lstatSyncOrUndefined,
  sameFile,
  tempName,
  walk,
} from "./paths.ts";

/** Options of {@linkcode openLocalFs}. */
export interface LocalFsOptions {
  /**
   * Fsync every put (file, then its directories) and every delete, so a
   * resolved call survives a power loss. Reported as
   * `capabilities.durable`. Default `false`.
   */
  durable?: boolean;
  /** Create the root directory (and missing parents) if it does not exist. Default `false`. */
  create?: boolean;
}

/** How often an operation restarts when a directory vanishes or an object changes under it. */
const MAX_ATTEMPTS = 8;
// Objects are opened without following a symlink in the last component, and
// without blocking on a FIFO; temporary files are created exclusively.
const NOFOLLOW = fsConstants.O_NOFOLLOW ?? 0;
const READ_FLAGS = fsConstants.O_RDONLY | NOFOLLOW | (fsConstants.O_NONBLOCK ?? 0);

/**
 * How far the directories on a key's path exist: `count` real directories
 * from the root down, then a missing entry (or none); `file` when a regular
 * file stands where a directory would be (an object whose key is a folder of
 * this one, so this key cannot exist).
 */
interface DirsFound {
  count: number;
  file?: string;
}

// The one way to make a driver is openLocalFs(), which needs the constructor.
let construct: (root: string, durable: boolean, canLink: boolean) => LocalFsDriver;

/**
 * A {@linkcode Driver} over a local directory: key `K` is the file `K` under
 * the root. The guarantees are listed in the documentation of
 * `@capsa/capsa/drivers/localfs` (`drivers/localfs/mod.ts`); open one with
 * {@linkcode openLocalFs}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openLocalFs } from "@capsa/capsa/drivers/localfs";
 *
 * const root = await Deno.makeTempDir();
 * const driver = await openLocalFs(root);
 * await driver.put("store.json", new TextEncoder().encode("{}"));
 * await driver.put("system.state/maintenance/lease", new Uint8Array([1]), { ifAbsent: true });
 * assert.deepEqual(new TextDecoder().decode(await driver.get("store.json")), "{}");
 * await driver.close();
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export class LocalFsDriver implements Driver {
  /** Always `"localfs"`. */
  readonly kind = "localfs";
  /** Create-only puts are exact where the filesystem has hard links; durable when asked. */
  readonly capabilities: DriverCapabilities;
  /** The absolute, resolved path of the root directory. */
  readonly location: string;
  #root: string;
  #durable: boolean;
  #canLink: boolean;
  #closed = false;

  static {
    construct = (root, durable, canLink) => new LocalFsDriver(root, durable, canLink);
  }

  private constructor(root: string, durable: boolean, canLink: boolean) {
    this.#root = root;
    this.#durable = durable;
    this.#canLink = canLink;
    this.location = root;
    this.capabilities = { createOnly: canLink, durable };
  }

  #check(): void {
    if (this.#closed) throw new ClosedError(`localfs driver ${this.location}`);
  }

  #path(names: readonly string[], count = names.length): string {
    return joinPath(this.#root, names, count);
  }

  /** `lstat` of each of the first `count` paths of `names` (`undefined` if absent). */
  #lstatPath(
    key: string,
    operation: Operation,
    names: readonly string[],
    count: number,
  ): (Deno.FileInfo | undefined)[] {
    try {
      return Array.from(
        { length: count },
        (_, i) => lstatSyncOrUndefined(this.#path(names, i + 1)),
      );
    } catch (e) {
      throw fsError(e, key, operation);
    }
  }

  /**
   * How many of the first `dirs` entries exist as real directories, up to the
   * first missing one or a regular file (an object `K` where this key needs a
   * folder `K/`); a symlink or special file on the way is refused.
   */
  #existingDirs(
    key: string,
    operation: Operation,
    names: readonly string[],
    infos: readonly (Deno.FileInfo | undefined)[],
    dirs: number,
  ): DirsFound {
    for (let i = 0; i < dirs; i++) {
      const info = infos[i];
      if (info === undefined) return { count: i };
      if (isRealFile(info)) return { count: i, file: names.slice(0, i + 1).join("/") };
      if (!isRealDir(info)) throw refused(key, operation, this.#path(names, i + 1), describe(info));
    }
    return { count: dirs };
  }

  /**
   * Whether a file just opened is the one at the path `names` spell, below
   * real directories: the path is checked again and compared with the open
   * file by device and inode. (Deno offers no `openat`, and `/proc/self/fd`
   * only with `--allow-all`, so this narrows a race rather than closing it.)
   */
  #isAt(
    opened: { dev: number | bigint; ino: number | bigint | null },
    key: string,
    operation: Operation,
    names: readonly string[],
  ): boolean {
    const dirs = names.length - 1;
    const infos = this.#lstatPath(key, operation, names, names.length);
    if (this.#existingDirs(key, operation, names, infos, dirs).count < dirs) return false;
    const info = infos[dirs];
    return isRealFile(info) && sameFile(opened, info);
  }

  /**
   * Makes the missing directories of an object's path, checking the others.
   * Returns the `lstat` of the object's own entry (`undefined`: absent), or
   * `false` when a directory vanished meanwhile (a concurrent delete pruned
   * it): the caller starts again.
   */
  async #makeDirs(
    key: string,
    names: readonly string[],
  ): Promise<Deno.FileInfo | undefined | false> {
    const dirs = names.length - 1;
    const infos = this.#lstatPath(key, "write", names, names.length);
    const found = this.#existingDirs(key, "write", names, infos, dirs);
    if (found.file !== undefined) throw conflict(key, `the object "${found.file}"`);
    if (found.count === dirs) return infos[dirs];
    for (let i = found.count + 1; i <= dirs; i++) {
      const path = this.#path(names, i);
      try {
        await Deno.mkdir(path);
        continue;
      } catch (e) {
        if (isMissing(e)) {
          if (i > 1) return false;
          throw new LocalFsError(key, "write", {
            cause: e,
            detail: `the root directory "${this.#root}" is missing`,
          });
        }
        if (!(e instanceof Deno.errors.AlreadyExists)) throw fsError(e, key, "write");
      }
      // Made by someone else meanwhile: it must be a real directory too.
      const info = await lstatOrUndefined(path).catch((e) => {
        throw fsError(e, key, "write");
      });
      if (info === undefined) return false;
      if (isRealFile(info)) throw conflict(key, `the object "${names.slice(0, i).join("/")}"`);
      if (!isRealDir(info)) throw refused(key, "write", path, describe(info));
    }
    return undefined;
  }

  /**
   * Opens an object for reading, verified to be a regular file inside the
   * root. Opened, checked (and later closed) synchronously, the read alone
   * asynchronous: each asynchronous call cost a round trip to the I/O threads
   * (150 against 22 µs for open, fstat, a small read and close all
   * synchronous), which a rebuild reading thousands of TOCs paid for each.
   */
  #openObject(
    key: string,
  ): { fd: number; size: number; modified: number | undefined } {
    this.#check();
    validateKey(key);
    const names = key.split("/");
    const dirs = names.length - 1;
    const path = this.#path(names);
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const infos = this.#lstatPath(key, "read", names, names.length);
      const found = this.#existingDirs(key, "read", names, infos, dirs);
      if (found.count < dirs) throw new NotFoundError(key);
      const info = infos[dirs];
      // A folder of other keys is not an object.
      if (info === undefined || isRealDir(info)) throw new NotFoundError(key);
      if (!isRealFile(info)) throw refused(key, "read", path, describe(info));
      let fd: number;
      try {
        fd = openSync(path, READ_FLAGS);
      } catch (e) {
        // Changed since the check (deleted, or swapped for a link): look again.
        if (isMissing(e) || errnoOf(e) === "ELOOP" || errnoOf(e) === "ENOTDIR") continue;
        throw fsError(e, key, "read");
      }
      try {
        const opened = fstatSync(fd);
        if (this.#isAt(opened, key, "read", names) && opened.isFile()) {
          return { fd, size: opened.size, modified: opened.mtime?.getTime() };
        }
      } catch (e) {
        closeSync(fd);
        throw fsError(e, key, "read");
      }
      // Not the file that was checked: something raced the open. Look again.
      closeSync(fd);
    }
    throw new TransientError(`"${key}" kept changing while being opened; try again`);
  }

  /**
   * Reads a whole object.
   *
   * @param key The object's key.
   * @returns Its bytes.
   * @throws {NotFoundError} when there is no such object.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { openLocalFs } from "./driver.ts";
   *
   * const root = await Deno.makeTempDir();
   * const driver = await openLocalFs(root);
   * await driver.put("a/b", new Uint8Array([7]));
   * assert.deepEqual(await driver.get("a/b"), new Uint8Array([7]));
   * await Deno.remove(root, { recursive: true });
   * ```
   */
  async get(key: string): Promise<Uint8Array> {
    const { fd, size } = this.#openObject(key);
    try {
      return await readAt(fd, 0, size);
    } catch (e) {
      throw fsError(e, key, "read");
    } finally {
      closeSync(fd);
    }
  }

  /**
   * Reads `length` bytes from `offset`, clipped at the end of the object.
   *
   * @param key The object's key.
   * @param offset Where to start (0-based).
   * @param length How many bytes at most.
   * @returns The bytes in range (empty when the range starts at or past the end).
   * @throws {NotFoundError} when there is no such object.
   * @throws {InvalidArgumentError} when `offset` or `length` is negative or not an integer.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { openLocalFs } from "./driver.ts";
   *
   * const root = await Deno.makeTempDir();
   * const driver = await openLocalFs(root);
   * await driver.put("k", new Uint8Array([1, 2, 3, 4]));
   * assert.deepEqual(await driver.getRange("k", 2, 10), new Uint8Array([3, 4]));
   * await Deno.remove(root, { recursive: true });
   * ```
   */
  async getRange(key: string, offset: number, length: number): Promise<Uint8Array> {
    validateRange(offset, length);
    const { fd, size } = this.#openObject(key);
    try {
      if (offset >= size) return new Uint8Array(0);
      return await readAt(fd, offset, Math.min(length, size - offset));
    } catch (e) {
      throw fsError(e, key, "read");
    } finally {
      closeSync(fd);
    }
  }

  /**
   * Reports an object's size.
   *
   * @param key The object's key.
   * @returns Its {@linkcode ObjectInfo}.
   * @throws {NotFoundError} when there is no such object.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { openLocalFs } from "./driver.ts";
   *
   * const root = await Deno.makeTempDir();
   * const driver = await openLocalFs(root);
   * await driver.put("k", new Uint8Array(5));
   * const info = await driver.stat("k");
   * assert.deepEqual([info.key, info.size], ["k", 5]);
   * await Deno.remove(root, { recursive: true });
   * ```
   */
  async stat(key: string): Promise<ObjectInfo> {
    const { fd, size, modified } = this.#openObject(key);
    // Closed on the I/O threads: every operation waits for I/O once, so that a loop of them
    // cannot starve the event loop's other tasks.
    await new Promise<void>((resolve) => close(fd, () => resolve()));
    return modified === undefined ? { key, size } : { key, size, modified };
  }

  /**
   * Writes a whole object atomically: to a temporary file in the object's
   * directory, then renamed (or, create-only, hard-linked) to its name.
   *
   * @param key The object's key.
   * @param bytes Its content.
   * @param options `ifAbsent` for a create-only put.
   * @throws {PreconditionFailedError} when `ifAbsent` is set and the key exists.
   * @throws {PermissionDeniedError} when the path holds a symlink, or the filesystem refuses.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { openLocalFs } from "./driver.ts";
   * import { PreconditionFailedError } from "../driver.ts";
   *
   * const root = await Deno.makeTempDir();
   * const driver = await openLocalFs(root);
   * await driver.put("lease", new Uint8Array([1]), { ifAbsent: true });
   * try {
   *   await driver.put("lease", new Uint8Array([2]), { ifAbsent: true });
   * } catch (e) {
   *   assert.deepEqual(e instanceof PreconditionFailedError, true);
   * }
   * await Deno.remove(root, { recursive: true });
   * ```
   */
  async put(key: string, bytes: Uint8Array, options: PutOptions = {}): Promise<void> {
    this.#check();
    validateKey(key);
    const names = key.split("/");
    const dirs = names.length - 1;
    const path = this.#path(names);
    const dir = this.#path(names, dirs);
    const ifAbsent = options.ifAbsent ?? false;

    let tempNames: string[] = [];
    let handle: Deno.FsFile | undefined;
    for (let attempt = 1; handle === undefined; attempt++) {
      if (attempt > MAX_ATTEMPTS) {
        throw new TransientError(`the directories of "${key}" keep vanishing; try again`);
      }
      const existing = await this.#makeDirs(key, names);
      if (existing === false) continue;
      // Not the create-only decision (link(2) below makes it): this refuses a
      // symlink at the object's name, and saves writing a doomed temp file.
      if (isRealDir(existing)) throw conflict(key, `the keys below "${key}/"`);
      if (existing !== undefined && !isRealFile(existing)) {
        throw refused(key, "write", path, describe(existing));
      }
      if (existing !== undefined && ifAbsent) throw new PreconditionFailedError(key);
      tempNames = [...names.slice(0, dirs), tempName()];
      try {
        // O_CREAT|O_EXCL: never follows a symbolic link at the name, never opens an existing file.
        // Deno's own file writes run off the main thread (node:fs FileHandle writes copy on it).
        handle = await Deno.open(this.#path(tempNames), {
          write: true,
          createNew: true,
          mode: 0o666,
        });
      } catch (e) {
        // The directory was pruned by a concurrent delete: make it again.
        if (!isMissing(e)) throw writeError(e, key);
      }
    }

    let temp = this.#path(tempNames);
    try {
      try {
        // Before writing a byte: the temporary file must be inside the root.
        const created = await handle.stat();
        if (!this.#isAt(created, key, "write", tempNames)) {
          throw refused(key, "write", dir, "not the directory that was checked (it was swapped)");
        }
        await writeAll(handle, bytes);
        if (this.#durable) await handle.sync();
      } finally {
        handle.close();
      }
      if (ifAbsent && this.#canLink) {
        try {
          await Deno.link(temp, path);
        } catch (e) {
          if (e instanceof Deno.errors.AlreadyExists) throw new PreconditionFailedError(key);
          throw e;
        }
      } else {
        // Without hard links a create-only put can only look, then rename
        // (capabilities.createOnly is false).
        if (ifAbsent && await lstatOrUndefined(path) !== undefined) {
          throw new PreconditionFailedError(key);
        }
        await Deno.rename(temp, path);
        temp = "";
      }
      if (this.#durable) {
        // The object's directory and every one above it: a directory created
        // by a concurrent put that has not synced it yet must not be lost.
        await Promise.all(
          Array.from({ length: dirs + 1 }, (_, i) => syncDir(this.#path(names, i))),
        );
      }
    } catch (e) {
      throw writeError(e, key);
    } finally {
      if (temp !== "") await Deno.remove(temp).catch(() => {});
    }
  }

  /**
   * Deletes an object; deleting a missing key succeeds. Directories left
   * empty are removed.
   *
   * @param key The object's key.
   * @throws {PermissionDeniedError} when the path holds a symlink, or the filesystem refuses.
   *
   * @example
   * ```ts
   * import { openLocalFs } from "./driver.ts";
   *
   * const root = await Deno.makeTempDir();
   * const driver = await openLocalFs(root);
   * await driver.put("k", new Uint8Array([1]));
   * await driver.delete("k");
   * await driver.delete("k"); // still fine
   * await Deno.remove(root, { recursive: true });
   * ```
   */
  async delete(key: string): Promise<void> {
    this.#check();
    validateKey(key);
    const names = key.split("/");
    const dirs = names.length - 1;
    const path = this.#path(names);
    try {
      const infos = this.#lstatPath(key, "delete", names, names.length);
      if (this.#existingDirs(key, "delete", names, infos, dirs).count < dirs) return;
      const info = infos[dirs];
      // Nothing there, or a folder of other keys: no such object.
      if (info === undefined || isRealDir(info)) return;
      if (!isRealFile(info)) throw refused(key, "delete", path, describe(info));
      try {
        await Deno.remove(path);
      } catch (e) {
        if (isMissing(e)) return;
        throw e;
      }
      if (this.#durable) await syncDir(this.#path(names, dirs));
    } catch (e) {
      throw fsError(e, key, "delete");
    }
    // Remove the directories this delete left empty, deepest first; a
    // directory still in use (not empty) stops it. A put racing this makes
    // its directories again.
    for (let i = dirs; i >= 1; i--) {
      try {
        await Deno.remove(this.#path(names, i));
      } catch {
        break;
      }
    }
  }

  /**
   * Lists objects under a prefix in key order, reading one directory at a
   * time; folders entirely before `startAfter` or outside the prefix are
   * skipped unread. Temporary files, and names that are not keys, are not
   * listed; a symlink or special file is refused.
   *
   * @param prefix A plain string prefix (`""` for everything).
   * @param options `startAfter` to resume after a key.
   * @returns The objects, in order.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { openLocalFs } from "./driver.ts";
   *
   * const root = await Deno.makeTempDir();
   * const driver = await openLocalFs(root);
   * for (const key of ["a/c", "a-b", "b"]) await driver.put(key, new Uint8Array(1));
   * const keys = await Array.fromAsync(driver.list("", { startAfter: "a-b" }), (i) => i.key);
   * assert.deepEqual(keys, ["a/c", "b"]);
   * await Deno.remove(root, { recursive: true });
   * ```
   */
  async *list(prefix: string, options: ListOptions = {}): AsyncIterable<ObjectInfo> {
    this.#check();
    validateListArgs(prefix, options);
    yield* walk({
      root: this.#root,
      prefix,
      startAfter: options.startAfter,
      check: () => this.#check(),
    });
  }

  /**
   * Marks the driver closed; later calls throw {@linkcode ClosedError}.
   * Nothing is held open between calls, so there is nothing else to release.
   *
   * @returns When closed.
   *
   * @example
   * ```ts
   * import { openLocalFs } from "./driver.ts";
   *
   * const root = await Deno.makeTempDir();
   * const driver = await openLocalFs(root);
   * await driver.close();
   * await Deno.remove(root, { recursive: true });
   * ```
   */
  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }
}

/**
 * Opens a driver on a directory. The path is resolved (symlinks in it
 * followed, once) and the result is the root from then on.
 *
 * @param root The directory's path, absolute or relative to the working directory.
 * @param options `durable` to fsync every change; `create` to create the directory.
 * @returns The driver.
 * @throws {InvalidArgumentError} when the directory does not exist (and
 * `create` is not set) or is not a directory.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openLocalFs } from "@capsa/capsa/drivers/localfs";
 *
 * const parent = await Deno.makeTempDir();
 * const driver = await openLocalFs(`${parent}/store`, { create: true, durable: true });
 * assert.equal(driver.location, `${parent}/store`);
 * assert.deepEqual(driver.capabilities, { createOnly: true, durable: true });
 * await driver.close();
 * await Deno.remove(parent, { recursive: true });
 * ```
 */
export async function openLocalFs(
  root: string,
  options: LocalFsOptions = {},
): Promise<LocalFsDriver> {
  const durable = options.durable ?? false;
  if (typeof root !== "string" || root === "") {
    throw new InvalidArgumentError("a localfs root must be a non-empty path");
  }
  let real: string;
  try {
    if (options.create) await makeRoot(root, durable);
    real = await Deno.realPath(root);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new InvalidArgumentError(
        `the directory "${root}" does not exist (open it with { create: true } to create it)`,
        { cause: e },
      );
    }
    throw fsError(e, root, "open");
  }
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(real);
  } catch (e) {
    throw fsError(e, real, "open");
  }
  if (!info.isDirectory) {
    throw new InvalidArgumentError(`"${real}" is not a directory`);
  }
  return construct(real, durable, await probeLink(real));
}
