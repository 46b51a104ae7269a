/**
 * The pack clock: this handle's clock, corrected to the Location's.
 *
 * Pack ids are ULIDs, so a pack's id says when it was written, by its
 * writer's clock; catching up lists the packs from a high-water mark less an
 * overlap (docs/FORMAT.md §7). That holds only while writers' clocks agree
 * with each other to within {@linkcode MAX_CLOCK_SKEW_MS}. Instead of assuming
 * it, a writer measures its clock against the Location's before its first
 * pack and again every {@linkcode CLOCK_CHECK_INTERVAL_MS}: it writes a tiny
 * probe object, reads back the time the Location stamped on it
 * (`ObjectInfo.modified`), deletes it, and from then on draws pack ids from
 * its own clock plus the measured offset. A host whose clock runs twenty
 * minutes ahead therefore still writes packs that sort where they belong.
 *
 * @module
 */

import type { Driver } from "../drivers/driver.ts";
import { clockProbeKey } from "../layout.ts";
import { MAX_CLOCK_SKEW_MS } from "../index/pack_indexer.ts";
import type { EventBus } from "./events.ts";

/** How often a long-lived writer measures its clock again (clocks drift, or are stepped). */
export const CLOCK_CHECK_INTERVAL_MS = 10 * 60_000;

/** Offsets below this are noise (an S3 `Last-Modified` has one-second resolution). */
const NOISE_MS = 2_000;

/** A handle's clock corrected by the offset it measured against the Location. */
export class PackClock {
  readonly #driver: Driver;
  readonly #clock: () => number;
  readonly #bus: EventBus;
  readonly #storeId: () => string;
  #offset = 0;
  #checkedAt = -Infinity;
  #checking: Promise<void> | undefined;

  /**
   * @param driver The Location.
   * @param clock The handle's own clock.
   * @param bus Where a skew warning goes.
   * @param storeId The store id, for events.
   */
  constructor(driver: Driver, clock: () => number, bus: EventBus, storeId: () => string) {
    this.#driver = driver;
    this.#clock = clock;
    this.#bus = bus;
    this.#storeId = storeId;
  }

  /** The corrected time, in ms since the epoch. @returns The time. */
  readonly now = (): number => this.#clock() + this.#offset;

  /** The offset last measured (Location minus this host), in ms. @returns The offset. */
  get offset(): number {
    return this.#offset;
  }

  /**
   * Measures the offset unless it was measured recently. Call before drawing
   * a pack id. Concurrent callers share one measurement.
   */
  async sync(): Promise<void> {
    if (this.#clock() - this.#checkedAt < CLOCK_CHECK_INTERVAL_MS) return;
    this.#checking ??= this.#measure().finally(() => {
      this.#checking = undefined;
    });
    await this.#checking;
  }

  async #measure(): Promise<void> {
    const key = clockProbeKey(crypto.randomUUID().replaceAll("-", ""));
    const before = this.#clock();
    await this.#driver.put(key, new Uint8Array(0));
    let modified: number | undefined;
    try {
      modified = (await this.#driver.stat(key)).modified;
    } finally {
      await this.#driver.delete(key).catch(() => {});
    }
    const after = this.#clock();
    this.#checkedAt = after;
    if (modified === undefined) return; // a driver that cannot tell: nothing to correct by
    const measured = modified - (before + after) / 2;
    const offset = Math.abs(measured) < NOISE_MS ? 0 : Math.round(measured);
    if (Math.abs(offset - this.#offset) >= NOISE_MS && Math.abs(offset) >= MAX_CLOCK_SKEW_MS / 4) {
      this.#bus.publish({
        type: "warning",
        at: after,
        storeId: this.#storeId(),
        code: "clock_skew",
        message: `this host's clock is ${Math.round(-measured / 1000)} s off the Location's; ` +
          `pack ids follow the Location's clock (fix the host's clock: NTP)`,
      });
    }
    this.#offset = offset;
  }
}
