/**
 * MoveStoreAgent: memory → localfs, localfs → S3 and S3 → localfs moves;
 * kill mid-copy and resume (counting the bytes the resume writes); a byte
 * flipped in transit; deleting the source; refused destinations.
 *
 * The S3 cases run on one loopback S3 server for this file, stopped by its
 * last test.
 */

import assert from "node:assert/strict";
import type { Driver, ListOptions, ObjectInfo, PutOptions } from "../drivers/driver.ts";
import { FaultyDriver } from "../drivers/faulty.ts";
import { MemoryDriver } from "../drivers/memory.ts";
import { openS3 } from "../drivers/s3/mod.ts";
import type { ConfigSettings } from "../format/config.ts";
import {
  InvalidArgumentError,
  MaintenanceModeError,
  StoreMovedError,
  TransientError,
} from "../errors.ts";
import { type CapsaEvent, EventBus } from "../store/events.ts";
import { acquireLease } from "../store/lease.ts";
import { initStore, openStore } from "../store/store.ts";
import {
  localfsLocations,
  type LocationKind,
  memoryLocations,
  type TestLocation,
  testLocation,
} from "../tests/locations.ts";
import { S3_TEST_CREDENTIALS, type S3Server, startS3Server } from "../tests/s3_server.ts";
import { body } from "../tests/data.ts";
import {
  CopyMismatchError,
  createMoveStoreAgent,
  createVerificationAgent,
  DestinationHoldsStoreError,
  DestinationNotEmptyError,
  LeaseHeldError,
  type MoveConfig,
  type MoveStats,
} from "./mod.ts";
import { answers } from "../tests/answers.ts";
import {
  DESCRIPTOR_KEY,
  DESCRIPTOR_REPLICA_KEY,
  LEASE_KEY,
  MAINTENANCE_MODE_KEY,
  MOVED_KEY,
} from "../layout.ts";

const enc = new TextEncoder();
type Objects = Map<string, Uint8Array>;

// Small packs and a loose blob, so a store has every kind of object and dozens of them.
const config: Partial<ConfigSettings> = {
  inlineThreshold: 32,
  chunkThreshold: 8192,
  packTargetSize: 4096,
  packLingerMs: 1,
  snapshotEveryPacks: 0,
  snapshotIntervalMs: 0,
  snapshotsKept: 2,
};
const chunking = { min: 256, avg: 1024, max: 2048 };

/** Fills a fresh store on `driver`; returns what a reader sees, and closes it. */
async function fill(
  driver: Driver,
  passphrase?: string,
): Promise<{ storeId: string; answers: unknown }> {
  const { store } = await initStore(driver, {
    config,
    chunking,
    ...(passphrase === undefined ? {} : {
      encryption: { passphrase, kdf: { memoryKiB: 1024, iterations: 1, parallelism: 1 } },
    }),
  });
  for (let i = 0; i < 4; i++) await store.put("docs", `inline-${i}`, enc.encode(`tiny ${i}`));
  for (let i = 0; i < 6; i++) await store.put("docs", `regular-${i}`, body(i, 900 + i));
  await store.put("docs", "deleted", body(50, 600));
  await store.snapshotIndex();
  await store.put("media", "chunked", body(60, 12_000));
  await store.put("media", "loose", body(61, 6000)); // a regular blob larger than a pack
  await store.delete("docs", "deleted");
  await Promise.all(
    Array.from({ length: 8 }, (_, i) => store.put("many", `k${i}`, body(80 + i, 300 + i))),
  );
  await store.snapshotIndex();
  const a = await answers(store);
  const storeId = store.storeId!;
  await store.close();
  return { storeId, answers: a };
}

/** The objects a move carries: all but the lease machinery and the moved marker. */
function movable(objects: Objects): Objects {
  return new Map(
    [...objects].filter(([k]) => !k.startsWith("system.state/maintenance/") && k !== MOVED_KEY),
  );
}

function assertSameObjects(actual: Objects, expected: Objects): void {
  assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort());
  for (const [k, v] of expected) assert.deepEqual(actual.get(k), v, k);
}

function sizeOf(objects: Objects): number {
  let n = 0;
  for (const v of objects.values()) n += v.length;
  return n;
}

/** A driver that counts what is written through it, and can corrupt chosen puts. */
class CountingDriver implements Driver {
  readonly kind: string;
  readonly capabilities: Driver["capabilities"];
  readonly location: string;
  bytesPut = 0;
  puts: string[] = [];
  #inner: Driver;
  #corrupt: { key: string; times: number } | undefined;

  constructor(inner: Driver, corrupt?: { key: string; times: number }) {
    this.#inner = inner;
    this.kind = inner.kind;
    this.capabilities = inner.capabilities;
    this.location = inner.location;
    this.#corrupt = corrupt;
  }
  get(key: string): Promise<Uint8Array> {
    return this.#inner.get(key);
  }
  getRange(key: string, offset: number, length: number): Promise<Uint8Array> {
    return this.#inner.getRange(key, offset, length);
  }
  put(key: string, bytes: Uint8Array, options?: PutOptions): Promise<void> {
    this.bytesPut += bytes.length;
    this.puts.push(key);
    if (this.#corrupt?.key === key && this.#corrupt.times > 0) {
      this.#corrupt.times--;
      const flipped = bytes.slice();
      flipped[flipped.length >> 1]! ^= 0x40; // a bit flipped on the wire
      return this.#inner.put(key, flipped, options);
    }
    return this.#inner.put(key, bytes, options);
  }
  delete(key: string): Promise<void> {
    return this.#inner.delete(key);
  }
  stat(key: string): Promise<ObjectInfo> {
    return this.#inner.stat(key);
  }
  list(prefix: string, options?: ListOptions): AsyncIterable<ObjectInfo> {
    return this.#inner.list(prefix, options);
  }
  close(): Promise<void> {
    return this.#inner.close();
  }
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

interface Moved {
  stats: MoveStats;
  events: CapsaEvent[];
}

async function move(
  source: Driver,
  config: MoveConfig,
  during?: (bus: EventBus) => Promise<void>,
  passphrase?: string,
): Promise<Moved> {
  const bus = new EventBus();
  const events: CapsaEvent[] = [];
  bus.subscribe((e) => events.push(e));
  const store = await openStore(source, { bus, passphrase });
  try {
    const agent = createMoveStoreAgent(store, bus, config);
    agent.validate();
    const started = startedOn(bus);
    const running = agent.run({ signal: AbortSignal.timeout(30_000) });
    if (during) {
      await started;
      await during(bus);
    }
    try {
      await running;
    } finally {
      assert.equal(agent.stats().bytesCopied >= 0, true);
    }
    assert.deepEqual(agent.problems(), []);
    return { stats: agent.stats(), events };
  } finally {
    await store.close();
  }
}

/** Opens the moved store at the destination and checks it answers as the source did. */
async function assertMovedStore(
  dst: TestLocation,
  expected: { storeId: string; answers: unknown },
): Promise<void> {
  const moved = await openStore(await dst.open());
  try {
    assert.equal(moved.state, "Ready", moved.problems.join("; "));
    assert.equal(moved.storeId, expected.storeId);
    assert.deepEqual(await answers(moved), expected.answers);
    // And it is whole: structure and every blob's bytes.
    const verify = createVerificationAgent(moved, new EventBus(), { data: true });
    await verify.run();
    assert.deepEqual(verify.problems(), []);
  } finally {
    await moved.close();
  }
}

async function assertSourceMoved(src: TestLocation, destination: string): Promise<void> {
  const e = await openStore(await src.open()).then(
    () => assert.fail("the source still opens"),
    (e) => e,
  );
  assert.ok(e instanceof StoreMovedError, String(e));
  assert.equal(e.destination, destination);
  assert.match(e.message, new RegExp(destination.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")));
}

/** Runs `fn` with fresh Locations, disposing of them afterwards. */
async function withLocations(
  kinds: LocationKind[],
  fn: (locs: TestLocation[]) => Promise<void>,
): Promise<void> {
  const locs: TestLocation[] = [];
  try {
    for (const k of kinds) locs.push(await k.create());
    await fn(locs);
  } finally {
    for (const l of locs) await l.dispose();
  }
}

/** The whole move between two kinds of Location, checked from both ends. */
function registerMove(from: LocationKind, to: LocationKind, checkWrites = false): void {
  Deno.test(`MoveStoreAgent moves a store ${from.name} → ${to.name}: verified copy, descriptor last, source marked moved`, async () => {
    await withLocations([from, to], async ([src, dst]) => {
      const filled = await fill(await src!.open());
      const before = movable(await src!.dump());
      const where = `${to.name}://moved/store`;
      const destination = new CountingDriver(await dst!.open());
      const { stats } = await move(
        await src!.open(),
        { destination, destinationLocation: where, parallelism: 4 },
        checkWrites
          ? async () => {
            // A second handle ("another process") may read the source, not write it.
            const other = await openStore(await src!.open());
            try {
              assert.deepEqual(await other.get("docs", "regular-1"), body(1, 901));
              await assert.rejects(other.put("docs", "new", enc.encode("refused")), (e) => {
                assert.ok(e instanceof MaintenanceModeError, String(e));
                assert.equal(e.mode, "read-only");
                return true;
              });
            } finally {
              await other.close();
            }
          }
          : undefined,
      );
      // Every object arrived, byte for byte, and the descriptor came last.
      assertSameObjects(await dst!.dump(), before);
      assert.deepEqual(destination.puts.slice(-2), [DESCRIPTOR_REPLICA_KEY, DESCRIPTOR_KEY]);
      assert.deepEqual(stats, {
        ...stats,
        objectsTotal: before.size,
        objectsCopied: before.size,
        objectsSkipped: 0,
        bytesCopied: sizeOf(before),
        bytesVerified: sizeOf(before),
        sourceDeleted: false,
      });
      await assertMovedStore(dst!, filled);
      await assertSourceMoved(src!, where);
      // The source keeps its data (deleting it is a separate choice) and its lease is released.
      const after = await src!.dump();
      assertSameObjects(movable(after), before);
      assert.equal(after.has(LEASE_KEY), false);
      assert.equal(after.has(MAINTENANCE_MODE_KEY), false);
      const marker = JSON.parse(new TextDecoder().decode(after.get(MOVED_KEY)));
      assert.equal(marker.destination, where);
      assert.equal(marker.storeId, filled.storeId);
      assert.equal(typeof marker.movedAt, "number");
    });
  });
}

// A slow destination keeps the move running while a second handle tries to write.
const slowLocalfs: LocationKind = {
  name: "localfs",
  async create() {
    const loc = await localfsLocations.create();
    const open = loc.open;
    return {
      ...loc,
      open: async () =>
        new FaultyDriver(await open(), {
          faults: [{ methods: ["put"], latencyMs: 15, latencyOnly: true }],
        }),
    };
  },
};
registerMove(memoryLocations, slowLocalfs, true);

for (const passphrase of [undefined, "move sweep"]) {
  Deno.test(
    `MoveStoreAgent resumes after a crash at every write to the destination, copying only what is missing${
      passphrase === undefined ? "" : " (encrypted, compressed)"
    }`,
    async () => {
      // The source, once: each case starts from a copy of it.
      const template: Objects = new Map();
      const filled = await fill(new MemoryDriver({ objects: template }), passphrase);
      const objects = movable(template);
      const writes = objects.size; // one put per object on a clean run
      // Packs, a loose blob, snapshots, config and descriptors: every kind of object.
      assert.ok(writes >= 20, `only ${writes} objects`);
      assert.ok([...objects.keys()].some((key) => key.startsWith("blobs/")));
      let resumedPartway = 0;
      for (let k = 1; k <= writes; k++) {
        const src: Objects = new Map([...template].map(([key, v]) => [key, v.slice()]));
        const dst: Objects = new Map();
        const crashing = new FaultyDriver(new MemoryDriver({ objects: dst }));
        crashing.inject({ methods: ["put"], nth: k, crash: true });
        await assert.rejects(
          move(
            new MemoryDriver({ objects: src }),
            { destination: crashing, destinationLocation: "b" },
            undefined,
            passphrase,
          ),
          TransientError,
          `k=${k}`,
        );
        // The failed run left the source as it was, lease released, and no store at the destination.
        assertSameObjects(src, template);
        // (Puts already in flight when the k-th failed may have landed, as after a real kill.)
        assert.equal(dst.has(DESCRIPTOR_KEY), false, `k=${k}`);

        const missing = [...objects].filter(([key, v]) => {
          const there = dst.get(key);
          return !there || there.length !== v.length || there.some((b, i) => b !== v[i]);
        });
        const counting = new CountingDriver(new MemoryDriver({ objects: dst }));
        const { stats } = await move(
          new MemoryDriver({ objects: src }),
          {
            destination: counting,
            destinationLocation: "b",
          },
          undefined,
          passphrase,
        );
        assert.equal(counting.bytesPut, sizeOf(new Map(missing)), `k=${k}`);
        assert.deepEqual(counting.puts.sort(), missing.map(([key]) => key).sort(), `k=${k}`);
        assert.equal(stats.objectsCopied, missing.length);
        assert.equal(stats.objectsSkipped, objects.size - missing.length);
        if (stats.objectsSkipped > 0) resumedPartway++;
        assert.equal(stats.bytesVerified, sizeOf(objects));
        assertSameObjects(dst, objects);
        assert.ok(src.has(MOVED_KEY));
      }
      assert.ok(resumedPartway >= writes - 8, `${resumedPartway} of ${writes} resumed part way`);
      // One full check of a moved store.
      const dst: Objects = new Map();
      await move(
        new MemoryDriver({ objects: new Map(template) }),
        {
          destination: new MemoryDriver({ objects: dst }),
          destinationLocation: "b",
        },
        undefined,
        passphrase,
      );
      const moved = await openStore(new MemoryDriver({ objects: dst }), { passphrase });
      assert.deepEqual(await answers(moved), filled.answers);
      await moved.close();
    },
  );
}

Deno.test("MoveStoreAgent resumes after the source was written and pruned a snapshot in between", async () => {
  const src: Objects = new Map();
  await fill(new MemoryDriver({ objects: src }));
  const writes = movable(src).size;
  const dst: Objects = new Map();
  // Everything but the descriptor arrives, then the move dies.
  const crashing = new FaultyDriver(new MemoryDriver({ objects: dst }));
  crashing.inject({ methods: ["put"], key: DESCRIPTOR_REPLICA_KEY, nth: 1, crash: true });
  await assert.rejects(
    move(new MemoryDriver({ objects: src }), { destination: crashing, destinationLocation: "b" }),
    TransientError,
  );
  assert.equal(dst.size, writes - 2);
  // The store is in use again before the move is rerun: a new pack, a new snapshot, the oldest pruned.
  const store = await openStore(new MemoryDriver({ objects: src }));
  await store.put("docs", "after-the-crash", body(99, 700));
  await store.snapshotIndex();
  const expected = { storeId: store.storeId!, answers: await answers(store) };
  await store.close();
  const pruned = [...dst.keys()].filter((k) => !src.has(k));
  assert.equal(pruned.length, 1);
  assert.match(pruned[0]!, /^system\.state\/index\/snapshots\//);

  await move(new MemoryDriver({ objects: src }), {
    destination: new MemoryDriver({ objects: dst }),
    destinationLocation: "b",
  });
  assertSameObjects(dst, movable(src));
  const moved = await openStore(new MemoryDriver({ objects: dst }));
  assert.deepEqual(await answers(moved), expected.answers);
  await moved.close();
});

Deno.test("MoveStoreAgent after a killed move: the lease left behind is refused, then broken with force", async () => {
  const src: Objects = new Map();
  const filled = await fill(new MemoryDriver({ objects: src }));
  // A killed agent never released its lease (and its maintenance mode).
  await acquireLease(new MemoryDriver({ objects: src }), {
    storeId: filled.storeId,
    agent: "MoveStore",
    ttlMs: 60_000,
    bus: new EventBus(),
  });
  const dst: Objects = new Map();
  const options = { destination: new MemoryDriver({ objects: dst }), destinationLocation: "b" };
  await assert.rejects(move(new MemoryDriver({ objects: src }), options), LeaseHeldError);
  assert.equal(dst.size, 0);
  const { events } = await move(new MemoryDriver({ objects: src }), { ...options, force: true });
  assert.ok(events.some((e) => e.type === "warning" && e.code === "lease_broken"));
  assertSameObjects(dst, movable(src));
  assert.equal(src.has(LEASE_KEY), false);
});

Deno.test("MoveStoreAgent retries a copy that arrives corrupted, and fixes it", async () => {
  const src: Objects = new Map();
  await fill(new MemoryDriver({ objects: src }));
  const objects = movable(src);
  const pack = [...objects.keys()].find((k) => k.startsWith("packs/"))!;
  const dst: Objects = new Map();
  const corrupting = new CountingDriver(new MemoryDriver({ objects: dst }), {
    key: pack,
    times: 1,
  });
  const { stats, events } = await move(new MemoryDriver({ objects: src }), {
    destination: corrupting,
    destinationLocation: "b",
  });
  assertSameObjects(dst, objects);
  assert.equal(stats.objectsCopied, objects.size);
  assert.equal(stats.bytesCopied, sizeOf(objects) + objects.get(pack)!.length);
  const warnings = events.filter((e) => e.type === "warning" && e.code === "copy_retried");
  assert.equal(warnings.length, 1);
  assert.match((warnings[0] as { message: string }).message, new RegExp(pack));
});

Deno.test("MoveStoreAgent refuses to commit when a copy stays corrupted; a rerun completes it", async () => {
  const src: Objects = new Map();
  const filled = await fill(new MemoryDriver({ objects: src }));
  const objects = movable(src);
  const pack = [...objects.keys()].filter((k) => k.startsWith("packs/"))[2]!;
  const dst: Objects = new Map();
  const bus = new EventBus();
  const store = await openStore(new MemoryDriver({ objects: src }), { bus });
  const agent = createMoveStoreAgent(store, bus, {
    destination: new CountingDriver(new MemoryDriver({ objects: dst }), { key: pack, times: 99 }),
    destinationLocation: "b",
  });
  await assert.rejects(agent.run(), (e) => {
    assert.ok(e instanceof CopyMismatchError, String(e));
    assert.equal(e.code, "copy_mismatch");
    return true;
  });
  await store.close();
  assert.deepEqual(agent.problems().map((p) => [p.kind, p.key]), [["copy_mismatch", pack]]);
  // Not committed: no descriptor at the destination, the source not marked.
  assert.equal(dst.has(DESCRIPTOR_KEY), false);
  assert.equal(dst.has(DESCRIPTOR_REPLICA_KEY), false);
  assert.equal(src.has(MOVED_KEY), false);
  assert.equal(src.has(LEASE_KEY), false);
  assertSameObjects(movable(src), objects);
  // Every other object arrived; the corrupted one is recopied by the rerun.
  const counting = new CountingDriver(new MemoryDriver({ objects: dst }));
  const { stats } = await move(new MemoryDriver({ objects: src }), {
    destination: counting,
    destinationLocation: "b",
  });
  assert.deepEqual(counting.puts, [pack, DESCRIPTOR_REPLICA_KEY, DESCRIPTOR_KEY]);
  assert.equal(stats.objectsSkipped, objects.size - 3);
  assertSameObjects(dst, objects);
  const moved = await openStore(new MemoryDriver({ objects: dst }));
  assert.deepEqual(await answers(moved), filled.answers);
  await moved.close();
});

Deno.test("MoveStoreAgent with deleteSource leaves only system.state/moved at the source", async () => {
  await withLocations([memoryLocations, localfsLocations], async ([src, dst]) => {
    const filled = await fill(await src!.open());
    const before = movable(await src!.dump());
    const { stats } = await move(await src!.open(), {
      destination: await dst!.open(),
      destinationLocation: "file:///srv/moved",
      deleteSource: true,
    });
    assert.equal(stats.sourceDeleted, true);
    assert.deepEqual([...(await src!.dump()).keys()], [MOVED_KEY]);
    assertSameObjects(await dst!.dump(), before);
    await assertMovedStore(dst!, filled);
    await assertSourceMoved(src!, "file:///srv/moved");
  });
});

Deno.test("MoveStoreAgent refuses a destination holding another store, or foreign objects, or the source itself, writing nothing", async () => {
  const src: Objects = new Map();
  await fill(new MemoryDriver({ objects: src }));
  const template = new Map(src);

  const other: Objects = new Map();
  const { store: foreign } = await initStore(new MemoryDriver({ objects: other }));
  await foreign.put("x", "y", enc.encode("foreign data"));
  await foreign.close();
  const otherBefore = new Map(other);
  await assert.rejects(
    move(new MemoryDriver({ objects: src }), {
      destination: new MemoryDriver({ objects: other }),
      destinationLocation: "b",
    }),
    (e) => {
      assert.ok(e instanceof DestinationHoldsStoreError, String(e));
      assert.equal(e.storeId, foreign.storeId);
      return true;
    },
  );
  assertSameObjects(other, otherBefore);
  assertSameObjects(src, template);

  // A partial copy of another store (its descriptor not yet written) is refused too.
  other.delete(DESCRIPTOR_KEY);
  other.delete(DESCRIPTOR_REPLICA_KEY);
  const partial = new Map(other);
  await assert.rejects(
    move(new MemoryDriver({ objects: src }), {
      destination: new MemoryDriver({ objects: other }),
      destinationLocation: "b",
    }),
    DestinationNotEmptyError,
  );
  assertSameObjects(other, partial);

  const notes: Objects = new Map([["notes.txt", enc.encode("hello")]]);
  await assert.rejects(
    move(new MemoryDriver({ objects: src }), {
      destination: new MemoryDriver({ objects: notes }),
      destinationLocation: "b",
    }),
    (e) => e instanceof DestinationNotEmptyError && e.key === "notes.txt",
  );
  assert.deepEqual([...notes.keys()], ["notes.txt"]);

  // Another handle on the source's own Location.
  await assert.rejects(
    move(new MemoryDriver({ objects: src }), {
      destination: new MemoryDriver({ objects: src }),
      destinationLocation: "b",
    }),
    (e) => e instanceof DestinationNotEmptyError && /own Location/.test(e.message),
  );
  assertSameObjects(src, template);
});

Deno.test("MoveStoreAgent.validate() refuses bad options", async () => {
  const { store } = await initStore(new MemoryDriver());
  const bus = new EventBus();
  const destination = new MemoryDriver();
  for (
    const bad of [
      { destination, destinationLocation: "" },
      { destination, destinationLocation: "a\nb" },
      { destination, destinationLocation: "b", parallelism: 0 },
      { destination, destinationLocation: "b", leaseTTL: 10 },
      { destination: store.driver, destinationLocation: "b" },
    ]
  ) {
    assert.throws(() => createMoveStoreAgent(store, bus, bad).validate(), InvalidArgumentError);
  }
  const agent = createMoveStoreAgent(store, bus, { destination, destinationLocation: "b" });
  assert.equal(agent.kind, "MoveStore");
  await agent.run();
  await assert.rejects(agent.run(), InvalidArgumentError); // one run per agent
  await store.close();
});

// ------------------------------------------------------------------- S3

let started: Promise<S3Server> | undefined;
function server(): Promise<S3Server> {
  if (started === undefined) {
    Deno.env.set("AWS_ACCESS_KEY_ID", S3_TEST_CREDENTIALS.accessKeyId);
    Deno.env.set("AWS_SECRET_ACCESS_KEY", S3_TEST_CREDENTIALS.secretAccessKey);
    started = startS3Server({ createOnly: true });
  }
  return started;
}

let buckets = 0;
const s3Locations: LocationKind = {
  name: "s3",
  async create() {
    const s = await server();
    const bucket = `move-${Date.now().toString(36)}-${buckets++}`;
    await s.createBucket(bucket);
    const url = `s3://${bucket}/store?endpoint=${s.endpoint}`;
    return testLocation(() => openS3(url), () => s.deleteBucket(bucket));
  },
};

registerMove(localfsLocations, s3Locations);
registerMove(s3Locations, localfsLocations);

Deno.test("the S3 test server of the move tests stops (last test of this file)", async () => {
  if (started === undefined) return;
  const s = await started;
  started = undefined;
  await s.stop();
});

Deno.test("Store handle opened before a move refuses to commit once the store moved", async () => {
  const src: Objects = new Map();
  await fill(new MemoryDriver({ objects: src }));
  const late = await openStore(new MemoryDriver({ objects: src }));
  await move(new MemoryDriver({ objects: src }), {
    destination: new MemoryDriver(),
    destinationLocation: "memory:elsewhere",
  });
  await assert.rejects(late.put("ns", "late", enc.encode("lost otherwise")), (e: unknown) => {
    assert.ok(e instanceof StoreMovedError, String(e));
    assert.match(e.message, /memory:elsewhere/);
    return true;
  });
  await late.close();
});
