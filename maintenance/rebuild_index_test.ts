import assert from "node:assert/strict";
import { MemoryDriver } from "../drivers/memory.ts";
import { writeConfigVersion } from "../format/config.ts";
import { DESCRIPTOR_KEY, DESCRIPTOR_REPLICA_KEY } from "../layout.ts";
import { EventBus } from "../store/events.ts";
import { listSnapshots } from "../store/persistence.ts";
import { initStore, openStore } from "../store/store.ts";
import {
  createGarbageCollectAgent,
  createMigrateIndexAgent,
  createRebuildIndexAgent,
  createVerificationAgent,
  RecoveryKitMismatchError,
} from "./mod.ts";
import { localfsLocations, memoryLocations } from "../tests/locations.ts";
import { registerRebuildScenarios } from "../tests/rebuild_scenarios.ts";

// The same scenarios run on S3 in tests/s3_scenarios_test.ts.
registerRebuildScenarios(memoryLocations);
registerRebuildScenarios(localfsLocations);

// ---------------------------------------------------------------------------
// Pruning after a rebuild follows the config in force now.

const quiet = { snapshotEveryPacks: 0, snapshotIntervalMs: 0 };

/** Writes `n` index snapshots through a handle opened now (so with the config in force). */
async function snapshots(driver: MemoryDriver, n: number): Promise<void> {
  const writer = await openStore(driver);
  for (let i = 0; i < n; i++) {
    await writer.put("ns", `k${i}`, new TextEncoder().encode(`v${i}`));
    await writer.snapshotIndex();
  }
  await writer.close();
}

Deno.test("RebuildIndexAgent prunes snapshots with the snapshotsKept of the config in force, not the handle's", async () => {
  const driver = new MemoryDriver();
  const { store } = await initStore(driver, { config: { ...quiet, snapshotsKept: 2 } });
  // Another process raises snapshotsKept after this handle opened.
  const raised = await writeConfigVersion(driver, { ...store.config!, snapshotsKept: 5 }, {
    chunking: store.descriptor!.chunking,
  });
  await snapshots(driver, 4);
  assert.equal((await listSnapshots(driver)).length, 4);
  const agent = createRebuildIndexAgent(store, new EventBus(), { source: "FullScan" });
  agent.validate();
  await agent.run();
  assert.equal((await listSnapshots(driver)).length, 5);
  assert.equal(store.config?.seq, raised.seq);
  assert.equal(store.config?.snapshotsKept, 5);
  await store.close();
});

Deno.test("RebuildIndexAgent from the Recovery Kit prunes with the store's snapshotsKept, not a default", async () => {
  const driver = new MemoryDriver();
  const init = await initStore(driver, { config: { ...quiet, snapshotsKept: 6 } });
  await init.store.close();
  await snapshots(driver, 5);
  await driver.delete(DESCRIPTOR_KEY);
  await driver.delete(DESCRIPTOR_REPLICA_KEY);
  const store = await openStore(driver);
  assert.equal(store.state, "Corrupted");
  const agent = createRebuildIndexAgent(store, new EventBus(), {
    recoveryKit: new TextEncoder().encode(init.recoveryKit),
  });
  agent.validate();
  await agent.run();
  assert.equal((await listSnapshots(driver)).length, 6);
  await store.close();
});

Deno.test("RecoveryKitMismatchError names both stores exactly and the object that told them apart", async () => {
  const { PACK_PREFIX } = await import("../layout.ts");
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

Deno.test("RebuildIndexAgent succeeds with a warning naming the host directory when the host cache cannot be written", async () => {
  const { FaultyDriver } = await import("../drivers/faulty.ts");
  const { LocalFsError } = await import("../drivers/localfs/errors.ts");
  const { HOST_CACHE_KEY } = await import("../layout.ts");
  const driver = new MemoryDriver();
  const host = new FaultyDriver(new MemoryDriver({ name: "memory:host-dir" }));
  const { store } = await initStore(driver, { hostStorage: host });
  await store.put("ns", "k", new TextEncoder().encode("v"));
  await store.flush();
  // The host directory is full from now on.
  host.inject({
    methods: ["put"],
    key: HOST_CACHE_KEY,
    error: () => new LocalFsError(HOST_CACHE_KEY, "write", { errno: "ENOSPC" }),
  });
  const bus = new EventBus();
  const warnings: string[] = [];
  bus.subscribe((e) => {
    if (e.type === "warning") warnings.push(`${e.code}: ${e.message}`);
  });
  const agent = createRebuildIndexAgent(store, bus, { source: "FullScan" });
  agent.validate();
  await agent.run();
  assert.equal(agent.stats().packsIndexed, 1);
  assert.equal(warnings.length, 1, warnings.join("\n"));
  assert.match(warnings[0]!, /^host_cache_unwritable: .*memory:host-dir/);
  assert.deepEqual(new TextDecoder().decode(await store.get("ns", "k")), "v");
  await store.close(); // the host cache write at close fails quietly too
});

Deno.test("RebuildConfig takes what a library user has: the kit as initStore returns it, the CLI's source spelling, a TTL like 30m", async () => {
  const driver = new MemoryDriver();
  const { store: first, recoveryKit } = await initStore(driver);
  await first.put("ns", "k", new TextEncoder().encode("v"));
  await first.close();
  await driver.delete("store.json");
  await driver.delete("system.state/descriptor/store.json");
  const store = await openStore(driver);
  const agent = createRebuildIndexAgent(store, new EventBus(), {
    source: "full-scan",
    recoveryKit, // a string, straight from initStore
    leaseTTL: "30m",
  });
  agent.validate();
  await agent.run();
  assert.equal(agent.stats().source, "FullScan");
  assert.equal(new TextDecoder().decode(await store.get("ns", "k")), "v");
  assert.throws(
    () => createRebuildIndexAgent(store, new EventBus(), { leaseTTL: "soon" }).validate(),
    /leaseTTL must be/,
  );
  await store.close();
});

Deno.test("every agent may be created without a bus: it publishes on store.bus", async () => {
  const { store } = await initStore(new MemoryDriver());
  await store.put("ns", "k", "v");
  const seen: string[] = [];
  store.bus.subscribe((e) => seen.push(e.type));
  await createRebuildIndexAgent(store).run();
  await createVerificationAgent(store, { data: true }).run();
  await createMigrateIndexAgent(store).run();
  await createGarbageCollectAgent(store, { grace: 0 }).run();
  const started = seen.filter((t) => t === "maintenance.started").length;
  assert.equal(started, 4, seen.join(", "));
  // The old form, a bus of one's own, still works.
  const own = new EventBus();
  const mine: string[] = [];
  own.subscribe((e) => mine.push(e.type));
  await createVerificationAgent(store, own, {}).run();
  assert.ok(mine.includes("maintenance.started"));
  await store.close();
});

Deno.test("openStore({ deferIndex }) loads no index: reads refuse until a rebuild installs one, and a closed handle leaves the host cache alone", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { openLocalFs } = await import("../drivers/localfs/mod.ts");
    const driver = await openLocalFs(`${dir}/store`, { create: true });
    const host = await openLocalFs(`${dir}/host`, { create: true });
    const { store: first } = await initStore(driver, { hostStorage: host });
    await first.put("ns", "a", new TextEncoder().encode("alpha"));
    await first.close();
    const cache = `${dir}/host/index/cache`;
    const before = await Deno.readFile(cache);

    const deferred = await openStore(driver, { hostStorage: host, deferIndex: true });
    assert.equal(deferred.state, "Ready");
    await assert.rejects(() => deferred.stat("ns", "a"), /deferIndex/);
    await assert.rejects(() => deferred.put("ns", "b", new Uint8Array(1)), /deferIndex/);
    await deferred.close();
    assert.deepEqual(await Deno.readFile(cache), before, "the host cache is untouched");

    const rebuilding = await openStore(driver, { hostStorage: host, deferIndex: true });
    const agent = createRebuildIndexAgent(rebuilding, { source: "FullScan" });
    agent.validate();
    await agent.run();
    assert.equal(agent.stats().manifestsIndexed, 1);
    assert.equal((await rebuilding.stat("ns", "a"))?.size, 5);
    await rebuilding.put("ns", "b", new TextEncoder().encode("bravo"));
    await rebuilding.close();
    const again = await openStore(driver, { hostStorage: host });
    assert.deepEqual((await again.list("ns")).items.map((i) => i.key), ["a", "b"]);
    await again.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("A rebuild from the newest snapshot writes a new one only once snapshotEveryPacks packs lie past it", async () => {
  const driver = new MemoryDriver();
  const host = new MemoryDriver();
  const config = { snapshotEveryPacks: 3, snapshotIntervalMs: 0, snapshotsKept: 5 };
  const { store } = await initStore(driver, { hostStorage: host, config });
  // Each put through a handle of its own: one pack each, never the count a handle snapshots at.
  const put = async (k: string) => {
    const writer = await openStore(driver);
    await writer.put("ns", k, new TextEncoder().encode(k.repeat(300)));
    await writer.close();
  };
  await put("a");
  await store.refresh();
  await store.snapshotIndex();
  await put("b");
  await put("c"); // two packs past the snapshot
  const rebuild = async () => {
    await host.delete("index/cache").catch(() => {});
    const agent = createRebuildIndexAgent(store, { source: "Auto" });
    agent.validate();
    await agent.run();
    return agent.stats();
  };
  let stats = await rebuild();
  assert.deepEqual([stats.source, stats.packsIndexed, stats.snapshotWritten], [
    "Snapshot",
    2,
    false,
  ]);
  assert.equal((await listSnapshots(driver)).length, 1);
  assert.deepEqual((await store.list("ns")).items.map((i) => i.key), ["a", "b", "c"]);

  await put("d"); // three packs past it: the schedule's count
  stats = await rebuild();
  assert.deepEqual([stats.packsIndexed, stats.snapshotWritten], [3, true]);
  const snapshots = await listSnapshots(driver);
  assert.equal(snapshots.length, 2);

  // A newest snapshot that is unusable: the rebuild starts from the older one and writes anew.
  await put("e");
  await driver.put(snapshots[0]!, new TextEncoder().encode("not a snapshot"));
  stats = await rebuild();
  assert.deepEqual([stats.source, stats.packsIndexed, stats.snapshotWritten], [
    "Snapshot",
    4,
    true,
  ]);
  assert.deepEqual((await store.list("ns")).items.map((i) => i.key), ["a", "b", "c", "d", "e"]);

  // A full scan always writes one.
  const full = createRebuildIndexAgent(store, { source: "FullScan" });
  full.validate();
  await full.run();
  assert.equal(full.stats().snapshotWritten, true);
  await store.close();
});
