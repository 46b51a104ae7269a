import assert from "node:assert/strict";
import {
  canonicalChecksum,
  canonicalJson,
  isChecksum,
  isStoreId,
  isTimestamp,
  newStoreId,
} from "./fields.ts";
import { InvalidArgumentError } from "../errors.ts";

Deno.test("canonicalJson() sorts keys at every level and ignores insertion order", () => {
  assert.equal(
    canonicalJson({ b: { y: 1, x: [2, { d: null, c: "é" }] }, a: true }),
    '{"a":true,"b":{"x":[2,{"c":"é","d":null}],"y":1}}',
  );
  assert.equal(canonicalJson({ a: 1, b: 2 }), canonicalJson({ b: 2, a: 1 }));
  assert.equal(canonicalJson({ a: undefined, b: 1 }), '{"b":1}');
});

Deno.test("canonicalJson() refuses what JSON cannot represent", () => {
  for (const bad of [Number.NaN, Infinity, 1n, () => 1, new Date(0), undefined]) {
    assert.throws(() => canonicalJson(bad), InvalidArgumentError);
  }
});

Deno.test("isTimestamp() accepts only real toISOString() timestamps", () => {
  assert.ok(isTimestamp("2026-05-10T12:00:00.000Z"));
  for (
    const bad of [
      "2026-05-10T12:00:00Z",
      "2026-05-10T12:00:00.000+00:00",
      "2026-13-01T00:00:00.000Z",
      "2026-02-29T00:00:00.000Z",
      " 2026-05-10T12:00:00.000Z",
      20260510,
    ]
  ) {
    assert.ok(!isTimestamp(bad), String(bad));
  }
});

Deno.test("newStoreId() makes 32 lowercase hex digits", () => {
  assert.match(newStoreId(), /^[0-9a-f]{32}$/);
});

Deno.test("isStoreId() and isChecksum() accept exactly their syntax", () => {
  assert.ok(isStoreId(newStoreId()));
  for (const bad of ["0123456789ABCDEF0123456789ABCDEF", "0123", 12, null]) {
    assert.ok(!isStoreId(bad), String(bad));
  }
  assert.ok(isChecksum(canonicalChecksum({ a: 1 })));
  for (const bad of ["sha256:" + "A".repeat(64), "sha256:ab", "blake3:" + "0".repeat(64), 1]) {
    assert.ok(!isChecksum(bad), String(bad));
  }
});
