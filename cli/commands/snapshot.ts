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
  summary: "write an index snapshot (a copy of the index, not of your data) to the Location now",
  usage: "capsa snapshot LOCATION",
  description:
    `Writes a snapshot of the store's INDEX to the Location (after catching up on every pack), and
keeps the newest few. It is not a backup snapshot in the restic or borg sense: it records no
files and restores nothing; every version of every artifact is already kept by the store itself
(see stat --versions). An index snapshot is a cache that makes opening fast: other hosts open
from it, and \`rebuild --source auto\` reads only what was written after it. Snapshots are also
written periodically while writing, so running this by hand is rarely needed.`,
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
