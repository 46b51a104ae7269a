/**
 * `capsa kit`: issue the Recovery Kit again from the store's descriptor.
 *
 * @module
 */

import { StoreCorruptedError } from "../../errors.ts";
import { encodeRecoveryKit } from "../../format/kit.ts";
import { namePositionals, type ParsedArgs, stringFlag } from "../_args.ts";
import type { Command } from "../_command.ts";
import { dirname, reserveFile } from "../_files.ts";
import { EXIT, UsageError } from "../_output.ts";
import { absolutePath, type CommandContext, withStore } from "../_store.ts";
import { KIT_NOTICE, refuseExisting } from "./init.ts";

const enc = new TextEncoder();

/** `capsa kit LOCATION --out FILE`. */
export const kitCommand: Command = {
  name: "kit",
  summary: "write the store's Recovery Kit again (from its descriptor)",
  usage: "capsa kit LOCATION --out FILE",
  description:
    `Writes the Recovery Kit of the store on LOCATION to FILE (mode 0600), from its descriptor:
the same kit \`init\` wrote (same store id and checksum). An existing file is never replaced.
Use it when the kit written at init is lost, while a descriptor replica is still readable.`,
  flags: { out: { type: "string", short: "o" } },
  flagsHelp: "  -o, --out FILE  where to write the kit (required)",
  example: "capsa kit /srv/capsa --out ~/capsa-kit.txt",
  async run(ctx: CommandContext, args: ParsedArgs): Promise<number> {
    const { location } = namePositionals("kit", args.positionals, ["LOCATION"]);
    const out = stringFlag(args.values, "out");
    if (out === undefined) throw new UsageError("missing --out FILE (see: capsa kit --help)");
    const path = absolutePath(out);
    await refuseExisting(path);
    const reserved = await reserveFile(dirname(path));
    let committed = false;
    try {
      await withStore(ctx, location!, async (store) => {
        const descriptor = store.descriptor;
        if (!descriptor) {
          throw new StoreCorruptedError([
            ...store.problems,
            "no descriptor replica is readable, so no kit can be made from it; use the kit saved at init",
          ]);
        }
        const kit = encodeRecoveryKit(descriptor, { location: store.driver.location });
        await reserved.commit(path, enc.encode(kit));
        committed = true;
        const checksum = /^checksum: (.*)$/m.exec(kit)?.[1] ?? "";
        ctx.out.result(
          { storeId: descriptor.storeId, kit: path, checksum, notice: KIT_NOTICE },
          () => [
            `Recovery Kit of store ${descriptor.storeId} written to ${path} (mode 0600).`,
            KIT_NOTICE,
          ],
        );
      }, { allowCorrupted: true, readOnly: true });
      return EXIT.ok;
    } finally {
      if (!committed) await reserved.discard();
    }
  },
};
