/**
 * `capsa rm`: delete an artifact (a tombstone version).
 *
 * @module
 */

import { CapsaError } from "../../errors.ts";
import { namePositionals, type ParsedArgs } from "../_args.ts";
import type { Command } from "../_command.ts";
import { EXIT } from "../_output.ts";
import { type CommandContext, withStore } from "../_store.ts";

/** `capsa rm`. */
export const rmCommand: Command = {
  name: "rm",
  summary: "delete an artifact (a tombstone version; older versions stay until GC)",
  usage: "capsa rm LOCATION NAMESPACE KEY",
  description:
    `Deletes artifact KEY of NAMESPACE by committing a tombstone version. Nothing is removed in
place: the space is freed by garbage collection, a separate step. Fails (not_found) when there
is no such live artifact.`,
  flags: {},
  flagsHelp: "",
  example: "capsa rm /srv/capsa photos 2024/cat.jpg",
  async run(ctx: CommandContext, args: ParsedArgs): Promise<number> {
    const { location, namespace, key } = namePositionals("rm", args.positionals, [
      "LOCATION",
      "NAMESPACE",
      "KEY",
    ]);
    await withStore(ctx, location!, async (store) => {
      if (!(await store.delete(namespace!, key!))) {
        throw new CapsaError(
          "not_found",
          `no artifact ${JSON.stringify(key)} in namespace ${
            JSON.stringify(namespace)
          }: nothing deleted (see capsa ls)`,
        );
      }
      await store.flush();
    });
    ctx.out.result({ namespace, key, deleted: true }, () => `deleted ${namespace}/${key}`);
    return EXIT.ok;
  },
};
