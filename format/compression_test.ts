import assert from "node:assert/strict";
import { body } from "../tests/data.ts";
import { constants, zstdCompressSync } from "node:zlib";
import {
  compressIfWorthIt,
  decompressExactly,
  ESTIMATE_TO,
  estimateMayShrink,
  maxCompressedLength,
} from "./compression.ts";

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

/** Small bodies of many kinds, compressible or not, 32 B to 8 KiB. */
function smallBodies(): Array<[string, Uint8Array]> {
  const out: Array<[string, Uint8Array]> = [];
  for (const size of [32, 100, 1000, 1024, 2500, 4096, ESTIMATE_TO]) {
    const random = body(size, size);
    const half = new Uint8Array(size);
    half.set(random.subarray(0, size >> 1));
    const repeated = new Uint8Array(size);
    const part = random.subarray(0, Math.ceil(size * 7 / 8));
    repeated.set(part);
    repeated.set(part.subarray(0, size - part.length), part.length);
    const b64 = new TextEncoder().encode(btoa(String.fromCharCode(...random))).subarray(0, size);
    const hex = new TextEncoder().encode(random.toHex()).subarray(0, size);
    const json = new TextEncoder().encode(
      JSON.stringify(Array.from({ length: size }, (_, i) => ({ id: i, name: `item ${i}` }))),
    ).subarray(0, size);
    out.push(
      [`random ${size}`, random],
      [`half zero ${size}`, half],
      [`7/8 repeated ${size}`, repeated],
      [`base64 ${size}`, b64],
      [`hex ${size}`, hex],
      [`json ${size}`, json],
      [`text ${size}`, text(size)],
      [`zeros ${size}`, new Uint8Array(size)],
    );
  }
  return out;
}

Deno.test("compressIfWorthIt() still compresses small compressible bodies (text, JSON, base64, hex, repeats)", () => {
  for (const [name, raw] of smallBodies()) {
    if (name.startsWith("random") || raw.length < 1000) continue;
    const stored = compressIfWorthIt(raw, 3);
    assert.ok(stored !== undefined, name);
    assert.ok(stored.length <= maxCompressedLength(raw.length), name);
    assert.deepEqual(decompressExactly("packs/p", stored, raw.length, "blob"), raw, name);
  }
});

Deno.test("estimateMayShrink() rules out small random bodies, and nothing zstd would have stored smaller", () => {
  for (let seed = 0; seed < 50; seed++) {
    const size = 1000 + (seed * 997) % (ESTIMATE_TO - 999);
    assert.equal(estimateMayShrink(body(seed, size)), false, `random ${size} bytes`);
  }
  assert.equal(estimateMayShrink(body(1, 32)), false, "random 32 bytes");
  // Never a missed saving on these: where the estimate says no, zstd itself does not save 1/16.
  for (const [name, raw] of smallBodies()) {
    if (estimateMayShrink(raw)) continue;
    const z = zstdCompressSync(raw, { params: { [constants.ZSTD_c_compressionLevel]: 19 } });
    assert.ok(z.length > maxCompressedLength(raw.length), `${name}: zstd gives ${z.length}`);
  }
});
