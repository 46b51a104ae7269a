/**
 * The records garbage collection leaves on a Location (docs/FORMAT.md §8):
 *
 * - a **run record** (`system.state/gc/runs/<run id>`), written once per
 *   run before anything is deleted: the packs and loose blobs the run will
 *   delete, the superseding packs it wrote, and the time before which
 *   nothing is deleted (`notBefore`, the end of the grace period). Run
 *   records stay: an index that was last brought up to date before a run
 *   learns from them what the run removed.
 * - the **epoch** (`system.state/gc/epoch`): the id of the newest run record.
 *   Writers read it before every pack commit (with the maintenance mode), so
 *   one small read tells a handle whether a run it has not seen exists.
 *
 * Both are self-checksummed JSON (docs/FORMAT.md §6.1); anything else is a
 * {@linkcode CorruptObjectError} naming the object, a newer version an
 * {@linkcode UnsupportedFormatVersionError}.
 *
 * @example Round trip of a run record
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeGcRun, encodeGcRun, type GcRun } from "./gc.ts";
 *
 * const run: GcRun = {
 *   storeId: "0123456789abcdef0123456789abcdef",
 *   runId: "01arz3ndektsv4rrffq69g5fav",
 *   startedAt: 1_700_000_000_000,
 *   notBefore: 1_700_000_900_000,
 *   packs: ["01arz3ndektsv4rrffq69g5fa0"],
 *   looseBlobs: [],
 *   written: ["01arz3ndektsv4rrffq69g5fb0"],
 * };
 * assert.deepEqual(decodeGcRun("system.state/gc/runs/x", encodeGcRun(run)), run);
 * ```
 *
 * @module
 */

import { CorruptObjectError } from "../errors.ts";
import { decodeJsonObject, shown } from "./_json.ts";
import { canonicalChecksum, canonicalJson, checkEnvelope, isStoreId } from "./fields.ts";
import { isBlobId } from "./hashing.ts";
import { isUlid } from "./ulid.ts";

/** The `format` of a run record. */
const RUN_FORMAT = "capsa-gc-run";
/** The `format` of the epoch. */
const EPOCH_FORMAT = "capsa-gc-epoch";
/** The encoding version written and read. */
const VERSION = 1;
/** The largest run record accepted (about two million object ids). */
export const MAX_GC_RUN_BYTES = 128 * 1024 * 1024;
/** The largest epoch accepted. */
export const MAX_GC_EPOCH_BYTES = 4096;

/** One garbage collection run, as its record says. */
export interface GcRun {
  /** The store. */
  storeId: string;
  /** The run's id: a ULID drawn when it published the record (runs are ordered by it). */
  runId: string;
  /** When the run began its mark (ms since the epoch, the Location's clock). */
  startedAt: number;
  /** Nothing named here is deleted before this time (ms): the end of the grace period. */
  notBefore: number;
  /** Pack ids the run deletes (superseded by `written`, or holding nothing live), ascending. */
  packs: string[];
  /** Loose blob ids the run deletes (nothing live names them), ascending. */
  looseBlobs: string[];
  /** The superseding packs the run wrote, ascending. */
  written: string[];
}

/** What `system.state/gc/epoch` says: the newest run. */
export interface GcEpoch {
  /** The store. */
  storeId: string;
  /** The newest run's id. */
  runId: string;
  /** That run's `notBefore`. */
  notBefore: number;
}

const enc = new TextEncoder();

function sortedIds(
  key: string,
  v: Record<string, unknown>,
  name: string,
  valid: (id: unknown) => boolean,
): string[] {
  const list = v[name];
  if (!Array.isArray(list)) {
    throw new CorruptObjectError(key, `"${name}" must be an array, got ${shown(list)}`);
  }
  for (let i = 0; i < list.length; i++) {
    if (!valid(list[i]) || (i > 0 && list[i] <= list[i - 1])) {
      throw new CorruptObjectError(
        key,
        `"${name}"[${i}] is not an id in strictly ascending order: ${shown(list[i])}`,
      );
    }
  }
  return list as string[];
}

function time(key: string, v: Record<string, unknown>, name: string): number {
  const t = v[name];
  if (typeof t !== "number" || !Number.isSafeInteger(t) || t < 0) {
    throw new CorruptObjectError(key, `"${name}" must be a non-negative integer, got ${shown(t)}`);
  }
  return t;
}

function common(key: string, v: Record<string, unknown>): { storeId: string; runId: string } {
  if (!isStoreId(v.storeId)) {
    throw new CorruptObjectError(key, `"storeId" is malformed: ${shown(v.storeId)}`);
  }
  if (!isUlid(v.runId)) {
    throw new CorruptObjectError(key, `"runId" must be a ULID, got ${shown(v.runId)}`);
  }
  return { storeId: v.storeId, runId: v.runId };
}

function sealed(body: Record<string, unknown>): Uint8Array {
  return enc.encode(canonicalJson({ ...body, checksum: canonicalChecksum(body) }) + "\n");
}

/**
 * Encodes a run record (ids are sorted and deduplicated).
 * @param run The run.
 * @returns The bytes.
 */
export function encodeGcRun(run: GcRun): Uint8Array {
  const ids = (list: readonly string[]) => [...new Set(list)].sort();
  return sealed({
    format: RUN_FORMAT,
    formatVersion: VERSION,
    storeId: run.storeId,
    runId: run.runId,
    startedAt: run.startedAt,
    notBefore: run.notBefore,
    packs: ids(run.packs),
    looseBlobs: ids(run.looseBlobs),
    written: ids(run.written),
  });
}

/**
 * Decodes and checks a run record.
 * @param key Its key, for errors.
 * @param bytes Its bytes (a reader passes at most {@linkcode MAX_GC_RUN_BYTES} + 1).
 * @param storeId When given, a record of another store is refused.
 * @returns The run.
 * @throws {CorruptObjectError} for anything that is not a sound run record.
 * @throws {UnsupportedFormatVersionError} for a newer version.
 */
export function decodeGcRun(key: string, bytes: Uint8Array, storeId?: string): GcRun {
  const parsed = decodeJsonObject(key, bytes, { max: MAX_GC_RUN_BYTES, noun: "gc run record" });
  const v = checkEnvelope(key, parsed, { format: RUN_FORMAT, noun: "gc run record", known: [1] });
  const run: GcRun = {
    ...common(key, v),
    startedAt: time(key, v, "startedAt"),
    notBefore: time(key, v, "notBefore"),
    packs: sortedIds(key, v, "packs", isUlid),
    looseBlobs: sortedIds(key, v, "looseBlobs", isBlobId),
    written: sortedIds(key, v, "written", isUlid),
  };
  if (storeId !== undefined && run.storeId !== storeId) {
    throw new CorruptObjectError(key, `belongs to store ${run.storeId}, expected ${storeId}`);
  }
  const written = new Set(run.written);
  const both = run.packs.find((p) => written.has(p));
  if (both !== undefined) {
    throw new CorruptObjectError(key, `pack ${both} is both written and deleted by the run`);
  }
  return run;
}

/**
 * Encodes the epoch.
 * @param epoch The newest run.
 * @returns The bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeGcEpoch, encodeGcEpoch } from "./gc.ts";
 * const epoch = {
 *   storeId: "0123456789abcdef0123456789abcdef",
 *   runId: "01arz3ndektsv4rrffq69g5fav",
 *   notBefore: 1_700_000_900_000,
 * };
 * assert.deepEqual(decodeGcEpoch("system.state/gc/epoch", encodeGcEpoch(epoch)), epoch);
 * ```
 */
export function encodeGcEpoch(epoch: GcEpoch): Uint8Array {
  return sealed({
    format: EPOCH_FORMAT,
    formatVersion: VERSION,
    storeId: epoch.storeId,
    runId: epoch.runId,
    notBefore: epoch.notBefore,
  });
}

/**
 * Decodes and checks the epoch.
 * @param key Its key, for errors.
 * @param bytes Its bytes (a reader passes at most {@linkcode MAX_GC_EPOCH_BYTES} + 1).
 * @returns The epoch.
 * @throws {CorruptObjectError} for anything that is not a sound epoch.
 * @throws {UnsupportedFormatVersionError} for a newer version.
 */
export function decodeGcEpoch(key: string, bytes: Uint8Array): GcEpoch {
  const parsed = decodeJsonObject(key, bytes, { max: MAX_GC_EPOCH_BYTES, noun: "gc epoch" });
  const v = checkEnvelope(key, parsed, { format: EPOCH_FORMAT, noun: "gc epoch", known: [1] });
  return { ...common(key, v), notBefore: time(key, v, "notBefore") };
}
