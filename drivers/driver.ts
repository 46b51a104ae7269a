/**
 * The driver contract: the one interface every kind of Location implements.
 *
 * A {@linkcode Driver} is byte-oriented and deliberately small. Retries,
 * concurrency limits, fault injection and logging are wrappers that implement
 * the same interface, not flags inside each driver.
 *
 * ## Guarantees every driver gives
 *
 * 1. **Keys** are plain: `/`-separated segments of lower-case `a-z`, digits,
 *    `.`, `_` and `-`, checked by {@linkcode validateKey} before they reach
 *    any medium; a refused key throws {@linkcode InvalidKeyError} and touches
 *    nothing. Every driver refuses the same keys. A Location never holds a
 *    key `K` together with keys below it (`K/…`): capsa's layout never makes
 *    one, and a driver that stores keys as paths (`localfs`) refuses the
 *    second with {@linkcode InvalidKeyError}; others may accept it.
 * 2. **Read-after-write**: once `put` resolves, every later `get`, `stat` and
 *    `list` of the same driver (and, for shared media, of any driver on the
 *    same Location) sees the new object.
 * 3. **Atomic put**: a reader sees the old object or the new one, never a
 *    partial one, even while many writers put the same key. A put that fails
 *    leaves the old object (or none).
 * 4. **Create-only put** (`{ ifAbsent: true }`): where
 *    {@linkcode DriverCapabilities.createOnly} is `true`, exactly one of many
 *    racing create-only puts of one key wins; the others throw
 *    {@linkcode PreconditionFailedError}. Where it is `false` the driver still
 *    refuses a key it can see exists, but cannot exclude a race: callers
 *    needing exclusion (the maintenance lease) must use their documented
 *    fallback.
 * 5. **Missing objects** throw {@linkcode NotFoundError} from `get`,
 *    `getRange` and `stat`; `delete` of a missing key succeeds (idempotent).
 * 6. **Ranges**: `getRange(key, offset, length)` returns the bytes
 *    `[offset, min(offset + length, size))`; a range starting at or past the
 *    end returns an empty array; a negative or non-integer offset or length is
 *    an {@linkcode InvalidArgumentError}.
 * 7. **Listing**: `list(prefix, { startAfter })` yields every object whose key
 *    starts with `prefix` (a plain string prefix, not only whole segments), in
 *    ascending byte order of the keys (S3's order, see
 *    {@linkcode compareKeys}; `-` < `.` < `/` < digits < `_` < letters), each once,
 *    strictly after `startAfter` when given (`prefix` and `startAfter` are
 *    checked by {@linkcode validateListArgs}). A listing that fails part way
 *    throws: it never ends early as if the rest were absent.
 * 8. **Errors** are capsa's typed errors whatever the medium:
 *    {@linkcode NotFoundError}, {@linkcode PreconditionFailedError},
 *    {@linkcode InvalidKeyError}, {@linkcode PermissionDeniedError},
 *    {@linkcode TransientError} (retryable).
 * 9. After `close()`, every call throws {@linkcode ClosedError}.
 *
 * @example Using any driver
 * ```ts
 * import { MemoryDriver } from "@capsa/capsa";
 *
 * const driver = new MemoryDriver();
 * await driver.put("packs/0001", new Uint8Array([1, 2, 3]));
 * const head = await driver.getRange("packs/0001", 0, 2); // Uint8Array [1, 2]
 * for await (const info of driver.list("packs/")) console.log(info.key, info.size);
 * await driver.close();
 * ```
 *
 * @module
 */

import { InvalidArgumentError, InvalidKeyError } from "../errors.ts";
export {
  ClosedError,
  InvalidArgumentError,
  InvalidKeyError,
  NotFoundError,
  PermissionDeniedError,
  PreconditionFailedError,
  TransientError,
} from "../errors.ts";

/** What {@linkcode Driver.stat} and {@linkcode Driver.list} report about one object. */
export interface ObjectInfo {
  /** The object's key. */
  key: string;
  /** Its size in bytes. */
  size: number;
  /**
   * When it was last written, by the Location's clock, in ms since the epoch.
   * `stat` reports it where the medium can tell (every driver of capsa's
   * does; writers measure their clock against it); listings may omit it.
   */
  modified?: number;
}

/** Options of {@linkcode Driver.put}. */
export interface PutOptions {
  /**
   * Create-only: fail with {@linkcode PreconditionFailedError} if the key
   * already exists. Race-free only where
   * {@linkcode DriverCapabilities.createOnly} is `true`.
   */
  ifAbsent?: boolean;
}

/** Options of {@linkcode Driver.list}. */
export interface ListOptions {
  /** Yield only keys strictly greater than this one. */
  startAfter?: string;
}

/** What a driver can do, reported honestly (probed where it must be). */
export interface DriverCapabilities {
  /** Create-only puts exclude races: exactly one racing writer wins. */
  createOnly: boolean;
  /** A resolved put survives a power loss (fsync or a remote service's durability). */
  durable: boolean;
}

/** The interface of one kind of Location. See the module doc for the guarantees. */
export interface Driver {
  /** The driver's kind, e.g. `"memory"`, `"localfs"`, `"s3"`. */
  readonly kind: string;
  /** What this driver can do. */
  readonly capabilities: DriverCapabilities;
  /** A description of the Location safe to print (never credentials). */
  readonly location: string;
  /**
   * Reads a whole object.
   * @param key The object's key.
   * @returns Its bytes.
   */
  get(key: string): Promise<Uint8Array>;
  /**
   * Reads `length` bytes from `offset`, clipped at the end of the object.
   * @param key The object's key.
   * @param offset Where to start (0-based).
   * @param length How many bytes at most.
   * @returns The bytes in range (empty when the range starts at or past the end).
   */
  getRange(key: string, offset: number, length: number): Promise<Uint8Array>;
  /**
   * Writes a whole object atomically. Once the returned promise settles
   * successfully the driver holds no reference to `bytes`: the caller may
   * reuse the buffer (the write path recycles large pack buffers). A driver
   * that writes later (a queue, a cache) copies them first.
   * @param key The object's key.
   * @param bytes Its content.
   * @param options `ifAbsent` for a create-only put.
   */
  put(key: string, bytes: Uint8Array, options?: PutOptions): Promise<void>;
  /**
   * Deletes an object; deleting a missing key succeeds.
   * @param key The object's key.
   */
  delete(key: string): Promise<void>;
  /**
   * Reports an object's size.
   * @param key The object's key.
   * @returns Its {@linkcode ObjectInfo}.
   */
  stat(key: string): Promise<ObjectInfo>;
  /**
   * Lists objects under a prefix in lexicographic key order.
   * @param prefix A plain string prefix (`""` for everything).
   * @param options `startAfter` to resume after a key.
   * @returns The objects, in order.
   */
  list(prefix: string, options?: ListOptions): AsyncIterable<ObjectInfo>;
  /** Releases the driver's resources; later calls throw {@linkcode ClosedError}. */
  close(): Promise<void>;
}

/** The longest key accepted, in bytes (S3's own limit; a key is ASCII, so bytes are characters). */
export const MAX_KEY_BYTES = 1024;

/** The longest segment accepted: a file name's limit on common filesystems (`NAME_MAX`). */
const MAX_SEGMENT_BYTES = 255;
/** The alphabet of a segment (`docs/FORMAT.md` §1). */
const SEGMENT_CHARS = /^[a-z0-9._-]*$/;
/** Names Windows reserves for devices, with or without an extension. */
const DEVICE_NAME = /^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\.|$)/;

/** Why one character is refused, for the error message. */
function charProblem(segment: string): string {
  const c = [...segment].find((ch) => !/^[a-z0-9._-]$/.test(ch))!;
  if (c === "\\") return "backslashes are not allowed";
  if (/^[A-Z]$/.test(c)) return "upper-case letters are not allowed (keys are lower case)";
  const code = c.codePointAt(0)!;
  const shown = code < 0x20 || code === 0x7f || code > 0x7e
    ? `U+${code.toString(16).toUpperCase().padStart(4, "0")}`
    : JSON.stringify(c);
  return `character ${shown} is not allowed (a key is made of a-z 0-9 . _ - and /)`;
}

function segmentProblem(segment: string, whole: boolean): string | undefined {
  if (segment === "") return whole ? "empty segments are not allowed" : undefined;
  if (!SEGMENT_CHARS.test(segment)) return charProblem(segment);
  if (segment === "." || segment === "..") return `segment '${segment}' is not allowed`;
  if (segment.length > MAX_SEGMENT_BYTES) {
    return `a segment is longer than ${MAX_SEGMENT_BYTES} bytes`;
  }
  if (!whole) return undefined;
  // A plain mapping to files must be portable: Windows drops a trailing dot
  // (two keys would share a file) and reserves device names.
  if (segment.endsWith(".")) return "a segment must not end with '.'";
  if (DEVICE_NAME.test(segment)) return `segment '${segment}' is a reserved device name`;
  return undefined;
}

function keyProblem(key: string, isPrefix: boolean): string | undefined {
  if (typeof key !== "string") return "a key must be a string";
  if (key.length === 0) return isPrefix ? undefined : "a key must not be empty";
  if (key.length > MAX_KEY_BYTES) return `longer than ${MAX_KEY_BYTES} bytes`;
  if (key.startsWith("/")) return "absolute keys are not allowed";
  const segments = key.split("/");
  // A prefix may end with "/" (its last segment is then empty) or in the middle of a segment.
  const last = segments.length - 1;
  for (const [i, segment] of segments.entries()) {
    const problem = segmentProblem(segment, !isPrefix || i < last);
    if (problem !== undefined) return problem;
  }
  return undefined;
}

/**
 * Checks a key against the rules every driver applies (`docs/FORMAT.md` §1):
 * `/`-separated segments of lower-case `a-z`, digits, `.`, `_` and `-`; no
 * empty segment (so no leading or trailing `/`), no `.` or `..` segment, no
 * segment ending with `.` or named like a Windows device (`con`, `nul.txt`…);
 * at most 255 bytes a segment and {@linkcode MAX_KEY_BYTES} in all. Only
 * capsa chooses Location keys, so they can be this plain: a driver may store
 * key `K` at path `K` on any filesystem.
 *
 * @param key The key to check.
 * @throws {InvalidKeyError} when the key breaks a rule.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { validateKey } from "@capsa/capsa";
 * import { InvalidKeyError } from "@capsa/capsa";
 *
 * validateKey("packs/01j9z/01j9z3kxabcdefghjkmnpqrstv"); // fine
 * assert.throws(() => validateKey("a/../b"), InvalidKeyError);
 * assert.throws(() => validateKey("Packs/x"), InvalidKeyError);
 * ```
 */
export function validateKey(key: string): void {
  const problem = keyProblem(key, false);
  if (problem !== undefined) throw new InvalidKeyError(String(key), problem);
}

/**
 * Whether a key passes {@linkcode validateKey}, for code that skips what it
 * cannot use (a listing meeting names capsa never writes) instead of throwing.
 *
 * @param key The key to check.
 * @returns `true` when {@linkcode validateKey} accepts it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isValidKey } from "./driver.ts";
 * assert.equal(isValidKey("store.json"), true);
 * assert.equal(isValidKey(",tmp.0123"), false);
 * ```
 */
export function isValidKey(key: string): boolean {
  return keyProblem(key, false) === undefined;
}

/**
 * Checks a listing prefix: like {@linkcode validateKey}, but the empty prefix
 * is allowed and the prefix may end with `/` or part way into a segment (so
 * its last part may end with `.`: `a.` is a prefix of `a.b`).
 *
 * @param prefix The prefix to check.
 * @throws {InvalidKeyError} when the prefix breaks a rule.
 *
 * @example
 * ```ts
 * import { validatePrefix } from "@capsa/capsa";
 * validatePrefix(""); validatePrefix("packs/"); validatePrefix("blobs/a");
 * ```
 */
export function validatePrefix(prefix: string): void {
  const problem = keyProblem(prefix, true);
  if (problem !== undefined) throw new InvalidKeyError(String(prefix), problem);
}

/**
 * Checks the arguments of {@linkcode Driver.list}: the prefix and, when given,
 * `startAfter`, with the rules of {@linkcode validatePrefix}.
 *
 * @param prefix The listing's prefix.
 * @param options The listing's options.
 * @throws {InvalidKeyError} when either breaks a rule.
 *
 * @example
 * ```ts
 * import { validateListArgs } from "@capsa/capsa";
 * validateListArgs("packs/", { startAfter: "packs/01j9z/" });
 * ```
 */
export function validateListArgs(prefix: string, options: ListOptions = {}): void {
  validatePrefix(prefix);
  if (options.startAfter !== undefined) validatePrefix(options.startAfter);
}

/**
 * Checks the arguments of {@linkcode Driver.getRange}.
 *
 * @param offset The range's start.
 * @param length Its length.
 * @throws {InvalidArgumentError} when either is negative or not an integer.
 *
 * @example
 * ```ts
 * import { validateRange } from "@capsa/capsa";
 * validateRange(0, 16);
 * ```
 */
export function validateRange(offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw new InvalidArgumentError(`range offset must be a non-negative integer, got ${offset}`);
  }
  if (!Number.isSafeInteger(length) || length < 0) {
    throw new InvalidArgumentError(`range length must be a non-negative integer, got ${length}`);
  }
}

/**
 * Compares two keys in the order every listing uses: UTF-8 byte order, which
 * is Unicode code-point order (and S3's). It differs from JavaScript's `<`
 * (UTF-16 code units) only when a key holds characters above U+FFFF.
 *
 * @param a One key.
 * @param b The other.
 * @returns Negative, zero or positive.
 *
 * @example
 * ```ts
 * import { compareKeys } from "@capsa/capsa";
 * ["b", "a/c", "a-b"].sort(compareKeys); // ["a-b", "a/c", "b"]
 * ```
 */
export function compareKeys(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (astral code points) sort after every BMP unit in UTF-8 order.
    const xs = x >= 0xd800 && x <= 0xdfff;
    const ys = y >= 0xd800 && y <= 0xdfff;
    if (xs === ys) return x - y;
    return xs ? 1 : -1;
  }
  return a.length - b.length;
}
