/**
 * Retries: one helper, {@linkcode retry}, and one {@linkcode Driver} wrapper
 * built on it, {@linkcode RetryingDriver}. Drivers do not retry (the driver
 * contract, `drivers/driver.ts`): a remote driver makes one attempt per call
 * and reports an error that another attempt may cure as retryable
 * (`CapsaError.retryable`, e.g. {@linkcode TransientError}); the wrapper, or
 * a caller with {@linkcode retry}, decides how often to try again.
 *
 * The policy: at most `maxAttempts` attempts; before attempt `n + 1` a wait
 * drawn uniformly from `[0, min(maxDelayMs, baseDelayMs × 2^(n−1)))` (exponential
 * backoff with full jitter, so many clients that failed together do not retry
 * together), or longer when the failure carries a hint (S3's `Retry-After`),
 * never longer than `maxDelayMs`. Only errors whose `retryable` is `true` are
 * retried; any other error is thrown at once. An `AbortSignal` stops the
 * waiting and the attempts. After the last attempt the last error is thrown;
 * a {@linkcode TransientError} is thrown with the number of attempts added to
 * its message and the same `cause`. `docs/DRIVERS.md` ("Retries") says which
 * errors each driver marks retryable.
 *
 * @example Retrying one read
 * ```ts
 * import assert from "node:assert/strict";
 * import { retry } from "@capsa/capsa";
 * import { TransientError } from "@capsa/capsa";
 *
 * let calls = 0;
 * const value = await retry(() => {
 *   calls++;
 *   return calls < 3 ? Promise.reject(new TransientError("busy")) : Promise.resolve("done");
 * }, { baseDelayMs: 1 });
 * assert.equal(value, "done");
 * assert.equal(calls, 3);
 * ```
 *
 * @module
 */

import {
  CapsaError,
  InvalidArgumentError,
  PreconditionFailedError,
  TransientError,
} from "../errors.ts";
import type { Driver, DriverCapabilities, ListOptions, ObjectInfo, PutOptions } from "./driver.ts";

/** How often and how patiently to retry. */
export interface RetryPolicy {
  /** Attempts per operation, the first included (default 5, 1 to 100). */
  maxAttempts?: number;
  /** The backoff cap before the first retry, in ms (default 100). */
  baseDelayMs?: number;
  /** The largest wait, in ms (default 5000). */
  maxDelayMs?: number;
}

/** What {@linkcode RetryOptions.onRetry} is told before each wait. */
export interface RetryEvent {
  /** The operation, e.g. `"get"`, `"put"`, `"list"`. */
  operation: string;
  /** The key (or listing prefix) concerned. */
  key: string;
  /** The attempt that failed (1 for the first). */
  attempt: number;
  /** How long the next attempt waits. */
  delayMs: number;
  /** The error of the failed attempt. */
  error: unknown;
}

/** Options of {@linkcode retry} and {@linkcode RetryingDriver}. */
export interface RetryOptions extends RetryPolicy {
  /** Stops the attempts and the waits; the signal's reason is thrown. */
  signal?: AbortSignal | undefined;
  /** Called before each wait (e.g. to log it); the next attempt waits for a returned promise. */
  onRetry?: ((event: RetryEvent) => void | Promise<void>) | undefined;
  /** A wait the failure asks for, in ms (S3's `Retry-After`), or `undefined`. */
  delayHintMs?: ((error: unknown) => number | undefined) | undefined;
}

/** What one call of {@linkcode retry} is, for {@linkcode RetryEvent}. */
export interface RetryCall {
  /** The operation (default `"call"`). */
  operation?: string;
  /** The key concerned (default `""`). */
  key?: string;
}

const DEFAULTS = { maxAttempts: 5, baseDelayMs: 100, maxDelayMs: 5000 };

/**
 * Checks a retry policy and fills in the defaults.
 *
 * @param policy The policy as given.
 * @param name How the policy is called in error messages (default `"retry"`).
 * @returns The complete policy.
 * @throws {InvalidArgumentError} when a value is out of range.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { retryPolicy } from "./retrying.ts";
 * assert.deepEqual(retryPolicy({ maxAttempts: 3 }), { maxAttempts: 3, baseDelayMs: 100, maxDelayMs: 5000 });
 * assert.throws(() => retryPolicy({ maxAttempts: 0 }));
 * ```
 */
export function retryPolicy(policy: RetryPolicy = {}, name = "retry"): Required<RetryPolicy> {
  const attempts = policy.maxAttempts ?? DEFAULTS.maxAttempts;
  if (!Number.isSafeInteger(attempts) || attempts < 1 || attempts > 100) {
    throw new InvalidArgumentError(
      `${name}.maxAttempts must be an integer from 1 to 100, got ${attempts}`,
    );
  }
  const delay = (field: "baseDelayMs" | "maxDelayMs") => {
    const value = policy[field] ?? DEFAULTS[field];
    if (!Number.isFinite(value) || value < 0) {
      throw new InvalidArgumentError(
        `${name}.${field} must be a non-negative number, got ${value}`,
      );
    }
    return value;
  };
  return {
    maxAttempts: attempts,
    baseDelayMs: delay("baseDelayMs"),
    maxDelayMs: delay("maxDelayMs"),
  };
}

/** Whether another attempt may succeed: a capsa error that says so. */
function isRetryable(e: unknown): boolean {
  return e instanceof CapsaError && e.retryable;
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** The error thrown once the attempts are spent. */
function exhausted(e: unknown, attempts: number): unknown {
  if (!(e instanceof TransientError)) return e;
  const plural = attempts === 1 ? "" : "s";
  return new TransientError(`${e.message} (gave up after ${attempts} attempt${plural})`, {
    cause: e.cause ?? e,
  });
}

/**
 * Decides, after a failed attempt, whether to try again: throws when not
 * (the error is not retryable, the attempts are spent, or the signal fired),
 * else waits the backoff.
 */
async function backoff(
  e: unknown,
  attempt: number,
  policy: Required<RetryPolicy>,
  options: RetryOptions,
  call: Required<RetryCall>,
): Promise<void> {
  options.signal?.throwIfAborted();
  if (!isRetryable(e)) throw e;
  if (attempt >= policy.maxAttempts) throw exhausted(e, attempt);
  const cap = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
  let delayMs = Math.floor(Math.random() * cap);
  const hinted = options.delayHintMs?.(e);
  if (hinted !== undefined) delayMs = Math.min(policy.maxDelayMs, Math.max(delayMs, hinted));
  await options.onRetry?.({ ...call, attempt, delayMs, error: e });
  await sleep(delayMs, options.signal);
}

/**
 * Runs `fn` until it succeeds, retrying errors whose `retryable` is `true`
 * with exponential backoff and full jitter (see the module documentation).
 *
 * @param fn One attempt; it is told the attempt's number (1 for the first).
 * @param options The policy, an `AbortSignal`, `onRetry`, and what the call is.
 * @returns What `fn` returned.
 * @throws The first error that is not retryable, the last error once the
 *   attempts are spent, or the signal's reason.
 *
 * @example Errors that are not retryable are thrown at once
 * ```ts
 * import assert from "node:assert/strict";
 * import { retry } from "@capsa/capsa";
 * import { NotFoundError } from "@capsa/capsa";
 *
 * let calls = 0;
 * await assert.rejects(
 *   retry(() => {
 *     calls++;
 *     return Promise.reject(new NotFoundError("k"));
 *   }),
 *   NotFoundError,
 * );
 * assert.equal(calls, 1);
 * ```
 */
export async function retry<T>(
  fn: (attempt: number) => Promise<T>,
  options: RetryOptions & RetryCall = {},
): Promise<T> {
  const policy = retryPolicy(options);
  const call = { operation: options.operation ?? "call", key: options.key ?? "" };
  for (let attempt = 1;; attempt++) {
    options.signal?.throwIfAborted();
    try {
      return await fn(attempt);
    } catch (e) {
      await backoff(e, attempt, policy, options, call);
    }
  }
}

/**
 * Retries one put with {@linkcode retry}. When `ifAbsent` is set, an earlier
 * attempt failed in a way that may have reached the medium (its answer was
 * lost) and a later one is refused with {@linkcode PreconditionFailedError},
 * the object is read back through `reader`: when it holds exactly these
 * bytes, the put succeeded. Used by {@linkcode RetryingDriver.put} and by
 * drivers that retry a put of their own (the `s3` probe).
 *
 * @param reader Where to read the object back.
 * @param key The object's key.
 * @param bytes What the put writes.
 * @param ifAbsent Whether the put is create-only.
 * @param attempt One attempt of the put.
 * @param options The retry options.
 * @returns When the put succeeded.
 * @throws The put's error, as {@linkcode retry} throws it.
 */
export async function retryPut(
  reader: Pick<Driver, "get">,
  key: string,
  bytes: Uint8Array,
  ifAbsent: boolean,
  attempt: () => Promise<void>,
  options: RetryOptions = {},
): Promise<void> {
  let mayHaveLanded = false;
  try {
    await retry(attempt, {
      ...options,
      operation: "put",
      key,
      onRetry: (event) => {
        mayHaveLanded = true;
        return options.onRetry?.(event);
      },
    });
  } catch (e) {
    if (
      e instanceof PreconditionFailedError && ifAbsent && mayHaveLanded &&
      await holds(reader, key, bytes)
    ) return;
    throw e;
  }
}

/** Whether the object holds exactly `bytes` (a missing or unreadable object does not). */
async function holds(
  reader: Pick<Driver, "get">,
  key: string,
  bytes: Uint8Array,
): Promise<boolean> {
  let stored: Uint8Array;
  try {
    stored = await reader.get(key);
  } catch {
    return false;
  }
  return stored.length === bytes.length && stored.every((b, i) => b === bytes[i]);
}

/**
 * A {@linkcode Driver} that retries the calls of another with
 * {@linkcode retry}'s policy. Every remote driver is used through it (the
 * `s3` driver is one: `S3Driver` is this wrapper around its requests).
 *
 * Beyond retrying each call:
 *
 * - `list` resumes after the last key it yielded, so a listing that fails
 *   part way goes on where it stopped; the attempts count again after each
 *   entry yielded.
 * - A create-only `put` whose earlier attempt may have landed (its answer was
 *   lost) and whose retry is refused with {@linkcode PreconditionFailedError}
 *   reads the object back: when it holds exactly these bytes, the put
 *   succeeded.
 *
 * @example Wrapping a driver whose calls sometimes fail
 * ```ts
 * import assert from "node:assert/strict";
 * import { RetryingDriver } from "@capsa/capsa";
 * import { FaultyDriver } from "@capsa/capsa/drivers/faulty";
 * import { MemoryDriver } from "@capsa/capsa";
 *
 * const flaky = new FaultyDriver(new MemoryDriver(), { faults: [{ methods: ["put"], times: 2 }] });
 * const driver = new RetryingDriver(flaky, { baseDelayMs: 1 });
 * await driver.put("k", new Uint8Array([1]));
 * assert.equal(flaky.calls.put, 3);
 * ```
 */
export class RetryingDriver implements Driver {
  /** The wrapped driver. */
  readonly inner: Driver;
  #policy: Required<RetryPolicy>;
  #options: RetryOptions;

  /**
   * Wraps `inner`.
   *
   * @param inner The driver whose calls are retried.
   * @param options The policy, `onRetry`, a delay hint, and a signal that
   *   stops every call's retries.
   * @throws {InvalidArgumentError} for a policy out of range.
   */
  constructor(inner: Driver, options: RetryOptions = {}) {
    this.inner = inner;
    this.#policy = retryPolicy(options);
    this.#options = { ...options, ...this.#policy };
  }

  /** The wrapped driver's kind: retrying is not a kind of Location. */
  get kind(): string {
    return this.inner.kind;
  }

  /** The wrapped driver's capabilities. */
  get capabilities(): DriverCapabilities {
    return this.inner.capabilities;
  }

  /** The wrapped driver's Location. */
  get location(): string {
    return this.inner.location;
  }

  #retry<T>(operation: string, key: string, fn: () => Promise<T>): Promise<T> {
    return retry(fn, { ...this.#options, operation, key });
  }

  /** Reads a whole object. @param key The key. @returns Its bytes. */
  get(key: string): Promise<Uint8Array> {
    return this.#retry("get", key, () => this.inner.get(key));
  }

  /**
   * Reads a range, clipped at the end.
   * @param key The key. @param offset The start. @param length The length.
   * @returns The bytes in range.
   */
  getRange(key: string, offset: number, length: number): Promise<Uint8Array> {
    return this.#retry("getRange", key, () => this.inner.getRange(key, offset, length));
  }

  /**
   * Writes a whole object; a create-only put whose answer was lost is
   * recognised by reading the object back.
   * @param key The key. @param bytes The content. @param options `ifAbsent` for create-only.
   */
  put(key: string, bytes: Uint8Array, options: PutOptions = {}): Promise<void> {
    return retryPut(
      this,
      key,
      bytes,
      options.ifAbsent === true,
      () => this.inner.put(key, bytes, options),
      this.#options,
    );
  }

  /** Deletes an object; a missing key is fine. @param key The key. */
  delete(key: string): Promise<void> {
    return this.#retry("delete", key, () => this.inner.delete(key));
  }

  /** Reports an object's size. @param key The key. @returns Its info. */
  stat(key: string): Promise<ObjectInfo> {
    return this.#retry("stat", key, () => this.inner.stat(key));
  }

  /**
   * Lists keys under `prefix` in order; a failed listing resumes after the
   * last key it yielded.
   * @param prefix The prefix. @param options `startAfter`.
   * @returns The objects, in key order.
   */
  async *list(prefix: string, options: ListOptions = {}): AsyncIterable<ObjectInfo> {
    let after = options.startAfter;
    const call = { operation: "list", key: prefix };
    for (let attempt = 1;; attempt++) {
      this.#options.signal?.throwIfAborted();
      try {
        for await (
          const info of this.inner.list(prefix, after === undefined ? {} : { startAfter: after })
        ) {
          after = info.key;
          attempt = 1;
          yield info;
        }
        return;
      } catch (e) {
        await backoff(e, attempt, this.#policy, this.#options, call);
      }
    }
  }

  /** Closes the wrapped driver. */
  close(): Promise<void> {
    return this.inner.close();
  }
}
