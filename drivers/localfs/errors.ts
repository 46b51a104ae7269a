/**
 * How the `localfs` driver reports failures: operating-system errors mapped to
 * capsa's typed errors, and {@linkcode LocalFsError} for the rest. The table
 * is in `docs/DRIVERS.md` ("localfs", "Errors").
 *
 * @module
 */

import {
  CapsaError,
  InvalidKeyError,
  NotFoundError,
  PermissionDeniedError,
  TransientError,
} from "../../errors.ts";

/** Options of the {@linkcode LocalFsError} constructor. */
export interface LocalFsErrorOptions {
  /** The underlying error, if any. */
  cause?: unknown;
  /** The system error code, e.g. `"EIO"`. */
  errno?: string;
  /** What went wrong, replacing the description derived from `errno`. */
  detail?: string;
}

const ERRNO_HINTS: Record<string, string> = {
  ENOSPC: "no space left on the device (ENOSPC)",
  EDQUOT: "disk quota exceeded (EDQUOT)",
  EIO: "input/output error (EIO): check the disk",
};

/**
 * An unexpected failure of the local filesystem (`EIO`, `ENOSPC`, `EDQUOT`,
 * the root directory gone…). The system error is the `cause`; its code is in
 * {@linkcode LocalFsError.errno}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { LocalFsError } from "@capsa/capsa/drivers/localfs";
 *
 * const e = new LocalFsError("packs/01j9z/01j9z3kxabcdefghjkmnpqrstv", "write", { errno: "ENOSPC" });
 * assert.equal(e.code, "io_error");
 * assert.equal(e.errno, "ENOSPC");
 * assert.match(e.message, /no space left/);
 * ```
 */
export class LocalFsError extends CapsaError {
  /** The key concerned (or the root path, for a failure of the root). */
  readonly key: string;
  /** The system error code, e.g. `"EIO"`, when there is one. */
  readonly errno: string | undefined;
  /**
   * Makes the error; the message names the operation, the key and the system error.
   *
   * @param key The key concerned.
   * @param operation What was attempted (`"read"`, `"write"`, …).
   * @param options The `cause`, the system error code (`errno`) and a `detail`
   * that replaces the default description.
   */
  constructor(key: string, operation: string, options: LocalFsErrorOptions = {}) {
    const errno = options.errno;
    const detail = options.detail ??
      (errno === undefined ? "unexpected filesystem error" : (ERRNO_HINTS[errno] ?? errno));
    super("io_error", `cannot ${operation} "${key}": ${detail}`, false, { cause: options.cause });
    this.key = key;
    this.errno = errno;
  }
}

/** What the driver was doing, for messages. */
export type Operation = "read" | "write" | "delete" | "list" | "open";

/** The system error code of an error (`"ENOENT"`…), from Deno's API or `node:fs`. */
export function errnoOf(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/** Whether `e` is a "no such file or directory" error, from Deno's API or `node:fs`. */
export function isMissing(e: unknown): boolean {
  return e instanceof Deno.errors.NotFound || errnoOf(e) === "ENOENT";
}

/** Maps a filesystem error to capsa's typed errors. */
export function fsError(e: unknown, key: string, operation: Operation): CapsaError {
  if (e instanceof CapsaError) return e;
  if (isMissing(e)) return new NotFoundError(key, { cause: e });
  if (e instanceof Deno.errors.PermissionDenied || e instanceof Deno.errors.NotCapable) {
    return new PermissionDeniedError(key, operation, { cause: e });
  }
  const errno = errnoOf(e);
  switch (errno) {
    case "EACCES":
    case "EPERM":
    case "EROFS":
      return new PermissionDeniedError(key, operation, { cause: e });
    case "ENAMETOOLONG":
      return new InvalidKeyError(key, "too long for this filesystem's path limit");
    case "EAGAIN":
    case "EBUSY":
    case "EINTR":
    case "EMFILE":
    case "ENFILE":
    case "ETIMEDOUT":
      return new TransientError(`cannot ${operation} "${key}": ${errno}`, { cause: e });
  }
  return new LocalFsError(key, operation, errno === undefined ? { cause: e } : { cause: e, errno });
}

/** Like {@linkcode fsError}, but a path vanishing under a put is not a missing object. */
export function writeError(e: unknown, key: string): CapsaError {
  if (isMissing(e)) {
    return new LocalFsError(key, "write", {
      cause: e,
      errno: "ENOENT",
      detail: "the temporary file or its directory vanished during the write",
    });
  }
  return fsError(e, key, "write");
}

/** What an entry is, for messages. */
export function describe(info: Deno.FileInfo | Deno.DirEntry): string {
  if (info.isSymlink) return "a symbolic link";
  if (info.isDirectory) return "a directory";
  if (info.isFile) return "a regular file";
  return "a special file";
}

/** The refusal for an entry that is a symlink, or of a type no key is stored as. */
export function refused(
  key: string,
  operation: Operation,
  path: string,
  found: string,
): CapsaError {
  return new PermissionDeniedError(key, operation, {
    cause: new Error(
      `${path} is ${found}; capsa does not follow symbolic links or use entries of ` +
        `unexpected types under its root`,
    ),
  });
}

/**
 * The refusal of a key that would need a file and a directory at one path:
 * `K/…` below an object `K`, or an object `K` where keys `K/…` exist.
 */
export function conflict(key: string, other: string): InvalidKeyError {
  return new InvalidKeyError(
    key,
    `it conflicts with ${other}: on localfs a key cannot also be the folder of other keys`,
  );
}
