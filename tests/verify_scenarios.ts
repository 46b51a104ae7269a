/**
 * The VerificationAgent scenarios, written once and run on every kind of
 * Location (`maintenance/verify_test.ts` registers them for memory and
 * localfs). Each broken-store fixture breaks one thing behind the store's back
 * and expects exactly one problem, of the right kind and key.
 */

import assert from "node:assert/strict";
import type { ConfigSettings } from "../format/config.ts";
import { EventBus } from "../store/events.ts";
import { hashBytes } from "../format/hashing.ts";
import { acquireLease, LeaseHeldError } from "../store/lease.ts";
import { initStore, openStore, type Store } from "../store/store.ts";
import { body } from "./data.ts";
import { ulid } from "../format/ulid.ts";
import { FaultyDriver } from "../drivers/faulty.ts";
import {
  createRebuildIndexAgent,
  createVerificationAgent,
  inVerifySubset,
  type VerifyConfig,
  type VerifyProblem,
} from "../maintenance/mod.ts";
import type { LocationKind, TestLocation } from "./locations.ts";
import { looseBlobKey, packKey, SNAPSHOT_PREFIX } from "../layout.ts";

const enc = new TextEncoder();

// Small packs and a pack target below the chunk threshold, so the fixture has
// many packs, chunked bodies and loose blobs.
const config: Partial<ConfigSettings> = {
  inlineThreshold: 32,
  chunkThreshold: 8192,
  packTargetSize: 2048,
  packLingerMs: 1,
  snapshotEveryPacks: 0,
  snapshotIntervalMs: 0,
};
const chunking = { min: 256, avg: 1024, max: 2048 };

interface Fixture {
  loc: TestLocation;
  storeId: string;
  /** Packs with at least one blob, in id order. */
  blobPacks: string[];
  /** Every pack, in id order. */
  packs: string[];
  /** Keys of the loose blobs. */
  loose: string[];
  /** The pack that first stored the body later stored again by "docs/copy". */
  dedupPack: string;
  /** The id of that body's blob. */
  dedupBlob: string;
}

const live: TestLocation[] = [];

async function fixture(kind: LocationKind): Promise<Fixture> {
  const loc = await kind.create();
  live.push(loc);
  const { store } = await initStore(await loc.open(), { config, chunking });
  for (let i = 0; i < 3; i++) await store.put("docs", `inline-${i}`, enc.encode(`tiny ${i}`));
  await store.put("docs", "original", body(1, 900));
  await store.flush();
  // The newest pack this handle wrote (the high-water mark says what was listed, not written).
  const dedupPack = store.index.packs().map((p) => p.packId).sort().at(-1)!;
  for (let i = 0; i < 4; i++) await store.put("docs", `regular-${i}`, body(10 + i, 600 + i));
  await store.put("docs", "copy", body(1, 900)); // deduplicated: its pack holds no blob
  await store.put("media", "chunked", body(20, 12_000));
  await store.put("media", "loose", body(30, 5000));
  await store.put("docs", "gone", body(40, 700));
  await store.delete("docs", "gone");
  await store.flush();
  // Opening from this snapshot gives an index with every row, loose blobs included.
  await store.snapshotIndex();
  const index = store.index;
  const packs = index.packs();
  const f: Fixture = {
    loc,
    storeId: store.storeId,
    packs: packs.map((p) => p.packId),
    blobPacks: packs.filter((p) => p.blobCount > 0).map((p) => p.packId),
    loose: index.looseBlobs().map((b) => looseBlobKey(b.blobId)),
    dedupPack,
    dedupBlob: hashBytes("blake3", body(1, 900)),
  };
  await store.close();
  assert.ok(f.blobPacks.length >= 5 && f.packs.length > f.blobPacks.length, "fixture shape");
  assert.equal(f.loose.length, 1);
  return f;
}

/** Runs a verification on a handle and returns its problems. */
async function verify(store: Store, options: VerifyConfig = {}): Promise<VerifyProblem[]> {
  const agent = createVerificationAgent(store, new EventBus(), options);
  agent.validate();
  await agent.run();
  assert.equal(agent.stats().problemsFound, agent.problems().length);
  return agent.problems();
}

/** Opens a fresh handle, verifies, closes. */
async function verifyFresh(f: Fixture, options: VerifyConfig = {}): Promise<VerifyProblem[]> {
  const store = await openStore(await f.loc.open());
  try {
    return await verify(store, options);
  } finally {
    await store.close();
  }
}

function kindsAndKeys(problems: readonly VerifyProblem[]): Array<[string, string]> {
  return problems.map((p) => [p.kind, p.key]);
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

/** Rewrites a pack's trailer so its TOC starts `cut` bytes later, re-sealing the checksum. */
async function truncateToc(loc: TestLocation, key: string, cut: number): Promise<void> {
  const bytes = await loc.raw.get(key);
  const t = bytes.length - 64;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const tocOffset = view.getUint32(t + 16, true) + cut;
  const tocLength = view.getUint32(t + 24, true) - cut;
  view.setUint32(t + 16, tocOffset, true);
  view.setUint32(t + 24, tocLength, true);
  const sealed = new Uint8Array(tocLength + 32);
  sealed.set(bytes.subarray(tocOffset, t));
  sealed.set(bytes.subarray(t, t + 32), tocLength);
  const sum = hashBytes("sha256", sealed);
  for (let i = 0; i < 32; i++) bytes[t + 32 + i] = parseInt(sum.slice(2 * i, 2 * i + 2), 16);
  await loc.raw.put(key, bytes);
}

/**
 * Registers every verification scenario for one kind of Location.
 * @param kind The kind of Location.
 */
export function registerVerifyScenarios(kind: LocationKind): void {
  const test = (name: string, fn: () => Promise<void>) =>
    Deno.test(`${kind.name}: ${name}`, async () => {
      try {
        await fn();
      } finally {
        for (const loc of live.splice(0)) await loc.dispose();
      }
    });

  test("VerificationAgent finds nothing wrong with a sound store, and changes nothing", async () => {
    const f = await fixture(kind);
    const before = await f.loc.dump();
    const store = await openStore(await f.loc.open());
    const counts = store.index.counts();
    const bus = new EventBus();
    const types: string[] = [];
    bus.subscribe((e) => types.push(e.type));
    const agent = createVerificationAgent(store, bus, { data: true, parallelism: 3 });
    agent.validate();
    await agent.run();
    assert.deepEqual(agent.problems(), []);
    const stats = agent.stats();
    assert.deepEqual({ ...stats, duration: 0, bytesRead: 0 }, {
      packsChecked: counts.packs,
      blobsChecked: counts.blobs,
      bytesRead: 0,
      manifestsChecked: counts.manifests,
      problemsFound: 0,
      duration: 0,
    });
    assert.ok(stats.bytesRead >= counts.blobBytes, `${stats.bytesRead} < ${counts.blobBytes}`);
    assert.deepEqual(types.filter((t) => t !== "maintenance.progress"), [
      "maintenance.started",
      "maintenance.completed",
    ]);
    await store.close();
    assert.deepEqual(await verifyFresh(f), []); // structure only
    assert.deepEqual(await f.loc.dump(), before);
  });

  test("VerificationAgent finds nothing wrong with a store indexed from its packs alone", async () => {
    const f = await fixture(kind);
    for (const key of (await f.loc.dump()).keys()) {
      if (key.startsWith(SNAPSHOT_PREFIX)) await f.loc.raw.delete(key);
    }
    // Catching up from packs registers no loose blob: the one named by a manifest is still sound.
    const store = await openStore(await f.loc.open());
    assert.equal(store.index.looseBlobs().length, 0);
    const agent = createVerificationAgent(store, new EventBus(), { data: true });
    await agent.run();
    assert.deepEqual(agent.problems(), []);
    assert.equal(agent.stats().blobsChecked, store.index.counts().blobs + f.loose.length);
    await store.close();
  });

  test("VerificationAgent: a pack deleted under a loaded index is missing_pack", async () => {
    const f = await fixture(kind);
    const store = await openStore(await f.loc.open());
    const victim = packKey(f.blobPacks[2]!);
    await f.loc.raw.delete(victim);
    const before = await f.loc.dump();
    assert.deepEqual(kindsAndKeys(await verify(store, { data: true })), [["missing_pack", victim]]);
    await store.close();
    assert.deepEqual(await f.loc.dump(), before);
  });

  test("VerificationAgent: a truncated pack is pack_size_mismatch", async () => {
    const f = await fixture(kind);
    const store = await openStore(await f.loc.open());
    const victim = packKey(f.blobPacks[1]!);
    const bytes = await f.loc.raw.get(victim);
    await f.loc.raw.put(victim, bytes.subarray(0, bytes.length - 10));
    assert.deepEqual(kindsAndKeys(await verify(store, { data: true })), [[
      "pack_size_mismatch",
      victim,
    ]]);
    await store.close();
  });

  test("VerificationAgent: a flipped byte in a blob is blob_hash_mismatch (data checks only)", async () => {
    const f = await fixture(kind);
    const victim = packKey(f.blobPacks[0]!);
    await f.loc.flip(victim, 20);
    assert.deepEqual(await verifyFresh(f), []);
    const problems = await verifyFresh(f, { data: true });
    assert.deepEqual(kindsAndKeys(problems), [["blob_hash_mismatch", victim]]);
    assert.match(problems[0]!.detail, /at offset 16 /);
  });

  test("VerificationAgent: a flipped byte in a loose blob is blob_hash_mismatch", async () => {
    const f = await fixture(kind);
    const victim = f.loose[0]!;
    await f.loc.flip(victim, 100);
    assert.deepEqual(await verifyFresh(f), []);
    assert.deepEqual(kindsAndKeys(await verifyFresh(f, { data: true })), [[
      "blob_hash_mismatch",
      victim,
    ]]);
  });

  test("VerificationAgent: a flipped TOC byte or a truncated TOC is corrupt_toc", async () => {
    const f = await fixture(kind);
    const store = await openStore(await f.loc.open());
    const flipped = packKey(f.blobPacks[0]!);
    const truncated = packKey(f.blobPacks[3]!);
    await f.loc.flip(flipped, -70); // inside the TOC, before the trailer
    await truncateToc(f.loc, truncated, 10); // checksum re-sealed: the TOC itself is short
    const problems = await verify(store, { data: true });
    assert.deepEqual(
      kindsAndKeys(problems),
      [["corrupt_toc", flipped], ["corrupt_toc", truncated]].sort((a, b) => a[1]! < b[1]! ? -1 : 1),
    );
    assert.match(problems.find((p) => p.key === flipped)!.detail, /checksum/);
    await store.close();
  });

  test("VerificationAgent: an index that disagrees with a TOC is toc_index_mismatch", async () => {
    const f = await fixture(kind);
    const store = await openStore(await f.loc.open());
    const [m] = store.index.versions("docs", "regular-1");
    assert.ok(m?.packId);
    store.index.indexManifests([{ ...m, id: ulid() }]); // a manifest its pack never carried
    assert.deepEqual(kindsAndKeys(await verify(store)), [[
      "toc_index_mismatch",
      packKey(m.packId),
    ]]);
    await store.close();
  });

  test("VerificationAgent: a pack the index does not know is orphan_pack, listed and kept", async () => {
    const f = await fixture(kind);
    const copy = packKey(ulid());
    await f.loc.raw.put(copy, await f.loc.raw.get(packKey(f.blobPacks[0]!)));
    const problems = await verifyFresh(f, { data: true });
    assert.deepEqual(kindsAndKeys(problems), [["orphan_pack", copy]]);
    assert.match(problems[0]!.detail, /TOC is unusable/);
    assert.ok((await f.loc.dump()).has(copy));
  });

  test("VerificationAgent: an unknown loose object is orphan_loose_blob", async () => {
    const f = await fixture(kind);
    const stray = body(99, 3000);
    const key = looseBlobKey(hashBytes("blake3", stray));
    await f.loc.raw.put(key, stray);
    assert.deepEqual(kindsAndKeys(await verifyFresh(f, { data: true })), [[
      "orphan_loose_blob",
      key,
    ]]);
  });

  test("VerificationAgent: a loose blob deleted under a loaded index is missing_loose_blob", async () => {
    const f = await fixture(kind);
    const store = await openStore(await f.loc.open());
    await f.loc.raw.delete(f.loose[0]!);
    assert.deepEqual(kindsAndKeys(await verify(store, { data: true })), [[
      "missing_loose_blob",
      f.loose[0]!,
    ]]);
    await store.close();
  });

  test("VerificationAgent: a manifest naming a blob that is nowhere is missing_blob", async () => {
    const f = await fixture(kind);
    // A deleted loose blob, with an index rebuilt from the Location: no row, no object.
    await f.loc.raw.delete(f.loose[0]!);
    const looseId = f.loose[0]!.slice(f.loose[0]!.lastIndexOf("/") + 1);
    // A deleted pack whose blob a later manifest (deduplicated) still names.
    await f.loc.raw.delete(packKey(f.dedupPack));
    const store = await openStore(await f.loc.open());
    const rebuild = createRebuildIndexAgent(store, new EventBus(), { source: "FullScan" });
    await rebuild.run();
    const problems = await verify(store, { data: true });
    assert.deepEqual(
      kindsAndKeys(problems),
      [["missing_blob", f.dedupBlob], ["missing_blob", looseId]].sort((a, b) =>
        a[1]! < b[1]! ? -1 : 1
      ),
    );
    assert.match(problems.find((p) => p.key === f.dedupBlob)!.detail, /docs\/copy/);
    await store.close();
  });

  test("VerificationAgent: n/m slices check every object's data exactly once", async () => {
    const f = await fixture(kind);
    // Break every blob-holding pack and the loose blob: each slice reports its own share.
    for (const id of f.blobPacks) await f.loc.flip(packKey(id), 16);
    for (const key of f.loose) await f.loc.flip(key, 0);
    const everything = [...f.blobPacks.map(packKey), ...f.loose].sort();
    const m = 3;
    const seen: string[] = [];
    let blobsChecked = 0;
    const store = await openStore(await f.loc.open());
    const total = store.index.counts().blobs;
    for (let n = 1; n <= m; n++) {
      const agent = createVerificationAgent(store, new EventBus(), {
        data: true,
        subset: { slice: [n, m] },
      });
      await agent.run();
      const keys = agent.problems().map((p) => {
        assert.equal(p.kind, "blob_hash_mismatch");
        return p.key;
      });
      for (const k of new Set(keys)) {
        assert.ok(inVerifySubset(k, { slice: [n, m] }));
        seen.push(k);
      }
      blobsChecked += agent.stats().blobsChecked;
    }
    await store.close();
    assert.deepEqual(seen.sort(), everything);
    assert.equal(blobsChecked, total);
    // Blob-less packs too: each key falls in exactly one slice.
    for (const id of f.packs) {
      const hits = [1, 2, 3, 4, 5].filter((n) => inVerifySubset(packKey(id), { slice: [n, 5] }));
      assert.equal(hits.length, 1);
    }
  });

  test("VerificationAgent: a fraction is sampled deterministically for a seed", async () => {
    const f = await fixture(kind);
    for (const id of f.blobPacks) await f.loc.flip(packKey(id), 16);
    const sample = async (subset: VerifyConfig["subset"]) =>
      (await verifyFresh(f, { data: true, ...(subset ? { subset } : {}) })).map((p) => p.key);
    const a = await sample({ fraction: 0.5, seed: 42 });
    assert.deepEqual(await sample({ fraction: 0.5, seed: 42 }), a);
    assert.ok(a.length < f.blobPacks.length);
    assert.deepEqual(await sample({ fraction: 0, seed: 42 }), []);
    assert.equal(new Set(await sample({ fraction: 1, seed: 9 })).size, f.blobPacks.length);
  });

  test("VerificationAgent runs in read-only maintenance: others read, writes are refused", async () => {
    const f = await fixture(kind);
    const slow = new FaultyDriver(await f.loc.open(), {
      faults: [{ methods: ["getRange"], key: /^packs\//, latencyMs: 15, latencyOnly: true }],
    });
    const store = await openStore(slow);
    const other = await openStore(await f.loc.open());
    const bus = new EventBus();
    const started = startedOn(bus);
    const running = createVerificationAgent(store, bus, { data: true, parallelism: 1 }).run();
    await started;
    assert.deepEqual(await other.get("docs", "regular-2"), body(12, 602));
    await assert.rejects(other.put("docs", "x", enc.encode("x")), /maintenance \(read-only\)/);
    await running;
    await other.put("docs", "x", enc.encode("x"));
    await other.close();
    await store.close();
  });

  test("VerificationAgent refuses to run while a rebuild holds the lease (LeaseHeldError)", async () => {
    const f = await fixture(kind);
    const slow = new FaultyDriver(await f.loc.open(), {
      faults: [{ methods: ["getRange"], key: /^packs\//, latencyMs: 15, latencyOnly: true }],
    });
    const a = await openStore(slow);
    const b = await openStore(await f.loc.open());
    const bus = new EventBus();
    const started = startedOn(bus);
    const rebuilding = createRebuildIndexAgent(a, bus, { source: "FullScan", parallelism: 1 })
      .run();
    await started;
    const agent = createVerificationAgent(b, new EventBus(), {});
    await assert.rejects(agent.run(), LeaseHeldError);
    assert.deepEqual(agent.problems(), []);
    await rebuilding;
    await a.close();
    await b.close();
  });

  test("VerificationAgent: a failing read is retried, then fails the run (never 'missing')", async () => {
    const f = await fixture(kind);
    const inner = await f.loc.open();
    const once = new FaultyDriver(inner, {
      faults: [{ methods: ["getRange"], key: /^packs\//, nth: 2 }],
    });
    const first = await openStore(once);
    // One transient failure: retried, nothing reported.
    assert.deepEqual(await verify(first, { data: true }), []);
    assert.equal(once.fired.length, 1);
    await first.close();
    const broken = new FaultyDriver(await f.loc.open(), {});
    const store = await openStore(broken);
    broken.inject({ methods: ["getRange"], key: /^packs\// });
    const agent = createVerificationAgent(store, new EventBus(), { data: true });
    await assert.rejects(agent.run(), /transient|injected/i);
    assert.deepEqual(agent.problems(), []);
    await store.close();
    // The lease was released: a later verification runs.
    const lease = await acquireLease(inner, { storeId: f.storeId, agent: "Probe" });
    await lease.release();
  });

  test("VerificationAgent.validate() refuses a bad config", async () => {
    const f = await fixture(kind);
    const store = await openStore(await f.loc.open());
    const bad: VerifyConfig[] = [
      { parallelism: 0 },
      { leaseTTL: 10 },
      { subset: { slice: [1, 2] } }, // without data
      { data: true, subset: { slice: [0, 2] } },
      { data: true, subset: { slice: [3, 2] } },
      { data: true, subset: { fraction: 1.5 } },
      { data: true, subset: { fraction: 0.5, seed: 0.5 } },
    ];
    for (const c of bad) {
      assert.throws(
        () => createVerificationAgent(store, new EventBus(), c).validate(),
        /must/,
        JSON.stringify(c),
      );
    }
    await store.close();
  });
}
