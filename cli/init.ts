/**
 * `capsa init` (create a store, hand out its Recovery Kit) and `capsa kit`
 * (issue the Recovery Kit again from the store's descriptor).
 *
 * @module
 */

import { CapsaError, NotFoundError, StoreCorruptedError } from "../errors.ts";
import { initStore } from "../store/store.ts";
import { encodeRecoveryKit } from "../format/kit.ts";
import { namePositionals, type ParsedArgs, stringFlag } from "./_args.ts";
import { absolutePath, type CommandContext, openLocation, withStore } from "./_store.ts";
import { dirname, pathExists, reserveFile } from "./_files.ts";
import { EXIT, UsageError } from "./_output.ts";
import type { Command } from "./_command.ts";
import { HOST_CACHE_KEY } from "../layout.ts";

const enc = new TextEncoder();

/** What the operator is told about the kit, in text and JSON. */
export const KIT_NOTICE: string =
  "Keep the Recovery Kit offline, apart from this machine and from the store (print it, or " +
  "put it in a password manager): if every copy of the store's descriptor is lost, " +
  "`capsa rebuild LOCATION --kit FILE` needs it. It holds no secret data.";

async function refuseExisting(path: string): Promise<void> {
  if (await pathExists(path)) {
    throw new CapsaError(
      "file_exists",
      `${path} already exists: a Recovery Kit never replaces a file; choose another --kit/--out path`,
    );
  }
}

/** `capsa init LOCATION [--kit FILE] [--hash blake3|sha256]`. */
export const initCommand: Command = {
  name: "init",
  summary: "create a store and write its Recovery Kit",
  usage: "capsa init LOCATION [--kit FILE] [--hash blake3|sha256]",
  description:
    `Creates a store on LOCATION: a directory (created if missing; it must be empty), file://…,
s3://bucket/prefix?endpoint=…&region=…, or memory:. Writes the store's Recovery Kit to FILE
(mode 0600; default ./capsa-recovery-kit-<store id>.txt); an existing file is never replaced.
Keep the kit offline: \`capsa rebuild LOCATION --kit FILE\` rewrites a lost descriptor from it.`,
  flags: {
    kit: { type: "string" },
    hash: { type: "string" },
  },
  flagsHelp:
    `  --kit FILE            where to write the Recovery Kit (default: ./capsa-recovery-kit-<id>.txt)
  --hash blake3|sha256  the hash of blob ids (default blake3)`,
  example: "capsa init /srv/capsa --kit ~/capsa-kit.txt",
  async run(ctx: CommandContext, args: ParsedArgs): Promise<number> {
    const { location } = namePositionals("init", args.positionals, ["LOCATION"]);
    const hash = stringFlag(args.values, "hash") ?? "blake3";
    if (hash !== "blake3" && hash !== "sha256") {
      throw new UsageError(`--hash must be blake3 or sha256, got ${JSON.stringify(hash)}`);
    }
    const explicitKit = stringFlag(args.values, "kit");
    const kitPath = explicitKit === undefined ? undefined : absolutePath(explicitKit);
    if (kitPath !== undefined) await refuseExisting(kitPath);
    // Reserve the kit's file first: the store is created only once its kit can be written.
    const reserved = await reserveFile(
      kitPath === undefined ? absolutePath(".") : dirname(kitPath),
    );
    let committed = false;
    try {
      const opened = await openLocation(ctx, location!, { create: true });
      try {
        // A host cache left by an earlier store at this Location is stale: drop it.
        await opened.host?.delete(HOST_CACHE_KEY).catch((e) => {
          if (!(e instanceof NotFoundError)) throw e;
        });
        const { store, recoveryKit } = await initStore(opened.driver, {
          hash,
          hostStorage: opened.host,
          location: opened.driver.location,
        });
        const storeId = store.storeId;
        await store.close();
        const path = kitPath ?? absolutePath(`capsa-recovery-kit-${storeId}.txt`);
        try {
          await reserved.commit(path, enc.encode(recoveryKit));
          committed = true;
        } catch (e) {
          const why = e instanceof Error ? e.message : String(e);
          throw new CapsaError(
            "kit_not_written",
            `store ${storeId} was created, but its Recovery Kit could not be written (${why}): ` +
              `run \`capsa kit ${location} --out FILE\` now`,
          );
        }
        ctx.out.result({
          storeId,
          location: opened.driver.location,
          hash,
          kit: path,
          hostDir: opened.hostDir ?? null,
          notice: KIT_NOTICE,
        }, () => [
          `created store ${storeId} at ${opened.driver.location} (hash ${hash})`,
          `Recovery Kit written to ${path} (mode 0600).`,
          KIT_NOTICE,
        ]);
        return EXIT.ok;
      } finally {
        await opened.close();
      }
    } finally {
      if (!committed) await reserved.discard();
    }
  },
};

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
      }, { allowCorrupted: true });
      return EXIT.ok;
    } finally {
      if (!committed) await reserved.discard();
    }
  },
};
