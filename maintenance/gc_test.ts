import assert from "node:assert/strict";
import { FaultyDriver, WRITE_METHODS } from "../drivers/faulty.ts";
import { MemoryDriver } from "../drivers/memory.ts";
import { NotFoundError } from "../errors.ts";
import { EventBus } from "../store/events.ts";
import { initStore, openStore, type Store } from "../store/store.ts";
import { body } from "../tests/data.ts";
import { GC_EPOCH_KEY, GC_RUN_PREFIX, PACK_PREFIX } from "../layout.ts";
import { createGarbageCollectAgent, type GcConfig } from "./gc.ts";
import { createVerificationAgent } from "./verify.ts";
import { createRebuildIndexAgent } from "./rebuild_index.ts";

const MINUTE = 60_000;
const KiB = 1024;

/** A Location and a clock every handle on it shares, moved by the test. */
function world(passphrase?: string) {
  const clock = { now: Date.UTC(2026, 0, 1) };
  const objects = new Map<string, Uint8Array>();
  const driver = () => new MemoryDriver({ objects, clock: () => clock.now });
  return {
    clock,
    objects,
    driver,
    open: () => openStore(driver(), { clock: () => clock.now, passphrase }),
  };
}

/** An encrypted store's init options (a cheap key derivation: sweeps open it many times). */
function encryption(passphrase: string | undefined) {
  return passphrase === undefined
    ? {}
    : { encryption: { passphrase, kdf: { memoryKiB: 1024, iterations: 1, parallelism: 1 } } };
}

const CONFIG = {
  chunking: { min: 256, avg: 1024, max: 4 * KiB },
  config: {
    packTargetSize: 64 * KiB,
    chunkThreshold: 8 * KiB,
    inlineThreshold: 16,
    packLingerMs: 1,
  },
};

/** Puts and flushes: one pack per call, so the store gets many small packs. */
async function putOne(store: Store, ns: string, key: string, bytes: Uint8Array): Promise<void> {
  await store.put(ns, key, bytes);
  await store.flush();
}

function packKeys(objects: Map<string, Uint8Array>): string[] {
  return [...objects.keys()].filter((k) => k.startsWith(PACK_PREFIX)).sort();
}

/** Runs gc, moving the shared clock past the grace period once the agent waits in it. */
async function collect(
  store: Store,
  clock: { now: number },
  config: GcConfig,
  during?: () => Promise<void>,
) {
  const agent = createGarbageCollectAgent(store, new EventBus(), config);
  agent.validate();
  let settled = false;
  const running = agent.run().finally(() => (settled = true));
  running.catch(() => {}); // awaited below; a crash may reject it while the clock is moved
  if (!config.dryRun && (config.grace ?? 1) > 0) {
    while (!settled && agent.stats().phase !== "grace") {
      await new Promise((r) => setTimeout(r, 5));
    }
    if (agent.stats().phase === "grace") {
      await during?.();
      clock.now += (config.grace ?? 15 * MINUTE) + 1000;
    }
  }
  await running;
  return agent;
}

async function verifyClean(store: Store): Promise<void> {
  const v = createVerificationAgent(store, new EventBus(), { data: true });
  await v.run();
  assert.deepEqual(v.problems(), []);
}

Deno.test("gc keeps the newest version, drops what was deleted, frees the space and merges packs; every index agrees", async () => {
  const w = world();
  const { store } = await initStore(w.driver(), { clock: () => w.clock.now, ...CONFIG });
  const a = [1, 2, 3].map((i) => body(i, 20 * KiB)); // chunked: several blobs each
  for (const bytes of a) await putOne(store, "ns", "a", bytes);
  const small = Array.from({ length: 6 }, (_, i) => body(100 + i, 2 * KiB));
  for (const [i, bytes] of small.entries()) await putOne(store, "ns", `s${i}`, bytes);
  await putOne(store, "ns", "gone", body(9, 30 * KiB));
  await store.delete("ns", "gone");
  await store.flush();
  // Another handle, open from before the run, whose index still knows every old pack.
  const other = await w.open();
  const before = packKeys(w.objects);
  const bytesBefore = before.reduce((n, k) => n + w.objects.get(k)!.length, 0);
  w.clock.now += 20 * MINUTE;

  const agent = await collect(store, w.clock, {
    keepVersions: 1,
    dropDeletedAfter: 0,
    grace: 5 * MINUTE,
  });
  const s = agent.stats();
  assert.equal(s.phase, "done");
  assert.equal(s.manifestsDropped, 4, "a's two old versions, gone's version and its tombstone");
  assert.ok(s.packsDeleted >= before.length - 1, JSON.stringify(s));
  assert.ok(s.bytesFreed > 60 * KiB, JSON.stringify(s));
  const after = packKeys(w.objects);
  assert.ok(after.length < before.length / 3, `${before.length} packs → ${after.length}`);
  const bytesAfter = after.reduce((n, k) => n + w.objects.get(k)!.length, 0);
  assert.equal(bytesBefore - bytesAfter, s.bytesFreed);
  assert.ok(w.objects.has(GC_EPOCH_KEY));
  assert.equal([...w.objects.keys()].filter((k) => k.startsWith(GC_RUN_PREFIX)).length, 1);

  for (const s2 of [store, other, await w.open()]) {
    assert.deepEqual(await s2.get("ns", "a"), a[2]);
    assert.equal((await s2.versions("ns", "a")).length, 1);
    for (const [i, bytes] of small.entries()) assert.deepEqual(await s2.get("ns", `s${i}`), bytes);
    assert.deepEqual(await s2.versions("ns", "gone"), []);
    assert.deepEqual(await s2.namespaces(), ["ns"]);
  }
  await verifyClean(store);
  await verifyClean(other);

  // A full rebuild from the Location alone gives the same answers.
  const fresh = await w.open();
  const rebuild = createRebuildIndexAgent(fresh, new EventBus(), { source: "FullScan" });
  await rebuild.run();
  assert.equal((await fresh.versions("ns", "a")).length, 1);
  assert.deepEqual(await fresh.versions("ns", "gone"), []);
  assert.deepEqual(await fresh.get("ns", "s3"), small[3]);
  await verifyClean(fresh);
  for (const h of [store, other, fresh]) await h.close();
});

Deno.test("gc --dry-run plans and changes nothing on the Location", async () => {
  const w = world();
  const { store } = await initStore(w.driver(), { clock: () => w.clock.now, ...CONFIG });
  for (let i = 0; i < 4; i++) await putOne(store, "ns", "k", body(i, 4 * KiB));
  w.clock.now += 20 * MINUTE;
  const copy = new Map([...w.objects].map(([k, v]) => [k, v.slice()]));
  const agent = await collect(store, w.clock, { keepVersions: 1, dryRun: true });
  const plan = agent.plan()!;
  assert.equal(plan.manifestsDropped, 3);
  assert.ok(plan.rewrite.length + plan.delete.length >= 3, JSON.stringify(plan));
  assert.ok(plan.bytesFreed > 10 * KiB);
  assert.equal(agent.stats().bytesFreed, plan.bytesFreed);
  assert.deepEqual([...w.objects.keys()].sort(), [...copy.keys()].sort());
  for (const [k, v] of copy) assert.deepEqual(w.objects.get(k), v, k);
  assert.equal((await store.versions("ns", "k")).length, 4);
  await store.close();
});

/** A Location as a writer sees it whose gate has not yet read the newest gc epoch (its 1 s memory). */
class EpochNotYetSeen extends MemoryDriver {
  hidden = false;
  override getRange(key: string, offset: number, length: number): Promise<Uint8Array> {
    if (this.hidden && key === GC_EPOCH_KEY) return Promise.reject(new NotFoundError(key));
    return super.getRange(key, offset, length);
  }
}

Deno.test("a manifest committed during the grace period by a writer that had not seen the run is rescued", async () => {
  const w = world();
  const { store } = await initStore(w.driver(), { clock: () => w.clock.now, ...CONFIG });
  const old = body(7, 4 * KiB);
  await putOne(store, "ns", "k", old);
  await putOne(store, "ns", "k", body(8, 4 * KiB));
  // A writer whose index still places `old`'s blob in its original pack.
  const stale = new EpochNotYetSeen({ objects: w.objects, clock: () => w.clock.now });
  const writer = await openStore(stale, { clock: () => w.clock.now });
  const agent = await collect(store, w.clock, { keepVersions: 1, grace: 5 * MINUTE }, async () => {
    stale.hidden = true;
    await writer.put("ns", "copy", old); // deduplicated against the blob gc is about to delete
    await writer.flush();
    stale.hidden = false;
  });
  assert.equal(agent.stats().blobsRescued, 1, JSON.stringify(agent.stats()));
  for (const h of [store, writer, await w.open()]) {
    assert.deepEqual(await h.get("ns", "copy"), old);
    assert.equal((await h.versions("ns", "k")).length, 1);
  }
  await verifyClean(store);
  await store.close();
  await writer.close();
});

Deno.test("a writer that sees the run during the grace period writes the blob again instead", async () => {
  const w = world();
  const { store } = await initStore(w.driver(), { clock: () => w.clock.now, ...CONFIG });
  const old = body(7, 4 * KiB);
  await putOne(store, "ns", "k", old);
  await putOne(store, "ns", "k", body(8, 4 * KiB));
  const writer = await w.open();
  const agent = await collect(store, w.clock, { keepVersions: 1, grace: 5 * MINUTE }, async () => {
    w.clock.now += 2000; // past the writer's gate memory
    await writer.put("ns", "copy", old);
    await writer.flush();
  });
  assert.equal(agent.stats().blobsRescued, 0, JSON.stringify(agent.stats()));
  for (const h of [store, writer, await w.open()]) assert.deepEqual(await h.get("ns", "copy"), old);
  await verifyClean(store);
  await store.close();
  await writer.close();
});

Deno.test("gc refuses bad options and a store whose manifests live on the host", async () => {
  const w = world();
  const { store } = await initStore(w.driver(), { clock: () => w.clock.now });
  for (
    const [config, reason] of [
      [{ keepVersions: 0 }, /keepVersions must be an integer ≥ 1/],
      [{ maxUnused: 2 }, /maxUnused must be a fraction/],
      [{ namespaces: { ns: { keepWithin: -5 } } }, /keepWithin \(namespace ns\) must be/],
      [{ grace: 1.5 }, /grace must be an integer/],
    ] as const
  ) {
    assert.throws(
      () => createGarbageCollectAgent(store, new EventBus(), config as GcConfig).validate(),
      reason,
    );
  }
  await store.close();
});

for (const passphrase of [undefined, "gc sweep"]) {
  Deno.test(
    `gc crash sweep${
      passphrase === undefined ? "" : " (encrypted, compressed)"
    }: the k-th write fails for every k; the store answers as before or as after, never less`,
    async () => {
      // Count the writes of one run.
      const setup = async () => {
        const w = world(passphrase);
        const { store } = await initStore(w.driver(), {
          clock: () => w.clock.now,
          ...CONFIG,
          ...encryption(passphrase),
        });
        for (let i = 0; i < 3; i++) await putOne(store, "ns", "k", body(i, 12 * KiB));
        for (let i = 0; i < 3; i++) await putOne(store, "ns", `s${i}`, body(50 + i, 2 * KiB));
        await store.close();
        w.clock.now += 20 * MINUTE;
        return w;
      };
      const expectCurrent = async (h: Store) => {
        assert.deepEqual(await h.get("ns", "k"), body(2, 12 * KiB));
        for (let i = 0; i < 3; i++) {
          assert.deepEqual(await h.get("ns", `s${i}`), body(50 + i, 2 * KiB));
        }
      };
      const counting = await setup();
      const faulty0 = new FaultyDriver(counting.driver());
      const h0 = await openStore(faulty0, { clock: () => counting.clock.now, passphrase });
      faulty0.resetCounts();
      await collect(h0, counting.clock, { keepVersions: 1, grace: MINUTE });
      const writes = faulty0.calls.put + faulty0.calls.delete;
      await h0.close();
      assert.ok(writes >= 5, `a run makes several writes (${writes})`);

      for (let k = 1; k <= writes; k++) {
        const w = await setup();
        const faulty = new FaultyDriver(w.driver());
        const h = await openStore(faulty, { clock: () => w.clock.now, passphrase });
        faulty.resetCounts();
        faulty.inject({ methods: WRITE_METHODS, nth: k, crash: true });
        await collect(h, w.clock, { keepVersions: 1, grace: 0 }).then(
          // Only the last write, the lease's release, may fail unnoticed: the lease then expires.
          () => assert.ok(k === writes, `write ${k} of ${writes} failed, yet the run succeeded`),
          () => {},
        );
        await h.close().catch(() => {});
        // Reopened on the Location as the crash left it: every current version is there.
        const after = await w.open();
        await expectCurrent(after);
        const versions = (await after.versions("ns", "k")).length;
        assert.ok(versions === 1 || versions === 3, `k=${k}: ${versions} versions`);
        // Once the crashed run's lease has expired: nothing to report, and a second run finishes.
        w.clock.now += 31 * MINUTE;
        await verifyClean(after);
        await collect(after, w.clock, { keepVersions: 1, grace: 0 });
        await expectCurrent(after);
        assert.equal((await after.versions("ns", "k")).length, 1, `k=${k}`);
        await verifyClean(after);
        const rebuilt = await w.open();
        await createRebuildIndexAgent(rebuilt, new EventBus(), { source: "FullScan" }).run();
        await expectCurrent(rebuilt);
        assert.equal((await rebuilt.versions("ns", "k")).length, 1, `k=${k} after a rebuild`);
        await after.close();
        await rebuilt.close();
      }
    },
  );
}

Deno.test("a writer idle through a whole gc run applies it before it deduplicates: its put never names a deleted blob", async () => {
  const w = world();
  const { store } = await initStore(w.driver(), { clock: () => w.clock.now, ...CONFIG });
  const old = body(21, 4 * KiB);
  await putOne(store, "ns", "k", old);
  await putOne(store, "ns", "k", body(22, 4 * KiB));
  const writer = await w.open(); // knows `old`'s blob, then sleeps through the run
  await collect(store, w.clock, { keepVersions: 1, grace: 5 * MINUTE });
  w.clock.now += 10_000; // past the gate's one-second memory
  await writer.put("ns", "again", old);
  await writer.flush();
  for (const h of [store, writer, await w.open()]) {
    assert.deepEqual(await h.get("ns", "again"), old);
  }
  await verifyClean(store);
  await store.close();
  await writer.close();
});

Deno.test("gc savePolicy stores the run's retention in the config history; later runs apply it unasked", async () => {
  const w = world();
  const { store } = await initStore(w.driver(), { clock: () => w.clock.now, ...CONFIG });
  for (let i = 0; i < 4; i++) await putOne(store, "ns", "k", body(40 + i, 3 * KiB));
  for (let i = 0; i < 4; i++) await putOne(store, "keep", "k", body(50 + i, 3 * KiB));
  const seq = store.config!.seq;
  const first = await collect(store, w.clock, {
    keepVersions: 2,
    namespaces: { keep: { keepVersions: 4 } },
    savePolicy: true,
    grace: 0,
  });
  assert.equal(first.stats().manifestsDropped, 2);
  assert.equal(store.config!.seq, seq + 1);
  assert.deepEqual(store.config!.retention, {
    keepVersions: 2,
    namespaces: { keep: { keepVersions: 4 } },
  });
  // A fresh handle reads the policy from the config; a run without flags applies it.
  const other = await w.open();
  assert.deepEqual(other.config!.retention?.keepVersions, 2);
  await other.put("ns", "k", body(60, 3 * KiB));
  await other.flush();
  await collect(other, w.clock, { grace: 0 });
  assert.equal((await other.versions("ns", "k")).length, 2);
  assert.equal((await other.versions("keep", "k")).length, 4);
  // A run's flag still overrides the stored policy, for that run only.
  await collect(other, w.clock, { keepVersions: 1, grace: 0 });
  assert.equal((await other.versions("ns", "k")).length, 1);
  assert.equal((await other.versions("keep", "k")).length, 1);
  assert.throws(
    () =>
      createGarbageCollectAgent(other, new EventBus(), { savePolicy: true, dryRun: true })
        .validate(),
    /savePolicy changes the store's config/,
  );
  await store.close();
  await other.close();
});
