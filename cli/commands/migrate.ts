/**
 * `capsa migrate` (the MigrateIndexAgent). Options are read by
 * `maintenance/options.ts`, as over HTTP.
 *
 * @module
 */

import { createMigrateIndexAgent } from "../../maintenance/mod.ts";
import { parseMigrateOptions } from "../../maintenance/options.ts";
import { runAgentCommand, statsLines } from "../_agent.ts";
import { asUsage, namePositionals, type ParsedArgs } from "../_args.ts";
import type { Command } from "../_command.ts";
import { EXIT } from "../_output.ts";
import type { CommandContext } from "../_store.ts";

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
    const stats = await runAgentCommand(
      ctx,
      location!,
      (store) => createMigrateIndexAgent(store, store.bus, config),
      (agent) => agent.stats(),
      { what: "migration", force: config.force },
    );
    ctx.out.result({ stats }, () => [
      `migrate complete: index schema ${stats.fromSchema} → ${stats.toSchema}, config version ${stats.configSeq}`,
      ...statsLines(stats),
    ]);
    return EXIT.ok;
  },
};
