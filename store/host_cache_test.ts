/**
 * The host cache as a SQLite file in a local host directory (docs/FORMAT.md
 * §3): published by stamp + rename, opened in place, copied on the first
 * write, and any torn, damaged or foreign file detected and ignored.
 */

import assert from "node:assert/strict";
import { openLocalFs } from "../drivers/localfs/mod.ts";
import { encodeSnapshot } from "../format/snapshot.ts";
import { HOST_CACHE_KEY } from "../layout.ts";
import { type CapsaEvent, EventBus } from "./events.ts";
import { initStore, openStore } from "./store.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

interface World {
  dir: string;
  cache: string;
  open(options?: { readOnly?: boolean }): Promise<
    { store: Awaited<ReturnType<typeof openStore>>; events: CapsaEvent[] }
  >;
}

/** A store on a local directory with a local host directory, 40 artifacts, closed. */
async function world(): Promise<World> {
  const dir = await Deno.makeTempDir({ prefix: "capsa-host-cache-" });
  const location = () => openLocalFs(`${dir}/store`, { create: true });
  const host = () => openLocalFs(`${dir}/host`, { create: true });
  const { store } = await initStore(await location(), { hostStorage: await host() });
  for (let i = 0; i < 40; i++) await store.put("ns", `k${i}`, enc.encode(`value ${i}`));
  await store.close();
  return {
    dir,
    cache: `${dir}/host/${HOST_CACHE_KEY}`,
    open: async (options = {}) => {
      const bus = new EventBus();
      const events: CapsaEvent[] = [];
      bus.subscribe((e) => void events.push(e));
      const store = await openStore(await location(), {
        hostStorage: await host(),
        bus,
        ...(options.readOnly ? { readOnly: true } : {}),
      });
      return { store, events };
    },
  };
}

async function workCopies(w: World): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(`${w.dir}/host/index`)) {
    if (e.name.startsWith(",tmp.")) out.push(e.name);
  }
  return out;
}

const isSqlite = (bytes: Uint8Array) => dec.decode(bytes.subarray(0, 15)) === "SQLite format 3";

async function readsBack(store: Awaited<ReturnType<typeof openStore>>): Promise<void> {
  for (let i = 0; i < 40; i++) {
    assert.equal(dec.decode(await store.get("ns", `k${i}`)), `value ${i}`);
  }
}

Deno.test("the host cache is a SQLite file, opened in place without a copy, and copied on the first write", async () => {
  const w = await world();
  try {
    assert.ok(isSqlite(await Deno.readFile(w.cache)), "close() published a SQLite file");
    const before = await Deno.stat(w.cache);
    const { store, events } = await w.open();
    assert.equal((await store.status()).index?.source, "host-cache");
    assert.ok(!events.some((e) => e.type === "warning"), JSON.stringify(events));
    await readsBack(store);
    assert.deepEqual(await workCopies(w), [], "reads make no working copy");
    await store.put("ns", "new", enc.encode("fresh"));
    assert.equal((await workCopies(w)).length, 1, "the first write copies the cache");
    // The published cache is untouched until close publishes the working copy.
    assert.equal((await Deno.stat(w.cache)).mtime?.getTime(), before.mtime?.getTime());
    await store.close();
    assert.deepEqual(await workCopies(w), [], "close() renamed the working copy into place");
    const again = await w.open({ readOnly: true });
    assert.equal((await again.store.status()).index?.source, "host-cache");
    assert.equal(dec.decode(await again.store.get("ns", "new")), "fresh");
    await again.store.close();
  } finally {
    await Deno.remove(w.dir, { recursive: true });
  }
});

Deno.test("a torn, damaged or foreign host cache file is ignored with host_cache_unusable, and replaced at close", async () => {
  const w = await world();
  try {
    const good = await Deno.readFile(w.cache);
    const other = await world();
    const foreign = await Deno.readFile(other.cache);
    await Deno.remove(other.dir, { recursive: true });
    const damages: Array<[string, Uint8Array, RegExp]> = [
      ["torn", good.subarray(0, good.length - 1000), /torn/],
      [
        "one bit flipped in the last page",
        (() => {
          const b = good.slice();
          b[b.length - 100]! ^= 4;
          return b;
        })(),
        /checksum mismatch/,
      ],
      [
        "a bit of the header flipped",
        (() => {
          const b = good.slice();
          b[40]! ^= 1;
          return b;
        })(),
        /checksum mismatch/,
      ],
      [
        "the stamp zeroed",
        (() => {
          const b = good.slice();
          b.fill(0, 60, 72);
          return b;
        })(),
        /checksum mismatch/,
      ],
      ["another store's cache", foreign, /belongs to store/],
      ["garbage", enc.encode("not a database at all"), /not an index snapshot|not a SQLite/],
    ];
    for (const [what, bytes, reason] of damages) {
      await Deno.writeFile(w.cache, bytes);
      const { store, events } = await w.open();
      const warning = events.find((e) => e.type === "warning" && e.code === "host_cache_unusable");
      assert.ok(warning, `${what}: warned`);
      assert.match(warning.type === "warning" ? warning.message : "", reason, what);
      assert.equal((await store.status()).index?.source, "empty", what);
      await readsBack(store);
      await store.close();
      assert.ok(isSqlite(await Deno.readFile(w.cache)), `${what}: close() wrote a sound cache`);
      const again = await w.open();
      assert.equal((await again.store.status()).index?.source, "host-cache", what);
      assert.ok(!again.events.some((e) => e.type === "warning"), what);
      await again.store.close();
    }
  } finally {
    await Deno.remove(w.dir, { recursive: true });
  }
});

Deno.test("the host cache's stamp is the XXH64 of the file; a SHA-256 stamp (older capsa) is still accepted", async () => {
  const w = await world();
  try {
    const { createHash } = await import("node:crypto");
    const { xxhash64 } = await import("hash-wasm");
    const good = await Deno.readFile(w.cache);
    const zeroed = good.slice();
    zeroed.fill(0, 60, 64);
    zeroed.fill(0, 68, 72);
    const stampOf = (b: Uint8Array) => [...b.subarray(60, 64), ...b.subarray(68, 72)];
    // The format: XXH64 of the file with the stamp's bytes as zeros, big-endian, split over both fields.
    assert.deepEqual(stampOf(good), [...Uint8Array.fromHex(await xxhash64(zeroed))]);
    // What an older capsa wrote: the first 8 bytes of the SHA-256.
    const sha = new Uint8Array(createHash("sha256").update(zeroed).digest().buffer, 0, 8);
    const old = zeroed.slice();
    old.set(sha.subarray(0, 4), 60);
    old.set(sha.subarray(4, 8), 68);
    await Deno.writeFile(w.cache, old);
    const { store, events } = await w.open({ readOnly: true });
    assert.equal((await store.status()).index?.source, "host-cache");
    assert.ok(!events.some((e) => e.type === "warning"), JSON.stringify(events));
    await readsBack(store);
    await store.close();
    // Neither stamp: refused.
    const neither = old.slice();
    neither[61]! ^= 1;
    await Deno.writeFile(w.cache, neither);
    const again = await w.open({ readOnly: true });
    const warning = again.events.find((e) =>
      e.type === "warning" && e.code === "host_cache_unusable"
    );
    assert.match(warning?.type === "warning" ? warning.message : "", /checksum mismatch/);
    await again.store.close();
  } finally {
    await Deno.remove(w.dir, { recursive: true });
  }
});

Deno.test("a host cache in the snapshot encoding (older capsa) is read, then rewritten as a SQLite file", async () => {
  const w = await world();
  try {
    // What an older capsa kept at the same key: the database in the snapshot encoding.
    const { DatabaseSync } = await import("node:sqlite");
    const db = new DatabaseSync(w.cache, { readOnly: true });
    const bytes = db.serialize();
    const storeId = String(
      (db.prepare("SELECT value FROM meta WHERE name = 'store_id'").get() as { value: string })
        .value,
    );
    const highWaterMark = String(
      (db.prepare("SELECT value FROM meta WHERE name = 'listed_through'").get() as
        | { value: string }
        | undefined)?.value ?? "",
    );
    db.close();
    await Deno.writeFile(
      w.cache,
      encodeSnapshot({ storeId, schemaVersion: 3, highWaterMark, createdAt: 1 }, bytes),
    );
    const { store, events } = await w.open();
    assert.equal((await store.status()).index?.source, "host-cache");
    assert.ok(!events.some((e) => e.type === "warning"), JSON.stringify(events));
    await readsBack(store);
    await store.close();
    assert.ok(isSqlite(await Deno.readFile(w.cache)));
  } finally {
    await Deno.remove(w.dir, { recursive: true });
  }
});

Deno.test("a working copy left by a process that died is deleted at the next open; a read-only handle leaves none", async () => {
  const w = await world();
  try {
    // A process that crashed with a working copy: its pid no longer runs.
    const dead = new Deno.Command("true").spawn();
    await dead.status;
    const orphan = `${w.dir}/host/index/,tmp.work-${dead.pid}-00`;
    await Deno.writeFile(orphan, await Deno.readFile(w.cache));
    // Older than a minute: a younger file may be one its process has not locked yet.
    const past = new Date(Date.now() - 120_000);
    await Deno.utime(orphan, past, past);
    // The next open deletes it; a live handle's working copy is held: another open leaves it alone.
    const writer = await w.open();
    await writer.store.put("ns", "during", enc.encode("x"));
    const held = await workCopies(w);
    assert.equal(held.length, 1);
    assert.ok(!held.includes(orphan.slice(orphan.lastIndexOf("/") + 1)));
    // (This handle indexes the writer's new pack into a working copy of its own.)
    const { store } = await w.open({ readOnly: true });
    const now = await workCopies(w);
    assert.ok(held.every((n) => now.includes(n)), `${held} kept in ${now}`);
    await readsBack(store);
    await store.close();
    await writer.store.close();
    assert.deepEqual(await workCopies(w), []);
  } finally {
    await Deno.remove(w.dir, { recursive: true });
  }
});

Deno.test("a damaged snapshot decompressed into a working copy is refused with CorruptObjectError and leaves no file", async () => {
  const { StoreIndex } = await import("../index/store_index.ts");
  const { indexFromSnapshot, snapshotReading } = await import("./persistence.ts");
  const { CorruptObjectError } = await import("../errors.ts");
  const dir = await Deno.makeTempDir({ prefix: "capsa-snapshot-file-" });
  try {
    const index = await StoreIndex.create("S");
    // Some 400 KB: the decompressor's output takes several pieces.
    for (let i = 0; i < 3000; i++) index.setMeta(`m${i}`, `value ${i}`.repeat(20));
    const good = encodeSnapshot(
      { storeId: "S", schemaVersion: index.schemaVersion, highWaterMark: "", createdAt: 1 },
      index.export(),
    );
    index.close();
    const damaged: Array<[string, Uint8Array]> = [
      [
        "a byte of the body flipped",
        (() => {
          const b = good.slice();
          b[b.length - 20]! ^= 0x10;
          return b;
        })(),
      ],
      ["the body cut short", good.slice(0, good.length - 50)],
      [
        // (Deno's node:zlib threw this one uncaught, ending the process, when the output took
        // more than one piece: the checksum is checked outside it.)
        "a byte of the frame's content checksum flipped",
        (() => {
          const b = good.slice();
          b[b.length - 1]! ^= 0x01;
          return b;
        })(),
      ],
    ];
    // Both ways of decompressing: through the decompressor's handle, and its stream.
    for (const direct of [true, false]) {
      snapshotReading.direct = direct;
      try {
        const back = await indexFromSnapshot("snap", good, "S", dir);
        assert.equal(back.meta("m7"), "value 7".repeat(20));
        assert.ok(back.file?.startsWith(dir));
        back.close();
        for (const [what, bytes] of damaged) {
          await assert.rejects(
            indexFromSnapshot("snap", bytes, "S", dir),
            CorruptObjectError,
            `${what} (direct: ${direct})`,
          );
        }
      } finally {
        snapshotReading.direct = true;
      }
    }
    assert.deepEqual(await Array.fromAsync(Deno.readDir(dir)), [], "no working copy left");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("snapshots a store writes by itself while puts go on are each one consistent index", async () => {
  const { DatabaseSync } = await import("node:sqlite");
  const { decodeSnapshot } = await import("../format/snapshot.ts");
  const { listSnapshots } = await import("./persistence.ts");
  const dir = await Deno.makeTempDir({ prefix: "capsa-host-cache-snap-" });
  try {
    const location = await openLocalFs(`${dir}/store`, { create: true });
    const { store } = await initStore(location, {
      hostStorage: await openLocalFs(`${dir}/host`, { create: true }),
      config: { snapshotEveryPacks: 1, snapshotsKept: 1000 },
    });
    // 4 KiB of metadata each: the index outgrows one 4 MiB read while puts keep committing.
    const metadata = (i: number) => ({ a: `${i}`.padEnd(2000, "a"), b: `${i}`.padEnd(2000, "b") });
    let next = 0;
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (next < 1600) {
        const i = next++;
        await store.put("ns", `k${i}`, enc.encode(`value ${i}`), { metadata: metadata(i) });
      }
    }));
    await store.close();
    const keys = await listSnapshots(location);
    assert.ok(keys.length >= 3, `${keys.length} snapshots`);
    for (const key of keys) {
      const path = `${dir}/check.sqlite`;
      await Deno.writeFile(path, decodeSnapshot(key, await location.get(key), store.storeId).db);
      const db = new DatabaseSync(path, { readOnly: true });
      const one = (sql: string) => Object.values(db.prepare(sql).get()!)[0];
      try {
        assert.equal(one("PRAGMA integrity_check"), "ok", key);
        assert.equal(
          one(
            "SELECT count(*) FROM blobs WHERE pack_no IS NULL OR pack_no NOT IN (SELECT pack_no FROM packs)",
          ),
          0,
          `${key}: blob rows without their pack`,
        );
        assert.equal(
          one("SELECT count(*) FROM manifests WHERE pack_no NOT IN (SELECT pack_no FROM packs)"),
          0,
          `${key}: manifests without their pack`,
        );
        assert.equal(
          one("SELECT coalesce(sum(artifacts), 0) FROM namespace_stats"),
          one("SELECT count(DISTINCT key) FROM manifests"),
          `${key}: statistics`,
        );
        assert.equal(
          one("SELECT count(*) FROM packs"),
          one("SELECT count(DISTINCT pack_no) FROM manifests"),
          `${key}: every pack holds manifests`,
        );
      } finally {
        db.close();
      }
    }
    await location.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("handles and processes sharing one host directory read the cache in place together; each one's writes reach the others", async () => {
  const { capsa } = await import("../tests/processes.ts");
  const w = await world();
  try {
    // Two handles in one process read the published cache in place, through two connections.
    const a = (await w.open()).store;
    const b = (await w.open()).store;
    await readsBack(a);
    await readsBack(b);
    await a.put("ns", "from-a", enc.encode("a"));
    await readsBack(b); // b still reads the cache a copied from
    await a.close(); // publishes a's copy over the cache b has open
    await readsBack(b);
    await b.put("ns", "from-b", enc.encode("b"));
    await b.refresh();
    assert.equal(dec.decode(await b.get("ns", "from-a")), "a", "b catches up on a's pack");
    await b.close();
    // CLI processes on the same host directory: readers of the cache while a writer publishes.
    const common = ["--host-dir", `${w.dir}/host`];
    const procs = [
      capsa(["put", `${w.dir}/store`, "ns", "from-cli", "-", ...common], {
        stdin: enc.encode("cli"),
      }),
      ...[0, 1, 2].map((i) => capsa(["get", `${w.dir}/store`, "ns", `k${i}`, ...common])),
    ];
    const results = await Promise.all(procs);
    for (const r of results) assert.equal(r.code, 0, r.stderr);
    results.slice(1).forEach((r, i) => assert.equal(r.stdout, `value ${i}`));
    const { store } = await w.open({ readOnly: true });
    for (const [k, v] of [["from-a", "a"], ["from-b", "b"], ["from-cli", "cli"]]) {
      assert.equal(dec.decode(await store.get("ns", k!)), v);
    }
    await readsBack(store);
    await store.close();
  } finally {
    await Deno.remove(w.dir, { recursive: true });
  }
});
