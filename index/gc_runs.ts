/**
 * How an index follows garbage collection (docs/FORMAT.md §8): before a
 * catch-up lists the packs on the Location, the index applies every gc run
 * it has not applied yet: it retires the packs the run deletes and forgets
 * the loose blobs it deletes; the superseding and rescue packs the listing
 * then finds bring back what they copied. One small read (the epoch) says
 * whether there is anything to apply; the run records are read only then.
 *
 * @module
 */

import { type Driver, NotFoundError } from "../drivers/driver.ts";
import { CorruptObjectError } from "../errors.ts";
import {
  decodeGcEpoch,
  decodeGcRun,
  type GcEpoch,
  type GcRun,
  MAX_GC_EPOCH_BYTES,
  MAX_GC_RUN_BYTES,
} from "../format/gc.ts";
import { GC_EPOCH_KEY, GC_RUN_PREFIX, gcRunKey } from "../layout.ts";
import type { StoreIndex } from "./store_index.ts";

/** The `meta` row naming the newest gc run an index applied. */
export const GC_APPLIED_META = "gc_applied";

/**
 * Reads `system.state/gc/epoch`.
 * @param driver The Location.
 * @returns The epoch, or `undefined` when no gc run was ever published.
 * @throws {CorruptObjectError} when it exists but cannot be read.
 */
export async function readGcEpoch(driver: Driver): Promise<GcEpoch | undefined> {
  let bytes: Uint8Array;
  try {
    bytes = await driver.getRange(GC_EPOCH_KEY, 0, MAX_GC_EPOCH_BYTES + 1);
  } catch (e) {
    if (e instanceof NotFoundError) return undefined;
    throw e;
  }
  return decodeGcEpoch(GC_EPOCH_KEY, bytes);
}

/**
 * Reads one run record.
 * @param driver The Location.
 * @param runId The run.
 * @param storeId The store (a record of another is refused).
 * @returns The run.
 * @throws {CorruptObjectError} when it cannot be read; `NotFoundError` when missing.
 */
export async function readGcRun(driver: Driver, runId: string, storeId: string): Promise<GcRun> {
  const key = gcRunKey(runId);
  const bytes = await driver.getRange(key, 0, MAX_GC_RUN_BYTES + 1);
  return decodeGcRun(key, bytes, storeId);
}

/**
 * The ids of the run records on the Location newer than `after`, ascending.
 * @param driver The Location.
 * @param after A run id, or `""` for all.
 * @returns The run ids.
 */
export async function listGcRuns(driver: Driver, after: string): Promise<string[]> {
  const ids: string[] = [];
  const startAfter = after === "" ? undefined : gcRunKey(after);
  for await (const info of driver.list(GC_RUN_PREFIX, startAfter ? { startAfter } : {})) {
    const id = info.key.slice(GC_RUN_PREFIX.length);
    if (gcRunKey(id) === info.key && id > after) ids.push(id);
  }
  return ids.sort();
}

/**
 * Applies a run to an index: retires its packs, forgets its loose blobs,
 * and records it as applied (in one transaction).
 * @param index The index.
 * @param run The run.
 */
export function applyGcRun(index: StoreIndex, run: GcRun): void {
  index.transaction(() => {
    index.retirePacks(run.packs, { nested: true });
    index.dropLooseBlobs(run.looseBlobs, { nested: true });
    if (run.runId > (index.meta(GC_APPLIED_META) ?? "")) index.setMeta(GC_APPLIED_META, run.runId);
  });
}

/**
 * Applies, in order, every gc run newer than the one `index` last applied
 * whose grace period has ended at `now`; a run still in its grace period is
 * only marked (its objects stay readable, but are never deduplicated
 * against: {@linkcode StoreIndex.markRetired}). Call it before the packs on
 * the Location are listed and indexed: a blob a doomed pack shares with a
 * rescue pack is then found in the rescue pack. A damaged run record stops
 * here: it is reported in `problems`, and the runs from it on are applied
 * once it can be read.
 * @param driver The Location.
 * @param index The index.
 * @param storeId The store.
 * @param problems Where a damaged record is reported.
 * @param now The time (the Location's clock), or `undefined` to apply every run.
 * @returns How many runs were applied.
 */
export async function applyGcRuns(
  driver: Driver,
  index: StoreIndex,
  storeId: string,
  problems: string[] = [],
  now?: number,
): Promise<number> {
  const applied = index.meta(GC_APPLIED_META) ?? "";
  let epoch: GcEpoch | undefined;
  try {
    epoch = await readGcEpoch(driver);
  } catch (e) {
    if (!(e instanceof CorruptObjectError)) throw e;
    // A damaged epoch hides nothing: the run records say it all.
    report(problems, e);
    epoch = { storeId, runId: "~", notBefore: 0 };
  }
  if (epoch === undefined || epoch.runId <= applied) return 0;
  let count = 0;
  for (const runId of await listGcRuns(driver, applied)) {
    let run: GcRun;
    try {
      run = await readGcRun(driver, runId, storeId);
    } catch (e) {
      if (e instanceof CorruptObjectError) {
        report(problems, e);
        break;
      }
      if (e instanceof NotFoundError) continue;
      throw e;
    }
    index.sawGcRun(run.runId);
    if (now !== undefined && now < run.notBefore) {
      // Still in its grace period: marked, applied once it has passed (runs apply in order).
      index.markRetired(run.packs, run.looseBlobs);
      break;
    }
    applyGcRun(index, run);
    count++;
  }
  return count;
}

function report(problems: string[], e: CorruptObjectError): void {
  const line = `${e.key}: corrupt: ${e.reason}`;
  if (!problems.includes(line)) problems.push(line);
}
