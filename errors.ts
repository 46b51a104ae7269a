/**
 * capsa's error hierarchy and its one table of error codes.
 *
 * Every error capsa throws is a {@linkcode CapsaError}: it carries a stable
 * machine-readable {@linkcode CapsaError.code}, an optional `cause`, and
 * {@linkcode CapsaError.retryable}, which says whether trying the same call
 * again can help. Callers catch the thin subclasses.
 *
 * {@linkcode ERROR_CODES} is the only list of codes: for each one its default
 * `retryable`, the HTTP status the endpoint answers with, the exit code of
 * the CLI and what to do. {@linkcode ErrorCode} is derived from it, so an
 * error cannot carry a code the table does not know; the HTTP layer
 * (`http/errors.ts`) and the CLI (`cli/_output.ts`) read statuses and exit
 * codes from it, and `errors_test.ts` checks that docs/OPERATIONS.md lists
 * every code with the same exit code and status.
 *
 * @example Catching a missing object
 * ```ts
 * import assert from "node:assert/strict";
 * import { NotFoundError } from "@capsa/capsa";
 * import { MemoryDriver } from "@capsa/capsa";
 *
 * const driver = new MemoryDriver();
 * try {
 *   await driver.get("packs/none");
 * } catch (e) {
 *   if (!(e instanceof NotFoundError)) throw e;
 *   assert.deepEqual(e.code, "not_found");
 * }
 * ```
 *
 * @module
 */

/**
 * The exit codes of every `capsa` command (documented in `capsa --help` and
 * docs/OPERATIONS.md). An error's exit code is {@linkcode ErrorCodeInfo.exit}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ERROR_CODES, EXIT_CODES } from "@capsa/capsa";
 * assert.deepEqual(ERROR_CODES.lease_held.exit === EXIT_CODES.leaseHeld, true);
 * ```
 */
export const EXIT_CODES = {
  /** The command did what was asked. */
  ok: 0,
  /** The command failed; the error line says why and what to do. */
  failed: 1,
  /** The command line is wrong (unknown command or flag, missing argument). */
  usage: 2,
  /** Problems were found (`capsa verify`). */
  problems: 3,
  /** Another holder has the maintenance lease. */
  leaseHeld: 4,
  /** The store is corrupted: it needs `capsa rebuild` (with `--kit` when the descriptor is lost). */
  corrupted: 5,
  /** The store is encrypted and the passphrase is wrong or missing. */
  passphrase: 6,
} as const;
Object.freeze(EXIT_CODES);

/** What {@linkcode ERROR_CODES} says about one error code. */
export interface ErrorCodeInfo {
  /** Whether an error of this code is retryable unless its thrower says otherwise. */
  readonly retryable: boolean;
  /** The HTTP status the endpoint answers with. */
  readonly status: number;
  /** The exit code of a CLI command that fails with it (see {@linkcode EXIT_CODES}). */
  readonly exit: number;
  /** What it means and what to do, in one line. */
  readonly description: string;
}

const failed = EXIT_CODES.failed;
const usage = EXIT_CODES.usage;
const leaseHeld = EXIT_CODES.leaseHeld;
const corrupted = EXIT_CODES.corrupted;
const passphrase = EXIT_CODES.passphrase;

/**
 * Every error code capsa uses, with its default `retryable`, HTTP status,
 * CLI exit code and a one-line description. docs/OPERATIONS.md lists the
 * same codes (checked by `errors_test.ts`).
 *
 * Codes only the CLI raises (`usage`, `file_exists`, …) still have a status,
 * and codes only the HTTP endpoint raises (`unauthorized`, …) still have an
 * exit code, so that every code maps to both without a fallback.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ERROR_CODES } from "@capsa/capsa";
 * const { status, exit, retryable } = ERROR_CODES.maintenance_mode;
 * assert.deepEqual([status, exit, retryable], [503, 1, true]);
 * ```
 */
export const ERROR_CODES = {
  aborted: {
    retryable: false,
    status: 500,
    exit: failed,
    description:
      "the operation was stopped (Ctrl-C, an aborted job); nothing half-done is kept: run it again",
  },
  broken_pipe: {
    retryable: false,
    status: 500,
    exit: failed,
    description:
      "a pipe or socket was closed by its other end before everything was written (a closed stdout, as in `capsa ls S ns | head -1`, is not an error: the command stops and exits 0)",
  },
  closed: {
    retryable: false,
    status: 503,
    exit: failed,
    description: "a store, driver or job registry was used after it was closed: open it again",
  },
  copy_mismatch: {
    retryable: true,
    status: 503,
    exit: failed,
    description:
      "a move copied objects that did not arrive intact and was not committed: fix the cause and run it again",
  },
  corrupt_object: {
    retryable: false,
    status: 500,
    exit: failed,
    description:
      "an object's bytes do not match (hash, checksum, truncation); the message names it: rebuild skips and lists such objects",
  },
  descriptor_conflict: {
    retryable: false,
    status: 500,
    exit: corrupted,
    description:
      "valid descriptor replicas disagree with no majority: rebuild with the store's Recovery Kit",
  },
  destination_holds_store: {
    retryable: false,
    status: 409,
    exit: failed,
    description: "a move's destination holds another store: choose an empty destination",
  },
  destination_not_empty: {
    retryable: false,
    status: 409,
    exit: failed,
    description:
      "a move's destination holds objects that are not a partial copy of this store, or is the source: choose an empty destination",
  },
  file_exists: {
    retryable: false,
    status: 409,
    exit: failed,
    description:
      "the CLI refused to replace an existing file (a Recovery Kit, an output): choose another path",
  },
  host_storage_required: {
    retryable: false,
    status: 409,
    exit: failed,
    description:
      "the store keeps its manifests only on the host (manifestStorage Local): pass the host storage (--host-dir) that holds them",
  },
  index_too_new: {
    retryable: false,
    status: 500,
    exit: failed,
    description:
      "the host index was written by a newer capsa: upgrade capsa, or delete the host cache to rebuild it",
  },
  incomplete_body: {
    retryable: false,
    status: 400,
    exit: failed,
    description:
      "an HTTP request body ended before it was complete (the client disconnected): a PUT stored nothing, a batch upload only the entries before the cut; send it again",
  },
  internal: {
    retryable: false,
    status: 500,
    exit: failed,
    description:
      "an unexpected error (a bug): report it with the command or request and the server's log",
  },
  invalid_archive: {
    retryable: false,
    status: 400,
    exit: failed,
    description:
      "an HTTP batch upload's tar body is corrupt or truncated at the byte offset the message names: the entries before it were stored (the answer lists them); send the rest again",
  },
  invalid_argument: {
    retryable: false,
    status: 400,
    exit: failed,
    description:
      "a Location URL, option or argument is malformed or names something unknown: the message says which",
  },
  invalid_key: {
    retryable: false,
    status: 400,
    exit: failed,
    description:
      "a key was refused before reaching the medium (malformed, or could escape the Location): use another key",
  },
  io_error: {
    retryable: false,
    status: 500,
    exit: failed,
    description:
      "the local filesystem failed (EIO, ENOSPC, EDQUOT, the root gone): fix the disk, space or quota named",
  },
  is_a_directory: {
    retryable: false,
    status: 400,
    exit: failed,
    description: "the CLI was given a directory where it needs a file name: give a file name",
  },
  job_not_running: {
    retryable: false,
    status: 409,
    exit: failed,
    description: "an HTTP maintenance job cannot be aborted: it has already finished",
  },
  key_conflict: {
    retryable: false,
    status: 409,
    exit: failed,
    description:
      "`get --to` skipped a key that is both a file and the directory of other keys: restore it with `-o FILE`",
  },
  kit_inside_store: {
    retryable: false,
    status: 400,
    exit: failed,
    description:
      "the Recovery Kit would be written inside the store's own directory: give `--kit FILE` outside it, or run `capsa init` from another directory",
  },
  kit_not_written: {
    retryable: false,
    status: 500,
    exit: failed,
    description:
      "the store was created but its Recovery Kit could not be written: run `capsa kit LOCATION --out FILE` at once",
  },
  last_key_slot: {
    retryable: false,
    status: 409,
    exit: failed,
    description:
      "the last key slot of an encrypted store cannot be removed (nothing could open the store): add another first (`capsa key add`)",
  },
  lease_held: {
    retryable: false,
    status: 409,
    exit: leaseHeld,
    description:
      "another agent holds the maintenance lease (the message names it): wait, or --force if that holder is gone",
  },
  lease_lost: {
    retryable: false,
    status: 409,
    exit: failed,
    description:
      "the agent lost its lease (taken over, not renewed in time) and stopped; nothing more was written: run it again",
  },
  location_not_empty: {
    retryable: false,
    status: 409,
    exit: failed,
    description:
      "`capsa init` or `capsa move` was given a directory that holds files which are not part of a store (whatever they are): choose a new or empty directory",
  },
  maintenance_mode: {
    retryable: true,
    status: 503,
    exit: failed,
    description:
      "an agent holds the store offline or read-only: retry when it finishes (`capsa status` shows who)",
  },
  method_not_allowed: {
    retryable: false,
    status: 405,
    exit: failed,
    description: "the HTTP method is not served on that path: use one named in the Allow header",
  },
  no_snapshot: {
    retryable: false,
    status: 409,
    exit: failed,
    description:
      "a rebuild from an index snapshot found no valid snapshot: use source Auto or FullScan",
  },
  no_store: {
    retryable: false,
    status: 404,
    exit: failed,
    description:
      "the Location holds nothing (missing or empty directory or prefix): check it; `capsa init` creates a store",
  },
  not_found: {
    retryable: false,
    status: 404,
    exit: failed,
    description: "the object, artifact, version, job or file named does not exist",
  },
  payload_too_large: {
    retryable: false,
    status: 413,
    exit: failed,
    description: "an HTTP request body is over the limit the message states: send less",
  },
  passphrase_required: {
    retryable: false,
    status: 401,
    exit: passphrase,
    description:
      "the store is encrypted and no passphrase was given: set CAPSA_PASSPHRASE, pass --passphrase-file FILE, or type it at the prompt",
  },
  permission_denied: {
    retryable: false,
    status: 500,
    exit: failed,
    description:
      "the Location refused access (credentials, file permissions, a Deno permission): grant or fix what is named",
  },
  precondition_failed: {
    retryable: false,
    status: 412,
    exit: failed,
    description:
      "a create-only write found the key already present: another writer got there first",
  },
  range_not_satisfiable: {
    retryable: false,
    status: 416,
    exit: failed,
    description: "an HTTP Range lies outside the object: ask for a range within its size",
  },
  read_only: {
    retryable: false,
    status: 403,
    exit: failed,
    description:
      "the store handle is read-only: open it without readOnly (or serve it writable) to write",
  },
  recovery_kit_invalid: {
    retryable: false,
    status: 400,
    exit: failed,
    description:
      "the file is not a valid Recovery Kit (truncated, edited, wrong file); the message names the line",
  },
  recovery_kit_mismatch: {
    retryable: false,
    status: 409,
    exit: failed,
    description:
      "the Recovery Kit belongs to another store: use this store's kit (compare the store-id lines)",
  },
  recovery_kit_required: {
    retryable: false,
    status: 400,
    exit: corrupted,
    description:
      "every descriptor replica is lost and no Recovery Kit was given: rebuild with --kit FILE",
  },
  s3_error: {
    retryable: false,
    status: 502,
    exit: failed,
    description:
      "S3 answered in a way capsa does not expect (an unknown error, a malformed answer): the message has the details",
  },
  source_changing: {
    retryable: true,
    status: 503,
    exit: failed,
    description:
      "a move's source kept changing while it was copied: stop the writer that ignores the maintenance mode, run it again",
  },
  store_corrupted: {
    retryable: false,
    status: 503,
    exit: corrupted,
    description:
      "every descriptor replica is missing or invalid, or the config cannot be read: `capsa rebuild LOCATION --kit FILE`",
  },
  store_moved: {
    retryable: false,
    status: 410,
    exit: failed,
    description: "the store was moved; the message names where: open it there",
  },
  transient: {
    retryable: true,
    status: 503,
    exit: failed,
    description:
      "a failure that may pass (network, throttling, a 5xx answer, a short read), left after the driver's retries: try again",
  },
  unauthorized: {
    retryable: false,
    status: 401,
    exit: failed,
    description:
      "an HTTP request lacks the right bearer token: send `Authorization: Bearer <token>`",
  },
  unsafe_key: {
    retryable: false,
    status: 400,
    exit: failed,
    description:
      "`get --to` skipped a key that would be written outside the directory or cannot be a file name there: restore it with `-o FILE`",
  },
  unsafe_path: {
    retryable: false,
    status: 409,
    exit: failed,
    description:
      "`get --to` found a path that is a symbolic link or not a directory where it needs one: remove it, or restore elsewhere",
  },
  unsupported_feature: {
    retryable: false,
    status: 501,
    exit: failed,
    description: "the store uses a feature this version of capsa cannot serve: upgrade capsa",
  },
  unsupported_format_version: {
    retryable: false,
    status: 500,
    exit: failed,
    description:
      "an object is of a format version newer than this capsa reads: upgrade capsa, never overwrite the object",
  },
  usage: {
    retryable: false,
    status: 400,
    exit: usage,
    description:
      "the command line is wrong (unknown command or flag, missing argument): see `capsa <command> --help`",
  },
  wrong_passphrase: {
    retryable: false,
    status: 401,
    exit: passphrase,
    description:
      "the passphrase opens none of the store's key slots: check it (CAPSA_PASSPHRASE, --passphrase-file); nothing was changed",
  },
} as const satisfies Readonly<Record<string, ErrorCodeInfo>>;
for (const info of Object.values(ERROR_CODES)) Object.freeze(info);
Object.freeze(ERROR_CODES);

/**
 * Every error code: a key of {@linkcode ERROR_CODES}.
 *
 * @example
 * ```ts
 * import type { ErrorCode } from "./errors.ts";
 * const code: ErrorCode = "lease_held";
 * console.log(code);
 * ```
 */
export type ErrorCode = keyof typeof ERROR_CODES;

/**
 * Whether a string is a code of {@linkcode ERROR_CODES}.
 *
 * @param code The string.
 * @returns Whether the table has it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isErrorCode } from "@capsa/capsa";
 * assert.deepEqual([isErrorCode("not_found"), isErrorCode("nope")], [true, false]);
 * ```
 */
export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERROR_CODES, code);
}

/** Options accepted by every {@linkcode CapsaError} constructor. */
export interface CapsaErrorOptions {
  /** The underlying error, if any. */
  cause?: unknown;
}

/**
 * The root of every error capsa throws.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CapsaError, TransientError } from "@capsa/capsa";
 *
 * const e = new TransientError("S3 answered 503");
 * assert.deepEqual([e instanceof CapsaError, e.code, e.retryable], [true, "transient", true]);
 * ```
 */
export class CapsaError extends Error {
  /** A stable, machine-readable code of {@linkcode ERROR_CODES}, e.g. `"not_found"`. Never changes between versions. */
  readonly code: ErrorCode;
  /** Whether retrying the same call can succeed (e.g. a network hiccup). */
  readonly retryable: boolean;

  /**
   * Creates the error.
   * @param code The stable code, a key of {@linkcode ERROR_CODES}.
   * @param message A one-line, human-readable message.
   * @param retryable Whether a retry can help (default: the code's `retryable` in {@linkcode ERROR_CODES}).
   * @param options The cause, if any.
   */
  constructor(
    code: ErrorCode,
    message: string,
    // `?.`: a code from outside the table (cast, or another realm) is not retryable.
    retryable: boolean = ERROR_CODES[code]?.retryable ?? false,
    options: CapsaErrorOptions = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retryable = retryable;
  }
}

/**
 * The object named does not exist.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { NotFoundError } from "@capsa/capsa";
 * const e = new NotFoundError("blobs/ab/abcd");
 * assert.deepEqual(e.key, "blobs/ab/abcd");
 * ```
 */
export class NotFoundError extends CapsaError {
  /** The key (or name) that was not found. */
  readonly key: string;
  /**
   * Creates the error.
   * @param key The key that was not found.
   * @param options The cause, if any.
   */
  constructor(key: string, options: CapsaErrorOptions = {}) {
    super("not_found", `no object at "${key}"`, false, options);
    this.key = key;
  }
}

/**
 * A conditional write lost: a create-only put found the key already present.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { PreconditionFailedError } from "@capsa/capsa";
 * const e = new PreconditionFailedError("system.state/maintenance/lease");
 * assert.deepEqual(e.code, "precondition_failed");
 * ```
 */
export class PreconditionFailedError extends CapsaError {
  /** The key whose precondition failed. */
  readonly key: string;
  /**
   * Creates the error.
   * @param key The key whose precondition failed.
   * @param options The cause, if any.
   */
  constructor(key: string, options: CapsaErrorOptions = {}) {
    super("precondition_failed", `"${key}" already exists (create-only put lost)`, false, options);
    this.key = key;
  }
}

/**
 * A key was refused before it reached any medium: it could escape the
 * Location, or it is malformed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { InvalidKeyError } from "@capsa/capsa";
 * const e = new InvalidKeyError("../etc/passwd", "segment '..' is not allowed");
 * assert.deepEqual(e.reason, "segment '..' is not allowed");
 * ```
 */
export class InvalidKeyError extends CapsaError {
  /** The refused key, with control characters escaped so it prints safely. */
  readonly key: string;
  /** Why it was refused. */
  readonly reason: string;
  /**
   * Creates the error.
   * @param key The refused key.
   * @param reason Why it was refused.
   */
  constructor(key: string, reason: string) {
    const shown = JSON.stringify(key.length > 200 ? key.slice(0, 200) + "…" : key);
    super("invalid_key", `invalid key ${shown}: ${reason}`);
    this.key = shown;
    this.reason = reason;
  }
}

/**
 * The medium refused access (file permissions, S3 403, Deno permissions).
 *
 * @example
 * ```ts
 * import { PermissionDeniedError } from "@capsa/capsa";
 * const e = new PermissionDeniedError("store.json", "read");
 * console.log(e.message);
 * ```
 */
export class PermissionDeniedError extends CapsaError {
  /** The key concerned. */
  readonly key: string;
  /**
   * Creates the error.
   * @param key The key concerned.
   * @param operation What was attempted (`"read"`, `"write"`, …).
   * @param options The cause, if any.
   */
  constructor(key: string, operation: string, options: CapsaErrorOptions = {}) {
    super(
      "permission_denied",
      `permission denied to ${operation} "${key}": check the credentials or file permissions`,
      false,
      options,
    );
    this.key = key;
  }
}

/**
 * A failure that may pass: network errors, throttling, 5xx answers. Retrying
 * can help; drivers retry these themselves up to a bound before throwing.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TransientError } from "@capsa/capsa";
 * const e = new TransientError("connection reset", { cause: new Error("ECONNRESET") });
 * assert.deepEqual(e.retryable, true);
 * ```
 */
export class TransientError extends CapsaError {
  /**
   * Creates the error.
   * @param message What failed.
   * @param options The cause, if any.
   */
  constructor(message: string, options: CapsaErrorOptions = {}) {
    super("transient", message, true, options);
  }
}

/**
 * A Location URL, option or argument is malformed or names something unknown.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { InvalidArgumentError } from "@capsa/capsa";
 * const e = new InvalidArgumentError('unknown Location scheme "ftp:"');
 * assert.deepEqual(e.code, "invalid_argument");
 * ```
 */
export class InvalidArgumentError extends CapsaError {
  /**
   * Creates the error.
   * @param message What is wrong and, where possible, what to do.
   * @param options The cause, if any.
   */
  constructor(message: string, options: CapsaErrorOptions = {}) {
    super("invalid_argument", message, false, options);
  }
}

/**
 * An object read from a Location (pack, manifest, snapshot, descriptor…) is
 * truncated, corrupted, of an unknown format version or of another store.
 *
 * @example
 * ```ts
 * import { CorruptObjectError } from "@capsa/capsa";
 * const e = new CorruptObjectError("packs/01J…", "trailer checksum mismatch");
 * console.log(e.key, e.reason);
 * ```
 */
export class CorruptObjectError extends CapsaError {
  /** The key of the object that failed to parse. */
  readonly key: string;
  /** What is wrong with it. */
  readonly reason: string;
  /**
   * Creates the error.
   * @param key The object's key.
   * @param reason What is wrong with it.
   * @param options The cause, if any.
   */
  constructor(key: string, reason: string, options: CapsaErrorOptions = {}) {
    super("corrupt_object", `"${key}" is corrupt: ${reason}`, false, options);
    this.key = key;
    this.reason = reason;
  }
}

/**
 * An object of a format version this code does not know (a newer capsa wrote
 * it). It is a {@linkcode CorruptObjectError} for callers that only ask "can I
 * use this?", but has its own code, `"unsupported_format_version"`, because
 * the remedy differs: upgrade capsa, never overwrite the object.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { UnsupportedFormatVersionError } from "@capsa/capsa";
 * const e = new UnsupportedFormatVersionError("store.json", 2, [1]);
 * assert.deepEqual([e.code, e.found, e.known], ["unsupported_format_version", 2, [1]]);
 * ```
 */
export class UnsupportedFormatVersionError extends CorruptObjectError {
  /** The stable code. */
  override readonly code: ErrorCode = "unsupported_format_version";
  /** The version found in the object. */
  readonly found: number;
  /** The versions this code reads. */
  readonly known: readonly number[];
  /**
   * Makes the error for an object of an unknown format version.
   *
   * @param key The object's key.
   * @param found The version found.
   * @param known The versions this code reads.
   */
  constructor(key: string, found: number, known: readonly number[]) {
    super(
      key,
      `unknown formatVersion ${found} (this version of capsa reads ${known.join(", ")}); ` +
        "upgrade capsa to open it",
    );
    // Not "is corrupt": the object may be perfectly sound, only newer than this code.
    this.message = `"${key}" is of an unknown format version ${found} ` +
      `(this version of capsa reads ${known.join(", ")}); upgrade capsa to open it`;
    this.found = found;
    this.known = known;
  }
}

/**
 * The driver (or store) was used after `close()`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ClosedError } from "@capsa/capsa";
 * const e = new ClosedError("memory driver");
 * assert.deepEqual(e.code, "closed");
 * ```
 */
export class ClosedError extends CapsaError {
  /**
   * Creates the error.
   * @param what What was closed.
   */
  constructor(what: string) {
    super("closed", `${what} is closed`);
  }
}

/**
 * No artifact (or no such version of it) exists.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ArtifactNotFoundError, NotFoundError } from "@capsa/capsa";
 * const e = new ArtifactNotFoundError("photos", "2024/cat.jpg");
 * assert.deepEqual([e instanceof NotFoundError, e.code], [true, "not_found"]);
 * ```
 */
export class ArtifactNotFoundError extends NotFoundError {
  /** The namespace. */
  readonly namespace: string;
  /** The artifact key. */
  readonly artifactKey: string;
  /**
   * Creates the error.
   * @param namespace The namespace.
   * @param key The artifact key.
   * @param version The version asked for, if any.
   */
  constructor(namespace: string, key: string, version?: string) {
    super(`${namespace}/${key}`);
    this.message = version === undefined
      ? `no artifact "${key}" in namespace "${namespace}"`
      : `no version ${version} of artifact "${key}" in namespace "${namespace}"`;
    this.namespace = namespace;
    this.artifactKey = key;
  }
}

/**
 * The store cannot serve data: every descriptor replica is missing or
 * invalid, or its index cannot be loaded.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StoreCorruptedError } from "@capsa/capsa";
 * const e = new StoreCorruptedError(["store.json: missing"]);
 * assert.deepEqual(e.code, "store_corrupted");
 * ```
 */
export class StoreCorruptedError extends CapsaError {
  /** What is wrong. */
  readonly problems: readonly string[];
  /**
   * Creates the error.
   * @param problems What is wrong.
   */
  constructor(problems: readonly string[]) {
    super(
      "store_corrupted",
      `the store is corrupted (${
        problems.join("; ")
      }): run \`capsa rebuild LOCATION --kit RECOVERY_KIT\``,
    );
    this.problems = problems;
  }
}

/**
 * The store was moved to another Location (`system.state/moved`).
 *
 * @example
 * ```ts
 * import { StoreMovedError } from "@capsa/capsa";
 * const e = new StoreMovedError("s3://bucket/store");
 * console.log(e.destination);
 * ```
 */
export class StoreMovedError extends CapsaError {
  /** Where the store lives now. */
  readonly destination: string;
  /**
   * Creates the error.
   * @param destination Where the store lives now.
   */
  constructor(destination: string) {
    super("store_moved", `the store was moved to ${destination}: open it there`);
    this.destination = destination;
  }
}

/**
 * A maintenance agent holds the store (read-only or offline) and the
 * operation is not allowed until it finishes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MaintenanceModeError } from "@capsa/capsa";
 * const e = new MaintenanceModeError("offline", "RebuildIndex on host-a (pid 7)");
 * assert.deepEqual(e.retryable, true);
 * ```
 */
export class MaintenanceModeError extends CapsaError {
  /** The mode in force. */
  readonly mode: string;
  /** When the holder's lease expires (ms since the epoch), if known. */
  readonly until: number | undefined;
  /**
   * Creates the error.
   * @param mode `read-only` or `offline`.
   * @param holder Who runs the maintenance.
   * @param until When the holder's lease expires (ms since the epoch), if known: a holder
   *   that died without being seen dead (another host, or no `--allow-run`) holds the store
   *   until then, and the message says so.
   */
  constructor(mode: string, holder: string, until?: number) {
    super(
      "maintenance_mode",
      `the store is in maintenance (${mode}) by ${holder}: retry when it finishes` +
        (until === undefined
          ? " (see `capsa status`)"
          : `; if that process has died, the mode lapses when its lease expires at ${
            new Date(until).toISOString()
          }, or a new agent takes over with --force (see \`capsa status\`)`),
      true,
    );
    this.mode = mode;
    this.until = until;
  }
}

/**
 * The store handle is read-only (opened so, or the Location forbids writes).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ReadOnlyStoreError } from "@capsa/capsa";
 * assert.deepEqual(new ReadOnlyStoreError().code, "read_only");
 * ```
 */
export class ReadOnlyStoreError extends CapsaError {
  /** Creates the error. */
  constructor() {
    super("read_only", "this store handle is read-only: open it without readOnly to write");
  }
}

/**
 * `ManifestStorage` is `Local` (manifests live only in the host manifest log)
 * but no host storage was given: opening the store or running an agent on it
 * would answer without its manifests, and a put would leave a pack no
 * manifest names.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { HostStorageRequiredError } from "@capsa/capsa";
 * assert.deepEqual(new HostStorageRequiredError().code, "host_storage_required");
 * ```
 */
export class HostStorageRequiredError extends CapsaError {
  /** Creates the error. */
  constructor() {
    super(
      "host_storage_required",
      "manifests are kept only on the host (manifestStorage Local): pass the host storage (--host-dir) that holds the manifest log",
    );
  }
}
