/**
 * `capsa key`: the key slots of an encrypted store — list, add, remove,
 * passwd. A slot wraps the store's data key under one passphrase; changing
 * slots never rewrites data (docs/FORMAT.md §9.3).
 *
 * @module
 */

import { namePositionals, type ParsedArgs, stringFlag } from "../_args.ts";
import type { Command } from "../_command.ts";
import { EXIT, UsageError } from "../_output.ts";
import { parseKdf } from "../_passphrase.ts";
import { type CommandContext, withStore } from "../_store.ts";
import type { KeySlotInfo } from "../../store/store.ts";

const ACTIONS = ["list", "add", "remove", "passwd"] as const;

function slotLine(s: KeySlotInfo): string {
  const cost = `argon2id m=${s.kdf.memoryKiB} t=${s.kdf.iterations} p=${s.kdf.parallelism}`;
  return `${s.slotId}  ${s.createdAt}  ${cost}${s.label === "" ? "" : `  ${s.label}`}${
    s.current ? "  (this passphrase)" : ""
  }`;
}

/** `capsa key list|add|remove|passwd LOCATION …`. */
export const keyCommand: Command = {
  name: "key",
  summary: "list, add, remove or change the passphrases (key slots) of an encrypted store",
  usage: "capsa key list LOCATION\n" +
    "       capsa key add LOCATION [--label TEXT] [--kdf m=KiB,t=N,p=N]\n" +
    "       capsa key remove LOCATION SLOT_ID\n" +
    "       capsa key passwd LOCATION [--label TEXT] [--kdf m=KiB,t=N,p=N]",
  description:
    `Manages the key slots of an encrypted store. Each slot wraps the store's data key under one
passphrase; any slot's passphrase opens the store. Nothing but the slots changes: no data is
rewritten. The current passphrase comes from --passphrase-file, CAPSA_PASSPHRASE or a prompt; a
new one from --new-passphrase-file, CAPSA_NEW_PASSPHRASE or a prompt (asked twice).
  list    the slots: id, date, Argon2id cost, label; "(this passphrase)" marks the one used
  add     a new slot under a new passphrase
  remove  a slot (the last one is refused: last_key_slot); its passphrase stops working
  passwd  replaces the slot of the current passphrase with one under a new passphrase
A removed passphrase still opens a Recovery Kit made before the removal (the kit holds the slots
of its day): after removing a passphrase that leaked, make a new kit (capsa kit) and destroy the
old ones. Anyone who held the data key itself keeps it: a key change does not re-encrypt data.`,
  flags: { label: { type: "string" }, kdf: { type: "string" } },
  flagsHelp:
    `  --label TEXT          a name for the new slot (at most 64 printable ASCII characters)
  --kdf m=KiB,t=N,p=N   Argon2id cost of the new slot (default m=65536,t=3,p=1)`,
  example: "capsa key add /srv/capsa --label backup-operator --new-passphrase-file ~/new.txt",
  async run(ctx: CommandContext, args: ParsedArgs): Promise<number> {
    const action = args.positionals[0];
    if (action === undefined || !(ACTIONS as readonly string[]).includes(action)) {
      throw new UsageError(
        `${action === undefined ? "missing" : `unknown`} action${
          action === undefined ? "" : ` ${JSON.stringify(action)}`
        }: one of ${ACTIONS.join(", ")} (see: capsa key --help)`,
      );
    }
    const names = action === "remove" ? ["LOCATION", "SLOT_ID"] : ["LOCATION"];
    const { location, slot_id } = namePositionals(
      `key ${action}`,
      args.positionals.slice(1),
      names,
    );
    const label = stringFlag(args.values, "label");
    const kdfText = stringFlag(args.values, "kdf");
    if ((label !== undefined || kdfText !== undefined) && action !== "add" && action !== "passwd") {
      throw new UsageError(`--label and --kdf go with key add or key passwd`);
    }
    const kdf = kdfText === undefined ? undefined : parseKdf(kdfText);
    const options = {
      ...(label === undefined ? {} : { label }),
      ...(kdf === undefined ? {} : { kdf }),
    };
    await withStore(ctx, location!, async (store) => {
      if (!store.encrypted) {
        throw new UsageError(
          `the store at ${store.driver.location} is not encrypted: it has no key slots`,
        );
      }
      if (action === "list") {
        const slots = await store.keySlots();
        ctx.out.result({ slots }, () => slots.map(slotLine));
        return;
      }
      if (action === "remove") {
        await store.removeKeySlot(slot_id!);
        const slots = await store.keySlots();
        ctx.out.result(
          { removed: slot_id, slots },
          () => [`removed key slot ${slot_id}; ${slots.length} left`, ...slots.map(slotLine)],
        );
        return;
      }
      const passphrase = await ctx.passphrases.newOne(false);
      const added = action === "add"
        ? await store.addKeySlot(passphrase, options)
        : await store.changePassphrase(passphrase, options);
      ctx.out.result(
        { [action === "add" ? "added" : "replacedBy"]: added },
        () =>
          action === "add"
            ? `added key slot ${added.slotId}: its passphrase opens the store too`
            : `passphrase changed: key slot ${added.slotId} replaces the old one`,
      );
    });
    return EXIT.ok;
  },
};
