/**
 * `capsa stat`: describe an artifact, or list its versions.
 *
 * @module
 */

import { ArtifactNotFoundError, CapsaError } from "../../errors.ts";
import type { ArtifactInfo, Store } from "../../store/store.ts";
import { boolFlag, namePositionals, type ParsedArgs, stringFlag } from "../_args.ts";
import type { Command } from "../_command.ts";
import { EXIT, formatBytes, withCreatedAt } from "../_output.ts";
import { type CommandContext, withStore } from "../_store.ts";

function infoLines(info: ArtifactInfo, hash: string): string[] {
  const meta = Object.entries(info.metadata).map(([k, v]) => `${k}=${v}`).join(", ");
  return [
    `namespace     ${info.namespace}`,
    `key           ${info.key}`,
    `version       ${info.version}`,
    `size          ${info.size} (${formatBytes(info.size)})`,
    `digest        ${hash}:${info.digest}`,
    `created       ${new Date(info.created).toISOString()}`,
    `content-type  ${info.contentType === "" ? "-" : info.contentType}`,
    `metadata      ${meta === "" ? "-" : meta}`,
  ];
}

/**
 * Rethrows a "no artifact" error of `stat`/`get` of the current version, in
 * words that say what happened when the key was deleted: its earlier
 * versions are still in the store, and `stat --versions` lists them.
 * @param store The open store.
 * @param location The Location as typed (for the hint).
 * @param namespace The namespace. @param key The key.
 * @param version The version asked for, if any.
 * @param error What `stat` threw.
 * @returns Never.
 * @throws {CapsaError} `not_found` naming the deletion, or `error` itself.
 */
export async function explainMissing(
  store: Store,
  location: string,
  namespace: string,
  key: string,
  version: string | undefined,
  error: unknown,
): Promise<never> {
  if (!(error instanceof ArtifactNotFoundError) || version !== undefined) throw error;
  const versions = await store.versions(namespace, key);
  const newest = versions[0];
  if (!newest?.deleted) throw error;
  const kept = versions.filter((v) => !v.deleted).length;
  throw new CapsaError(
    "not_found",
    `artifact ${JSON.stringify(key)} in namespace ${JSON.stringify(namespace)} was deleted ` +
      `(${new Date(newest.created).toISOString()}); ${kept} earlier version(s) are still ` +
      `stored: capsa stat ${sh(location)} ${sh(namespace)} ${sh(key)} --versions, then --version V`,
  );
}

/** A word as a shell would need it (quoted when it holds anything special). @param s The word. @returns It. */
function sh(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", "'\\''")}'`;
}

/** `capsa stat`. */
export const statCommand: Command = {
  name: "stat",
  summary: "describe an artifact (size, digest, version, metadata)",
  usage: "capsa stat LOCATION NAMESPACE KEY [--version V] [--versions]",
  description:
    `Describes the current version of artifact KEY of NAMESPACE (or version V). With --versions,
lists every version, newest first, deletions included.`,
  flags: { version: { type: "string" }, versions: { type: "boolean" } },
  flagsHelp: `  --version V  describe version V instead of the current one
  --versions   list every version, newest first`,
  example: "capsa stat /srv/capsa photos 2024/cat.jpg",
  async run(ctx: CommandContext, args: ParsedArgs): Promise<number> {
    const { location, namespace, key } = namePositionals("stat", args.positionals, [
      "LOCATION",
      "NAMESPACE",
      "KEY",
    ]);
    const version = stringFlag(args.values, "version");
    await withStore(ctx, location!, async (store) => {
      const hash = store.descriptor?.hash ?? "";
      if (boolFlag(args.values, "versions")) {
        const versions = await store.versions(namespace!, key!);
        if (versions.length === 0) {
          throw new CapsaError(
            "not_found",
            `no artifact ${JSON.stringify(key)} in namespace ${JSON.stringify(namespace)}`,
          );
        }
        ctx.out.result(
          { namespace, key, hash, versions: versions.map(withCreatedAt) },
          () =>
            versions.map((v) =>
              `${v.version}  ${new Date(v.created).toISOString()}  ${
                v.deleted ? "deleted" : `${v.size} bytes  ${hash}:${v.digest}`
              }`
            ),
          { essential: true },
        );
        return;
      }
      const info = await store.stat(namespace!, key!, version === undefined ? {} : { version })
        .catch((e) => explainMissing(store, location!, namespace!, key!, version, e));
      ctx.out.result({ ...withCreatedAt(info), hash }, () => infoLines(info, hash), {
        essential: true,
      });
    }, { readOnly: true });
    return EXIT.ok;
  },
};
