/**
 * The crash sweep: for every mutating operation of the store, count the
 * writes it makes (on the Location and on the host storage together), then
 * for every k fail the k-th write and every write after it — a process that
 * died there — reopen the store on what was left, and check that the
 * operation is all-or-nothing:
 *
 * - every acknowledged put or delete is visible, byte for byte;
 * - an unacknowledged one is either wholly visible or not at all;
 * - everything written before the operation is intact;
 * - the store opens `Ready` (healing what the crash left) and takes new writes.
 */

import assert from "node:assert/strict";
import { FaultyDriver, WRITE_METHODS } from "../drivers/faulty.ts";
import { MemoryDriver } from "../drivers/memory.ts";
import type { ConfigSettings } from "../format/config.ts";
import { ArtifactNotFoundError, CapsaError } from "../errors.ts";
import { initStore, openStore, type Store } from "../store/store.ts";
import { body } from "./data.ts";
import { DESCRIPTOR_KEY, KEY_SLOT_PREFIX, KEY_SLOT_REPLICA_PREFIX } from "../layout.ts";
import { createRebuildIndexAgent } from "../maintenance/rebuild_index.ts";

type Objects = Map<string, Uint8Array>;

interface World {
  location: Objects;
  host: Objects;
}

function copy(w: World): World {
  const c = (m: Objects) => new Map([...m].map(([k, v]) => [k, v.slice()]));
  return { location: c(w.location), host: c(w.host) };
}

/** What the model expects of one key: its settled value, and a pending one that may or may not have landed. */
interface Expect {
  settled: Uint8Array | null;
  pending: Array<Uint8Array | null>;
}

class Model {
  keys = new Map<string, Expect>();
  #e(key: string): Expect {
    let e = this.keys.get(key);
    if (!e) this.keys.set(key, e = { settled: null, pending: [] });
    return e;
  }
  /** Runs a put or delete; records whether it was acknowledged. */
  async apply(key: string, value: Uint8Array | null, run: () => Promise<unknown>): Promise<void> {
    const e = this.#e(key);
    e.pending.push(value);
    try {
      await run();
      e.settled = value;
      e.pending = e.pending.filter((v) => v !== value);
    } catch {
      // Unacknowledged: may or may not have landed (a lost acknowledgement).
    }
  }
  /** Records a write whose acknowledgement comes later ({@linkcode Model.settle}). */
  pend(key: string, value: Uint8Array | null): void {
    this.#e(key).pending.push(value);
  }
  /** Acknowledges a pending write. */
  settle(key: string, value: Uint8Array | null): void {
    const e = this.#e(key);
    e.settled = value;
    e.pending = e.pending.filter((v) => v !== value);
  }
  async check(store: Store, label: string): Promise<void> {
    for (const [key, e] of this.keys) {
      let got: Uint8Array | null;
      try {
        got = await store.get("ns", key);
      } catch (err) {
        if (!(err instanceof ArtifactNotFoundError)) throw err;
        got = null;
      }
      const same = (a: Uint8Array | null, b: Uint8Array | null) =>
        a === null || b === null ? a === b : a.length === b.length && a.every((x, i) => x === b[i]);
      const allowed = [e.settled, ...e.pending];
      assert.ok(
        allowed.some((v) => same(v, got)),
        `${label}: key ${key} holds ${
          got === null ? "nothing" : `${got.length} bytes`
        } — not its acknowledged value nor a whole pending one`,
      );
    }
  }
}

const smallConfig: Partial<ConfigSettings> = {
  inlineThreshold: 64,
  chunkThreshold: 4096,
  packTargetSize: 16 * 1024,
  packLingerMs: 1,
  snapshotEveryPacks: 0,
  snapshotIntervalMs: 0,
  snapshotsKept: 2,
};
const chunking = { min: 1024, avg: 2048, max: 4096 };

interface Scenario {
  name: string;
  /** Builds the state before the operation (never faulted). */
  setup: (store: Store, model: Model) => Promise<void>;
  /** Tweaks the world between setup and the operation (e.g. delete a replica). */
  damage?: (world: World) => void;
  /** The operation under test; runs against faulted drivers. */
  op: (store: Store, model: Model) => Promise<void>;
  /** Whether opening is part of the operation (healing scenarios). */
  opOnOpen?: boolean;
  /** Config overrides (e.g. manifest storage). */
  config?: Partial<ConfigSettings>;
  /** An encrypted (and compressed) store. */
  encrypted?: boolean;
}

const PASSPHRASE = "crash sweep";
/** A cheap key derivation: the sweeps open the store hundreds of times. */
const CHEAP_KDF = { memoryKiB: 1024, iterations: 1, parallelism: 1 };
const pass = (s: Scenario) => (s.encrypted ? { passphrase: PASSPHRASE } : {});

async function baseline(s: Scenario): Promise<{ world: World; model: Model }> {
  const world: World = { location: new Map(), host: new Map() };
  const { store } = await initStore(new MemoryDriver({ objects: world.location }), {
    hostStorage: new MemoryDriver({ objects: world.host }),
    config: { ...smallConfig, ...s.config },
    chunking,
    ...(s.encrypted ? { encryption: { passphrase: PASSPHRASE, kdf: CHEAP_KDF } } : {}),
  });
  const model = new Model();
  await s.setup(store, model);
  await store.close();
  s.damage?.(world);
  return { world, model };
}

/** Runs the operation with writes failing from the k-th on (k = Infinity: no fault); returns the writes made. */
async function runWithCrashAt(s: Scenario, world: World, model: Model, k: number): Promise<number> {
  let writes = 0;
  let dead = false;
  const fault = {
    methods: WRITE_METHODS,
    times: Infinity,
    crash: true,
    key: () => {
      if (dead) return true;
      writes++;
      if (writes >= k) dead = true;
      return dead;
    },
  };
  const location = new FaultyDriver(new MemoryDriver({ objects: world.location }), {
    faults: [fault],
  });
  const host = new FaultyDriver(new MemoryDriver({ objects: world.host }), { faults: [fault] });
  let store: Store | undefined;
  try {
    store = await openStore(location, { hostStorage: host, ...pass(s) });
    if (!s.opOnOpen) await s.op(store, model);
  } catch {
    // The crash: whatever failed, failed.
  } finally {
    await store?.close().catch(() => {});
  }
  return writes;
}

async function sweep(s: Scenario): Promise<void> {
  const { world: base, model: baseModel } = await baseline(s);
  // Dry run: how many writes does the operation make?
  const dryModel = new Model();
  dryModel.keys = structuredClone(baseModel.keys);
  const total = await runWithCrashAt(s, copy(base), dryModel, Infinity);
  assert.ok(total > 0, `${s.name}: the operation made no write`);
  for (let k = 1; k <= total; k++) {
    const world = copy(base);
    const model = new Model();
    model.keys = structuredClone(baseModel.keys);
    await runWithCrashAt(s, world, model, k);
    const label = `${s.name}, crash at write ${k}/${total}`;
    const store = await openStore(new MemoryDriver({ objects: world.location }), {
      hostStorage: new MemoryDriver({ objects: world.host }),
      ...pass(s),
    });
    try {
      assert.equal(store.state, "Ready", `${label}: ${store.problems.join("; ")}`);
      await model.check(store, label);
      // The store still takes writes after the crash.
      await store.put("ns", "after-crash", body(999, 3000));
      assert.deepEqual(await store.get("ns", "after-crash"), body(999, 3000));
    } finally {
      await store.close();
    }
  }
}

const scenarios: Scenario[] = [
  {
    name: "put() of a small body",
    setup: (st, m) => m.apply("old", body(1, 500), () => st.put("ns", "old", body(1, 500))),
    op: (st, m) => m.apply("new", body(2, 500), () => st.put("ns", "new", body(2, 500))),
  },
  {
    name: "put() overwriting a key",
    setup: (st, m) => m.apply("k", body(1, 700), () => st.put("ns", "k", body(1, 700))),
    op: (st, m) => m.apply("k", body(2, 900), () => st.put("ns", "k", body(2, 900))),
  },
  {
    name: "put() of a chunked body spanning several packs",
    setup: (st, m) => m.apply("old", body(1, 500), () => st.put("ns", "old", body(1, 500))),
    op: (st, m) => m.apply("big", body(3, 60_000), () => st.put("ns", "big", body(3, 60_000))),
  },
  {
    name: "concurrent put()s sharing packs",
    setup: (st, m) => m.apply("old", body(1, 500), () => st.put("ns", "old", body(1, 500))),
    op: async (st, m) => {
      await Promise.all(
        Array.from({ length: 8 }, (_, i) => {
          const b = body(10 + i, i % 2 === 0 ? 300 : 9000);
          return m.apply(`c${i}`, b, () => st.put("ns", `c${i}`, b));
        }),
      );
    },
  },
  {
    name: "a write session over several packs (small, inline, chunked, an overwrite)",
    setup: (st, m) => m.apply("old", body(1, 500), () => st.put("ns", "old", body(1, 500))),
    op: async (st, m) => {
      const items = Array.from({ length: 24 }, (_, i) => ({
        key: i === 7 ? "old" : `s${i}`,
        value: body(20 + i, i === 5 ? 40_000 : i % 4 === 0 ? 40 : 1500),
      }));
      for (const it of items) m.pend(it.key, it.value);
      const batch = st.batch({
        onResult: (r, i) => {
          if (r.ok) m.settle(r.key, items[i]!.value);
        },
      });
      for (const it of items) await batch.put("ns", it.key, it.value);
      await batch.close();
    },
  },
  {
    name: "delete()",
    setup: async (st, m) => {
      await m.apply("gone", body(1, 500), () => st.put("ns", "gone", body(1, 500)));
      await m.apply("kept", body(2, 500), () => st.put("ns", "kept", body(2, 500)));
    },
    op: (st, m) => m.apply("gone", null, () => st.delete("ns", "gone")),
  },
  {
    name: "flush() of pending puts",
    setup: (st, m) => m.apply("old", body(1, 500), () => st.put("ns", "old", body(1, 500))),
    op: async (st, m) => {
      const a = m.apply("p1", body(5, 2000), () => st.put("ns", "p1", body(5, 2000)));
      const b = m.apply("p2", body(6, 2000), () => st.put("ns", "p2", body(6, 2000)));
      await st.flush();
      await Promise.all([a, b]);
    },
  },
  {
    name: "snapshotIndex() with pruning",
    setup: async (st, m) => {
      await m.apply("a", body(1, 500), () => st.put("ns", "a", body(1, 500)));
      await st.snapshotIndex();
      await m.apply("b", body(2, 500), () => st.put("ns", "b", body(2, 500)));
      await st.snapshotIndex();
      await m.apply("c", body(3, 500), () => st.put("ns", "c", body(3, 500)));
    },
    op: async (st) => {
      await st.snapshotIndex();
    },
  },
  {
    name: "open-time healing of a lost store.json",
    setup: (st, m) => m.apply("a", body(1, 500), () => st.put("ns", "a", body(1, 500))),
    damage: (w) => {
      w.location.delete(DESCRIPTOR_KEY);
    },
    op: () => Promise.resolve(),
    opOnOpen: true,
  },
];

for (const manifestStorage of ["Local", "Replicated"] as const) {
  for (const s of scenarios.slice(0, 6)) {
    scenarios.push({
      ...s,
      name: `${s.name} (${manifestStorage} manifests)`,
      config: { manifestStorage },
    });
  }
}

// The same sweeps on an encrypted store (compressed too: zstd is the default of new stores),
// where every blob, TOC, log entry, snapshot and host cache is sealed.
for (const s of scenarios.slice(0, 9)) {
  scenarios.push({ ...s, name: `${s.name} (encrypted)`, encrypted: true });
}
scenarios.push({
  name: "put() of a chunked body (encrypted, Replicated manifests)",
  setup: (st, m) => m.apply("old", body(1, 500), () => st.put("ns", "old", body(1, 500))),
  op: (st, m) => m.apply("big", body(3, 60_000), () => st.put("ns", "big", body(3, 60_000))),
  config: { manifestStorage: "Replicated" },
  encrypted: true,
});

for (const s of scenarios) {
  Deno.test(`crash sweep: ${s.name} is all-or-nothing at every write`, () => sweep(s));
}

Deno.test("crash sweep: changing the passphrase, interrupted at any write, leaves one that opens", async () => {
  const world: World = { location: new Map(), host: new Map() };
  const { store } = await initStore(new MemoryDriver({ objects: world.location }), {
    config: smallConfig,
    chunking,
    encryption: { passphrase: "old", kdf: CHEAP_KDF },
  });
  await store.put("ns", "k", body(1, 3000));
  await store.close();
  const dry = new FaultyDriver(new MemoryDriver({ objects: copy(world).location }));
  const h = await openStore(dry, { passphrase: "old" });
  const before = dry.writes;
  await h.changePassphrase("new", { kdf: CHEAP_KDF });
  const total = dry.writes - before;
  await h.close();
  assert.ok(total >= 3, `passwd made ${total} writes`);
  for (let k = 1; k <= total; k++) {
    const objects = copy(world).location;
    const faulty = new FaultyDriver(new MemoryDriver({ objects }), {
      faults: [{ methods: WRITE_METHODS, nth: k, times: Infinity, crash: true }],
    });
    const handle = await openStore(faulty, { passphrase: "old" });
    await handle.changePassphrase("new", { kdf: CHEAP_KDF }).catch(() => {});
    await handle.close().catch(() => {});
    // Whatever the crash, one of the two passphrases opens the store, and it reads back.
    let opened: Store | undefined;
    for (const p of ["new", "old"]) {
      opened = await openStore(new MemoryDriver({ objects }), { passphrase: p }).catch(() =>
        undefined
      );
      if (opened) break;
    }
    assert.ok(opened, `crash at write ${k}/${total}: no passphrase opens the store`);
    assert.equal(opened.state, "Ready", opened.problems.join("; "));
    assert.deepEqual(await opened.get("ns", "k"), body(1, 3000));
    await opened.close();
  }
});

Deno.test("crash sweep: initStore() interrupted at any write leaves nothing or a usable store", async () => {
  const count = { writes: 0 };
  const dry = new FaultyDriver(new MemoryDriver());
  await (await initStore(dry, { hostStorage: new MemoryDriver() })).store.close();
  count.writes = dry.writes;
  assert.ok(count.writes >= 4);
  for (let k = 1; k <= count.writes; k++) {
    const objects: Objects = new Map();
    const host: Objects = new Map();
    const faulty = new FaultyDriver(new MemoryDriver({ objects }), {
      faults: [{ methods: WRITE_METHODS, nth: k, times: Infinity, crash: true }],
    });
    await assert.rejects(initStore(faulty, { hostStorage: new MemoryDriver({ objects: host }) }));
    // Nothing written at all is no store (no_store); nothing committed, a Corrupted one.
    const reopened = await openStore(new MemoryDriver({ objects }), {
      hostStorage: new MemoryDriver({ objects: host }),
    }).catch((e: unknown) => {
      if (e instanceof CapsaError && e.code === "no_store" && objects.size === 0) return undefined;
      throw e;
    });
    if (reopened === undefined || reopened.state === "Corrupted") {
      // Nothing committed: init can simply run again.
      await reopened?.close();
      const again = await initStore(new MemoryDriver({ objects }), {
        hostStorage: new MemoryDriver({ objects: host }),
      });
      await again.store.put("ns", "k", body(1, 10));
      await again.store.close();
    } else {
      assert.equal(reopened.state, "Ready", reopened.problems.join("; "));
      await reopened.put("ns", "k", body(1, 10));
      await reopened.close();
    }
  }
});

for (const passphrase of [undefined, "rebuild sweep"]) {
  Deno.test(
    `crash sweep: a rebuild from the kit after the descriptor${
      passphrase === undefined ? "" : " and every key slot (encrypted)"
    } was lost, interrupted at any write, is finished by running it again`,
    async () => {
      const world: World = { location: new Map(), host: new Map() };
      const { store, recoveryKit } = await initStore(
        new MemoryDriver({ objects: world.location }),
        {
          config: smallConfig,
          chunking,
          ...(passphrase === undefined ? {} : { encryption: { passphrase, kdf: CHEAP_KDF } }),
        },
      );
      const bodies = [body(1, 500), body(2, 9000), body(3, 40)];
      for (const [i, b] of bodies.entries()) await store.put("ns", `k${i}`, b);
      await store.snapshotIndex();
      await store.put("ns", "after-snapshot", body(4, 700));
      await store.close();
      for (const key of [...world.location.keys()]) {
        if (
          key === DESCRIPTOR_KEY || key.startsWith("system.state/descriptor/") ||
          key.startsWith(KEY_SLOT_PREFIX) || key.startsWith(KEY_SLOT_REPLICA_PREFIX)
        ) world.location.delete(key);
      }
      const rebuild = async (driver: MemoryDriver | FaultyDriver, force = false) => {
        const h = await openStore(driver, { passphrase });
        try {
          await createRebuildIndexAgent(h, h.bus, { recoveryKit, force }).run();
        } finally {
          await h.close().catch(() => {});
        }
      };
      const dry = new FaultyDriver(new MemoryDriver({ objects: copy(world).location }));
      await rebuild(dry);
      const total = dry.writes;
      assert.ok(total >= 4, `a rebuild from the kit makes ${total} writes`);
      for (let k = 1; k <= total; k++) {
        const w = copy(world);
        const faulty = new FaultyDriver(new MemoryDriver({ objects: w.location }), {
          faults: [{ methods: WRITE_METHODS, nth: k, times: Infinity, crash: true }],
        });
        await rebuild(faulty).catch(() => {});
        // The operator reruns it, taking over the lease the crashed run may have left.
        await rebuild(new MemoryDriver({ objects: w.location }), true);
        const after = await openStore(new MemoryDriver({ objects: w.location }), { passphrase });
        assert.equal(after.state, "Ready", `crash at write ${k}/${total}: ${after.problems}`);
        for (const [i, b] of bodies.entries()) assert.deepEqual(await after.get("ns", `k${i}`), b);
        assert.deepEqual(await after.get("ns", "after-snapshot"), body(4, 700));
        await after.close();
      }
    },
  );
}
