import assert from "node:assert/strict";
import { body, Xorshift } from "../tests/data.ts";
import { sha256 as nobleSha256 } from "@noble/hashes/sha2";
import {
  chunkBytes,
  Chunker,
  type ChunkingParams,
  cutPoints,
  DEFAULT_CHUNKING,
  GEAR_TABLE_SEED,
  gearTable,
  MAX_CHUNK_BYTES,
  validateChunkingParams,
} from "./chunker.ts";
import { InvalidArgumentError } from "../errors.ts";
import { hashBytes } from "./hashing.ts";

const pseudoRandomBytes = (n: number, seed: number) => body(seed, n);

/** A small seeded PRNG for piece sizes. */
function prng(seed: number): () => number {
  const x = new Xorshift(seed);
  return () => x.next() / 2 ** 32;
}

/**
 * The cut rule exactly as the module doc states it, written independently and
 * slowly (unsigned arithmetic, one byte at a time, gear table derived afresh).
 */
function referenceCutPoints(bytes: Uint8Array, p: ChunkingParams): number[] {
  const seed = new TextEncoder().encode(GEAR_TABLE_SEED);
  const gear: number[] = [];
  for (let i = 0; i < 256; i++) {
    const d = nobleSha256(new Uint8Array([...seed, i]));
    gear.push((d[0]! | (d[1]! << 8) | (d[2]! << 16) | (d[3]! << 24)) >>> 0);
  }
  const bits = Math.round(Math.log2(p.avg));
  const top = (n: number) => (0xffffffff - (2 ** (32 - n) - 1)) >>> 0;
  const maskS = top(bits + 2);
  const maskL = top(bits - 2);
  const ends: number[] = [];
  let s = 0;
  while (s < bytes.length) {
    let h = 0;
    let len = Math.min(p.max, bytes.length - s);
    for (let q = p.min; q < Math.min(p.max, bytes.length - s); q++) {
      h = (h * 2 + gear[bytes[s + q]!]!) % 2 ** 32;
      if (((h & (q < p.avg ? maskS : maskL)) >>> 0) === 0) {
        len = q + 1;
        break;
      }
    }
    s += len;
    ends.push(s);
  }
  return ends;
}

function streamCutPoints(bytes: Uint8Array, params: ChunkingParams, nextSize: () => number) {
  const chunker = new Chunker(params);
  const ends: number[] = [];
  let offset = 0;
  const take = (chunks: Uint8Array[]) => {
    for (const c of chunks) {
      offset += c.length;
      ends.push(offset);
    }
  };
  for (let at = 0; at < bytes.length;) {
    const n = Math.min(bytes.length - at, nextSize());
    take(chunker.push(bytes.subarray(at, at + n)));
    assert.ok(chunker.buffered < params.max, "holds less than max bytes");
    at += n;
  }
  const last = chunker.finish();
  if (last !== undefined) take([last]);
  return ends;
}

const SMALL: ChunkingParams = { min: 256, avg: 1024, max: 4096 };
const MEDIUM: ChunkingParams = { min: 2048, avg: 8192, max: 65536 };
const ODD: ChunkingParams = { min: 100, avg: 3000, max: 7001 };

Deno.test("gearTable() is derived from SHA-256 of the gear seed string and each byte", () => {
  const table = gearTable();
  assert.equal(table.length, 256);
  const seed = new TextEncoder().encode(GEAR_TABLE_SEED);
  for (const i of [0, 1, 127, 255]) {
    const d = nobleSha256(new Uint8Array([...seed, i]));
    assert.equal(table[i], new DataView(d.buffer).getUint32(0, true));
  }
  // Pinned: the table is part of the format. Changing it breaks deduplication
  // against every existing store.
  assert.equal(table[0], 3852694555);
  assert.equal(table[255], 3444694896);
  const le = new Uint8Array(1024);
  table.forEach((v, i) => new DataView(le.buffer).setUint32(i * 4, v, true));
  assert.equal(
    hashBytes("sha256", le),
    "e540795caca9fa4d89aff277ec38eb7baa687f34768563d2494e639c3aba75f3",
  );
  table[0] = 0; // a copy: the chunker's own table is untouched
  assert.equal(gearTable()[0], 3852694555);
});

Deno.test("chunkBytes() cuts exactly where the specified rule says", () => {
  const data = pseudoRandomBytes(600_000, 42);
  for (const params of [SMALL, MEDIUM, ODD]) {
    assert.deepEqual(cutPoints(data, params), referenceCutPoints(data, params));
  }
  const zeros = new Uint8Array(50_000);
  assert.deepEqual(cutPoints(zeros, SMALL), referenceCutPoints(zeros, SMALL));
});

Deno.test("chunkBytes() cut points are pinned for a fixed input (format regression)", () => {
  // Changing these breaks deduplication against every existing store.
  const ends = cutPoints(pseudoRandomBytes(1 << 20, 1), MEDIUM);
  assert.equal(ends.length, 109);
  assert.deepEqual(ends.slice(0, 5), [8345, 17978, 22007, 31306, 42650]);
  assert.equal(
    hashBytes("sha256", new TextEncoder().encode(ends.join(","))),
    "ba2cdd932659256d93d9ceb40cfb3971a843d7ac5ffd0792c02b0a4cff617cc2",
  );
});

/** The test-vector input of docs/FORMAT.md (§5): SHA-256 in counter mode. */
function vectorInput(n: number): Uint8Array {
  const out = new Uint8Array(n);
  const prefix = new TextEncoder().encode("capsa/chunk-test/");
  const block = new Uint8Array(prefix.length + 4);
  block.set(prefix);
  for (let k = 0; k * 32 < n; k++) {
    new DataView(block.buffer).setUint32(prefix.length, k, true);
    out.set(nobleSha256(block).subarray(0, Math.min(32, n - k * 32)), k * 32);
  }
  return out;
}

Deno.test("chunkBytes() reproduces the test vectors of docs/FORMAT.md (§5)", () => {
  const data = vectorInput(1 << 20);
  const vectors: [ChunkingParams, number, number[], string][] = [
    [
      MEDIUM,
      112,
      [8208, 16671, 31795, 40804, 49260, 57970],
      "b359fb02b8943894eb558bdf84841f4c0531fef425c0a04b046db18a457be057",
    ],
    [
      { min: 64, avg: 256, max: 1024 },
      3584,
      [303, 628, 892, 1131, 1609, 1903],
      "de8fa24154cef2cea81b714c987b0729b6f642a98857dc118940b0a4556280bf",
    ],
  ];
  for (const [params, count, first, digest] of vectors) {
    const ends = cutPoints(data, params);
    assert.equal(ends.length, count);
    assert.deepEqual(ends.slice(0, 6), first);
    assert.equal(hashBytes("sha256", new TextEncoder().encode(ends.join(","))), digest);
  }
  const g = gearTable();
  assert.deepEqual([g[0], g[1], g[2], g[3], g[254], g[255]], [
    0xe5a3741b,
    0xf331e8fd,
    0x2581c1bd,
    0x5c312780,
    0xbc87cb5a,
    0xcd51df70,
  ]);
});

Deno.test("Chunker streams to the same cut points whatever the piece sizes", () => {
  const data = pseudoRandomBytes(400_000, 9);
  for (const params of [SMALL, MEDIUM, ODD]) {
    const expected = cutPoints(data, params);
    for (let seed = 1; seed <= 6; seed++) {
      const rnd = prng(seed);
      const sizes = [
        () => 1 + Math.floor(rnd() * 10), // tiny pieces
        () => Math.floor(rnd() * params.max * 2.5), // zero to several chunks
        () => (rnd() < 0.3 ? 0 : Math.floor(rnd() * 5000)), // empty pieces too
      ];
      const ends = streamCutPoints(data, params, sizes[seed % 3]!);
      assert.deepEqual(ends, expected, `params ${JSON.stringify(params)}, seed ${seed}`);
    }
  }
});

Deno.test("Chunker returns chunks whose bytes are the body's", () => {
  const data = pseudoRandomBytes(100_000, 5);
  const chunker = new Chunker(SMALL);
  const parts: Uint8Array[] = [];
  for (let at = 0; at < data.length; at += 777) {
    parts.push(...chunker.push(data.slice(at, at + 777)));
  }
  const last = chunker.finish();
  if (last) parts.push(last);
  const joined = new Uint8Array(data.length);
  let o = 0;
  for (const p of parts) {
    joined.set(p, o);
    o += p.length;
  }
  assert.equal(o, data.length);
  assert.deepEqual(joined, data);
});

Deno.test("chunkBytes() respects min and max; only the last chunk may be shorter than min", () => {
  for (const data of [pseudoRandomBytes(500_000, 77), new Uint8Array(300_000)]) {
    for (const params of [SMALL, MEDIUM, ODD]) {
      const chunks = chunkBytes(data, params);
      chunks.forEach((c, i) => {
        assert.ok(c.length <= params.max, `chunk ${i} longer than max`);
        if (i < chunks.length - 1) assert.ok(c.length >= params.min, `chunk ${i} shorter than min`);
      });
    }
  }
  // Constant input never satisfies the cut condition: every chunk is max long.
  const zeros = chunkBytes(new Uint8Array(5 * 4096 + 10), SMALL);
  assert.deepEqual(zeros.map((c) => c.length), [4096, 4096, 4096, 4096, 4096, 10]);
});

Deno.test("chunkBytes() averages near avg on random data", () => {
  const data = pseudoRandomBytes(8 << 20, 123);
  for (const params of [MEDIUM, { min: 16384, avg: 65536, max: 262144 }]) {
    const n = chunkBytes(data, params).length;
    const mean = data.length / n;
    assert.ok(mean > 0.8 * params.avg && mean < 1.5 * params.avg, `mean ${mean} for ${params.avg}`);
  }
});

Deno.test("chunkBytes() of an edited 20 MiB body yields only a few new chunks", () => {
  const params = { min: 64 * 1024, avg: 256 * 1024, max: 1024 * 1024 };
  const original = pseudoRandomBytes(20 << 20, 2024);
  const ids = (b: Uint8Array) => new Set(chunkBytes(b, params).map((c) => hashBytes("blake3", c)));
  const before = ids(original);
  assert.ok(before.size > 40);

  const overwritten = original.slice();
  overwritten.fill(0xab, 10_000_000, 10_000_100);
  const inserted = new Uint8Array(original.length + 1000);
  inserted.set(original.subarray(0, 10_000_000));
  inserted.set(pseudoRandomBytes(1000, 99), 10_000_000);
  inserted.set(original.subarray(10_000_000), 10_001_000);
  const removed = new Uint8Array(original.length - 5000);
  removed.set(original.subarray(0, 10_000_000));
  removed.set(original.subarray(10_005_000), 10_000_000);

  for (
    const [what, edited] of [["overwrite", overwritten], ["insert", inserted], [
      "delete",
      removed,
    ]] as const
  ) {
    const fresh = [...ids(edited)].filter((id) => !before.has(id));
    assert.ok(fresh.length >= 1 && fresh.length <= 3, `${what}: ${fresh.length} new chunks`);
  }
});

Deno.test("Chunker handles empty, tiny and exactly-cut bodies", () => {
  const empty = new Chunker(SMALL);
  assert.deepEqual(empty.push(new Uint8Array(0)), []);
  assert.equal(empty.finish(), undefined);

  assert.deepEqual(chunkBytes(new Uint8Array(0), SMALL), []);
  const tiny = chunkBytes(new Uint8Array([1, 2, 3]), SMALL);
  assert.deepEqual(tiny, [new Uint8Array([1, 2, 3])]);

  // A body ending exactly at a max cut leaves nothing for finish().
  const c = new Chunker(SMALL);
  assert.equal(c.push(new Uint8Array(4096)).length, 1);
  assert.equal(c.buffered, 0);
  assert.equal(c.finish(), undefined);
});

Deno.test("Chunker refuses push() and finish() after finish()", () => {
  const c = new Chunker(SMALL);
  c.push(new Uint8Array(10));
  assert.equal(c.finish()?.length, 10);
  assert.throws(() => c.push(new Uint8Array(1)), InvalidArgumentError);
  assert.throws(() => c.finish(), InvalidArgumentError);
});

Deno.test("validateChunkingParams() accepts sane parameters and refuses the rest", () => {
  assert.deepEqual(validateChunkingParams(DEFAULT_CHUNKING), DEFAULT_CHUNKING);
  assert.deepEqual(validateChunkingParams(ODD), ODD);
  assert.deepEqual(validateChunkingParams({ min: 64, avg: 65, max: MAX_CHUNK_BYTES }), {
    min: 64,
    avg: 65,
    max: MAX_CHUNK_BYTES,
  });
  const bad: [unknown, RegExp][] = [
    [null, /object/],
    [{ min: 63, avg: 128, max: 256 }, /min must be at least 64/],
    [{ min: 64, avg: 128, max: MAX_CHUNK_BYTES + 1 }, /max must be at most/],
    [{ min: 128, avg: 128, max: 256 }, /min < avg < max/],
    [{ min: 128, avg: 256, max: 256 }, /min < avg < max/],
    [{ min: 512, avg: 256, max: 1024 }, /min < avg < max/],
    [{ min: 64.5, avg: 256, max: 1024 }, /min must be an integer/],
    [{ min: 64, avg: Number.NaN, max: 1024 }, /avg must be an integer/],
    [{ min: 64, avg: 256, max: "1024" }, /max must be an integer/],
    [{ min: 64, avg: 256 }, /max must be an integer/],
  ];
  for (const [params, message] of bad) {
    assert.throws(
      () => validateChunkingParams(params as ChunkingParams),
      (e: unknown) => e instanceof InvalidArgumentError && message.test(e.message),
      JSON.stringify(params),
    );
    assert.throws(() => new Chunker(params as ChunkingParams), InvalidArgumentError);
  }
});
