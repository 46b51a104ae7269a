import assert from "node:assert/strict";
import { CorruptObjectError } from "../errors.ts";
import { decodeSnapshot, encodeSnapshot } from "./snapshot.ts";
import { hashBytes } from "./hashing.ts";

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
  cases.push(["flipped db byte", flipped, /compressed database is damaged/]);
  const checksumByte = good.slice();
  checksumByte[checksumByte.length - 1]! ^= 1; // in the frame's content checksum
  cases.push(["flipped checksum byte", checksumByte, /compressed database is damaged/]);
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

Deno.test("encodeSnapshot() writes version 2, the database compressed with zstd", () => {
  const big = new Uint8Array(100_000);
  big.set(db);
  const bytes = encodeSnapshot(header, big);
  assert.equal(new DataView(bytes.buffer).getUint16(8), 2);
  assert.ok(bytes.length < big.length / 10, `${bytes.length} bytes: not compressed`);
  const { header: h, db: back } = decodeSnapshot("k", bytes, "S");
  assert.equal(h.compression, "zstd");
  assert.deepEqual(back, big);
});

Deno.test("decodeSnapshot() still reads version 1 (uncompressed, SHA-256) and checks it", () => {
  const h = new TextEncoder().encode(JSON.stringify({
    ...header,
    dbBytes: db.length,
    dbSha256: hashBytes("sha256", db),
  }));
  const v1 = new Uint8Array(16 + h.length + db.length);
  v1.set(new TextEncoder().encode("CAPSASNP"));
  new DataView(v1.buffer).setUint16(8, 1);
  new DataView(v1.buffer).setUint32(12, h.length);
  v1.set(h, 16);
  v1.set(db, 16 + h.length);
  assert.deepEqual(decodeSnapshot("k", v1, "S").db, db);
  v1[v1.length - 1]! ^= 1;
  assert.throws(() => decodeSnapshot("k", v1, "S"), /checksum mismatch/);
});
