import assert from "node:assert/strict";
import { body } from "../tests/data.ts";
import { blake3 as nobleBlake3 } from "@noble/hashes/blake3";
import { sha256 as nobleSha256 } from "@noble/hashes/sha2";
import { InvalidArgumentError } from "../errors.ts";
import {
  blobIdFromBytes,
  blobIdToBytes,
  createHasher,
  type HashAlgorithm,
  hashBytes,
  isBlobId,
  isHashAlgorithm,
} from "./hashing.ts";

const text = (s: string) => new TextEncoder().encode(s);

const pseudoRandomBytes = (n: number, seed: number) => body(seed, n);

const reference: Record<HashAlgorithm, (b: Uint8Array) => string> = {
  blake3: (b) => nobleBlake3(b).toHex(),
  sha256: (b) => nobleSha256(b).toHex(),
};

Deno.test("hashBytes() matches published BLAKE3 test vectors", () => {
  assert.equal(
    hashBytes("blake3", new Uint8Array(0)),
    "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
  );
  assert.equal(
    hashBytes("blake3", text("abc")),
    "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85",
  );
});

Deno.test("hashBytes() matches published SHA-256 test vectors", () => {
  assert.equal(
    hashBytes("sha256", new Uint8Array(0)),
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  );
  assert.equal(
    hashBytes("sha256", text("abc")),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
  assert.equal(
    hashBytes("sha256", text("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
  );
});

Deno.test("hashBytes() agrees with @noble/hashes at every BLAKE3 chunk and block boundary", () => {
  const data = pseudoRandomBytes(70_000, 7);
  const lengths = [1, 63, 64, 65, 1023, 1024, 1025, 2047, 2048, 2049, 3072, 4097, 8192, 16385];
  lengths.push(31744, 65536, 65537, 70_000);
  for (const alg of ["blake3", "sha256"] as const) {
    for (const n of lengths) {
      const slice = data.subarray(0, n);
      assert.equal(hashBytes(alg, slice), reference[alg](slice), `${alg}, ${n} bytes`);
    }
  }
});

Deno.test("hashBytes() hashes a view, not its whole buffer", () => {
  const data = pseudoRandomBytes(5000, 3);
  const view = data.subarray(1000, 3000);
  for (const alg of ["blake3", "sha256"] as const) {
    assert.equal(hashBytes(alg, view), reference[alg](data.slice(1000, 3000)));
  }
});

Deno.test("createHasher() gives the one-shot digest however the input is split", () => {
  const data = pseudoRandomBytes(300_000, 11);
  let seed = 5;
  const nextSize = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % 20_000;
  };
  for (const alg of ["blake3", "sha256"] as const) {
    const expected = hashBytes(alg, data);
    for (let round = 0; round < 5; round++) {
      const hasher = createHasher(alg);
      assert.equal(hasher.algorithm, alg);
      for (let at = 0; at < data.length;) {
        const n = Math.min(data.length - at, nextSize());
        hasher.update(data.subarray(at, at + n));
        at += n;
      }
      assert.equal(hasher.digestHex(), expected);
    }
  }
});

Deno.test("createHasher() keeps interleaved hashers and one-shot calls independent", () => {
  const a = pseudoRandomBytes(100_000, 1);
  const b = pseudoRandomBytes(90_000, 2);
  for (const alg of ["blake3", "sha256"] as const) {
    const ha = createHasher(alg);
    const hb = createHasher(alg);
    const hc = createHasher(alg); // abandoned half way: must not disturb the others
    for (let i = 0; i < 10; i++) {
      ha.update(a.subarray(i * 10_000, (i + 1) * 10_000));
      hc.update(a.subarray(0, 100));
      assert.equal(hashBytes(alg, text("abc")), reference[alg](text("abc")));
      hb.update(b.subarray(i * 9_000, (i + 1) * 9_000));
    }
    assert.equal(hb.digestHex(), reference[alg](b));
    assert.equal(ha.digestHex(), reference[alg](a));
  }
});

Deno.test("createHasher() of nothing gives the digest of the empty input", () => {
  for (const alg of ["blake3", "sha256"] as const) {
    assert.equal(createHasher(alg).digestHex(), hashBytes(alg, new Uint8Array(0)));
  }
});

Deno.test("createHasher() refuses use after digestHex()", () => {
  for (const alg of ["blake3", "sha256"] as const) {
    const h = createHasher(alg);
    h.digestHex();
    assert.throws(() => h.update(text("x")), InvalidArgumentError);
    assert.throws(() => h.digestHex(), InvalidArgumentError);
  }
});

Deno.test("hashBytes() and createHasher() refuse an unknown algorithm", () => {
  assert.throws(() => hashBytes("md5" as HashAlgorithm, text("x")), InvalidArgumentError);
  assert.throws(() => createHasher("md5" as HashAlgorithm), InvalidArgumentError);
  assert.equal(isHashAlgorithm("blake3"), true);
  assert.equal(isHashAlgorithm("BLAKE3"), false);
  assert.equal(isHashAlgorithm(undefined), false);
});

Deno.test("isBlobId() accepts exactly 64 lower-case hex characters", () => {
  assert.equal(isBlobId(hashBytes("blake3", text("x"))), true);
  assert.equal(isBlobId("0".repeat(64)), true);
  assert.equal(isBlobId("0".repeat(63)), false);
  assert.equal(isBlobId("0".repeat(65)), false);
  assert.equal(isBlobId("A".repeat(64)), false);
  assert.equal(isBlobId("g".repeat(64)), false);
  assert.equal(isBlobId("0".repeat(63) + "\n"), false);
  assert.equal(isBlobId(42), false);
});

Deno.test("blobIdToBytes() and blobIdFromBytes() round-trip and refuse malformed input", () => {
  const id = hashBytes("sha256", text("abc"));
  const raw = blobIdToBytes(id);
  assert.equal(raw.length, 32);
  assert.equal(blobIdFromBytes(raw), id);
  assert.throws(() => blobIdToBytes("xyz"), InvalidArgumentError);
  assert.throws(() => blobIdFromBytes(new Uint8Array(31)), InvalidArgumentError);
});
