/**
 * Content hashing: the digests that name blobs and check whole bodies.
 *
 * A store hashes with one algorithm, chosen at init and recorded in its
 * descriptor: BLAKE3 with a 256-bit output (the default) or SHA-256. A digest
 * is written as 64 lower-case hexadecimal characters; a blob's id is the
 * digest of its (uncompressed, unencrypted) bytes.
 *
 * Implementations, picked for speed on a plain x86-64 core (see
 * `bench/chunk_hash_bench.ts`):
 *
 * - BLAKE3: `hash-wasm`'s WebAssembly build (about 750 MB/s, ten times the
 *   pure-JavaScript `@noble/hashes`). Its WebAssembly instances are created
 *   once, when this module loads.
 * - SHA-256: `node:crypto`, which Deno implements natively (about 1.3 GB/s).
 *
 * Both are checked against published test vectors and against
 * `@noble/hashes` in `hashing_test.ts`.
 *
 * @example Naming a blob, and hashing a stream piece by piece
 * ```ts
 * import assert from "node:assert/strict";
 * import { createHasher, hashBytes, isBlobId } from "./hashing.ts";
 *
 * const body = new TextEncoder().encode("hello");
 * const id = hashBytes("blake3", body);
 * assert.deepEqual(isBlobId(id), true);
 *
 * const hasher = createHasher("blake3");
 * hasher.update(body.subarray(0, 2)).update(body.subarray(2));
 * assert.deepEqual(hasher.digestHex() === id, true);
 * ```
 *
 * @module
 */

import { createHash } from "node:crypto";
import { createBLAKE3, type IHasher } from "hash-wasm";
import { InvalidArgumentError } from "../errors.ts";

/** A hash algorithm a store can use. `"blake3"` is BLAKE3 with a 256-bit output. */
export type HashAlgorithm = "blake3" | "sha256";

/** The algorithm of a new store unless its init options say otherwise. */
export const DEFAULT_HASH_ALGORITHM: HashAlgorithm = "blake3";

/** Every supported algorithm, in a stable order. */
export const HASH_ALGORITHMS: readonly HashAlgorithm[] = Object.freeze(["blake3", "sha256"]);

/** The length of a digest in bytes (both algorithms produce 32). */
export const DIGEST_BYTES = 32;

/** The length of a digest written as hexadecimal (a blob id): 64 characters. */
export const DIGEST_HEX_LENGTH = 64;

// One instance for one-shot hashing, one shared by every incremental hasher
// (see Blake3Hasher). Created here so that hashing itself stays synchronous.
const blake3OneShot: IHasher = await createBLAKE3(256);
const blake3Incremental: IHasher = await createBLAKE3(256);

/**
 * Tells whether a value names a supported hash algorithm.
 *
 * @param value Any value.
 * @returns `true` for `"blake3"` and `"sha256"`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isHashAlgorithm } from "./hashing.ts";
 * assert.deepEqual([isHashAlgorithm("sha256"), isHashAlgorithm("md5")], [true, false]);
 * ```
 */
export function isHashAlgorithm(value: unknown): value is HashAlgorithm {
  return value === "blake3" || value === "sha256";
}

function checkAlgorithm(alg: HashAlgorithm): void {
  if (!isHashAlgorithm(alg)) {
    throw new InvalidArgumentError(
      `unknown hash algorithm ${JSON.stringify(alg)}: expected "blake3" or "sha256"`,
    );
  }
}

/**
 * Hashes bytes in one call.
 *
 * @param alg The algorithm.
 * @param bytes The bytes to hash.
 * @returns The digest as 64 lower-case hexadecimal characters.
 * @throws {InvalidArgumentError} for an unknown algorithm.
 *
 * @example Published test vectors
 * ```ts
 * import { hashBytes } from "./hashing.ts";
 * console.log(hashBytes("blake3", new Uint8Array(0)));
 * // "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
 * console.log(hashBytes("sha256", new TextEncoder().encode("abc")));
 * // "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
 * ```
 */
export function hashBytes(alg: HashAlgorithm, bytes: Uint8Array): string {
  if (alg === "blake3") {
    blake3OneShot.init();
    blake3OneShot.update(bytes);
    return blake3OneShot.digest("hex");
  }
  checkAlgorithm(alg);
  return createHash("sha256").update(bytes).digest("hex");
}

/**
 * An incremental hasher: feed it a body piece by piece, then read the digest
 * once. Get one from {@linkcode createHasher}.
 */
export interface Hasher {
  /** The algorithm this hasher computes. */
  readonly algorithm: HashAlgorithm;
  /**
   * Adds bytes to the hashed input.
   * @param bytes The next piece of input (it may be reused by the caller afterwards).
   * @returns This hasher, for chaining.
   * @throws {InvalidArgumentError} after {@linkcode Hasher.digestHex} was called.
   */
  update(bytes: Uint8Array): this;
  /**
   * Finishes the digest. The hasher cannot be used afterwards.
   * @returns The digest of everything passed to `update`, as 64 lower-case hex characters.
   * @throws {InvalidArgumentError} when called twice.
   */
  digestHex(): string;
}

function finishedError(): InvalidArgumentError {
  return new InvalidArgumentError("hasher already finished: digestHex() was called");
}

/**
 * BLAKE3 hashers share one WebAssembly instance (creating one is asynchronous,
 * and hashing must not be). The instance holds the state of its current owner;
 * when another hasher needs it, the owner's state is saved (about 2 KB, a few
 * microseconds) and the newcomer's loaded. One hasher used alone never pays
 * for a switch.
 */
class Blake3Hasher implements Hasher {
  static #owner: Blake3Hasher | undefined;
  readonly algorithm: HashAlgorithm = "blake3";
  #saved: Uint8Array | undefined;
  #finished = false;

  #acquire(): void {
    if (this.#finished) throw finishedError();
    const owner = Blake3Hasher.#owner;
    if (owner === this) return;
    if (owner !== undefined) owner.#saved = blake3Incremental.save();
    if (this.#saved === undefined) blake3Incremental.init();
    else blake3Incremental.load(this.#saved);
    this.#saved = undefined;
    Blake3Hasher.#owner = this;
  }

  update(bytes: Uint8Array): this {
    this.#acquire();
    if (bytes.length > 0) blake3Incremental.update(bytes);
    return this;
  }

  digestHex(): string {
    this.#acquire();
    this.#finished = true;
    Blake3Hasher.#owner = undefined;
    return blake3Incremental.digest("hex");
  }
}

class Sha256Hasher implements Hasher {
  readonly algorithm: HashAlgorithm = "sha256";
  #hash: ReturnType<typeof createHash> | undefined = createHash("sha256");

  update(bytes: Uint8Array): this {
    if (this.#hash === undefined) throw finishedError();
    this.#hash.update(bytes);
    return this;
  }

  digestHex(): string {
    if (this.#hash === undefined) throw finishedError();
    const hex = this.#hash.digest("hex");
    this.#hash = undefined;
    return hex;
  }
}

/**
 * Creates an incremental hasher, for digests of bodies that arrive in pieces
 * (a streamed put's whole-body digest). Any number of hashers may be in use at
 * once; the result never depends on how the input was split.
 *
 * @param alg The algorithm.
 * @returns A fresh {@linkcode Hasher}.
 * @throws {InvalidArgumentError} for an unknown algorithm.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createHasher, hashBytes } from "./hashing.ts";
 * const h = createHasher("sha256");
 * h.update(new TextEncoder().encode("ab")).update(new TextEncoder().encode("c"));
 * assert.deepEqual(h.digestHex() === hashBytes("sha256", new TextEncoder().encode("abc")), true);
 * ```
 */
export function createHasher(alg: HashAlgorithm): Hasher {
  if (alg === "blake3") return new Blake3Hasher();
  checkAlgorithm(alg);
  return new Sha256Hasher();
}

const LOWER_HEX = new Uint8Array(65536);
for (const c of "0123456789abcdef") LOWER_HEX[c.charCodeAt(0)] = 1;

/**
 * Tells whether a string is a well-formed blob id (a digest): exactly 64
 * lower-case hexadecimal characters.
 *
 * @param value Any value.
 * @returns `true` when it is a blob id.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isBlobId } from "./hashing.ts";
 * assert.deepEqual([isBlobId("ab".repeat(32)), isBlobId("AB".repeat(32))], [true, false]);
 * ```
 */
export function isBlobId(value: unknown): value is string {
  if (typeof value !== "string" || value.length !== DIGEST_HEX_LENGTH) return false;
  // A table lookup per character: random hex defeats branch prediction, which
  // makes /^[0-9a-f]{64}$/ or range tests three times slower, and a TOC
  // checks tens of thousands of ids.
  for (let i = 0; i < DIGEST_HEX_LENGTH; i++) {
    if (LOWER_HEX[value.charCodeAt(i)] !== 1) return false;
  }
  return true;
}

/**
 * Converts a blob id to its 32 raw bytes (how binary formats store it).
 *
 * @param id A blob id.
 * @returns Its 32 bytes.
 * @throws {InvalidArgumentError} when `id` is not a blob id.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { blobIdToBytes } from "./hashing.ts";
 * assert.deepEqual(blobIdToBytes("00".repeat(31) + "ff")[31], 255);
 * ```
 */
export function blobIdToBytes(id: string): Uint8Array {
  if (!isBlobId(id)) {
    throw new InvalidArgumentError(`not a blob id: ${JSON.stringify(String(id).slice(0, 80))}`);
  }
  return Uint8Array.fromHex(id);
}

/**
 * Converts 32 raw digest bytes to a blob id.
 *
 * @param bytes Exactly {@linkcode DIGEST_BYTES} bytes.
 * @returns The blob id (64 lower-case hexadecimal characters).
 * @throws {InvalidArgumentError} when `bytes` is not 32 bytes long.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { blobIdFromBytes } from "./hashing.ts";
 * assert.deepEqual(blobIdFromBytes(new Uint8Array(32)) === "0".repeat(64), true);
 * ```
 */
export function blobIdFromBytes(bytes: Uint8Array): string {
  if (bytes.length !== DIGEST_BYTES) {
    throw new InvalidArgumentError(`a digest is ${DIGEST_BYTES} bytes, got ${bytes.length}`);
  }
  return bytes.toHex();
}
