/**
 * What `Store.status()` reports: the handle's own state, and what the
 * Location says now (snapshots, lease, maintenance mode). Every Location read
 * here is best effort: a status must come back even from a damaged store.
 *
 * @module
 */

import type { Driver } from "../drivers/driver.ts";
import { ulidTime } from "../format/ulid.ts";
import { readMaintenanceMode } from "./gate.ts";
import { readLease } from "./lease.ts";
import { listSnapshots } from "./persistence.ts";
import type { OpenedStore } from "./open.ts";
import type { StoreStatus } from "./types.ts";

/** The handle's side of a status: what open found (or a rebuild set), and its Location. */
export interface HandleView extends OpenedStore {
  /** The Location. */
  driver: Driver;
}

/**
 * Builds a status.
 * @param view The handle's state.
 * @returns The status.
 */
export async function storeStatus(view: HandleView): Promise<StoreStatus> {
  const { driver, index, config } = view;
  const lease = await readLease(driver).catch(() => null);
  const mode = await readMaintenanceMode(driver).catch(() => undefined);
  const snapshots = await listSnapshots(driver).catch(() => []);
  const hwm = index?.highWaterMark() ?? "";
  return {
    storeId: view.descriptor?.storeId ?? "",
    location: driver.location,
    state: view.state,
    problems: [...view.problems],
    hash: view.descriptor?.hash,
    encryption: view.descriptor === undefined
      ? undefined
      : view.descriptor.encryption?.cipher ?? "none",
    config: config
      ? {
        seq: config.seq,
        pointer: view.pointer,
        manifestStorage: config.manifestStorage,
        compression: config.compression,
        compressionLevel: config.compressionLevel,
      }
      : undefined,
    counts: index?.counts(),
    index: index
      ? {
        source: view.indexSource,
        loadedFrom: view.indexLoadedFrom,
        highWaterMark: hwm,
        highWaterMarkTime: hwm === "" ? undefined : ulidTime(hwm),
        schemaVersion: index.schemaVersion,
      }
      : undefined,
    snapshots,
    lease: lease && lease !== "invalid"
      ? {
        holder: `${lease.agent} on ${lease.host} (pid ${lease.pid})`,
        agent: lease.agent,
        expiresAt: lease.expiresAt,
      }
      : lease === "invalid"
      ? { holder: "unreadable lease", agent: "unknown", expiresAt: 0 }
      : undefined,
    maintenance: mode ? { mode: mode.mode, holder: mode.holder } : undefined,
  };
}
