/**
 * Keys to paths and back for the `localfs` driver, and the ordered walk that
 * lists them.
 *
 * The mapping is the identity: key `K` is the file at relative path `K` under
 * the root, because keys are plain (`docs/FORMAT.md` §1: lower-case
 * `[a-z0-9._-]` segments, no `.`/`..`, no segment ending with `.`, no device
 * name), so every key is a portable path and distinct keys are distinct
 * files even where a filesystem folds case. Temporary files are named
 * `,tmp.<16 hex>`: a `,` is outside the key alphabet, so a temporary file can
 * never be taken for an object, and a listing skips every name that is not a
 * valid key segment.
 *
 * @module
 */

import { compareKeys, isValidKey, type ObjectInfo, validateKey } from "../driver.ts";
import { describe, fsError, isMissing, refused } from "./errors.ts";

/** The path separator of this system. */
export const SEP: string = Deno.build.os === "windows" ? "\\" : "/";

/** The start of every temporary file's name; `,` is never in a key. */
export const TEMP_PREFIX = ",tmp.";

/** How many `lstat` calls a listing makes in a row. */
const STAT_BATCH = 64;

/**
 * The path, relative to the root of a `localfs` Location, where the object
 * with this key is stored (`/`-separated): the key itself. For operators and
 * tests: the driver itself is the only thing that should write there.
 *
 * @param key A key that `validateKey` accepts.
 * @returns The relative path of the object's file.
 * @throws {InvalidKeyError} when the key is refused.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { localFsPath } from "./paths.ts";
 *
 * assert.equal(localFsPath("store.json"), "store.json");
 * assert.equal(localFsPath("packs/01j9z/01j9z3kxabcdefghjkmnpqrstv"), "packs/01j9z/01j9z3kxabcdefghjkmnpqrstv");
 * assert.throws(() => localFsPath("../x"));
 * ```
 */
export function localFsPath(key: string): string {
  validateKey(key);
  return key;
}

/** The absolute path of the first `count` names below `root`. */
export function joinPath(root: string, names: readonly string[], count = names.length): string {
  return count === 0 ? root : root + SEP + names.slice(0, count).join(SEP);
}

/** A fresh temporary file name: never a key, never another writer's. */
export function tempName(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return TEMP_PREFIX + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** `lstat`, with `undefined` for a path that does not exist (or runs through a non-directory). */
export async function lstatOrUndefined(path: string): Promise<Deno.FileInfo | undefined> {
  try {
    return await Deno.lstat(path);
  } catch (e) {
    if (isMissing(e) || e instanceof Deno.errors.NotADirectory) return undefined;
    throw e;
  }
}

/**
 * `lstat` without leaving the thread, with `undefined` for a path that does not
 * exist (or runs through a non-directory). The per-operation path checks use
 * it: on a local disk an `lstat` takes microseconds, and the asynchronous one
 * cost five to eight times as much in dispatch alone (docs/DRIVERS.md).
 */
export function lstatSyncOrUndefined(path: string): Deno.FileInfo | undefined {
  try {
    return Deno.lstatSync(path);
  } catch (e) {
    if (isMissing(e) || e instanceof Deno.errors.NotADirectory) return undefined;
    throw e;
  }
}

/** A directory, not a symlink to one. */
export function isRealDir(info: Deno.FileInfo | undefined): info is Deno.FileInfo {
  return info !== undefined && info.isDirectory && !info.isSymlink;
}

/** A regular file, not a symlink to one. */
export function isRealFile(info: Deno.FileInfo | undefined): info is Deno.FileInfo {
  return info !== undefined && info.isFile && !info.isSymlink;
}

/** Whether two `stat` results are the same file (device and inode, where known). */
export function sameFile(
  a: { dev: number | bigint; ino: number | bigint | null },
  b: { dev: number | bigint; ino: number | bigint | null },
): boolean {
  return Number(a.dev) === Number(b.dev) &&
    (a.ino === null || b.ino === null || Number(a.ino) === Number(b.ino));
}

/** Whether keys below the folder `bound` (ending with `/`) can match the listing. */
function dirWanted(bound: string, prefix: string, after: string | undefined): boolean {
  if (!bound.startsWith(prefix) && !prefix.startsWith(bound)) return false;
  // Every key below starts with `bound`: if `bound` sorts before `startAfter`
  // and is not a prefix of it, the whole subtree does.
  return after === undefined || after.startsWith(bound) || compareKeys(bound, after) > 0;
}

function keyWanted(key: string, prefix: string, after: string | undefined): boolean {
  return key.startsWith(prefix) && (after === undefined || compareKeys(key, after) > 0);
}

/** One entry of a directory being listed: an object, or a folder of keys. */
interface Child {
  /** The object's key, or the folder's key followed by `/`. */
  bound: string;
  name: string;
  dir: boolean;
}

/** What {@linkcode walk} needs from the driver. */
export interface WalkOptions {
  /** The root directory. */
  root: string;
  /** The listing's prefix. */
  prefix: string;
  /** Yield only keys after this one. */
  startAfter: string | undefined;
  /** Throws when the driver was closed meanwhile. */
  check: () => void;
}

/**
 * Lists the objects below the root in key order ({@linkcode compareKeys}),
 * depth first, one directory at a time. A directory's entries are sorted by
 * their key (a folder as its key followed by `/`), which is their order in
 * the whole listing, so nothing but the directories on the current path is
 * held. Folders entirely outside the prefix or at or before `startAfter` are
 * never read; names that are not key segments (temporary files, foreign
 * files) are skipped; a symlink or special file that the listing reaches is
 * refused with `PermissionDeniedError`. Sizes come from `lstat`, synchronous
 * (microseconds on a local disk), 64 at a time.
 *
 * @param options The root, the listing's arguments and the closed check.
 * @returns The objects, in order.
 */
export function walk(options: WalkOptions): AsyncIterable<ObjectInfo> {
  return visit(options, [], "");
}

async function* visit(
  o: WalkOptions,
  names: readonly string[],
  base: string,
): AsyncIterable<ObjectInfo> {
  o.check();
  const path = joinPath(o.root, names);
  const shown = base === "" ? "(root)" : base;
  const entries: Deno.DirEntry[] = [];
  try {
    if (names.length > 0) {
      // The parent listed this as a directory, possibly long ago: look again.
      const info = await Deno.lstat(path);
      if (!isRealDir(info)) throw refused(shown, "list", path, describe(info));
    }
    for await (const entry of Deno.readDir(path)) entries.push(entry);
  } catch (e) {
    // A directory emptied and pruned by a concurrent delete holds nothing;
    // the root missing is a failure, never an empty listing.
    if (isMissing(e) && names.length > 0) return;
    throw fsError(e, shown, "list");
  }

  const children: Child[] = [];
  for (const entry of entries) {
    const key = base + entry.name;
    if (!isValidKey(key)) continue; // temporary files, foreign names
    const entryPath = path + SEP + entry.name;
    if (entry.isDirectory && !entry.isSymlink) {
      if (dirWanted(key + "/", o.prefix, o.startAfter)) {
        children.push({ bound: key + "/", name: entry.name, dir: true });
      }
    } else if (entry.isFile && !entry.isSymlink) {
      if (keyWanted(key, o.prefix, o.startAfter)) {
        children.push({ bound: key, name: entry.name, dir: false });
      }
    } else if (
      keyWanted(key, o.prefix, o.startAfter) || dirWanted(key + "/", o.prefix, o.startAfter)
    ) {
      throw refused(key, "list", entryPath, describe(entry));
    }
  }
  children.sort((a, b) => compareKeys(a.bound, b.bound));

  for (let i = 0; i < children.length;) {
    const child = children[i]!;
    if (child.dir) {
      yield* visit(o, [...names, child.name], child.bound);
      i++;
      continue;
    }
    // A run of objects: their sizes, a batch at a time.
    let end = i;
    while (end < children.length && end - i < STAT_BATCH && !children[end]!.dir) end++;
    const batch = children.slice(i, end);
    // Synchronous: microseconds each on a local disk, where the asynchronous call's dispatch
    // cost several times as much (a rebuild's listing of 2,000 packs: 0.1 s → 0.02 s).
    const infos = batch.map(({ bound, name }) => {
      try {
        return lstatSyncOrUndefined(path + SEP + name);
      } catch (e) {
        throw fsError(e, bound, "list");
      }
    });
    for (const [j, { bound, name }] of batch.entries()) {
      const info = infos[j];
      if (info === undefined) continue; // deleted since the directory was read
      if (!isRealFile(info)) throw refused(bound, "list", path + SEP + name, describe(info));
      o.check();
      yield { key: bound, size: info.size };
    }
    i = end;
  }
}
