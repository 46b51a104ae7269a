import assert from "node:assert/strict";
import { CorruptObjectError } from "./errors.ts";
import { type ManifestRecord, StoreIndex } from "./index.ts";
import { INDEX_SCHEMA_VERSION, IndexTooNewError, migrate, MIGRATIONS } from "./index_schema.ts";
import { loadSqlite } from "./_sqlite.ts";

const STORE = "01JSTORE000000000000000000";

function manifest(id: string, key: string, over: Partial<ManifestRecord> = {}): ManifestRecord {
  return {
    id,
    storeId: STORE,
    namespace: "ns",
    key,
    created: 1000,
    size: 3,
    digest: "d".repeat(64),
    contentType: "",
    metadata: {},
    deleted: false,
    blobs: ["b".repeat(64)],
    packId: "P1",
    ...over,
  };
}

function pack(id: string, manifests: ManifestRecord[]) {
  return {
    pack: { packId: id, size: 100, blobCount: 1, manifestCount: manifests.length },
    blobs: [{
      blobId: "b".repeat(64),
      kind: "regular" as const,
      rawSize: 3,
      storedSize: 3,
      packId: id,
      offset: 16,
    }],
    manifests,
  };
}

Deno.test("StoreIndex.indexPack() makes the newest manifest of each key current", async () => {
  const index = await StoreIndex.create(STORE);
  // Indexed out of order: the older manifest arrives last and must not win.
  index.indexPack(pack("P2", [manifest("M2", "a", { size: 2 })]));
  index.indexPack(pack("P1", [manifest("M1", "a", { size: 1 }), manifest("M3", "b")]));
  assert.equal(index.current("ns", "a")?.id, "M2");
  assert.deepEqual(index.versions("ns", "a").map((m) => m.id), ["M2", "M1"]);
  assert.deepEqual(index.list("ns").map((m) => m.key), ["a", "b"]);
  assert.equal(index.highWaterMark(), "P2");
  // Indexing a pack twice is harmless.
  assert.equal(index.indexPack(pack("P1", [manifest("M1", "a"), manifest("M3", "b")])), 0);
  assert.equal(index.counts().manifests, 3);
  index.close();
});

Deno.test("StoreIndex tombstones hide an artifact and older manifests cannot revive it", async () => {
  const index = await StoreIndex.create(STORE);
  index.indexPack(pack("P2", [manifest("M5", "a", { deleted: true, blobs: [], size: 0 })]));
  index.indexPack(pack("P1", [manifest("M4", "a")]));
  assert.equal(index.current("ns", "a"), undefined);
  assert.deepEqual(index.list("ns"), []);
  assert.equal(index.versions("ns", "a").length, 2);
  assert.equal(index.counts().artifacts, 0);
  index.close();
});

Deno.test("StoreIndex.list() honours prefix, cursor and limit in byte order", async () => {
  const index = await StoreIndex.create(STORE);
  const keys = ["a", "a/b", "a/c", "a0", "b", "é", "😀", "\uffff"];
  index.indexPack(pack("P1", keys.map((k, i) => manifest(`M${i}`, k))));
  assert.deepEqual(index.list("ns").map((m) => m.key), [
    "a",
    "a/b",
    "a/c",
    "a0",
    "b",
    "é",
    "\uffff",
    "😀",
  ]);
  assert.deepEqual(index.list("ns", { prefix: "a/" }).map((m) => m.key), ["a/b", "a/c"]);
  assert.deepEqual(index.list("ns", { prefix: "a", after: "a/b", limit: 2 }).map((m) => m.key), [
    "a/c",
    "a0",
  ]);
  assert.deepEqual(index.list("ns", { after: "b", limit: 1 }).map((m) => m.key), ["é"]);
  assert.deepEqual(index.list("ns", { prefix: "\uffff" }).map((m) => m.key), ["\uffff"]);
  assert.deepEqual(index.list("other"), []);
  index.close();
});

Deno.test("StoreIndex hot lookups use an index (EXPLAIN QUERY PLAN)", async () => {
  const index = await StoreIndex.create(STORE);
  const plans = [
    index.explain("SELECT seq, deleted FROM artifacts WHERE namespace = ? AND key = ?", ["n", "k"]),
    index.explain(
      "SELECT seq FROM artifacts WHERE namespace = ? AND key >= ? AND key < ? AND deleted = 0 ORDER BY key LIMIT ?",
      ["n", "a", "b", 10],
    ),
    index.explain("SELECT 1 FROM blobs WHERE blob_id = ?", ["x"]),
    index.explain(
      "SELECT m.manifest_id, p.pack_id, m.blob_ids FROM manifests m LEFT JOIN packs p ON p.pack_no = m.pack_no WHERE m.seq = ?",
      [1],
    ),
    index.explain(
      "SELECT b.kind, p.pack_id FROM blobs b LEFT JOIN packs p ON p.pack_no = b.pack_no WHERE b.blob_id = ?",
      ["x"],
    ),
    index.explain(
      "SELECT blob_id FROM blobs WHERE pack_no = (SELECT pack_no FROM packs WHERE pack_id = ?) ORDER BY offset",
      ["p"],
    ),
    index.explain(
      "SELECT manifest_id FROM manifests WHERE pack_no = (SELECT pack_no FROM packs WHERE pack_id = ?)",
      ["p"],
    ),
    index.explain("SELECT 1 FROM manifests WHERE manifest_id = ?", ["m"]),
    index.explain(
      "SELECT seq FROM manifests WHERE namespace = ? AND key = ? ORDER BY manifest_id DESC",
      ["n", "k"],
    ),
    index.explain("SELECT 1 FROM packs WHERE pack_id = ?", ["p"]),
  ];
  for (const plan of plans) {
    assert.ok(plan.length > 0);
    for (const line of plan) {
      assert.doesNotMatch(line, /^SCAN /, `full scan: ${line}`);
      assert.doesNotMatch(line, /TEMP B-TREE/, `sort without index: ${line}`);
    }
  }
  index.close();
});

Deno.test("StoreIndex.load() round trips an export and refuses another store's index", async () => {
  const index = await StoreIndex.create(STORE);
  index.indexPack(
    pack("P1", [manifest("M1", "a", { metadata: { x: "1" }, inline: new Uint8Array([7]) })]),
  );
  const bytes = index.export();
  index.close();
  const back = await StoreIndex.load(bytes, { storeId: STORE, key: "cache" });
  assert.deepEqual(back.current("ns", "a")?.metadata, { x: "1" });
  assert.deepEqual(back.current("ns", "a")?.inline, new Uint8Array([7]));
  assert.equal(back.schemaVersion, INDEX_SCHEMA_VERSION);
  back.close();
  await assert.rejects(
    StoreIndex.load(bytes, { storeId: "OTHER", key: "cache" }),
    (e: unknown) => e instanceof CorruptObjectError && /belongs to store/.test(e.message),
  );
});

Deno.test("StoreIndex.load() refuses garbage, truncation and a newer schema", async () => {
  const index = await StoreIndex.create(STORE);
  index.indexPack(pack("P1", [manifest("M1", "a")]));
  const bytes = index.export();
  index.close();
  for (
    const bad of [
      new Uint8Array(0),
      new TextEncoder().encode("hello"),
      crypto.getRandomValues(new Uint8Array(4096)),
      bytes.slice(0, bytes.length / 2),
    ]
  ) {
    await assert.rejects(
      StoreIndex.load(bad, { storeId: STORE, key: "cache" }),
      CorruptObjectError,
    );
  }
  const SQL = await loadSqlite();
  const db = new SQL.Database(bytes);
  db.run("UPDATE meta SET value = '99' WHERE name = 'schema_version'");
  await assert.rejects(
    StoreIndex.load(db.export(), { storeId: STORE, key: "cache" }),
    IndexTooNewError,
  );
  db.close();
});

Deno.test("migrate() runs each step in its own transaction and stops at a failing one", async () => {
  const SQL = await loadSqlite();
  const db = new SQL.Database();
  const steps = [
    ...MIGRATIONS,
    { version: 2, description: "good", sql: "CREATE TABLE extra (x INTEGER)" },
    {
      version: 3,
      description: "bad",
      sql: "CREATE TABLE extra2 (x INTEGER); INSERT INTO nowhere VALUES (1)",
    },
  ];
  assert.throws(() => migrate(db, steps));
  const version = db.exec("SELECT value FROM meta WHERE name = 'schema_version'")[0]!.values[0]![0];
  assert.equal(version, "2");
  assert.equal(db.exec("SELECT name FROM sqlite_master WHERE name = 'extra2'").length, 0);
  db.close();
});
