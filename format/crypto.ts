/**
 * Encryption of a store (docs/FORMAT.md §9): the data key, the key slots
 * that wrap it under passphrases, the keys derived from it, and sealing.
 *
 * - A store's **data key** is 32 random bytes, made at init and never
 *   changed. From it, HKDF-SHA256 (salt: the store id's 16 bytes) derives the
 *   **seal key** (AES-256-GCM), the **id key** (keyed blob ids) and the
 *   **key check** (recorded in the descriptor, so that a slot wrapping any
 *   other key is refused).
 * - A **key slot** wraps the data key with AES-256-GCM under a key derived
 *   from a passphrase with Argon2id (`hash-wasm`). Slots are separate small
 *   objects, so a passphrase is added, changed or removed without touching
 *   data.
 * - **Sealing** is AES-256-GCM with a random 96-bit nonce:
 *   `nonce (12) ‖ ciphertext ‖ tag (16)`, with associated data that names
 *   what the bytes are (a blob's id, a pack's trailer, a snapshot's header),
 *   so sealed bytes moved to another place fail to open.
 *
 * Sealing uses `node:crypto` (synchronous, so codecs stay synchronous) and, for blob
 * bodies on the write path, WebCrypto (asynchronous: it runs beside the
 * hashing and compression of the next blob). Both produce the same bytes.
 *
 * @example A store's keys, a sealed blob, and a slot
 * ```ts
 * import assert from "node:assert/strict";
 * import { createKeySlot, openDataKey, StoreKeys } from "./crypto.ts";
 *
 * const storeId = "0123456789abcdef0123456789abcdef";
 * const dataKey = crypto.getRandomValues(new Uint8Array(32));
 * const keys = await StoreKeys.fromDataKey(dataKey, storeId, "blake3");
 * const raw = new TextEncoder().encode("secret");
 * const id = keys.ids.bytes(raw);
 * const sealed = keys.seal(Uint8Array.fromHex(id), raw);
 * assert.deepEqual(keys.open(Uint8Array.fromHex(id), sealed), raw);
 *
 * const kdf = { memoryKiB: 1024, iterations: 1, parallelism: 1 };
 * const slot = await createKeySlot(dataKey, storeId, "correct horse", { kdf });
 * const back = await openDataKey([slot], storeId, keys.keyCheck, "correct horse");
 * assert.deepEqual(back, dataKey);
 * ```
 *
 * @module
 */

import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from "node:crypto";
import { argon2id, createBLAKE3, type IHasher } from "hash-wasm";
import {
  CapsaError,
  type CapsaErrorOptions,
  CorruptObjectError,
  InvalidArgumentError,
} from "../errors.ts";
import { keySlotKeys } from "../layout.ts";
import { canonicalChecksum, isStoreId, isTimestamp } from "./fields.ts";
import type { HashAlgorithm, Hasher } from "./hashing.ts";

/** The one cipher: AES-256-GCM. */
export const CIPHER = "aes-256-gcm";
/** Bytes of a nonce. */
export const NONCE_BYTES = 12;
/** Bytes of a GCM tag. */
export const TAG_BYTES = 16;
/** What sealing adds to a plaintext: nonce and tag. */
export const SEAL_OVERHEAD = NONCE_BYTES + TAG_BYTES;
/** Bytes of a data key. */
export const DATA_KEY_BYTES = 32;

/** Argon2id cost parameters of a key slot. */
export interface KdfCost {
  /** Memory in KiB, at least `8 × parallelism`, at most 4 GiB. */
  readonly memoryKiB: number;
  /** Passes, 1 to 64. */
  readonly iterations: number;
  /** Lanes, 1 to 64. */
  readonly parallelism: number;
}

/** Argon2id parameters of a key slot, with its salt. */
export interface KdfParams extends KdfCost {
  /** Always `"argon2id"`. */
  readonly algorithm: "argon2id";
  /** The salt, standard base64 with padding, 16 to 64 bytes. */
  readonly salt: string;
}

/**
 * The default cost: 64 MiB, 3 passes, 1 lane (about half a second on a
 * server core, once per open).
 */
export const DEFAULT_KDF: KdfCost = Object.freeze({
  memoryKiB: 64 * 1024,
  iterations: 3,
  parallelism: 1,
});

/** A key slot: the data key wrapped under one passphrase (docs/FORMAT.md §9.3). */
export interface KeySlot {
  /** Always `"capsa-key-slot"`. */
  readonly format: "capsa-key-slot";
  /** Always 1. */
  readonly version: 1;
  /** The store it belongs to. */
  readonly storeId: string;
  /** 16 lower-case hex digits, random. */
  readonly slotId: string;
  /** When it was made (ISO 8601 UTC with milliseconds). */
  readonly createdAt: string;
  /** A name for people (`capsa key list`), at most 64 printable characters; may be empty. */
  readonly label: string;
  /** How the wrapping key is derived from the passphrase. */
  readonly kdf: KdfParams;
  /** Base64 of nonce (12) ‖ sealed data key (32) ‖ tag (16). */
  readonly wrappedKey: string;
}

/**
 * The passphrase opens no key slot of the store.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { WrongPassphraseError } from "@capsa/capsa";
 * assert.equal(new WrongPassphraseError(2).code, "wrong_passphrase");
 * ```
 */
export class WrongPassphraseError extends CapsaError {
  /**
   * Creates the error.
   * @param slots How many slots were tried.
   * @param options Cause.
   */
  constructor(slots: number, options: CapsaErrorOptions = {}) {
    super(
      "wrong_passphrase",
      `the passphrase opens none of the store's ${slots} key slot${slots === 1 ? "" : "s"}: ` +
        "check CAPSA_PASSPHRASE or the --passphrase-file",
      false,
      options,
    );
  }
}

/**
 * The store is encrypted and no passphrase was given.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { PassphraseRequiredError } from "@capsa/capsa";
 * assert.equal(new PassphraseRequiredError().code, "passphrase_required");
 * ```
 */
export class PassphraseRequiredError extends CapsaError {
  /**
   * Creates the error.
   * @param detail What needs it (default: opening the store).
   */
  constructor(detail = "this store is encrypted") {
    super(
      "passphrase_required",
      `${detail}: give its passphrase in CAPSA_PASSPHRASE, with --passphrase-file FILE, ` +
        "or at the prompt on a terminal (library: the `passphrase` option)",
      false,
    );
  }
}

const enc = new TextEncoder();

/** A passphrase's bytes: UTF-8 of its NFC form, so that one typed on another system matches. */
export function passphraseBytes(passphrase: string): Uint8Array {
  return enc.encode(passphrase.normalize("NFC"));
}

function b64(bytes: Uint8Array): string {
  return bytes.toBase64();
}

function fromB64(text: string): Uint8Array | undefined {
  try {
    return Uint8Array.fromBase64(text);
  } catch {
    return undefined;
  }
}

function storeIdBytes(storeId: string): Uint8Array {
  return Uint8Array.fromHex(storeId);
}

function hkdf(dataKey: Uint8Array, storeId: string, info: string): Uint8Array {
  return new Uint8Array(hkdfSync("sha256", dataKey, storeIdBytes(storeId), info, 32));
}

/** AES-256-GCM, synchronous: `nonce ‖ ciphertext ‖ tag`. */
function gcmSeal(key: Uint8Array, aad: Uint8Array, plain: Uint8Array, nonce: Uint8Array) {
  const c = createCipheriv("aes-256-gcm", key, nonce);
  c.setAAD(aad);
  const out = new Uint8Array(NONCE_BYTES + plain.length + TAG_BYTES);
  out.set(nonce, 0);
  const body = c.update(plain);
  out.set(body, NONCE_BYTES);
  const rest = c.final();
  out.set(rest, NONCE_BYTES + body.length);
  out.set(c.getAuthTag(), NONCE_BYTES + plain.length);
  return out;
}

/** Opens `nonce ‖ ciphertext ‖ tag`; `undefined` when it fails authentication. */
function gcmOpen(key: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Uint8Array | undefined {
  if (sealed.length < SEAL_OVERHEAD) return undefined;
  try {
    const d = createDecipheriv("aes-256-gcm", key, sealed.subarray(0, NONCE_BYTES));
    d.setAAD(aad);
    d.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
    const body = d.update(sealed.subarray(NONCE_BYTES, sealed.length - TAG_BYTES));
    const rest = d.final();
    if (rest.length === 0) return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
    const out = new Uint8Array(body.length + rest.length);
    out.set(body, 0);
    out.set(rest, body.length);
    return out;
  } catch {
    return undefined;
  }
}

/** A keyed one-shot and incremental hash of blob ids. */
export interface IdHash {
  /** The store's algorithm. */
  readonly algorithm: HashAlgorithm;
  /** Whether ids are keyed (an encrypted store). */
  readonly keyed: boolean;
  /** The id of bytes. */
  bytes(bytes: Uint8Array): string;
  /** An incremental hasher of the same function. */
  hasher(): Hasher;
}

/** Keyed BLAKE3 hashers share one instance per key, saving and loading state as they switch. */
class KeyedBlake3 implements Hasher {
  readonly algorithm: HashAlgorithm = "blake3";
  readonly #shared: { instance: IHasher; owner: KeyedBlake3 | undefined };
  #saved: Uint8Array | undefined;
  #fresh = true;
  #finished = false;

  constructor(shared: { instance: IHasher; owner: KeyedBlake3 | undefined }) {
    this.#shared = shared;
  }

  #acquire(): IHasher {
    if (this.#finished) throw new Error("hasher already finished");
    const s = this.#shared;
    if (s.owner !== this) {
      if (s.owner !== undefined) s.owner.#saved = s.instance.save();
      if (this.#fresh) s.instance.init();
      else s.instance.load(this.#saved!);
      this.#saved = undefined;
      s.owner = this;
    }
    this.#fresh = false;
    return s.instance;
  }

  update(bytes: Uint8Array): this {
    const h = this.#acquire();
    if (bytes.length > 0) h.update(bytes);
    return this;
  }

  digestHex(): string {
    const h = this.#acquire();
    this.#finished = true;
    this.#shared.owner = undefined;
    return h.digest("hex");
  }
}

class Hmac256 implements Hasher {
  readonly algorithm: HashAlgorithm = "sha256";
  #h: ReturnType<typeof createHmac> | undefined;
  constructor(key: Uint8Array) {
    this.#h = createHmac("sha256", key);
  }
  update(bytes: Uint8Array): this {
    if (this.#h === undefined) throw new Error("hasher already finished");
    this.#h.update(bytes);
    return this;
  }
  digestHex(): string {
    if (this.#h === undefined) throw new Error("hasher already finished");
    const hex = this.#h.digest("hex");
    this.#h = undefined;
    return hex;
  }
}

async function keyedIdHash(alg: HashAlgorithm, key: Uint8Array): Promise<IdHash> {
  if (alg === "sha256") {
    return {
      algorithm: alg,
      keyed: true,
      bytes: (b) => createHmac("sha256", key).update(b).digest("hex"),
      hasher: () => new Hmac256(key),
    };
  }
  const oneShot = await createBLAKE3(256, key);
  const shared = { instance: await createBLAKE3(256, key), owner: undefined };
  return {
    algorithm: alg,
    keyed: true,
    bytes: (b) => {
      oneShot.init();
      oneShot.update(b);
      return oneShot.digest("hex");
    },
    hasher: () => new KeyedBlake3(shared),
  };
}

/** What a chunk-list digest hashes first (docs/FORMAT.md §9.2): it is never a body's own bytes. */
export const CHUNK_LIST_PREFIX: Uint8Array = new TextEncoder().encode("capsa chunk-list v1\0");

/**
 * The digest of a chunked body in an encrypted store: the keyed hash of
 * {@linkcode CHUNK_LIST_PREFIX} then each chunk id's 32 bytes, in order. The
 * ids already cover every byte, so the body is hashed once, not twice.
 * Feed it the chunk ids with `update(Uint8Array.fromHex(id))`.
 * @param ids The store's keyed id hash.
 * @returns A hasher, the prefix already fed.
 */
export function chunkListHasher(ids: IdHash): Hasher {
  return ids.hasher().update(CHUNK_LIST_PREFIX);
}

/** Associated data of each kind of sealed object (docs/FORMAT.md §9.4). */
export const AAD = Object.freeze({
  /** A blob (in a pack or loose): its 32 id bytes. */
  blob: (id: string): Uint8Array => Uint8Array.fromHex(id),
  /** A pack's TOC: the first 32 bytes of its trailer. */
  toc: (trailerPrefix: Uint8Array): Uint8Array =>
    concatBytes(enc.encode("capsa toc\0"), trailerPrefix),
  /** An index snapshot or host cache body: its header's JSON bytes. */
  snapshot: (header: Uint8Array): Uint8Array => concatBytes(enc.encode("capsa snapshot\0"), header),
  /** A manifest log entry: its pack id. */
  manifestLog: (packId: string): Uint8Array => enc.encode(`capsa manifest-log\0${packId}`),
  /** A key slot's wrapped key: the store id and the slot id. */
  slot: (storeId: string, slotId: string): Uint8Array =>
    enc.encode(`capsa key-slot\0${storeId}\0${slotId}`),
});

function concatBytes(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/**
 * The keys of an open encrypted store, derived from its data key. Hand it to
 * every codec that reads or writes the store's sealed objects.
 */
export class StoreKeys {
  readonly #dataKey: Uint8Array;
  readonly #storeId: string;
  readonly #seal: Uint8Array;
  #webKey: Promise<CryptoKey> | undefined;
  /** The key check (base64 of 32 bytes) that the descriptor records. */
  readonly keyCheck: string;
  /** The keyed id hash of blobs and bodies. */
  readonly ids: IdHash;

  private constructor(
    dataKey: Uint8Array,
    storeId: string,
    seal: Uint8Array,
    keyCheck: string,
    ids: IdHash,
  ) {
    this.#dataKey = dataKey;
    this.#storeId = storeId;
    this.#seal = seal;
    this.keyCheck = keyCheck;
    this.ids = ids;
  }

  /**
   * Derives a store's keys from its data key.
   * @param dataKey The 32-byte data key.
   * @param storeId The store id.
   * @param hash The store's hash algorithm (keyed BLAKE3, or HMAC-SHA256).
   * @returns The keys.
   */
  static async fromDataKey(
    dataKey: Uint8Array,
    storeId: string,
    hash: HashAlgorithm,
  ): Promise<StoreKeys> {
    if (dataKey.length !== DATA_KEY_BYTES) throw new Error("a data key is 32 bytes");
    return new StoreKeys(
      dataKey.slice(),
      storeId,
      hkdf(dataKey, storeId, "capsa seal v1"),
      keyCheckOf(dataKey, storeId),
      await keyedIdHash(hash, hkdf(dataKey, storeId, "capsa blob-id v1")),
    );
  }

  /**
   * Wraps this store's data key under another passphrase: a new key slot.
   * @param passphrase The passphrase. @param options Cost, label, clock.
   * @returns The slot (not yet written).
   */
  createSlot(passphrase: string, options: CreateKeySlotOptions = {}): Promise<KeySlot> {
    return createKeySlot(this.#dataKey, this.#storeId, passphrase, options);
  }

  /**
   * Seals bytes (synchronous).
   * @param aad What they are ({@linkcode AAD}).
   * @param plain The plaintext.
   * @param nonce A 12-byte nonce; random by default (given only by test vectors).
   * @returns `nonce ‖ ciphertext ‖ tag`.
   */
  seal(aad: Uint8Array, plain: Uint8Array, nonce?: Uint8Array): Uint8Array {
    return gcmSeal(this.#seal, aad, plain, nonce ?? randomBytes(NONCE_BYTES));
  }

  /**
   * Opens sealed bytes (synchronous).
   * @param aad What they must be.
   * @param sealed `nonce ‖ ciphertext ‖ tag`.
   * @returns The plaintext, or `undefined` when they fail authentication.
   */
  open(aad: Uint8Array, sealed: Uint8Array): Uint8Array | undefined {
    return gcmOpen(this.#seal, aad, sealed);
  }

  #web(): Promise<CryptoKey> {
    this.#webKey ??= crypto.subtle.importKey("raw", this.#seal as BufferSource, "AES-GCM", false, [
      "encrypt",
      "decrypt",
    ]);
    return this.#webKey;
  }

  /**
   * Seals bytes off the main thread (WebCrypto); same output as {@linkcode StoreKeys.seal}.
   * @param aad What they are. @param plain The plaintext.
   * @returns `nonce ‖ ciphertext ‖ tag`.
   */
  async sealAsync(aad: Uint8Array, plain: Uint8Array): Promise<Uint8Array> {
    const nonce = crypto.getRandomValues(new Uint8Array(NONCE_BYTES));
    const body = new Uint8Array(
      await crypto.subtle.encrypt(
        { name: "AES-GCM", iv: nonce, additionalData: aad as BufferSource },
        await this.#web(),
        plain as BufferSource,
      ),
    );
    const out = new Uint8Array(NONCE_BYTES + body.length);
    out.set(nonce, 0);
    out.set(body, NONCE_BYTES);
    return out;
  }

  /**
   * Opens sealed bytes off the main thread (WebCrypto).
   * @param aad What they must be. @param sealed `nonce ‖ ciphertext ‖ tag`.
   * @returns The plaintext, or `undefined` when they fail authentication.
   */
  async openAsync(aad: Uint8Array, sealed: Uint8Array): Promise<Uint8Array | undefined> {
    if (sealed.length < SEAL_OVERHEAD) return undefined;
    try {
      return new Uint8Array(
        await crypto.subtle.decrypt(
          {
            name: "AES-GCM",
            iv: sealed.subarray(0, NONCE_BYTES) as BufferSource,
            additionalData: aad as BufferSource,
          },
          await this.#web(),
          sealed.subarray(NONCE_BYTES) as BufferSource,
        ),
      );
    } catch {
      return undefined;
    }
  }
}

/**
 * The key check of a data key: what the descriptor records.
 * @param dataKey The data key. @param storeId The store.
 * @returns Base64 of 32 bytes.
 */
export function keyCheckOf(dataKey: Uint8Array, storeId: string): string {
  return b64(hkdf(dataKey, storeId, "capsa key-check v1"));
}

/**
 * Derives the key that wraps the data key in a slot (Argon2id, 32 bytes).
 * @param passphrase The passphrase. @param kdf The slot's parameters.
 * @returns The wrapping key.
 */
export async function deriveWrappingKey(passphrase: string, kdf: KdfParams): Promise<Uint8Array> {
  return await argon2id({
    password: passphraseBytes(passphrase),
    salt: Uint8Array.fromBase64(kdf.salt),
    parallelism: kdf.parallelism,
    iterations: kdf.iterations,
    memorySize: kdf.memoryKiB,
    hashLength: 32,
    outputType: "binary",
  });
}

/** Options of {@linkcode createKeySlot}. */
export interface CreateKeySlotOptions {
  /** Argon2id cost (default {@linkcode DEFAULT_KDF}). */
  kdf?: KdfCost;
  /** A label for people. */
  label?: string;
  /** The clock of `createdAt`. */
  clock?: () => number;
  /** Fixed salt, slot id and nonce: for test vectors only. */
  fixed?: { salt: Uint8Array; slotId: string; nonce: Uint8Array };
}

/**
 * Checks Argon2id cost parameters.
 * @param cost The cost.
 * @returns A problem, or `undefined`.
 */
export function kdfCostProblem(cost: KdfCost): string | undefined {
  const int = (v: unknown, lo: number, hi: number) =>
    typeof v === "number" && Number.isSafeInteger(v) && v >= lo && v <= hi;
  if (!int(cost.parallelism, 1, 64)) return "parallelism must be an integer from 1 to 64";
  if (!int(cost.iterations, 1, 64)) return "iterations must be an integer from 1 to 64";
  if (!int(cost.memoryKiB, 8 * cost.parallelism, 4 * 1024 * 1024)) {
    return "memoryKiB must be an integer from 8 × parallelism to 4194304";
  }
  return undefined;
}

const LABEL = /^[\x20-\x7e]{0,64}$/;

/**
 * Makes a key slot wrapping `dataKey` under `passphrase`.
 * @param dataKey The data key. @param storeId The store.
 * @param passphrase The passphrase (not empty).
 * @param options Cost, label, clock.
 * @returns The slot.
 */
export async function createKeySlot(
  dataKey: Uint8Array,
  storeId: string,
  passphrase: string,
  options: CreateKeySlotOptions = {},
): Promise<KeySlot> {
  if (passphrase.length === 0) {
    throw new InvalidArgumentError("a passphrase must not be empty");
  }
  const cost = options.kdf ?? DEFAULT_KDF;
  const problem = kdfCostProblem(cost);
  if (problem !== undefined) throw new InvalidArgumentError(`kdf: ${problem}`);
  const label = options.label ?? "";
  if (!LABEL.test(label)) {
    throw new InvalidArgumentError("a key label is at most 64 printable ASCII characters");
  }
  const kdf: KdfParams = {
    algorithm: "argon2id",
    memoryKiB: cost.memoryKiB,
    iterations: cost.iterations,
    parallelism: cost.parallelism,
    salt: b64(options.fixed?.salt ?? randomBytes(16)),
  };
  const slotId = options.fixed?.slotId ?? randomBytes(8).toHex();
  const kek = await deriveWrappingKey(passphrase, kdf);
  const wrapped = gcmSeal(
    kek,
    AAD.slot(storeId, slotId),
    dataKey,
    options.fixed?.nonce ?? randomBytes(NONCE_BYTES),
  );
  return {
    format: "capsa-key-slot",
    version: 1,
    storeId,
    slotId,
    createdAt: new Date((options.clock ?? Date.now)()).toISOString(),
    label,
    kdf,
    wrappedKey: b64(wrapped),
  };
}

/**
 * Unwraps the data key from one slot.
 * @returns The data key, or `undefined` when the passphrase does not open it.
 */
export async function unwrapKeySlot(
  slot: KeySlot,
  passphrase: string,
): Promise<Uint8Array | undefined> {
  const kek = await deriveWrappingKey(passphrase, slot.kdf);
  return gcmOpen(kek, AAD.slot(slot.storeId, slot.slotId), Uint8Array.fromBase64(slot.wrappedKey));
}

/**
 * Opens the data key with a passphrase: tries each slot, and checks the key
 * against the descriptor's key check.
 * @param slots The store's slots. @param storeId The store.
 * @param keyCheck The descriptor's key check. @param passphrase The passphrase.
 * @returns The data key, and the slot that opened it.
 * @throws {WrongPassphraseError} when no slot opens.
 * @throws {CorruptObjectError} when a slot opens to a key that is not the store's.
 */
export async function openDataKey(
  slots: readonly KeySlot[],
  storeId: string,
  keyCheck: string,
  passphrase: string,
): Promise<Uint8Array> {
  return (await openDataKeySlot(slots, storeId, keyCheck, passphrase)).dataKey;
}

/** {@linkcode openDataKey}, also naming the slot that opened. */
export async function openDataKeySlot(
  slots: readonly KeySlot[],
  storeId: string,
  keyCheck: string,
  passphrase: string,
): Promise<{ dataKey: Uint8Array; slot: KeySlot }> {
  for (const slot of slots) {
    const dataKey = await unwrapKeySlot(slot, passphrase);
    if (dataKey === undefined) continue;
    if (dataKey.length !== DATA_KEY_BYTES || keyCheckOf(dataKey, storeId) !== keyCheck) {
      throw new CorruptObjectError(
        slotKeyName(slot.slotId),
        "the slot opens, but to a key that is not this store's (its key check differs)",
      );
    }
    return { dataKey, slot };
  }
  throw new WrongPassphraseError(slots.length);
}

/** How slots are named in messages: their Location key (docs/FORMAT.md §1). */
export function slotKeyName(slotId: string): string {
  return keySlotKeys(slotId)[0];
}

const SLOT_FIELDS = [
  "format",
  "version",
  "storeId",
  "slotId",
  "createdAt",
  "label",
  "kdf",
  "wrappedKey",
  "checksum",
];
const KDF_FIELDS = ["algorithm", "memoryKiB", "iterations", "parallelism", "salt"];
const SLOT_ID = /^[0-9a-f]{16}$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Encodes a slot as canonical JSON with its checksum.
 * @param slot The slot.
 * @returns UTF-8 JSON.
 */
export function encodeKeySlot(slot: KeySlot): Uint8Array {
  const body = { ...slot, kdf: { ...slot.kdf } };
  return enc.encode(JSON.stringify({ ...body, checksum: canonicalChecksum(body) }, null, 2) + "\n");
}

/**
 * The problem with a parsed slot, or `undefined` (also used for the kit's slot lines).
 * @param v A parsed value. @param storeId The store it must belong to.
 * @returns The problem.
 */
export function keySlotProblem(v: unknown, storeId: string): string | undefined {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return "not a JSON object";
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o).sort();
  if (keys.join() !== [...SLOT_FIELDS].sort().join()) {
    return `fields must be exactly ${SLOT_FIELDS.join(", ")}`;
  }
  if (o.format !== "capsa-key-slot") return "not a key slot";
  if (o.version !== 1) return `unknown key slot version ${String(o.version)}`;
  if (!isStoreId(o.storeId)) return "storeId is malformed";
  if (o.storeId !== storeId) return `belongs to store ${String(o.storeId)}, expected ${storeId}`;
  if (typeof o.slotId !== "string" || !SLOT_ID.test(o.slotId)) return "slotId is malformed";
  if (!isTimestamp(o.createdAt)) return "createdAt is malformed";
  if (typeof o.label !== "string" || !LABEL.test(o.label)) return "label is malformed";
  const kdf = o.kdf as Record<string, unknown>;
  if (
    typeof kdf !== "object" || kdf === null ||
    Object.keys(kdf).sort().join() !== [...KDF_FIELDS].sort().join()
  ) {
    return "kdf is malformed";
  }
  if (kdf.algorithm !== "argon2id") return "kdf.algorithm must be argon2id";
  const cost = kdfCostProblem(kdf as unknown as KdfCost);
  if (cost !== undefined) return `kdf: ${cost}`;
  const salt = typeof kdf.salt === "string" && BASE64.test(kdf.salt)
    ? fromB64(kdf.salt)
    : undefined;
  if (salt === undefined || salt.length < 16 || salt.length > 64) return "kdf.salt is malformed";
  const wrapped = typeof o.wrappedKey === "string" && BASE64.test(o.wrappedKey)
    ? fromB64(o.wrappedKey)
    : undefined;
  if (wrapped === undefined || wrapped.length !== SEAL_OVERHEAD + DATA_KEY_BYTES) {
    return "wrappedKey must be base64 of 60 bytes";
  }
  const { checksum, ...body } = o;
  if (checksum !== canonicalChecksum(body)) return "checksum mismatch";
  return undefined;
}

/**
 * Decodes and checks a slot object.
 * @param key Its key, for errors. @param bytes Its bytes. @param storeId The store.
 * @returns The slot.
 * @throws {CorruptObjectError} when anything is wrong.
 */
export function decodeKeySlot(key: string, bytes: Uint8Array, storeId: string): KeySlot {
  if (bytes.length > 4096) {
    throw new CorruptObjectError(key, `${bytes.length} bytes is too large for a key slot`);
  }
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (cause) {
    throw new CorruptObjectError(key, "not valid UTF-8 JSON", { cause });
  }
  const problem = keySlotProblem(v, storeId);
  if (problem !== undefined) throw new CorruptObjectError(key, problem);
  const { checksum: _, ...slot } = v as KeySlot & { checksum: string };
  return slot;
}

/**
 * A fresh random data key.
 * @returns 32 bytes.
 */
export function newDataKey(): Uint8Array {
  return new Uint8Array(randomBytes(DATA_KEY_BYTES));
}
