/**
 * Known-answer vectors of docs/FORMAT.md §9 (key derivation, key wrapping,
 * blob sealing, keyed ids), each checked against a second implementation
 * where one is at hand (WebCrypto for HKDF, HMAC and AES-GCM; @noble/hashes
 * for keyed BLAKE3), and the refusals of every damaged input.
 */
import assert from "node:assert/strict";
import { blake3 } from "@noble/hashes/blake3";
import { CorruptObjectError } from "../errors.ts";
import {
  AAD,
  createKeySlot,
  decodeKeySlot,
  deriveWrappingKey,
  encodeKeySlot,
  keyCheckOf,
  newDataKey,
  openDataKey,
  StoreKeys,
  unwrapKeySlot,
  WrongPassphraseError,
} from "./crypto.ts";

const STORE = "0123456789abcdef0123456789abcdef";
const DATA_KEY = Uint8Array.from({ length: 32 }, (_, i) => i);
const RAW = new TextEncoder().encode("capsa stores blobs; ");
const NONCE = Uint8Array.from({ length: 12 }, (_, i) => 0xa0 + i);
const SALT = Uint8Array.from({ length: 16 }, (_, i) => 0x10 + i);
const PASS = "correct horse battery staple";
const CHEAP = { memoryKiB: 1024, iterations: 1, parallelism: 1 };

const VECTORS = {
  keyCheck: "j75yEn+QoeNXnGHGj0uZCm58QN+vS2PuIip6WAuSHOU=",
  idBlake3: "a123e05f23dbd7fd23360ab26a0f83bada8fe6599825a1242f4e16917a565b20",
  idSha256: "4c099500933816383d913eade6ae7495edef57d5044a64ac9951ebca71327b76",
  sealed:
    "a0a1a2a3a4a5a6a7a8a9aaab24366fcabdbabe795f537f83fea9e80ea005b3353d356535268890f9fbf6be74fcfc7a78",
  kek: "556f761d813beb4827e0d3b280d48a0ccd46c03b38de3861aa6740bbff0ecd43",
  wrappedKey: "oKGio6SlpqeoqaqrxBVEoNX2lLX1o+9uJMEhwlZ0gF+01XllJ9n+OxKQ86KMxB0/ZRA6O5dfefW9+v5h",
};

async function hkdfWeb(info: string): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey("raw", DATA_KEY, "HKDF", false, ["deriveBits"]);
  return new Uint8Array(
    await crypto.subtle.deriveBits(
      {
        name: "HKDF",
        hash: "SHA-256",
        salt: Uint8Array.fromHex(STORE),
        info: new TextEncoder().encode(info),
      },
      key,
      256,
    ),
  );
}

Deno.test("known answers: key check, keyed ids and a sealed blob, checked by a second implementation", async () => {
  const keys = await StoreKeys.fromDataKey(DATA_KEY, STORE, "blake3");
  const keys256 = await StoreKeys.fromDataKey(DATA_KEY, STORE, "sha256");
  assert.equal(keys.keyCheck, VECTORS.keyCheck);
  assert.equal(keyCheckOf(DATA_KEY, STORE), VECTORS.keyCheck);
  assert.equal((await hkdfWeb("capsa key-check v1")).toBase64(), VECTORS.keyCheck);

  const idKey = await hkdfWeb("capsa blob-id v1");
  assert.equal(keys.ids.bytes(RAW), VECTORS.idBlake3);
  assert.equal(blake3(RAW, { key: idKey }).toHex(), VECTORS.idBlake3);
  const hmacKey = await crypto.subtle.importKey(
    "raw",
    idKey as BufferSource,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", hmacKey, RAW));
  assert.equal(keys256.ids.bytes(RAW), VECTORS.idSha256);
  assert.equal(mac.toHex(), VECTORS.idSha256);
  // Incremental hashers give the one-shot ids, however the input is split, also interleaved.
  const a = keys.ids.hasher();
  const b = keys.ids.hasher();
  a.update(RAW.subarray(0, 5));
  b.update(RAW.subarray(0, 3));
  a.update(RAW.subarray(5));
  b.update(RAW.subarray(3));
  assert.deepEqual([a.digestHex(), b.digestHex()], [VECTORS.idBlake3, VECTORS.idBlake3]);

  const sealed = keys.seal(AAD.blob(VECTORS.idBlake3), RAW, NONCE);
  assert.equal(sealed.toHex(), VECTORS.sealed);
  const sealKey = await crypto.subtle.importKey(
    "raw",
    (await hkdfWeb("capsa seal v1")) as BufferSource,
    "AES-GCM",
    false,
    [
      "decrypt",
    ],
  );
  const plain = await crypto.subtle.decrypt(
    { name: "AES-GCM", iv: NONCE, additionalData: Uint8Array.fromHex(VECTORS.idBlake3) },
    sealKey,
    sealed.subarray(12) as BufferSource,
  );
  assert.deepEqual(new Uint8Array(plain), RAW);
  assert.deepEqual(keys.open(AAD.blob(VECTORS.idBlake3), sealed), RAW);
  assert.deepEqual(await keys.openAsync(AAD.blob(VECTORS.idBlake3), sealed), RAW);
});

Deno.test("known answers: Argon2id wrapping key and a key slot", async () => {
  const kdf = { algorithm: "argon2id" as const, ...CHEAP, salt: SALT.toBase64() };
  assert.equal((await deriveWrappingKey(PASS, kdf)).toHex(), VECTORS.kek);
  const slot = await createKeySlot(DATA_KEY, STORE, PASS, {
    kdf: CHEAP,
    fixed: { salt: SALT, slotId: "00112233445566ff", nonce: NONCE },
    clock: () => Date.UTC(2026, 10, 28),
  });
  assert.equal(slot.wrappedKey, VECTORS.wrappedKey);
  // The wrapping is AES-256-GCM under the Argon2id key, the store and slot ids as associated data.
  const kek = await crypto.subtle.importKey(
    "raw",
    Uint8Array.fromHex(VECTORS.kek) as BufferSource,
    "AES-GCM",
    false,
    [
      "decrypt",
    ],
  );
  const wrapped = Uint8Array.fromBase64(VECTORS.wrappedKey);
  const unwrapped = await crypto.subtle.decrypt(
    {
      name: "AES-GCM",
      iv: wrapped.subarray(0, 12),
      additionalData: new TextEncoder().encode(`capsa key-slot\0${STORE}\x0000112233445566ff`),
    },
    kek,
    wrapped.subarray(12),
  );
  assert.deepEqual(new Uint8Array(unwrapped), DATA_KEY);
  // A passphrase in another Unicode normalization form opens it too (NFC before hashing).
  const composed = await createKeySlot(DATA_KEY, STORE, "caf\u00e9", { kdf: CHEAP });
  assert.deepEqual(await unwrapKeySlot(composed, "cafe\u0301"), DATA_KEY);
});

Deno.test("openDataKey(): the right slot opens, a wrong passphrase is WrongPassphraseError, a foreign key is refused", async () => {
  const first = await createKeySlot(DATA_KEY, STORE, "one", { kdf: CHEAP });
  const second = await createKeySlot(DATA_KEY, STORE, "two", { kdf: CHEAP });
  const check = keyCheckOf(DATA_KEY, STORE);
  assert.deepEqual(await openDataKey([first, second], STORE, check, "two"), DATA_KEY);
  await assert.rejects(
    openDataKey([first, second], STORE, check, "three"),
    (e: unknown) => e instanceof WrongPassphraseError && e.code === "wrong_passphrase",
  );
  const foreign = await createKeySlot(newDataKey(), STORE, "one", { kdf: CHEAP });
  await assert.rejects(
    openDataKey([foreign], STORE, check, "one"),
    (e: unknown) => e instanceof CorruptObjectError && /not this store's/.test(e.reason),
  );
});

Deno.test("decodeKeySlot() refuses every damaged or foreign slot with a CorruptObjectError", async () => {
  const slot = await createKeySlot(DATA_KEY, STORE, PASS, { kdf: CHEAP, label: "ops" });
  const bytes = encodeKeySlot(slot);
  assert.deepEqual(decodeKeySlot("k", bytes, STORE), slot);
  const json = JSON.parse(new TextDecoder().decode(bytes));
  const cases: Array<[string, Uint8Array, RegExp]> = [
    ["truncated", bytes.subarray(0, 40), /JSON/],
    ["other store", bytes, /belongs to store/],
    ["edited label", enc({ ...json, label: "root" }), /checksum/],
    // The first character changed (to "A", or "B" when it is "A": the random key's may be).
    ["edited key", enc({ ...json, wrappedKey: edit(json.wrappedKey) }), /checksum/],
    ["short key", enc({ ...json, wrappedKey: "AAAA" }), /wrappedKey/],
    ["huge memory", enc({ ...json, kdf: { ...json.kdf, memoryKiB: 1 << 30 } }), /memoryKiB/],
    ["extra field", enc({ ...json, extra: 1 }), /fields/],
    ["oversize", new Uint8Array(5000), /too large/],
  ];
  for (const [what, b, reason] of cases) {
    assert.throws(
      () => decodeKeySlot("system.keys/x.json", b, what === "other store" ? "f".repeat(32) : STORE),
      (e: unknown) => e instanceof CorruptObjectError && reason.test(e.reason),
      what,
    );
  }
  function enc(v: unknown): Uint8Array {
    return new TextEncoder().encode(JSON.stringify(v));
  }
  function edit(b64: string): string {
    return (b64[0] === "A" ? "B" : "A") + b64.slice(1);
  }
});

Deno.test("sealed bytes open only whole, untouched and in their place", async () => {
  const keys = await StoreKeys.fromDataKey(newDataKey(), STORE, "blake3");
  const id = keys.ids.bytes(RAW);
  const sealed = await keys.sealAsync(AAD.blob(id), RAW);
  assert.deepEqual(keys.open(AAD.blob(id), sealed), RAW);
  for (let i = 0; i < sealed.length; i++) {
    const bad = sealed.slice();
    bad[i] = bad[i]! ^ 0x40;
    assert.equal(keys.open(AAD.blob(id), bad), undefined, `byte ${i}`);
  }
  assert.equal(keys.open(AAD.blob("0".repeat(64)), sealed), undefined);
  assert.equal(keys.open(AAD.blob(id), sealed.subarray(0, 27)), undefined);
  assert.equal(await keys.openAsync(AAD.blob(id), sealed.subarray(1)), undefined);
  const other = await StoreKeys.fromDataKey(newDataKey(), STORE, "blake3");
  assert.equal(other.open(AAD.blob(id), sealed), undefined);
});
