import assert from "node:assert/strict";
import { FaultyDriver, WRITE_METHODS } from "../drivers/faulty.ts";
import { MemoryDriver } from "../drivers/memory.ts";
import type { ConfigSettings, ManifestStorage } from "../format/config.ts";
import { EventBus } from "../store/events.ts";
import { StoreIndex } from "../index/store_index.ts";
import { INDEX_SCHEMA_VERSION } from "../index/schema.ts";
import { decodeSnapshot, encodeSnapshot } from "../format/snapshot.ts";
import { initStore, openStore, type Store } from "../store/store.ts";
import { body } from "../tests/data.ts";
import {
  createMigrateIndexAgent,
  createRebuildIndexAgent,
  HostStorageRequiredError,
  type MigrateConfig,
} from "./mod.ts";
import { asVersion1 } from "../tests/index_fixtures.ts";
import { answers } from "../tests/answers.ts";
import {
  DESCRIPTOR_KEY,
  DESCRIPTOR_REPLICA_KEY,
  HOST_CACHE_KEY,
  MANIFEST_LOG_PREFIX,
  PACK_PREFIX,
  SNAPSHOT_PREFIX,
} from "../layout.ts";
import { parsePackTrailer, TOC_FULL_BYTES } from "../format/pack.ts";

type Objects = Map<string, Uint8Array>;
const enc = new TextEncoder();

const settings: Partial<ConfigSettings> = {
  inlineThreshold: 32,
  chunkThreshold: 2048,
  packTargetSize: 8192,
  packLingerMs: 1,
  snapshotEveryPacks: 0,
  snapshotIntervalMs: 0,
  snapshotsKept: 5,
};
const chunking = { min: 256, avg: 1024, max: 2048 };

interface World {
  location: Objects;
  host: Objects;
}

function copyMap(m: Objects): Objects {
  return new Map([...m].map(([k, v]) => [k, v.slice()]));
}
function copyWorld(w: World): World {
  return { location: copyMap(w.location), host: copyMap(w.host) };
}

/** A store with inline, regular and chunked bodies, overwrites, a delete and concurrent puts. */
async function fill(store: Store): Promise<void> {
  for (let i = 0; i < 4; i++) await store.put("docs", `inline-${i}`, enc.encode(`tiny ${i}`));
  for (let i = 0; i < 3; i++) await store.put("docs", `regular-${i}`, body(i, 1000 + i));
  await store.put("docs", "deleted", body(50, 600));
  await store.put("media", "chunked", body(60, 12_000));
  await store.put("docs", "regular-0", body(70, 1500));
  await store.delete("docs", "deleted");
  await Promise.all(
    Array.from({ length: 6 }, (_, i) => store.put("many", `k${i}`, body(80 + i, 100 + i))),
  );
  await store.flush();
}

async function makeWorld(mode: ManifestStorage): Promise<{ world: World; answers: unknown }> {
  const world: World = { location: new Map(), host: new Map() };
  const { store } = await initStore(new MemoryDriver({ objects: world.location }), {
    hostStorage: new MemoryDriver({ objects: world.host }),
    config: { ...settings, manifestStorage: mode },
    chunking,
  });
  await fill(store);
  await store.snapshotIndex();
  const a = await answers(store);
  await store.close();
  return { world, answers: a };
}

function open(world: World, options: { host?: boolean; clock?: () => number } = {}) {
  return openStore(new MemoryDriver({ objects: world.location }), {
    ...(options.host === false ? {} : { hostStorage: new MemoryDriver({ objects: world.host }) }),
    ...(options.clock ? { clock: options.clock } : {}),
  });
}

async function migrate(store: Store, config: MigrateConfig = {}) {
  const agent = createMigrateIndexAgent(store, new EventBus(), config);
  agent.validate();
  await agent.run();
  return agent;
}

async function fullScan(store: Store): Promise<void> {
  const agent = createRebuildIndexAgent(store, new EventBus(), { source: "FullScan" });
  agent.validate();
  await agent.run();
}

/** Turns every snapshot and the host cache of a world into schema version 1 ones. */
async function downgrade(world: World, storeId: string): Promise<number> {
  let n = 0;
  const redo = async (map: Objects, key: string) => {
    const { header, db } = decodeSnapshot(key, map.get(key)!, storeId);
    map.set(key, encodeSnapshot({ ...header, schemaVersion: 1 }, await asVersion1(db)));
  };
  for (const key of [...world.location.keys()].filter((k) => k.startsWith(SNAPSHOT_PREFIX))) {
    await redo(world.location, key);
    n++;
  }
  await redo(world.host, HOST_CACHE_KEY);
  return n;
}

function schemaOf(map: Objects, key: string, storeId: string): number {
  return decodeSnapshot(key, map.get(key)!, storeId).header.schemaVersion;
}

Deno.test("MigrateIndexAgent migrates a version 1 store (fixture) and it answers every query as before", async () => {
  const { world, answers: before } = await makeWorld("Remote");
  const probe = await open(world);
  const storeId = probe.storeId;
  await probe.close();
  assert.equal(await downgrade(world, storeId), 1);
  const v1Keys = [...world.location.keys()].filter((k) => k.startsWith(SNAPSHOT_PREFIX));

  const store = await open(world);
  assert.deepEqual(await answers(store), before); // loading migrates in memory already
  const agent = await migrate(store);
  const s = agent.stats();
  assert.equal(s.fromSchema, 1);
  assert.equal(s.toSchema, INDEX_SCHEMA_VERSION);
  assert.equal(s.snapshotsMigrated, 1);
  assert.equal(s.manifestsMoved, 0);
  assert.equal(s.configSeq, 1);
  assert.deepEqual(agent.problems(), []);
  assert.deepEqual(await answers(store), before);
  await store.close();

  // The old snapshot is gone; every snapshot and the host cache are at the current schema.
  const snapshots = [...world.location.keys()].filter((k) => k.startsWith(SNAPSHOT_PREFIX));
  assert.ok(snapshots.length >= 1);
  for (const key of v1Keys) assert.equal(world.location.has(key), false);
  for (const key of snapshots) {
    assert.equal(schemaOf(world.location, key, storeId), INDEX_SCHEMA_VERSION);
  }
  assert.equal(schemaOf(world.host, HOST_CACHE_KEY, storeId), INDEX_SCHEMA_VERSION);

  // From the snapshot alone (no host cache), and after a full scan: the same answers.
  const fromSnapshot = await open(world, { host: false });
  assert.equal(fromSnapshot.index.schemaVersion, INDEX_SCHEMA_VERSION);
  assert.deepEqual(await answers(fromSnapshot), before);
  await fullScan(fromSnapshot);
  assert.deepEqual(await answers(fromSnapshot), before);
  await fromSnapshot.close();
});

const TRANSITIONS: Array<[ManifestStorage, ManifestStorage]> = [
  ["Remote", "Replicated"],
  ["Remote", "Local"],
  ["Replicated", "Remote"],
  ["Replicated", "Local"],
  ["Local", "Remote"],
  ["Local", "Replicated"],
];

for (const [from, to] of TRANSITIONS) {
  Deno.test(`MigrateIndexAgent moves a store from ${from} to ${to}; a full-scan rebuild answers as before`, async () => {
    const { world, answers: before } = await makeWorld(from);
    const store = await open(world);
    const agent = await migrate(store, { manifestStorage: to });
    assert.equal(store.config?.manifestStorage, to);
    assert.equal(agent.stats().configSeq, 2);
    assert.deepEqual(agent.problems(), []);
    if (from === "Remote" || (from === "Replicated" && to === "Local")) {
      assert.equal(agent.stats().manifestsMoved > 0, from === "Remote");
    }
    if (from === "Local") assert.ok(agent.stats().manifestsMoved > 0);
    assert.deepEqual(await answers(store), before);
    await fullScan(store);
    assert.deepEqual(await answers(store), before);
    // The store writes in its new mode, and a rebuild still finds everything.
    await store.put("after", "x", body(99, 700));
    await store.flush();
    const after = await answers(store);
    await fullScan(store);
    assert.deepEqual(await answers(store), after);
    await store.close();

    // A fresh handle agrees; where the Location alone must suffice, without the host.
    const again = await open(world);
    assert.equal(again.config?.manifestStorage, to);
    await fullScan(again);
    assert.deepEqual(await answers(again), after);
    await again.close();
    if (to !== "Local") {
      const locationOnly = await open(world, { host: false });
      await fullScan(locationOnly);
      assert.deepEqual(await answers(locationOnly), after);
      await locationOnly.close();
    }
    if (to !== "Remote") {
      assert.ok([...world.host.keys()].some((k) => k.startsWith(MANIFEST_LOG_PREFIX)));
    }
  });
}

Deno.test("MigrateIndexAgent.validate() needs host storage for a mode on the host", async () => {
  const { store } = await initStore(new MemoryDriver(), { config: settings, chunking });
  for (const manifestStorage of ["Replicated", "Local"] as const) {
    const agent = createMigrateIndexAgent(store, new EventBus(), { manifestStorage });
    assert.throws(() => agent.validate(), HostStorageRequiredError);
  }
  // Schema only, or staying Remote: nothing needs the host.
  await migrate(store);
  await migrate(store, { manifestStorage: "Remote" });
  assert.equal(store.config?.seq, 1);
  await store.close();
});

/** What must not change across a failed migration: the descriptors. */
function descriptors(world: World): unknown {
  return [DESCRIPTOR_KEY, DESCRIPTOR_REPLICA_KEY].map((k) => Array.from(world.location.get(k)!));
}

/**
 * The crash sweep of a migration: count its writes on the Location and on
 * the host, then for every k kill it at the k-th write of one side. Reopened
 * (later than the lease's TTL, as after the death of its process), the store
 * keeps its descriptors, answers every query as before, and a full scan
 * under whichever config is in force — the old one, or the new one when
 * the pointer moved — gives the same answers.
 */
async function crashSweep(
  from: ManifestStorage,
  config: MigrateConfig,
  prepare?: (world: World) => Promise<void>,
): Promise<void> {
  const made = await makeWorld(from);
  if (prepare) await prepare(made.world);
  const template = made.world;
  const before = made.answers;
  const to = config.manifestStorage ?? from;

  // A clean run, counted.
  const counted = copyWorld(template);
  const loc = new FaultyDriver(new MemoryDriver({ objects: counted.location }));
  const host = new FaultyDriver(new MemoryDriver({ objects: counted.host }));
  const clean = await openStore(loc, { hostStorage: host });
  loc.resetCounts();
  host.resetCounts();
  await migrate(clean, config);
  const writes = { location: loc.writes, host: host.writes };
  await clean.close();
  assert.ok(writes.location >= 4, `only ${writes.location} writes on the Location`);
  if (to !== from && from !== "Local") {
    assert.ok(writes.host >= 2, `only ${writes.host} on the host`);
  }

  const later = () => Date.now() + 3 * 60 * 60_000;
  for (const side of ["location", "host"] as const) {
    for (let k = 1; k <= writes[side]; k++) {
      const label = `${from}→${to}, ${side} write ${k} of ${writes[side]}`;
      const world = copyWorld(template);
      const loc = new FaultyDriver(new MemoryDriver({ objects: world.location }));
      const host = new FaultyDriver(new MemoryDriver({ objects: world.host }));
      const store = await openStore(loc, { hostStorage: host });
      (side === "location" ? loc : host).inject({ methods: WRITE_METHODS, nth: k, crash: true });
      // The last writes (mode and lease removal) are best effort: the migration is done then.
      const failed = await migrate(store, config).then(() => false, () => true);
      await store.close().catch(() => {});

      assert.deepEqual(descriptors(world), descriptors(template), label);
      const again = await open(world, { clock: later });
      assert.equal(again.state, "Ready", `${label}: ${again.problems.join("; ")}`);
      const mode = again.config!.manifestStorage;
      assert.ok(mode === from || mode === to, label);
      if (!failed) {
        assert.equal(mode, to, label);
        assert.ok(k > writes[side] - 3, `${label}: a failed write went unnoticed`);
      }
      assert.deepEqual(await answers(again), before, label);
      await fullScan(again);
      assert.deepEqual(await answers(again), before, `${label}: after a full scan (${mode})`);
      await again.close();
    }
  }
}

Deno.test("MigrateIndexAgent: a crash at every write of a schema migration changes no answer", async () => {
  await crashSweep("Remote", {}, async (world) => {
    const s = await open(world);
    const storeId = s.storeId;
    await s.close();
    await downgrade(world, storeId);
  });
});

for (
  const [from, to] of [["Remote", "Replicated"], ["Remote", "Local"], ["Local", "Remote"], [
    "Local",
    "Replicated",
  ]] as const
) {
  Deno.test(`MigrateIndexAgent: a crash at every write of a move ${from} → ${to} changes no answer`, async () => {
    await crashSweep(from, { manifestStorage: to });
  });
}

Deno.test("StoreIndex from a migrated store equals one built by a full scan", async () => {
  const { world } = await makeWorld("Local");
  const store = await open(world);
  await migrate(store, { manifestStorage: "Remote" });
  const migrated = store.index.namespaceStats();
  const counts = store.index.counts();
  await fullScan(store);
  assert.deepEqual(store.index.namespaceStats(), migrated);
  assert.deepEqual(store.index.counts().manifests, counts.manifests);
  assert.ok(store.index instanceof StoreIndex);
  await store.close();
});

Deno.test("MigrateIndexAgent from Local writes manifest-only packs no fuller than a TOC may be: 9,000 manifests of 8 KiB metadata", async () => {
  const world: World = { location: new Map(), host: new Map() };
  const { store } = await initStore(new MemoryDriver({ objects: world.location }), {
    hostStorage: new MemoryDriver({ objects: world.host }),
    // The default target: manifests alike compress well, so none of these packs fills by size.
    config: { ...settings, manifestStorage: "Local", packTargetSize: 16 * 1024 * 1024 },
    chunking,
  });
  const metadata: Record<string, string> = {};
  for (let m = 0; m < 4; m++) metadata[`m${m}`] = String(m).repeat(2000);
  const n = 9000; // × ≈ 8.2 KB of manifest JSON: past the 64 MiB a TOC may hold
  const same = body(5, 3000);
  const summary = await store.putMany(
    Array.from({ length: n }, (_, i) => ({ namespace: "m", key: `k${i}`, body: same, metadata })),
  );
  assert.equal(summary.stored, n);
  await store.close();
  const before = new Set(packKeysOf(world.location));
  const again = await open(world);
  const agent = await migrate(again, { manifestStorage: "Remote" });
  assert.deepEqual(agent.problems(), []);
  assert.equal(agent.stats().manifestsMoved, n);
  const written = packKeysOf(world.location).filter((k) => !before.has(k));
  assert.ok(written.length >= 4, `${written.length} manifest-only packs`);
  for (const k of written) {
    const t = parsePackTrailer(k, world.location.get(k)!);
    const raw = t.tocRawLength || t.tocLength;
    assert.ok(raw < TOC_FULL_BYTES + 64 * 1024, `${k}: a TOC of ${raw} raw bytes`);
  }
  await fullScan(again);
  assert.equal(again.index.counts().artifacts, n);
  assert.deepEqual((await again.stat("m", `k${n - 1}`)).metadata, metadata);
  await again.close();
});

function packKeysOf(objects: Objects): string[] {
  return [...objects.keys()].filter((k) => k.startsWith(PACK_PREFIX));
}
