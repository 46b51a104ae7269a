/**
 * `capsa verify` (the VerificationAgent): exit code 3 when a problem is
 * found. Options are read by `maintenance/options.ts`, as over HTTP.
 *
 * @module
 */

import { createVerificationAgent } from "../../maintenance/mod.ts";
import { parseVerifyOptions } from "../../maintenance/options.ts";
import { runAgentCommand, statsLines } from "../_agent.ts";
import { asUsage, namePositionals, type ParsedArgs } from "../_args.ts";
import type { Command } from "../_command.ts";
import { EXIT } from "../_output.ts";
import type { CommandContext } from "../_store.ts";

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
    const report = await runAgentCommand(
      ctx,
      location!,
      (store) => createVerificationAgent(store, store.bus, config),
      (agent) => ({ stats: agent.stats(), problems: agent.problems() }),
      { what: "verification", force: config.force },
    );
    ctx.out.result(report, () => [
      report.problems.length === 0
        ? `verify: no problem found (${report.stats.packsChecked} packs, ${report.stats.blobsChecked} blobs checked)`
        : `verify: ${report.problems.length} problem(s) found:`,
      ...report.problems.map((p) => `  - ${p.kind}: ${p.key}: ${p.detail}`),
      ...statsLines(report.stats),
    ]);
    return report.problems.length === 0 ? EXIT.ok : EXIT.problems;
  },
};
