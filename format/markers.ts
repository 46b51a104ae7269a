/**
 * The two small records that say a store is not open for business as usual:
 * the moved marker (`system.state/moved`, `docs/FORMAT.md` §4.3) and the
 * maintenance-mode record (`system.state/maintenance/mode`,
 * `docs/FORMAT.md` §4.2). Pure codecs: the store reads them before commits,
 * the agents write them.
 *
 * Both are UTF-8 JSON objects carrying `format` and `version`. A reader
 * refuses anything else with a typed error: a damaged or foreign record with
 * {@linkcode CorruptObjectError}, a record of a newer version with
 * {@linkcode UnsupportedFormatVersionError} (upgrade capsa; never overwrite
 * it).
 *
 * @example Round trip of a maintenance-mode record
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeMaintenanceMode, encodeMaintenanceMode } from "./markers.ts";
 *
 * const mode = { mode: "offline", agent: "RebuildIndex", holder: "RebuildIndex on h", nonce: "n1" } as const;
 * const bytes = encodeMaintenanceMode(mode);
 * assert.deepEqual(decodeMaintenanceMode("system.state/maintenance/mode", bytes), mode);
 * ```
 *
 * @module
 */

import { CorruptObjectError, UnsupportedFormatVersionError } from "../errors.ts";
import { decodeJsonObject, shown } from "./_json.ts";

/** The largest marker accepted: a reader asks for at most this many bytes plus one. */
export const MAX_MARKER_BYTES = 16 * 1024;

/** The `format` of the moved marker. */
const MOVED_FORMAT = "capsa-moved";
/** The version of the moved marker written and read. */
const MOVED_VERSION = 1;
/** The `format` of the maintenance-mode record. */
const MAINTENANCE_MODE_FORMAT = "capsa-maintenance-mode";
/** The version of the maintenance-mode record written and read. */
const MAINTENANCE_MODE_VERSION = 1;

/** What `system.state/moved` says: where the store went. */
export interface MovedMarker {
  /** The destination as an operator types it (a Location URL, never with credentials). */
  destination: string;
  /** The store that was moved. */
  storeId: string;
  /** When the move was committed (ms since the epoch). */
  movedAt: number;
}

/** What a maintenance agent writes to `system.state/maintenance/mode`. */
export interface MaintenanceMode {
  /** `read-only`: reads that need no index refresh still work; `offline`: nothing. */
  mode: "read-only" | "offline";
  /** The agent. */
  agent: string;
  /** Who runs it. */
  holder: string;
  /** The lease nonce (the holder's own handle ignores its own mode). */
  nonce: string;
}

const enc = new TextEncoder();

/** Checks `format` and `version`; a newer version is refused as such, not as damage. */
function checkFrame(
  key: string,
  v: Record<string, unknown>,
  format: string,
  version: number,
): void {
  if (v.format !== format) {
    throw new CorruptObjectError(key, `"format" must be "${format}", got ${shown(v.format)}`);
  }
  if (typeof v.version === "number" && Number.isSafeInteger(v.version) && v.version > version) {
    throw new UnsupportedFormatVersionError(key, v.version, [version]);
  }
  if (v.version !== version) {
    throw new CorruptObjectError(key, `"version" must be ${version}, got ${shown(v.version)}`);
  }
}

function field(key: string, v: Record<string, unknown>, name: string): string {
  const value = v[name];
  if (typeof value !== "string" || value === "") {
    throw new CorruptObjectError(key, `"${name}" must be a non-empty string, got ${shown(value)}`);
  }
  return value;
}

/**
 * Encodes the moved marker.
 * @param marker Where the store went, which store, when.
 * @returns The bytes (one line of JSON).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeMovedMarker, encodeMovedMarker } from "./markers.ts";
 * const marker = { destination: "s3://bucket/store", storeId: "s1", movedAt: 1_700_000_000_000 };
 * assert.deepEqual(decodeMovedMarker("system.state/moved", encodeMovedMarker(marker)), marker);
 * ```
 */
export function encodeMovedMarker(marker: MovedMarker): Uint8Array {
  return enc.encode(
    JSON.stringify({
      format: MOVED_FORMAT,
      version: MOVED_VERSION,
      destination: marker.destination,
      storeId: marker.storeId,
      movedAt: marker.movedAt,
    }) + "\n",
  );
}

/**
 * Decodes and checks the moved marker.
 * @param key The marker's key, for errors.
 * @param bytes Its bytes (a reader passes at most {@linkcode MAX_MARKER_BYTES} + 1).
 * @returns The marker.
 * @throws {UnsupportedFormatVersionError} for a newer version.
 * @throws {CorruptObjectError} for anything else that is not a moved marker.
 */
export function decodeMovedMarker(key: string, bytes: Uint8Array): MovedMarker {
  const v = decodeJsonObject(key, bytes, { max: MAX_MARKER_BYTES, noun: "moved marker" });
  checkFrame(key, v, MOVED_FORMAT, MOVED_VERSION);
  if (!Number.isSafeInteger(v.movedAt) || (v.movedAt as number) < 0) {
    throw new CorruptObjectError(
      key,
      `"movedAt" must be a non-negative integer, got ${shown(v.movedAt)}`,
    );
  }
  return {
    destination: field(key, v, "destination"),
    storeId: field(key, v, "storeId"),
    movedAt: v.movedAt as number,
  };
}

/**
 * Encodes the maintenance-mode record.
 * @param mode The mode, the agent, its holder and its lease nonce.
 * @returns The bytes.
 */
export function encodeMaintenanceMode(mode: MaintenanceMode): Uint8Array {
  return enc.encode(JSON.stringify({
    format: MAINTENANCE_MODE_FORMAT,
    version: MAINTENANCE_MODE_VERSION,
    mode: mode.mode,
    agent: mode.agent,
    holder: mode.holder,
    nonce: mode.nonce,
  }));
}

/**
 * Decodes and checks the maintenance-mode record.
 * @param key The record's key, for errors.
 * @param bytes Its bytes (a reader passes at most {@linkcode MAX_MARKER_BYTES} + 1).
 * @returns The mode.
 * @throws {UnsupportedFormatVersionError} for a newer version.
 * @throws {CorruptObjectError} for anything else that is not a maintenance-mode record.
 */
export function decodeMaintenanceMode(key: string, bytes: Uint8Array): MaintenanceMode {
  const v = decodeJsonObject(key, bytes, { max: MAX_MARKER_BYTES, noun: "maintenance mode" });
  checkFrame(key, v, MAINTENANCE_MODE_FORMAT, MAINTENANCE_MODE_VERSION);
  if (v.mode !== "read-only" && v.mode !== "offline") {
    throw new CorruptObjectError(
      key,
      `"mode" must be "read-only" or "offline", got ${shown(v.mode)}`,
    );
  }
  return {
    mode: v.mode,
    agent: field(key, v, "agent"),
    holder: field(key, v, "holder"),
    nonce: field(key, v, "nonce"),
  };
}
