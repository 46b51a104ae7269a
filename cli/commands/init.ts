/**
 * `capsa init`: create a store and hand out its Recovery Kit.
 *
 * @module
 */

import { CapsaError, NotFoundError } from "../../errors.ts";
import { initStore } from "../../store/store.ts";
import { HOST_CACHE_KEY } from "../../layout.ts";
import { boolFlag, intFlag, namePositionals, type ParsedArgs, stringFlag } from "../_args.ts";
import { parseKdf } from "../_passphrase.ts";
import type { Command } from "../_command.ts";
import { dirname, pathExists, reserveFile } from "../_files.ts";
import { EXIT, UsageError } from "../_output.ts";
import { absolutePath, type CommandContext, localPath, openLocation } from "../_store.ts";
import { refuseForeignEntries, refuseKitInsideStore } from "../_target.ts";

const enc = new TextEncoder();

/** What the operator is told about the kit, in text and JSON. */
export const KIT_NOTICE: string =
  "Keep the Recovery Kit offline, apart from this machine and from the store (print it, or " +
  "put it in a password manager): if every copy of the store's descriptor is lost, " +
  "`capsa rebuild LOCATION --kit FILE` needs it. It holds no secret data.";

/**
 * Refuses to write a Recovery Kit over an existing file.
 * @param path The kit's path.
 */
export async function refuseExisting(path: string): Promise<void> {
  if (await pathExists(path)) {
    throw new CapsaError(
      "file_exists",
      `${path} already exists: a Recovery Kit never replaces a file; choose another --kit/--out path`,
    );
  }
}

/** The highest zstd level `--compression-level` takes (the config's bound). */
const MAX_LEVEL = 19;

/**
 * Reads `--compression` and `--compression-level` into the first config's
 * settings (absent: the defaults, zstd level 3).
 * @param args The parsed arguments.
 * @returns The settings to pass as `initStore`'s `config`.
 * @throws {UsageError} on an unknown compression, a level outside 1–19, or a
 *   level given with `--compression none`.
 */
export function compressionFlags(
  args: ParsedArgs,
): { compression?: "zstd" | "none"; compressionLevel?: number } {
  const compression = stringFlag(args.values, "compression");
  if (compression !== undefined && compression !== "zstd" && compression !== "none") {
    throw new UsageError(`--compression must be zstd or none, got ${JSON.stringify(compression)}`);
  }
  const level = intFlag(args.values, "compression-level", MAX_LEVEL);
  if (level !== undefined && compression === "none") {
    throw new UsageError("--compression-level applies to zstd only, not to --compression none");
  }
  return {
    ...(compression === undefined ? {} : { compression }),
    ...(level === undefined ? {} : { compressionLevel: level }),
  };
}

/** `capsa init LOCATION [--kit FILE] [--hash blake3|sha256] [--compression zstd|none] [--compression-level N]`. */
export const initCommand: Command = {
  name: "init",
  summary: "create a store and write its Recovery Kit",
  usage:
    "capsa init LOCATION [--kit FILE] [--hash blake3|sha256] [--compression zstd|none] [--compression-level N] [--encrypt [--kdf m=KiB,t=N,p=N]]",
  description:
    `Creates a store on LOCATION: a directory (created if missing; it must be empty: any file in it
is refused, whatever it is), file://…,
s3://bucket/prefix?endpoint=…&region=…, or memory:. Writes the store's Recovery Kit to FILE
(mode 0600; default ./capsa-recovery-kit-<store id>.txt), never inside the store's directory;
an existing file is never replaced.
Keep the kit offline: \`capsa rebuild LOCATION --kit FILE\` rewrites a lost descriptor from it.
New stores compress with zstd at level 3: blobs (each kept compressed only when that saves at
least 1/16 of it), pack TOCs and manifest log entries. --compression none stores every byte as
it is. Both are recorded in the store's config; \`capsa status\` shows them.
With --encrypt the store is encrypted (AES-256-GCM) under a passphrase taken from
--new-passphrase-file, CAPSA_NEW_PASSPHRASE, --passphrase-file, CAPSA_PASSPHRASE or a prompt
(asked twice), never from the command line; every later command needs it. The kit of an
encrypted store holds its key slots, not the key: keep kit and passphrase apart.`,
  flags: {
    kit: { type: "string" },
    hash: { type: "string" },
    compression: { type: "string" },
    "compression-level": { type: "string" },
    encrypt: { type: "boolean" },
    kdf: { type: "string" },
  },
  flagsHelp:
    `  --kit FILE            where to write the Recovery Kit (default: ./capsa-recovery-kit-<id>.txt)
  --hash blake3|sha256  the hash of blob ids (default blake3)
  --compression zstd|none
                        how new data is compressed (default zstd)
  --compression-level N the zstd level, 1 (fastest) to 19 (smallest) (default 3)
  --encrypt             encrypt the store under a passphrase (see above)
  --kdf m=KiB,t=N,p=N   Argon2id cost of the passphrase's key slot (default m=65536,t=3,p=1;
                        lower costs make guessing cheaper: for tests and very small machines)`,
  example: "capsa init /srv/capsa --kit ~/capsa-kit.txt",
  async run(ctx: CommandContext, args: ParsedArgs): Promise<number> {
    const { location } = namePositionals("init", args.positionals, ["LOCATION"]);
    const hash = stringFlag(args.values, "hash") ?? "blake3";
    if (hash !== "blake3" && hash !== "sha256") {
      throw new UsageError(`--hash must be blake3 or sha256, got ${JSON.stringify(hash)}`);
    }
    const compression = compressionFlags(args);
    const encrypt = boolFlag(args.values, "encrypt");
    const kdfText = stringFlag(args.values, "kdf");
    if (kdfText !== undefined && !encrypt) throw new UsageError("--kdf needs --encrypt");
    const kdf = kdfText === undefined ? undefined : parseKdf(kdfText);
    // Asked before anything is created: a store is never left without its passphrase.
    const passphrase = encrypt ? await ctx.passphrases.newOne(true) : undefined;
    const explicitKit = stringFlag(args.values, "kit");
    const kitPath = explicitKit === undefined ? undefined : absolutePath(explicitKit);
    if (kitPath !== undefined) await refuseExisting(kitPath);
    const kitDir = kitPath === undefined ? absolutePath(".") : dirname(kitPath);
    await refuseKitInsideStore(kitDir, localPath(location!));
    // Reserve the kit's file first: the store is created only once its kit can be written.
    const reserved = await reserveFile(kitDir);
    let committed = false;
    try {
      const opened = await openLocation(ctx, location!, { create: true });
      try {
        await refuseForeignEntries(opened.driver, "init");
        // A host cache left by an earlier store at this Location is stale: drop it.
        await opened.host?.delete(HOST_CACHE_KEY).catch((e) => {
          if (!(e instanceof NotFoundError)) throw e;
        });
        const { store, recoveryKit } = await initStore(opened.driver, {
          hash,
          config: compression,
          hostStorage: opened.host,
          location: opened.driver.location,
          ...(passphrase === undefined
            ? {}
            : { encryption: { passphrase, ...(kdf === undefined ? {} : { kdf }) } }),
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
          encrypted: encrypt,
          kit: path,
          hostDir: opened.hostDir ?? null,
          notice: KIT_NOTICE,
        }, () => [
          `created ${
            encrypt ? "encrypted " : ""
          }store ${storeId} at ${opened.driver.location} (hash ${hash})`,
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
