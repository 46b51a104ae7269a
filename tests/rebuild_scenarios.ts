/**
 * The RebuildIndexAgent scenarios of issue 4, written once and run on every
 * kind of Location: `maintenance/rebuild_index_test.ts` registers them for
 * memory and localfs, `tests/s3_scenarios_test.ts` for S3 with and without
 * create-only puts. The host storage is always a memory map (it is a host
 * directory, never remote).
 */

import assert from "node:assert/strict";
import { MemoryDriver } from "../drivers/memory.ts";
import type { LocationKind, TestLocation } from "./locations.ts";
import type { ConfigSettings } from "../format/config.ts";
import { StoreCorruptedError } from "../errors.ts";
import { type CapsaEvent, EventBus } from "../store/events.ts";
import { acquireLease, LeaseHeldError, LeaseLostError } from "../store/lease.ts";
import { initStore, openStore, type Store } from "../store/store.ts";
import { RecoveryKitInvalidError } from "../format/kit.ts";
import {
  createRebuildIndexAgent,
  HostStorageRequiredError,
  NoSnapshotError,
  type RebuildConfig,
  RecoveryKitMismatchError,
  RecoveryKitRequiredError,
} from "../maintenance/mod.ts";
import { body } from "./data.ts";
import { answers } from "./answers.ts";
import {
  DESCRIPTOR_KEY,
  DESCRIPTOR_REPLICA_KEY,
  HOST_CACHE_KEY,
  HOST_DESCRIPTOR_KEY,
  LEASE_KEY,
  SNAPSHOT_PREFIX,
} from "../layout.ts";

type Objects = Map<string, Uint8Array>;
const enc = new TextEncoder();

const config: Partial<ConfigSettings> = {
  inlineThreshold: 32,
  chunkThreshold: 2048,
  packTargetSize: 8192,
  packLingerMs: 1,
  snapshotEveryPacks: 0,
  snapshotIntervalMs: 0,
  snapshotsKept: 5,
};
const chunking = { min: 256, avg: 1024, max: 2048 };

interface Counts {
  packs: number;
  manifests: number;
  blobs: number;
}

/** A store with known contents, two snapshots along the way, and the counts at each. */
interface Fixture {
  loc: TestLocation;
  host: Objects;
  kit: string;
  storeId: string;
  snapshots: Array<{ key: string; counts: Counts }>;
  final: Counts;
  answers: unknown;
}

function countsOf(store: Store): Counts {
  const c = store.index.counts();
  return { packs: c.packs, manifests: c.manifests, blobs: c.blobs };
}

async function fixture(
  kind: LocationKind,
  manifestStorage: "Remote" | "Local" | "Replicated" = "Remote",
): Promise<Fixture> {
  const loc = await kind.create();
  const host: Objects = new Map();
  const { store, recoveryKit } = await initStore(await loc.open(), {
    hostStorage: new MemoryDriver({ objects: host }),
    config: { ...config, manifestStorage },
    chunking,
  });
  const snapshots: Fixture["snapshots"] = [];
  for (let i = 0; i < 6; i++) await store.put("docs", `inline-${i}`, enc.encode(`tiny ${i}`));
  for (let i = 0; i < 4; i++) await store.put("docs", `regular-${i}`, body(i, 1000 + i));
  await store.put("docs", "deleted", body(50, 600));
  if (manifestStorage === "Remote") {
    snapshots.push({ key: await store.snapshotIndex(), counts: countsOf(store) });
  }
  await store.put("media", "chunked", body(60, 20_000));
  await store.put("media", "chunked-copy", body(60, 20_000)); // dedup: no new blob
  await store.put("docs", "regular-0", body(70, 1500)); // overwrite
  await store.delete("docs", "deleted");
  await Promise.all(
    Array.from({ length: 12 }, (_, i) => store.put("many", `k${i}`, body(80 + i, 100 + i))),
  );
  if (manifestStorage === "Remote") {
    snapshots.push({ key: await store.snapshotIndex(), counts: countsOf(store) });
  }
  await store.put("docs", "late", body(90, 700));
  const final = countsOf(store);
  const a = await answers(store);
  const storeId = store.storeId;
  await store.close();
  live.push(loc);
  return { loc, host, kit: recoveryKit, storeId, snapshots, final, answers: a };
}

/** Resolves once an agent on `bus` holds its lease. */
function startedOn(bus: EventBus): Promise<void> {
  return new Promise((resolve) => {
    const off = bus.subscribe(() => {
      off();
      resolve();
    }, { types: ["maintenance.started"] });
  });
}

/** Locations made by the running test, disposed of when it ends. */
const live: TestLocation[] = [];

function copyMap(m: Objects): Objects {
  return new Map([...m].map(([k, v]) => [k, v.slice()]));
}

async function rebuild(
  f: Fixture,
  options: RebuildConfig = {},
  open: { host?: boolean } = {},
): Promise<
  {
    store: Store;
    stats: ReturnType<ReturnType<typeof createRebuildIndexAgent>["stats"]>;
    events: CapsaEvent[];
  }
> {
  const bus = new EventBus();
  const events: CapsaEvent[] = [];
  bus.subscribe((e) => events.push(e));
  const store = await openStore(await f.loc.open(), {
    ...(open.host === false ? {} : { hostStorage: new MemoryDriver({ objects: f.host }) }),
    bus,
  });
  const agent = createRebuildIndexAgent(store, bus, options);
  agent.validate();
  await agent.run();
  assert.deepEqual(agent.problems(), []);
  return { store, stats: agent.stats(), events };
}

async function assertAnswers(f: Fixture, store: Store): Promise<void> {
  assert.deepEqual(await answers(store), f.answers);
  // And after a reopen from the host cache the rebuild wrote.
  await store.close();
  const again = await openStore(await f.loc.open(), {
    hostStorage: new MemoryDriver({ objects: f.host }),
  });
  assert.equal(again.state, "Ready", again.problems.join("; "));
  assert.deepEqual(await answers(again), f.answers);
  await again.close();
}

function newestSnapshotId(f: Fixture): string {
  return f.snapshots[f.snapshots.length - 1]!.key.slice(SNAPSHOT_PREFIX.length);
}

/**
 * Registers every rebuild scenario for one kind of Location.
 * @param kind The kind of Location.
 */
export function registerRebuildScenarios(kind: LocationKind): void {
  const test = (name: string, fn: () => Promise<void>) =>
    Deno.test(`${kind.name}: ${name}`, async () => {
      try {
        await fn();
      } finally {
        for (const loc of live.splice(0)) await loc.dispose();
      }
    });

  test("RebuildIndexAgent after the host cache was deleted: snapshot fast path, exact stats", async () => {
    const f = await fixture(kind);
    f.host.delete(HOST_CACHE_KEY);
    const { store, stats, events } = await rebuild(f);
    const snap = f.snapshots[1]!.counts;
    assert.deepEqual({ ...stats, duration: 0 }, {
      source: "Snapshot",
      snapshotUsed: newestSnapshotId(f),
      manifestsScanned: f.final.manifests - snap.manifests,
      manifestsIndexed: f.final.manifests - snap.manifests,
      manifestsSkipped: snap.manifests,
      blobsRegistered: f.final.blobs - snap.blobs,
      packsIndexed: f.final.packs - snap.packs,
      pointerRecovered: false,
      descriptorRewrote: false,
      // snapshotEveryPacks 0 (never by count): a rebuild always writes one.
      snapshotWritten: true,
      duration: 0,
    });
    assert.ok(stats.packsIndexed >= 1 && stats.manifestsSkipped > 0);
    const types = events.map((e) => e.type);
    assert.ok(types.includes("maintenance.started"));
    assert.ok(types.includes("maintenance.progress"));
    assert.equal(types[types.length - 1], "maintenance.completed");
    await assertAnswers(f, store);
  });

  test("RebuildIndexAgent after the host cache was replaced with garbage", async () => {
    const f = await fixture(kind);
    f.host.set(HOST_CACHE_KEY, enc.encode("garbage, not an index"));
    const { store, stats } = await rebuild(f);
    assert.equal(stats.source, "Snapshot");
    assert.equal(stats.packsIndexed, f.final.packs - f.snapshots[1]!.counts.packs);
    await assertAnswers(f, store);
  });

  test("RebuildIndexAgent uses the older snapshot when the newest is corrupted", async () => {
    const f = await fixture(kind);
    await f.loc.flip(f.snapshots[1]!.key, -10);
    f.host.delete(HOST_CACHE_KEY);
    const { store, stats } = await rebuild(f);
    const older = f.snapshots[0]!;
    assert.equal(stats.snapshotUsed, older.key.slice(SNAPSHOT_PREFIX.length));
    assert.equal(stats.manifestsSkipped, older.counts.manifests);
    assert.equal(stats.manifestsIndexed, f.final.manifests - older.counts.manifests);
    assert.equal(stats.packsIndexed, f.final.packs - older.counts.packs);
    assert.equal(stats.blobsRegistered, f.final.blobs - older.counts.blobs);
    await assertAnswers(f, store);
  });

  test("RebuildIndexAgent falls back to a full scan when every snapshot is deleted", async () => {
    const f = await fixture(kind);
    for (const s of f.snapshots) await f.loc.raw.delete(s.key);
    f.host.delete(HOST_CACHE_KEY);
    const { store, stats } = await rebuild(f);
    assert.deepEqual({ ...stats, duration: 0 }, {
      source: "FullScan",
      snapshotUsed: "",
      manifestsScanned: f.final.manifests,
      manifestsIndexed: f.final.manifests,
      manifestsSkipped: 0,
      blobsRegistered: f.final.blobs,
      packsIndexed: f.final.packs,
      pointerRecovered: false,
      descriptorRewrote: false,
      // snapshotEveryPacks 0 (never by count): a rebuild always writes one.
      snapshotWritten: true,
      duration: 0,
    });
    await assertAnswers(f, store);
  });

  test("RebuildIndexAgent source FullScan ignores snapshots", async () => {
    const f = await fixture(kind);
    const { store, stats } = await rebuild(f, { source: "FullScan", batchSize: 3, parallelism: 2 });
    assert.equal(stats.source, "FullScan");
    assert.equal(stats.packsIndexed, f.final.packs);
    assert.equal(stats.manifestsIndexed, f.final.manifests);
    await assertAnswers(f, store);
  });

  test("RebuildIndexAgent rewrites every lost descriptor replica from the Recovery Kit", async () => {
    const f = await fixture(kind);
    const original = await f.loc.raw.get(DESCRIPTOR_KEY);
    await f.loc.raw.delete(DESCRIPTOR_KEY);
    await f.loc.raw.delete(DESCRIPTOR_REPLICA_KEY);
    f.host.delete(HOST_DESCRIPTOR_KEY);
    f.host.delete(HOST_CACHE_KEY);
    const corrupted = await openStore(await f.loc.open(), {
      hostStorage: new MemoryDriver({ objects: f.host }),
    });
    assert.equal(corrupted.state, "Corrupted");
    await assert.rejects(corrupted.get("docs", "late"), StoreCorruptedError);
    assert.throws(
      () => createRebuildIndexAgent(corrupted, new EventBus(), {}).validate(),
      RecoveryKitRequiredError,
    );
    await corrupted.close();

    const { store, stats, events } = await rebuild(f, { recoveryKit: enc.encode(f.kit) });
    assert.equal(stats.descriptorRewrote, true);
    assert.equal(stats.pointerRecovered, false);
    assert.equal(stats.source, "Snapshot");
    assert.deepEqual(await f.loc.raw.get(DESCRIPTOR_KEY), original);
    assert.deepEqual(await f.loc.raw.get(DESCRIPTOR_REPLICA_KEY), original);
    assert.deepEqual(f.host.get(HOST_DESCRIPTOR_KEY), original);
    assert.ok(events.some((e) => e.type === "descriptor.healed"));
    assert.equal(store.state, "Ready");
    await assertAnswers(f, store);
  });

  test("RebuildIndexAgent repoints a dangling system.config/current", async () => {
    const f = await fixture(kind);
    await f.loc.raw.put("system.config/current", enc.encode("99\n"));
    const before = await openStore(await f.loc.open());
    assert.equal(before.state, "Degraded");
    await before.close();
    const { store, stats } = await rebuild(f);
    assert.equal(stats.pointerRecovered, true);
    assert.equal(new TextDecoder().decode(await f.loc.raw.get("system.config/current")), "1\n");
    assert.equal((await store.status()).config?.pointer, "ok");
    await assertAnswers(f, store);
  });

  for (const storage of ["Local", "Replicated"] as const) {
    test(`RebuildIndexAgent rebuilds a ${storage}-manifest store from the host manifest log`, async () => {
      const f = await fixture(kind, storage);
      f.host.delete(HOST_CACHE_KEY);
      const { store, stats } = await rebuild(f, { source: "FullScan" });
      assert.equal(stats.packsIndexed, f.final.packs);
      assert.equal(stats.manifestsIndexed, f.final.manifests);
      assert.equal(stats.manifestsScanned, f.final.manifests * (storage === "Replicated" ? 2 : 1));
      assert.equal(stats.blobsRegistered, f.final.blobs);
      await assertAnswers(f, store);
    });
  }

  test("RebuildIndexAgent with Replicated manifests and no host storage falls back to the TOCs", async () => {
    const f = await fixture(kind, "Replicated");
    const { store, stats } = await rebuild(f, { source: "FullScan" }, { host: false });
    assert.equal(stats.manifestsIndexed, f.final.manifests);
    assert.equal(stats.manifestsScanned, f.final.manifests);
    assert.deepEqual(await answers(store), f.answers);
    await store.close();
  });

  /** Runs a rebuild expected to fail and checks the Location did not change at all. */
  async function refusedUnchanged(
    f: Fixture,
    options: RebuildConfig,
    expected: new (...a: never[]) => Error,
    open: { host?: boolean } = {},
  ): Promise<void> {
    const before = await f.loc.dump();
    const hostBefore = copyMap(f.host);
    const store = await openStore(await f.loc.open(), {
      ...(open.host === false ? {} : { hostStorage: new MemoryDriver({ objects: f.host }) }),
      readOnly: true,
    });
    const agent = createRebuildIndexAgent(store, new EventBus(), options);
    await assert.rejects(
      (async () => {
        agent.validate();
        await agent.run();
      })(),
      (e: unknown) => {
        assert.ok(e instanceof expected, `expected ${expected.name}, got ${String(e)}`);
        return true;
      },
    );
    await store.close();
    assert.deepEqual(await f.loc.dump(), before);
    assert.deepEqual(f.host, hostBefore);
  }

  test("RebuildIndexAgent refuses a wrong, corrupted or missing kit and changes nothing", async () => {
    const f = await fixture(kind);
    const other = await fixture(kind);
    await f.loc.raw.delete(DESCRIPTOR_KEY);
    await f.loc.raw.delete(DESCRIPTOR_REPLICA_KEY);
    f.host.delete(HOST_DESCRIPTOR_KEY);
    await refusedUnchanged(f, { recoveryKit: enc.encode(other.kit) }, RecoveryKitMismatchError);
    const flipped = f.kit.replace(
      /store-id: (.)/,
      (_m, c: string) => `store-id: ${c === "a" ? "b" : "a"}`,
    );
    await refusedUnchanged(f, { recoveryKit: enc.encode(flipped) }, RecoveryKitInvalidError);
    await refusedUnchanged(
      f,
      { recoveryKit: enc.encode(f.kit.slice(0, 40)) },
      RecoveryKitInvalidError,
    );
    await refusedUnchanged(f, {}, RecoveryKitRequiredError);
  });

  test("RebuildIndexAgent refuses a kit of another store even with a sound descriptor", async () => {
    const f = await fixture(kind);
    const other = await fixture(kind);
    await refusedUnchanged(f, { recoveryKit: enc.encode(other.kit) }, RecoveryKitMismatchError);
  });

  test("RebuildIndexAgent source Snapshot without a valid snapshot: NoSnapshotError, nothing changed", async () => {
    const f = await fixture(kind);
    for (const s of f.snapshots) await f.loc.raw.delete(s.key);
    await refusedUnchanged(f, { source: "Snapshot" }, NoSnapshotError);
  });

  test("RebuildIndexAgent with Local manifests and no host storage: HostStorageRequiredError", async () => {
    const f = await fixture(kind, "Local");
    // The store refuses to open without the host storage that holds its manifests (read-only
    // or not), so no agent gets a handle to run on; nothing is written.
    const before = await f.loc.dump();
    const hostBefore = copyMap(f.host);
    for (const readOnly of [true, false]) {
      await assert.rejects(openStore(await f.loc.open(), { readOnly }), HostStorageRequiredError);
    }
    assert.deepEqual(await f.loc.dump(), before);
    assert.deepEqual(f.host, hostBefore);
  });

  test("RebuildIndexAgent: two at once in one process, exactly one runs", async () => {
    const f = await fixture(kind);
    const a = await openStore(await f.loc.open());
    const b = await openStore(await f.loc.open());
    const results = await Promise.allSettled([
      createRebuildIndexAgent(a, new EventBus(), { source: "FullScan" }).run(),
      createRebuildIndexAgent(b, new EventBus(), { source: "FullScan" }).run(),
    ]);
    assert.equal(results.filter((r) => r.status === "fulfilled").length, 1);
    const failed = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
    assert.ok(failed.reason instanceof LeaseHeldError, String(failed.reason));
    assert.equal((await f.loc.dump()).has(LEASE_KEY), false);
    await a.close();
    await b.close();
  });

  test("RebuildIndexAgent whose lease is taken over mid-run stops and keeps the old index", async () => {
    const f = await fixture(kind);
    for (const s of f.snapshots) await f.loc.raw.delete(s.key);
    const inner = await f.loc.open();
    // Slow TOC reads so the takeover happens mid-scan.
    const { FaultyDriver } = await import("../drivers/faulty.ts");
    const slow = new FaultyDriver(inner, {
      faults: [{ methods: ["getRange"], key: /^packs\//, latencyMs: 40, latencyOnly: true }],
    });
    const store = await openStore(slow);
    const oldIndex = store.index;
    const before = await answers(store);
    const snapshotsBefore = [...(await f.loc.dump()).keys()].filter((k) =>
      k.startsWith(SNAPSHOT_PREFIX)
    );
    // A short TTL renews every 400 ms: the loss is noticed mid-scan, not only at the commit point.
    const bus = new EventBus();
    const started = startedOn(bus);
    const agent = createRebuildIndexAgent(store, bus, {
      source: "FullScan",
      parallelism: 1,
      leaseTTL: 1200,
    });
    const outcome = agent.run().then(() => undefined, (e: unknown) => e);
    await started;
    const thief = await acquireLease(inner, { storeId: f.storeId, agent: "Thief", force: true });
    assert.ok(await outcome instanceof LeaseLostError, String(await outcome));
    assert.ok(agent.stats().packsIndexed < f.final.packs);
    assert.equal(store.index, oldIndex);
    assert.deepEqual(await answers(store), before);
    assert.deepEqual(
      [...(await f.loc.dump()).keys()].filter((k) => k.startsWith(SNAPSHOT_PREFIX)),
      snapshotsBefore,
    );
    await thief.release();
    await store.close();
  });

  test("RebuildIndexAgent aborted by its signal releases the lease and keeps the old index", async () => {
    const f = await fixture(kind);
    const store = await openStore(await f.loc.open());
    const oldIndex = store.index;
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(
      createRebuildIndexAgent(store, new EventBus(), {}).run({ signal: ac.signal }),
    );
    assert.equal(store.index, oldIndex);
    assert.equal((await f.loc.dump()).has(LEASE_KEY), false);
    await store.close();
  });

  test("Store handles see a clear maintenance error while a rebuild runs", async () => {
    const f = await fixture(kind);
    for (const s of f.snapshots) await f.loc.raw.delete(s.key);
    const { FaultyDriver } = await import("../drivers/faulty.ts");
    const slow = new FaultyDriver(await f.loc.open(), {
      faults: [{ methods: ["getRange"], key: /^packs\//, latencyMs: 10, latencyOnly: true }],
    });
    const store = await openStore(slow);
    const other = await openStore(await f.loc.open());
    const bus = new EventBus();
    const started = startedOn(bus);
    const running = createRebuildIndexAgent(store, bus, {
      source: "FullScan",
      parallelism: 1,
    }).run();
    await started;
    await assert.rejects(
      other.put("docs", "x", enc.encode("x")),
      /maintenance \(offline\) by RebuildIndex/,
    );
    await assert.rejects(other.get("docs", "late"), /maintenance/);
    // The agent's own handle keeps reading, and refuses writes that its swap would lose.
    assert.deepEqual(await store.get("docs", "late"), body(90, 700));
    await assert.rejects(store.put("docs", "y", enc.encode("y")), /own maintenance agent/);
    await running;
    await store.put("docs", "y", enc.encode("y"));
    await other.refresh();
    assert.deepEqual(await other.get("docs", "late"), body(90, 700));
    await other.put("docs", "x", enc.encode("x"));
    await other.close();
    await store.close();
  });
}
