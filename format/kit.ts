/**
 * The Recovery Kit: a small, human-readable, versioned text given to the
 * operator at `init`, from which a store's descriptor (`store.json` and its
 * replicas) can be rewritten if every copy is lost. Keep it offline, like a
 * restic password or a kopia repository config.
 *
 * - {@linkcode encodeRecoveryKit} writes it from the descriptor.
 * - {@linkcode parseRecoveryKit} reads it back, strictly: every problem is a
 *   {@linkcode RecoveryKitInvalidError} whose `reason` says which.
 * - {@linkcode descriptorFromKit} turns it into the descriptor to write.
 *
 * The kit's `checksum` line is the descriptor's own checksum (the `checksum`
 * field of `store.json`), so an operator can check a kit against a store by
 * eye, and a kit with a mistyped field is refused rather than written back.
 * Comments and blank lines may be added before the checksum line, and a kit
 * saved with CRLF line endings (or a BOM) by a Windows editor still parses.
 *
 * @example From init to rebuild
 * ```ts
 * import assert from "node:assert/strict";
 * import { descriptorFromKit, encodeRecoveryKit, parseRecoveryKit } from "@capsa/capsa/kit";
 * import { createDescriptor } from "./descriptor.ts";
 *
 * const descriptor = createDescriptor();
 * const kit = encodeRecoveryKit(descriptor, { location: "s3://backups/capsa" });
 * // … every replica of store.json is lost; the operator brings the kit back …
 * const restored = descriptorFromKit(parseRecoveryKit(kit));
 * assert.deepEqual(restored.storeId === descriptor.storeId, true);
 * ```
 *
 * @module
 */

import { type ChunkingParams, validateChunkingParams } from "./chunker.ts";
import {
  type Descriptor,
  DESCRIPTOR_FORMAT,
  descriptorChecksum,
  KNOWN_DESCRIPTOR_FORMAT_VERSIONS,
  validateDescriptor,
} from "./descriptor.ts";
import { canonicalChecksum, isChecksum, isStoreId, isTimestamp } from "./fields.ts";
import { HASH_ALGORITHMS, type HashAlgorithm, isHashAlgorithm } from "./hashing.ts";
import { type KeySlot, keySlotProblem } from "./crypto.ts";
import type { EncryptionParams } from "./descriptor.ts";
import { CapsaError, type CapsaErrorOptions, InvalidArgumentError } from "../errors.ts";

/** The Recovery Kit version this code writes and reads. */
export const RECOVERY_KIT_VERSION = 1;

/** The largest Recovery Kit accepted, in UTF-8 bytes; checked before anything is parsed. */
export const MAX_RECOVERY_KIT_BYTES: number = 16 * 1024;

/** The longest `location` accepted, in characters. */
export const MAX_KIT_LOCATION_LENGTH = 1024;

const HEADER = `capsa recovery kit v${RECOVERY_KIT_VERSION}`;

/**
 * Why a Recovery Kit was refused; a stable value callers and tests can match:
 *
 * - `oversize`: larger than {@linkcode MAX_RECOVERY_KIT_BYTES};
 * - `not_utf8`: not valid UTF-8 (or, for a string, not well-formed UTF-16);
 * - `wrong_header`: the first line is not `capsa recovery kit v<N>`;
 * - `unknown_version`: a kit version, or a descriptor `format-version`, this code does not know;
 * - `malformed_line`: a line that is no field, comment or blank line, or holds a control character;
 * - `unknown_field`, `duplicate_field`, `missing_field`: as named;
 * - `bad_value`: a field's value is malformed or out of range;
 * - `unsupported_encryption`: an encryption this version does not know, or an
 *   encrypted store's kit without a key slot;
 * - `bad_checksum`: the checksum does not match the fields;
 * - `trailing_garbage`: anything but blank lines after the checksum line.
 */
export type RecoveryKitProblem =
  | "oversize"
  | "not_utf8"
  | "wrong_header"
  | "unknown_version"
  | "malformed_line"
  | "unknown_field"
  | "duplicate_field"
  | "missing_field"
  | "bad_value"
  | "unsupported_encryption"
  | "bad_checksum"
  | "trailing_garbage";

/** Options of the {@linkcode RecoveryKitInvalidError} constructor. */
export interface RecoveryKitInvalidErrorOptions extends CapsaErrorOptions {
  /** The 1-based line the problem is on, when it is on one. */
  line?: number;
}

/**
 * A Recovery Kit was refused. Nothing was changed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseRecoveryKit, RecoveryKitInvalidError } from "@capsa/capsa/kit";
 * try {
 *   parseRecoveryKit("not a kit\n");
 * } catch (e) {
 *   if (!(e instanceof RecoveryKitInvalidError)) throw e;
 *   assert.deepEqual([e.code, e.reason, e.line], ["recovery_kit_invalid", "wrong_header", 1]);
 * }
 * ```
 */
export class RecoveryKitInvalidError extends CapsaError {
  /** Why, as a stable value. */
  readonly reason: RecoveryKitProblem;
  /** What exactly is wrong, for people. */
  readonly detail: string;
  /** The 1-based line concerned, if any. */
  readonly line: number | undefined;
  /**
   * Makes the error for a refused kit.
   *
   * @param reason Why, as a stable value.
   * @param detail What exactly is wrong.
   * @param options The line concerned and the cause, if any.
   */
  constructor(
    reason: RecoveryKitProblem,
    detail: string,
    options: RecoveryKitInvalidErrorOptions = {},
  ) {
    super(
      "recovery_kit_invalid",
      `invalid Recovery Kit: ${detail}${
        options.line === undefined ? "" : ` (line ${options.line})`
      }`,
      false,
      options.cause === undefined ? {} : { cause: options.cause },
    );
    this.reason = reason;
    this.detail = detail;
    this.line = options.line;
  }
}

/** The content of a parsed Recovery Kit. */
export interface RecoveryKit {
  /** The kit's own version ({@linkcode RECOVERY_KIT_VERSION}). */
  readonly version: 1;
  /** The store id. */
  readonly storeId: string;
  /** When the store was created. */
  readonly createdAt: string;
  /** The descriptor's format version (3 for an encrypted store). */
  readonly formatVersion: 2 | 3;
  /** The hash algorithm of blob ids. */
  readonly hash: HashAlgorithm;
  /** The chunking parameters. */
  readonly chunking: ChunkingParams;
  /** The encryption parameters; `null` for an unencrypted store. */
  readonly encryption: EncryptionParams | null;
  /**
   * The key slots when the kit was made (an encrypted store; empty
   * otherwise). They wrap the data key under passphrases: the kit alone
   * cannot decrypt anything.
   */
  readonly keySlots: readonly KeySlot[];
  /** Where the store was when the kit was made: informational, not covered by the checksum. */
  readonly location?: string;
  /** The descriptor's checksum (the `checksum` of `store.json`). */
  readonly checksum: string;
}

/** Options of {@linkcode encodeRecoveryKit}. */
export interface EncodeRecoveryKitOptions {
  /** The store's Location, printed for the operator (never credentials). */
  location?: string;
  /** An encrypted store's key slots (at least one; required for an encrypted store). */
  keySlots?: readonly KeySlot[];
}

// Control characters other than tab (CR is removed with the line ending first).
// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/;

function locationProblem(location: string): string | undefined {
  if (location.trim() !== location || location === "") {
    return "must not be empty or start or end with whitespace";
  }
  if (location.length > MAX_KIT_LOCATION_LENGTH) {
    return `must be at most ${MAX_KIT_LOCATION_LENGTH} characters`;
  }
  if (CONTROL.test(location) || location.includes("\t") || location.includes("\r")) {
    return "must not hold control characters";
  }
  if (!location.isWellFormed()) return "must be well-formed Unicode";
  return undefined;
}

/**
 * Writes the Recovery Kit of a store: LF line endings, UTF-8 when saved.
 *
 * ```text
 * capsa recovery kit v1
 * # Keep this file offline. It can rewrite this store's descriptor (store.json) if every copy is lost.
 * # Restore with: capsa rebuild LOCATION --kit THIS_FILE
 * # location is informational; checksum is that of store.json and covers every other field.
 * store-id: 0123456789abcdef0123456789abcdef
 * created-at: 2026-05-10T12:00:00.000Z
 * format-version: 2
 * hash: blake3
 * chunking: min=262144 avg=1048576 max=4194304
 * encryption: none
 * location: s3://bucket/prefix
 * checksum: sha256:…
 * ```
 *
 * @param descriptor The store's descriptor.
 * @param options The Location to print (informational).
 * @returns The kit's text.
 * @throws {InvalidArgumentError} for an invalid descriptor, a location that
 *   cannot be printed on one line, or an encrypted store (not supported by
 *   this version).
 *
 * @example Making the kit at init
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeRecoveryKit } from "@capsa/capsa/kit";
 * import { createDescriptor } from "./descriptor.ts";
 * const kit = encodeRecoveryKit(createDescriptor(), { location: "/srv/capsa" });
 * assert.deepEqual(kit.split("\n")[0], "capsa recovery kit v1");
 * ```
 */
export function encodeRecoveryKit(
  descriptor: Descriptor,
  options: EncodeRecoveryKitOptions = {},
): string {
  validateDescriptor(descriptor);
  const slots = descriptor.encryption === null ? [] : [...(options.keySlots ?? [])];
  if (descriptor.encryption !== null) {
    if (slots.length === 0) {
      throw new InvalidArgumentError("an encrypted store's Recovery Kit needs its key slots");
    }
    for (const slot of slots) {
      const problem = keySlotProblem(slotWithChecksum(slot), descriptor.storeId);
      if (problem !== undefined) throw new InvalidArgumentError(`key slot: ${problem}`);
    }
  }
  const location = options.location;
  if (location !== undefined) {
    const problem = locationProblem(location);
    if (problem !== undefined) {
      throw new InvalidArgumentError(`the kit's location ${problem}: ${JSON.stringify(location)}`);
    }
  }
  const { min, avg, max } = descriptor.chunking;
  const lines = [
    HEADER,
    "# Keep this file offline. It can rewrite this store's descriptor (store.json) if every copy is lost.",
    `# Restore with: capsa rebuild ${location ?? "LOCATION"} --kit THIS_FILE`,
    "# location is informational; checksum is that of store.json and covers every other field.",
    `store-id: ${descriptor.storeId}`,
    `created-at: ${descriptor.createdAt}`,
    `format-version: ${descriptor.formatVersion}`,
    `hash: ${descriptor.hash}`,
    `chunking: min=${min} avg=${avg} max=${max}`,
    descriptor.encryption === null
      ? "encryption: none"
      : `encryption: ${descriptor.encryption.cipher} key-check=${descriptor.encryption.keyCheck}`,
    ...(slots.length === 0 ? [] : [
      "# Each key slot wraps the data key under one passphrase: this kit needs one of them to read",
      "# anything. Keep the kit and the passphrases apart.",
    ]),
    ...slots.map((slot) => `key-slot: ${JSON.stringify(slotWithChecksum(slot))}`),
    ...(location === undefined ? [] : [`location: ${location}`]),
    `checksum: ${descriptorChecksum(descriptor)}`,
  ];
  return lines.join("\n") + "\n";
}

const FIELDS = [
  "store-id",
  "created-at",
  "format-version",
  "hash",
  "chunking",
  "encryption",
  "key-slot",
  "location",
  "checksum",
] as const;
type Field = typeof FIELDS[number];
const REQUIRED: readonly Field[] = FIELDS.filter((f) => f !== "location" && f !== "key-slot");

/** A slot as its own object encodes it: with its checksum (`format/crypto.ts`). */
function slotWithChecksum(slot: KeySlot): Record<string, unknown> {
  const body = { ...slot, kdf: { ...slot.kdf } };
  return { ...body, checksum: canonicalChecksum(body) };
}

function invalid(
  reason: RecoveryKitProblem,
  detail: string,
  line?: number,
): RecoveryKitInvalidError {
  return new RecoveryKitInvalidError(reason, detail, line === undefined ? {} : { line });
}

function shown(text: string): string {
  return JSON.stringify(text.length > 60 ? text.slice(0, 60) + "…" : text);
}

/** Turns the input into text, bounded and checked, without a leading BOM. */
function textOf(input: string | Uint8Array): string {
  let text: string;
  if (typeof input === "string") {
    if (input.length > MAX_RECOVERY_KIT_BYTES) {
      throw invalid("oversize", `larger than ${MAX_RECOVERY_KIT_BYTES} bytes`);
    }
    if (!input.isWellFormed()) throw invalid("not_utf8", "not well-formed text (lone surrogate)");
    if (new TextEncoder().encode(input).length > MAX_RECOVERY_KIT_BYTES) {
      throw invalid("oversize", `larger than ${MAX_RECOVERY_KIT_BYTES} bytes`);
    }
    text = input;
  } else if (input instanceof Uint8Array) {
    if (input.length > MAX_RECOVERY_KIT_BYTES) {
      throw invalid("oversize", `${input.length} bytes, larger than ${MAX_RECOVERY_KIT_BYTES}`);
    }
    try {
      text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(input);
    } catch {
      throw invalid("not_utf8", "not UTF-8 text");
    }
  } else {
    throw new InvalidArgumentError("parseRecoveryKit() takes a string or a Uint8Array");
  }
  return text.startsWith("\uFEFF") ? text.slice(1) : text;
}

const NUMBER = /^(?:0|[1-9][0-9]{0,14})$/;

/**
 * Parses a Recovery Kit, strictly:
 *
 * - at most {@linkcode MAX_RECOVERY_KIT_BYTES} bytes of UTF-8 (a leading BOM is ignored);
 * - lines end with LF or CRLF; trailing spaces and tabs are ignored;
 * - the first line is exactly `capsa recovery kit v1`;
 * - then, in any order, comment lines (first non-blank character `#`), blank
 *   lines, and `name: value` fields: each known field once, `location`
 *   optional, every other required;
 * - the `checksum` field comes last; after it only blank lines may follow;
 * - every value is well-formed, and the checksum matches the fields.
 *
 * @param input The kit, as text or as the bytes of its file.
 * @returns The kit's content.
 * @throws {RecoveryKitInvalidError} with the {@linkcode RecoveryKitProblem} and the line.
 *
 * @example A kit edited on Windows still parses
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeRecoveryKit, parseRecoveryKit } from "@capsa/capsa/kit";
 * import { createDescriptor } from "./descriptor.ts";
 * const text = encodeRecoveryKit(createDescriptor()).replaceAll("\n", "\r\n");
 * assert.deepEqual(parseRecoveryKit(text).hash, "blake3");
 * ```
 */
export function parseRecoveryKit(input: string | Uint8Array): RecoveryKit {
  const text = textOf(input);
  const lines = text.split("\n").map((l) => (l.endsWith("\r") ? l.slice(0, -1) : l));

  const header = (lines[0] ?? "").replace(/[ \t]+$/, "");
  if (header !== HEADER) {
    const m = /^capsa recovery kit v([0-9]+)$/.exec(header);
    if (m !== null) {
      throw invalid(
        "unknown_version",
        `kit version ${m[1]} is unknown (this version of capsa reads v${RECOVERY_KIT_VERSION})`,
        1,
      );
    }
    throw invalid(
      "wrong_header",
      `the first line must be "${HEADER}", got ${shown(header)}`,
      1,
    );
  }

  const found = new Map<Field, { value: string; line: number }>();
  const slotLines: Array<{ value: string; line: number }> = [];
  let checksumSeen = false;
  for (let i = 1; i < lines.length; i++) {
    const lineNo = i + 1;
    const line = lines[i]!.replace(/[ \t]+$/, "");
    if (checksumSeen) {
      if (line === "") continue;
      throw invalid(
        "trailing_garbage",
        `nothing but blank lines may follow the checksum line, got ${shown(line)}`,
        lineNo,
      );
    }
    if (CONTROL.test(line) || line.includes("\r")) {
      throw invalid("malformed_line", "the line holds a control character", lineNo);
    }
    if (line === "" || /^[ \t]*#/.test(line)) continue;
    const m = /^([a-z][a-z0-9-]*):[ \t]*(.*)$/.exec(line);
    if (m === null) {
      throw invalid(
        "malformed_line",
        `expected "name: value", a comment (#) or a blank line, got ${shown(line)}`,
        lineNo,
      );
    }
    const name = m[1]!;
    if (!(FIELDS as readonly string[]).includes(name)) {
      throw invalid(
        "unknown_field",
        `unknown field "${name}" (known: ${FIELDS.join(", ")})`,
        lineNo,
      );
    }
    if (name === "key-slot") {
      slotLines.push({ value: m[2]!, line: lineNo });
      continue;
    }
    const previous = found.get(name as Field);
    if (previous !== undefined) {
      throw invalid(
        "duplicate_field",
        `field "${name}" appears twice (lines ${previous.line} and ${lineNo})`,
        lineNo,
      );
    }
    found.set(name as Field, { value: m[2]!, line: lineNo });
    if (name === "checksum") checksumSeen = true;
  }

  const missing = REQUIRED.filter((f) => !found.has(f));
  if (missing.length > 0) {
    throw invalid(
      "missing_field",
      `missing field${missing.length > 1 ? "s" : ""} ${missing.map((f) => `"${f}"`).join(", ")}`,
    );
  }
  const field = (name: Field) => found.get(name)!;
  const bad = (name: Field, what: string) =>
    invalid("bad_value", `"${name}" ${what}, got ${shown(field(name).value)}`, field(name).line);

  const formatVersion = field("format-version");
  if (!NUMBER.test(formatVersion.value)) throw bad("format-version", "must be a number");
  if (!KNOWN_DESCRIPTOR_FORMAT_VERSIONS.includes(Number(formatVersion.value))) {
    throw invalid(
      "unknown_version",
      `descriptor format version ${formatVersion.value} is unknown (this version of capsa reads ${
        KNOWN_DESCRIPTOR_FORMAT_VERSIONS.join(" and ")
      })`,
      formatVersion.line,
    );
  }
  const storeId = field("store-id").value;
  if (!isStoreId(storeId)) throw bad("store-id", "must be 32 lowercase hex digits");
  const encryptionField = field("encryption");
  let encryption: EncryptionParams | null = null;
  if (encryptionField.value !== "none") {
    const e = /^aes-256-gcm[ \t]+key-check=([A-Za-z0-9+/=]+)$/.exec(encryptionField.value);
    if (e === null) {
      if (encryptionField.value === "") {
        throw bad("encryption", 'must be "none" or "aes-256-gcm key-check=…"');
      }
      throw invalid(
        "unsupported_encryption",
        `unknown encryption ${shown(encryptionField.value)} (this version knows aes-256-gcm)`,
        encryptionField.line,
      );
    }
    encryption = { cipher: "aes-256-gcm", keyCheck: e[1]! };
  }
  const keySlots: KeySlot[] = [];
  for (const s of slotLines) {
    if (encryption === null) {
      throw invalid("bad_value", "a key slot in the kit of an unencrypted store", s.line);
    }
    let v: unknown;
    try {
      v = JSON.parse(s.value);
    } catch {
      throw invalid("bad_value", "a key slot must be one line of JSON", s.line);
    }
    const problem = keySlotProblem(v, storeId);
    if (problem !== undefined) throw invalid("bad_value", `key slot: ${problem}`, s.line);
    const { checksum: _, ...slot } = v as KeySlot & { checksum: string };
    keySlots.push(slot);
  }
  if (encryption !== null && keySlots.length === 0) {
    throw invalid(
      "unsupported_encryption",
      "the kit of an encrypted store holds no key slot: it cannot open the store",
      encryptionField.line,
    );
  }
  const createdAt = field("created-at").value;
  if (!isTimestamp(createdAt)) {
    throw bad("created-at", "must be an ISO 8601 UTC timestamp with milliseconds");
  }
  const hash = field("hash").value;
  if (!isHashAlgorithm(hash)) {
    throw bad("hash", `must be one of ${HASH_ALGORITHMS.join(", ")}`);
  }
  const c = /^min=([0-9]+)[ \t]+avg=([0-9]+)[ \t]+max=([0-9]+)$/.exec(field("chunking").value);
  if (c === null || !c.slice(1).every((n) => NUMBER.test(n))) {
    throw bad("chunking", 'must be "min=N avg=N max=N"');
  }
  const chunking = { min: Number(c[1]), avg: Number(c[2]), max: Number(c[3]) };
  try {
    validateChunkingParams(chunking);
  } catch (e) {
    throw bad("chunking", `is invalid (${(e as Error).message})`);
  }
  const checksum = field("checksum").value;
  if (!isChecksum(checksum)) {
    throw bad("checksum", 'must be "sha256:" and 64 lowercase hex digits');
  }
  const location = found.get("location");
  if (location !== undefined) {
    const problem = locationProblem(location.value);
    if (problem !== undefined) throw bad("location", problem);
  }

  const kit: RecoveryKit = {
    version: RECOVERY_KIT_VERSION,
    storeId,
    createdAt,
    formatVersion: Number(formatVersion.value) as 2 | 3,
    hash,
    chunking,
    encryption,
    keySlots,
    ...(location === undefined ? {} : { location: location.value }),
    checksum,
  };
  checkKitChecksum(kit, field("checksum").line);
  return kit;
}

function descriptorOf(kit: RecoveryKit): Descriptor {
  return {
    format: DESCRIPTOR_FORMAT,
    formatVersion: kit.formatVersion,
    storeId: kit.storeId,
    createdAt: kit.createdAt,
    hash: kit.hash,
    chunking: { min: kit.chunking.min, avg: kit.chunking.avg, max: kit.chunking.max },
    encryption: kit.encryption === null
      ? null
      : { cipher: kit.encryption.cipher, keyCheck: kit.encryption.keyCheck },
  };
}

function checkKitChecksum(kit: RecoveryKit, line?: number): Descriptor {
  const descriptor = descriptorOf(kit);
  const computed = descriptorChecksum(descriptor);
  if (computed !== kit.checksum) {
    throw invalid(
      "bad_checksum",
      `the checksum does not match the fields (computed ${computed}): ` +
        "the kit was altered or mistyped",
      line,
    );
  }
  return descriptor;
}

/**
 * Rebuilds the descriptor a Recovery Kit describes, checking the kit again
 * (so a kit object made by hand is held to the same rules as a parsed one).
 * The descriptor's checksum equals the kit's.
 *
 * @param kit A kit, as returned by {@linkcode parseRecoveryKit}.
 * @returns The descriptor to write to every replica.
 * @throws {RecoveryKitInvalidError} when the kit is invalid or its checksum does not match.
 *
 * @example Rewriting a lost store.json
 * ```ts
 * import { descriptorFromKit, encodeRecoveryKit, parseRecoveryKit } from "@capsa/capsa/kit";
 * import { createDescriptor, encodeDescriptor } from "./descriptor.ts";
 * import { MemoryDriver } from "@capsa/capsa";
 * import { DESCRIPTOR_KEY } from "../layout.ts";
 *
 * const text = encodeRecoveryKit(createDescriptor());
 * const driver = new MemoryDriver();
 * await driver.put(DESCRIPTOR_KEY, encodeDescriptor(descriptorFromKit(parseRecoveryKit(text))));
 * ```
 */
export function descriptorFromKit(kit: RecoveryKit): Descriptor {
  if (kit.version !== RECOVERY_KIT_VERSION) {
    throw invalid("unknown_version", `kit version ${kit.version} is unknown`);
  }
  if (kit.encryption !== null) {
    if ((kit.keySlots ?? []).length === 0) {
      throw invalid("unsupported_encryption", "the kit of an encrypted store holds no key slot");
    }
    for (const slot of kit.keySlots) {
      const problem = keySlotProblem(slotWithChecksum(slot), kit.storeId);
      if (problem !== undefined) throw invalid("bad_value", `key slot: ${problem}`);
    }
  }
  try {
    validateDescriptor(descriptorOf(kit));
  } catch (e) {
    if (!(e instanceof InvalidArgumentError)) throw e;
    throw new RecoveryKitInvalidError("bad_value", e.message, { cause: e });
  }
  if (kit.location !== undefined) {
    const problem = locationProblem(kit.location);
    if (problem !== undefined) throw invalid("bad_value", `"location" ${problem}`);
  }
  return checkKitChecksum(kit);
}

// Re-exported so that this module's API is complete on its own.
export type { Descriptor, EncryptionParams } from "./descriptor.ts";
export type { KdfParams, KeySlot } from "./crypto.ts";
export type { ChunkingParams } from "./chunker.ts";
export type { HashAlgorithm } from "./hashing.ts";
export { CapsaError, type CapsaErrorOptions } from "../errors.ts";
