import assert from "node:assert/strict";
import { CorruptObjectError } from "../errors.ts";
import { decodeSnapshot, encodeSnapshot } from "./snapshot.ts";

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
