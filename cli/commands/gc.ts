/**
 * `capsa gc` (the GarbageCollectAgent): retention, reclaimed space and
 * merged packs while other processes keep reading and writing. Options are
 * read by `maintenance/options.ts`, as over HTTP.
 *
 * @module
 */

import { createGarbageCollectAgent, GC_DEFAULTS } from "../../maintenance/gc.ts";
import { parseGcOptions } from "../../maintenance/options.ts";
import { runAgentCommand, statsLines } from "../_agent.ts";
import { asUsage, namePositionals, type ParsedArgs } from "../_args.ts";
import type { Command } from "../_command.ts";
import { EXIT, formatBytes } from "../_output.ts";
import type { CommandContext } from "../_store.ts";

/** `capsa gc`. */
export const gcCommand: Command = {
  name: "gc",
  summary: "drop old versions by a retention policy, reclaim unused space, merge small packs",
  usage: "capsa gc LOCATION [--keep-versions N] [--keep-within 30d] [--drop-deleted-after 7d]\n" +
    "                 [--save-policy] [--dry-run] [--max-unused 5%] [--grace 15m] [--parallelism N]\n" +
    "                 [--lease-ttl 30m] [--force]",
  description:
    `Collects garbage (GarbageCollectAgent) holding the maintenance lease, while other processes keep
reading and writing. With no retention flag every version is kept and only what nothing names is
reclaimed (space of deleted artifacts' history is kept until --drop-deleted-after says otherwise).
--keep-versions N keeps the newest N versions of each artifact, --keep-within D every version
younger than D; given both, a version either keeps is kept. The current version of a live artifact
is never dropped. --save-policy stores the given retention flags (over the store's) in the config
history, so that later runs apply them without being told; \`capsa status\` shows the policy. Packs more than --max-unused empty are rewritten, small packs merged, and what
nothing live names is deleted once the grace period has passed (--grace, default 15m: writers that
started before gc can still finish; it must stay well above the longest commit a writer may make).
--dry-run prints the plan and the bytes it would free, and changes nothing. Durations: 90s, 30m,
2h, 30d, 0s. Interrupted (Ctrl-C, a crash), run it again: the next run finishes the work.`,
  flags: {
    "keep-versions": { type: "string" },
    "keep-within": { type: "string" },
    "drop-deleted-after": { type: "string" },
    "dry-run": { type: "boolean" },
    "save-policy": { type: "boolean" },
    "max-unused": { type: "string" },
    grace: { type: "string" },
    parallelism: { type: "string" },
    "lease-ttl": { type: "string" },
    force: { type: "boolean" },
  },
  flagsHelp: `  --keep-versions N        keep the newest N versions of each artifact (default: all)
  --keep-within D          keep every version younger than D, e.g. 30d
  --drop-deleted-after D   an artifact deleted more than D ago loses its whole history
  --save-policy            keep these retention flags as the store's policy (a new config version)
  --dry-run                print the plan and what it would free; change nothing
  --max-unused P           rewrite packs more than P unused (default 5%)
  --grace D                how long doomed objects stay before deletion (default 15m)
  --parallelism N          objects read or deleted at once (default 8)
  --lease-ttl D            lease time-to-live (default 30m; renewed while running)
  --force                  break a live lease held by another holder (only if it is gone)`,
  example: "capsa gc /srv/capsa --keep-versions 3 --drop-deleted-after 30d",
  async run(ctx: CommandContext, args: ParsedArgs): Promise<number> {
    const { location } = namePositionals("gc", args.positionals, ["LOCATION"]);
    const config = asUsage(() => parseGcOptions(args.values, "flags"));
    const grace = config.grace ?? GC_DEFAULTS.grace;
    if (!config.dryRun && grace > 0) {
      // Otherwise a run over a small store looks like a hang: it waits before deleting.
      ctx.out.note(
        `after rewriting, gc waits the grace period (${
          Math.round(grace / 1000)
        } s) before it deletes anything, so that writers already under way finish first`,
      );
    }
    const report = await runAgentCommand(
      ctx,
      location!,
      (store) => createGarbageCollectAgent(store, store.bus, config),
      (agent) => ({ stats: agent.stats(), plan: agent.plan(), problems: agent.problems() }),
      { what: "garbage collection", force: config.force },
    );
    const { stats, plan, problems } = report;
    ctx.out.result(report, () => [
      config.dryRun
        ? `gc (dry run): would rewrite ${plan?.rewrite.length ?? 0} packs, delete ${
          plan?.delete.length ?? 0
        } packs and ${plan?.looseBlobs.length ?? 0} loose blobs, drop ${
          plan?.manifestsDropped ?? 0
        } versions, and free about ${formatBytes(plan?.bytesFreed ?? 0)}; nothing was changed`
        : `gc: freed ${formatBytes(stats.bytesFreed)} (${formatBytes(stats.bytesBefore)} → ${
          formatBytes(stats.bytesAfter)
        }); ${stats.manifestsDropped} versions dropped, ${stats.packsWritten} packs written, ${stats.packsDeleted} deleted`,
      ...problems.map((p) => `  - left alone: ${p.key}: ${p.reason}`),
      ...statsLines(stats),
    ]);
    return problems.length === 0 ? EXIT.ok : EXIT.problems;
  },
};
