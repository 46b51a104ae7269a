/**
 * `capsa move` (the MoveStoreAgent). Options are read by
 * `maintenance/options.ts`, as over HTTP; the destination is a positional
 * argument here, a field of the JSON body there.
 *
 * @module
 */

import { createMoveStoreAgent, type MoveConfig } from "../../maintenance/mod.ts";
import { parseMoveOptions } from "../../maintenance/options.ts";
import { runAgentCommand, statsLines } from "../_agent.ts";
import { asUsage, namePositionals, type ParsedArgs } from "../_args.ts";
import type { Command } from "../_command.ts";
import { EXIT } from "../_output.ts";
import { type CommandContext, openLocation } from "../_store.ts";
import { refuseForeignEntries } from "../_target.ts";

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
not part of this store (any file, whatever it is) is refused.`,
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
    try {
      await refuseForeignEntries(dest.driver, "move");
    } catch (e) {
      await dest.close();
      throw e;
    }
    const config: MoveConfig = {
      ...options,
      destination: dest.driver,
      destinationLocation: dest.driver.location,
    };
    try {
      const stats = await runAgentCommand(
        ctx,
        source!,
        (store) => createMoveStoreAgent(store, store.bus, config),
        (agent) => agent.stats(),
        { what: "move", force: config.force },
      );
      ctx.out.result({ stats, destination: config.destinationLocation }, () => [
        `moved to ${config.destinationLocation}: ${stats.objectsCopied} objects copied, ${stats.objectsSkipped} already there`,
        ...statsLines(stats),
      ]);
      return EXIT.ok;
    } finally {
      await dest.close();
    }
  },
};
