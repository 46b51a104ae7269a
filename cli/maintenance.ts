/**
 * The maintenance commands: `capsa rebuild` (the RebuildIndexAgent), with a
 * progress bar driven by the agent's `maintenance.progress` events, and
 * Ctrl-C wired to the agent's AbortSignal (lease released, old index kept).
 *
 * @module
 */

import { CapsaError } from "../errors.ts";
import type { Store } from "../store/store.ts";
import { MAX_RECOVERY_KIT_BYTES } from "../format/kit.ts";
import {
  createMigrateIndexAgent,
  createMoveStoreAgent,
  createRebuildIndexAgent,
  createVerificationAgent,
  type MaintenanceAgent,
  type MoveConfig,
  type RebuildConfig,
  type RebuildStats,
} from "../maintenance/mod.ts";
import {
  parseMigrateOptions,
  parseMoveOptions,
  parseRebuildOptions,
  parseVerifyOptions,
} from "../maintenance/options.ts";
import { asUsage, namePositionals, type ParsedArgs, stringFlag } from "./_args.ts";
import type { Command } from "./_command.ts";
import { EXIT, formatDuration, type Output, table } from "./_output.ts";
import { maintenanceProgress } from "./_progress.ts";
import { absolutePath, type CommandContext, openLocation, withStore } from "./_store.ts";

/** What a rebuild reports. */
export interface RebuildReport {
  /** The agent's final statistics. */
  stats: RebuildStats;
  /** Objects that could not be parsed, each with its key (the rebuild went on without them). */
  problems: Array<{ key: string; reason: string }>;
}

/**
 * Reads a Recovery Kit file, bounded: a file larger than any kit is refused
 * before it is read whole.
 * @param path The file.
 * @returns Its bytes.
 */
export async function readKitFile(path: string): Promise<Uint8Array> {
  const file = await Deno.open(path, { read: true });
  try {
    const buf = new Uint8Array(MAX_RECOVERY_KIT_BYTES + 1);
    let n = 0;
    for (;;) {
      const r = await file.read(buf.subarray(n));
      if (r === null) break;
      n += r;
      if (n > MAX_RECOVERY_KIT_BYTES) {
        throw new CapsaError(
          "recovery_kit_invalid",
          `${path} is larger than any Recovery Kit (${MAX_RECOVERY_KIT_BYTES} bytes): is it the right file?`,
        );
      }
    }
    return buf.slice(0, n);
  } finally {
    file.close();
  }
}

/** Options of {@linkcode runRebuild}. */
export interface RunRebuildOptions {
  /** Where notes and warnings go, and whether progress is quiet. */
  out: Output;
  /** Stops the agent (lease released, old index kept). */
  signal?: AbortSignal;
}

/**
 * Runs a RebuildIndexAgent on an open store, with a progress bar on a
 * terminal and the agent's warnings on stderr.
 * @param store The store (it may be Corrupted).
 * @param config The agent's configuration.
 * @param options Output and cancellation.
 * @returns The final stats and problems.
 */
export async function runRebuild(
  store: Store,
  config: RebuildConfig,
  options: RunRebuildOptions,
): Promise<RebuildReport> {
  const agent = createRebuildIndexAgent(store, store.bus, config);
  agent.validate();
  const stopBar = maintenanceProgress(store.bus, options.out.quiet);
  try {
    await agent.run(options.signal === undefined ? {} : { signal: options.signal });
  } finally {
    stopBar();
  }
  return { stats: agent.stats(), problems: agent.problems() };
}

/**
 * The human form of a rebuild's stats.
 * @param r The report.
 * @returns The lines.
 */
export function rebuildLines(r: RebuildReport): string[] {
  const s = r.stats;
  const lines = [
    `rebuild complete: ${s.manifestsIndexed} manifests indexed from ${s.packsIndexed} packs in ${
      formatDuration(s.duration)
    }`,
    ...table([
      ["source", s.source],
      ["snapshotUsed", s.snapshotUsed === "" ? "-" : s.snapshotUsed],
      ["manifestsScanned", String(s.manifestsScanned)],
      ["manifestsIndexed", String(s.manifestsIndexed)],
      ["manifestsSkipped", String(s.manifestsSkipped)],
      ["blobsRegistered", String(s.blobsRegistered)],
      ["packsIndexed", String(s.packsIndexed)],
      ["pointerRecovered", String(s.pointerRecovered)],
      ["descriptorRewrote", String(s.descriptorRewrote)],
      ["duration", `${s.duration} ms`],
    ], 2),
  ];
  if (r.problems.length > 0) {
    lines.push(`problems: ${r.problems.length} object(s) could not be parsed and were skipped:`);
    for (const p of r.problems) lines.push(`  - ${p.key}: ${p.reason}`);
  }
  return lines;
}

/** `capsa rebuild`. */
export const rebuildCommand: Command = {
  name: "rebuild",
  summary: "rebuild the index from the Location (with --kit: rewrite a lost descriptor)",
  usage:
    "capsa rebuild LOCATION [--source auto|snapshot|full-scan] [--kit FILE] [--batch-size N]\n" +
    "                      [--parallelism N] [--lease-ttl 30m] [--force]",
  description:
    `Rebuilds the store's index from the pack volumes on the Location (RebuildIndexAgent), holding
the maintenance lease; the store is offline for other processes meanwhile. auto starts from the
newest valid index snapshot and reads only the packs it lacks (else a full scan); snapshot
requires one; full-scan ignores them. With --kit, every lost or damaged descriptor replica is
rewritten from the Recovery Kit first. Works on a Corrupted store. The new index replaces the
old one only when complete: Ctrl-C stops cleanly (lease released, old index kept, exit 1).`,
  flags: {
    source: { type: "string" },
    kit: { type: "string" },
    "batch-size": { type: "string" },
    parallelism: { type: "string" },
    "lease-ttl": { type: "string" },
    force: { type: "boolean" },
  },
  flagsHelp: `  --source S       auto (default), snapshot or full-scan
  --kit FILE       the store's Recovery Kit (needed when every descriptor replica is lost)
  --batch-size N   manifests per index transaction (default 1000)
  --parallelism N  pack tables of contents read at once (default 8)
  --lease-ttl D    lease time-to-live, e.g. 30m, 2h, 90s (default 30m; renewed while running)
  --force          break a live lease held by another holder (only if that holder is gone)`,
  example: "capsa rebuild /srv/capsa --kit ~/capsa-kit.txt",
  async run(ctx: CommandContext, args: ParsedArgs): Promise<number> {
    const { location } = namePositionals("rebuild", args.positionals, ["LOCATION"]);
    const config = asUsage(() => parseRebuildOptions(args.values, "flags"));
    const kit = stringFlag(args.values, "kit");
    if (kit !== undefined) config.recoveryKit = await readKitFile(absolutePath(kit));
    const report = await withInterrupt(
      ctx,
      "rebuild",
      "rebuild stopped by Ctrl-C: the lease is released and the previous index is kept; " +
        "run the rebuild again to finish it",
      (signal) =>
        withStore(ctx, location!, (store) => {
          if (config.force) {
            ctx.out.warn(
              "force",
              "--force breaks a live maintenance lease: be sure its holder is gone",
            );
          }
          return runRebuild(store, config, { out: ctx.out, signal });
        }, { allowCorrupted: true }),
    );
    ctx.out.result(report, () => rebuildLines(report));
    if (report.problems.length > 0) {
      ctx.out.warn(
        "rebuild_problems",
        `${report.problems.length} object(s) could not be parsed and were skipped (listed above or in the JSON)`,
      );
    }
    return EXIT.ok;
  },
};

/**
 * Validates and runs an agent with a progress bar on a terminal.
 * @returns The agent, for its stats and problems.
 */
async function runAgent<A extends MaintenanceAgent>(
  agent: A,
  store: Store,
  out: Output,
  signal: AbortSignal,
): Promise<A> {
  agent.validate();
  const stopBar = maintenanceProgress(store.bus, out.quiet);
  try {
    await agent.run({ signal });
  } finally {
    stopBar();
  }
  return agent;
}

/**
 * Runs `fn` with Ctrl-C wired to the signal it receives: the first Ctrl-C
 * aborts it with `stopped` (the agent releases the lease), a second quits at once.
 */
async function withInterrupt<T>(
  ctx: CommandContext,
  what: string,
  stopped: string,
  fn: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const stop = new AbortController();
  let interrupts = 0;
  const onSigint = () => {
    if (++interrupts > 1) Deno.exit(130); // a second Ctrl-C: stop now, whatever state
    ctx.out.note(`stopping the ${what} (Ctrl-C again to quit at once)…`);
    stop.abort(new CapsaError("aborted", stopped));
  };
  Deno.addSignalListener("SIGINT", onSigint);
  try {
    return await fn(stop.signal);
  } catch (e) {
    if (stop.signal.aborted) throw stop.signal.reason;
    throw e;
  } finally {
    Deno.removeSignalListener("SIGINT", onSigint);
  }
}

/** The message of an agent stopped by Ctrl-C. */
const stoppedByCtrlC = (what: string) =>
  `${what} stopped by Ctrl-C: the lease is released; run it again`;

/** `capsa verify`. */
export const verifyCommand: Command = {
  name: "verify",
  summary: "check that the store is whole (--data: re-read and re-hash blobs); exit 3 on problems",
  usage:
    "capsa verify LOCATION [--data] [--subset n/m | --subset P% [--seed N]] [--parallelism N]\n" +
    "                     [--lease-ttl 30m] [--force]",
  description:
    `Checks the store (VerificationAgent) holding the maintenance lease; other processes keep
reading but cannot write meanwhile. Structure: every pack exists with its recorded size, its
table of contents parses and agrees with the index, every manifest's blobs exist; packs and
loose blobs the index does not know are listed (never deleted). With --data, blobs are re-read
and re-hashed: all of them, a deterministic slice (--subset n/m: m runs with n = 1..m cover
everything exactly once) or a sample (--subset 10%). Each problem is printed with its kind and
object key; the exit code is 3 when any is found.`,
  flags: {
    data: { type: "boolean" },
    subset: { type: "string" },
    seed: { type: "string" },
    parallelism: { type: "string" },
    "lease-ttl": { type: "string" },
    force: { type: "boolean" },
  },
  flagsHelp: `  --data           re-read and re-hash blobs (default: structure only)
  --subset S       with --data: the slice n/m (by pack), or a sample like 10%
  --seed N         the sample's seed (default: a new sample each run)
  --parallelism N  objects checked at once (default 8)
  --lease-ttl D    lease time-to-live, e.g. 30m (default 30m; renewed while running)
  --force          break a live lease held by another holder (only if that holder is gone)`,
  example: "capsa verify /srv/capsa --data --subset 1/7",
  async run(ctx: CommandContext, args: ParsedArgs): Promise<number> {
    const { location } = namePositionals("verify", args.positionals, ["LOCATION"]);
    const config = asUsage(() => parseVerifyOptions(args.values, "flags"));
    const report = await withInterrupt(
      ctx,
      "verification",
      stoppedByCtrlC("verification"),
      (signal) =>
        withStore(ctx, location!, async (store) => {
          const agent = await runAgent(
            createVerificationAgent(store, store.bus, config),
            store,
            ctx.out,
            signal,
          );
          return { stats: agent.stats(), problems: agent.problems() };
        }),
    );
    ctx.out.result(report, () => [
      report.problems.length === 0
        ? `verify: no problem found (${report.stats.packsChecked} packs, ${report.stats.blobsChecked} blobs checked)`
        : `verify: ${report.problems.length} problem(s) found:`,
      ...report.problems.map((p) => `  - ${p.kind}: ${p.key}: ${p.detail}`),
      ...table(Object.entries(report.stats).map(([k, v]) => [k, String(v)] as const), 2),
    ]);
    return report.problems.length === 0 ? EXIT.ok : EXIT.problems;
  },
};

/** `capsa move`. */
export const moveCommand: Command = {
  name: "move",
  summary: "move the whole store to another Location (resumable, verified)",
  usage:
    "capsa move SOURCE DESTINATION [--parallelism N] [--delete-source] [--lease-ttl 30m] [--force]",
  description:
    `Copies every object of the store at SOURCE to DESTINATION (MoveStoreAgent) in parallel,
holding the maintenance lease (SOURCE stays readable, writes are refused). Each copy is read
back and checked by digest; a rerun after an interruption copies only what is missing or
differs. The destination's descriptor is written last (the commit point), then SOURCE is marked
as moved: opening it afterwards names DESTINATION. --delete-source removes the source's data
after everything was verified (the moved marker stays). A destination holding anything that is
not part of this store is refused.`,
  flags: {
    parallelism: { type: "string" },
    "delete-source": { type: "boolean" },
    "lease-ttl": { type: "string" },
    force: { type: "boolean" },
  },
  flagsHelp: `  --parallelism N  objects copied at once (default 8)
  --delete-source  delete the source's data once every copy is verified
  --lease-ttl D    lease time-to-live, e.g. 30m (default 30m; renewed while running)
  --force          break a live lease held by another holder (only if that holder is gone)`,
  example: "capsa move /srv/capsa 's3://bucket/capsa?region=eu-west-1'",
  async run(ctx: CommandContext, args: ParsedArgs): Promise<number> {
    const { source, destination } = namePositionals("move", args.positionals, [
      "SOURCE",
      "DESTINATION",
    ]);
    const options = asUsage(() => parseMoveOptions(args.values, "flags"));
    const dest = await openLocation(ctx, destination!, { create: true });
    const config: MoveConfig = {
      ...options,
      destination: dest.driver,
      destinationLocation: dest.driver.location,
    };
    try {
      const stats = await withInterrupt(
        ctx,
        "move",
        stoppedByCtrlC("move"),
        (signal) =>
          withStore(ctx, source!, async (store) => {
            const agent = await runAgent(
              createMoveStoreAgent(store, store.bus, config),
              store,
              ctx.out,
              signal,
            );
            return agent.stats();
          }),
      );
      ctx.out.result({ stats, destination: config.destinationLocation }, () => [
        `moved to ${config.destinationLocation}: ${stats.objectsCopied} objects copied, ${stats.objectsSkipped} already there`,
        ...table(Object.entries(stats).map(([k, v]) => [k, String(v)] as const), 2),
      ]);
      return EXIT.ok;
    } finally {
      await dest.close();
    }
  },
};

/** `capsa migrate`. */
export const migrateCommand: Command = {
  name: "migrate",
  summary: "bring the index to the current schema; optionally change where manifests live",
  usage:
    "capsa migrate LOCATION [--manifest-storage remote|local|replicated] [--lease-ttl 30m] [--force]",
  description:
    `Migrates the store's index (MigrateIndexAgent) to this capsa's schema, holding the maintenance
lease (the store is offline for other processes meanwhile): a restore-point snapshot is written
first, the migrated index is checked against the old one before it replaces it, and older index
snapshots and the host cache are rewritten at the new schema. With --manifest-storage, manifests
are also copied to where the new mode keeps them (the Location's packs and/or this host's
manifest log, in --host-dir) before a new config version points at the mode. An interrupted
migration leaves the store answering as before; run it again.`,
  flags: {
    "manifest-storage": { type: "string" },
    "lease-ttl": { type: "string" },
    force: { type: "boolean" },
  },
  flagsHelp:
    `  --manifest-storage M  remote (pack TOCs), local (this host only) or replicated (both)
  --lease-ttl D         lease time-to-live, e.g. 30m (default 30m; renewed while running)
  --force               break a live lease held by another holder (only if that holder is gone)`,
  example: "capsa migrate /srv/capsa --manifest-storage replicated",
  async run(ctx: CommandContext, args: ParsedArgs): Promise<number> {
    const { location } = namePositionals("migrate", args.positionals, ["LOCATION"]);
    const config = asUsage(() => parseMigrateOptions(args.values, "flags"));
    const stats = await withInterrupt(
      ctx,
      "migration",
      stoppedByCtrlC("migration"),
      (signal) =>
        withStore(ctx, location!, async (store) => {
          const agent = await runAgent(
            createMigrateIndexAgent(store, store.bus, config),
            store,
            ctx.out,
            signal,
          );
          return agent.stats();
        }),
    );
    ctx.out.result({ stats }, () => [
      `migrate complete: index schema ${stats.fromSchema} → ${stats.toSchema}, config version ${stats.configSeq}`,
      ...table(Object.entries(stats).map(([k, v]) => [k, String(v)] as const), 2),
    ]);
    return EXIT.ok;
  },
};
