import assert from "node:assert/strict";
import { body } from "../tests/data.ts";
import { sha256 as nobleSha256 } from "@noble/hashes/sha2";
import { MemoryDriver } from "../drivers/memory.ts";
import { UnsupportedFormatVersionError } from "../errors.ts";
import { DecompressScratch } from "./compression.ts";
import { CorruptObjectError, InvalidArgumentError, TransientError } from "../errors.ts";
import { type HashAlgorithm, hashBytes } from "./hashing.ts";
import { type Manifest, manifestToJson } from "./manifest.ts";
import {
  decodePackToc,
  encodePack,
  MAX_TOC_BYTES,
  PACK_HEADER_BYTES,
  PACK_TRAILER_BYTES,
  type PackBlobInput,
  type PackSource,
  PackWriter,
  parsePackHeader,
  parsePackTrailer,
  readBlobFromPack,
  readPackToc,
} from "./pack.ts";
import { UlidGenerator } from "./ulid.ts";
import { packKey } from "../layout.ts";

const STORE = "0123456789abcdef0123456789abcdef";
const PACK_ID = "01arz3ndektsv4rrffq69g5fav";
const KEY = packKey(PACK_ID);
const text = (s: string) => new TextEncoder().encode(s);

function blob(
  content: string,
  kind: "regular" | "chunk" = "regular",
  alg: HashAlgorithm = "blake3",
) {
  const bytes = text(content);
  return { id: hashBytes(alg, bytes), kind, bytes } satisfies PackBlobInput;
}

const randomBytes = (n: number) => body(n, n);

const ids = new UlidGenerator({ clock: () => 1_700_000_000_000 });

function manifest(blobIds: string[], patch: Partial<Manifest> = {}): Manifest {
  return {
    id: ids.next(),
    storeId: STORE,
    namespace: "builds",
    key: "app/1.0/app.tar.gz",
    created: 1_700_000_000_000,
    deleted: false,
    size: 42,
    digest: hashBytes("blake3", text("whole body")),
    contentType: "application/gzip",
    metadata: { commit: "abc" },
    blobs: blobIds,
    ...patch,
  };
}

function samplePack(alg: HashAlgorithm = "blake3") {
  const blobs = [
    blob("first blob", "regular", alg),
    blob("a chunk", "chunk", alg),
    blob("", "regular", alg),
  ];
  const manifests = [
    manifest([blobs[0]!.id]),
    manifest([blobs[1]!.id, blobs[1]!.id]),
    { ...manifest([], { size: 5, inline: text("small") }) },
  ];
  const bytes = encodePack({ packId: PACK_ID, storeId: STORE, hash: alg, blobs, manifests });
  return { bytes, blobs, manifests };
}

/** A PackSource over one byte array that records every read. */
class ArraySource implements PackSource {
  reads: { offset: number; length: number }[] = [];
  stats = 0;
  constructor(readonly bytes: Uint8Array) {}
  getRange(_key: string, offset: number, length: number): Promise<Uint8Array> {
    this.reads.push({ offset, length });
    return Promise.resolve(this.bytes.slice(offset, Math.min(this.bytes.length, offset + length)));
  }
  stat(_key: string): Promise<{ size: number }> {
    this.stats++;
    return Promise.resolve({ size: this.bytes.length });
  }
}

async function assertCorrupt(promise: Promise<unknown>, reason?: RegExp, what = ""): Promise<void> {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(e instanceof CorruptObjectError, `${what}: expected CorruptObjectError, got ${e}`);
    assert.equal(e.key, KEY);
    if (reason) assert.match(e.reason, reason, what);
    return true;
  });
}

function read(bytes: Uint8Array, options = {}) {
  return readPackToc(new ArraySource(bytes), KEY, { size: bytes.length, ...options });
}

// ---- An independent encoder, written from docs/FORMAT.md (§5), to check the layout. ----

interface RawEntry {
  id: Uint8Array;
  kind: number;
  compression?: number;
  reserved?: number;
  offset: number;
  stored: number;
  raw: number;
}

function u64(view: DataView, at: number, v: number) {
  view.setBigUint64(at, BigInt(v), true);
}

function buildToc(t: {
  hashId?: number;
  storeId?: string;
  packId?: string;
  reserved?: number;
  entries?: RawEntry[];
  manifestsJson?: string;
  blobCount?: number;
  manifestCount?: number;
  manifestsLength?: number;
}): Uint8Array {
  const storeId = text(t.storeId ?? STORE);
  const entries = t.entries ?? [];
  const json = text(t.manifestsJson ?? "[]");
  const out = new Uint8Array(42 + storeId.length + 64 * entries.length + json.length);
  const view = new DataView(out.buffer);
  out[0] = t.hashId ?? 1;
  out[1] = storeId.length;
  view.setUint16(2, t.reserved ?? 0, true);
  view.setUint32(4, t.blobCount ?? entries.length, true);
  view.setUint32(8, t.manifestCount ?? JSON.parse(t.manifestsJson ?? "[]").length, true);
  view.setUint32(12, t.manifestsLength ?? json.length, true);
  out.set(text(t.packId ?? PACK_ID), 16);
  out.set(storeId, 42);
  let at = 42 + storeId.length;
  for (const e of entries) {
    out.set(e.id, at);
    out[at + 32] = e.kind;
    out[at + 33] = e.compression ?? 0;
    out[at + 34] = e.reserved ?? 0;
    u64(view, at + 40, e.offset);
    u64(view, at + 48, e.stored);
    u64(view, at + 56, e.raw);
    at += 64;
  }
  out.set(json, at);
  return out;
}

function sealPack(
  blobArea: Uint8Array,
  toc: Uint8Array,
  t: {
    version?: number;
    cipher?: number;
    flags?: number;
    tocRawLength?: number;
    tocOffset?: number;
    tocLength?: number;
  } = {},
): Uint8Array {
  const tocOffset = 16 + blobArea.length;
  const out = new Uint8Array(tocOffset + toc.length + 64);
  const view = new DataView(out.buffer);
  out.set(text("CAPSAPAK"), 0);
  view.setUint16(8, 1, true);
  out.set(blobArea, 16);
  out.set(toc, tocOffset);
  const tr = tocOffset + toc.length;
  out.set(text("CAPSATOC"), tr);
  view.setUint16(tr + 8, t.version ?? 1, true);
  out[tr + 10] = t.cipher ?? 0;
  out[tr + 11] = t.flags ?? 0;
  view.setUint32(tr + 12, t.tocRawLength ?? 0, true);
  u64(view, tr + 16, t.tocOffset ?? tocOffset);
  u64(view, tr + 24, t.tocLength ?? toc.length);
  const sum = nobleSha256(new Uint8Array([...toc, ...out.subarray(tr, tr + 32)]));
  out.set(sum, tr + 32);
  return out;
}

function entry(content: string, offset: number, patch: Partial<RawEntry> = {}): RawEntry {
  const n = text(content).length;
  return {
    id: Uint8Array.fromHex(hashBytes("blake3", text(content))),
    kind: 1,
    offset,
    stored: n,
    raw: n,
    ...patch,
  };
}

// ---- Round trips ----

Deno.test("encodePack() round-trips through readPackToc() and readBlobFromPack()", async () => {
  for (const alg of ["blake3", "sha256"] as const) {
    const { bytes, blobs, manifests } = samplePack(alg);
    const driver = new MemoryDriver();
    await driver.put(KEY, bytes);
    const toc = await readPackToc(driver, KEY, { storeId: STORE, hash: alg, packId: PACK_ID });
    assert.equal(toc.packId, PACK_ID);
    assert.equal(toc.storeId, STORE);
    assert.equal(toc.hash, alg);
    assert.deepEqual(toc.manifests, manifests.map((m) => ({ ...m })));
    let offset = PACK_HEADER_BYTES;
    toc.blobs.forEach((e, i) => {
      assert.deepEqual(e, {
        id: blobs[i]!.id,
        kind: blobs[i]!.kind,
        offset,
        storedLength: blobs[i]!.bytes.length,
        rawLength: blobs[i]!.bytes.length,
        compression: "none",
      });
      offset += e.storedLength;
    });
    for (const [i, e] of toc.blobs.entries()) {
      const back = await readBlobFromPack(driver, { key: KEY, ...e }, { hash: alg });
      assert.deepEqual(back, blobs[i]!.bytes);
    }
  }
});

Deno.test("PackWriter writes exactly the layout docs/FORMAT.md (§5) describes", () => {
  const a = blob("alpha");
  const b = blob("bravo!", "chunk");
  const m = manifest([a.id, b.id]);
  const w = new PackWriter({ packId: PACK_ID, storeId: STORE, hash: "blake3" });
  assert.deepEqual(w.addBlob(a), {
    id: a.id,
    kind: "regular",
    offset: 16,
    storedLength: 5,
    rawLength: 5,
    compression: "none",
  });
  w.addBlob(b);
  w.addManifest(m);
  assert.equal(w.byteLength, 16 + 5 + 6);
  const estimate = w.estimatedSize;
  const bytes = w.finish();
  const json = "[" + JSON.stringify(manifestToJson(m)) + "]";
  const toc = buildToc({
    entries: [entry("alpha", 16), entry("bravo!", 21, { kind: 2 })],
    manifestsJson: json,
  });
  assert.deepEqual(bytes, sealPack(new Uint8Array([...text("alpha"), ...text("bravo!")]), toc));
  assert.ok(Math.abs(estimate - bytes.length) < 16, `estimate ${estimate} vs ${bytes.length}`);
});

Deno.test("PackWriter copies blob bytes, deduplicates by id and grows past its size hint", () => {
  const w = new PackWriter({ packId: PACK_ID, storeId: STORE, hash: "sha256", sizeHint: 0 });
  const big = randomBytes(100_000);
  const id = hashBytes("sha256", big);
  w.addBlob({ id, kind: "regular", bytes: big });
  big.fill(0); // the caller reuses its buffer
  assert.equal(w.has(id), true);
  assert.equal(w.has("0".repeat(64)), false);
  assert.throws(() => w.addBlob({ id, kind: "regular", bytes: big }), /already in this pack/);
  for (let i = 0; i < 50; i++) w.addBlob(blob(`blob ${i}`, "chunk", "sha256"));
  assert.equal(w.blobCount, 51);
  const bytes = w.finish();
  const trailer = parsePackTrailer(KEY, bytes);
  const toc = decodePackToc(
    KEY,
    bytes.subarray(trailer.tocOffset, trailer.tocOffset + trailer.tocLength),
    trailer,
  );
  assert.equal(toc.blobs.length, 51);
  assert.notEqual(bytes[16], 0);
  assert.equal(hashBytes("sha256", bytes.subarray(16, 100_016)), id);
});

Deno.test("PackWriter refuses malformed input and use after finish()", () => {
  assert.throws(
    () => new PackWriter({ packId: "x", storeId: STORE, hash: "blake3" }),
    InvalidArgumentError,
  );
  assert.throws(
    () => new PackWriter({ packId: PACK_ID, storeId: "a/b", hash: "blake3" }),
    InvalidArgumentError,
  );
  assert.throws(
    () => new PackWriter({ packId: PACK_ID, storeId: STORE, hash: "md5" as HashAlgorithm }),
    InvalidArgumentError,
  );
  const w = new PackWriter({ packId: PACK_ID, storeId: STORE, hash: "blake3" });
  const b = blob("x");
  assert.throws(() => w.addBlob({ ...b, id: "nope" }), InvalidArgumentError);
  assert.throws(() => w.addBlob({ ...b, kind: "loose" as "chunk" }), InvalidArgumentError);
  assert.throws(() => w.addBlob({ ...b, rawLength: 5 }), /raw length 5 differs/);
  assert.throws(
    () => w.addManifest(manifest([b.id], { storeId: "f".repeat(32) })),
    /belongs to store f{32}/,
  );
  assert.throws(() => w.addManifest(manifest([b.id], { size: -1 })), InvalidArgumentError);
  const m = manifest([b.id]);
  w.addManifest(m);
  assert.throws(() => w.addManifest(m), /already in this pack/);
  assert.equal(w.manifestCount, 1);
  w.finish();
  assert.throws(() => w.finish(), /already finished/);
  assert.throws(() => w.addBlob(blob("y")), /already finished/);
  assert.throws(() => w.addManifest(manifest([b.id])), /already finished/);
});

// ---- Reads ----

Deno.test("readPackToc() reads the TOC in one ranged read when the tail covers it, two otherwise", async () => {
  const w = new PackWriter({ packId: PACK_ID, storeId: STORE, hash: "blake3" });
  w.addBlob({ ...blob("x"), bytes: text("x") });
  const filler = randomBytes(200_000);
  w.addBlob({ id: hashBytes("blake3", filler), kind: "chunk", bytes: filler });
  w.addManifest(manifest([blob("x").id]));
  const bytes = w.finish().slice();
  const trailer = parsePackTrailer(KEY, bytes);

  const one = new ArraySource(bytes);
  await readPackToc(one, KEY, { size: bytes.length });
  assert.deepEqual(one.reads, [{ offset: bytes.length - 65536, length: 65536 }]);

  const two = new ArraySource(bytes);
  await readPackToc(two, KEY, { size: bytes.length, tailGuess: 100 });
  assert.deepEqual(two.reads, [
    { offset: bytes.length - 100, length: 100 },
    { offset: trailer.tocOffset, length: trailer.tocLength },
  ]);

  const whole = new ArraySource(bytes);
  await readPackToc(whole, KEY, { tailGuess: 1 << 20 });
  assert.equal(whole.stats, 1); // no size given: one stat
  assert.deepEqual(whole.reads, [{ offset: 0, length: bytes.length }]);
});

Deno.test("readPackToc() checks the header when its read covers offset 0", async () => {
  const { bytes } = samplePack();
  const bad = bytes.slice();
  bad[3]! ^= 1;
  await assertCorrupt(read(bad), /bad header magic/);
  const v2 = bytes.slice();
  v2[8] = 2;
  await assertCorrupt(read(v2), /unknown formatVersion 2/);
  const reserved = bytes.slice();
  reserved[12] = 1;
  await assertCorrupt(read(reserved), /reserved header bytes/);
  assert.equal(parsePackHeader(KEY, bytes), 1);
  assert.throws(
    () => parsePackHeader(KEY, bytes.subarray(0, 15)),
    /truncated: 15 bytes, the header needs 16/,
  );
});

Deno.test("readPackToc() refuses a pack truncated at any point", async () => {
  const { bytes } = samplePack();
  for (let n = 0; n < bytes.length; n++) {
    await assertCorrupt(read(bytes.subarray(0, n)), undefined, `cut at ${n}`);
    await assertCorrupt(
      read(bytes.subarray(0, n), { tailGuess: 64 }),
      undefined,
      `cut at ${n}, small tail`,
    );
  }
  await assertCorrupt(read(new Uint8Array(0)), /truncated: 0 bytes, a pack needs at least 125/);
  await assertCorrupt(read(bytes.subarray(0, bytes.length - 1)), /bad trailer magic/);
});

Deno.test("readPackToc() refuses a pack whose source returns fewer bytes than its size says", async () => {
  const { bytes } = samplePack();
  const short = new ArraySource(bytes.subarray(0, bytes.length - 10));
  await assertCorrupt(
    readPackToc(short, KEY, { size: bytes.length }),
    /truncated: read \d+ bytes at offset 0/,
  );
});

Deno.test("readPackToc() detects a flipped bit anywhere in the TOC, the trailer and the header", async () => {
  const { bytes } = samplePack();
  const trailer = parsePackTrailer(KEY, bytes);
  const positions = [...Array(PACK_HEADER_BYTES).keys()];
  for (let i = trailer.tocOffset; i < bytes.length; i++) positions.push(i);
  for (const i of positions) {
    for (const bit of [0x01, 0x80]) {
      const bad = bytes.slice();
      bad[i]! ^= bit;
      await assertCorrupt(read(bad), undefined, `byte ${i} ^ ${bit}`);
    }
  }
  const flipped = bytes.slice();
  flipped[trailer.tocOffset + 50]! ^= 4;
  await assertCorrupt(read(flipped), /TOC checksum mismatch/);
});

Deno.test("readBlobFromPack() detects a flipped byte in a blob body", async () => {
  const { bytes, blobs } = samplePack();
  const bad = bytes.slice();
  bad[PACK_HEADER_BYTES + 2]! ^= 1;
  const source = new ArraySource(bad);
  const toc = await readPackToc(source, KEY, { size: bad.length }); // the TOC is intact
  await assert.rejects(
    readBlobFromPack(source, { key: KEY, ...toc.blobs[0]! }, { hash: "blake3" }),
    (e: unknown) =>
      e instanceof CorruptObjectError && e.key === KEY &&
      new RegExp(`blob ${blobs[0]!.id} at offset 16 does not match its id`).test(e.reason),
  );
  await assert.rejects(
    readBlobFromPack(source, { key: KEY, ...toc.blobs[1]!, storedLength: 10_000 }, {
      hash: "blake3",
    }),
    /truncated: read \d+ bytes at offset 26, expected 10000/,
  );
  // The right bytes under the wrong algorithm do not match either.
  await assert.rejects(
    readBlobFromPack(new ArraySource(bytes), { key: KEY, ...toc.blobs[1]! }, { hash: "sha256" }),
    CorruptObjectError,
  );
});

Deno.test("readPackToc() refuses a pack of another store, hash or pack id", async () => {
  const { bytes } = samplePack();
  await assertCorrupt(
    read(bytes, { storeId: "other" }),
    new RegExp(`belongs to store ${STORE}, expected other`),
  );
  await assertCorrupt(read(bytes, { hash: "sha256" }), /uses hash blake3, expected sha256/);
  await assertCorrupt(read(bytes, { packId: "01arz3ndektsv4rrffq69g5faw" }), /TOC names pack/);
});

Deno.test("readPackToc() refuses an unknown format version or a cipher it cannot read", async () => {
  const toc = buildToc({});
  await assertCorrupt(
    read(sealPack(new Uint8Array(0), toc, { version: 7 })),
    /unknown formatVersion 7/,
  );
  await assertCorrupt(
    read(sealPack(new Uint8Array(0), toc, { version: 0 })),
    /unknown formatVersion 0/,
  );
  await assertCorrupt(
    read(sealPack(new Uint8Array(0), toc, { cipher: 2 })),
    /sealed with cipher 2/,
  );
  // Cipher 1 (AES-256-GCM) read without the store's keys: refused, never misread.
  await assertCorrupt(
    read(sealPack(new Uint8Array(0), new Uint8Array(toc.length + 28), { cipher: 1 })),
    /encrypted \(cipher 1\) and no key/,
  );
  await assert.rejects(
    read(sealPack(new Uint8Array(0), toc, { version: 2 })),
    (e: unknown) =>
      e instanceof UnsupportedFormatVersionError && e.code === "unsupported_format_version" &&
      e.found === 2 && e.key === KEY,
  );
  assert.ok((await read(sealPack(new Uint8Array(0), toc))).blobs.length === 0);
});

Deno.test("readPackToc() bounds the trailer's lengths before reading or allocating", async () => {
  const { bytes } = samplePack();
  const tr = bytes.length - PACK_TRAILER_BYTES;
  const cases: [number, bigint, RegExp][] = [
    [24, BigInt(MAX_TOC_BYTES + 1), /TOC length 67108865 exceeds the limit of 67108864/],
    [24, 2n ** 63n, /TOC length ≥ 2\^53 exceeds the limit/],
    [24, 2n ** 40n, /exceeds the limit/],
    [24, 3n, /below the minimum/],
    [16, 2n ** 62n, /TOC offset ≥ 2\^53/],
    [16, 4n, /inside the header/],
    [16, 17n, /the trailer puts the TOC at 17/],
  ];
  for (const [at, value, reason] of cases) {
    const bad = bytes.slice();
    new DataView(bad.buffer).setBigUint64(tr + at, value, true);
    const source = new ArraySource(bad);
    await assertCorrupt(
      readPackToc(source, KEY, { size: bad.length, tailGuess: 64 }),
      reason,
      String(value),
    );
    assert.ok(source.reads.every((r) => r.length <= 64), "no read sized from the bad length");
  }
});

Deno.test("readPackToc() refuses garbage and empty objects", async () => {
  await assertCorrupt(read(new Uint8Array(0)), /truncated: 0 bytes/);
  await assertCorrupt(read(new Uint8Array(10_000)), /bad trailer magic/);
  await assertCorrupt(read(randomBytes(5000)), /bad trailer magic/);
  await assertCorrupt(read(randomBytes(100_000)), /bad trailer magic/);
  await assertCorrupt(
    read(text("x".repeat(200) + "CAPSATOC" + "y".repeat(56))),
    /unknown formatVersion/,
  );
  assert.throws(
    () => parsePackTrailer(KEY, new Uint8Array(12)),
    /truncated: 12 bytes, the trailer needs 64/,
  );
});

Deno.test("readPackToc() lets read errors through unchanged", async () => {
  const failing: PackSource = {
    getRange: () => Promise.reject(new TransientError("S3 answered 503")),
    stat: () => Promise.resolve({ size: 1000 }),
  };
  await assert.rejects(readPackToc(failing, KEY), TransientError);
  await assert.rejects(readPackToc(new MemoryDriver(), KEY), /no object at/);
});

// ---- Well-sealed TOCs that break the rules inside ----

Deno.test("decodePackToc() refuses malformed blob entries", async () => {
  const area = text("alphabravo!");
  const e1 = entry("alpha", 16);
  const e2 = entry("bravo!", 21, { kind: 2 });
  const cases: [RawEntry[], RegExp][] = [
    [
      [e1, { ...e2, stored: 7, raw: 7 }],
      /blob entry 1 extends past the TOC start \(21 \+ 7 > 27\)/,
    ],
    [[e1, { ...e2, offset: 20 }], /blob entry 1 overlaps entry 0/],
    [[{ ...e1, offset: 15 }], /blob entry 0 starts at 15, inside the header/],
    [[e1, { ...e2, kind: 3 }], /blob entry 1 has unknown kind 3/],
    [[e1, { ...e2, kind: 0 }], /blob entry 1 has unknown kind 0/],
    [[{ ...e1, compression: 2 }], /blob entry 0 uses unknown compression 2/],
    [[{ ...e1, compression: 1 }], /blob entry 0: zstd stored length 5 does not save 1\/16/],
    [[{ ...e1, reserved: 1 }], /blob entry 0 has non-zero reserved bytes/],
    [[{ ...e1, raw: 9 }], /blob entry 0: stored length 5 ≠ raw length 9/],
    [[e1, { ...e2, id: e1.id }], /blob entry 1 repeats blob/],
    [[{ ...e1, offset: 2 ** 53 }], /blob entry 0 has a length ≥ 2\^53/],
  ];
  for (const [entries, reason] of cases) {
    await assertCorrupt(read(sealPack(area, buildToc({ entries }))), reason, String(reason));
  }
  const fine = await read(sealPack(area, buildToc({ entries: [e1, e2] })));
  assert.deepEqual(fine.blobs.map((b) => b.kind), ["regular", "chunk"]);
});

Deno.test("decodePackToc() refuses TOC fields that do not add up", async () => {
  const m = JSON.stringify(manifestToJson(manifest([blob("x").id])));
  const cases: [Parameters<typeof buildToc>[0], RegExp][] = [
    [
      { blobCount: 1 },
      /TOC sections \(0 superseded packs, 1 blob entries, 2 bytes of manifests\) do not add up/,
    ],
    [{ blobCount: 0xffffffff }, /do not add up/],
    [{ manifestsLength: 0xffffffff }, /do not add up/],
    [{ manifestCount: 3 }, /TOC says 3 manifests, holds 0/],
    [{ hashId: 9 }, /unknown hash algorithm id 9/],
    [{ reserved: 1 }, /\(1 superseded packs, 0 blob entries, 2 bytes of manifests\) do not add up/],
    [
      { packId: "not-a-ulid-not-a-ulid-0000" },
      /pack id "not-a-ulid-not-a-ulid-0000" is not a ULID/,
    ],
    [{ storeId: "bad store" }, /store id "bad store" is malformed/],
    [{ manifestsJson: "{}" }, /manifests are not a JSON array/],
    [{ manifestsJson: "[" + m + "", manifestCount: 1 }, /manifests are not valid UTF-8 JSON/],
    [{ manifestsJson: `[${m},${m}]` }, /manifest 1 repeats manifest id/],
    [
      { manifestsJson: `[${m.replace(STORE, "f".repeat(32))}]` },
      /manifest 0 \S+: belongs to store "f{32}"/,
    ],
    [{ manifestsJson: `[${m.replace('"size":42', '"size":-42')}]` }, /manifest 0 \S+: size -42/],
    [{ manifestsJson: "[1]" }, /manifest 0: not a JSON object/],
  ];
  for (const [toc, reason] of cases) {
    await assertCorrupt(read(sealPack(new Uint8Array(0), buildToc(toc))), reason, String(reason));
  }
  const bytes = sealPack(new Uint8Array(0), buildToc({}));
  const badUtf8 = buildToc({ manifestsJson: "[ ]" });
  badUtf8[badUtf8.length - 2] = 0xff;
  await assertCorrupt(read(sealPack(new Uint8Array(0), badUtf8)), /not valid UTF-8 JSON/);
  // A real U+FFFD (EF BF BD) is valid UTF-8: read as it is, not taken for a replaced byte.
  const replacement = manifest([], { key: "r\uFFFDsum\u00e9", size: 2, inline: text("ok") });
  const withFffd = await read(
    encodePack({
      packId: PACK_ID,
      storeId: STORE,
      hash: "blake3",
      blobs: [],
      manifests: [replacement],
    }),
  );
  assert.equal(withFffd.manifests[0]!.key, "r\uFFFDsum\u00e9");
  const trailer = parsePackTrailer(KEY, bytes);
  assert.throws(
    () => decodePackToc(KEY, new Uint8Array(10), trailer),
    /TOC is 10 bytes, the trailer says 76/,
  );
});

Deno.test("decodePackToc() decodes a TOC of 10,000 manifests, every one (its speed: bench/, not here)", () => {
  const w = new PackWriter({ packId: PACK_ID, storeId: STORE, hash: "blake3", sizeHint: 8 << 20 });
  for (let i = 0; i < 10_000; i++) {
    const b = blob(`artifact body ${i}`);
    w.addBlob(b);
    w.addManifest(manifest([b.id], {
      key: `releases/app-${i}/app.tar.gz`,
      metadata: { commit: `c${i}`, branch: "main" },
    }));
  }
  const bytes = w.finish();
  const trailer = parsePackTrailer(KEY, bytes);
  const tocBytes = bytes.subarray(trailer.tocOffset, trailer.tocOffset + trailer.tocLength);
  const toc = decodePackToc(KEY, tocBytes, trailer, { storeId: STORE });
  assert.equal(toc.manifests.length, 10_000);
  assert.equal(toc.blobs.length, 10_000);
  assert.equal(toc.manifests[9_999]!.key, "releases/app-9999/app.tar.gz");
});

Deno.test("a superseding pack names the packs it replaces in its TOC; malformed lists are refused", async () => {
  const a = blob("alpha");
  const old = ["01arz3ndektsv4rrffq69g5fa1", "01arz3ndektsv4rrffq69g5fa0"];
  const w = new PackWriter({ packId: PACK_ID, storeId: STORE, hash: "blake3", supersedes: old });
  w.addBlob(a);
  const estimate = w.estimatedSize;
  const bytes = w.finish();
  assert.ok(Math.abs(estimate - bytes.length) < 16, `estimate ${estimate} vs ${bytes.length}`);
  const driver = new MemoryDriver();
  await driver.put(KEY, bytes);
  const toc = await readPackToc(driver, KEY, { storeId: STORE, packId: PACK_ID });
  assert.deepEqual(toc.supersedes, [...old].sort());
  assert.deepEqual(toc.blobs.map((b) => b.id), [a.id]);
  // TOC bytes 2–3 count them; the ids follow the store id, before the blob entries.
  const trailer = parsePackTrailer(KEY, bytes);
  const tocBytes = bytes.subarray(trailer.tocOffset, trailer.tocOffset + trailer.tocLength);
  assert.equal(tocBytes[2]! | (tocBytes[3]! << 8), 2);
  assert.equal(
    new TextDecoder().decode(tocBytes.subarray(42 + 32, 42 + 32 + 52)),
    [...old].sort().join(""),
  );
  // An ordinary pack supersedes nothing.
  const plain = await readPackToc(driver, KEY, { storeId: STORE });
  assert.deepEqual(plain.supersedes.length, 2);
  const none = encodePack({
    packId: PACK_ID,
    storeId: STORE,
    hash: "blake3",
    blobs: [],
    manifests: [],
  });
  assert.deepEqual(decodePackToc(KEY, tocOf(none), parsePackTrailer(KEY, none)).supersedes, []);

  for (const bad of [["01arz3ndektsv4rrffq69g5fz0"], [PACK_ID], ["not-a-ulid"]]) {
    assert.throws(
      () => new PackWriter({ packId: PACK_ID, storeId: STORE, hash: "blake3", supersedes: bad }),
      InvalidArgumentError,
    );
  }
  // A TOC whose list is out of order or names a later pack is corrupt (checksum made valid).
  const swapped = new Uint8Array(bytes);
  const at = trailer.tocOffset + 42 + 32;
  swapped.set(text(old[0]!), at); // "…fa1" first: descending
  swapped.set(text(old[1]!), at + 26);
  assert.throws(
    () => decodePackToc(KEY, tocOf(resealed(swapped)), parsePackTrailer(KEY, resealed(swapped))),
    (e: unknown) => e instanceof CorruptObjectError && /superseded pack 1/.test(e.message),
  );
});

function tocOf(pack: Uint8Array): Uint8Array {
  const t = parsePackTrailer(KEY, pack);
  return pack.subarray(t.tocOffset, t.tocOffset + t.tocLength);
}

/** The pack with its trailer checksum recomputed over its (edited) TOC. */
function resealed(pack: Uint8Array): Uint8Array {
  const out = new Uint8Array(pack);
  const t = parsePackTrailer(KEY, out);
  const trailerAt = out.length - PACK_TRAILER_BYTES;
  const sum = nobleSha256(
    new Uint8Array([
      ...out.subarray(t.tocOffset, trailerAt),
      ...out.subarray(trailerAt, trailerAt + 32),
    ]),
  );
  out.set(sum, trailerAt + 32);
  return out;
}

// ---- Compression (docs/FORMAT.md §5.5.7) ----

/** The known-answer vector of docs/FORMAT.md §5.5.7. */
const KAT_RAW = text("capsa stores blobs; ".repeat(8));
const KAT_ID = "a2ec7103b8127ecf1c76ef293793f1d0a7e04524907369c9b488dda6ac07b239";
const KAT_STORED = "28b52ffd0058dd0000a063617073612073746f72657320626c6f62733b20010012474d26";

Deno.test("compression known-answer vector: a tiny fixed blob gives fixed TOC entry fields", async () => {
  assert.equal(hashBytes("blake3", KAT_RAW), KAT_ID, "the id is the digest of the raw bytes");
  const w = new PackWriter({
    packId: PACK_ID,
    storeId: STORE,
    hash: "blake3",
    compressionLevel: 3,
  });
  const e = w.addBlob({ id: KAT_ID, kind: "regular", bytes: KAT_RAW });
  assert.deepEqual(e, {
    id: KAT_ID,
    kind: "regular",
    offset: 16,
    storedLength: 36,
    rawLength: 160,
    compression: "zstd",
  });
  const pack = w.finish();
  // The bytes zstd level 3 produces today; a reader depends only on them decompressing.
  assert.equal(pack.subarray(16, 16 + 36).toHex(), KAT_STORED);
  // The TOC is compressed too: trailer flags bit 0, its raw length at trailer bytes 12–15.
  const trailer = parsePackTrailer(KEY, pack);
  assert.deepEqual([trailer.flags, trailer.tocRawLength, trailer.tocLength], [1, 140, 123]);
  // Entry byte 33 is the compression id 1, lengths as the entry says.
  const toc = await read(pack);
  assert.deepEqual(toc.blobs, [e]);

  // An independent encoder from the spec: the vector's stored bytes in an
  // entry (compression 1), a TOC stored plainly — it reads back the raw bytes.
  const handMade = sealPack(
    Uint8Array.fromHex(KAT_STORED),
    buildToc({
      entries: [{
        id: Uint8Array.fromHex(KAT_ID),
        kind: 1,
        compression: 1,
        offset: 16,
        stored: 36,
        raw: 160,
      }],
    }),
  );
  const src = new ArraySource(handMade);
  const [entry0] = (await read(handMade)).blobs;
  assert.deepEqual(entry0?.compression, "zstd");
  assert.deepEqual(
    await readBlobFromPack(src, { key: KEY, ...entry0! }, { hash: "blake3" }),
    KAT_RAW,
  );
});

for (const how of ["a new buffer", "a reused scratch"]) {
  Deno.test(`a compressed TOC made by an independent encoder reads; damaged flags or lengths are refused (${how})`, async () => {
    // With a scratch every TOC is decompressed into the same buffer, through the zstd handle.
    const scratch = how === "a reused scratch" ? new DecompressScratch() : undefined;
    const readToc = (bytes: Uint8Array) => read(bytes, { scratch });
    const { zstdCompressSync } = await import("node:zlib");
    const m = JSON.stringify(manifestToJson(manifest([], { size: 5, inline: text("small") })));
    const plain = buildToc({
      manifestsJson: `[${m},${m.replace(/"id":"[^"]+"/, `"id":"${ids.next()}"`)}]`,
    });
    const packed = new Uint8Array(zstdCompressSync(plain));
    assert.ok(packed.length <= plain.length - plain.length / 16, "the sample compresses");
    const good = sealPack(new Uint8Array(0), packed, { flags: 1, tocRawLength: plain.length });
    const first = await readToc(good);
    assert.equal(first.manifests.length, 2);
    const firstAsRead = JSON.stringify(first);
    // The same TOC stored plainly (flags 0) still reads: old packs stay readable.
    assert.equal((await readToc(sealPack(new Uint8Array(0), plain))).manifests.length, 2);

    const cases: [Uint8Array, RegExp][] = [
      [
        sealPack(new Uint8Array(0), packed, { flags: 2, tocRawLength: plain.length }),
        /trailer flags 2/,
      ],
      [sealPack(new Uint8Array(0), plain, { tocRawLength: 7 }), /reserved bytes are not zero/],
      [
        sealPack(new Uint8Array(0), packed, { flags: 1, tocRawLength: plain.length - 1 }),
        /TOC: zstd stream decompresses to more than its raw length/,
      ],
      [
        sealPack(new Uint8Array(0), packed, { flags: 1, tocRawLength: plain.length + 100 }),
        /TOC: zstd stream decompresses to \d+ bytes, its raw length is/,
      ],
      [
        sealPack(new Uint8Array(0), packed, { flags: 1, tocRawLength: packed.length }),
        /does not save 1\/16/,
      ],
      [sealPack(new Uint8Array(0), packed, { flags: 1, tocRawLength: 200 << 20 }), /outside/],
      [
        sealPack(new Uint8Array(0), new Uint8Array([...packed, 1, 2, 3, 4, 5, 6, 7, 8]), {
          flags: 1,
          tocRawLength: plain.length,
        }),
        /TOC: zstd stream does not decompress/,
      ],
    ];
    for (const [pack, reason] of cases) await assertCorrupt(readToc(pack), reason, String(reason));
    const flipped = new Uint8Array(packed);
    flipped[flipped.length - 3]! ^= 0x10;
    await assertCorrupt(
      readToc(sealPack(new Uint8Array(0), flipped, { flags: 1, tocRawLength: plain.length })),
      /TOC/,
    );
    // Another TOC decoded (into the same scratch) leaves the first one's result as it was.
    const other = buildToc({
      manifestsJson: `[${m.replace(/"key":"[^"]+"/, `"key":"${"z".repeat(300)}"`)}]`,
    });
    const otherPacked = new Uint8Array(zstdCompressSync(other));
    const second = await readToc(
      sealPack(new Uint8Array(0), otherPacked, { flags: 1, tocRawLength: other.length }),
    );
    assert.equal(second.manifests[0]!.key, "z".repeat(300));
    assert.equal(JSON.stringify(first), firstAsRead);
  });
}

Deno.test("incompressible blobs stay uncompressed (compression 0) in a compressing writer", async () => {
  const random = randomBytes(64 * 1024);
  const tiny = text("x".repeat(20));
  const w = new PackWriter({
    packId: PACK_ID,
    storeId: STORE,
    hash: "blake3",
    compressionLevel: 3,
  });
  const a = w.addBlob({ id: hashBytes("blake3", random), kind: "chunk", bytes: random });
  const b = w.addBlob({ id: hashBytes("blake3", tiny), kind: "regular", bytes: tiny });
  assert.deepEqual([a.compression, a.storedLength], ["none", random.length]);
  assert.deepEqual([b.compression, b.storedLength], ["none", tiny.length], "under 32 bytes");
  const pack = w.finish();
  const toc = await read(pack);
  assert.deepEqual(toc.blobs.map((e) => e.compression), ["none", "none"]);
  assert.deepEqual(pack.subarray(16, 16 + random.length), random);
});

Deno.test("a flipped bit inside a compressed blob is CorruptObjectError naming the pack, never wrong bytes", async () => {
  const raw = text("lorem ipsum dolor sit amet ".repeat(400));
  const id = hashBytes("blake3", raw);
  const pack = encodePack({
    packId: PACK_ID,
    storeId: STORE,
    hash: "blake3",
    blobs: [{ id, kind: "regular", bytes: raw }],
    manifests: [],
    compressionLevel: 3,
  });
  const [e] = (await read(pack)).blobs;
  assert.equal(e!.compression, "zstd");
  let refused = 0;
  // Every bit of the stored bytes: each flip is refused, or (a bit zstd
  // ignores) still yields exactly the raw bytes — never other bytes.
  for (let at = 0; at < e!.storedLength; at++) {
    for (let bit = 1; bit < 256; bit <<= 1) {
      const bad = new Uint8Array(pack);
      bad[16 + at]! ^= bit;
      try {
        const back = await readBlobFromPack(new ArraySource(bad), { key: KEY, ...e! }, {
          hash: "blake3",
        });
        assert.deepEqual(back, raw, `bit ${bit} of byte ${at}`);
      } catch (err) {
        assert.ok(err instanceof CorruptObjectError, `bit ${bit} of byte ${at}: ${err}`);
        assert.equal(err.key, KEY);
        assert.match(err.reason, new RegExp(`blob ${e!.id} at offset 16`));
        refused++;
      }
    }
  }
  assert.ok(refused > e!.storedLength * 8 * 0.9, `${refused} of ${e!.storedLength * 8} refused`);
});

Deno.test("a zstd bomb (a stream decompressing past its raw length) is refused before it is inflated", async () => {
  const { zstdCompressSync } = await import("node:zlib");
  // 64 MiB of zeros in a few KiB, announced as a 5000-byte blob.
  const bomb = new Uint8Array(zstdCompressSync(new Uint8Array(64 << 20)));
  assert.ok(bomb.length < 4096, `${bomb.length}`);
  const fakeId = hashBytes("blake3", new Uint8Array(5000));
  const pack = sealPack(
    bomb,
    buildToc({
      entries: [{
        id: Uint8Array.fromHex(fakeId),
        kind: 1,
        compression: 1,
        offset: 16,
        stored: bomb.length,
        raw: 5000,
      }],
    }),
  );
  const [e] = (await read(pack)).blobs;
  const before = Deno.memoryUsage().rss;
  await assertCorrupt(
    readBlobFromPack(new ArraySource(pack), { key: KEY, ...e! }, { hash: "blake3" }),
    /decompresses to more than its raw length 5000/,
  );
  assert.ok(Deno.memoryUsage().rss - before < 32 << 20, "the 64 MiB were never allocated");
});

Deno.test("PackWriter copies stored blobs with their compression (garbage collection's path)", async () => {
  const raw = text("copy me as I am stored. ".repeat(64));
  const id = hashBytes("blake3", raw);
  const first = encodePack({
    packId: PACK_ID,
    storeId: STORE,
    hash: "blake3",
    blobs: [{ id, kind: "chunk", bytes: raw }],
    manifests: [],
    compressionLevel: 3,
  });
  const [e] = (await read(first)).blobs;
  const stored = first.slice(e!.offset, e!.offset + e!.storedLength);
  // Copied into a writer that does not compress: the entry keeps zstd and its raw length.
  const w = new PackWriter({
    packId: "01arz3ndektsv4rrffq69g5fbb",
    storeId: STORE,
    hash: "blake3",
  });
  const copy = w.addBlob({
    id,
    kind: "chunk",
    bytes: stored,
    compression: "zstd",
    rawLength: raw.length,
  });
  assert.deepEqual(
    [copy.compression, copy.storedLength, copy.rawLength],
    ["zstd", e!.storedLength, raw.length],
  );
  // An uncompressed blob copied into a compressing writer stays as it is.
  const plain = text("plain plain plain plain plain plain plain plain");
  const w2 = new PackWriter({
    packId: PACK_ID,
    storeId: STORE,
    hash: "blake3",
    compressionLevel: 3,
  });
  const kept = w2.addBlob({
    id: hashBytes("blake3", plain),
    kind: "regular",
    bytes: plain,
    compression: "none",
  });
  assert.deepEqual([kept.compression, kept.storedLength], ["none", plain.length]);
  // A zstd copy without a raw length that saves 1/16 is refused.
  for (const rawLength of [undefined, stored.length]) {
    assert.throws(
      () =>
        new PackWriter({ packId: PACK_ID, storeId: STORE, hash: "blake3" }).addBlob({
          id,
          kind: "chunk",
          bytes: stored,
          compression: "zstd",
          ...(rawLength === undefined ? {} : { rawLength }),
        }),
      InvalidArgumentError,
    );
  }
  assert.throws(
    () => new PackWriter({ packId: PACK_ID, storeId: STORE, hash: "blake3", compressionLevel: 20 }),
    InvalidArgumentError,
  );
});

Deno.test("a compressing writer estimates its finished size from the TOC's own ratio (packs of small files reach the target)", () => {
  // 4,000 small files: 2 KiB of random bytes each and a manifest like put --from's. The raw
  // manifest text is ≈1.6 MiB of an 8 MiB pack and compresses about 3×: a writer estimating
  // from the raw text sealed such packs an eighth short of the target.
  const w = new PackWriter({
    packId: PACK_ID,
    storeId: STORE,
    hash: "blake3",
    compressionLevel: 3,
  });
  for (let i = 0; i < 4000; i++) {
    const bytes = body(7 + i, 2048);
    const id = hashBytes("blake3", bytes);
    w.addBlob({ id, kind: "regular", bytes });
    w.addManifest(manifest([id], {
      key: `d${String(i % 200).padStart(5, "0")}/f${String(i).padStart(6, "0")}.bin`,
      size: bytes.length,
      digest: id,
      contentType: "",
      metadata: { "capsa.mode": "644", "capsa.mtime": String(1_700_000_000_000 + i) },
    }));
  }
  const estimate = w.estimatedSize;
  const bytes = w.finish();
  const off = Math.abs(estimate - bytes.length) / bytes.length;
  assert.ok(
    off < 0.02,
    `estimate ${estimate} vs ${bytes.length} (${(off * 100).toFixed(2)} % off)`,
  );
});

Deno.test("PackWriter encodes manifests of many-byte characters past its buffer, compressed or not", async () => {
  for (const compressionLevel of [undefined, 3, 19]) {
    // A small buffer and manifests whose UTF-8 is about three times their UTF-16 length: the TOC
    // does not fit where its text length says it would.
    const w = new PackWriter({
      packId: PACK_ID,
      storeId: STORE,
      hash: "blake3",
      sizeHint: 4096,
      ...(compressionLevel === undefined ? {} : { compressionLevel }),
    });
    const b = blob("body");
    w.addBlob(b);
    const written = Array.from({ length: 40 }, (_, i) =>
      manifest([b.id], {
        key: `日本語/ファイル-${i}-${"€".repeat(i * 5)}`,
        metadata: { note: "ü🎉".repeat(50 + i) },
      }));
    for (const m of written) w.addManifest(m);
    const expected = w.tocRawLength;
    const bytes = w.finish();
    // What a committer seals on: the TOC's raw UTF-8 length.
    const t = parsePackTrailer("k", bytes);
    const raw = compressionLevel === undefined ? t.tocLength : t.tocRawLength;
    assert.equal(expected, raw);
    const toc = await read(bytes, { storeId: STORE });
    assert.deepEqual(
      toc.manifests.map((m) => [m.key, m.metadata]),
      written.map((m) => [m.key, m.metadata]),
    );
    assert.equal(toc.manifests.length, 40, `level ${compressionLevel}`);
  }
});

Deno.test("PackWriter: a manifest larger than the text buffer, then a writer reusing that buffer holds only its own manifests", async () => {
  // Writers hand their manifest text buffer on to the next one (spareManifestBuffers).
  const big = manifest([], { size: 60_000, inline: randomBytes(60_000) });
  const first = new PackWriter({ packId: PACK_ID, storeId: STORE, hash: "blake3" });
  first.addManifest(big);
  const many = Array.from(
    { length: 30 },
    (_, i) => manifest([], { size: 3, inline: text(`${100 + i}`) }),
  );
  for (const m of many) first.addManifest(m);
  const a = await read(first.finish(), { storeId: STORE });
  assert.deepEqual(a.manifests.map((m) => m.id), [big, ...many].map((m) => m.id));
  assert.deepEqual(a.manifests[0]!.inline, big.inline);
  // The next writer, with one small manifest, on the buffer the first one gave back.
  const second = new PackWriter({ packId: ids.next(), storeId: STORE, hash: "blake3" });
  const one = manifest([], { size: 2, inline: text("hi") });
  second.addManifest(one);
  const b = await read(second.finish(), { storeId: STORE });
  assert.deepEqual(b.manifests.map((m) => [m.id, m.key]), [[one.id, one.key]]);
});
