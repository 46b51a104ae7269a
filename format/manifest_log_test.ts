import assert from "node:assert/strict";
import { zstdCompressSync } from "node:zlib";
import { CorruptObjectError } from "../errors.ts";
import { decodeManifestLogEntry, encodeManifestLogEntry } from "./manifest_log.ts";
import type { Manifest } from "./manifest.ts";
import { UlidGenerator } from "./ulid.ts";

const STORE = "0123456789abcdef0123456789abcdef";
const PACK = "01arz3ndektsv4rrffq69g5fav";
const KEY = `manifest-log/${PACK}`;
const ids = new UlidGenerator({ clock: () => 1_700_000_000_000 });

function manifests(n: number): Manifest[] {
  return Array.from({ length: n }, (_, i) => ({
    id: ids.next(),
    storeId: STORE,
    namespace: "docs",
    key: `file-${i}.txt`,
    size: 42,
    digest: "ab".repeat(32),
    contentType: "text/plain",
    created: 1_700_000_000_000 + i,
    metadata: {},
    blobs: ["cd".repeat(32)],
    deleted: false,
  }));
}

function header(rawLength: number): Uint8Array {
  const out = new Uint8Array(12);
  out.set(new TextEncoder().encode("CAPSAMLZ"));
  new DataView(out.buffer).setUint32(8, rawLength, true);
  return out;
}

const concat = (a: Uint8Array, b: Uint8Array) => {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
};

Deno.test("manifest log entries: compressed with a level (CAPSAMLZ, raw length, zstd), plain without; both decode", () => {
  const ms = manifests(50);
  const plain = encodeManifestLogEntry(STORE, PACK, ms);
  const packed = encodeManifestLogEntry(STORE, PACK, ms, 3);
  assert.equal(plain[0], "{".charCodeAt(0));
  assert.equal(new TextDecoder().decode(packed.subarray(0, 8)), "CAPSAMLZ");
  assert.equal(new DataView(packed.buffer).getUint32(8, true), plain.length);
  assert.ok(packed.length < plain.length / 4, `${packed.length} vs ${plain.length}`);
  for (const bytes of [plain, packed]) {
    const back = decodeManifestLogEntry(KEY, bytes, STORE);
    assert.deepEqual([back.packId, back.manifests.map((m) => m.id)], [PACK, ms.map((m) => m.id)]);
  }
  // Whatever the size, a compressed entry saves 1/16 of the JSON, header included.
  for (const n of [0, 1, 2, 5]) {
    const json = encodeManifestLogEntry(STORE, PACK, manifests(n));
    const bytes = encodeManifestLogEntry(STORE, PACK, manifests(n), 3);
    if (bytes[0] === "C".charCodeAt(0)) {
      assert.ok(bytes.length <= json.length - Math.ceil(json.length / 16), `${n} manifests`);
    }
  }
});

Deno.test("a compressed manifest log entry that is damaged, truncated or a bomb is CorruptObjectError", () => {
  const plain = encodeManifestLogEntry(STORE, PACK, manifests(20));
  const frame = new Uint8Array(zstdCompressSync(plain));
  const flipped = concat(header(plain.length), frame);
  flipped[12 + Math.floor(frame.length / 2)]! ^= 0x20;
  const bomb = new Uint8Array(zstdCompressSync(new Uint8Array(32 << 20)));
  const cases: [Uint8Array, RegExp][] = [
    [flipped, /entry: zstd stream|checksum|not valid/],
    [concat(header(plain.length - 1), frame), /decompresses to more than its raw length/],
    [concat(header(plain.length + 1), frame), /decompresses to \d+ bytes, its raw length is/],
    [concat(header(1000), bomb), /decompresses to more than its raw length 1000/],
    [header(plain.length).subarray(0, 10), /truncated/],
    [concat(header(300 << 20), frame), /exceeds/],
    [new TextEncoder().encode("CAPSAXXX\0\0\0\0"), /not a manifest log entry/],
  ];
  for (const [bytes, reason] of cases) {
    assert.throws(
      () => decodeManifestLogEntry(KEY, bytes, STORE),
      (e: unknown) => e instanceof CorruptObjectError && e.key === KEY && reason.test(e.reason),
      String(reason),
    );
  }
});
