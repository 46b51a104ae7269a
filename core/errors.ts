/**
 * capsa's error hierarchy.
 *
 * Every error capsa throws is a {@linkcode CapsaError}: it carries a stable
 * machine-readable {@linkcode CapsaError.code}, an optional `cause`, and
 * {@linkcode CapsaError.retryable}, which says whether trying the same call
 * again can help. Callers catch the thin subclasses; the CLI maps codes to
 * exit codes and the HTTP endpoint maps them to statuses.
 *
 * @example Catching a missing object
 * ```ts
 * import { NotFoundError } from "./errors.ts";
 * import { MemoryDriver } from "../drivers/memory.ts";
 *
 * const driver = new MemoryDriver();
 * try {
 *   await driver.get("packs/none");
 * } catch (e) {
 *   if (!(e instanceof NotFoundError)) throw e;
 *   console.log(e.code); // "not_found"
 * }
 * ```
 *
 * @module
 */

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
 * import { CapsaError, TransientError } from "./errors.ts";
 *
 * const e = new TransientError("S3 answered 503");
 * console.log(e instanceof CapsaError, e.code, e.retryable); // true "transient" true
 * ```
 */
export class CapsaError extends Error {
  /** A stable, machine-readable code, e.g. `"not_found"`. Never changes between versions. */
  readonly code: string;
  /** Whether retrying the same call can succeed (e.g. a network hiccup). */
  readonly retryable: boolean;

  /**
   * Creates the error.
   * @param code The stable code.
   * @param message A one-line, human-readable message.
   * @param retryable Whether a retry can help.
   * @param options The cause, if any.
   */
  constructor(code: string, message: string, retryable = false, options: CapsaErrorOptions = {}) {
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
 * import { NotFoundError } from "./errors.ts";
 * const e = new NotFoundError("blobs/ab/abcd");
 * console.log(e.key); // "blobs/ab/abcd"
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
 * import { PreconditionFailedError } from "./errors.ts";
 * const e = new PreconditionFailedError("system.state/maintenance/lease");
 * console.log(e.code); // "precondition_failed"
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
 * import { InvalidKeyError } from "./errors.ts";
 * const e = new InvalidKeyError("../etc/passwd", "segment '..' is not allowed");
 * console.log(e.reason); // "segment '..' is not allowed"
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
 * import { PermissionDeniedError } from "./errors.ts";
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
 * import { TransientError } from "./errors.ts";
 * const e = new TransientError("connection reset", { cause: new Error("ECONNRESET") });
 * console.log(e.retryable); // true
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
 * import { InvalidArgumentError } from "./errors.ts";
 * const e = new InvalidArgumentError('unknown Location scheme "ftp:"');
 * console.log(e.code); // "invalid_argument"
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
 * import { CorruptObjectError } from "./errors.ts";
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
 * The driver (or store) was used after `close()`.
 *
 * @example
 * ```ts
 * import { ClosedError } from "./errors.ts";
 * const e = new ClosedError("memory driver");
 * console.log(e.code); // "closed"
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
