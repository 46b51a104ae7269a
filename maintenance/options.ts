/**
 * The one parser of maintenance options from untyped input: command-line
 * flags (`capsa verify --data --subset 1/7 --lease-ttl 30m`, values as
 * strings) and JSON bodies (`POST /v1/maintenance/verify` with
 * `{"data": true, "subset": "1/7", "leaseTTL": 1800000}`). The CLI and the
 * HTTP endpoint both call it, so the same bad option is refused the same
 * way on both: an {@linkcode InvalidArgumentError} whose message names the
 * option as the caller spelled it (`--lease-ttl` or `leaseTTL`); the CLI
 * reports it as a usage error (exit code 2), HTTP as 400.
 *
 * Each agent's options are one table of {@linkcode OptionSpec}s
 * ({@linkcode REBUILD_OPTIONS}, {@linkcode VERIFY_OPTIONS},
 * {@linkcode MIGRATE_OPTIONS}, {@linkcode MOVE_OPTIONS}, {@linkcode GC_OPTIONS}) read by
 * {@linkcode readOptions}; a new agent adds a table and, when its options
 * depend on each other, a few lines of cross-checks. The agents'
 * `validate()` still checks typed configurations from library callers.
 *
 * | kind | from flags | from JSON |
 * | --- | --- | --- |
 * | {@linkcode integer} | decimal digits | a JSON integer |
 * | {@linkcode duration} | `1500ms`, `90s`, `30m`, `2h` | the same, or a number of milliseconds |
 * | {@linkcode boolean} | present or absent | `true` or `false` |
 * | {@linkcode choice} | a value or its alias (`full-scan`) | the same (`FullScan`) |
 * | {@linkcode subset} | `n/m` or `P%` | the same |
 * | {@linkcode fraction} | `5%` | the same, or a number from 0 to 1 |
 * | {@linkcode text} | a string | a string |
 *
 * @example The same option from the command line and from JSON
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseVerifyOptions } from "./options.ts";
 *
 * const fromFlags = parseVerifyOptions(
 *   { data: true, subset: "2/7", "lease-ttl": "30m" },
 *   "flags",
 * );
 * const fromJson = parseVerifyOptions({ data: true, subset: "2/7", leaseTTL: 1_800_000 }, "json");
 * assert.deepEqual(fromFlags, fromJson);
 * assert.deepEqual(fromJson, { data: true, subset: { slice: [2, 7] }, leaseTTL: 1_800_000 });
 * assert.throws(() => parseVerifyOptions({ "lease-ttl": "soon" }, "flags"), /--lease-ttl must be/);
 * assert.throws(() => parseVerifyOptions({ leaseTTL: "soon" }, "json"), /leaseTTL must be/);
 * ```
 *
 * @module
 */

import { InvalidArgumentError } from "../errors.ts";
import { MANIFEST_STORAGES, type ManifestStorage } from "../format/config.ts";
import type { MigrateConfig } from "./migrate_index.ts";
import type { MoveConfig } from "./move_store.ts";
import type { RebuildConfig, RebuildSource } from "./rebuild_index.ts";
import type { VerifyConfig, VerifySubset } from "./verify.ts";
import type { GcConfig, RetentionPolicy } from "./gc.ts";

/**
 * Where untyped options come from: `"flags"`, parsed command-line flags
 * keyed by flag name (values are strings, or `true` for a flag without a
 * value); `"json"`, a JSON object keyed by option name (typed values).
 */
export type OptionSource = "flags" | "json";

/** How one option is read. */
export interface OptionSpec<T> {
  /** Its command-line flag, without `--`; without one the option is JSON-only. */
  flag?: string;
  /** A JSON body must give it. */
  required?: boolean;
  /**
   * Converts a value that is present (not `undefined`, nor JSON `null`).
   * @param value The raw value.
   * @param name The option as the caller spelled it (`--lease-ttl` or `leaseTTL`).
   * @param from Where it came from.
   * @returns The typed value.
   * @throws {InvalidArgumentError} naming the option.
   */
  parse(value: unknown, name: string, from: OptionSource): T;
}

/** A table of options: option name (as in JSON and in the agent's config) → spec. */
export type OptionSpecs = Readonly<Record<string, OptionSpec<unknown>>>;

/** The typed values of a table: only the options that were given. */
export type OptionValues<S extends OptionSpecs> = {
  -readonly [K in keyof S]?: S[K] extends OptionSpec<infer T> ? T : never;
};

const show = (value: unknown): string => JSON.stringify(value) ?? String(value);
const invalid = (name: string, what: string, value: unknown) =>
  new InvalidArgumentError(`${name} must be ${what}, got ${show(value)}`);

/**
 * An integer in `[min, max]`: decimal digits from flags, a JSON integer from JSON.
 * @param min The smallest value accepted.
 * @param max The largest value accepted.
 * @param flag The command-line flag, if any.
 * @returns The spec.
 */
export function integer(min: number, max: number, flag?: string): OptionSpec<number> {
  const what = `an integer from ${min} to ${max}`;
  return {
    ...(flag === undefined ? {} : { flag }),
    parse(value, name, from) {
      const n = from === "flags"
        ? (typeof value === "string" && /^[0-9]{1,16}$/.test(value) ? Number(value) : NaN)
        : (typeof value === "number" ? value : NaN);
      if (!Number.isSafeInteger(n) || n < min || n > max) throw invalid(name, what, value);
      return n;
    },
  };
}

const UNITS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/**
 * Parses a duration such as `1500ms`, `90s`, `30m`, `2h` or `30d` (`0s` is
 * zero; whether zero is allowed is the option's to say).
 * @param text The text.
 * @returns Milliseconds, or `undefined` when it is not such a duration.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseDuration } from "./options.ts";
 *
 * assert.equal(parseDuration("30m"), 1_800_000);
 * assert.equal(parseDuration("30d"), 2_592_000_000);
 * assert.equal(parseDuration("1w"), undefined);
 * ```
 */
export function parseDuration(text: string): number | undefined {
  const m = /^([0-9]{1,12})(ms|s|m|h|d)$/.exec(text.trim());
  if (!m) return undefined;
  return Number(m[1]) * UNITS[m[2]!]!;
}

function formatMs(ms: number): string {
  if (ms === 0) return "0s";
  for (const unit of ["d", "h", "m", "s"] as const) {
    if (ms % UNITS[unit]! === 0) return `${ms / UNITS[unit]!}${unit}`;
  }
  return `${ms}ms`;
}

/**
 * A duration in milliseconds, at least `min`: `30m` and the like from flags;
 * the same or a number of milliseconds from JSON.
 * @param min The shortest duration accepted, in ms.
 * @param flag The command-line flag, if any.
 * @returns The spec.
 */
export function duration(min: number, flag?: string): OptionSpec<number> {
  return {
    ...(flag === undefined ? {} : { flag }),
    parse(value, name, from) {
      const ms = typeof value === "string"
        ? parseDuration(value)
        : from === "json" && typeof value === "number" && Number.isSafeInteger(value)
        ? value
        : undefined;
      if (ms === undefined) throw invalid(name, "a duration like 90s, 30m, 2h or 30d", value);
      if (ms < min) throw invalid(name, `at least ${formatMs(min)}`, value);
      return ms;
    },
  };
}

/**
 * A boolean: a flag without a value, or JSON `true` / `false`.
 * @param flag The command-line flag, if any.
 * @returns The spec.
 */
export function boolean(flag?: string): OptionSpec<boolean> {
  return {
    ...(flag === undefined ? {} : { flag }),
    parse(value, name) {
      if (typeof value !== "boolean") throw invalid(name, "true or false", value);
      return value;
    },
  };
}

/**
 * One of a set of values, each with the alias the command line uses
 * (`FullScan` / `full-scan`); both spellings are accepted from both sources,
 * and a refusal lists the spelling of the source.
 * @param values Value → its alias.
 * @param flag The command-line flag, if any.
 * @returns The spec.
 */
export function choice<T extends string>(
  values: Readonly<Record<T, string>>,
  flag?: string,
): OptionSpec<T> {
  const entries = Object.entries(values) as Array<[T, string]>;
  return {
    ...(flag === undefined ? {} : { flag }),
    parse(value, name, from) {
      const hit = entries.find(([v, alias]) => value === v || value === alias);
      if (hit) return hit[0];
      const names = entries.map(([v, alias]) => (from === "flags" ? alias : v));
      const list = `${names.slice(0, -1).join(", ")} or ${names.at(-1)}`;
      throw invalid(name, list, value);
    },
  };
}

/**
 * The subset of a verification's data checks: `n/m` (the `n`-th of `m`
 * slices, `1 ≤ n ≤ m`) or `P%` (a sample, `0 ≤ P ≤ 100`).
 * @param flag The command-line flag, if any.
 * @returns The spec.
 */
export function subset(flag?: string): OptionSpec<VerifySubset> {
  return {
    ...(flag === undefined ? {} : { flag }),
    parse(value, name) {
      const text = typeof value === "string" ? value : "";
      const slice = /^(\d{1,9})\/(\d{1,9})$/.exec(text);
      if (slice) {
        const n = Number(slice[1]);
        const m = Number(slice[2]);
        if (n < 1 || n > m) throw invalid(name, "n/m with 1 ≤ n ≤ m", value);
        return { slice: [n, m] };
      }
      const pct = /^(\d{1,3}(?:\.\d{1,6})?)%$/.exec(text);
      if (pct && Number(pct[1]) <= 100) return { fraction: Number(pct[1]) / 100 };
      throw invalid(name, "n/m (e.g. 2/7) or a percentage (e.g. 10%)", value);
    },
  };
}

/**
 * A non-empty string.
 * @param flag The command-line flag, if any.
 * @returns The spec.
 */
export function text(flag?: string): OptionSpec<string> {
  return {
    ...(flag === undefined ? {} : { flag }),
    parse(value, name) {
      if (typeof value !== "string" || value === "") {
        throw invalid(name, "a non-empty string", value);
      }
      return value;
    },
  };
}

/**
 * Reads the options of a table from untyped input. From flags, options
 * without a flag are not read and other keys (global flags) are ignored;
 * from JSON, an unknown key is refused and `null` counts as absent.
 *
 * @param specs The table.
 * @param input The parsed flags, or the JSON object.
 * @param from Where `input` comes from.
 * @returns The options given, typed.
 * @throws {InvalidArgumentError} for the first option that is wrong, named as the caller spelled it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { integer, readOptions } from "./options.ts";
 *
 * const specs = { parallelism: integer(1, 256, "parallelism") };
 * assert.deepEqual(readOptions(specs, { parallelism: "8", json: true }, "flags"), { parallelism: 8 });
 * assert.throws(() => readOptions(specs, { parallelism: "8" }, "json"), /parallelism must be an integer/);
 * assert.throws(() => readOptions(specs, { paralelism: 8 }, "json"), /unknown parameter "paralelism"/);
 * ```
 */
export function readOptions<S extends OptionSpecs>(
  specs: S,
  input: Readonly<Record<string, unknown>>,
  from: OptionSource,
): OptionValues<S> {
  if (from === "json") {
    for (const key of Object.keys(input)) {
      if (!Object.hasOwn(specs, key)) {
        throw new InvalidArgumentError(
          `unknown parameter ${show(key)} (known: ${Object.keys(specs).join(", ")})`,
        );
      }
    }
  }
  const out: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(specs)) {
    if (from === "flags" && spec.flag === undefined) continue;
    const name = from === "flags" ? `--${spec.flag}` : key;
    const value = Object.hasOwn(input, from === "flags" ? spec.flag! : key)
      ? input[from === "flags" ? spec.flag! : key]
      : undefined;
    if (value === undefined || (from === "json" && value === null)) {
      if (from === "json" && spec.required) {
        throw new InvalidArgumentError(`${name} is required`);
      }
      continue;
    }
    out[key] = spec.parse(value, name, from);
  }
  return out as OptionValues<S>;
}

/** The names an option is spelled with, for cross-check messages. */
function spell(from: OptionSource, key: string, flag: string): string {
  return from === "flags" ? `--${flag}` : key;
}

const PARALLELISM = integer(1, 256, "parallelism");
const LEASE_TTL = duration(1000, "lease-ttl");
const FORCE = boolean("force");

/**
 * The RebuildIndexAgent's options. The Recovery Kit is JSON-only
 * (`recoveryKit`: the kit's text); the CLI reads it from `--kit FILE`.
 */
export const REBUILD_OPTIONS = {
  source: choice<RebuildSource>(
    { Auto: "auto", Snapshot: "snapshot", FullScan: "full-scan" },
    "source",
  ),
  batchSize: integer(1, 1_000_000, "batch-size"),
  parallelism: PARALLELISM,
  leaseTTL: LEASE_TTL,
  force: FORCE,
  recoveryKit: text(),
} as const satisfies OptionSpecs;

/** The VerificationAgent's options (`seed` goes with a percentage `subset`). */
export const VERIFY_OPTIONS = {
  data: boolean("data"),
  subset: subset("subset"),
  seed: integer(0, 2 ** 32 - 1, "seed"),
  parallelism: PARALLELISM,
  leaseTTL: LEASE_TTL,
  force: FORCE,
} as const satisfies OptionSpecs;

/** The MigrateIndexAgent's options. */
export const MIGRATE_OPTIONS = {
  manifestStorage: choice<ManifestStorage>(
    Object.fromEntries(MANIFEST_STORAGES.map((m) => [m, m.toLowerCase()])) as Record<
      ManifestStorage,
      string
    >,
    "manifest-storage",
  ),
  leaseTTL: LEASE_TTL,
  force: FORCE,
} as const satisfies OptionSpecs;

/**
 * The MoveStoreAgent's options. The destination (a Location URL) is required
 * in JSON; on the command line it is a positional argument.
 */
export const MOVE_OPTIONS = {
  destination: { ...text(), required: true },
  parallelism: PARALLELISM,
  deleteSource: boolean("delete-source"),
  leaseTTL: LEASE_TTL,
  force: FORCE,
} as const satisfies OptionSpecs;

/**
 * A fraction from 0 to 1: `5%` from flags; the same or a number from JSON.
 * @param flag The command-line flag, if any.
 * @returns The spec.
 */
export function fraction(flag?: string): OptionSpec<number> {
  return {
    ...(flag === undefined ? {} : { flag }),
    parse(value, name, from) {
      const m = typeof value === "string" ? /^([0-9]{1,3}(?:\.[0-9]{1,6})?)%$/.exec(value) : null;
      const f = m
        ? Number(m[1]) / 100
        : from === "json" && typeof value === "number" && Number.isFinite(value)
        ? value
        : NaN;
      if (!(f >= 0 && f <= 1)) throw invalid(name, "a percentage from 0% to 100%", value);
      return f;
    },
  };
}

/** A retention policy in JSON: `{keepVersions?, keepWithin?, dropDeletedAfter?}`. */
const RETENTION_OPTIONS = {
  keepVersions: integer(1, 1_000_000_000, "keep-versions"),
  keepWithin: duration(0, "keep-within"),
  dropDeletedAfter: duration(0, "drop-deleted-after"),
} as const satisfies OptionSpecs;

/**
 * The GarbageCollectAgent's options. Per-namespace policies are JSON-only
 * (`namespaces`: namespace → `{keepVersions, keepWithin, dropDeletedAfter}`),
 * as is `repackSmall`.
 */
export const GC_OPTIONS = {
  ...RETENTION_OPTIONS,
  namespaces: {
    parse(value: unknown, name: string): Record<string, RetentionPolicy> {
      if (typeof value !== "object" || value === null || Array.isArray(value)) {
        throw invalid(name, "an object of namespace → policy", value);
      }
      const out: Record<string, RetentionPolicy> = {};
      for (const [ns, policy] of Object.entries(value)) {
        if (typeof policy !== "object" || policy === null || Array.isArray(policy)) {
          throw invalid(`${name}.${ns}`, "a policy object", policy);
        }
        out[ns] = readOptions(RETENTION_OPTIONS, policy as Record<string, unknown>, "json");
      }
      return out;
    },
  },
  dryRun: boolean("dry-run"),
  maxUnused: fraction("max-unused"),
  repackSmall: boolean(),
  grace: duration(0, "grace"),
  savePolicy: boolean("save-policy"),
  parallelism: PARALLELISM,
  leaseTTL: LEASE_TTL,
  force: FORCE,
} as const satisfies OptionSpecs;

/**
 * Reads a garbage collection's options.
 * @param input Parsed flags, or a JSON object.
 * @param from Where `input` comes from.
 * @returns The configuration.
 * @throws {InvalidArgumentError} naming the option that is wrong.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseGcOptions } from "./options.ts";
 * assert.deepEqual(
 *   parseGcOptions({ "keep-versions": "3", "keep-within": "30d", "max-unused": "10%" }, "flags"),
 *   { keepVersions: 3, keepWithin: 2_592_000_000, maxUnused: 0.1 },
 * );
 * ```
 */
export function parseGcOptions(
  input: Readonly<Record<string, unknown>>,
  from: OptionSource,
): GcConfig {
  return readOptions(GC_OPTIONS, input, from);
}

/**
 * Reads a rebuild's options.
 * @param input Parsed flags, or a JSON object.
 * @param from Where `input` comes from.
 * @returns The configuration (without host storage: the store's own is used).
 * @throws {InvalidArgumentError} naming the option that is wrong.
 */
export function parseRebuildOptions(
  input: Readonly<Record<string, unknown>>,
  from: OptionSource,
): RebuildConfig {
  const { recoveryKit, ...rest } = readOptions(REBUILD_OPTIONS, input, from);
  return {
    ...rest,
    ...(recoveryKit === undefined ? {} : { recoveryKit: new TextEncoder().encode(recoveryKit) }),
  };
}

/**
 * Reads a verification's options: `subset` needs `data`, and `seed` a
 * percentage `subset`.
 * @param input Parsed flags, or a JSON object.
 * @param from Where `input` comes from.
 * @returns The configuration.
 * @throws {InvalidArgumentError} naming the option that is wrong.
 */
export function parseVerifyOptions(
  input: Readonly<Record<string, unknown>>,
  from: OptionSource,
): VerifyConfig {
  const { seed, ...config } = readOptions(VERIFY_OPTIONS, input, from);
  if (config.subset !== undefined && config.data !== true) {
    throw new InvalidArgumentError(
      `${spell(from, "subset", "subset")} restricts the data checks: add ${
        from === "flags" ? "--data" : "data: true"
      }`,
    );
  }
  if (seed !== undefined) {
    if (config.subset === undefined || !("fraction" in config.subset)) {
      throw new InvalidArgumentError(
        `${spell(from, "seed", "seed")} goes with a percentage ${
          spell(from, "subset", "subset")
        } (e.g. 10%)`,
      );
    }
    config.subset = { ...config.subset, seed };
  }
  return config;
}

/**
 * Reads a migration's options.
 * @param input Parsed flags, or a JSON object.
 * @param from Where `input` comes from.
 * @returns The configuration (without host storage: the store's own is used).
 * @throws {InvalidArgumentError} naming the option that is wrong.
 */
export function parseMigrateOptions(
  input: Readonly<Record<string, unknown>>,
  from: OptionSource,
): MigrateConfig {
  return readOptions(MIGRATE_OPTIONS, input, from);
}

/** A move's options as read from untyped input: the destination is still a Location URL. */
export type MoveOptions = Omit<MoveConfig, "destination" | "destinationLocation"> & {
  /** The destination's Location URL (always there from JSON; a positional on the command line). */
  destination?: string;
};

/**
 * Reads a move's options.
 * @param input Parsed flags, or a JSON object.
 * @param from Where `input` comes from.
 * @returns The options; the caller opens the destination.
 * @throws {InvalidArgumentError} naming the option that is wrong.
 */
export function parseMoveOptions(
  input: Readonly<Record<string, unknown>>,
  from: OptionSource,
): MoveOptions {
  return readOptions(MOVE_OPTIONS, input, from);
}
