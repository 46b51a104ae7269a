/**
 * `capsa rebuild` (the RebuildIndexAgent), and {@linkcode runRebuild}, which
 * the demo uses too. Options are read by `maintenance/options.ts`, as over
 * HTTP.
 *
 * @module
 */

import { parseRecoveryKit } from "../../format/kit.ts";
import {
  createRebuildIndexAgent,
  type RebuildConfig,
  type RebuildIndexAgent,
  type RebuildStats,
} from "../../maintenance/mod.ts";
import { parseRebuildOptions } from "../../maintenance/options.ts";
import type { Store } from "../../store/store.ts";
import { runAgent, runAgentCommand } from "../_agent.ts";
import { asUsage, namePositionals, type ParsedArgs, stringFlag } from "../_args.ts";
import type { Command } from "../_command.ts";
import { readKitFile } from "../_files.ts";
import { EXIT, formatDuration, type Output, table } from "../_output.ts";
import { absolutePath, type CommandContext } from "../_store.ts";

/** What a rebuild reports. */
export interface RebuildReport {
  /** The agent's final statistics. */
  stats: RebuildStats;
  /** Objects that could not be parsed, each with its key (the rebuild went on without them). */
  problems: Array<{ key: string; reason: string }>;
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
  return reportOf(await runAgent(agent, store, options.out, options.signal));
}

function reportOf(agent: RebuildIndexAgent): RebuildReport {
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
      ["snapshotWritten", String(s.snapshotWritten)],
      ["duration", formatDuration(s.duration)],
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
    if (kit !== undefined) {
      config.recoveryKit = await readKitFile(absolutePath(kit));
      // An encrypted store's kit opens nothing alone: its passphrase is needed (asked now, so
      // that the prompt comes before the lease is taken).
      let encrypted = false;
      try {
        encrypted = parseRecoveryKit(config.recoveryKit).encryption !== null;
      } catch {
        // A malformed kit is refused, with its reason, when the agent validates it.
      }
      if (encrypted) await ctx.passphrases.get();
    }
    const report = await runAgentCommand(
      ctx,
      location!,
      (store) => createRebuildIndexAgent(store, store.bus, config),
      reportOf,
      {
        what: "rebuild",
        force: config.force,
        allowCorrupted: true,
        // The agent loads the newest snapshot or scans every pack itself: an open that loaded
        // and caught up an index first did that work twice (docs/DESIGN.md §5.1).
        deferIndex: true,
        stopped:
          "rebuild stopped by Ctrl-C: the lease is released and the previous index is kept; " +
          "run the rebuild again to finish it",
      },
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
