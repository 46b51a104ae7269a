/**
 * One bounded worker pool, for every place capsa runs the same work over
 * many items at once: reading pack TOCs, verifying objects, copying a store,
 * moving a directory tree in or out.
 *
 * - At most `concurrency` items are in flight.
 * - The first failure stops the pool: no item starts after it, the items
 *   already running settle, then that first failure is thrown. Nothing keeps
 *   writing after a run has failed.
 * - An `AbortSignal` stops it the same way, throwing the signal's reason.
 * - Each call of the work receives a signal that aborts on the first failure
 *   or on the caller's abort, so a long item can stop early.
 * - {@linkcode poolMap} returns the results in the order of the items,
 *   whatever order they finished in; {@linkcode pool} keeps none.
 *
 * @example Hash files four at a time, results in input order
 * ```ts
 * import assert from "node:assert/strict";
 * import { poolMap } from "./pool.ts";
 *
 * const lengths = await poolMap(["a", "bb", "ccc"], async (s) => s.length, { concurrency: 4 });
 * assert.deepEqual(lengths, [1, 2, 3]);
 * ```
 *
 * @module
 */

import { InvalidArgumentError } from "./errors.ts";

/** Options of {@linkcode pool} and {@linkcode poolMap}. */
export interface PoolOptions {
  /** The most items in flight at once (an integer ≥ 1). */
  concurrency: number;
  /** Stops the pool: no new item starts, running ones settle, then the reason is thrown. */
  signal?: AbortSignal | undefined;
}

/**
 * The work for one item.
 * @param item The item.
 * @param index Its position in the input.
 * @param signal Aborts when the pool stops (a failure elsewhere, or the caller's abort).
 */
export type PoolWork<T, R> = (item: T, index: number, signal: AbortSignal) => Promise<R>;

async function run<T, R>(
  items: Iterable<T>,
  work: PoolWork<T, R>,
  options: PoolOptions,
  keep: R[] | undefined,
): Promise<void> {
  const { concurrency, signal } = options;
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) {
    throw new InvalidArgumentError(`concurrency must be an integer ≥ 1, got ${concurrency}`);
  }
  signal?.throwIfAborted();
  const stop = new AbortController();
  const onAbort = () => stop.abort(signal!.reason);
  signal?.addEventListener("abort", onAbort, { once: true });
  let failure: { error: unknown } | undefined;
  const iterator = items[Symbol.iterator]();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (failure === undefined) {
      if (stop.signal.aborted) {
        failure = { error: stop.signal.reason };
        return;
      }
      const step = iterator.next();
      if (step.done) return;
      const index = next++;
      try {
        const result = await work(step.value, index, stop.signal);
        if (keep) keep[index] = result;
      } catch (error) {
        if (failure === undefined) {
          failure = { error };
          stop.abort(error);
        }
      }
    }
  };
  const workers = Array.isArray(items) ? Math.min(concurrency, items.length) : concurrency;
  try {
    await Promise.all(Array.from({ length: workers }, worker));
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
  if (failure !== undefined) throw failure.error;
}

/**
 * Runs `work` over `items` with at most `options.concurrency` in flight.
 *
 * @param items The items (read lazily, one per started item).
 * @param work The work for one item.
 * @param options The bound and an optional signal.
 * @throws The first error of `work`, or the signal's reason, once every running item settled.
 *
 * @example At most two at once
 * ```ts
 * import assert from "node:assert/strict";
 * import { pool } from "./pool.ts";
 *
 * let running = 0;
 * let peak = 0;
 * await pool([1, 2, 3, 4, 5], async () => {
 *   peak = Math.max(peak, ++running);
 *   await new Promise((r) => setTimeout(r, 1));
 *   running--;
 * }, { concurrency: 2 });
 * assert.equal(peak, 2);
 * ```
 */
export async function pool<T>(
  items: Iterable<T>,
  work: PoolWork<T, unknown>,
  options: PoolOptions,
): Promise<void> {
  await run(items, work, options, undefined);
}

/**
 * Like {@linkcode pool}, and returns the results in the order of the items.
 *
 * @param items The items.
 * @param work The work for one item; its result is kept.
 * @param options The bound and an optional signal.
 * @returns The results, `results[i]` being that of the `i`-th item.
 * @throws The first error of `work`, or the signal's reason, once every running item settled.
 *
 * @example Results keep the input order
 * ```ts
 * import assert from "node:assert/strict";
 * import { poolMap } from "./pool.ts";
 *
 * const out = await poolMap([30, 10, 20], async (ms) => {
 *   await new Promise((r) => setTimeout(r, ms));
 *   return ms;
 * }, { concurrency: 3 });
 * assert.deepEqual(out, [30, 10, 20]);
 * ```
 */
export async function poolMap<T, R>(
  items: Iterable<T>,
  work: PoolWork<T, R>,
  options: PoolOptions,
): Promise<R[]> {
  const results: R[] = [];
  await run(items, work, options, results);
  return results;
}
