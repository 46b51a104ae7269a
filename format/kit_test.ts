import assert from "node:assert/strict";
import {
  descriptorFromKit,
  encodeRecoveryKit,
  MAX_RECOVERY_KIT_BYTES,
  parseRecoveryKit,
  type RecoveryKit,
  RecoveryKitInvalidError,
  type RecoveryKitProblem,
} from "./kit.ts";
import {
  createDescriptor,
  type Descriptor,
  descriptorChecksum,
  encodeDescriptor,
  LOCATION_DESCRIPTOR_KEYS,
  readDescriptorReplica,
  reconcileDescriptors,
} from "./descriptor.ts";
import { InvalidArgumentError } from "../errors.ts";
import { MemoryDriver } from "../drivers/memory.ts";
import { DESCRIPTOR_KEY, DESCRIPTOR_REPLICA_KEY } from "../layout.ts";

const enc = new TextEncoder();
const T0 = Date.UTC(2026, 4, 10, 12, 0, 0, 0);
const D: Descriptor = createDescriptor({
  storeId: "0123456789abcdef0123456789abcdef",
  hash: "blake3",
  chunking: { min: 262144, avg: 1048576, max: 4194304 },
  clock: () => T0,
});
const KIT = encodeRecoveryKit(D, { location: "s3://backups/capsa?region=eu-west-1" });

/** Parses and expects a refusal for `reason`; returns the error. */
function refused(input: string | Uint8Array, reason: RecoveryKitProblem): RecoveryKitInvalidError {
  try {
    parseRecoveryKit(input);
  } catch (e) {
    assert.ok(e instanceof RecoveryKitInvalidError, `expected RecoveryKitInvalidError, got ${e}`);
    assert.equal(e.reason, reason, e.message);
    assert.equal(e.code, "recovery_kit_invalid");
    return e;
  }
  assert.fail(`parseRecoveryKit() accepted a kit that should fail with ${reason}`);
}

/** The kit with the line starting with `prefix` replaced (or removed when `by` is undefined). */
function edit(prefix: string, by?: string): string {
  const lines = KIT.split("\n");
  const i = lines.findIndex((l) => l.startsWith(prefix));
  assert.ok(i >= 0, prefix);
  if (by === undefined) lines.splice(i, 1);
  else lines[i] = by;
  return lines.join("\n");
}

/** A kit for `d` with its checksum line kept valid, whatever else was changed. */
function kitWith(d: Descriptor, change: (text: string) => string): string {
  return change(encodeRecoveryKit(d));
}

// --- encode ----------------------------------------------------------------

Deno.test("encodeRecoveryKit() writes the documented layout", () => {
  assert.equal(
    KIT,
    [
      "capsa recovery kit v1",
      "# Keep this file offline. It can rewrite this store's descriptor (store.json) if every copy is lost.",
      "# Restore with: capsa rebuild s3://backups/capsa?region=eu-west-1 --kit THIS_FILE",
      "# location is informational; checksum is that of store.json and covers every other field.",
      "store-id: 0123456789abcdef0123456789abcdef",
      "created-at: 2026-05-10T12:00:00.000Z",
      "format-version: 2",
      "hash: blake3",
      "chunking: min=262144 avg=1048576 max=4194304",
      "encryption: none",
      "location: s3://backups/capsa?region=eu-west-1",
      `checksum: ${descriptorChecksum(D)}`,
      "",
    ].join("\n"),
  );
});

Deno.test("encodeRecoveryKit() puts the checksum of store.json in the kit", () => {
  const stored = JSON.parse(new TextDecoder().decode(encodeDescriptor(D)));
  assert.equal(parseRecoveryKit(KIT).checksum, stored.checksum);
});

Deno.test("encodeRecoveryKit() omits the location when none is given", () => {
  const text = encodeRecoveryKit(D);
  assert.ok(!text.includes("location:"));
  assert.ok(text.includes("capsa rebuild LOCATION --kit THIS_FILE"));
  assert.equal(parseRecoveryKit(text).location, undefined);
});

Deno.test("encodeRecoveryKit() refuses an encrypted store without slots, an invalid descriptor and a multi-line location", () => {
  const encrypted = {
    ...D,
    formatVersion: 3,
    encryption: { cipher: "aes-256-gcm", keyCheck: btoa("k".repeat(32)) },
  } as const;
  assert.throws(
    () => encodeRecoveryKit(encrypted),
    (e: unknown) => e instanceof InvalidArgumentError && /needs its key slots/.test(e.message),
  );
  assert.throws(() => encodeRecoveryKit({ ...D, storeId: "x" }), InvalidArgumentError);
  for (const location of ["a\nchecksum: x", "", " padded", "tab\there", "x".repeat(1025)]) {
    assert.throws(
      () => encodeRecoveryKit(D, { location }),
      InvalidArgumentError,
      JSON.stringify(location),
    );
  }
});

// --- round trip and tolerance ---------------------------------------------

Deno.test("parseRecoveryKit() and descriptorFromKit() give back the descriptor", () => {
  const kit = parseRecoveryKit(KIT);
  assert.deepEqual(
    kit,
    {
      version: 1,
      storeId: D.storeId,
      createdAt: D.createdAt,
      formatVersion: 2,
      hash: "blake3",
      chunking: D.chunking,
      encryption: null,
      keySlots: [],
      location: "s3://backups/capsa?region=eu-west-1",
      checksum: descriptorChecksum(D),
    } satisfies RecoveryKit,
  );
  assert.deepEqual(descriptorFromKit(kit), D);
  const sha = createDescriptor({ hash: "sha256", chunking: { min: 64, avg: 128, max: 4096 } });
  assert.deepEqual(descriptorFromKit(parseRecoveryKit(encodeRecoveryKit(sha))), sha);
});

Deno.test("parseRecoveryKit() reads the bytes of a kit file", () => {
  assert.deepEqual(parseRecoveryKit(enc.encode(KIT)), parseRecoveryKit(KIT));
});

Deno.test("parseRecoveryKit() tolerates CRLF line endings and a BOM (Windows editors)", () => {
  const crlf = KIT.replaceAll("\n", "\r\n");
  assert.deepEqual(parseRecoveryKit(crlf), parseRecoveryKit(KIT));
  assert.deepEqual(parseRecoveryKit("\uFEFF" + crlf), parseRecoveryKit(KIT));
  assert.deepEqual(parseRecoveryKit(enc.encode("\uFEFF" + crlf)), parseRecoveryKit(KIT));
});

Deno.test("parseRecoveryKit() allows comments, blank lines and fields in any order before the checksum", () => {
  const lines = KIT.trimEnd().split("\n");
  const checksum = lines.pop()!;
  const fields = lines.slice(1).filter((l) => !l.startsWith("#") && !l.startsWith("hash:"));
  const text = [
    "capsa recovery kit v1",
    "",
    "# printed 2026-05-10, kept in the safe",
    "   # an indented comment",
    ...fields.reverse().flatMap((f) => [f, "\t"]),
    "hash:    blake3   ",
    checksum,
    "",
    "   ",
    "",
  ].join("\n");
  const kit = parseRecoveryKit(text);
  assert.equal(kit.hash, "blake3");
  assert.deepEqual(descriptorFromKit(kit), D);
});

Deno.test("parseRecoveryKit() accepts a kit without a final newline", () => {
  assert.deepEqual(parseRecoveryKit(KIT.trimEnd()), parseRecoveryKit(KIT));
});

// --- every refusal, one reason at a time ----------------------------------

Deno.test("parseRecoveryKit() refuses a kit with a wrong header", () => {
  for (
    const text of [
      "",
      "\n",
      KIT.replace("capsa recovery kit v1", "capsa recovery kit"),
      KIT.replace("capsa recovery kit v1", "Capsa Recovery Kit v1"),
      KIT.replace("capsa recovery kit v1", "# capsa recovery kit v1"),
      "\n" + KIT,
      KIT.replace("capsa recovery kit v1", "capsa recovery kit vX"),
      '{"format":"capsa-store"}',
    ]
  ) {
    assert.equal(refused(text, "wrong_header").line, 1);
  }
});

Deno.test("parseRecoveryKit() refuses a kit of an unknown version", () => {
  const e = refused(
    KIT.replace("capsa recovery kit v1", "capsa recovery kit v2"),
    "unknown_version",
  );
  assert.match(e.message, /kit version 2 is unknown \(this version of capsa reads v1\)/);
});

Deno.test("parseRecoveryKit() refuses an unknown descriptor format version", () => {
  const e = refused(edit("format-version:", "format-version: 4"), "unknown_version");
  assert.match(e.message, /descriptor format version 4 is unknown/);
  assert.equal(e.line, 7);
  // Version 1 (the layout before plain keys) was never published: no reader.
  const v1 = refused(edit("format-version:", "format-version: 1"), "unknown_version");
  assert.match(v1.message, /descriptor format version 1 is unknown/);
});

Deno.test("parseRecoveryKit() refuses a kit with a missing field", () => {
  for (
    const field of ["store-id", "created-at", "format-version", "hash", "chunking", "encryption"]
  ) {
    const e = refused(edit(`${field}:`), "missing_field");
    assert.match(e.message, new RegExp(`missing field "${field}"`));
  }
  assert.match(refused(edit("checksum:"), "missing_field").message, /"checksum"/);
  assert.match(
    refused("capsa recovery kit v1\n", "missing_field").message,
    /missing fields "store-id", "created-at"/,
  );
});

Deno.test("parseRecoveryKit() refuses a kit with a duplicate field", () => {
  const e = refused(edit("hash:", "hash: blake3\nhash: blake3"), "duplicate_field");
  assert.match(e.message, /"hash" appears twice \(lines 8 and 9\)/);
  assert.equal(e.line, 9);
  refused(edit("location:", "location: a\nlocation: b"), "duplicate_field");
});

Deno.test("parseRecoveryKit() refuses a kit with an unknown field", () => {
  const e = refused(edit("hash:", "hash: blake3\ncompression: zstd"), "unknown_field");
  assert.match(e.message, /unknown field "compression"/);
  assert.equal(e.line, 9);
});

Deno.test("parseRecoveryKit() refuses a malformed line", () => {
  for (
    const line of [
      "store id: 0123456789abcdef0123456789abcdef",
      "Store-Id: 0123456789abcdef0123456789abcdef",
      "  hash: blake3",
      "just some words",
      "hash = blake3",
      "hash: bla\u0007ke3",
      "hash: blake3\rhash: sha256",
    ]
  ) {
    assert.equal(refused(edit("hash:", line), "malformed_line").line, 8, JSON.stringify(line));
  }
});

Deno.test("parseRecoveryKit() refuses a bad value, naming the field and line", () => {
  const cases: Array<[string, string]> = [
    ["store-id:", "store-id: 0123456789ABCDEF0123456789ABCDEF"],
    ["store-id:", "store-id: 0123"],
    ["store-id:", "store-id:"],
    ["created-at:", "created-at: 2026-05-10"],
    ["created-at:", "created-at: 2026-02-30T12:00:00.000Z"],
    ["format-version:", "format-version: one"],
    ["format-version:", "format-version: -1"],
    ["hash:", "hash: md5"],
    ["hash:", "hash: BLAKE3"],
    ["chunking:", "chunking: 262144/1048576/4194304"],
    ["chunking:", "chunking: avg=1048576 min=262144 max=4194304"],
    ["chunking:", "chunking: min=262144 avg=262144 max=4194304"],
    ["chunking:", "chunking: min=0262144 avg=1048576 max=4194304"],
    ["chunking:", "chunking: min=262144 avg=1048576 max=99999999999999999999"],
    ["encryption:", "encryption:"],
    ["checksum:", "checksum: sha256:abc"],
    ["checksum:", "checksum: " + descriptorChecksum(D).toUpperCase()],
  ];
  for (const [prefix, line] of cases) {
    const e = refused(edit(prefix, line), "bad_value");
    assert.ok(e.line !== undefined && e.line > 1, line);
    assert.match(e.message, new RegExp(`"${prefix.slice(0, -1)}"`), line);
  }
});

Deno.test("parseRecoveryKit() refuses an unknown encryption, and an encrypted kit without slots", () => {
  const e = refused(edit("encryption:", "encryption: chacha20 key=…"), "unsupported_encryption");
  assert.match(e.message, /unknown encryption/);
  const f = refused(
    edit("encryption:", `encryption: aes-256-gcm key-check=${btoa("k".repeat(32))}`),
    "unsupported_encryption",
  );
  assert.match(f.message, /holds no key slot/);
});

Deno.test("parseRecoveryKit() refuses a kit with a bad checksum", () => {
  for (
    const changed of [
      edit("hash:", "hash: sha256"),
      edit("store-id:", "store-id: 0123456789abcdef0123456789abcdee"),
      edit("created-at:", "created-at: 2026-05-10T12:00:00.001Z"),
      edit("chunking:", "chunking: min=262144 avg=1048576 max=4194305"),
      edit("checksum:", "checksum: sha256:" + "0".repeat(64)),
    ]
  ) {
    const e = refused(changed, "bad_checksum");
    assert.match(e.message, /altered or mistyped/);
  }
});

Deno.test("parseRecoveryKit() does not cover the location with the checksum", () => {
  const moved = parseRecoveryKit(edit("location:", "location: /mnt/new-disk/capsa"));
  assert.equal(moved.location, "/mnt/new-disk/capsa");
  assert.deepEqual(descriptorFromKit(moved), D);
});

Deno.test("parseRecoveryKit() refuses trailing garbage after the checksum line", () => {
  for (const tail of ["# a comment", "hash: blake3", "garbage", "\u0000\u0001"]) {
    const e = refused(KIT + "\n" + tail + "\n", "trailing_garbage");
    assert.equal(e.line, 14);
  }
  refused(
    kitWith(D, (t) => t.replace(/(checksum: .*)\n/, "$1\nlocation: later\n")),
    "trailing_garbage",
  );
});

Deno.test("parseRecoveryKit() refuses an oversize kit before parsing it", () => {
  const padded = KIT + "\n".repeat(MAX_RECOVERY_KIT_BYTES);
  refused(padded, "oversize");
  refused(enc.encode(padded), "oversize");
  // Within the bound in UTF-16 units but not in UTF-8 bytes.
  refused(
    KIT.replace("# Keep", "# " + "é".repeat(MAX_RECOVERY_KIT_BYTES / 2) + " Keep"),
    "oversize",
  );
  // Exactly at the bound is fine.
  const exact = KIT + "\n".repeat(MAX_RECOVERY_KIT_BYTES - enc.encode(KIT).length);
  assert.deepEqual(parseRecoveryKit(exact), parseRecoveryKit(KIT));
});

Deno.test("parseRecoveryKit() refuses bytes that are not UTF-8", () => {
  const bytes = enc.encode(KIT);
  const bad = new Uint8Array([...bytes.slice(0, 30), 0xff, ...bytes.slice(30)]);
  refused(bad, "not_utf8");
  refused(KIT.replace("# Keep", "# \ud800 Keep"), "not_utf8");
  // Latin-1 text of a kit someone "fixed" in an old editor.
  refused(new Uint8Array([...enc.encode("capsa recovery kit v1\n# caf"), 0xe9, 0x0a]), "not_utf8");
});

Deno.test("parseRecoveryKit() refuses what is neither text nor bytes", () => {
  assert.throws(() => parseRecoveryKit(42 as unknown as string), InvalidArgumentError);
});

// --- descriptorFromKit -----------------------------------------------------

Deno.test("descriptorFromKit() checks a hand-made kit like a parsed one", () => {
  const kit = parseRecoveryKit(KIT);
  assert.throws(
    () => descriptorFromKit({ ...kit, hash: "sha256" }),
    (e: unknown) => e instanceof RecoveryKitInvalidError && e.reason === "bad_checksum",
  );
  assert.throws(
    () => descriptorFromKit({ ...kit, storeId: "nope" }),
    (e: unknown) => e instanceof RecoveryKitInvalidError && e.reason === "bad_value",
  );
  assert.throws(
    () => descriptorFromKit({ ...kit, version: 2 as 1 }),
    (e: unknown) => e instanceof RecoveryKitInvalidError && e.reason === "unknown_version",
  );
  assert.throws(
    () => descriptorFromKit({ ...kit, encryption: {} as unknown as null }),
    (e: unknown) => e instanceof RecoveryKitInvalidError && e.reason === "unsupported_encryption",
  );
  assert.throws(
    () => descriptorFromKit({ ...kit, location: "two\nlines" }),
    (e: unknown) => e instanceof RecoveryKitInvalidError && e.reason === "bad_value",
  );
});

Deno.test("descriptorFromKit() rewrites a store whose every replica is lost: Corrupted, then Ready", async () => {
  const driver = new MemoryDriver();
  await driver.put(DESCRIPTOR_KEY, encodeDescriptor(D));
  await driver.put(DESCRIPTOR_REPLICA_KEY, encodeDescriptor(D));
  const kitText = encodeRecoveryKit(D);
  // Both replicas lost: one deleted, one damaged.
  await driver.delete(DESCRIPTOR_KEY);
  driver.objects.get(DESCRIPTOR_REPLICA_KEY)![40]! ^= 0x01;
  const read = () =>
    Promise.all(LOCATION_DESCRIPTOR_KEYS.map((k) => readDescriptorReplica(driver, k)));
  assert.equal(reconcileDescriptors(await read()).state, "Corrupted");

  const restored = descriptorFromKit(parseRecoveryKit(enc.encode(kitText)));
  for (const key of LOCATION_DESCRIPTOR_KEYS) await driver.put(key, encodeDescriptor(restored));
  const after = reconcileDescriptors(await read());
  assert.equal(after.state, "Ready");
  assert.deepEqual(after.descriptor, D);
});
