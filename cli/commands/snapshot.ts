/**
 * `capsa snapshot`: write an index snapshot to the Location now.
 *
 * @module
 */

import { namePositionals, type ParsedArgs } from "../_args.ts";
import type { Command } from "../_command.ts";
import { EXIT } from "../_output.ts";
import { type CommandContext, withStore } from "../_store.ts";

/** `capsa snapshot`. */
export const snapshotCommand: Command = {
  name: "snapshot",
  summary: "write an index snapshot to the Location now",
  usage: "capsa snapshot LOCATION",
  description:
    `Writes a snapshot of the index to the Location (after catching up on every pack), and keeps
the newest few. Other hosts open from it, and \`rebuild --source auto\` reads only what was
written after it. Snapshots are also written periodically while writing.`,
  flags: {},
  flagsHelp: "",
  example: "capsa snapshot /srv/capsa",
  async run(ctx: CommandContext, args: ParsedArgs): Promise<number> {
    const { location } = namePositionals("snapshot", args.positionals, ["LOCATION"]);
    const r = await withStore(ctx, location!, async (store) => {
      const key = await store.snapshotIndex();
      return { key, highWaterMark: store.index.highWaterMark(), counts: store.index.counts() };
    });
    ctx.out.result(
      r,
      () =>
        `snapshot ${r.key} written (${r.counts.artifacts} artifacts, high-water mark ${
          r.highWaterMark === "" ? "none" : r.highWaterMark
        })`,
    );
    return EXIT.ok;
  },
};
