import assert from "node:assert/strict";
import {
  createDescriptor,
  decodeDescriptor,
  type Descriptor,
  descriptorChecksum,
  DescriptorConflictError,
  type DescriptorReading,
  encodeDescriptor,
  LOCATION_DESCRIPTOR_KEYS,
  MAX_DESCRIPTOR_BYTES,
  readDescriptorReplica,
  reconcileDescriptors,
  validateDescriptor,
} from "./descriptor.ts";
import { DEFAULT_CHUNKING } from "./chunker.ts";
import { canonicalChecksum, isStoreId } from "./fields.ts";
import {
  CorruptObjectError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  TransientError,
  UnsupportedFormatVersionError,
} from "../errors.ts";
import { MemoryDriver } from "../drivers/memory.ts";
import { DESCRIPTOR_KEY, DESCRIPTOR_REPLICA_KEY, HOST_DESCRIPTOR_KEY } from "../layout.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const T0 = Date.UTC(2026, 4, 10, 12, 0, 0, 0);

function fixture(overrides: Partial<Record<keyof Descriptor, unknown>> = {}): Descriptor {
  return {
    ...createDescriptor({ storeId: "0123456789abcdef0123456789abcdef", clock: () => T0 }),
    ...overrides,
  } as Descriptor;
}

/** The JSON object of an encoded descriptor, to tamper with. */
function jsonOf(d: Descriptor): Record<string, unknown> {
  return JSON.parse(dec.decode(encodeDescriptor(d)));
}

/** Re-encodes a tampered object, with its checksum recomputed unless told not to. */
function bytesOf(obj: Record<string, unknown>, { resum = true } = {}): Uint8Array {
  const copy = { ...obj };
  if (resum) {
    delete copy.checksum;
    copy.checksum = canonicalChecksum(copy);
  }
  return enc.encode(JSON.stringify(copy, null, 2) + "\n");
}

function corruptReason(bytes: Uint8Array): string {
  try {
    decodeDescriptor(DESCRIPTOR_KEY, bytes);
  } catch (e) {
    assert.ok(e instanceof CorruptObjectError, `expected CorruptObjectError, got ${e}`);
    assert.equal(e.key, DESCRIPTOR_KEY);
    return e.reason;
  }
  assert.fail("decodeDescriptor() accepted it");
}

const ENCRYPTION = {
  cipher: "aes-256-gcm",
  keyCheck: btoa("k".repeat(32)),
};

// --- keys -----------------------------------------------------------------

Deno.test("descriptor replica keys are distinct and match the layout", () => {
  assert.equal(DESCRIPTOR_KEY, "store.json");
  assert.equal(DESCRIPTOR_REPLICA_KEY, "system.state/descriptor/store.json");
  assert.deepEqual(LOCATION_DESCRIPTOR_KEYS, [DESCRIPTOR_KEY, DESCRIPTOR_REPLICA_KEY]);
  assert.ok(!LOCATION_DESCRIPTOR_KEYS.includes(HOST_DESCRIPTOR_KEY));
});

// --- canonical JSON --------------------------------------------------------

// --- create / validate -----------------------------------------------------

Deno.test("createDescriptor() fills the defaults and validates", () => {
  const d = createDescriptor({ clock: () => T0 });
  assert.equal(d.format, "capsa-store");
  assert.equal(d.formatVersion, 2);
  assert.ok(isStoreId(d.storeId));
  assert.equal(d.createdAt, "2026-05-10T12:00:00.000Z");
  assert.equal(d.hash, "blake3");
  assert.deepEqual(d.chunking, DEFAULT_CHUNKING);
  assert.equal(d.encryption, null);
  assert.notEqual(createDescriptor().storeId, createDescriptor().storeId);
});

Deno.test("createDescriptor() refuses invalid options with InvalidArgumentError", () => {
  const bad: Array<Parameters<typeof createDescriptor>[0]> = [
    { storeId: "XYZ" },
    { storeId: "0123456789ABCDEF0123456789ABCDEF" },
    { hash: "md5" as "sha256" },
    { chunking: { min: 4096, avg: 4096, max: 16384 } },
    { chunking: { min: 32, avg: 64, max: 128 } },
    { chunking: { min: 1024, avg: 4096, max: 128 * 1024 * 1024 } },
    { chunking: { min: 1024.5, avg: 4096, max: 16384 } },
    { clock: () => Number.NaN },
  ];
  for (const options of bad) {
    assert.throws(() => createDescriptor(options), InvalidArgumentError, JSON.stringify(options));
  }
});

Deno.test("validateDescriptor() applies the chunker's own rules to the chunking", () => {
  validateDescriptor(fixture({ chunking: { min: 64, avg: 100, max: 101 } }));
  assert.throws(
    () => validateDescriptor(fixture({ chunking: { min: 2048, avg: 1024, max: 4096 } })),
    /"chunking" is invalid: .*min < avg < max/,
  );
  assert.throws(
    () => validateDescriptor(fixture({ chunking: { min: 32, avg: 1024, max: 4096 } })),
    /"chunking" is invalid/,
  );
});

Deno.test("validateDescriptor() refuses an unknown field and a wrong type", () => {
  assert.throws(
    () => validateDescriptor({ ...fixture(), extra: 1 } as Descriptor),
    /unknown field "extra"/,
  );
  assert.throws(() => validateDescriptor(fixture({ createdAt: 5 })), /createdAt/);
  assert.throws(
    () => validateDescriptor(fixture({ createdAt: "2026-02-30T00:00:00.000Z" })),
    /createdAt/,
  );
});

// --- encode / decode -------------------------------------------------------

Deno.test("encodeDescriptor() and decodeDescriptor() round trip", () => {
  for (
    const d of [
      fixture(),
      fixture({ hash: "sha256" }),
      fixture({ encryption: ENCRYPTION, formatVersion: 3 }),
    ]
  ) {
    assert.deepEqual(decodeDescriptor(DESCRIPTOR_KEY, encodeDescriptor(d)), d);
  }
});

Deno.test("encodeDescriptor() is canonical: fixed field order, final newline, equal bytes", () => {
  const d = fixture();
  const text = dec.decode(encodeDescriptor(d));
  assert.ok(text.endsWith("}\n"));
  assert.deepEqual(Object.keys(JSON.parse(text)), [
    "format",
    "formatVersion",
    "storeId",
    "createdAt",
    "hash",
    "chunking",
    "encryption",
    "checksum",
  ]);
  const reordered = {
    encryption: null,
    chunking: { max: d.chunking.max, avg: d.chunking.avg, min: d.chunking.min },
    hash: d.hash,
    createdAt: d.createdAt,
    storeId: d.storeId,
    formatVersion: 2,
    format: "capsa-store",
  } as const;
  assert.deepEqual(encodeDescriptor(reordered), encodeDescriptor(d));
  assert.equal(JSON.parse(text).checksum, descriptorChecksum(d));
});

Deno.test("encodeDescriptor() refuses an invalid descriptor", () => {
  assert.throws(() => encodeDescriptor(fixture({ hash: "crc32" })), InvalidArgumentError);
});

Deno.test("decodeDescriptor() ignores whitespace and key order (the checksum is canonical)", () => {
  const obj = jsonOf(fixture());
  const compact = enc.encode(JSON.stringify(Object.fromEntries(Object.entries(obj).reverse())));
  assert.deepEqual(decodeDescriptor(DESCRIPTOR_KEY, compact), fixture());
});

Deno.test("decodeDescriptor() refuses input over the bound before parsing it", () => {
  // Valid JSON padded with spaces: only the size bound can refuse it.
  const good = encodeDescriptor(fixture());
  const padded = new Uint8Array(MAX_DESCRIPTOR_BYTES + 1).fill(0x20);
  padded.set(good, 0);
  assert.match(corruptReason(padded), /larger than the 65536-byte bound/);
  const exactly = new Uint8Array(MAX_DESCRIPTOR_BYTES).fill(0x20);
  exactly.set(good, 0);
  assert.deepEqual(decodeDescriptor(DESCRIPTOR_KEY, exactly), fixture());
});

Deno.test("decodeDescriptor() refuses bytes that are not UTF-8", () => {
  assert.match(corruptReason(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])), /not UTF-8/);
});

Deno.test("decodeDescriptor() refuses text that is not JSON, or not an object", () => {
  assert.match(corruptReason(enc.encode("")), /not JSON/);
  assert.match(corruptReason(enc.encode('{"format": "capsa-store",')), /not JSON/);
  assert.match(corruptReason(enc.encode("[1, 2]")), /not a JSON object/);
  assert.match(corruptReason(enc.encode("null")), /not a JSON object/);
});

Deno.test("decodeDescriptor() refuses another format", () => {
  const obj = { ...jsonOf(fixture()), format: "restic-config" };
  assert.match(corruptReason(bytesOf(obj)), /not a capsa store descriptor/);
  const missing = jsonOf(fixture());
  delete missing.format;
  assert.match(corruptReason(bytesOf(missing)), /not a capsa store descriptor/);
});

Deno.test("decodeDescriptor() refuses an unknown formatVersion, naming the known ones", () => {
  const obj = { ...jsonOf(fixture()), formatVersion: 4 };
  assert.throws(
    () => decodeDescriptor(DESCRIPTOR_KEY, bytesOf(obj)),
    (e: unknown) => {
      assert.ok(e instanceof UnsupportedFormatVersionError);
      assert.ok(e instanceof CorruptObjectError);
      assert.equal(e.code, "unsupported_format_version");
      assert.equal(e.found, 4);
      assert.deepEqual(e.known, [2, 3]);
      assert.match(e.message, /format version 4 \(this version of capsa reads 2, 3\)/);
      return true;
    },
  );
  // Version 1 (the layout before plain keys) was never published: no reader.
  assert.throws(
    () => decodeDescriptor(DESCRIPTOR_KEY, bytesOf({ ...jsonOf(fixture()), formatVersion: 1 })),
    (e: unknown) => e instanceof UnsupportedFormatVersionError && e.found === 1,
  );
  assert.match(
    corruptReason(bytesOf({ ...jsonOf(fixture()), formatVersion: "1" })),
    /"formatVersion" must be an integer/,
  );
});

Deno.test("decodeDescriptor() refuses a missing field", () => {
  for (const field of ["storeId", "createdAt", "hash", "chunking", "encryption"]) {
    const obj = jsonOf(fixture());
    delete obj[field];
    assert.match(corruptReason(bytesOf(obj)), new RegExp(`missing field "${field}"`));
  }
  const chunking = jsonOf(fixture());
  delete (chunking.chunking as Record<string, unknown>).avg;
  assert.match(corruptReason(bytesOf(chunking)), /missing field "chunking.avg"/);
});

Deno.test("decodeDescriptor() refuses an ill-typed or out-of-range field", () => {
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ storeId: 12 }, /storeId/],
    [{ storeId: "0123" }, /storeId/],
    [{ createdAt: "yesterday" }, /createdAt/],
    [{ hash: "md5" }, /"hash" must be one of blake3, sha256/],
    [{ chunking: [1, 2, 3] }, /"chunking" must be an object/],
    [{ chunking: { min: "1024", avg: 4096, max: 16384 } }, /"chunking.min" must be an integer/],
    [{ chunking: { min: 1024, avg: 4096.5, max: 16384 } }, /"chunking.avg" must be an integer/],
    [{ chunking: { min: 1024, avg: 16384, max: 16384 } }, /"chunking" is invalid/],
    [{ encryption: "none", formatVersion: 3 }, /"encryption" must be null or an object/],
    [{ encryption: ENCRYPTION }, /"formatVersion" must be 3 for an encrypted store/],
    [{ formatVersion: 3 }, /"formatVersion" must be 2 for an unencrypted store/],
    [{ encryption: { ...ENCRYPTION, cipher: "chacha20" }, formatVersion: 3 }, /encryption.cipher/],
    [{ encryption: { ...ENCRYPTION, keyCheck: btoa("short") }, formatVersion: 3 }, /keyCheck/],
    [{ encryption: { ...ENCRYPTION, keyCheck: "***" }, formatVersion: 3 }, /keyCheck/],
    [
      { encryption: { ...ENCRYPTION, wrappedKey: btoa("k".repeat(60)) }, formatVersion: 3 },
      /encryption/,
    ],
  ];
  for (const [override, reason] of cases) {
    const obj = { ...jsonOf(fixture()), ...override };
    assert.match(corruptReason(bytesOf(obj)), reason, JSON.stringify(override));
  }
});

Deno.test("decodeDescriptor() refuses an unknown field, even with a matching checksum", () => {
  const obj = { ...jsonOf(fixture()), compression: "zstd" };
  assert.match(corruptReason(bytesOf(obj)), /unknown field "compression"/);
  const nested = jsonOf(fixture());
  (nested.chunking as Record<string, unknown>).window = 64;
  assert.match(corruptReason(bytesOf(nested)), /unknown field "chunking.window"/);
});

Deno.test("decodeDescriptor() refuses a bad or missing checksum", () => {
  const changed = { ...jsonOf(fixture()), hash: "sha256" };
  assert.match(corruptReason(bytesOf(changed, { resum: false })), /checksum mismatch/);
  const missing = jsonOf(fixture());
  delete missing.checksum;
  assert.match(corruptReason(bytesOf(missing, { resum: false })), /missing field "checksum"/);
  const malformed = { ...jsonOf(fixture()), checksum: "md5:abc" };
  assert.match(corruptReason(bytesOf(malformed, { resum: false })), /"checksum" must be/);
});

Deno.test("decodeDescriptor() detects every single flipped bit of store.json", () => {
  const good = encodeDescriptor(fixture());
  let accepted = 0;
  for (let i = 0; i < good.length; i++) {
    for (let bit = 0; bit < 8; bit++) {
      const bad = good.slice();
      bad[i]! ^= 1 << bit;
      try {
        const d = decodeDescriptor(DESCRIPTOR_KEY, bad);
        // Only a flip that leaves the same descriptor (e.g. in whitespace) may pass.
        assert.deepEqual(d, fixture(), `byte ${i} bit ${bit}`);
        accepted++;
      } catch (e) {
        assert.ok(e instanceof CorruptObjectError, `byte ${i} bit ${bit}: ${e}`);
      }
    }
  }
  assert.ok(accepted < good.length, `${accepted} flips accepted`);
});

// --- readDescriptorReplica -------------------------------------------------

Deno.test("readDescriptorReplica() returns the descriptor, or the error for each failure", async () => {
  const objects = new Map<string, Uint8Array>();
  const driver = new MemoryDriver({ objects });
  await driver.put(DESCRIPTOR_KEY, encodeDescriptor(fixture()));
  assert.deepEqual(await readDescriptorReplica(driver, DESCRIPTOR_KEY), {
    where: DESCRIPTOR_KEY,
    result: fixture(),
  });

  const missing = await readDescriptorReplica(driver, DESCRIPTOR_REPLICA_KEY, { where: "r2" });
  assert.equal(missing.where, "r2");
  assert.ok(missing.result instanceof NotFoundError);

  await driver.put(DESCRIPTOR_REPLICA_KEY, enc.encode("garbage"));
  const corrupt = await readDescriptorReplica(driver, DESCRIPTOR_REPLICA_KEY);
  assert.ok(corrupt.result instanceof CorruptObjectError);

  await driver.close();
  const closed = await readDescriptorReplica(driver, DESCRIPTOR_KEY);
  assert.equal(closed.result instanceof Error && closed.result.name, "ClosedError");
});

Deno.test("readDescriptorReplica() reads at most the bound of an oversize object", async () => {
  const driver = new MemoryDriver();
  await driver.put(DESCRIPTOR_KEY, new Uint8Array(10 * MAX_DESCRIPTOR_BYTES).fill(0x20));
  const { result } = await readDescriptorReplica(driver, DESCRIPTOR_KEY);
  assert.ok(result instanceof CorruptObjectError);
  assert.match(result.reason, /65537 bytes or more/);
});

// --- reconcileDescriptors --------------------------------------------------

const A = fixture();
const A_OTHER_CHUNKING = fixture({ chunking: { min: 1024, avg: 4096, max: 16384 } });
const B = fixture({ storeId: "fedcba9876543210fedcba9876543210" });
const R1 = DESCRIPTOR_KEY;
const R2 = DESCRIPTOR_REPLICA_KEY;
const R3 = `host:${HOST_DESCRIPTOR_KEY}`;
const missing = (k: string) => new NotFoundError(k);
const corrupt = (k: string) => new CorruptObjectError(k, "checksum mismatch");
const newer = (k: string) => new UnsupportedFormatVersionError(k, 3, [2]);

Deno.test("reconcileDescriptors() is Ready when every replica is good and equal", () => {
  const r = reconcileDescriptors([
    { where: R1, result: A },
    { where: R2, result: A },
    { where: R3, result: A },
  ]);
  assert.deepEqual(r, { descriptor: A, state: "Ready", toHeal: [], problems: [] });
});

Deno.test("reconcileDescriptors() heals missing and corrupt replicas from a good one", () => {
  const r = reconcileDescriptors([
    { where: R1, result: missing(R1) },
    { where: R2, result: A },
    { where: R3, result: corrupt(R3) },
  ]);
  assert.equal(r.state, "Degraded");
  assert.deepEqual(r.descriptor, A);
  assert.deepEqual(r.toHeal, [R1, R3]);
  assert.deepEqual(r.problems.map((p) => [p.where, p.kind]), [[R1, "missing"], [R3, "corrupt"]]);
  assert.match(r.problems[1]!.detail, /checksum mismatch/);
});

Deno.test("reconcileDescriptors() never heals over an unreadable replica", () => {
  for (const io of [new TransientError("S3 answered 503"), new PermissionDeniedError(R1, "read")]) {
    const r = reconcileDescriptors([
      { where: R1, result: io },
      { where: R2, result: A },
      { where: R3, result: missing(R3) },
    ]);
    assert.equal(r.state, "Degraded");
    assert.deepEqual(r.toHeal, [R3]);
    assert.deepEqual(r.problems.map((p) => p.kind), ["unreadable", "missing"]);
    assert.equal(r.problems[0]!.error, io);
  }
});

Deno.test("reconcileDescriptors() is Degraded when a replica is unreadable even if the rest agree", () => {
  const r = reconcileDescriptors([
    { where: R1, result: A },
    { where: R2, result: new TransientError("timeout") },
  ]);
  assert.equal(r.state, "Degraded");
  assert.deepEqual(r.toHeal, []);
});

Deno.test("reconcileDescriptors() never heals over a replica of a newer format", () => {
  const r = reconcileDescriptors([
    { where: R1, result: newer(R1) },
    { where: R2, result: A },
  ]);
  assert.equal(r.state, "Degraded");
  assert.deepEqual(r.toHeal, []);
  assert.equal(r.problems[0]!.kind, "unsupported");
});

Deno.test("reconcileDescriptors() is Corrupted when every replica is missing or corrupt", () => {
  const r = reconcileDescriptors([
    { where: R1, result: corrupt(R1) },
    { where: R2, result: missing(R2) },
  ]);
  assert.equal(r.state, "Corrupted");
  assert.equal(r.descriptor, undefined);
  assert.deepEqual(r.toHeal, []);
  assert.deepEqual(r.problems.map((p) => p.kind), ["corrupt", "missing"]);
});

Deno.test("reconcileDescriptors() throws the I/O error when no replica is good and one is unreadable", () => {
  const io = new TransientError("connection reset");
  assert.throws(
    () =>
      reconcileDescriptors([
        { where: R1, result: missing(R1) },
        { where: R2, result: io },
      ]),
    (e: unknown) => e === io,
  );
});

Deno.test("reconcileDescriptors() throws for a newer format rather than calling the store Corrupted", () => {
  const v2 = newer(R1);
  assert.throws(
    () =>
      reconcileDescriptors([
        { where: R1, result: v2 },
        { where: R2, result: new TransientError("x") },
      ]),
    (e: unknown) => e === v2,
  );
});

Deno.test("reconcileDescriptors() lets a majority of identical replicas win and heals a differing one", () => {
  const r = reconcileDescriptors([
    { where: R1, result: A_OTHER_CHUNKING },
    { where: R2, result: A },
    { where: R3, result: A },
  ]);
  assert.equal(r.state, "Degraded");
  assert.deepEqual(r.descriptor, A);
  assert.deepEqual(r.toHeal, [R1]);
  assert.deepEqual(r.problems.map((p) => [p.where, p.kind]), [[R1, "differs"]]);
});

Deno.test("reconcileDescriptors() reports but never overwrites a replica of another store", () => {
  const r = reconcileDescriptors([
    { where: R1, result: A },
    { where: R2, result: A },
    { where: R3, result: B },
  ]);
  assert.equal(r.state, "Degraded");
  assert.deepEqual(r.descriptor, A);
  assert.deepEqual(r.toHeal, []);
  assert.equal(r.problems[0]!.kind, "foreign");
  assert.match(r.problems[0]!.detail, /another store \(fedcba98/);
});

Deno.test("reconcileDescriptors() refuses to guess on a tie with DescriptorConflictError", () => {
  const ties: DescriptorReading[][] = [
    [{ where: R1, result: A }, { where: R2, result: B }],
    [{ where: R1, result: A }, { where: R2, result: B }, { where: R3, result: missing(R3) }],
    [{ where: R1, result: A }, { where: R2, result: A_OTHER_CHUNKING }],
  ];
  for (const readings of ties) {
    assert.throws(
      () => reconcileDescriptors(readings),
      (e: unknown) => {
        assert.ok(e instanceof DescriptorConflictError);
        assert.equal(e.code, "descriptor_conflict");
        assert.equal(e.candidates.length, 2);
        assert.deepEqual(e.candidates[0]!.where, [R1]);
        assert.match(e.message, /Recovery Kit/);
        return true;
      },
    );
  }
});

Deno.test("reconcileDescriptors() refuses empty or duplicate readings", () => {
  assert.throws(() => reconcileDescriptors([]), InvalidArgumentError);
  assert.throws(
    () => reconcileDescriptors([{ where: R1, result: A }, { where: R1, result: A }]),
    InvalidArgumentError,
  );
});

Deno.test("reconcileDescriptors() over a real driver: heal, then Ready", async () => {
  const driver = new MemoryDriver();
  await driver.put(DESCRIPTOR_KEY, encodeDescriptor(A));
  await driver.put(DESCRIPTOR_REPLICA_KEY, enc.encode('{"format":"capsa-store"'));
  const read = () =>
    Promise.all(LOCATION_DESCRIPTOR_KEYS.map((k) => readDescriptorReplica(driver, k)));
  const first = reconcileDescriptors(await read());
  assert.equal(first.state, "Degraded");
  for (const key of first.toHeal) await driver.put(key, encodeDescriptor(first.descriptor!));
  const second = reconcileDescriptors(await read());
  assert.equal(second.state, "Ready");
  assert.deepEqual(second.descriptor, A);
});
