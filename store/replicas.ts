/**
 * Descriptor replica I/O: reading the three replicas (two on the Location,
 * one in the host storage) and writing them in commit order.
 *
 * The order is the one rule every writer of replicas shares (init, healing at
 * open, a rebuild from the Recovery Kit, the commit point of a move): every
 * other replica first, `store.json` last, because its presence is what makes
 * a Location a store (`docs/FORMAT.md` §6.3). {@linkcode writeDescriptorLast}
 * is that rule, once.
 *
 * @module
 */

import type { Driver } from "../drivers/driver.ts";
import {
  type Descriptor,
  type DescriptorReading,
  encodeDescriptor,
  readDescriptorReplica,
} from "../format/descriptor.ts";
import { DESCRIPTOR_KEY, DESCRIPTOR_REPLICA_KEY, HOST_DESCRIPTOR_KEY } from "../layout.ts";

/** How the host replica is named among the readings and in events: `host:descriptor/store.json`. */
export const HOST_REPLICA = `host:${HOST_DESCRIPTOR_KEY}`;

/** One replica to write: its name among the readings, and where it lives. */
export interface ReplicaTarget {
  /** `store.json`, `system.state/descriptor/store.json` or {@linkcode HOST_REPLICA}. */
  where: string;
  /** The driver holding it (the Location, or the host storage). */
  driver: Driver;
  /** Its key on that driver. */
  key: string;
}

/**
 * Reads the descriptor replicas (two on the Location, one on the host).
 * @param driver The Location.
 * @param host The host storage, if any.
 * @returns One reading per replica.
 */
export function readDescriptorReplicas(
  driver: Driver,
  host: Driver | undefined,
): Promise<DescriptorReading[]> {
  const reads = [
    readDescriptorReplica(driver, DESCRIPTOR_KEY),
    readDescriptorReplica(driver, DESCRIPTOR_REPLICA_KEY),
  ];
  if (host) reads.push(readDescriptorReplica(host, HOST_DESCRIPTOR_KEY, { where: HOST_REPLICA }));
  return Promise.all(reads);
}

/**
 * Runs `write` for each replica, in commit order: the Location's second
 * replica, then the host's, then `store.json` last. Each write completes
 * before the next starts; the first failure stops the rest, so `store.json`
 * is never written when an earlier replica was not.
 * @param driver The Location.
 * @param host The host storage, if any (without it the host replica is skipped).
 * @param which The replicas to write (default all), named as the readings name them.
 * @param write Writes one replica.
 * @returns The replicas written, in order.
 *
 * @example A move's commit point writes the destination's replicas, store.json last
 * ```ts
 * import assert from "node:assert/strict";
 * import { writeDescriptorLast } from "./replicas.ts";
 * import { MemoryDriver } from "../drivers/memory.ts";
 *
 * const order: string[] = [];
 * await writeDescriptorLast(new MemoryDriver(), undefined, undefined, (t) => {
 *   order.push(t.where);
 *   return Promise.resolve();
 * });
 * assert.deepEqual(order, ["system.state/descriptor/store.json", "store.json"]);
 * ```
 */
export async function writeDescriptorLast(
  driver: Driver,
  host: Driver | undefined,
  which: readonly string[] | undefined,
  write: (target: ReplicaTarget) => Promise<void>,
): Promise<ReplicaTarget[]> {
  const targets: ReplicaTarget[] = [
    { where: DESCRIPTOR_REPLICA_KEY, driver, key: DESCRIPTOR_REPLICA_KEY },
    ...(host ? [{ where: HOST_REPLICA, driver: host, key: HOST_DESCRIPTOR_KEY }] : []),
    { where: DESCRIPTOR_KEY, driver, key: DESCRIPTOR_KEY },
  ].filter((t) => which === undefined || which.includes(t.where));
  for (const t of targets) await write(t);
  return targets;
}

/**
 * Writes descriptor replicas with the same bytes, `store.json` last.
 * @param driver The Location.
 * @param host The host storage, if any.
 * @param descriptor The descriptor.
 * @param which The replicas to write (default all), as named by {@linkcode readDescriptorReplicas}.
 * @returns The names of the replicas written, in order.
 */
export async function writeDescriptorReplicas(
  driver: Driver,
  host: Driver | undefined,
  descriptor: Descriptor,
  which?: readonly string[],
): Promise<string[]> {
  const bytes = encodeDescriptor(descriptor);
  const written = await writeDescriptorLast(driver, host, which, (t) => t.driver.put(t.key, bytes));
  return written.map((t) => t.where);
}
