import assert from "node:assert/strict";
import {
  CONFIG_LIMITS,
  type ConfigDriver,
  type ConfigSettings,
  decodeConfig,
  defaultConfig,
  encodeConfig,
  MAX_CONFIG_BYTES,
  readConfigHistory,
  readCurrentPointer,
  resolveCurrentConfig,
  type StoreConfig,
  validateConfig,
  writeConfigVersion,
  writeCurrentPointer,
} from "./config.ts";
import { canonicalChecksum } from "./fields.ts";
import {
  CorruptObjectError,
  InvalidArgumentError,
  NotFoundError,
  PreconditionFailedError,
  TransientError,
  UnsupportedFormatVersionError,
} from "../errors.ts";
import { MemoryDriver } from "../drivers/memory.ts";
import { CONFIG_CURRENT_KEY, configVersionKey, parseConfigVersionKey } from "../layout.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const T0 = Date.UTC(2026, 4, 10, 12, 0, 0, 0);
const clock = () => T0;
const KEY1 = "system.config/0000000001.json";

function v(seq: number, overrides: Partial<ConfigSettings> = {}): StoreConfig {
  return { seq, createdAt: new Date(T0).toISOString(), ...defaultConfig(), ...overrides };
}

/** Re-encodes a tampered config object, its checksum recomputed unless told not to. */
function bytesOf(obj: Record<string, unknown>, { resum = true } = {}): Uint8Array {
  const copy = { ...obj };
  if (resum) {
    delete copy.checksum;
    copy.checksum = canonicalChecksum(copy);
  }
  return enc.encode(JSON.stringify(copy, null, 2) + "\n");
}

function jsonOf(config: StoreConfig): Record<string, unknown> {
  return JSON.parse(dec.decode(encodeConfig(config)));
}

function corruptReason(bytes: Uint8Array, key = KEY1): string {
  try {
    decodeConfig(key, bytes);
  } catch (e) {
    assert.ok(e instanceof CorruptObjectError, `expected CorruptObjectError, got ${e}`);
    assert.equal(e.key, key);
    return e.reason;
  }
  assert.fail("decodeConfig() accepted it");
}

/**
 * A real MemoryDriver behind a wrapper that injects faults: an error from the
 * n-th put, from reads of chosen keys, or a listing that hides keys.
 */
class Faulty implements ConfigDriver {
  readonly inner: MemoryDriver;
  puts = 0;
  failPut: number | undefined;
  failRead = new Set<string>();
  hideFromList = false;
  constructor(inner = new MemoryDriver()) {
    this.inner = inner;
  }
  getRange(key: string, offset: number, length: number): Promise<Uint8Array> {
    if (this.failRead.has(key)) return Promise.reject(new TransientError(`read ${key}: timeout`));
    return this.inner.getRange(key, offset, length);
  }
  put(key: string, bytes: Uint8Array, options?: { ifAbsent?: boolean }): Promise<void> {
    this.puts++;
    if (this.puts === this.failPut) return Promise.reject(new TransientError(`put ${key}: reset`));
    return this.inner.put(key, bytes, options?.ifAbsent ? { ifAbsent: true } : {});
  }
  async *list(prefix: string): AsyncIterable<{ key: string; size: number }> {
    if (this.hideFromList) return;
    yield* this.inner.list(prefix);
  }
}

// --- defaults and validation ----------------------------------------------

Deno.test("defaultConfig() is valid, also against the default chunking", () => {
  const d = defaultConfig();
  validateConfig(d);
  validateConfig(d, { chunking: { min: 256 * 1024, avg: 1024 * 1024, max: 4 * 1024 * 1024 } });
  assert.deepEqual(d, {
    inlineThreshold: 256,
    chunkThreshold: 1024 * 1024,
    packTargetSize: 16 * 1024 * 1024,
    packLingerMs: 20,
    snapshotEveryPacks: 256,
    snapshotIntervalMs: 3_600_000,
    snapshotsKept: 2,
    manifestStorage: "Remote",
    compression: "zstd",
    compressionLevel: 3,
  });
  assert.notEqual(defaultConfig(), defaultConfig());
});

Deno.test("validateConfig() refuses nonsense with InvalidArgumentError naming the field", () => {
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ inlineThreshold: -1 }, /"inlineThreshold" must be in \[0, 65536\]/],
    [{ chunkThreshold: 1.5 }, /"chunkThreshold" must be an integer/],
    [{ packTargetSize: 100 }, /"packTargetSize" must be in/],
    [{ packLingerMs: Number.NaN }, /"packLingerMs" must be an integer/],
    [{ snapshotsKept: 0 }, /"snapshotsKept" must be in \[1, 1000\]/],
    [{ snapshotEveryPacks: -5 }, /"snapshotEveryPacks"/],
    [{ snapshotIntervalMs: Infinity }, /"snapshotIntervalMs"/],
    [{ manifestStorage: "remote" }, /"manifestStorage" must be one of Remote, Local, Replicated/],
    [{ inlineThreshold: 8192, chunkThreshold: 4096 }, /must not exceed "chunkThreshold"/],
    [{ inlineTreshold: 10 }, /unknown field "inlineTreshold"/],
    [{ seq: 0 }, /"seq"/],
    [{ createdAt: "now" }, /"createdAt"/],
  ];
  for (const [override, message] of cases) {
    assert.throws(
      () => validateConfig({ ...defaultConfig(), ...override } as ConfigSettings),
      (e: unknown) => e instanceof InvalidArgumentError && message.test(e.message),
      JSON.stringify(override),
    );
  }
  assert.throws(() => validateConfig(null as unknown as ConfigSettings), InvalidArgumentError);
});

Deno.test("validateConfig() never takes a string for a number", () => {
  assert.throws(
    () =>
      validateConfig({ ...defaultConfig(), inlineThreshold: "4096" } as unknown as ConfigSettings),
    /"inlineThreshold" must be an integer, got "4096" \(string\)/,
  );
});

Deno.test("validateConfig() refuses a missing setting", () => {
  const { packLingerMs: _, ...partial } = defaultConfig();
  assert.throws(
    () => validateConfig(partial as ConfigSettings),
    /missing field "packLingerMs"/,
  );
});

Deno.test("validateConfig() refuses a pack target smaller than the largest chunk", () => {
  const chunking = { min: 1024 * 1024, avg: 4 * 1024 * 1024, max: 32 * 1024 * 1024 };
  assert.throws(
    () => validateConfig(defaultConfig(), { chunking }),
    /"packTargetSize" \(16777216\) must be at least the largest chunk \(chunking.max = 33554432\)/,
  );
  validateConfig({ ...defaultConfig(), packTargetSize: 32 * 1024 * 1024 }, { chunking });
  assert.throws(
    () => validateConfig(defaultConfig(), { chunking: { min: 10, avg: 20, max: 30 } }),
    InvalidArgumentError,
  );
});

Deno.test("validateConfig() accepts every limit's bounds", () => {
  for (const [field, { min, max }] of Object.entries(CONFIG_LIMITS)) {
    for (const value of [min, max]) {
      const s = { ...defaultConfig(), [field]: value };
      if (field === "inlineThreshold") Object.assign(s, { chunkThreshold: Math.max(value, 1) });
      if (field === "chunkThreshold") Object.assign(s, { inlineThreshold: Math.min(value, 256) });
      validateConfig(s);
    }
  }
});

// --- keys -----------------------------------------------------------------

Deno.test("configVersionKey() zero-pads the seq to ten digits", () => {
  assert.equal(configVersionKey(1), KEY1);
  assert.equal(configVersionKey(9_999_999_999), "system.config/9999999999.json");
  for (const bad of [0, -1, 1.5, 10_000_000_000, Number.NaN]) {
    assert.throws(() => configVersionKey(bad), InvalidArgumentError, String(bad));
  }
});

Deno.test("parseConfigVersionKey() reads only well-formed version keys", () => {
  assert.equal(parseConfigVersionKey("system.config/0000000042.json"), 42);
  for (
    const other of [
      CONFIG_CURRENT_KEY,
      "system.config/42.json",
      "system.config/00000000042.json",
      "system.config/0000000000.json",
      "system.config/0000000042.json.tmp",
      "other/0000000042.json",
    ]
  ) {
    assert.equal(parseConfigVersionKey(other), undefined, other);
  }
});

// --- encode / decode -------------------------------------------------------

Deno.test("encodeConfig() and decodeConfig() round trip", () => {
  const c = v(3, { manifestStorage: "Replicated", inlineThreshold: 0 });
  assert.deepEqual(decodeConfig(configVersionKey(3), encodeConfig(c)), c);
});

Deno.test("encodeConfig() writes format, version, fields and checksum, newline-terminated", () => {
  const text = dec.decode(encodeConfig(v(1)));
  assert.ok(text.endsWith("}\n"));
  const keys = Object.keys(JSON.parse(text));
  assert.deepEqual(keys.slice(0, 4), ["format", "formatVersion", "seq", "createdAt"]);
  assert.equal(keys[keys.length - 1], "checksum");
  assert.equal(JSON.parse(text).format, "capsa-config");
});

Deno.test("encodeConfig() refuses an invalid config", () => {
  assert.throws(() => encodeConfig({ ...v(1), seq: 0 }), InvalidArgumentError);
  assert.throws(() => encodeConfig({ ...v(1), snapshotsKept: 0 }), InvalidArgumentError);
});

Deno.test("decodeConfig() refuses input over the bound before parsing it", () => {
  const padded = new Uint8Array(MAX_CONFIG_BYTES + 1).fill(0x20);
  padded.set(encodeConfig(v(1)), 0);
  assert.match(corruptReason(padded), /larger than the 65536-byte bound/);
});

Deno.test("decodeConfig() refuses non-UTF-8, non-JSON and non-object input", () => {
  assert.match(corruptReason(new Uint8Array([0xc3, 0x28])), /not UTF-8/);
  assert.match(corruptReason(enc.encode("seq=1")), /not JSON/);
  assert.match(corruptReason(enc.encode('"capsa-config"')), /not a JSON object/);
});

Deno.test("decodeConfig() refuses another format and an unknown formatVersion", () => {
  assert.match(
    corruptReason(bytesOf({ ...jsonOf(v(1)), format: "capsa-store" })),
    /not a capsa config/,
  );
  assert.throws(
    () => decodeConfig(KEY1, bytesOf({ ...jsonOf(v(1)), formatVersion: 7 })),
    (e: unknown) => e instanceof UnsupportedFormatVersionError && e.found === 7,
  );
});

Deno.test("decodeConfig() refuses a type mismatch under a good checksum: never a default", () => {
  for (
    const [field, value] of [
      ["inlineThreshold", "4096"],
      ["packTargetSize", null],
      ["snapshotsKept", 3.5],
      ["manifestStorage", 0],
      ["seq", "1"],
    ] as const
  ) {
    const reason = corruptReason(bytesOf({ ...jsonOf(v(1)), [field]: value }));
    assert.match(reason, new RegExp(`"${field}" must be`), field);
  }
});

Deno.test("decodeConfig() refuses a missing field and an unknown field", () => {
  const missing = jsonOf(v(1));
  delete missing.chunkThreshold;
  assert.match(corruptReason(bytesOf(missing)), /missing field "chunkThreshold"/);
  assert.match(
    corruptReason(bytesOf({ ...jsonOf(v(1)), compresion: "zstd" })),
    /unknown field "compresion"/,
  );
  const noLevel = jsonOf(v(1));
  delete noLevel.compressionLevel;
  assert.match(corruptReason(bytesOf(noLevel)), /missing field "compressionLevel"/);
});

Deno.test("config format 2 carries compression; a format 1 config reads as compression none", () => {
  const json = jsonOf(v(1));
  assert.deepEqual(
    [json.formatVersion, json.compression, json.compressionLevel],
    [2, "zstd", 3],
  );
  // A config written before compression existed: format 1, no compression fields.
  const old: Record<string, unknown> = { ...json, formatVersion: 1 };
  delete old.compression;
  delete old.compressionLevel;
  const read = decodeConfig(KEY1, bytesOf(old));
  assert.deepEqual([read.compression, read.compressionLevel], ["none", 3]);
  // Re-encoding it writes format 2 and keeps "none".
  const again = jsonOf(read);
  assert.deepEqual([again.formatVersion, again.compression], [2, "none"]);
  // Format 1 never had the fields: one there is refused, not read.
  assert.match(
    corruptReason(bytesOf({ ...old, compression: "zstd" })),
    /unknown field "compression"/,
  );
  for (
    const [field, value] of [["compression", "gzip"], ["compressionLevel", 20], [
      "compressionLevel",
      0,
    ], ["compression", 1]] as const
  ) {
    assert.match(
      corruptReason(bytesOf({ ...json, [field]: value })),
      new RegExp(`"${field}" must`),
    );
  }
  assert.throws(
    () => validateConfig({ ...defaultConfig(), compression: "lz4" as "zstd" }),
    InvalidArgumentError,
  );
});

Deno.test("decodeConfig() refuses a bad or missing checksum", () => {
  const altered = { ...jsonOf(v(1)), packLingerMs: 21 };
  assert.match(corruptReason(bytesOf(altered, { resum: false })), /checksum mismatch/);
  const missing = jsonOf(v(1));
  delete missing.checksum;
  assert.match(corruptReason(bytesOf(missing, { resum: false })), /missing field "checksum"/);
});

Deno.test("decodeConfig() refuses a well-typed config that breaks a rule", () => {
  const obj = { ...jsonOf(v(1)), inlineThreshold: 4096, chunkThreshold: 1024 };
  assert.match(corruptReason(bytesOf(obj)), /must not exceed "chunkThreshold"/);
  const small = encodeConfig(v(1, { packTargetSize: 1024 * 1024 }));
  assert.throws(
    () => decodeConfig(KEY1, small, { chunking: { min: 1024, avg: 1 << 20, max: 2 << 20 } }),
    /packTargetSize/,
  );
});

// --- writeConfigVersion ----------------------------------------------------

Deno.test("writeConfigVersion() writes seq 1, then 2, and points current at each", async () => {
  const driver = new MemoryDriver();
  const first = await writeConfigVersion(driver, defaultConfig(), { clock });
  assert.deepEqual(first, v(1));
  assert.equal(dec.decode(await driver.get(CONFIG_CURRENT_KEY)), "1\n");
  assert.deepEqual(decodeConfig(KEY1, await driver.get(KEY1)), first);

  const second = await writeConfigVersion(driver, { ...first, packLingerMs: 50 }, { clock });
  assert.equal(second.seq, 2);
  assert.equal(second.packLingerMs, 50);
  assert.equal(dec.decode(await driver.get(CONFIG_CURRENT_KEY)), "2\n");
  assert.deepEqual(decodeConfig(KEY1, await driver.get(KEY1)), first, "version 1 is unchanged");
});

Deno.test("writeConfigVersion() writes nothing for invalid settings", async () => {
  const driver = new MemoryDriver();
  await assert.rejects(
    writeConfigVersion(driver, { ...defaultConfig(), packTargetSize: -1 }),
    InvalidArgumentError,
  );
  await assert.rejects(
    writeConfigVersion(driver, defaultConfig(), {
      chunking: { min: 1 << 20, avg: 1 << 22, max: 1 << 25 },
    }),
    /packTargetSize/,
  );
  assert.equal(driver.objects.size, 0);
});

Deno.test("writeConfigVersion() takes the seq after every version key, valid or not", async () => {
  const driver = new MemoryDriver();
  await writeConfigVersion(driver, defaultConfig());
  await driver.put(configVersionKey(5), enc.encode("garbage"));
  const next = await writeConfigVersion(driver, defaultConfig());
  assert.equal(next.seq, 6);
});

Deno.test("writeConfigVersion() racing writers get distinct seqs and never overwrite", async () => {
  const driver = new Faulty();
  const written = await Promise.all(
    Array.from(
      { length: 5 },
      (_, i) => writeConfigVersion(driver, { ...defaultConfig(), packLingerMs: i }),
    ),
  );
  assert.deepEqual(written.map((c) => c.seq).sort(), [1, 2, 3, 4, 5]);
  assert.ok(driver.puts > 10, "some create-only puts lost their race and were retried");
  const { versions, invalid } = await readConfigHistory(driver);
  assert.deepEqual(invalid, []);
  for (const c of written) assert.deepEqual(versions[c.seq - 1], c);
});

Deno.test("writeConfigVersion() gives up with PreconditionFailedError after maxAttempts", async () => {
  const faulty = new Faulty();
  await writeConfigVersion(faulty, defaultConfig());
  faulty.hideFromList = true; // every attempt then picks seq 1, which exists
  await assert.rejects(
    writeConfigVersion(faulty, defaultConfig(), { maxAttempts: 3 }),
    PreconditionFailedError,
  );
  assert.equal(faulty.puts, 3 + 3); // version, replica and pointer; then three lost races
});

Deno.test("writeConfigVersion() makes the version durable before the pointer names it", async () => {
  // Fail each write in turn: the pointer never names a version that is not there.
  for (let k = 1; k <= 2; k++) {
    const faulty = new Faulty();
    await writeConfigVersion(faulty, defaultConfig(), { clock });
    faulty.puts = 0;
    faulty.failPut = k;
    await assert.rejects(
      writeConfigVersion(faulty, { ...defaultConfig(), snapshotsKept: 9 }, { clock }),
      TransientError,
    );
    const r = await resolveCurrentConfig(faulty);
    assert.equal(r.pointer, "ok", `failed write ${k}`);
    assert.deepEqual(r.config, v(1), `failed write ${k}: the old version is still in force`);
    assert.equal(r.newestValid.seq, k === 1 ? 1 : 2);
  }
});

// --- readConfigHistory -----------------------------------------------------

Deno.test("readConfigHistory() returns valid versions in seq order and lists the invalid ones", async () => {
  const driver = new MemoryDriver();
  for (let i = 0; i < 3; i++) await writeConfigVersion(driver, defaultConfig(), { clock });
  await driver.put(configVersionKey(4), enc.encode("{}"));
  await driver.put(configVersionKey(5), await driver.get(configVersionKey(2)));
  await driver.put(configVersionKey(6), new Uint8Array(MAX_CONFIG_BYTES + 10));
  await driver.put("system.config/notes.txt", enc.encode("hello"));
  const { versions, invalid } = await readConfigHistory(driver);
  assert.deepEqual(versions, [v(1), v(2), v(3)]);
  assert.deepEqual(invalid.map((i) => i.key), [
    configVersionKey(4),
    configVersionKey(5),
    configVersionKey(6),
    "system.config/notes.txt",
  ]);
  assert.match(invalid[0]!.reason, /not a capsa config/);
  assert.match(invalid[1]!.reason, /holds seq 2, but its key names seq 5/);
  assert.match(invalid[2]!.reason, /larger than the 65536-byte bound/);
  assert.match(invalid[3]!.reason, /not a config version key/);
});

Deno.test("readConfigHistory() of an empty Location is empty", async () => {
  assert.deepEqual(await readConfigHistory(new MemoryDriver()), {
    versions: [],
    invalid: [],
    toHeal: [],
  });
});

Deno.test("readConfigHistory() propagates a failed read instead of dropping the version", async () => {
  const faulty = new Faulty();
  await writeConfigVersion(faulty, defaultConfig());
  faulty.failRead.add(KEY1);
  await assert.rejects(readConfigHistory(faulty), TransientError);
  const closed = new MemoryDriver();
  await closed.close();
  await assert.rejects(
    readConfigHistory(closed),
    (e: unknown) => (e as Error).name === "ClosedError",
  );
});

// --- readCurrentPointer ----------------------------------------------------

Deno.test("readCurrentPointer() reads the seq, with or without a final newline", async () => {
  const driver = new MemoryDriver();
  for (const [text, seq] of [["7\n", 7], ["7", 7], ["9999999999\n", 9_999_999_999]] as const) {
    await driver.put(CONFIG_CURRENT_KEY, enc.encode(text));
    assert.deepEqual(await readCurrentPointer(driver), { seq });
  }
});

Deno.test("readCurrentPointer() reports a missing or malformed pointer as dangling", async () => {
  const driver = new MemoryDriver();
  assert.deepEqual(await readCurrentPointer(driver), {
    dangling: "system.config/current does not exist",
  });
  for (const text of ["", "0\n", "07\n", "-1\n", "7\n\n", " 7", "7 \n", "abc", "7\r\n", "1e3"]) {
    await driver.put(CONFIG_CURRENT_KEY, enc.encode(text));
    const p = await readCurrentPointer(driver);
    assert.ok("dangling" in p, JSON.stringify(text));
    assert.match(p.dangling, /does not hold a seq/);
  }
  await driver.put(CONFIG_CURRENT_KEY, new Uint8Array([0x31, 0xff]));
  assert.deepEqual(await readCurrentPointer(driver), {
    dangling: "system.config/current is not UTF-8 text",
  });
  await driver.put(CONFIG_CURRENT_KEY, enc.encode("1".repeat(100)));
  assert.match((await readCurrentPointer(driver) as { dangling: string }).dangling, /larger/);
});

Deno.test("readCurrentPointer() propagates a failed read", async () => {
  const faulty = new Faulty();
  faulty.failRead.add(CONFIG_CURRENT_KEY);
  await assert.rejects(readCurrentPointer(faulty), TransientError);
});

// --- resolveCurrentConfig --------------------------------------------------

Deno.test("resolveCurrentConfig() follows a pointer to a valid version", async () => {
  const driver = new MemoryDriver();
  await writeConfigVersion(driver, defaultConfig(), { clock });
  const r = await resolveCurrentConfig(driver);
  assert.deepEqual(r, { config: v(1), pointer: "ok", newestValid: v(1), invalid: [], toHeal: [] });
});

Deno.test("resolveCurrentConfig() keeps the pointer's version when a newer one was never committed", async () => {
  const driver = new MemoryDriver();
  await writeConfigVersion(driver, defaultConfig(), { clock });
  await driver.put(configVersionKey(2), encodeConfig(v(2, { packLingerMs: 99 })));
  const r = await resolveCurrentConfig(driver);
  assert.equal(r.pointer, "ok");
  assert.equal(r.config.seq, 1);
  assert.equal(r.newestValid.seq, 2);
});

Deno.test("resolveCurrentConfig() falls back to the newest valid version when the pointer dangles", async () => {
  const driver = new MemoryDriver();
  await writeConfigVersion(driver, defaultConfig(), { clock });
  await writeConfigVersion(driver, defaultConfig(), { clock });
  await driver.put(configVersionKey(3), enc.encode("{ torn"));
  const cases: Array<[string | undefined, RegExp]> = [
    [undefined, /does not exist/],
    ["junk", /does not hold a seq/],
    ["9\n", /names seq 9, which does not exist/],
    ["3\n", /names seq 3, which is invalid: not JSON/],
  ];
  for (const [pointer, reason] of cases) {
    if (pointer === undefined) await driver.delete(CONFIG_CURRENT_KEY);
    else await driver.put(CONFIG_CURRENT_KEY, enc.encode(pointer));
    const r = await resolveCurrentConfig(driver);
    assert.equal(r.pointer, "dangling");
    assert.deepEqual(r.config, v(2));
    assert.match(r.danglingReason!, reason);
    assert.equal(r.invalid.length, 1);
  }
});

Deno.test("resolveCurrentConfig() throws CorruptObjectError when no valid version exists", async () => {
  const driver = new MemoryDriver();
  await assert.rejects(resolveCurrentConfig(driver), /no StoreConfig version exists/);
  await driver.put(KEY1, enc.encode("{}"));
  await driver.put(CONFIG_CURRENT_KEY, enc.encode("1\n"));
  await assert.rejects(
    resolveCurrentConfig(driver),
    (e: unknown) =>
      e instanceof CorruptObjectError && e.key === "system.config/" &&
      /none of the 1 StoreConfig versions is valid/.test(e.reason),
  );
});

Deno.test("resolveCurrentConfig() propagates a failed listing", async () => {
  const driver = new MemoryDriver();
  await writeConfigVersion(driver, defaultConfig());
  await driver.close();
  await assert.rejects(
    resolveCurrentConfig(driver),
    (e: unknown) => (e as Error).name === "ClosedError",
  );
});

// --- writeCurrentPointer ---------------------------------------------------

Deno.test("writeCurrentPointer() repairs a dangling pointer", async () => {
  const driver = new MemoryDriver();
  await writeConfigVersion(driver, defaultConfig(), { clock });
  await driver.delete(CONFIG_CURRENT_KEY);
  await writeCurrentPointer(driver, 1);
  assert.equal((await resolveCurrentConfig(driver)).pointer, "ok");
});

Deno.test("writeCurrentPointer() refuses to name a missing or invalid version", async () => {
  const driver = new MemoryDriver();
  await writeConfigVersion(driver, defaultConfig(), { clock });
  await assert.rejects(writeCurrentPointer(driver, 2), NotFoundError);
  await driver.put(configVersionKey(2), enc.encode("{}"));
  await assert.rejects(writeCurrentPointer(driver, 2), CorruptObjectError);
  await driver.put(configVersionKey(3), encodeConfig(v(1)));
  await assert.rejects(writeCurrentPointer(driver, 3), /holds seq 1, but its key names seq 3/);
  assert.equal(dec.decode(await driver.get(CONFIG_CURRENT_KEY)), "1\n");
});

Deno.test("writeConfigVersion() writes each version twice; one damaged or lost copy leaves it valid and listed to heal", async () => {
  const driver = new MemoryDriver();
  await writeConfigVersion(driver, defaultConfig());
  const primary = "system.config/0000000001.json";
  const replica = "system.state/config/0000000001.json";
  assert.deepEqual(await driver.get(primary), await driver.get(replica));
  const sound = await driver.get(primary);

  const flipped = sound.slice();
  flipped[20]! ^= 0x01;
  await driver.put(primary, flipped);
  let r = await resolveCurrentConfig(driver);
  assert.equal(r.pointer, "ok");
  assert.equal(r.config.seq, 1);
  assert.deepEqual(r.invalid.map((i) => i.key), [primary]);
  assert.deepEqual(r.toHeal.map((h) => h.key), [primary]);
  assert.deepEqual(r.toHeal[0]!.bytes, sound);

  await driver.put(primary, sound);
  await driver.delete(replica);
  r = await resolveCurrentConfig(driver);
  assert.deepEqual(r.invalid, []);
  assert.deepEqual(r.toHeal.map((h) => h.key), [replica]);

  // Both copies gone: the version is gone, and the next seq is still 2.
  await driver.delete(primary);
  await assert.rejects(resolveCurrentConfig(driver), CorruptObjectError);
  await driver.put(replica, sound);
  assert.equal((await writeConfigVersion(driver, defaultConfig())).seq, 2);
});

Deno.test("A config's retention policy is optional, round-trips, and is checked field by field", () => {
  const v = (retention: unknown) =>
    ({ seq: 2, createdAt: "2026-05-10T12:00:00.000Z", ...defaultConfig(), retention }) as never;
  const good = {
    keepVersions: 3,
    keepWithin: 86_400_000,
    namespaces: { logs: { dropDeletedAfter: 0 } },
  };
  const back = decodeConfig("system.config/0000000002.json", encodeConfig(v(good)));
  assert.deepEqual(back.retention, good);
  // Absent (every config written before it): every version kept.
  assert.equal(
    decodeConfig(
      "system.config/0000000001.json",
      encodeConfig({ seq: 1, createdAt: "2026-05-10T12:00:00.000Z", ...defaultConfig() }),
    ).retention,
    undefined,
  );
  for (
    const [bad, reason] of [
      [{ keepVersions: 0 }, /"retention".keepVersions must be an integer/],
      [{ keepWithin: -1 }, /"retention".keepWithin must be a duration/],
      [{ keep: 1 }, /unknown field "keep" in "retention"/],
      [
        { namespaces: { a: { namespaces: {} } } },
        /unknown field "namespaces" in "retention".namespaces\["a"\]/,
      ],
      [[], /"retention" must be an object/],
    ] as const
  ) {
    assert.throws(() => encodeConfig(v(bad)), reason);
  }
});
