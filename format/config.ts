/**
 * The config history: immutable, numbered {@linkcode StoreConfig} versions
 * (`system.config/<seq>.json`) and the `system.config/current` pointer that
 * names the one in force.
 *
 * A config holds the tunables of a store that may change over its life
 * (thresholds, pack size, snapshot cadence, where manifests live). What must
 * never change, because it decides the identity of stored data (hash
 * algorithm, chunking parameters, encryption), is in the descriptor
 * (`format/descriptor.ts`). A change never edits a version: it writes the next
 * one and moves the pointer.
 *
 * Write ordering (a must-rule, see `docs/FORMAT.md (§6)`): a version is
 * written, create-only, and durable **before** the pointer names it. A crash
 * between the two leaves the previous version in force; the new one is
 * simply not current. A failed read or listing is never taken for "absent":
 * it propagates.
 *
 * @example Changing the pack size of a store
 * ```ts
 * import assert from "node:assert/strict";
 * import { defaultConfig, resolveCurrentConfig, writeConfigVersion } from "./config.ts";
 * import { MemoryDriver } from "@capsa/capsa";
 *
 * const driver = new MemoryDriver();
 * await writeConfigVersion(driver, defaultConfig()); // seq 1, at init
 * const { config } = await resolveCurrentConfig(driver);
 * await writeConfigVersion(driver, { ...config, packTargetSize: 32 * 1024 * 1024 }); // seq 2
 * assert.deepEqual((await resolveCurrentConfig(driver)).config.seq, 2);
 * ```
 *
 * @module
 */

import { type ChunkingParams, validateChunkingParams } from "./chunker.ts";
import { canonicalChecksum, checkEnvelope, isTimestamp } from "./fields.ts";
import {
  CorruptObjectError,
  InvalidArgumentError,
  NotFoundError,
  PreconditionFailedError,
} from "../errors.ts";
import { decodeJsonObject, isPlainObject, shown } from "./_json.ts";

// Re-exported so that this module's API is complete on its own.
export type { ChunkingParams } from "./chunker.ts";

/** The value of the `format` field of every config version. */
export const CONFIG_FORMAT = "capsa-config";

/**
 * The config format version this code writes: 2 adds `compression` and
 * `compressionLevel` (docs/FORMAT.md §6.4).
 */
export const CONFIG_FORMAT_VERSION = 2;

/**
 * Every config format version this code reads. A version 1 config has no
 * compression fields and reads as `compression: "none"`, `compressionLevel: 3`,
 * so a store made before compression keeps writing what it always wrote.
 */
export const KNOWN_CONFIG_FORMAT_VERSIONS: readonly number[] = [1, 2];

/** The largest config version accepted, in bytes; checked before anything is parsed. */
export const MAX_CONFIG_BYTES: number = 64 * 1024;

/** The largest `system.config/current` accepted, in bytes. */
export const MAX_POINTER_BYTES = 64;

import {
  CONFIG_CURRENT_KEY,
  CONFIG_PREFIX,
  CONFIG_REPLICA_PREFIX,
  configReplicaKey,
  configVersionKey,
  MAX_CONFIG_SEQ,
  parseConfigVersionKey,
} from "../layout.ts";

/**
 * Where manifests live (docs/DESIGN.md §4.6): `Remote` in the pack TOCs on the
 * Location, `Local` only in the host directory's manifest log, `Replicated`
 * in both.
 */
export type ManifestStorage = "Remote" | "Local" | "Replicated";

/** The values of {@linkcode ManifestStorage}. */
export const MANIFEST_STORAGES: readonly ManifestStorage[] = ["Remote", "Local", "Replicated"];

/**
 * Which versions garbage collection keeps (docs/DESIGN.md §7.8); every field
 * optional, durations in ms. With no field set every version is kept.
 */
export interface RetentionSettings {
  /** Keep the newest N versions holding data (≥ 1). */
  readonly keepVersions?: number;
  /** Keep every version younger than this (ms). */
  readonly keepWithin?: number;
  /** An artifact deleted longer ago than this (ms) loses its whole history. */
  readonly dropDeletedAfter?: number;
}

/** The retention policy of a store: one for all, and per-namespace overrides. */
export interface RetentionConfig extends RetentionSettings {
  /** Namespace → policy, each overriding the store's field by field. */
  readonly namespaces?: Readonly<Record<string, RetentionSettings>>;
}

/**
 * How a store compresses what it writes (docs/FORMAT.md §5.5.7): `zstd`
 * (blobs, TOCs and manifest log entries, each kept compressed only when that
 * saves at least 1/16) or `none`. Readers honour what each object says,
 * whatever the config, so the setting may change at any time.
 */
export type Compression = "zstd" | "none";

/** The values of {@linkcode Compression}. */
export const COMPRESSIONS: readonly Compression[] = ["zstd", "none"];

/** The tunables of a store: everything in a config version but its seq and date. */
export interface ConfigSettings {
  /** Bodies of at most this many bytes are kept inside their manifest. */
  readonly inlineThreshold: number;
  /** Bodies of at most this many bytes (and above `inlineThreshold`) are one `regular` blob; larger ones are chunked. */
  readonly chunkThreshold: number;
  /** A pack is sealed once it holds this many bytes; a blob larger than this is written loose. */
  readonly packTargetSize: number;
  /** How long an open, non-full pack waits for more puts before it is sealed, in ms. */
  readonly packLingerMs: number;
  /** Write an index snapshot after this many new packs (0: not by pack count). */
  readonly snapshotEveryPacks: number;
  /** Write an index snapshot when the newest is this old and packs were written since, in ms (0: not by time). */
  readonly snapshotIntervalMs: number;
  /** How many index snapshots to keep (the newest). */
  readonly snapshotsKept: number;
  /** Where manifests live. */
  readonly manifestStorage: ManifestStorage;
  /** How new blobs, TOCs and manifest log entries are compressed. */
  readonly compression: Compression;
  /** The zstd level (1–19) when `compression` is `zstd`. */
  readonly compressionLevel: number;
  /** What garbage collection keeps (absent: every version). */
  readonly retention?: RetentionConfig;
}

/** One version of the config history. */
export interface StoreConfig extends ConfigSettings {
  /** The version number, from 1; also in the key. */
  readonly seq: number;
  /** When the version was written: ISO 8601 UTC with milliseconds. */
  readonly createdAt: string;
}

/** The inclusive range each numeric setting must lie in. */
export const CONFIG_LIMITS: Readonly<
  Record<
    Exclude<keyof ConfigSettings, "manifestStorage" | "compression" | "retention">,
    { min: number; max: number }
  >
> = Object.freeze({
  inlineThreshold: { min: 0, max: 64 * 1024 },
  chunkThreshold: { min: 0, max: 64 * 1024 * 1024 },
  packTargetSize: { min: 1024, max: 1024 * 1024 * 1024 },
  packLingerMs: { min: 0, max: 10_000 },
  snapshotEveryPacks: { min: 0, max: 1_000_000_000 },
  snapshotIntervalMs: { min: 0, max: 30 * 24 * 3600 * 1000 },
  snapshotsKept: { min: 1, max: 1000 },
  compressionLevel: { min: 1, max: 19 },
});

const NUMERIC_SETTINGS = Object.keys(CONFIG_LIMITS) as Array<keyof typeof CONFIG_LIMITS>;
const SETTINGS_FIELDS: readonly string[] = [
  ...NUMERIC_SETTINGS.filter((f) => f !== "compressionLevel"),
  "manifestStorage",
  "compression",
  "compressionLevel",
];
// A version 1 config has neither compression field.
const V1_VERSION_FIELDS: readonly string[] = [
  "seq",
  "createdAt",
  ...SETTINGS_FIELDS.filter((f) => f !== "compression" && f !== "compressionLevel"),
];
/** What a version 1 config (written before compression existed) means. */
const V1_COMPRESSION = { compression: "none", compressionLevel: 3 } as const;
const VERSION_FIELDS: readonly string[] = ["seq", "createdAt", ...SETTINGS_FIELDS];
/** Optional settings: absent in configs written before them, and by default. */
const OPTIONAL_FIELDS: readonly string[] = ["retention"];
const MAX_DURATION_MS = 100 * 365 * 24 * 3600 * 1000;

function retentionSettingsProblem(where: string, value: unknown): string | undefined {
  if (!isPlainObject(value)) return `${where} must be an object, got ${shown(value)}`;
  for (const [k, v] of Object.entries(value)) {
    if (k === "keepVersions") {
      if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 1 || v > 1_000_000_000) {
        return `${where}.keepVersions must be an integer in [1, 1000000000], got ${shown(v)}`;
      }
    } else if (k === "keepWithin" || k === "dropDeletedAfter") {
      if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0 || v > MAX_DURATION_MS) {
        return `${where}.${k} must be a duration in ms in [0, ${MAX_DURATION_MS}], got ${shown(v)}`;
      }
    } else if (!(k === "namespaces" && where === '"retention"')) {
      return `unknown field "${k}" in ${where}`;
    }
  }
  return undefined;
}

function retentionProblem(value: unknown): string | undefined {
  const problem = retentionSettingsProblem('"retention"', value);
  if (problem !== undefined) return problem;
  const namespaces = (value as Record<string, unknown>).namespaces;
  if (namespaces === undefined) return undefined;
  if (!isPlainObject(namespaces)) {
    return `"retention".namespaces must be an object, got ${shown(namespaces)}`;
  }
  for (const [ns, policy] of Object.entries(namespaces)) {
    const p = retentionSettingsProblem(`"retention".namespaces[${JSON.stringify(ns)}]`, policy);
    if (p !== undefined) return p;
  }
  return undefined;
}

/**
 * The settings of a new store unless told otherwise:
 *
 * | setting | default | why |
 * | --- | --- | --- |
 * | `inlineThreshold` | 256 B | about the cost of a blob reference; the StoreIndex is held in memory, so inline bodies must stay tiny |
 * | `chunkThreshold` | 1 MiB | the average chunk: below it chunking cannot dedup much |
 * | `packTargetSize` | 16 MiB | few objects, cheap TOC reads, and room for four max-size chunks |
 * | `packLingerMs` | 20 ms | group commit of concurrent puts at small latency cost |
 * | `snapshotEveryPacks` | 256 | bounds the catch-up of an open |
 * | `snapshotIntervalMs` | 1 h | bounds it for slow writers too |
 * | `snapshotsKept` | 2 | a corrupt newest snapshot still leaves one; older ones are deleted only after the new one is written |
 * | `manifestStorage` | `Remote` | the Location alone is enough to rebuild |
 * | `compression` | `zstd` | text and other redundant data shrink; data that does not is stored as it is |
 * | `compressionLevel` | 3 | zstd's default: fast enough for ingest at disk speed, most of the gain of higher levels |
 *
 * @returns A fresh object with the defaults.
 *
 * @example Overriding one setting
 * ```ts
 * import { defaultConfig, validateConfig } from "./config.ts";
 * const settings = { ...defaultConfig(), packLingerMs: 5 };
 * validateConfig(settings);
 * ```
 */
export function defaultConfig(): ConfigSettings {
  return {
    inlineThreshold: 256,
    chunkThreshold: 1024 * 1024,
    packTargetSize: 16 * 1024 * 1024,
    packLingerMs: 20,
    snapshotEveryPacks: 256,
    snapshotIntervalMs: 3600 * 1000,
    snapshotsKept: 2,
    manifestStorage: "Remote",
    compression: "zstd",
    compressionLevel: 3,
  };
}

/**
 * The zstd level a store's writers compress with, or `undefined` when its
 * config says `compression: "none"`: what a `PackWriter`'s
 * `compressionLevel` takes.
 *
 * @param config The config in force.
 * @returns The level, or `undefined` for no compression.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { compressionLevelOf, defaultConfig } from "./config.ts";
 * assert.deepEqual(compressionLevelOf(defaultConfig()), 3);
 * assert.deepEqual(compressionLevelOf({ ...defaultConfig(), compression: "none" }), undefined);
 * ```
 */
export function compressionLevelOf(
  config: Pick<ConfigSettings, "compression" | "compressionLevel">,
): number | undefined {
  return config.compression === "zstd" ? config.compressionLevel : undefined;
}

// ---------------------------------------------------------------------------
// Validation

/** Options of {@linkcode validateConfig} and the readers that validate. */
export interface ConfigCheckOptions {
  /**
   * The store's chunking (from its descriptor): when given, a config whose
   * `packTargetSize` is smaller than `chunking.max` is refused, since a
   * max-size chunk could never fit in a pack.
   */
  chunking?: ChunkingParams;
}

/**
 * The first problem of a config object, or `undefined`. Types are checked
 * exactly: a string where a number belongs is a problem, never a default.
 */
function configProblem(
  value: unknown,
  fields: readonly string[],
  required: readonly string[],
  options: ConfigCheckOptions,
): string | undefined {
  if (!isPlainObject(value)) return `a config must be an object, got ${shown(value)}`;
  for (const f of required) if (!Object.hasOwn(value, f)) return `missing field "${f}"`;
  for (const k of Object.keys(value)) {
    if (!fields.includes(k) && !OPTIONAL_FIELDS.includes(k)) return `unknown field "${k}"`;
  }
  if (Object.hasOwn(value, "retention") && value.retention !== undefined) {
    const problem = retentionProblem(value.retention);
    if (problem !== undefined) return problem;
  }
  if (Object.hasOwn(value, "seq")) {
    const seq = value.seq;
    if (typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 1 || seq > MAX_CONFIG_SEQ) {
      return `"seq" must be an integer in [1, ${MAX_CONFIG_SEQ}], got ${shown(seq)}`;
    }
  }
  if (Object.hasOwn(value, "createdAt") && !isTimestamp(value.createdAt)) {
    return `"createdAt" must be an ISO 8601 UTC timestamp with milliseconds, got ${
      shown(value.createdAt)
    }`;
  }
  for (const f of NUMERIC_SETTINGS) {
    const v = value[f];
    const { min, max } = CONFIG_LIMITS[f];
    if (typeof v !== "number" || !Number.isSafeInteger(v)) {
      return `"${f}" must be an integer, got ${shown(v)}`;
    }
    if (v < min || v > max) return `"${f}" must be in [${min}, ${max}], got ${v}`;
  }
  if (!MANIFEST_STORAGES.includes(value.manifestStorage as ManifestStorage)) {
    return `"manifestStorage" must be one of ${MANIFEST_STORAGES.join(", ")}, got ${
      shown(value.manifestStorage)
    }`;
  }
  if (!COMPRESSIONS.includes(value.compression as Compression)) {
    return `"compression" must be one of ${COMPRESSIONS.join(", ")}, got ${
      shown(value.compression)
    }`;
  }
  const s = value as unknown as ConfigSettings;
  if (s.inlineThreshold > s.chunkThreshold) {
    return `"inlineThreshold" (${s.inlineThreshold}) must not exceed "chunkThreshold" (${s.chunkThreshold})`;
  }
  if (options.chunking !== undefined && s.packTargetSize < options.chunking.max) {
    return `"packTargetSize" (${s.packTargetSize}) must be at least the largest chunk (chunking.max = ${options.chunking.max})`;
  }
  return undefined;
}

/**
 * Checks settings (or a whole {@linkcode StoreConfig}): every field present
 * with the exact type and in {@linkcode CONFIG_LIMITS}, no unknown field (a
 * misspelt setting is an error, not a silent default), `inlineThreshold` ≤
 * `chunkThreshold`, and, when the store's chunking is given,
 * `packTargetSize` ≥ `chunking.max`.
 *
 * @param config The settings to check.
 * @param options The store's chunking, to check the pack size against.
 * @throws {InvalidArgumentError} naming the first problem.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { defaultConfig, validateConfig } from "./config.ts";
 * import { InvalidArgumentError } from "@capsa/capsa";
 *
 * try {
 *   validateConfig({ ...defaultConfig(), inlineThreshold: 8192, chunkThreshold: 4096 });
 * } catch (e) {
 *   assert.deepEqual(e instanceof InvalidArgumentError, true);
 * }
 * ```
 */
export function validateConfig(
  config: ConfigSettings | StoreConfig,
  options: ConfigCheckOptions = {},
): void {
  if (options.chunking !== undefined) validateChunkingParams(options.chunking);
  const problem = configProblem(config, VERSION_FIELDS, SETTINGS_FIELDS, options);
  if (problem !== undefined) throw new InvalidArgumentError(`invalid config: ${problem}`);
}

function settingsOf(config: ConfigSettings): ConfigSettings {
  return {
    inlineThreshold: config.inlineThreshold,
    chunkThreshold: config.chunkThreshold,
    packTargetSize: config.packTargetSize,
    packLingerMs: config.packLingerMs,
    snapshotEveryPacks: config.snapshotEveryPacks,
    snapshotIntervalMs: config.snapshotIntervalMs,
    snapshotsKept: config.snapshotsKept,
    manifestStorage: config.manifestStorage,
    compression: config.compression,
    compressionLevel: config.compressionLevel,
    ...(config.retention === undefined ? {} : { retention: config.retention }),
  };
}

function versionOf(config: StoreConfig): StoreConfig {
  return { seq: config.seq, createdAt: config.createdAt, ...settingsOf(config) };
}

// ---------------------------------------------------------------------------
// Encoding

const encoder = new TextEncoder();

/**
 * Encodes a config version: UTF-8 JSON, two-space indented, `format`,
 * `formatVersion`, the fields in their documented order, then `checksum`
 * (the {@linkcode canonicalChecksum} of all the other fields), ending with a
 * newline.
 *
 * @param config The version to encode.
 * @returns Its bytes.
 * @throws {InvalidArgumentError} when the config is invalid (nothing unreadable is written).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeConfig, defaultConfig, encodeConfig } from "./config.ts";
 * const v1 = { seq: 1, createdAt: "2026-05-10T12:00:00.000Z", ...defaultConfig() };
 * assert.deepEqual(decodeConfig("system.config/0000000001.json", encodeConfig(v1)).seq, 1);
 * ```
 */
export function encodeConfig(config: StoreConfig): Uint8Array {
  const problem = configProblem(config, VERSION_FIELDS, VERSION_FIELDS, {});
  if (problem !== undefined) throw new InvalidArgumentError(`invalid config: ${problem}`);
  const body = {
    format: CONFIG_FORMAT,
    formatVersion: CONFIG_FORMAT_VERSION,
    ...versionOf(config),
  };
  return encoder.encode(
    JSON.stringify({ ...body, checksum: canonicalChecksum(body) }, null, 2) + "\n",
  );
}

/**
 * Decodes and checks one config version. The size is bounded before
 * anything is parsed; then it must be UTF-8 JSON, an object whose `format`
 * is `"capsa-config"`, of a known `formatVersion`, whose `checksum` matches,
 * with every field present, of the exact type and valid by
 * {@linkcode validateConfig}, and no unknown field. Nothing is ever replaced
 * by a default.
 *
 * @param key The version's key, named in errors.
 * @param bytes Its bytes.
 * @param options The store's chunking, to check the pack size against.
 * @returns The config version.
 * @throws {UnsupportedFormatVersionError} (a {@linkcode CorruptObjectError})
 *   for a format version this code does not know.
 * @throws {CorruptObjectError} for anything else wrong, with the reason.
 *
 * @example A type mismatch is refused, not defaulted
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeConfig } from "./config.ts";
 * import { CorruptObjectError } from "@capsa/capsa";
 * const text = '{"format":"capsa-config","formatVersion":1,"inlineThreshold":"4096"}';
 * try {
 *   decodeConfig("system.config/0000000001.json", new TextEncoder().encode(text));
 * } catch (e) {
 *   assert.deepEqual(e instanceof CorruptObjectError, true);
 * }
 * ```
 */
export function decodeConfig(
  key: string,
  bytes: Uint8Array,
  options: ConfigCheckOptions = {},
): StoreConfig {
  const corrupt = (reason: string, cause?: unknown) =>
    new CorruptObjectError(key, reason, cause === undefined ? {} : { cause });
  const parsed = decodeJsonObject(key, bytes, { max: MAX_CONFIG_BYTES, noun: "config" });
  const rest = checkEnvelope(key, parsed, {
    format: CONFIG_FORMAT,
    noun: "config",
    known: KNOWN_CONFIG_FORMAT_VERSIONS,
  });
  // Checked exactly even under a good checksum: a well-typed writer is not
  // assumed, and a value of the wrong type is refused, never defaulted.
  const { format: _format, formatVersion: version, ...fields } = rest;
  if (version === 1) {
    // Checked as written (no compression field allowed), then read as "none".
    for (const k of Object.keys(fields)) {
      if (!V1_VERSION_FIELDS.includes(k)) throw corrupt(`unknown field "${k}"`);
    }
    Object.assign(fields, V1_COMPRESSION);
  }
  const problem = configProblem(fields, VERSION_FIELDS, VERSION_FIELDS, options);
  if (problem !== undefined) throw corrupt(problem);
  return versionOf(fields as unknown as StoreConfig);
}

// ---------------------------------------------------------------------------
// Reading and writing the history over a driver

/**
 * What the config history needs of a driver: ranged reads, puts (with
 * create-only) and listings. Every `Driver` (`drivers/driver.ts`) is one.
 */
export interface ConfigDriver {
  /**
   * Reads at most `length` bytes from `offset`; throws `NotFoundError` for a missing object.
   * @param key The key. @param offset The start. @param length The most bytes to read.
   * @returns The bytes.
   */
  getRange(key: string, offset: number, length: number): Promise<Uint8Array>;
  /**
   * Writes an object atomically; with `ifAbsent`, throws `PreconditionFailedError` if it exists.
   * @param key The key. @param bytes The content. @param options `ifAbsent`.
   */
  put(key: string, bytes: Uint8Array, options?: { ifAbsent?: boolean }): Promise<void>;
  /**
   * Lists the objects under a prefix, in key order, each with its size.
   * @param prefix The prefix.
   * @returns The objects.
   */
  list(prefix: string): AsyncIterable<{ key: string; size: number }>;
}

/** A key under `system.config/` that did not yield a valid version. */
export interface InvalidConfigVersion {
  /** The key. */
  readonly key: string;
  /** Why it is not a valid version. */
  readonly reason: string;
}

/** The outcome of {@linkcode readConfigHistory}. */
export interface ConfigHistory {
  /** The valid versions, by ascending seq: a version is valid when either of its copies is. */
  readonly versions: readonly StoreConfig[];
  /**
   * Every other key under `system.config/` and `system.state/config/` (but the
   * pointer), with the reason, in key order: damaged copies, stray keys.
   */
  readonly invalid: readonly InvalidConfigVersion[];
  /**
   * Copies to rewrite from a valid twin: a version's copy (primary
   * `system.config/<seq>.json` or replica `system.state/config/<seq>.json`)
   * that is missing, damaged, or differs from the primary. Healing writes
   * `bytes` at `key`.
   */
  readonly toHeal: readonly { readonly key: string; readonly bytes: Uint8Array }[];
}

/**
 * Reads every config version, both copies of each. A copy that fails to
 * decode (or whose seq differs from its key's) is listed in `invalid` with
 * the reason, as are stray keys; each is read with at most
 * {@linkcode MAX_CONFIG_BYTES} + 1 bytes. A version is valid when either copy
 * is (the primary wins when both are and differ); the other copy is then
 * listed in `toHeal`. Any other failure (a listing or a read that fails)
 * propagates: it never makes a version look absent.
 *
 * @param driver The Location's driver.
 * @param options The store's chunking, to check each version against.
 * @returns The valid versions, the invalid keys and the copies to heal.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { defaultConfig, readConfigHistory, writeConfigVersion } from "./config.ts";
 * import { MemoryDriver } from "@capsa/capsa";
 * const driver = new MemoryDriver();
 * await writeConfigVersion(driver, defaultConfig());
 * await driver.put("system.config/0000000001.json", new TextEncoder().encode("garbage"));
 * const { versions, invalid, toHeal } = await readConfigHistory(driver);
 * assert.deepEqual([versions.length, invalid.length, toHeal.length], [1, 1, 1]);
 * ```
 */
export async function readConfigHistory(
  driver: ConfigDriver,
  options: ConfigCheckOptions = {},
): Promise<ConfigHistory> {
  const invalid: InvalidConfigVersion[] = [];
  const primaries = await readCopies(driver, CONFIG_PREFIX, options, invalid);
  const replicas = await readCopies(driver, CONFIG_REPLICA_PREFIX, options, invalid);
  const versions: StoreConfig[] = [];
  const toHeal: { key: string; bytes: Uint8Array }[] = [];
  const seqs = [...new Set([...primaries.keys(), ...replicas.keys()])].sort((a, b) => a - b);
  for (const seq of seqs) {
    const primary = primaries.get(seq);
    const replica = replicas.get(seq);
    const config = primary ?? replica!;
    versions.push(config.config);
    if (primary === undefined) toHeal.push({ key: configVersionKey(seq), bytes: config.bytes });
    if (replica === undefined || !sameBytes(replica.bytes, config.bytes)) {
      toHeal.push({ key: configReplicaKey(seq), bytes: config.bytes });
    }
  }
  invalid.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return { versions, invalid, toHeal };
}

/** The valid copies under one prefix, by seq; every other key is added to `invalid`. */
async function readCopies(
  driver: ConfigDriver,
  prefix: string,
  options: ConfigCheckOptions,
  invalid: InvalidConfigVersion[],
): Promise<Map<number, { config: StoreConfig; bytes: Uint8Array }>> {
  const copies = new Map<number, { config: StoreConfig; bytes: Uint8Array }>();
  for await (const { key, size } of driver.list(prefix)) {
    if (key === CONFIG_CURRENT_KEY) continue;
    const seq = parseConfigVersionKey(key);
    if (seq === undefined) {
      invalid.push({ key, reason: `not a config version key (${prefix}<10-digit seq>.json)` });
      continue;
    }
    if (size > MAX_CONFIG_BYTES) {
      invalid.push({
        key,
        reason: `${size} bytes, larger than the ${MAX_CONFIG_BYTES}-byte bound of a config`,
      });
      continue;
    }
    const bytes = await driver.getRange(key, 0, MAX_CONFIG_BYTES + 1);
    try {
      const config = decodeConfig(key, bytes, options);
      if (config.seq !== seq) {
        invalid.push({ key, reason: `holds seq ${config.seq}, but its key names seq ${seq}` });
        continue;
      }
      copies.set(seq, { config, bytes });
    } catch (e) {
      if (!(e instanceof CorruptObjectError)) throw e;
      invalid.push({ key, reason: e.reason });
    }
  }
  return copies;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** What `system.config/current` says: a seq, or why it names none. */
export type CurrentPointer = { readonly seq: number } | { readonly dangling: string };

/**
 * Reads `system.config/current`. Its content must be the seq in decimal
 * (no sign, no leading zero), optionally followed by one newline; anything
 * else, an oversize object, or no object at all, is reported as dangling
 * with the reason. A failed read propagates.
 *
 * @param driver The Location's driver.
 * @returns `{ seq }`, or `{ dangling: reason }`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readCurrentPointer } from "./config.ts";
 * import { MemoryDriver } from "@capsa/capsa";
 * assert.deepEqual(await readCurrentPointer(new MemoryDriver()), { dangling: "system.config/current does not exist" });
 * ```
 */
export async function readCurrentPointer(driver: ConfigDriver): Promise<CurrentPointer> {
  let bytes: Uint8Array;
  try {
    bytes = await driver.getRange(CONFIG_CURRENT_KEY, 0, MAX_POINTER_BYTES + 1);
  } catch (e) {
    if (e instanceof NotFoundError) return { dangling: `${CONFIG_CURRENT_KEY} does not exist` };
    throw e;
  }
  if (bytes.length > MAX_POINTER_BYTES) {
    return { dangling: `${CONFIG_CURRENT_KEY} is larger than ${MAX_POINTER_BYTES} bytes` };
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return { dangling: `${CONFIG_CURRENT_KEY} is not UTF-8 text` };
  }
  const m = /^([1-9][0-9]{0,9})\n?$/.exec(text);
  if (m === null) {
    return { dangling: `${CONFIG_CURRENT_KEY} does not hold a seq: ${JSON.stringify(text)}` };
  }
  return { seq: Number(m[1]) };
}

/** The outcome of {@linkcode resolveCurrentConfig}. */
export interface ResolvedConfig {
  /** The config in force: the pointer's version, or the newest valid one when the pointer dangles. */
  readonly config: StoreConfig;
  /** `ok` when the pointer names a valid version; `dangling` otherwise (the store is `Degraded`). */
  readonly pointer: "ok" | "dangling";
  /** Why the pointer dangles; present only when it does. */
  readonly danglingReason?: string;
  /**
   * The newest valid version. Newer than `config` when a writer stopped
   * between writing a version and moving the pointer: that version was
   * never committed and is not in force.
   */
  readonly newestValid: StoreConfig;
  /** The keys under `system.config/` and `system.state/config/` that are not valid versions. */
  readonly invalid: readonly InvalidConfigVersion[];
  /** Copies of valid versions to rewrite ({@linkcode ConfigHistory.toHeal}). */
  readonly toHeal: ConfigHistory["toHeal"];
}

/**
 * Finds the config in force: the version the pointer names if it is valid;
 * otherwise (pointer missing, unparseable, or naming a missing or invalid
 * version) the newest valid version, with `pointer: "dangling"`.
 *
 * @param driver The Location's driver.
 * @param options The store's chunking, to check each version against.
 * @returns The config in force, the pointer's state and the newest valid version.
 * @throws {CorruptObjectError} when no valid version exists at all (keyed
 *   `system.config/`, listing the invalid ones).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { defaultConfig, resolveCurrentConfig, writeConfigVersion } from "./config.ts";
 * import { MemoryDriver } from "@capsa/capsa";
 * const driver = new MemoryDriver();
 * await writeConfigVersion(driver, defaultConfig());
 * await driver.delete("system.config/current");
 * const r = await resolveCurrentConfig(driver);
 * assert.deepEqual([r.pointer, r.config.seq], ["dangling", 1]);
 * ```
 */
export async function resolveCurrentConfig(
  driver: ConfigDriver,
  options: ConfigCheckOptions = {},
): Promise<ResolvedConfig> {
  const { versions, invalid, toHeal } = await readConfigHistory(driver, options);
  const pointer = await readCurrentPointer(driver);
  const newestValid = versions[versions.length - 1];
  if (newestValid === undefined) {
    const listed = invalid.map((i) => `${i.key}: ${i.reason}`).join("; ");
    throw new CorruptObjectError(
      CONFIG_PREFIX,
      invalid.length === 0
        ? "no StoreConfig version exists"
        : `none of the ${invalid.length} StoreConfig versions is valid (${listed})`,
    );
  }
  let reason: string;
  if ("seq" in pointer) {
    const named = versions.find((v) => v.seq === pointer.seq);
    if (named !== undefined) return { config: named, pointer: "ok", newestValid, invalid, toHeal };
    const key = configVersionKey(pointer.seq);
    const bad = invalid.find((i) => i.key === key);
    reason = bad === undefined
      ? `${CONFIG_CURRENT_KEY} names seq ${pointer.seq}, which does not exist`
      : `${CONFIG_CURRENT_KEY} names seq ${pointer.seq}, which is invalid: ${bad.reason}`;
  } else {
    reason = pointer.dangling;
  }
  return {
    config: newestValid,
    pointer: "dangling",
    danglingReason: reason,
    newestValid,
    invalid,
    toHeal,
  };
}

/**
 * Points `system.config/current` at version `seq`, after checking that the
 * version exists and is valid (the pointer never names anything else). Used
 * after writing a version, and to repair a dangling pointer.
 *
 * @param driver The Location's driver.
 * @param seq The version to point at.
 * @param options The store's chunking, to check the version against.
 * @throws {NotFoundError} when the version does not exist.
 * @throws {CorruptObjectError} when it is invalid.
 *
 * @example Repairing a dangling pointer
 * ```ts
 * import { defaultConfig, resolveCurrentConfig, writeConfigVersion, writeCurrentPointer } from "./config.ts";
 * import { MemoryDriver } from "@capsa/capsa";
 * const driver = new MemoryDriver();
 * await writeConfigVersion(driver, defaultConfig());
 * await driver.put("system.config/current", new TextEncoder().encode("99\n"));
 * const { pointer, newestValid } = await resolveCurrentConfig(driver);
 * if (pointer === "dangling") await writeCurrentPointer(driver, newestValid.seq);
 * ```
 */
export async function writeCurrentPointer(
  driver: ConfigDriver,
  seq: number,
  options: ConfigCheckOptions = {},
): Promise<void> {
  const key = configVersionKey(seq);
  const config = decodeConfig(key, await driver.getRange(key, 0, MAX_CONFIG_BYTES + 1), options);
  if (config.seq !== seq) {
    throw new CorruptObjectError(key, `holds seq ${config.seq}, but its key names seq ${seq}`);
  }
  await driver.put(CONFIG_CURRENT_KEY, encoder.encode(`${seq}\n`));
}

/** Options of {@linkcode writeConfigVersion}. */
export interface WriteConfigVersionOptions extends ConfigCheckOptions {
  /** The clock giving `createdAt`, in ms since the epoch (default `Date.now`). */
  clock?: () => number;
  /** How many seqs to try when racing writers take them first (default 8). */
  maxAttempts?: number;
}

/** The highest seq of any version key, valid or not (0 when there is none). */
async function highestSeq(driver: ConfigDriver): Promise<number> {
  let highest = 0;
  for (const prefix of [CONFIG_PREFIX, CONFIG_REPLICA_PREFIX]) {
    for await (const { key } of driver.list(prefix)) {
      const seq = parseConfigVersionKey(key);
      if (seq !== undefined && seq > highest) highest = seq;
    }
  }
  return highest;
}

/**
 * Writes a new config version and makes it current, in this order:
 *
 * 1. validates the settings (nothing is written if they are invalid);
 * 2. puts the version at the seq after the highest existing version key
 *    (valid or not), **create-only**; if a racing writer took that seq
 *    ({@linkcode PreconditionFailedError}), lists again and retries with the
 *    next one;
 * 3. puts its replica at `system.state/config/<seq>.json`;
 * 4. only then rewrites `system.config/current` to name it.
 *
 * A crash between 2 and 3 leaves the previous version in force. Two writers
 * never overwrite each other's version; which of them ends up current is the
 * last pointer write, so config changes should be serialized by the caller
 * (the maintenance lease).
 *
 * @param driver The Location's driver.
 * @param settings The new settings (a `seq` and `createdAt` in it are ignored:
 *   the version gets the next seq and the time of writing).
 * @param options The store's chunking, the clock, and the number of attempts.
 * @returns The version written.
 * @throws {InvalidArgumentError} when the settings are invalid.
 * @throws {PreconditionFailedError} when every attempt lost its race.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { defaultConfig, writeConfigVersion } from "./config.ts";
 * import { MemoryDriver } from "@capsa/capsa";
 * const driver = new MemoryDriver();
 * const v1 = await writeConfigVersion(driver, { ...defaultConfig(), manifestStorage: "Replicated" });
 * assert.deepEqual([v1.seq, new TextDecoder().decode(await driver.get("system.config/current"))], [1, "1\n"]);
 * ```
 */
export async function writeConfigVersion(
  driver: ConfigDriver,
  settings: ConfigSettings,
  options: WriteConfigVersionOptions = {},
): Promise<StoreConfig> {
  const checkOptions: ConfigCheckOptions = options.chunking === undefined
    ? {}
    : { chunking: options.chunking };
  validateConfig(settings, checkOptions);
  const maxAttempts = options.maxAttempts ?? 8;
  if (!Number.isSafeInteger(maxAttempts) || maxAttempts < 1) {
    throw new InvalidArgumentError(`maxAttempts must be a positive integer, got ${maxAttempts}`);
  }
  const clock = options.clock ?? Date.now;
  let lost: PreconditionFailedError | undefined;
  for (let attempt = 0; attempt < maxAttempts; attempt++) {
    const seq = (await highestSeq(driver)) + 1;
    if (seq > MAX_CONFIG_SEQ) throw new InvalidArgumentError("the config seq space is exhausted");
    const now = clock();
    if (!Number.isFinite(now)) throw new InvalidArgumentError(`the clock returned ${now}`);
    const config: StoreConfig = {
      seq,
      createdAt: new Date(now).toISOString(),
      ...settingsOf(settings),
    };
    const bytes = encodeConfig(config);
    try {
      await driver.put(configVersionKey(seq), bytes, { ifAbsent: true });
    } catch (e) {
      if (!(e instanceof PreconditionFailedError)) throw e;
      lost = e;
      continue;
    }
    // This writer won the seq: its replica is its own to write.
    await driver.put(configReplicaKey(seq), bytes);
    // Both copies are durable: only now may the pointer name the version.
    await driver.put(CONFIG_CURRENT_KEY, encoder.encode(`${seq}\n`));
    return config;
  }
  throw lost!;
}
