/**
 * `capsa kit`: issue the Recovery Kit again from the store's descriptor.
 *
 * @module
 */

import type { Descriptor } from "../../format/descriptor.ts";
import type { Store } from "../../store/store.ts";
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
  usage: "capsa kit LOCATION --out FILE|-",
  description:
    `Writes the Recovery Kit of the store on LOCATION to FILE (mode 0600), from its descriptor:
the same kit \`init\` wrote (same store id and checksum). An existing file is never replaced.
With --out -, the kit is written to stdout instead (the confirmation goes to stderr).
Use it when the kit written at init is lost, while a descriptor replica is still readable.`,
  flags: { out: { type: "string", short: "o" } },
  flagsHelp: "  -o, --out FILE  where to write the kit (required; - for stdout)",
  example: "capsa kit /srv/capsa --out ~/capsa-kit.txt",
  async run(ctx: CommandContext, args: ParsedArgs): Promise<number> {
    const { location } = namePositionals("kit", args.positionals, ["LOCATION"]);
    const out = stringFlag(args.values, "out");
    if (out === undefined) throw new UsageError("missing --out FILE (see: capsa kit --help)");
    if (out === "-") return await kitToStdout(ctx, location!);
    const path = absolutePath(out);
    await refuseExisting(path);
    const reserved = await reserveFile(dirname(path));
    let committed = false;
    try {
      await withStore(ctx, location!, async (store) => {
        const { descriptor, kit } = await kitOf(store);
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

/**
 * The kit of an open store, from its descriptor.
 * @param store The store.
 * @returns The descriptor and the kit text.
 * @throws {StoreCorruptedError} when no descriptor replica is readable.
 */
async function kitOf(store: Store): Promise<{ descriptor: Descriptor; kit: string }> {
  const kit = await store.recoveryKit();
  return { descriptor: store.descriptor!, kit };
}

/**
 * `capsa kit LOCATION --out -`: the kit itself on stdout, the confirmation
 * on stderr (with `--json`, the kit's text is a field of the one document).
 * @param ctx The command context.
 * @param location The store.
 * @returns The exit code.
 */
async function kitToStdout(ctx: CommandContext, location: string): Promise<number> {
  await withStore(ctx, location, async (store) => {
    const { descriptor, kit } = await kitOf(store);
    const checksum = /^checksum: (.*)$/m.exec(kit)?.[1] ?? "";
    if (ctx.out.json) {
      ctx.out.result(
        { storeId: descriptor.storeId, kit: "-", checksum, text: kit, notice: KIT_NOTICE },
        () => "",
      );
    } else {
      ctx.out.markEmitted();
      ctx.out.stdout(kit.endsWith("\n") ? kit : kit + "\n");
      ctx.out.note(`Recovery Kit of store ${descriptor.storeId} written to stdout. ${KIT_NOTICE}`);
    }
    return Promise.resolve();
  }, { allowCorrupted: true, readOnly: true });
  return EXIT.ok;
}
