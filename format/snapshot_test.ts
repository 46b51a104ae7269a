import assert from "node:assert/strict";
import { MemoryDriver } from "../drivers/memory.ts";
import { FaultyDriver } from "../drivers/faulty.ts";
import { CorruptObjectError, TransientError } from "../errors.ts";
import { decodeSnapshot, encodeSnapshot, loadNewestIndex } from "./snapshot.ts";
import { StoreIndex } from "../index/store_index.ts";
import { SNAPSHOT_PREFIX } from "../layout.ts";

const header = { storeId: "S", schemaVersion: 1, highWaterMark: "P9", createdAt: 1 };
const db = new TextEncoder().encode("SQLite format 3\u0000 pretend database bytes");

Deno.test("encodeSnapshot() and decodeSnapshot() round trip", () => {
  const { header: h, db: back } = decodeSnapshot("k", encodeSnapshot(header, db), "S");
  assert.deepEqual(back, db);
  assert.equal(h.highWaterMark, "P9");
  assert.equal(h.dbBytes, db.length);
});

Deno.test("decodeSnapshot() refuses every damaged or foreign snapshot", () => {
  const good = encodeSnapshot(header, db);
  const cases: Array<[string, Uint8Array, RegExp]> = [
    ["empty", new Uint8Array(0), /truncated/],
    ["garbage", new TextEncoder().encode("definitely not a snapshot"), /bad magic/],
    ["truncated", good.slice(0, good.length - 1), /length mismatch/],
    ["trailing", new Uint8Array([...good, 0]), /length mismatch/],
  ];
  const version = good.slice();
  version[9] = 7;
  cases.push(["version", version, /unknown snapshot format version 7/]);
  const hlen = good.slice();
  new DataView(hlen.buffer).setUint32(12, 0xffffffff);
  cases.push(["header length", hlen, /out of bounds/]);
  const flipped = good.slice();
  flipped[flipped.length - 3]! ^= 1;
  cases.push(["flipped db byte", flipped, /checksum mismatch/]);
  const flippedHeader = good.slice();
  flippedHeader[18]! ^= 0x40;
  cases.push([
    "flipped header byte",
    flippedHeader,
    /not valid JSON|missing fields|belongs to|mismatch/,
  ]);
  for (const [name, bytes, reason] of cases) {
    assert.throws(() => decodeSnapshot("snap", bytes, "S"), (e: unknown) => {
      assert.ok(e instanceof CorruptObjectError, name);
      assert.match(e.message, reason, name);
      assert.equal(e.key, "snap");
      return true;
    });
  }
  assert.throws(() => decodeSnapshot("snap", good, "OTHER"), /belongs to store S/);
});

async function realDb(storeId: string): Promise<Uint8Array> {
  const index = await StoreIndex.create(storeId);
  const bytes = index.export();
  index.close();
  return bytes;
}

Deno.test("loadNewestIndex() skips corrupt newer snapshots, damaged databases included", async () => {
  const d = new MemoryDriver();
  const good = await realDb("S");
  await d.put(`${SNAPSHOT_PREFIX}01a`, encodeSnapshot({ ...header, highWaterMark: "old" }, good));
  await d.put(`${SNAPSHOT_PREFIX}01b`, encodeSnapshot({ ...header, highWaterMark: "new" }, good));
  // A sound frame around a database that is not one.
  await d.put(`${SNAPSHOT_PREFIX}01c`, encodeSnapshot(header, db));
  await d.put(`${SNAPSHOT_PREFIX}01d`, crypto.getRandomValues(new Uint8Array(300)));
  const found = await loadNewestIndex(d, "S");
  assert.equal(found.key, `${SNAPSHOT_PREFIX}01b`);
  assert.deepEqual(found.rejected.map((r) => r.key), [
    `${SNAPSHOT_PREFIX}01d`,
    `${SNAPSHOT_PREFIX}01c`,
  ]);
  found.index?.close();
  const none = await loadNewestIndex(new MemoryDriver(), "S");
  assert.equal(none.key, undefined);
});

Deno.test("loadNewestIndex() throws on an I/O failure instead of reporting no snapshot", async () => {
  const d = new FaultyDriver(new MemoryDriver());
  await d.put(`${SNAPSHOT_PREFIX}01a`, encodeSnapshot(header, await realDb("S")));
  d.inject({ methods: ["get"], error: () => new TransientError("disk on fire") });
  await assert.rejects(loadNewestIndex(d, "S"), TransientError);
  d.clear();
  d.inject({ methods: ["list"], afterEntries: 0 });
  await assert.rejects(loadNewestIndex(d, "S"), TransientError);
});
