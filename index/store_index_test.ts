import assert from "node:assert/strict";
import { CorruptObjectError } from "../errors.ts";
import { type ManifestRecord, StoreIndex } from "./store_index.ts";
import { INDEX_SCHEMA_VERSION, IndexTooNewError, migrate, MIGRATIONS } from "./schema.ts";
import { loadSqlite } from "./_sqlite.ts";
import { asVersion1, asVersion3, asVersion4 } from "../tests/index_fixtures.ts";
import { InvalidArgumentError } from "../errors.ts";

const STORE = "01JSTORE000000000000000000";

/**
 * The manifest id a test names `M…` (the index keeps ids as ULIDs' bytes): the name's digits
 * and letters padded on the left, so names of one length sort as their ids do.
 */
function mid(name: string): string {
  const tail = name.slice(1).toLowerCase();
  return "01jz" + "0".repeat(22 - tail.length) + tail;
}

function manifest(id: string, key: string, over: Partial<ManifestRecord> = {}): ManifestRecord {
  return {
    id: mid(id),
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
  assert.equal(index.current("ns", "a")?.id, mid("M2"));
  assert.deepEqual(index.versions("ns", "a").map((m) => m.id), [mid("M2"), mid("M1")]);
  assert.deepEqual(index.list("ns").map((m) => m.key), ["a", "b"]);
  // Indexing packs never moves the high-water mark: only a listing does.
  assert.equal(index.highWaterMark(), "");
  // Indexing a pack twice is harmless.
  assert.equal(index.indexPack(pack("P1", [manifest("M1", "a"), manifest("M3", "b")])), 0);
  assert.equal(index.counts().manifests, 3);
  index.close();
});

Deno.test("StoreIndex.setHighWaterMark() moves the mark forward only, and indexing a pack never moves it", async () => {
  const index = await StoreIndex.create(STORE);
  index.setHighWaterMark("P5");
  index.indexPack(pack("P9", [manifest("M9", "z")]));
  assert.equal(index.highWaterMark(), "P5");
  index.setHighWaterMark("P3");
  assert.equal(index.highWaterMark(), "P5");
  index.setHighWaterMark("P7");
  assert.equal(index.highWaterMark(), "P7");
  const copy = await StoreIndex.load(index.export(), { storeId: STORE, key: "copy" });
  assert.equal(copy.highWaterMark(), "P7", "the mark travels with the database");
  copy.close();
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

/** The columns a manifest record is read from (as store_index.ts selects them). */
const RECORD =
  "m.manifest_id, m.namespace, m.key, m.created, m.size, m.digest, m.content_type, m.metadata, " +
  "m.deleted, m.inline_body, p.pack_id, m.blob_ids";

Deno.test("StoreIndex.version() finds one version by id, a tombstone too; another key's or a mis-spelt id is none", async () => {
  const index = await StoreIndex.create(STORE);
  index.indexPack(pack("P1", [manifest("M1", "a", { size: 1 }), manifest("M2", "b")]));
  index.indexPack(pack("P2", [manifest("M3", "a", { deleted: true, blobs: [], size: 0 })]));
  assert.equal(index.version("ns", "a", mid("M1"))?.size, 1);
  assert.equal(index.version("ns", "a", mid("M3"))?.deleted, true);
  assert.equal(index.version("ns", "a", mid("M2")), undefined, "b's version");
  assert.equal(index.version("other", "a", mid("M1")), undefined);
  assert.equal(index.version("ns", "a", mid("M1").toUpperCase()), undefined);
  assert.equal(index.version("ns", "a", "not a ulid"), undefined);
  assert.deepEqual(index.version("ns", "a", mid("M1")), index.versions("ns", "a")[1]);
  index.close();
});

Deno.test("StoreIndex hot lookups use an index (EXPLAIN QUERY PLAN)", async () => {
  const index = await StoreIndex.create(STORE);
  const plans = [
    index.explain(
      "SELECT seq, deleted FROM manifests WHERE namespace = ? AND key = ? ORDER BY manifest_id DESC LIMIT 1",
      ["n", "k"],
    ),
    index.explain(
      "SELECT seq, max(manifest_id), deleted FROM manifests WHERE namespace = ? AND key >= ? AND key < ? GROUP BY key HAVING deleted = 0 ORDER BY key LIMIT ?",
      ["n", "a", "b", 10],
    ),
    index.explain(
      "SELECT seq, max(manifest_id), deleted FROM manifests WHERE namespace = ? AND key > ? AND substr(key, 1, ?) = ? GROUP BY key HAVING deleted = 0 ORDER BY key LIMIT ?",
      ["n", "a", 1, "\uffff", 10],
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
      "SELECT 1 FROM manifests n WHERE n.namespace = ? AND n.key = ? AND n.manifest_id > ?",
      ["n", "k", "m"],
    ),
    index.explain(
      "SELECT 1 - p.deleted FROM manifests p WHERE p.namespace = ? AND p.key = ? AND p.manifest_id < ? ORDER BY p.manifest_id DESC LIMIT 1",
      ["n", "k", "m"],
    ),
    index.explain(
      "SELECT seq FROM manifests WHERE namespace = ? AND key = ? ORDER BY manifest_id DESC",
      ["n", "k"],
    ),
    index.explain("SELECT 1 FROM packs WHERE pack_id = ?", ["p"]),
    // list(): the key walk (a bounded co-routine, scanned once) joined with each row and pack.
    index.explain(
      `SELECT ${RECORD} FROM (SELECT seq, key, max(manifest_id), deleted FROM manifests ` +
        "WHERE namespace = ? AND key >= ? AND key < ? GROUP BY key HAVING deleted = 0 " +
        "ORDER BY key LIMIT ?) c JOIN manifests m ON m.seq = c.seq " +
        "LEFT JOIN packs p ON p.pack_no = m.pack_no ORDER BY c.key",
      ["n", "a", "b", 10],
    ),
    // current(), version(), versions().
    index.explain(
      `SELECT ${RECORD} FROM manifests m LEFT JOIN packs p ON p.pack_no = m.pack_no ` +
        "WHERE m.namespace = ? AND m.key = ? ORDER BY m.manifest_id DESC LIMIT 1",
      ["n", "k"],
    ),
    index.explain(
      `SELECT ${RECORD} FROM manifests m LEFT JOIN packs p ON p.pack_no = m.pack_no ` +
        "WHERE m.manifest_id = ? AND m.namespace = ? AND m.key = ?",
      ["m", "n", "k"],
    ),
    index.explain("SELECT artifacts, bytes FROM namespace_stats WHERE namespace = ?", ["n"]),
  ];
  for (const plan of plans) {
    assert.ok(plan.length > 0);
    for (const line of plan) {
      // (`SCAN c`: list()'s key walk, itself a search of manifests_by_key.)
      assert.doesNotMatch(line, /^SCAN (?!c$)/, `full scan: ${line}`);
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
    {
      version: INDEX_SCHEMA_VERSION + 1,
      description: "good",
      sql: "CREATE TABLE extra (x INTEGER)",
    },
    {
      version: INDEX_SCHEMA_VERSION + 2,
      description: "bad",
      sql: "CREATE TABLE extra2 (x INTEGER); INSERT INTO nowhere VALUES (1)",
    },
  ];
  assert.throws(() => migrate(db, steps));
  const version = db.exec("SELECT value FROM meta WHERE name = 'schema_version'")[0]!.values[0]![0];
  assert.equal(version, String(INDEX_SCHEMA_VERSION + 1));
  assert.equal(db.exec("SELECT name FROM sqlite_master WHERE name = 'extra2'").length, 0);
  db.close();
});

/** The statistics recomputed from the current versions, the slow way. */
function statsByScan(index: StoreIndex, keys: readonly string[][]) {
  const out = new Map<string, { namespace: string; artifacts: number; bytes: number }>();
  for (const [ns, key] of keys) {
    const m = index.current(ns!, key!);
    if (!m) continue;
    const s = out.get(ns!) ?? { namespace: ns!, artifacts: 0, bytes: 0 };
    s.artifacts++;
    s.bytes += m.size;
    out.set(ns!, s);
  }
  return [...out.values()].sort((a, b) => (a.namespace < b.namespace ? -1 : 1));
}

/** Puts, overwrites and deletes over two namespaces, one pack per manifest. */
function history(): Array<ReturnType<typeof pack>> {
  const m = (id: string, ns: string, key: string, size: number, deleted = false) =>
    manifest(id, key, {
      namespace: ns,
      size: deleted ? 0 : size,
      deleted,
      ...(deleted ? { blobs: [], digest: "" } : {}),
    });
  return [
    m("M01", "a", "x", 10),
    m("M02", "a", "y", 20),
    m("M03", "b", "x", 5),
    m("M04", "a", "x", 13), // overwrite: bigger
    m("M05", "a", "y", 0, true), // delete
    m("M06", "b", "z", 7),
    m("M07", "a", "y", 4), // put again after a delete
    m("M08", "b", "x", 0, true),
    m("M09", "b", "z", 0, true), // namespace b is now empty
    m("M10", "c", "only", 0), // an empty body still counts as an artifact
  ].map((man) => pack(`P${man.id.slice(1)}`, [man]));
}

const KEYS = [["a", "x"], ["a", "y"], ["b", "x"], ["b", "z"], ["c", "only"]];

Deno.test("StoreIndex.namespaceStats() is exact after puts, overwrites and deletes in any order", async () => {
  const packs = history();
  const orders = [
    packs,
    [...packs].reverse(),
    [
      packs[4]!,
      packs[0]!,
      packs[8]!,
      packs[2]!,
      packs[6]!,
      packs[1]!,
      packs[9]!,
      packs[3]!,
      packs[7]!,
      packs[5]!,
    ],
  ];
  for (const order of orders) {
    const index = await StoreIndex.create(STORE);
    for (const [i, p] of order.entries()) {
      index.indexPack(p);
      assert.deepEqual(index.namespaceStats(), statsByScan(index, KEYS), `after ${i + 1} packs`);
    }
    assert.deepEqual(index.namespaceStats(), [
      { namespace: "a", artifacts: 2, bytes: 17 },
      { namespace: "c", artifacts: 1, bytes: 0 },
    ]);
    // Indexing again changes nothing.
    for (const p of order) index.indexPack(p);
    assert.deepEqual(index.namespaceStats(), statsByScan(index, KEYS));
    index.close();
  }
});

Deno.test("StoreIndex.load() migrates a version 1 index to the current version with exact statistics", async () => {
  const fresh = await StoreIndex.create(STORE);
  for (const p of history()) fresh.indexPack(p);
  const v1 = await asVersion1(fresh.export());
  const SQL = await loadSqlite();
  const probe = new SQL.Database(v1);
  assert.equal(
    probe.exec("SELECT value FROM meta WHERE name = 'schema_version'")[0]!.values[0]![0],
    "1",
  );
  probe.close();

  const migrated = await StoreIndex.load(v1, { storeId: STORE, key: "v1" });
  assert.equal(migrated.schemaVersion, 5);
  assert.equal(INDEX_SCHEMA_VERSION, 5);
  assert.deepEqual(migrated.namespaceStats(), fresh.namespaceStats());
  for (const [ns, key] of KEYS) {
    assert.deepEqual(migrated.versions(ns!, key!), fresh.versions(ns!, key!));
  }
  assert.deepEqual(migrated.counts(), fresh.counts());
  // Kept exact from there on.
  migrated.indexPack(pack("P11", [manifest("M11", "y", { namespace: "a", size: 100 })]));
  fresh.indexPack(pack("P11", [manifest("M11", "y", { namespace: "a", size: 100 })]));
  assert.deepEqual(migrated.namespaceStats(), fresh.namespaceStats());
  assert.deepEqual(migrated.namespaceStats()[0], { namespace: "a", artifacts: 2, bytes: 113 });
  migrated.close();
  fresh.close();
});

/** Manifests of every body shape: one blob (digest = its id), chunks, inline, empty, tombstone. */
function shapes(): Array<ReturnType<typeof pack>> {
  const c1 = "c1".repeat(32);
  const c2 = "c2".repeat(32);
  return [
    pack("P1", [
      manifest("MS01", "one", { digest: "b".repeat(64), metadata: { "capsa.mode": "644" } }),
      manifest("MS02", "chunks", { blobs: [c1, c2], digest: "e".repeat(64), size: 9 }),
      manifest("MS03", "chunk", { blobs: [c1], digest: "f".repeat(64), size: 4 }),
      manifest("MS04", "inline", { blobs: [], inline: new Uint8Array([1, 2]), size: 2 }),
      manifest("MS05", "empty", {
        blobs: [],
        inline: new Uint8Array(0),
        size: 0,
        contentType: "x/y",
      }),
      manifest("MS06", "odd", { digest: "" }),
    ]),
    pack("P2", [
      manifest("MS07", "one", { deleted: true, blobs: [], digest: "", size: 0 }),
      manifest("MS08", "chunk", { digest: "b".repeat(64), size: 3 }),
    ]),
  ];
}
const SHAPE_KEYS = ["one", "chunks", "chunk", "inline", "empty", "odd", "none"];

/** Every answer of the index about its manifests and packs, for comparing two indexes. */
function answers(index: StoreIndex) {
  return {
    versions: SHAPE_KEYS.map((k) => index.versions("ns", k)),
    current: SHAPE_KEYS.map((k) => index.current("ns", k)),
    list: index.list("ns"),
    page: index.list("ns", { prefix: "c", after: "chunk", limit: 1 }),
    namespaces: index.namespaces(),
    stats: index.namespaceStats(),
    counts: index.counts(),
    inPack: ["P1", "P2"].map((p) => index.manifestIdsInPack(p)),
    has: [mid("MS03"), mid("MS99"), "not a ulid"].map((id) => index.hasManifest(id)),
    unknown: index.unknownManifestBlobs(),
    naming: [...index.manifestsNamingBlobs(new Set(["c1".repeat(32), "b".repeat(64)]))],
    each: (() => {
      const out: unknown[] = [];
      index.forEachManifest((m) => out.push(m));
      return out;
    })(),
    blob: index.blob("b".repeat(64)),
  };
}

Deno.test("StoreIndex keeps every manifest field as written: digests equal to the one blob id are not stored", async () => {
  const index = await StoreIndex.create(STORE);
  const packs = shapes();
  for (const p of packs) index.indexPack(p);
  for (const m of packs.flatMap((p) => p.manifests)) {
    const got = index.versions("ns", m.key).find((v) => v.id === m.id);
    assert.deepEqual(got, { ...m, packId: got?.packId });
  }
  assert.equal(index.current("ns", "one"), undefined);
  assert.equal(index.current("ns", "chunk")?.digest, "b".repeat(64));
  assert.deepEqual(index.list("ns").map((m) => m.key), [
    "chunk",
    "chunks",
    "empty",
    "inline",
    "odd",
  ]);
  // The digest column holds bytes only where the digest is not the single blob's id.
  const SQL = await loadSqlite();
  const db = new SQL.Database(index.export());
  const stored = db.exec("SELECT key, length(digest) FROM manifests ORDER BY seq")[0]!.values;
  assert.deepEqual(stored, [
    ["one", null],
    ["chunks", 32],
    ["chunk", 32],
    ["inline", 32],
    ["empty", 32],
    ["odd", 0],
    ["one", null],
    ["chunk", null],
  ]);
  assert.deepEqual(
    db.exec("SELECT DISTINCT length(manifest_id) FROM manifests")[0]!.values,
    [[16]],
  );
  db.close();
  index.close();
});

Deno.test("StoreIndex.indexPack() refuses a manifest id that is not a ULID, and indexes nothing of the pack", async () => {
  const index = await StoreIndex.create(STORE);
  const bad = { ...manifest("M1", "a"), id: "M1" };
  assert.throws(
    () => index.indexPack(pack("P1", [manifest("M2", "b"), bad])),
    (e: unknown) => e instanceof InvalidArgumentError && /"M1" is not a ULID/.test(e.message),
  );
  assert.deepEqual(index.counts().manifests, 0);
  assert.equal(index.hasPack("P1"), false);
  index.close();
});

/** Every row of a database's tables, and its schema: two databases equal table for table. */
async function dumpTables(bytes: Uint8Array): Promise<unknown[]> {
  const SQL = await loadSqlite();
  const db = new SQL.Database(bytes);
  const out: unknown[] = ["meta", "packs", "blobs", "manifests", "namespace_stats"].map((t) =>
    db.exec(`SELECT * FROM ${t} ORDER BY 1, 2`)[0]?.values
  );
  out.push(db.exec("SELECT type, name, sql FROM sqlite_master ORDER BY 1, 2")[0]?.values);
  db.close();
  return out;
}

Deno.test("StoreIndex.load() migrates a version 4 index to version 5: the same database but a covering manifests_by_key", async () => {
  const fresh = await StoreIndex.create(STORE);
  for (const p of [...shapes(), ...history()]) fresh.indexPack(p);
  const v4 = await asVersion4(fresh.export());
  const migrated = await StoreIndex.load(v4, { storeId: STORE, key: "v4" });
  assert.equal(migrated.schemaVersion, 5);
  assert.deepEqual(answers(migrated), answers(fresh));
  assert.deepEqual(await dumpTables(migrated.export()), await dumpTables(fresh.export()));
  // The walks of every key's current version read the index alone.
  for (const index of [migrated, fresh]) {
    for (
      const sql of [
        "SELECT namespace, count(*), sum(size) FROM (SELECT namespace, key, max(manifest_id), " +
        "deleted, size FROM manifests GROUP BY namespace, key) WHERE deleted = 0 GROUP BY namespace",
        "SELECT seq, key, max(manifest_id), deleted FROM manifests WHERE namespace = ? AND " +
        "key >= ? AND key < ? GROUP BY key HAVING deleted = 0 ORDER BY key LIMIT ?",
      ]
    ) {
      const plan = index.explain(sql, sql.includes("?") ? ["n", "a", "b", 10] : []);
      assert.ok(
        plan.some((line) => /COVERING INDEX manifests_by_key/.test(line)),
        plan.join("\n"),
      );
    }
  }
  migrated.close();
  fresh.close();
});

Deno.test("StoreIndex.load() migrates a version 3 index to the current version with the same answers", async () => {
  const fresh = await StoreIndex.create(STORE);
  for (const p of [...shapes(), ...history()]) fresh.indexPack(p);
  const v3 = await asVersion3(fresh.export());
  const SQL = await loadSqlite();
  const probe = new SQL.Database(v3);
  assert.deepEqual(
    probe.exec("SELECT value FROM meta WHERE name = 'schema_version'")[0]!.values,
    [["3"]],
  );
  assert.equal(probe.exec("SELECT count(*) FROM artifacts")[0]!.values[0]![0], 11);
  probe.close();
  const migrated = await StoreIndex.load(v3, { storeId: STORE, key: "v3" });
  assert.equal(migrated.schemaVersion, INDEX_SCHEMA_VERSION);
  assert.deepEqual(answers(migrated), answers(fresh));
  // The same database, table for table.
  assert.deepEqual(await dumpTables(migrated.export()), await dumpTables(fresh.export()));
  // Kept exact from there on, through puts and a retired pack.
  for (const index of [migrated, fresh]) {
    index.indexPack(pack("P11", [manifest("M11", "y", { namespace: "a", size: 100 })]));
    index.retirePacks(["P2"]);
  }
  assert.deepEqual(answers(migrated), answers(fresh));
  assert.deepEqual(migrated.namespaceStats()[2], { namespace: "ns", artifacts: 6, bytes: 21 });
  assert.deepEqual(
    migrated.namespaceStats(),
    statsByScan(migrated, [...KEYS, ...SHAPE_KEYS.map((k) => ["ns", k])]),
  );
  migrated.close();
  fresh.close();
});

Deno.test("StoreIndex.openFile() migrates a published version 3 cache in a working copy", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const fresh = await StoreIndex.create(STORE);
    for (const p of shapes()) fresh.indexPack(p);
    const path = `${dir}/cache`;
    await Deno.writeFile(path, await asVersion3(fresh.export()));
    const before = await Deno.readFile(path);
    const index = await StoreIndex.openFile(path, {
      storeId: STORE,
      key: "cache",
      workDir: dir,
      published: true,
    });
    assert.equal(index.schemaVersion, INDEX_SCHEMA_VERSION);
    assert.equal(index.published, false);
    assert.deepEqual(answers(index), answers(fresh));
    // The published file is untouched until the copy is published.
    assert.deepEqual(await Deno.readFile(path), before);
    index.close();
    fresh.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("StoreIndex.load() refuses a version 3 index whose manifest id is not a ULID", async () => {
  const fresh = await StoreIndex.create(STORE);
  fresh.indexPack(pack("P1", [manifest("M1", "a")]));
  const SQL = await loadSqlite();
  const db = new SQL.Database(await asVersion3(fresh.export()));
  fresh.close();
  db.run("UPDATE manifests SET manifest_id = 'M1'");
  await assert.rejects(
    StoreIndex.load(db.export(), { storeId: STORE, key: "v3" }),
    (e: unknown) => e instanceof CorruptObjectError && /could not be migrated/.test(e.message),
  );
  db.close();
});

Deno.test("A superseding pack retires the packs it names, in whichever order they are indexed", async () => {
  const b1 = "1".repeat(64);
  const b2 = "2".repeat(64);
  const blob = (id: string, packId: string, offset: number) => ({
    blobId: id,
    kind: "regular" as const,
    rawSize: 3,
    storedSize: 3,
    packId,
    offset,
  });
  // P1: two versions of ns/a (the old one names b1) and a deleted ns/gone; garbage collection
  // keeps the current version of ns/a and b2, drops the rest: N supersedes P1.
  const old = {
    pack: { packId: "P1", size: 300, blobCount: 2, manifestCount: 4 },
    blobs: [blob(b1, "P1", 16), blob(b2, "P1", 19)],
    manifests: [
      manifest("M1", "a", { blobs: [b1], size: 10 }),
      manifest("M2", "a", { blobs: [b2], size: 20 }),
      manifest("M3", "gone", { blobs: [b1], size: 30 }),
      manifest("M4", "gone", { deleted: true, blobs: [], size: 0 }),
    ],
  };
  const superseding = {
    pack: { packId: "P9", size: 100, blobCount: 1, manifestCount: 1 },
    blobs: [blob(b2, "P9", 16)],
    manifests: [manifest("M2", "a", { blobs: [b2], size: 20, packId: "P9" })],
    supersedes: ["P1"],
  };
  const other = pack("P5", [manifest("M5", "x")]);
  // Row by row, and as a rebuild's bulk load (blob rows sorted into place at finishBulk).
  const orders = [[old, other, superseding], [superseding, other, old]];
  for (const [order, bulk] of orders.flatMap((o) => [[o, false], [o, true]] as const)) {
    const index = bulk ? await StoreIndex.createBulk(STORE) : await StoreIndex.create(STORE);
    for (const p of order) index.indexPack(p);
    index.finishBulk();
    assert.deepEqual(index.versions("ns", "a").map((m) => [m.id, m.packId]), [[mid("M2"), "P9"]]);
    assert.equal(index.current("ns", "a")?.size, 20);
    assert.deepEqual(index.versions("ns", "gone"), []);
    assert.deepEqual(index.list("ns").map((m) => m.key), ["a", "x"]);
    // b1 (dropped) stays readable where it is until the run deleting P1 is applied (when P1 was
    // indexed first), but is never deduplicated against; b2 (kept) is read from its copy.
    assert.ok([undefined, "P1"].includes(index.blob(b1)?.packId ?? undefined));
    assert.equal(index.canDeduplicate(b1), false);
    assert.equal(index.blob(b2)?.packId, "P9");
    assert.equal(index.canDeduplicate(b2), true);
    assert.equal(index.isRetired("P1"), true);
    assert.deepEqual(index.packs().map((p) => p.packId), ["P5", "P9"]);
    assert.deepEqual(index.namespaceStats(), [{ namespace: "ns", artifacts: 2, bytes: 23 }]);
    // Listed again (it is still on the Location until its grace period ends): a no-op.
    assert.equal(index.indexPack(old), 0);
    assert.equal(index.blob(b2)?.packId, "P9");
    // The run that deletes P1, applied: what only P1 held is gone.
    index.retirePacks(["P1"]);
    assert.equal(index.blob(b1), undefined);
    assert.equal(index.blob(b2)?.packId, "P9");
    assert.equal(index.hasPack("P1"), false);
    assert.deepEqual(index.versions("ns", "a").map((m) => m.id), [mid("M2")]);
    // The mark phase sees every remaining manifest, grouped by artifact, newest first.
    const seen: string[] = [];
    index.forEachManifest((m) => seen.push(`${m.key}:${m.id}:${m.packId}`));
    assert.deepEqual(seen, [`a:${mid("M2")}:P9`, `x:${mid("M5")}:P5`]);
    index.close();
  }
});

Deno.test("StoreIndex.retirePacks() and dropLooseBlobs() forget what a gc run deleted", async () => {
  const index = await StoreIndex.create(STORE);
  index.indexPack(pack("P1", [manifest("M1", "a", { deleted: true, blobs: [], size: 0 })]));
  index.indexPack(pack("P2", [manifest("M2", "b")]));
  const loose = "c".repeat(64);
  index.registerLooseBlob({
    blobId: loose,
    kind: "regular",
    rawSize: 9,
    storedSize: 9,
    packId: null,
    offset: null,
  });
  index.retirePacks(["P1"]);
  index.dropLooseBlobs([loose]);
  assert.deepEqual(index.versions("ns", "a"), []);
  assert.equal(index.current("ns", "b")?.id, mid("M2"));
  assert.equal(index.blob(loose), undefined);
  assert.equal(index.hasBlob(loose), false);
  assert.deepEqual(index.packs().map((p) => p.packId), ["P2"]);
  index.close();
});

Deno.test("StoreIndex.createBulk() then finishBulk() gives the same index as row-by-row indexing", async () => {
  const normal = await StoreIndex.create(STORE);
  const bulk = await StoreIndex.createBulk(STORE);
  for (const p of history()) {
    normal.indexPack(p);
    bulk.indexPack(p);
  }
  const schemaOf = async (index: StoreIndex) => {
    const SQL = await loadSqlite();
    const db = new SQL.Database(index.export());
    const rows =
      db.exec("SELECT type, name, sql FROM sqlite_master ORDER BY type, name")[0]!.values;
    db.close();
    return rows;
  };
  // Before finishBulk the secondary indexes and triggers are missing.
  assert.notDeepEqual(await schemaOf(bulk), await schemaOf(normal));
  bulk.finishBulk();
  bulk.finishBulk(); // a second call is a no-op
  assert.deepEqual(await schemaOf(bulk), await schemaOf(normal));
  assert.deepEqual(bulk.namespaceStats(), normal.namespaceStats());
  assert.deepEqual(bulk.namespaceStats(), statsByScan(normal, KEYS));
  assert.deepEqual(bulk.counts(), normal.counts());
  for (const [ns, key] of KEYS) {
    assert.deepEqual(bulk.versions(ns!, key!), normal.versions(ns!, key!));
    assert.deepEqual(bulk.current(ns!, key!), normal.current(ns!, key!));
  }
  // Kept exact by the triggers from there on.
  for (const index of [bulk, normal]) {
    index.indexPack(pack("P11", [manifest("M11", "y", { namespace: "a", size: 100 })]));
  }
  assert.deepEqual(bulk.namespaceStats(), normal.namespaceStats());
  bulk.close();
  normal.close();
});

Deno.test("A bulk load keeps the copy of a blob indexed first, as row-by-row indexing does", async () => {
  const id = "7".repeat(64);
  const packOf = (packId: string, offset: number) => ({
    pack: { packId, size: 100, blobCount: 1, manifestCount: 1 },
    blobs: [{ blobId: id, kind: "regular" as const, rawSize: 3, storedSize: 3, packId, offset }],
    manifests: [manifest(`M${packId}`, packId, { blobs: [id], size: 3, packId })],
  });
  for (const order of [["P2", "P1", "P3"], ["P3", "P1", "P2"]]) {
    const normal = await StoreIndex.create(STORE);
    const bulk = await StoreIndex.createBulk(STORE);
    for (const [i, packId] of order.entries()) {
      normal.indexPack(packOf(packId!, 16 + i));
      bulk.indexPack(packOf(packId!, 16 + i));
    }
    bulk.finishBulk();
    assert.deepEqual(bulk.blob(id), normal.blob(id));
    assert.deepEqual(normal.blob(id)?.packId, order[0]);
    assert.deepEqual(bulk.counts(), normal.counts());
    bulk.close();
    normal.close();
  }
});

Deno.test("StoreIndex.hostCacheCurrent follows every change after markHostCacheCurrent()", async () => {
  const index = await StoreIndex.create(STORE);
  assert.equal(index.hostCacheCurrent, false);
  index.markHostCacheCurrent();
  assert.equal(index.hostCacheCurrent, true);
  const before = index.changes;
  index.indexPack(history()[0]!);
  assert.equal(index.hostCacheCurrent, false);
  index.markHostCacheCurrent(before); // bytes taken before the change: still stale
  assert.equal(index.hostCacheCurrent, false);
  index.markHostCacheCurrent();
  index.setHighWaterMark("01JZZZZZZZZZZZZZZZZZZZZZZZ");
  assert.equal(index.hostCacheCurrent, false);
  index.close();
});

Deno.test("StoreIndex.hasBlob() knows every blob indexed after its filter grew past its first layers", async () => {
  const index = await StoreIndex.create(STORE);
  const hex = (n: number, salt: number) => {
    // Uniform-looking ids (blob ids are digests): a 32-bit mix of n spread over 64 hex digits.
    let out = "";
    for (let i = 0; i < 8; i++) {
      const x = Math.imul((n + 1) * 0x9e3779b1 + i * 0x85ebca6b + salt, 0xc2b2ae35) >>> 0;
      out += x.toString(16).padStart(8, "0");
    }
    return out;
  };
  const blob = (id: string) => ({
    blobId: id,
    kind: "regular" as const,
    rawSize: 1,
    storedSize: 1,
    packId: "P1",
    offset: 16,
  });
  const first = Array.from({ length: 10 }, (_, i) => hex(i, 1));
  index.indexPack({
    pack: { packId: "P1", size: 100, blobCount: first.length, manifestCount: 0 },
    blobs: first.map(blob),
    manifests: [],
  });
  assert.equal(index.hasBlob(first[0]!), true); // the filter is built here: 65,536 ids, then grows
  const more = Array.from({ length: 220_000 }, (_, i) => hex(i, 2));
  for (let at = 0, p = 2; at < more.length; at += 20_000, p++) {
    const ids = more.slice(at, at + 20_000);
    const packId = `P${p}`;
    index.indexPack({
      pack: { packId, size: 100, blobCount: ids.length, manifestCount: 0 },
      blobs: ids.map((id) => ({ ...blob(id), packId })),
      manifests: [],
    });
  }
  for (const id of [...first, ...more]) {
    if (!index.hasBlob(id)) assert.fail(`blob ${id} indexed but not known`);
  }
  let falsePositives = 0;
  for (let i = 0; i < 20_000; i++) if (index.hasBlob(hex(i, 3))) falsePositives++;
  assert.equal(falsePositives, 0); // the database answers what the filter lets through
  index.close();
});
