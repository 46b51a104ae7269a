import assert from "node:assert/strict";
import { MemoryDriver } from "../drivers/memory.ts";
import { EventBus } from "../store/events.ts";
import { initStore, openStore } from "../store/store.ts";
import { createRebuildIndexAgent, RecoveryKitMismatchError } from "./mod.ts";
import { localfsLocations, memoryLocations } from "../tests/locations.ts";
import { registerRebuildScenarios } from "../tests/rebuild_scenarios.ts";

// The same scenarios run on S3 in tests/s3_scenarios_test.ts.
registerRebuildScenarios(memoryLocations);
registerRebuildScenarios(localfsLocations);

Deno.test("RecoveryKitMismatchError names both stores exactly and the object that told them apart", async () => {
  const { DESCRIPTOR_KEY, DESCRIPTOR_REPLICA_KEY, PACK_PREFIX } = await import("../layout.ts");
  const objects = new Map<string, Uint8Array>();
  const driver = new MemoryDriver({ objects });
  const { store: first } = await initStore(driver, { config: { packLingerMs: 1 } });
  const storeId = first.storeId;
  await first.put("ns", "k", new TextEncoder().encode("v"));
  const snapshot = await first.snapshotIndex();
  await first.close();
  const { recoveryKit: otherKit, store: other } = await initStore(new MemoryDriver());
  const otherId = other.storeId;
  await other.close();

  const mismatch = async (): Promise<RecoveryKitMismatchError> => {
    const store = await openStore(driver, { readOnly: true });
    try {
      const agent = createRebuildIndexAgent(store, new EventBus(), {
        recoveryKit: new TextEncoder().encode(otherKit),
      });
      let caught: unknown;
      try {
        agent.validate();
        await agent.run();
      } catch (e) {
        caught = e;
      }
      assert.ok(caught instanceof RecoveryKitMismatchError, String(caught));
      return caught;
    } finally {
      await store.close();
    }
  };

  // The evidence, in the order the rebuild looks: the descriptor, a pack, a snapshot.
  let e = await mismatch();
  assert.deepEqual([e.kitStoreId, e.storeId, e.where], [otherId, storeId, DESCRIPTOR_KEY]);
  objects.delete(DESCRIPTOR_KEY);
  objects.delete(DESCRIPTOR_REPLICA_KEY);
  e = await mismatch();
  assert.deepEqual([e.kitStoreId, e.storeId], [otherId, storeId]);
  assert.ok(e.where.startsWith(PACK_PREFIX), e.where);
  for (const key of [...objects.keys()]) if (key.startsWith(PACK_PREFIX)) objects.delete(key);
  e = await mismatch();
  assert.deepEqual([e.kitStoreId, e.storeId, e.where], [otherId, storeId, snapshot]);
  assert.equal(
    e.message,
    `the Recovery Kit is for store ${otherId}, but ${snapshot} belongs to store ${storeId}: use this store's kit`,
  );
});
