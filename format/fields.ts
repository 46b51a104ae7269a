/**
 * The field types every capsa format shares: store ids, timestamps, and the
 * canonical JSON and `checksum` of the self-checksummed JSON objects
 * (descriptor, config versions, markers). The descriptor (`descriptor.ts`),
 * packs, manifests, config versions and the Recovery Kit all check their
 * fields with these, so that no format is the hidden base of another. The
 * normative description is docs/FORMAT.md.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { canonicalChecksum, isStoreId, newStoreId } from "./fields.ts";
 * assert.deepEqual([isStoreId(newStoreId()), canonicalChecksum({ b: 1, a: 2 }).startsWith("sha256:")], [true, true]);
 * ```
 *
 * @module
 */

import {
  CorruptObjectError,
  InvalidArgumentError,
  UnsupportedFormatVersionError,
} from "../errors.ts";
import { hashBytes } from "./hashing.ts";
import { isPlainObject, shown } from "./_json.ts";

// ---------------------------------------------------------------------------
// Store ids and timestamps

const STORE_ID_PATTERN = /^[0-9a-f]{32}$/;
const TIMESTAMP_PATTERN = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/**
 * Tells whether `value` is a well-formed store id: 32 lowercase hex digits.
 *
 * @param value Anything.
 * @returns `true` for a store id.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isStoreId } from "./fields.ts";
 * assert.deepEqual([isStoreId("0123456789abcdef0123456789abcdef"), isStoreId("ABC")], [true, false]);
 * ```
 */
export function isStoreId(value: unknown): value is string {
  return typeof value === "string" && STORE_ID_PATTERN.test(value);
}

/**
 * Tells whether `value` is a timestamp as capsa writes them: ISO 8601 UTC
 * with milliseconds, exactly as `Date.prototype.toISOString()` prints a real
 * date (so `2026-02-30T…` is refused).
 *
 * @param value Anything.
 * @returns `true` for a well-formed, real timestamp.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isTimestamp } from "./fields.ts";
 * assert.deepEqual([isTimestamp("2026-05-10T12:00:00.000Z"), isTimestamp("2026-05-10")], [true, false]);
 * ```
 */
export function isTimestamp(value: unknown): value is string {
  if (typeof value !== "string" || !TIMESTAMP_PATTERN.test(value)) return false;
  const ms = Date.parse(value);
  return Number.isFinite(ms) && new Date(ms).toISOString() === value;
}

/**
 * Makes a new random store id: 128 bits from the platform's CSPRNG, as 32
 * lowercase hex digits. (Not a ULID: nothing orders store ids, and the
 * creation time has its own field.)
 *
 * @returns A new store id.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isStoreId, newStoreId } from "./fields.ts";
 * assert.deepEqual(isStoreId(newStoreId()), true);
 * ```
 */
export function newStoreId(): string {
  return hex(crypto.getRandomValues(new Uint8Array(16)));
}

// ---------------------------------------------------------------------------
// Canonical JSON and checksums

const encoder = new TextEncoder();

function hex(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

/**
 * Serializes a JSON value canonically: object keys sorted by UTF-16 code
 * units at every level, no whitespace, strings and numbers as
 * `JSON.stringify` writes them (the subset of RFC 8785 that capsa's formats
 * use). Properties whose value is `undefined` are left out, as in JSON.
 *
 * @param value A JSON value: `null`, a boolean, a finite number, a string, an
 *   array or a plain object of those.
 * @returns The canonical text.
 * @throws {InvalidArgumentError} for anything JSON cannot represent.
 *
 * @example Key order does not matter
 * ```ts
 * import assert from "node:assert/strict";
 * import { canonicalJson } from "./fields.ts";
 * assert.equal(canonicalJson({ b: 1, a: [true, null] }), '{"a":[true,null],"b":1}');
 * ```
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value === "boolean" || typeof value === "string") {
    return JSON.stringify(value);
  }
  if (typeof value === "number") {
    if (!Number.isFinite(value)) {
      throw new InvalidArgumentError(`canonicalJson: ${value} is not JSON`);
    }
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v)).join(",")}]`;
  if (isPlainObject(value)) {
    const keys = Object.keys(value).filter((k) => value[k] !== undefined).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(",")}}`;
  }
  throw new InvalidArgumentError(`canonicalJson: a ${typeof value} is not JSON`);
}

/**
 * The checksum capsa's self-checksummed JSON objects carry: `sha256:` and the
 * lowercase hex SHA-256 of the UTF-8 bytes of {@linkcode canonicalJson}.
 *
 * @param value The object without its `checksum` field.
 * @returns `sha256:` followed by 64 hex digits.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { canonicalChecksum } from "./fields.ts";
 * assert.deepEqual(canonicalChecksum({ a: 1 }) === canonicalChecksum({ a: 1 }), true);
 * ```
 */
export function canonicalChecksum(value: unknown): string {
  return `sha256:${hashBytes("sha256", encoder.encode(canonicalJson(value)))}`;
}

const CHECKSUM_PATTERN = /^sha256:[0-9a-f]{64}$/;

/**
 * Tells whether `value` has the syntax of every `checksum` field: `sha256:`
 * and 64 lowercase hex digits.
 *
 * @param value Anything.
 * @returns `true` for a well-formed checksum.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { canonicalChecksum, isChecksum } from "./fields.ts";
 * assert.deepEqual([isChecksum(canonicalChecksum({ a: 1 })), isChecksum("sha256:ab")], [true, false]);
 * ```
 */
export function isChecksum(value: unknown): value is string {
  return typeof value === "string" && CHECKSUM_PATTERN.test(value);
}

/**
 * Checks the envelope every self-checksummed JSON object shares (docs/FORMAT.md
 * §6.1): its `format`, its `formatVersion` against the versions this code
 * reads, and its `checksum` against the canonical checksum of every other
 * field. What the fields mean is the caller's to check.
 *
 * @param key The object's key, for errors.
 * @param parsed The decoded JSON object.
 * @param expect The `format` value, how to name the object, and the versions read.
 * @returns The object without its `checksum` field.
 * @throws {CorruptObjectError} for a foreign `format`, a malformed or wrong checksum.
 * @throws {UnsupportedFormatVersionError} for a version this code does not read.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { canonicalChecksum, checkEnvelope } from "./fields.ts";
 * const body = { format: "capsa-x", formatVersion: 1, a: 1 };
 * const parsed = { ...body, checksum: canonicalChecksum(body) };
 * const expect = { format: "capsa-x", noun: "x", known: [1] };
 * assert.deepEqual(checkEnvelope("k", parsed, expect), body);
 * ```
 */
export function checkEnvelope(
  key: string,
  parsed: Record<string, unknown>,
  expect: { format: string; noun: string; known: readonly number[] },
): Record<string, unknown> {
  const corrupt = (reason: string) => new CorruptObjectError(key, reason);
  if (parsed.format !== expect.format) {
    throw corrupt(
      `not a capsa ${expect.noun}: "format" is ${
        shown(parsed.format)
      }, expected "${expect.format}"`,
    );
  }
  const version = parsed.formatVersion;
  if (typeof version !== "number" || !Number.isSafeInteger(version)) {
    throw corrupt(`"formatVersion" must be an integer, got ${shown(version)}`);
  }
  if (!expect.known.includes(version)) {
    throw new UnsupportedFormatVersionError(key, version, expect.known);
  }
  const { checksum, ...rest } = parsed;
  if (checksum === undefined) throw corrupt(`missing field "checksum"`);
  if (!isChecksum(checksum)) {
    throw corrupt(
      `"checksum" must be "sha256:" and 64 lowercase hex digits, got ${shown(checksum)}`,
    );
  }
  const computed = canonicalChecksum(rest);
  if (computed !== checksum) {
    throw corrupt(`checksum mismatch: stored ${checksum}, computed ${computed}`);
  }
  return rest;
}
