import assert from "node:assert/strict";
import { body } from "../tests/data.ts";
import { compressIfWorthIt, decompressExactly, maxCompressedLength } from "./compression.ts";

const KiB = 1024;
const text = (n: number) =>
  new TextEncoder().encode("the quick brown fox jumps over the lazy dog. ".repeat(n / 45 + 1))
    .subarray(0, n);

Deno.test("compressIfWorthIt() stores large random bodies as they are", () => {
  for (const size of [64 * KiB, 256 * KiB, 1024 * KiB, 4096 * KiB]) {
    assert.equal(compressIfWorthIt(body(size, size), 3), undefined, `${size} bytes`);
  }
});

Deno.test("compressIfWorthIt() compresses a large body compressible at any one probe point", () => {
  // Random, with text at the start, the middle or the end only (a quarter of the body each):
  // the one compressible sample is enough to try the whole, which saves more than 1/16.
  const size = 1024 * KiB;
  for (const at of [0, size * 3 / 8, size * 3 / 4]) {
    const raw = body(7, size);
    raw.set(text(size / 4), at);
    const stored = compressIfWorthIt(raw, 3);
    assert.ok(stored !== undefined, `text at ${at}`);
    assert.ok(stored.length <= maxCompressedLength(size));
    assert.deepEqual(decompressExactly("packs/p", stored, size, "blob"), raw);
  }
});

Deno.test("compressIfWorthIt() skips a large body incompressible at its start, middle and end (the probe's known miss)", () => {
  // Compressible between the probe points only: stored as it is, never wrong.
  const size = 1024 * KiB;
  const raw = body(9, size);
  raw.set(text(200 * KiB), 32 * KiB);
  raw.set(text(200 * KiB), 600 * KiB);
  assert.equal(compressIfWorthIt(raw, 3), undefined);
  // Below the probe's size, the same mix is compressed whole.
  const small = body(9, 200 * KiB);
  small.set(text(120 * KiB), 20 * KiB);
  assert.ok(compressIfWorthIt(small, 3) !== undefined);
});
