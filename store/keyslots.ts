/**
 * Key slots on the Location (docs/FORMAT.md §9.3): each slot is one small
 * immutable object, kept twice (`system.keys/<id>.json` and
 * `system.state/keys/<id>.json`). The store's slots are the union of both
 * listings; a copy that is missing or damaged beside a sound twin is healed
 * from it. Adding a slot writes the replica first; removing deletes the
 * primary first: a crash in between leaves the slot in force, and running
 * the command again finishes it.
 *
 * @module
 */

import { type Driver, NotFoundError } from "../drivers/driver.ts";
import { CorruptObjectError, InvalidArgumentError } from "../errors.ts";
import {
  decodeKeySlot,
  encodeKeySlot,
  type KeySlot,
  openDataKeySlot,
  PassphraseRequiredError,
  StoreKeys,
} from "../format/crypto.ts";
import type { Descriptor } from "../format/descriptor.ts";
import {
  KEY_SLOT_PREFIX,
  KEY_SLOT_REPLICA_PREFIX,
  keySlotKeys,
  parseKeySlotKey,
} from "../layout.ts";

/** What reading the slots found. */
export interface KeySlotReading {
  /** The sound slots, by slot id order. */
  slots: KeySlot[];
  /** Copies to rewrite from their sound twin: key and bytes. */
  toHeal: Array<{ key: string; bytes: Uint8Array }>;
  /** Damaged copies without a sound twin, each naming its object. */
  problems: string[];
}

async function tryGet(driver: Driver, key: string): Promise<Uint8Array | undefined> {
  try {
    return await driver.get(key);
  } catch (e) {
    if (e instanceof NotFoundError) return undefined;
    throw e;
  }
}

/**
 * Reads every key slot of a store (both copies).
 * @param driver The Location. @param storeId The store.
 * @returns The sound slots, copies to heal, and problems.
 */
export async function readKeySlots(driver: Driver, storeId: string): Promise<KeySlotReading> {
  const ids = new Set<string>();
  for (const prefix of [KEY_SLOT_PREFIX, KEY_SLOT_REPLICA_PREFIX]) {
    for await (const info of driver.list(prefix)) {
      const id = parseKeySlotKey(info.key);
      if (id !== undefined) ids.add(id);
    }
  }
  const reading: KeySlotReading = { slots: [], toHeal: [], problems: [] };
  for (const id of [...ids].sort()) {
    const keys = keySlotKeys(id);
    const copies = await Promise.all(keys.map((k) => tryGet(driver, k)));
    const decoded = copies.map((bytes, i) => {
      if (bytes === undefined) return undefined;
      try {
        const slot = decodeKeySlot(keys[i]!, bytes, storeId);
        if (slot.slotId !== id) throw new CorruptObjectError(keys[i]!, `names slot ${slot.slotId}`);
        return { slot, bytes };
      } catch (e) {
        if (!(e instanceof CorruptObjectError)) throw e;
        return e;
      }
    });
    const sound = decoded.find((d) => d !== undefined && !(d instanceof CorruptObjectError)) as
      | { slot: KeySlot; bytes: Uint8Array }
      | undefined;
    if (sound === undefined) {
      for (const d of decoded) {
        if (d instanceof CorruptObjectError) reading.problems.push(`${d.key}: ${d.reason}`);
      }
      continue;
    }
    reading.slots.push(sound.slot);
    decoded.forEach((d, i) => {
      const same = d !== undefined && !(d instanceof CorruptObjectError) &&
        d.bytes.length === sound.bytes.length && d.bytes.every((b, j) => b === sound.bytes[j]);
      if (!same) reading.toHeal.push({ key: keys[i]!, bytes: sound.bytes });
    });
  }
  return reading;
}

/**
 * Writes a slot: its replica, then its primary copy.
 * @param driver The Location. @param slot The slot.
 */
export async function writeKeySlot(driver: Driver, slot: KeySlot): Promise<void> {
  const bytes = encodeKeySlot(slot);
  const [primary, replica] = keySlotKeys(slot.slotId);
  await driver.put(replica, bytes);
  await driver.put(primary, bytes);
}

/**
 * Removes a slot: its primary copy, then its replica.
 * @param driver The Location. @param slotId The slot.
 */
export async function deleteKeySlot(driver: Driver, slotId: string): Promise<void> {
  const [primary, replica] = keySlotKeys(slotId);
  for (const key of [primary, replica]) {
    try {
      await driver.delete(key);
    } catch (e) {
      if (!(e instanceof NotFoundError)) throw e;
    }
  }
}

/** What unlocking an encrypted store gives. */
export interface Unlocked {
  /** The store's keys. */
  keys: StoreKeys;
  /** The data key (to wrap in a new slot). */
  dataKey: Uint8Array;
  /** The slot the passphrase opened. */
  slot: KeySlot;
}

/**
 * Opens an encrypted store's keys with a passphrase.
 * @param descriptor The descriptor (encrypted).
 * @param slots The slots to try.
 * @param passphrase The passphrase, if any.
 * @returns The keys, data key and slot.
 * @throws {PassphraseRequiredError} without a passphrase.
 * @throws {WrongPassphraseError} when no slot opens.
 * @throws {CorruptObjectError} when there is no slot, or one opens to a foreign key.
 */
export async function unlock(
  descriptor: Descriptor,
  slots: readonly KeySlot[],
  passphrase: string | undefined,
): Promise<Unlocked> {
  if (descriptor.encryption === null) throw new InvalidArgumentError("the store is not encrypted");
  if (passphrase === undefined) throw new PassphraseRequiredError();
  if (slots.length === 0) {
    throw new CorruptObjectError(
      KEY_SLOT_PREFIX,
      "the store is encrypted but no key slot is left: rebuild with its Recovery Kit (capsa rebuild LOCATION --kit FILE), which holds the slots",
    );
  }
  const { dataKey, slot } = await openDataKeySlot(
    slots,
    descriptor.storeId,
    descriptor.encryption.keyCheck,
    passphrase,
  );
  return {
    keys: await StoreKeys.fromDataKey(dataKey, descriptor.storeId, descriptor.hash),
    dataKey,
    slot,
  };
}
