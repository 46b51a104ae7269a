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
 * import { MemoryDriver } from "./drivers/memory.ts";
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

/**
 * No artifact (or no such version of it) exists.
 *
 * @example
 * ```ts
 * import { ArtifactNotFoundError, NotFoundError } from "./errors.ts";
 * const e = new ArtifactNotFoundError("photos", "2024/cat.jpg");
 * console.log(e instanceof NotFoundError, e.code); // true "not_found"
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
 * import { StoreCorruptedError } from "./errors.ts";
 * const e = new StoreCorruptedError(["store.json: missing"]);
 * console.log(e.code); // "store_corrupted"
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
 * import { StoreMovedError } from "./errors.ts";
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
 * import { MaintenanceModeError } from "./errors.ts";
 * const e = new MaintenanceModeError("offline", "RebuildIndex on host-a (pid 7)");
 * console.log(e.retryable); // true
 * ```
 */
export class MaintenanceModeError extends CapsaError {
  /** The mode in force. */
  readonly mode: string;
  /**
   * Creates the error.
   * @param mode `read-only` or `offline`.
   * @param holder Who runs the maintenance.
   */
  constructor(mode: string, holder: string) {
    super(
      "maintenance_mode",
      `the store is in maintenance (${mode}) by ${holder}: retry when it finishes (see \`capsa status\`)`,
      true,
    );
    this.mode = mode;
  }
}

/**
 * The store handle is read-only (opened so, or the Location forbids writes).
 *
 * @example
 * ```ts
 * import { ReadOnlyStoreError } from "./errors.ts";
 * console.log(new ReadOnlyStoreError().code); // "read_only"
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
 * import { HostStorageRequiredError } from "./errors.ts";
 * console.log(new HostStorageRequiredError().code); // "host_storage_required"
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
