/**
 * The `localfs` driver: a Location in a local directory.
 *
 * Open one with {@linkcode openLocalFs}. Every object is a regular file
 * under the root, at the key's own path: key `packs/01j9z/01j9z3kx…` is the
 * file `packs/01j9z/01j9z3kx…`. Keys are plain (lower-case `a-z 0-9 . _ -`
 * segments, `docs/FORMAT.md` §1), so this mapping is portable and an operator
 * can read a store with `ls`, back it up with `rsync`, and see what each file
 * is. Temporary files are named `,tmp.<16 hex>` (a `,` is never in a key),
 * and listings skip every name that is not a key. The layout, and why, is in
 * `docs/DRIVERS.md` ("localfs").
 *
 * ## Guarantees
 *
 * - **Atomic put**: bytes go to a temporary file in the object's directory,
 *   which is then renamed over the object, so a reader sees the old or the new
 *   object, never a partial one.
 * - **Create-only put**: the fully written temporary file is hard-linked to
 *   the object's name; `link(2)` fails if the name exists, so exactly one of
 *   racing writers wins. On a filesystem without hard links (FAT, exFAT, some
 *   network shares, detected when the driver opens) `capabilities.createOnly`
 *   is `false` and the put checks, then renames.
 * - **Durable mode** (`durable: true`): a put fsyncs the file before the
 *   rename, then the object's directory and every directory above it up to
 *   the root (so a directory just created by this put, or by a concurrent one
 *   that has not finished yet, is durable too); a delete fsyncs the
 *   directory.
 * - **Order**: `list` walks the tree depth first, one directory at a time,
 *   each directory's entries in key order (a folder sorts as its name
 *   followed by `/`), so keys come out in the contract's order; folders that
 *   lie entirely before `startAfter` or outside the prefix are never read.
 * - **A key and its folder**: a key `K` needs a file at `K`, keys `K/…` a
 *   directory there, so they cannot both exist: the second is refused with
 *   {@linkcode InvalidKeyError}. A folder is not an object (`get` of it is
 *   {@linkcode NotFoundError}). capsa's own layout never needs both.
 * - **Symlinks**: the driver never follows a symbolic link under its root.
 *   Before a file is opened, created, renamed or removed, every entry on its
 *   path is checked with `lstat`; a symlink, or anything that is not a
 *   directory or regular file, is refused with
 *   {@linkcode PermissionDeniedError}. Files are opened with `O_NOFOLLOW`
 *   and `O_NONBLOCK` (a FIFO cannot block a read).
 * - **Races**: against a process that swaps entries *while* an operation
 *   runs, the driver checks a file it opened (an object to read, a temporary
 *   file to write) before reading or writing a byte: the path is checked
 *   again and must lead, through real directories, to the very file opened
 *   (same device and inode); otherwise a read starts over (and then refuses
 *   the symlink it finds) and a write is refused. This narrows the window
 *   to the moment of that check; it cannot close it, because Deno offers
 *   no `openat`, and `/proc/self/fd` only with `--allow-all`. For the same
 *   reason a `mkdir`, `rename`, `link`, `unlink` or `rmdir` names its path
 *   again after the last check: a racer who swaps a directory for a symlink
 *   at that instant can make the call act in the symlink's target, on a
 *   name that is a key segment (a directory made, an object committed or
 *   removed). The root itself is resolved (`realpath`) once, when the driver
 *   opens; it and its parents are trusted.
 * - **Errors**: a missing object is {@linkcode NotFoundError}; `EACCES`,
 *   `EPERM`, `EROFS` and Deno's permission checks are
 *   {@linkcode PermissionDeniedError}; `EAGAIN`, `EBUSY`, `EINTR`, `EMFILE`,
 *   `ENFILE` and `ETIMEDOUT` are {@linkcode TransientError}; a path longer than
 *   the system allows is {@linkcode InvalidKeyError}; anything else (`EIO`,
 *   `ENOSPC`, `EDQUOT`…) is {@linkcode LocalFsError}, with the system error as
 *   its `cause`. The driver does not retry (it is local); callers that want
 *   retries wrap it in `RetryingDriver`.
 *
 * @example Opening a store directory
 * ```ts
 * import assert from "node:assert/strict";
 * import { openLocalFs } from "@capsa/capsa/drivers/localfs";
 *
 * const root = await Deno.makeTempDir();
 * const driver = await openLocalFs(root, { durable: true });
 * await driver.put("packs/01j9z/01j9z3kxabcdefghjkmnpqrstv", new Uint8Array([1, 2, 3]));
 * const keys = [];
 * for await (const info of driver.list("packs/")) keys.push(info.key);
 * assert.deepEqual(keys, ["packs/01j9z/01j9z3kxabcdefghjkmnpqrstv"]);
 * assert.equal((await Deno.stat(`${root}/packs/01j9z/01j9z3kxabcdefghjkmnpqrstv`)).size, 3);
 * await driver.close();
 * await Deno.remove(root, { recursive: true });
 * ```
 *
 * @module
 */

export { LocalFsDriver, type LocalFsOptions, openLocalFs } from "./driver.ts";
export { LocalFsError, type LocalFsErrorOptions } from "./errors.ts";
export { localFsPath } from "./paths.ts";
export { canonicalLocation, defaultCacheRoot, defaultHostDir, openHostStorage } from "./host.ts";
// Re-exported so that this entry point documents every type its API names.
export type { Driver, DriverCapabilities, ListOptions, ObjectInfo, PutOptions } from "../driver.ts";
export { CapsaError } from "../../errors.ts";
