import assert from "node:assert/strict";
import { CorruptObjectError, InvalidArgumentError } from "../errors.ts";
import { hashBytes } from "./hashing.ts";
import {
  InlineArena,
  type Manifest,
  manifestToJson,
  MAX_ARTIFACT_KEY_BYTES,
  MAX_INLINE_BYTES,
  validateArtifactKey,
  validateContentType,
  validateManifest,
  validateMetadata,
  validateNamespace,
} from "./manifest.ts";

const ID = "01arz3ndektsv4rrffq69g5fav";
const STORE = "0123456789abcdef0123456789abcdef";
const PACK_KEY = "packs/01arz/01arz3ndektsv4rrffq69g5fav";
const body = new TextEncoder().encode("hello");
const DIGEST = hashBytes("blake3", body);

function inlineManifest(): Manifest {
  return {
    id: ID,
    storeId: STORE,
    namespace: "builds",
    key: "app/1.0.0/app.tar.gz",
    created: 1469922850259,
    deleted: false,
    size: 5,
    digest: DIGEST,
    contentType: "text/plain",
    metadata: { commit: "abc123", "build.number": "42" },
    blobs: [],
    inline: body,
  };
}

function blobManifest(): Manifest {
  return {
    ...inlineManifest(),
    id: "01arz3ndektsv4rrffq69g5faw",
    size: 3_000_000,
    blobs: [hashBytes("blake3", body), hashBytes("blake3", new Uint8Array(1)), DIGEST],
    inline: undefined as unknown as Uint8Array,
  };
}

function tombstone(): Manifest {
  return {
    id: "01arz3ndektsv4rrffq69g5fax",
    storeId: STORE,
    namespace: "builds",
    key: "app/1.0.0/app.tar.gz",
    created: 1469922850300,
    deleted: true,
    size: 0,
    digest: "",
    contentType: "",
    metadata: {},
    blobs: [],
  };
}

function withoutInline(m: Manifest): Manifest {
  const { inline: _, ...rest } = m;
  return rest;
}

/** The JSON form of a good manifest with some fields replaced (undefined = removed). */
function json(patch: Record<string, unknown>, base: Manifest = inlineManifest()) {
  const v: Record<string, unknown> = JSON.parse(JSON.stringify(manifestToJson(base)));
  for (const [k, val] of Object.entries(patch)) {
    if (val === undefined) delete v[k];
    else v[k] = val;
  }
  return v;
}

function assertCorrupt(value: unknown, reason: RegExp, options = {}) {
  assert.throws(
    () => validateManifest(PACK_KEY, value, options),
    (e: unknown) => {
      assert.ok(e instanceof CorruptObjectError, `expected CorruptObjectError, got ${e}`);
      assert.equal(e.key, PACK_KEY);
      assert.match(e.reason, reason);
      return true;
    },
  );
}

Deno.test("validateManifest() round-trips manifestToJson() for inline, blob and tombstone manifests", () => {
  for (const m of [inlineManifest(), withoutInline(blobManifest()), tombstone()]) {
    const text = JSON.stringify(manifestToJson(m));
    const back = validateManifest(PACK_KEY, JSON.parse(text));
    assert.deepEqual(back, m);
  }
  const empty = { ...inlineManifest(), size: 0, inline: new Uint8Array(0) };
  assert.deepEqual(
    validateManifest(PACK_KEY, JSON.parse(JSON.stringify(manifestToJson(empty)))),
    empty,
  );
});

Deno.test("manifestToJson() writes deleted and inline only when they apply", () => {
  const live = manifestToJson(withoutInline(blobManifest()));
  assert.equal("deleted" in live, false);
  assert.equal("inline" in live, false);
  const t = manifestToJson(tombstone());
  assert.equal(t.deleted, true);
  assert.equal(manifestToJson(inlineManifest()).inline, "aGVsbG8=");
});

Deno.test("validateManifest() refuses values that are not manifests", () => {
  assertCorrupt(null, /manifest: not a JSON object/);
  assertCorrupt([], /not a JSON object/);
  assertCorrupt("x", /not a JSON object/);
  assertCorrupt(json({ extra: 1 }), /unknown field "extra"/);
});

Deno.test("validateManifest() refuses malformed ids, store ids and times", () => {
  assertCorrupt(json({ id: "01ARZ3NDEKTSV4RRFFQ69G5FAV" }), /id .* is not a ULID/); // upper case
  assertCorrupt(json({ id: undefined }), /is not a ULID/);
  assertCorrupt(json({ storeId: "a/b" }), /storeId .* is not a store id/);
  assertCorrupt(json({ storeId: "A".repeat(32) }), /is not a store id/);
  assertCorrupt(json({ storeId: "a".repeat(31) }), /is not a store id/);
  assertCorrupt(json({ created: -1 }), /created -1 is not a time/);
  assertCorrupt(json({ created: 1.5 }), /created 1.5/);
  assertCorrupt(json({ created: "1" }), /created/);
  assertCorrupt(json({ created: 2 ** 48 }), /created/);
});

Deno.test("validateManifest() refuses bad sizes and digests", () => {
  assertCorrupt(json({ size: -1 }), /size -1 is not a non-negative integer/);
  assertCorrupt(json({ size: 5.5 }), /size 5.5/);
  assertCorrupt(json({ size: 2 ** 53 }), /size/);
  assertCorrupt(json({ size: "5" }), /size/);
  assertCorrupt(json({ digest: DIGEST.slice(1) }), /digest .* is not a hex digest/);
  assertCorrupt(json({ digest: DIGEST.toUpperCase() }), /is not a hex digest/);
  assertCorrupt(json({ digest: "" }), /is not a hex digest/);
});

Deno.test("validateManifest() refuses blob lists with malformed ids", () => {
  const b = blobManifest();
  assertCorrupt(json({ blobs: "abc" }, b), /blobs must be an array/);
  assertCorrupt(json({ blobs: [DIGEST, DIGEST.slice(2)] }, b), /blob 1 .* is not a blob id/);
  assertCorrupt(json({ blobs: [DIGEST + "00"] }, b), /blob 0 .* is not a blob id/);
  assertCorrupt(json({ blobs: [42] }, b), /blob 0 42 is not a blob id/);
  assertCorrupt(json({ blobs: new Array(500_001).fill(DIGEST) }, b), /more than 500000 blobs/);
});

Deno.test("validateManifest() wants exactly one of an inline body and blobs", () => {
  assertCorrupt(json({ blobs: [DIGEST] }), /both an inline body and blobs/);
  assertCorrupt(json({ inline: undefined }), /neither an inline body nor blobs/);
  assertCorrupt(json({ size: 6 }), /inline body is 5 bytes, size says 6/);
  // Decoded into a buffer of its own, or into an arena's shared pieces (a TOC's way): the same rules.
  for (const options of [{}, { inlineArena: new InlineArena() }]) {
    assertCorrupt(json({ inline: "aGVsbG8" }), /not canonical base64/, options);
    assertCorrupt(json({ inline: "aGVs bG8=" }), /not canonical base64/, options);
    // Whitespace the decoder would skip, in a length that is a multiple of 4; the URL alphabet.
    assertCorrupt(json({ inline: "aGVsbA=\n" }), /not canonical base64/, options);
    assertCorrupt(json({ inline: "aGVs    " }), /not canonical base64/, options);
    assertCorrupt(json({ inline: "aGV\tbGxv" }), /not canonical base64/, options);
    assertCorrupt(json({ inline: "aGVs-G8=" }), /not canonical base64/, options);
    assertCorrupt(json({ inline: "aGVsbG9=" }), /not canonical base64/, options); // padding bits
    assertCorrupt(json({ inline: 5 }), /inline must be a base64 string/, options);
    const big = new Uint8Array(MAX_INLINE_BYTES + 1).toBase64();
    assertCorrupt(
      json({ inline: big, size: MAX_INLINE_BYTES + 1 }),
      /inline body larger than/,
      options,
    );
  }
});

Deno.test("validateManifest() with an InlineArena: every body intact across the arena's pieces", () => {
  const arena = new InlineArena();
  const bodies = Array.from({ length: 3000 }, (_, i) => {
    const b = new Uint8Array(1 + (i * 37) % 300);
    for (let j = 0; j < b.length; j++) b[j] = (i * 131 + j * 7) & 0xff;
    return b;
  });
  // A refused body in the middle leaves the others as they are.
  assertCorrupt(json({ inline: "aGVs bG8=" }), /not canonical base64/, { inlineArena: arena });
  const decoded = bodies.map((b) =>
    validateManifest(
      PACK_KEY,
      json({ inline: b.toBase64(), size: b.length, digest: hashBytes("blake3", b) }),
      { inlineArena: arena },
    ).inline!
  );
  // 3,000 bodies of up to 300 bytes fill more than one 256 KiB piece.
  assert.ok(new Set(decoded.map((d) => d.buffer)).size > 1);
  decoded.forEach((d, i) => assert.deepEqual(d, bodies[i], `body ${i}`));
  // An empty body decodes to no bytes.
  const empty = json({ inline: "", size: 0, digest: hashBytes("blake3", new Uint8Array(0)) });
  assert.equal(validateManifest(PACK_KEY, empty, { inlineArena: arena }).inline!.length, 0);
});

Deno.test("validateManifest() holds tombstones to their rules", () => {
  const t = tombstone();
  assert.equal(validateManifest(PACK_KEY, json({}, t)).deleted, true);
  assertCorrupt(json({ deleted: false }, t), /deleted must be true when present/);
  assertCorrupt(json({ deleted: "yes" }, t), /deleted must be true/);
  assertCorrupt(json({ size: 1 }, t), /a tombstone must have size 0/);
  assertCorrupt(json({ digest: DIGEST }, t), /a tombstone must have an empty digest/);
  assertCorrupt(json({ contentType: "x/y" }, t), /empty contentType/);
  assertCorrupt(json({ metadata: { a: "b" } }, t), /no metadata/);
  assertCorrupt(json({ blobs: [DIGEST] }, t), /list no blobs/);
  assertCorrupt(json({ inline: "" }, t), /no inline body/);
});

Deno.test("validateManifest() refuses bad namespaces, keys and huge strings", () => {
  assertCorrupt(json({ namespace: "" }), /a namespace is 1 to 128 characters, got 0/);
  assertCorrupt(json({ namespace: "a/b" }), /may only hold letters/);
  assertCorrupt(json({ namespace: ".." }), /is not allowed/);
  assertCorrupt(json({ namespace: "x".repeat(10_000_000) }), /got 10000000/);
  assertCorrupt(json({ key: "" }), /must not be empty/);
  assertCorrupt(json({ key: "a\u0000b" }), /control character/);
  assertCorrupt(json({ key: "a\nb" }), /control character/);
  assertCorrupt(json({ key: "a\ud800b" }), /unpaired surrogate/);
  assertCorrupt(json({ key: "é".repeat(513) }), /longer than 1024 bytes/);
  assertCorrupt(json({ key: "k".repeat(50_000_000) }), /longer than 1024 bytes/);
  assertCorrupt(json({ key: 7 }), /must be a string/);
});

Deno.test("validateManifest() bounds metadata and content type", () => {
  assertCorrupt(json({ metadata: null }), /metadata must be an object/);
  assertCorrupt(json({ metadata: ["a"] }), /metadata must be an object/);
  assertCorrupt(json({ metadata: { a: 1 } }), /metadata value of "a" must be a string/);
  assertCorrupt(json({ metadata: { "a b": "x" } }), /metadata key "a b"/);
  assertCorrupt(json({ metadata: { ["k".repeat(129)]: "x" } }), /metadata key/);
  assertCorrupt(json({ metadata: { a: "v".repeat(2049) } }), /longer than 2048 bytes/);
  assertCorrupt(json({ metadata: { a: "\u0007" } }), /control character/);
  const many = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, "v"]));
  assertCorrupt(json({ metadata: many }), /more than 64 metadata entries/);
  const heavy = Object.fromEntries(
    Array.from({ length: 5 }, (_, i) => [`k${i}`, "v".repeat(2000)]),
  );
  assertCorrupt(json({ metadata: heavy }), /metadata larger than 8192 bytes/);
  assertCorrupt(json({ contentType: "text/plaïn" }), /printable ASCII/);
  assertCorrupt(json({ contentType: "t".repeat(256) }), /longer than 255/);
  assertCorrupt(json({ contentType: undefined }), /contentType must be a string/);
});

Deno.test("validateManifest() keeps a __proto__ metadata key as plain data", () => {
  const text = JSON.stringify(manifestToJson(inlineManifest())).replace(
    '"metadata":{',
    '"metadata":{"__proto__":"x",',
  );
  const m = validateManifest(PACK_KEY, JSON.parse(text));
  assert.equal(Object.getPrototypeOf(m.metadata), Object.prototype);
  assert.equal(Object.hasOwn(m.metadata, "__proto__"), true);
  assert.equal(({} as Record<string, unknown>).x, undefined);
});

Deno.test("validateManifest() refuses a manifest of another store and names it in the reason", () => {
  assertCorrupt(
    json({}),
    /manifest 7 01arz3ndektsv4rrffq69g5fav: belongs to store "0123456789abcdef0123456789abcdef", expected "other"/,
    {
      storeId: "other",
      label: "manifest 7",
    },
  );
  assert.equal(validateManifest(PACK_KEY, json({}), { storeId: STORE }).storeId, STORE);
});

Deno.test("validateManifest() copies metadata and blobs unless told to adopt them", () => {
  const value = json({}, withoutInline(blobManifest()));
  const copied = validateManifest(PACK_KEY, value);
  assert.notEqual(copied.blobs, value.blobs);
  assert.notEqual(copied.metadata, value.metadata);
  const adopted = validateManifest(PACK_KEY, value, { adopt: true });
  assert.equal(adopted.blobs, value.blobs);
  assert.equal(adopted.metadata, value.metadata);
  assert.deepEqual(adopted, copied);
});

Deno.test("manifestToJson() refuses a malformed manifest with InvalidArgumentError", () => {
  const bad: Manifest[] = [
    { ...inlineManifest(), id: "nope" },
    { ...inlineManifest(), size: -1 },
    { ...inlineManifest(), blobs: [DIGEST] },
    {
      ...inlineManifest(),
      inline: new Uint8Array(MAX_INLINE_BYTES + 1),
      size: MAX_INLINE_BYTES + 1,
    },
    { ...tombstone(), size: 3 },
    { ...inlineManifest(), deleted: "no" as unknown as boolean },
    { ...inlineManifest(), inline: "aGVsbG8=" as unknown as Uint8Array },
  ];
  for (const m of bad) assert.throws(() => manifestToJson(m), InvalidArgumentError);
});

Deno.test("validateNamespace() accepts [A-Za-z0-9._-]{1,128} except . and ..", () => {
  for (const ok of ["a", "builds", "A-b_c.d", "x".repeat(128), "...", ".hidden"]) {
    validateNamespace(ok);
  }
  for (const bad of ["", ".", "..", "a/b", "a b", "ü", "x".repeat(129), "a\u0000"]) {
    assert.throws(() => validateNamespace(bad), InvalidArgumentError, JSON.stringify(bad));
  }
  assert.throws(() => validateNamespace(5 as unknown as string), InvalidArgumentError);
});

Deno.test("validateArtifactKey() accepts 1 to 1024 UTF-8 bytes without control characters", () => {
  for (
    const ok of [
      "a",
      "a/b/../c",
      "/abs",
      "with space",
      "emoji 🎉",
      "k".repeat(MAX_ARTIFACT_KEY_BYTES),
    ]
  ) {
    validateArtifactKey(ok);
  }
  validateArtifactKey("é".repeat(512)); // exactly 1024 bytes
  for (
    const bad of [
      "",
      "a\u0000",
      "tab\t",
      "del\u007f",
      "c1\u0085",
      "\udc00",
      "k".repeat(1025),
      "é".repeat(513),
    ]
  ) {
    assert.throws(() => validateArtifactKey(bad), InvalidArgumentError, JSON.stringify(bad));
  }
});

Deno.test("validateMetadata() and validateContentType() throw InvalidArgumentError", () => {
  validateMetadata({});
  validateMetadata({ "a.b-c_D": "ünïcode ok" });
  assert.throws(() => validateMetadata({ "a/b": "x" }), InvalidArgumentError);
  validateContentType("");
  validateContentType("application/vnd.foo+json; charset=utf-8");
  assert.throws(() => validateContentType("a\nb"), InvalidArgumentError);
});
