import assert from "node:assert/strict";
import { MemoryDriver } from "../drivers/memory.ts";
import { CorruptObjectError, MaintenanceModeError, StoreMovedError } from "../errors.ts";
import { acquireLease } from "./lease.ts";
import { UnsupportedFormatVersionError } from "../errors.ts";
import { encodeMaintenanceMode, encodeMovedMarker } from "../format/markers.ts";
import { MAINTENANCE_MODE_KEY, MOVED_KEY } from "../layout.ts";
import { initStore, openStore } from "./store.ts";

const enc = new TextEncoder();
const json = (v: unknown) => enc.encode(JSON.stringify(v));

async function fresh(): Promise<MemoryDriver> {
  const driver = new MemoryDriver();
  const { store } = await initStore(driver);
  await store.close();
  return driver;
}

Deno.test("openStore() refuses a moved store, naming where it went", async () => {
  const driver = await fresh();
  await driver.put(
    MOVED_KEY,
    encodeMovedMarker({ destination: "s3://b/x", storeId: "s", movedAt: 1 }),
  );
  await assert.rejects(
    openStore(driver),
    (e: unknown) => e instanceof StoreMovedError && e.destination === "s3://b/x",
  );
});

Deno.test("openStore() never takes an unreadable moved marker for 'not moved'", async () => {
  const driver = await fresh();
  await driver.put(MOVED_KEY, enc.encode("s3://b/x\n"));
  await assert.rejects(
    openStore(driver),
    (e: unknown) =>
      e instanceof CorruptObjectError && !(e instanceof UnsupportedFormatVersionError) &&
      e.key === MOVED_KEY,
  );
  await driver.put(
    MOVED_KEY,
    json({ format: "capsa-moved", version: 2, destination: "d", storeId: "s", movedAt: 1 }),
  );
  await assert.rejects(
    openStore(driver),
    (e: unknown) => e instanceof UnsupportedFormatVersionError && e.key === MOVED_KEY,
  );
});

Deno.test("Store.put() refuses to commit past a moved marker written while the handle was open", async () => {
  const driver = await fresh();
  const store = await openStore(driver);
  await driver.put(
    MOVED_KEY,
    encodeMovedMarker({ destination: "/new/home", storeId: store.storeId, movedAt: 1 }),
  );
  await assert.rejects(store.put("ns", "k", enc.encode("v")), StoreMovedError);
  await store.close();
});

Deno.test("A damaged maintenance-mode record is shown by status() and ignored by the gate", async () => {
  const driver = await fresh();
  await driver.put(MAINTENANCE_MODE_KEY, enc.encode("{ not json"));
  const store = await openStore(driver);
  assert.deepEqual((await store.status()).maintenance, { mode: "offline", holder: "unknown" });
  await store.put("ns", "k", enc.encode("v"));
  assert.equal(new TextDecoder().decode(await store.get("ns", "k")), "v");
  await store.close();
});

Deno.test("A maintenance-mode record of a newer version refuses writes with UnsupportedFormatVersionError", async () => {
  const driver = await fresh();
  const store = await openStore(driver);
  const record = JSON.parse(
    new TextDecoder().decode(
      encodeMaintenanceMode({ mode: "offline", agent: "A", holder: "A on h", nonce: "n" }),
    ),
  );
  await driver.put(MAINTENANCE_MODE_KEY, json({ ...record, version: 2 }));
  await assert.rejects(store.put("ns", "k", enc.encode("v")), UnsupportedFormatVersionError);
  await driver.delete(MAINTENANCE_MODE_KEY);
  await store.put("ns", "k", enc.encode("v"));
  await store.close();
});

Deno.test("A maintenance mode whose holder may have died says when it lapses (its lease's expiry) and how to take over", async () => {
  const driver = await fresh();
  const store = await openStore(driver);
  // A holder on another host: this process cannot tell whether it still runs.
  const lease = await acquireLease(driver, {
    storeId: store.storeId,
    agent: "RebuildIndex",
    host: "elsewhere",
    pid: 7,
    ttlMs: 600_000,
  });
  await driver.put(
    MAINTENANCE_MODE_KEY,
    encodeMaintenanceMode({
      mode: "offline",
      agent: "RebuildIndex",
      holder: "RebuildIndex on elsewhere (pid 7)",
      nonce: lease.record.nonce,
    }),
  );
  const e = await store.put("ns", "k", enc.encode("v")).then(() => undefined, (e: unknown) => e);
  assert.ok(e instanceof MaintenanceModeError, String(e));
  assert.equal(e.until, lease.record.expiresAt);
  assert.match(
    e.message,
    new RegExp(
      `retry when it finishes; if that process has died, the mode lapses when its lease expires at ${
        new Date(lease.record.expiresAt).toISOString().replace(/[.]/g, "\\.")
      }, or a new agent takes over with --force`,
    ),
  );
  await store.close();
});
