/**
 * The raw floor of ingest: content-defined chunking alone, hashing alone
 * (each algorithm), and both together as the store's write path does them
 * (chunk a streamed body, hash every chunk, digest the whole body), over
 * 64 MiB of random data. MB/s = 67.1 MB / the time per iteration.
 *
 * Run: `deno bench bench/chunk_hash_bench.ts`
 *
 * @module
 */

import { chunkBytes, Chunker, DEFAULT_CHUNKING } from "../format/chunker.ts";
import { createHasher, type HashAlgorithm, hashBytes } from "../format/hashing.ts";

const SIZE = 64 * 1024 * 1024;
const PIECE = 64 * 1024; // what a file or network stream typically yields
const data = new Uint8Array(SIZE);
for (let i = 0; i < SIZE; i += 65536) crypto.getRandomValues(data.subarray(i, i + 65536));
const small = data.subarray(0, 2048);
const options = { n: 8, warmup: 2 };

function chunkStream(): number {
  const chunker = new Chunker(DEFAULT_CHUNKING);
  let count = 0;
  for (let at = 0; at < SIZE; at += PIECE) {
    count += chunker.push(data.subarray(at, at + PIECE)).length;
  }
  return count + (chunker.finish() === undefined ? 0 : 1);
}

function ingest(alg: HashAlgorithm): string {
  const whole = createHasher(alg);
  const chunker = new Chunker(DEFAULT_CHUNKING);
  for (let at = 0; at < SIZE; at += PIECE) {
    const piece = data.subarray(at, at + PIECE);
    whole.update(piece);
    for (const chunk of chunker.push(piece)) hashBytes(alg, chunk);
  }
  const last = chunker.finish();
  if (last !== undefined) hashBytes(alg, last);
  return whole.digestHex();
}

Deno.bench({
  name: "chunk 64 MiB, whole buffer (1 MiB avg)",
  group: "chunking",
  baseline: true,
  ...options,
  fn: () => void chunkBytes(data, DEFAULT_CHUNKING),
});
Deno.bench({
  name: "chunk 64 MiB, streamed in 64 KiB pieces",
  group: "chunking",
  ...options,
  fn: () => void chunkStream(),
});

for (const alg of ["blake3", "sha256"] as const) {
  Deno.bench({
    name: `${alg} 64 MiB, one shot`,
    group: "hashing",
    baseline: alg === "blake3",
    ...options,
    fn: () => void hashBytes(alg, data),
  });
  Deno.bench({
    name: `${alg} 64 MiB, incremental in 64 KiB pieces`,
    group: "hashing",
    ...options,
    fn: () => {
      const h = createHasher(alg);
      for (let at = 0; at < SIZE; at += PIECE) h.update(data.subarray(at, at + PIECE));
      h.digestHex();
    },
  });
  Deno.bench({
    name: `${alg} 2 KiB, one shot (small artifacts)`,
    group: "small",
    fn: () => void hashBytes(alg, small),
  });
  Deno.bench({
    name: `${alg}: chunk + hash chunks + whole digest, 64 MiB streamed`,
    group: "ingest",
    baseline: alg === "blake3",
    ...options,
    fn: () => void ingest(alg),
  });
}
