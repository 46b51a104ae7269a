import assert from "node:assert/strict";
import { CorruptObjectError } from "../errors.ts";
import { UnsupportedFormatVersionError } from "../errors.ts";
import {
  decodeMaintenanceMode,
  decodeMovedMarker,
  encodeMaintenanceMode,
  encodeMovedMarker,
  type MaintenanceMode,
  MAX_MARKER_BYTES,
  type MovedMarker,
} from "./markers.ts";

const enc = new TextEncoder();
const json = (v: unknown) => enc.encode(JSON.stringify(v));

const moved: MovedMarker = { destination: "s3://bucket/store", storeId: "s1", movedAt: 1234 };
const mode: MaintenanceMode = {
  mode: "read-only",
  agent: "MoveStore",
  holder: "MoveStore on h (pid 7)",
  nonce: "n1",
};

/** Every way a record can be damaged or foreign: truncated, not JSON, another format, missing fields. */
function damaged(good: Uint8Array, frame: { format: string; version: number }) {
  const parsed = JSON.parse(new TextDecoder().decode(good));
  const without = (k: string) => {
    const { [k]: _, ...rest } = parsed;
    return json(rest);
  };
  return [
    ["empty", new Uint8Array(0)],
    ["truncated", good.slice(0, good.length - 5)],
    ["not UTF-8", new Uint8Array([0xff, 0xfe, 0x7b])],
    ["plain text", enc.encode("s3://bucket/store\n")],
    ["an array", json([parsed])],
    ["a lease", json({ ...parsed, format: "capsa-lease" })],
    ["no format", without("format")],
    ["no version", without("version")],
    ["version 0", json({ ...parsed, version: 0 })],
    ["version as text", json({ ...parsed, version: String(frame.version) })],
    ["oversize", new Uint8Array(MAX_MARKER_BYTES + 1).fill(0x20)],
  ] as const;
}

Deno.test("encodeMovedMarker() and decodeMovedMarker() round trip, with format and version", () => {
  const bytes = encodeMovedMarker(moved);
  assert.deepEqual(decodeMovedMarker("system.state/moved", bytes), moved);
  const raw = JSON.parse(new TextDecoder().decode(bytes));
  assert.equal(raw.format, "capsa-moved");
  assert.equal(raw.version, 1);
});

Deno.test("decodeMovedMarker() refuses a damaged or foreign marker with CorruptObjectError", () => {
  const good = encodeMovedMarker(moved);
  const cases = [
    ...damaged(good, { format: "capsa-moved", version: 1 }),
    ["no destination", json({ format: "capsa-moved", version: 1, storeId: "s1", movedAt: 1 })],
    [
      "empty destination",
      json({ format: "capsa-moved", version: 1, destination: "", storeId: "s1", movedAt: 1 }),
    ],
    [
      "movedAt as text",
      json({ format: "capsa-moved", version: 1, destination: "d", storeId: "s1", movedAt: "1" }),
    ],
  ] as const;
  for (const [name, bytes] of cases) {
    assert.throws(
      () => decodeMovedMarker("system.state/moved", bytes),
      (e: unknown) =>
        e instanceof CorruptObjectError && !(e instanceof UnsupportedFormatVersionError) &&
        e.key === "system.state/moved",
      name,
    );
  }
});

Deno.test("decodeMovedMarker() refuses a newer version with UnsupportedFormatVersionError", () => {
  const raw = JSON.parse(new TextDecoder().decode(encodeMovedMarker(moved)));
  assert.throws(
    () => decodeMovedMarker("system.state/moved", json({ ...raw, version: 2 })),
    (e: unknown) =>
      e instanceof UnsupportedFormatVersionError && e.found === 2 &&
      e.code === "unsupported_format_version",
  );
});

Deno.test("encodeMaintenanceMode() and decodeMaintenanceMode() round trip, with format and version", () => {
  const bytes = encodeMaintenanceMode(mode);
  assert.deepEqual(decodeMaintenanceMode("m", bytes), mode);
  assert.deepEqual(
    decodeMaintenanceMode("m", encodeMaintenanceMode({ ...mode, mode: "offline" })).mode,
    "offline",
  );
  const raw = JSON.parse(new TextDecoder().decode(bytes));
  assert.equal(raw.format, "capsa-maintenance-mode");
  assert.equal(raw.version, 1);
});

Deno.test("decodeMaintenanceMode() refuses a damaged or foreign record with CorruptObjectError", () => {
  const good = encodeMaintenanceMode(mode);
  const raw = JSON.parse(new TextDecoder().decode(good));
  const cases = [
    ...damaged(good, { format: "capsa-maintenance-mode", version: 1 }),
    ["the unversioned record of earlier builds", json(mode)],
    ["unknown mode", json({ ...raw, mode: "paused" })],
    ["no nonce", json({ ...raw, nonce: undefined })],
    ["holder as a number", json({ ...raw, holder: 7 })],
  ] as const;
  for (const [name, bytes] of cases) {
    assert.throws(
      () => decodeMaintenanceMode("system.state/maintenance/mode", bytes),
      (e: unknown) =>
        e instanceof CorruptObjectError && !(e instanceof UnsupportedFormatVersionError) &&
        e.key === "system.state/maintenance/mode",
      name,
    );
  }
});

Deno.test("decodeMaintenanceMode() refuses a newer version with UnsupportedFormatVersionError", () => {
  const raw = JSON.parse(new TextDecoder().decode(encodeMaintenanceMode(mode)));
  assert.throws(
    () => decodeMaintenanceMode("m", json({ ...raw, version: 3 })),
    (e: unknown) => e instanceof UnsupportedFormatVersionError && e.found === 3,
  );
});
