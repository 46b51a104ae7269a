/**
 * The store descriptor (`store.json`): a store's identity and format.
 *
 * A descriptor names the store (`storeId`, `createdAt`) and fixes what every
 * object in it depends on: the format version, the hash algorithm of blob ids,
 * the content-defined chunking parameters (they decide where chunk boundaries
 * fall, so changing them would stop deduplication against existing chunks)
 * and the encryption parameters (the key check of its data key). It never
 * changes after `init`; tunables that may change live in the config history
 * (`format/config.ts`).
 *
 * The descriptor is kept in several replicas ({@linkcode DESCRIPTOR_KEY},
 * {@linkcode DESCRIPTOR_REPLICA_KEY}, and {@linkcode HOST_DESCRIPTOR_KEY} in
 * the host directory when one is configured). Each replica is
 * self-checksummed; {@linkcode reconcileDescriptors} decides, from what was
 * read of every replica, which descriptor the store has and which replicas
 * must be rewritten. The normative description is `docs/FORMAT.md (§6)`.
 *
 * @example Writing and reading back a descriptor
 * ```ts
 * import assert from "node:assert/strict";
 * import { createDescriptor, decodeDescriptor, encodeDescriptor } from "./descriptor.ts";
 * import { DESCRIPTOR_KEY } from "../layout.ts";
 * import { MemoryDriver } from "../drivers/memory.ts";
 *
 * const driver = new MemoryDriver();
 * const descriptor = createDescriptor({ hash: "sha256" });
 * await driver.put(DESCRIPTOR_KEY, encodeDescriptor(descriptor));
 * const back = decodeDescriptor(DESCRIPTOR_KEY, await driver.get(DESCRIPTOR_KEY));
 * assert.deepEqual(back.storeId === descriptor.storeId, true);
 * ```
 *
 * @module
 */

import { type ChunkingParams, DEFAULT_CHUNKING, validateChunkingParams } from "./chunker.ts";
import {
  DEFAULT_HASH_ALGORITHM,
  HASH_ALGORITHMS,
  type HashAlgorithm,
  isHashAlgorithm,
} from "./hashing.ts";
import {
  CapsaError,
  type CapsaErrorOptions,
  CorruptObjectError,
  InvalidArgumentError,
  NotFoundError,
  UnsupportedFormatVersionError,
} from "../errors.ts";
import { decodeJsonObject, isPlainObject, shown } from "./_json.ts";
import { canonicalChecksum, checkEnvelope, isStoreId, isTimestamp, newStoreId } from "./fields.ts";

// Re-exported so that this module's API is complete on its own; the shared
// field types live in `fields.ts`, the errors in `errors.ts`.
export {
  CapsaError,
  type CapsaErrorOptions,
  CorruptObjectError,
  UnsupportedFormatVersionError,
} from "../errors.ts";
export { canonicalChecksum, canonicalJson, isStoreId, isTimestamp, newStoreId } from "./fields.ts";
export type { ChunkingParams } from "./chunker.ts";
export type { HashAlgorithm } from "./hashing.ts";

const encoder = new TextEncoder();

/** The value of the `format` field of every descriptor. */
export const DESCRIPTOR_FORMAT = "capsa-store";

/**
 * The descriptor format version this code writes: the version of the whole
 * store format. Version 2 is the plain key layout (`docs/FORMAT.md` §1);
 * version 1 (the escaped `localfs` names and upper-case ids) was never
 * published, so no reader of it is kept.
 */
export const DESCRIPTOR_FORMAT_VERSION = 2;

/**
 * The format version of an encrypted store: version 2 plus encryption
 * (`docs/FORMAT.md` §9). An unencrypted store keeps version 2, so older
 * capsa still opens it; a capsa without encryption refuses version 3 with
 * `unsupported_format_version` ("upgrade capsa") instead of misreading it.
 */
export const ENCRYPTED_FORMAT_VERSION = 3;

/** Every descriptor format version this code reads. */
export const KNOWN_DESCRIPTOR_FORMAT_VERSIONS: readonly number[] = [2, 3];

/** The largest descriptor accepted, in bytes; checked before anything is parsed. */
export const MAX_DESCRIPTOR_BYTES: number = 64 * 1024;

import { DESCRIPTOR_KEY, DESCRIPTOR_REPLICA_KEY } from "../layout.ts";

/** The replica keys inside the Location, in the order they are written. */
export const LOCATION_DESCRIPTOR_KEYS: readonly string[] = [DESCRIPTOR_KEY, DESCRIPTOR_REPLICA_KEY];

/**
 * Encryption parameters of an encrypted store (docs/FORMAT.md §9). The data
 * key itself is in the key slots (`system.keys/`), wrapped under
 * passphrases; the descriptor pins which key it is.
 */
export interface EncryptionParams {
  /** Always `"aes-256-gcm"`. */
  readonly cipher: "aes-256-gcm";
  /** The key check of the data key: standard base64 of 32 bytes (`format/crypto.ts`). */
  readonly keyCheck: string;
}

/** A store descriptor, as held in memory (the `checksum` exists only in the encoding). */
export interface Descriptor {
  /** Always {@linkcode DESCRIPTOR_FORMAT}. */
  readonly format: "capsa-store";
  /**
   * The format version: 2, or 3 for an encrypted store (this code knows
   * {@linkcode KNOWN_DESCRIPTOR_FORMAT_VERSIONS}).
   */
  readonly formatVersion: 2 | 3;
  /** 32 lowercase hex digits: 128 random bits. */
  readonly storeId: string;
  /** When the store was created: ISO 8601 UTC with milliseconds (`toISOString()`). */
  readonly createdAt: string;
  /** The hash algorithm of blob ids (`format/hashing.ts`). */
  readonly hash: HashAlgorithm;
  /**
   * The content-defined chunking parameters (`format/chunker.ts`). They belong
   * here, not in the config: they decide where chunk boundaries fall, so
   * changing them would stop deduplication against every existing chunk.
   */
  readonly chunking: ChunkingParams;
  /** `null` for an unencrypted store. */
  readonly encryption: EncryptionParams | null;
}

/** One good replica group in a {@linkcode DescriptorConflictError}. */
export interface DescriptorCandidate {
  /** The replicas holding this descriptor. */
  readonly where: readonly string[];
  /** Its store id. */
  readonly storeId: string;
  /** Its checksum (`sha256:…`). */
  readonly checksum: string;
}

/**
 * Valid descriptor replicas disagree and no descriptor is held by a strict
 * majority of them: capsa refuses to guess which store this is.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DescriptorConflictError } from "./descriptor.ts";
 * const e = new DescriptorConflictError([
 *   { where: ["store.json"], storeId: "a".repeat(32), checksum: "sha256:" + "1".repeat(64) },
 *   { where: ["system.state/descriptor/store.json"], storeId: "b".repeat(32), checksum: "sha256:" + "2".repeat(64) },
 * ]);
 * assert.deepEqual(e.code, "descriptor_conflict");
 * ```
 */
export class DescriptorConflictError extends CapsaError {
  /** The disagreeing descriptors, each with the replicas holding it. */
  readonly candidates: readonly DescriptorCandidate[];
  /**
   * Makes the error listing the disagreeing descriptors.
   *
   * @param candidates The disagreeing descriptors.
   * @param options The cause, if any.
   */
  constructor(candidates: readonly DescriptorCandidate[], options: CapsaErrorOptions = {}) {
    const listed = candidates
      .map((c) =>
        `${c.where.join(" and ")} hold${
          c.where.length === 1 ? "s" : ""
        } store ${c.storeId} (${c.checksum})`
      )
      .join("; ");
    super(
      "descriptor_conflict",
      `descriptor replicas disagree with no majority: ${listed}; ` +
        "restore the right descriptor from the store's Recovery Kit (capsa rebuild LOCATION --kit FILE)",
      false,
      options,
    );
    this.candidates = candidates;
  }
}

// ---------------------------------------------------------------------------
// Field validation (shared by decode, encode, create and the Recovery Kit)

/**
 * Checks that `obj` has exactly the fields `fields`.
 * @returns The first problem, or `undefined`.
 */
function fieldSetProblem(
  obj: Record<string, unknown>,
  fields: readonly string[],
  path: string,
): string | undefined {
  for (const f of fields) if (!Object.hasOwn(obj, f)) return `missing field "${path}${f}"`;
  for (const k of Object.keys(obj)) {
    if (!fields.includes(k)) return `unknown field "${path}${k}"`;
  }
  return undefined;
}

/**
 * The first problem of a chunking object, or `undefined`: its shape is
 * checked here, its values by the chunker's own rules
 * ({@linkcode validateChunkingParams}), so the two can never disagree.
 */
function chunkingProblem(value: unknown, path: string): string | undefined {
  if (!isPlainObject(value)) return `"${path}" must be an object, got ${shown(value)}`;
  const fields = fieldSetProblem(value, ["min", "avg", "max"], `${path}.`);
  if (fields !== undefined) return fields;
  for (const f of ["min", "avg", "max"]) {
    const v = value[f];
    if (typeof v !== "number" || !Number.isSafeInteger(v)) {
      return `"${path}.${f}" must be an integer, got ${shown(v)}`;
    }
  }
  try {
    validateChunkingParams(value as unknown as ChunkingParams);
  } catch (e) {
    return `"${path}" is invalid: ${(e as Error).message}`;
  }
  return undefined;
}

const BASE64_PATTERN = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function base64Length(text: string): number {
  const pad = text.endsWith("==") ? 2 : text.endsWith("=") ? 1 : 0;
  return (text.length / 4) * 3 - pad;
}

function encryptionProblem(value: unknown): string | undefined {
  if (value === null) return undefined;
  if (!isPlainObject(value)) return `"encryption" must be null or an object, got ${shown(value)}`;
  const fields = fieldSetProblem(value, ["cipher", "keyCheck"], "encryption.");
  if (fields !== undefined) return fields;
  if (value.cipher !== "aes-256-gcm") {
    return `"encryption.cipher" must be "aes-256-gcm", got ${shown(value.cipher)}`;
  }
  if (
    typeof value.keyCheck !== "string" || !BASE64_PATTERN.test(value.keyCheck) ||
    base64Length(value.keyCheck) !== 32
  ) {
    return `"encryption.keyCheck" must be standard base64 of 32 bytes`;
  }
  return undefined;
}

const DESCRIPTOR_FIELDS = [
  "format",
  "formatVersion",
  "storeId",
  "createdAt",
  "hash",
  "chunking",
  "encryption",
] as const;

/**
 * The first problem of a descriptor object (without `checksum`), or
 * `undefined`. `format` and `formatVersion` are checked too, so the function
 * stands alone.
 */
function descriptorProblem(value: unknown): string | undefined {
  if (!isPlainObject(value)) return `a descriptor must be a JSON object, got ${shown(value)}`;
  const fields = fieldSetProblem(value, DESCRIPTOR_FIELDS, "");
  if (fields !== undefined) return fields;
  if (value.format !== DESCRIPTOR_FORMAT) {
    return `"format" must be "${DESCRIPTOR_FORMAT}", got ${shown(value.format)}`;
  }
  const version = value.encryption === null || value.encryption === undefined
    ? DESCRIPTOR_FORMAT_VERSION
    : ENCRYPTED_FORMAT_VERSION;
  if (value.formatVersion !== version) {
    return `"formatVersion" must be ${version} for ${
      version === ENCRYPTED_FORMAT_VERSION ? "an encrypted" : "an unencrypted"
    } store, got ${shown(value.formatVersion)}`;
  }
  if (!isStoreId(value.storeId)) {
    return `"storeId" must be 32 lowercase hex digits, got ${shown(value.storeId)}`;
  }
  if (!isTimestamp(value.createdAt)) {
    return `"createdAt" must be an ISO 8601 UTC timestamp with milliseconds, got ${
      shown(value.createdAt)
    }`;
  }
  if (!isHashAlgorithm(value.hash)) {
    return `"hash" must be one of ${HASH_ALGORITHMS.join(", ")}, got ${shown(value.hash)}`;
  }
  return chunkingProblem(value.chunking, "chunking") ?? encryptionProblem(value.encryption);
}

/** A fresh, plain copy of a validated descriptor, fields in their documented order. */
function copyDescriptor(d: Descriptor): Descriptor {
  const e = d.encryption;
  return {
    format: DESCRIPTOR_FORMAT,
    formatVersion: e === null ? DESCRIPTOR_FORMAT_VERSION : ENCRYPTED_FORMAT_VERSION,
    storeId: d.storeId,
    createdAt: d.createdAt,
    hash: d.hash,
    chunking: { min: d.chunking.min, avg: d.chunking.avg, max: d.chunking.max },
    encryption: e === null ? null : { cipher: e.cipher, keyCheck: e.keyCheck },
  };
}

/**
 * Checks every field of a descriptor (types, ranges, the chunking rules of
 * {@linkcode validateChunkingParams}, the encryption parameters) and
 * that it has no other field.
 *
 * @param descriptor The descriptor to check.
 * @throws {InvalidArgumentError} naming the first problem.
 *
 * @example
 * ```ts
 * import { createDescriptor, validateDescriptor } from "./descriptor.ts";
 * validateDescriptor(createDescriptor()); // fine
 * ```
 */
export function validateDescriptor(descriptor: Descriptor): void {
  const problem = descriptorProblem(descriptor);
  if (problem !== undefined) throw new InvalidArgumentError(`invalid descriptor: ${problem}`);
}

// ---------------------------------------------------------------------------
// Creating, encoding, decoding

/** Options of {@linkcode createDescriptor}. */
export interface CreateDescriptorOptions {
  /** The store id (default: {@linkcode newStoreId}). */
  storeId?: string;
  /** The hash algorithm of blob ids (default `"blake3"`). */
  hash?: HashAlgorithm;
  /** The chunking parameters (default {@linkcode DEFAULT_CHUNKING}). */
  chunking?: ChunkingParams;
  /** The clock giving `createdAt`, in ms since the epoch (default `Date.now`). */
  clock?: () => number;
  /** Encryption (default `null`: unencrypted). */
  encryption?: EncryptionParams | null;
}

/**
 * Makes the descriptor of a new store (unencrypted unless `encryption` is given).
 *
 * @param options Store id, hash, chunking and clock; each has a default.
 * @returns A validated descriptor.
 * @throws {InvalidArgumentError} when an option is invalid.
 *
 * @example A store hashing with SHA-256 and small chunks
 * ```ts
 * import assert from "node:assert/strict";
 * import { createDescriptor } from "./descriptor.ts";
 * const d = createDescriptor({ hash: "sha256", chunking: { min: 2048, avg: 8192, max: 65536 } });
 * assert.deepEqual([d.format, d.formatVersion, d.hash], ["capsa-store", 2, "sha256"]);
 * ```
 */
export function createDescriptor(options: CreateDescriptorOptions = {}): Descriptor {
  const now = (options.clock ?? Date.now)();
  if (!Number.isFinite(now)) throw new InvalidArgumentError(`the clock returned ${now}`);
  const descriptor: Descriptor = {
    format: DESCRIPTOR_FORMAT,
    formatVersion: options.encryption ? ENCRYPTED_FORMAT_VERSION : DESCRIPTOR_FORMAT_VERSION,
    storeId: options.storeId ?? newStoreId(),
    createdAt: new Date(now).toISOString(),
    hash: options.hash ?? DEFAULT_HASH_ALGORITHM,
    chunking: options.chunking ?? DEFAULT_CHUNKING,
    encryption: options.encryption ?? null,
  };
  validateDescriptor(descriptor);
  return copyDescriptor(descriptor);
}

/**
 * The checksum of a descriptor: {@linkcode canonicalChecksum} of its fields.
 * It is the `checksum` field of `store.json` and the `checksum` line of the
 * Recovery Kit.
 *
 * @param descriptor The descriptor.
 * @returns `sha256:` followed by 64 hex digits.
 * @throws {InvalidArgumentError} when the descriptor is invalid.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createDescriptor, descriptorChecksum } from "./descriptor.ts";
 * assert.deepEqual(descriptorChecksum(createDescriptor()).startsWith("sha256:"), true);
 * ```
 */
export function descriptorChecksum(descriptor: Descriptor): string {
  validateDescriptor(descriptor);
  return canonicalChecksum(copyDescriptor(descriptor));
}

/**
 * Encodes a descriptor as `store.json`: UTF-8 JSON, two-space indented,
 * fields in the documented order followed by `checksum`, ending with a
 * newline. Equal descriptors encode to equal bytes.
 *
 * @param descriptor The descriptor to encode.
 * @returns The bytes to store in every replica.
 * @throws {InvalidArgumentError} when the descriptor is invalid (nothing
 *   unreadable is ever written).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createDescriptor, encodeDescriptor } from "./descriptor.ts";
 * const text = new TextDecoder().decode(encodeDescriptor(createDescriptor()));
 * assert.deepEqual([text.endsWith("\n"), JSON.parse(text).format], [true, "capsa-store"]);
 * ```
 */
export function encodeDescriptor(descriptor: Descriptor): Uint8Array {
  validateDescriptor(descriptor);
  const body = copyDescriptor(descriptor);
  const withChecksum = { ...body, checksum: canonicalChecksum(body) };
  return encoder.encode(JSON.stringify(withChecksum, null, 2) + "\n");
}

/**
 * Decodes and checks one descriptor replica. The size is bounded before
 * anything is parsed; then the text must be UTF-8 JSON, an object whose
 * `format` is `"capsa-store"`, of a known `formatVersion`, whose `checksum`
 * matches its other fields, with every field present, well-typed and in
 * range, and no unknown field.
 *
 * @param key The replica's key, named in errors.
 * @param bytes The replica's bytes.
 * @returns The descriptor.
 * @throws {UnsupportedFormatVersionError} (a {@linkcode CorruptObjectError})
 *   for a format version this code does not know.
 * @throws {CorruptObjectError} for anything else wrong, with the reason.
 *
 * @example Detecting a flipped byte
 * ```ts
 * import { createDescriptor, decodeDescriptor, encodeDescriptor } from "./descriptor.ts";
 * import { CorruptObjectError } from "../errors.ts";
 *
 * const bytes = encodeDescriptor(createDescriptor({ hash: "blake3" }));
 * const text = new TextDecoder().decode(bytes).replace('"blake3"', '"sha256"');
 * try {
 *   decodeDescriptor("store.json", new TextEncoder().encode(text));
 * } catch (e) {
 *   console.log(e instanceof CorruptObjectError, (e as CorruptObjectError).reason);
 * }
 * ```
 */
export function decodeDescriptor(key: string, bytes: Uint8Array): Descriptor {
  const corrupt = (reason: string, cause?: unknown) =>
    new CorruptObjectError(key, reason, cause === undefined ? {} : { cause });
  const parsed = decodeJsonObject(key, bytes, { max: MAX_DESCRIPTOR_BYTES, noun: "descriptor" });
  const rest = checkEnvelope(key, parsed, {
    format: DESCRIPTOR_FORMAT,
    noun: "store descriptor",
    known: KNOWN_DESCRIPTOR_FORMAT_VERSIONS,
  });
  const problem = descriptorProblem(rest);
  if (problem !== undefined) throw corrupt(problem);
  return copyDescriptor(rest as unknown as Descriptor);
}

// ---------------------------------------------------------------------------
// Replicas and their reconciliation

/** What was read of one descriptor replica: a descriptor, or the error reading it raised. */
export interface DescriptorReading {
  /** Which replica (a label chosen by the caller, e.g. its key). */
  readonly where: string;
  /**
   * The decoded descriptor, or the error: {@linkcode NotFoundError} means
   * missing, {@linkcode CorruptObjectError} corrupt,
   * {@linkcode UnsupportedFormatVersionError} written by a newer capsa, any
   * other error unreadable (state unknown).
   */
  readonly result: Descriptor | Error;
}

/**
 * What {@linkcode readDescriptorReplica} needs of a driver: a ranged read.
 * Every `Driver` (`drivers/driver.ts`) is one.
 */
export interface RangeReader {
  /**
   * Reads `length` bytes from `offset`, clipped at the end of the object;
   * throws `NotFoundError` for a missing object.
   *
   * @param key The object's key.
   * @param offset Where to start.
   * @param length How many bytes at most.
   * @returns The bytes read.
   */
  getRange(key: string, offset: number, length: number): Promise<Uint8Array>;
}

/** Options of {@linkcode readDescriptorReplica}. */
export interface ReadDescriptorReplicaOptions {
  /** The label of the reading (default: the key). */
  where?: string;
}

/**
 * Reads and decodes one descriptor replica, never throwing: any error is
 * returned in the reading for {@linkcode reconcileDescriptors} to classify.
 * At most {@linkcode MAX_DESCRIPTOR_BYTES} + 1 bytes are read, so an oversize
 * object costs no more than that.
 *
 * @param driver The driver of the Location (or of the host directory).
 * @param key The replica's key.
 * @param options The label of the reading.
 * @returns The reading.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readDescriptorReplica } from "./descriptor.ts";
 * import { MemoryDriver } from "../drivers/memory.ts";
 * import { DESCRIPTOR_KEY } from "../layout.ts";
 * const reading = await readDescriptorReplica(new MemoryDriver(), DESCRIPTOR_KEY);
 * const { NotFoundError } = await import("../errors.ts");
 * assert.deepEqual(reading.result instanceof NotFoundError, true);
 * ```
 */
export async function readDescriptorReplica(
  driver: RangeReader,
  key: string,
  options: ReadDescriptorReplicaOptions = {},
): Promise<DescriptorReading> {
  const where = options.where ?? key;
  try {
    const bytes = await driver.getRange(key, 0, MAX_DESCRIPTOR_BYTES + 1);
    return { where, result: decodeDescriptor(key, bytes) };
  } catch (e) {
    return { where, result: e instanceof Error ? e : new Error(String(e)) };
  }
}

/** The store state a reconciliation leads to (the `Ready`/`Degraded`/`Corrupted` of docs/DESIGN.md §6). */
export type DescriptorState = "Ready" | "Degraded" | "Corrupted";

/**
 * What is wrong with one replica:
 * - `missing`: it does not exist ({@linkcode NotFoundError}); healed.
 * - `corrupt`: it exists but fails to decode; healed.
 * - `differs`: valid, of the same store, but not the majority's descriptor; healed.
 * - `foreign`: valid but of another store (another store id); **not** healed:
 *   it suggests a misconfiguration (a host directory shared by two stores)
 *   that overwriting would hide.
 * - `unsupported`: of a newer format version; **not** healed (that would
 *   downgrade it).
 * - `unreadable`: reading failed for another reason (I/O, permissions): its
 *   content is unknown; **not** healed.
 */
export type ReplicaProblemKind =
  | "missing"
  | "corrupt"
  | "differs"
  | "foreign"
  | "unsupported"
  | "unreadable";

/** One problem found by {@linkcode reconcileDescriptors}. */
export interface ReplicaProblem {
  /** The replica concerned. */
  readonly where: string;
  /** What kind of problem. */
  readonly kind: ReplicaProblemKind;
  /** A one-line explanation. */
  readonly detail: string;
  /** The error read from the replica, when there was one. */
  readonly error?: Error;
}

/** The outcome of {@linkcode reconcileDescriptors}. */
export interface Reconciliation {
  /** The store's descriptor; `undefined` when the state is `Corrupted`. */
  readonly descriptor: Descriptor | undefined;
  /** `Ready`, `Degraded` or `Corrupted`. */
  readonly state: DescriptorState;
  /**
   * The replicas to rewrite with `descriptor` (missing, corrupt or differing
   * ones), in the order given. Empty when the state is `Corrupted`.
   */
  readonly toHeal: readonly string[];
  /** Every problem, one per replica concerned, in the order given. */
  readonly problems: readonly ReplicaProblem[];
}

/**
 * Decides which descriptor a store has from what was read of each of its
 * replicas, by these rules:
 *
 * 1. Valid replicas are grouped by content (their checksum). The group held by
 *    strictly more replicas than any other wins; if two groups tie, it throws
 *    {@linkcode DescriptorConflictError} rather than guess.
 * 2. With a winner: `Ready` if every replica is valid and in the winning
 *    group, else `Degraded`. Missing, corrupt and differing replicas are
 *    listed in `toHeal`; unreadable, newer-format and foreign ones never are.
 * 3. With no valid replica: if any replica was of a newer format version it
 *    throws that {@linkcode UnsupportedFormatVersionError}; else if any was
 *    unreadable it throws that error (an I/O failure means unknown, never
 *    absent); else (all missing or corrupt) the state is `Corrupted`.
 *
 * The function is pure: it reads and writes nothing.
 *
 * @param readings One reading per replica, each with a distinct `where`.
 * @returns The descriptor, the state, the replicas to heal and the problems.
 * @throws {DescriptorConflictError} when valid replicas disagree with no majority.
 * @throws {InvalidArgumentError} when `readings` is empty or names a replica twice.
 *
 * @example One replica lost
 * ```ts
 * import assert from "node:assert/strict";
 * import { createDescriptor, reconcileDescriptors } from "./descriptor.ts";
 * import { NotFoundError } from "../errors.ts";
 *
 * const d = createDescriptor();
 * const r = reconcileDescriptors([
 *   { where: "store.json", result: d },
 *   { where: "system.state/descriptor/store.json", result: new NotFoundError("system.state/descriptor/store.json") },
 * ]);
 * assert.deepEqual([r.state, r.toHeal], ["Degraded", ["system.state/descriptor/store.json"]]);
 * ```
 */
export function reconcileDescriptors(readings: readonly DescriptorReading[]): Reconciliation {
  if (readings.length === 0) {
    throw new InvalidArgumentError("reconcileDescriptors() needs at least one reading");
  }
  const seen = new Set<string>();
  for (const r of readings) {
    if (seen.has(r.where)) {
      throw new InvalidArgumentError(`reconcileDescriptors(): replica "${r.where}" given twice`);
    }
    seen.add(r.where);
  }

  // Group the valid replicas by content, keeping first-seen order.
  const groups = new Map<string, { descriptor: Descriptor; where: string[] }>();
  for (const { where, result } of readings) {
    if (result instanceof Error) continue;
    const sum = descriptorChecksum(result);
    const group = groups.get(sum);
    if (group === undefined) groups.set(sum, { descriptor: result, where: [where] });
    else group.where.push(where);
  }

  const problems: ReplicaProblem[] = [];
  const errorProblem = (where: string, error: Error): ReplicaProblem => {
    if (error instanceof NotFoundError) {
      return { where, kind: "missing", detail: "the replica does not exist", error };
    }
    if (error instanceof UnsupportedFormatVersionError) {
      return { where, kind: "unsupported", detail: error.reason, error };
    }
    if (error instanceof CorruptObjectError) {
      return { where, kind: "corrupt", detail: error.reason, error };
    }
    return {
      where,
      kind: "unreadable",
      detail: `could not be read (${error.message}); its content is unknown`,
      error,
    };
  };

  if (groups.size === 0) {
    for (const { where, result } of readings) problems.push(errorProblem(where, result as Error));
    const unsupported = problems.find((p) => p.kind === "unsupported");
    if (unsupported?.error !== undefined) throw unsupported.error;
    const unreadable = problems.find((p) => p.kind === "unreadable");
    if (unreadable?.error !== undefined) throw unreadable.error;
    return { descriptor: undefined, state: "Corrupted", toHeal: [], problems };
  }

  const ranked = [...groups.entries()].sort((a, b) => b[1].where.length - a[1].where.length);
  const [winnerSum, winner] = ranked[0]!;
  const runnerUp = ranked[1];
  if (runnerUp !== undefined && runnerUp[1].where.length === winner.where.length) {
    throw new DescriptorConflictError(
      [...groups.entries()].map(([checksum, g]) => ({
        where: g.where,
        storeId: g.descriptor.storeId,
        checksum,
      })),
    );
  }

  const toHeal: string[] = [];
  for (const { where, result } of readings) {
    if (result instanceof Error) {
      const problem = errorProblem(where, result);
      problems.push(problem);
      if (problem.kind === "missing" || problem.kind === "corrupt") toHeal.push(where);
      continue;
    }
    const sum = descriptorChecksum(result);
    if (sum === winnerSum) continue;
    if (result.storeId !== winner.descriptor.storeId) {
      problems.push({
        where,
        kind: "foreign",
        detail: `holds the descriptor of another store (${result.storeId}, not ` +
          `${winner.descriptor.storeId}); left as is: check that it belongs to this store`,
      });
    } else {
      problems.push({
        where,
        kind: "differs",
        detail: `holds a different descriptor of this store (${sum}, majority ${winnerSum})`,
      });
      toHeal.push(where);
    }
  }
  return {
    descriptor: copyDescriptor(winner.descriptor),
    state: problems.length === 0 ? "Ready" : "Degraded",
    toHeal,
    problems,
  };
}
