import assert from "node:assert/strict";
import { body } from "../tests/data.ts";
import { constants, zstdCompressSync } from "node:zlib";
import { CorruptObjectError } from "../errors.ts";
import {
  compressIfWorthIt,
  decompressExactly,
  DecompressScratch,
  ESTIMATE_TO,
  estimateMayShrink,
  maxCompressedLength,
  SCRATCH_MAX_BYTES,
  zstdHandleWorks,
} from "./compression.ts";

const KiB = 1024;
const concat = (a: Uint8Array, b: ArrayLike<number>) => new Uint8Array([...a, ...Array.from(b)]);
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

Deno.test("decompressExactly() into a scratch: the same bytes as the one-shot API, one reused buffer, the same refusals", () => {
  assert.equal(zstdHandleWorks(), true, "the pinned Deno's zstd handle passes its check");
  const scratch = new DecompressScratch();
  /** What a call gives: its length, or its refusal's reason (the library's own message elided). */
  const outcome = (f: () => Uint8Array) => {
    try {
      return `${f().length} bytes`;
    } catch (e) {
      assert.ok(e instanceof CorruptObjectError, String(e));
      return `refused: ${e.reason.replace(/\(.*\)/, "(…)")}`;
    }
  };
  let buffer: ArrayBufferLike | undefined;
  for (const size of [3 * KiB, 200 * KiB, 100 * KiB, 1 * KiB]) {
    const raw = text(size);
    const frame = new Uint8Array(zstdCompressSync(raw));
    const out = decompressExactly("packs/p", frame, raw.length, "TOC", scratch);
    assert.deepEqual(out, raw);
    assert.deepEqual(out, decompressExactly("packs/p", frame, raw.length, "TOC"));
    // Grown to the largest raw length seen, then kept.
    if (buffer !== undefined && size <= 100 * KiB) assert.ok(out.buffer === buffer, `${size}`);
    const flipped = new Uint8Array(frame);
    flipped[flipped.length - 2]! ^= 4;
    // [case, stored bytes, raw length, refused?]. Through the handle, bytes after the frames are
    // refused; the one-shot API (blobs) ignores them, as it always did.
    const cases: Array<[string, Uint8Array, number, boolean]> = [
      ["longer", frame, raw.length - 1, true],
      ["shorter", frame, raw.length + 1, true],
      ["damaged", flipped, raw.length, true],
      ["truncated", frame.subarray(0, frame.length >> 1), raw.length, true],
      [
        "an empty frame after it",
        concat(frame, zstdCompressSync(new Uint8Array(0))),
        raw.length,
        false,
      ],
      ["three bytes after it", concat(frame, [1, 2, 3]), raw.length, true],
      ["eight bytes after it", concat(frame, [1, 2, 3, 4, 5, 6, 7, 8]), raw.length, true],
    ];
    for (const [what, stored, length, refused] of cases) {
      const direct = outcome(() => decompressExactly("packs/p", stored, length, "TOC", scratch));
      const oneShot = outcome(() => decompressExactly("packs/p", stored, length, "TOC"));
      assert.equal(direct.startsWith("refused"), refused, `${size}, ${what}: ${direct}`);
      if (!what.includes("bytes after")) assert.equal(direct, oneShot, `${size}, ${what}`);
    }
    buffer = scratch.buffer.buffer;
  }
  // A bomb cannot grow the scratch past its raw length and a byte.
  const bomb = new Uint8Array(zstdCompressSync(new Uint8Array(64 << 20)));
  const small = new DecompressScratch();
  assert.match(outcome(() => decompressExactly("packs/p", bomb, 5000, "TOC", small)), /more than/);
  assert.equal(small.buffer.length, 5001);
  // Above SCRATCH_MAX_BYTES, a buffer of its own: the scratch stays as it was.
  const big = new Uint8Array(SCRATCH_MAX_BYTES + 10).fill(7);
  const packedBig = new Uint8Array(zstdCompressSync(big));
  assert.equal(
    decompressExactly("packs/p", packedBig, big.length, "TOC", small).length,
    big.length,
  );
  assert.equal(small.buffer.length, 5001);
  // ... held to the same rules: bytes after its frame are refused there too.
  assert.match(
    outcome(() =>
      decompressExactly("packs/p", concat(packedBig, [1, 2, 3]), big.length, "TOC", small)
    ),
    /refused/,
  );
});
