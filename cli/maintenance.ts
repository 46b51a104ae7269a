/**
 * The maintenance commands: `capsa rebuild` (the RebuildIndexAgent), with a
 * progress bar driven by the agent's `maintenance.progress` events, and
 * Ctrl-C wired to the agent's AbortSignal (lease released, old index kept).
 *
 * @module
 */

import { CapsaError } from "../core/errors.ts";
import type { Store } from "../core/store.ts";
import { MAX_RECOVERY_KIT_BYTES } from "../kit/kit.ts";
import {
  createRebuildIndexAgent,
  type RebuildConfig,
  type RebuildSource,
  type RebuildStats,
} from "../maintenance/mod.ts";
import {
  boolFlag,
  intFlag,
  namePositionals,
  type ParsedArgs,
  parseDuration,
  stringFlag,
} from "./_args.ts";
import type { Command } from "./_command.ts";
import { EXIT, formatDuration, type Output, table, UsageError } from "./_output.ts";
import { maintenanceProgress } from "./_progress.ts";
import { absolutePath, type CommandContext, withStore } from "./_store.ts";

const SOURCES: Record<string, RebuildSource> = {
  auto: "Auto",
  snapshot: "Snapshot",
  "full-scan": "FullScan",
};

/** What a rebuild reports. */
export interface RebuildReport {
  /** The agent's final statistics (the seed's `RebuildStats`). */
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
    const sourceText = stringFlag(args.values, "source") ?? "auto";
    const source = SOURCES[sourceText];
    if (source === undefined) {
      throw new UsageError(
        `--source must be auto, snapshot or full-scan, got ${JSON.stringify(sourceText)}`,
      );
    }
    const config: RebuildConfig = { source, force: boolFlag(args.values, "force") };
    const batchSize = intFlag(args.values, "batch-size", 1_000_000);
    if (batchSize !== undefined) config.batchSize = batchSize;
    const parallelism = intFlag(args.values, "parallelism", 256);
    if (parallelism !== undefined) config.parallelism = parallelism;
    const ttl = stringFlag(args.values, "lease-ttl");
    if (ttl !== undefined) {
      config.leaseTTL = parseDuration("lease-ttl", ttl);
      if (config.leaseTTL < 1000) throw new UsageError("--lease-ttl must be at least 1s");
    }
    const kit = stringFlag(args.values, "kit");
    if (kit !== undefined) config.recoveryKit = await readKitFile(absolutePath(kit));

    const stop = new AbortController();
    let interrupts = 0;
    const onSigint = () => {
      if (++interrupts > 1) Deno.exit(130); // a second Ctrl-C: stop now, whatever state
      ctx.out.note("stopping the rebuild (Ctrl-C again to quit at once)…");
      stop.abort(
        new CapsaError(
          "aborted",
          "rebuild stopped by Ctrl-C: the lease is released and the previous index is kept; " +
            "run the rebuild again to finish it",
        ),
      );
    };
    Deno.addSignalListener("SIGINT", onSigint);
    let report: RebuildReport;
    try {
      report = await withStore(ctx, location!, async (store) => {
        if (config.force) {
          ctx.out.warn(
            "force",
            "--force breaks a live maintenance lease: be sure its holder is gone",
          );
        }
        try {
          return await runRebuild(store, config, { out: ctx.out, signal: stop.signal });
        } catch (e) {
          if (stop.signal.aborted) throw stop.signal.reason;
          throw e;
        }
      }, { allowCorrupted: true });
    } finally {
      Deno.removeSignalListener("SIGINT", onSigint);
    }
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
