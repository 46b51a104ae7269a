/**
 * `capsa cache list` and `capsa cache prune`: the host directories under the
 * per-user cache (`cli/_cache.ts`).
 *
 * @module
 */

import { parseDuration } from "../../maintenance/options.ts";
import { listHostDirs, pruneReason, removeHostDir } from "../_cache.ts";
import { boolFlag, namePositionals, type ParsedArgs, stringFlag } from "../_args.ts";
import type { Command } from "../_command.ts";
import { EXIT, formatBytes, UsageError } from "../_output.ts";
import { type CommandContext, defaultCacheRoot } from "../_store.ts";

/** The default of `--older-than`. */
const DEFAULT_OLDER_THAN = "30d";

/** `capsa cache`. */
export const cacheCommand: Command = {
  name: "cache",
  summary: "list or prune this user's host directories (index caches) of stores",
  usage: `capsa cache list
       capsa cache prune [--older-than 30d] [--dry-run]`,
  description:
    `Every store opened without --host-dir gets a host directory (its index cache and descriptor
replica) under $XDG_CACHE_HOME/capsa (or ~/.cache/capsa). list shows each: the Location it
belongs to, the store id, its size, when it was last used, whether the Location still holds the
store (present, gone, moved; unknown for s3:// Locations and for directories made before capsa
recorded their Location) and whether a process has the store open now.
prune removes the host directories whose Location is gone or was moved, and those unused for
longer than --older-than (default ${DEFAULT_OLDER_THAN}); never one a process has open, nor one
holding a manifest log (a store whose manifests live on the host: not only a cache). A
removed host directory is only a cache: the next command on that store rebuilds it from the
Location's snapshots. --dry-run lists what would be removed.`,
  flags: { "older-than": { type: "string" }, "dry-run": { type: "boolean" } },
  flagsHelp:
    `  --older-than AGE  prune: also remove host directories unused for longer (default ${DEFAULT_OLDER_THAN}; s, m, h, d)
  --dry-run         prune: list what would be removed, remove nothing`,
  example: "capsa cache prune --older-than 14d --dry-run",
  async run(ctx: CommandContext, args: ParsedArgs): Promise<number> {
    const { action } = namePositionals("cache", args.positionals, ["ACTION"]);
    if (ctx.hostDir !== undefined) {
      throw new UsageError(
        "--host-dir does not apply to capsa cache: it manages the default host directories " +
          "(see: capsa cache --help)",
      );
    }
    const root = defaultCacheRoot();
    if (action === "list") {
      for (const f of ["older-than", "dry-run"]) {
        if (args.values[f] !== undefined) {
          throw new UsageError(`--${f} applies to cache prune (see: capsa cache --help)`);
        }
      }
      const dirs = await listHostDirs(root);
      ctx.out.result(
        {
          root,
          hostDirs: dirs.map((d) => ({ ...d, lastUsedAt: new Date(d.lastUsed).toISOString() })),
        },
        () =>
          dirs.length === 0 ? `no host directories under ${root}` : dirs.map((d) =>
            [
              d.path,
              `  location   ${d.location ?? "(not recorded)"} (${d.locationState})`,
              `  store id   ${d.storeId ?? "(none)"}`,
              `  size       ${formatBytes(d.bytes)}`,
              `  last used  ${new Date(d.lastUsed).toISOString()}${d.inUse ? " (in use now)" : ""}`,
            ].join("\n")
          ).join("\n"),
      );
      return EXIT.ok;
    }
    if (action !== "prune") {
      throw new UsageError(
        `unknown action ${JSON.stringify(action)}: list or prune (see: capsa cache --help)`,
      );
    }
    const olderThanText = stringFlag(args.values, "older-than") ?? DEFAULT_OLDER_THAN;
    const olderThanMs = parseDuration(olderThanText);
    if (olderThanMs === undefined) {
      throw new UsageError(
        `--older-than must be a duration such as 30d, 12h or 90m, got ${
          JSON.stringify(olderThanText)
        } (see: capsa cache --help)`,
      );
    }
    const dryRun = boolFlag(args.values, "dry-run");
    const now = Date.now();
    const removed: Array<{ path: string; location: string | undefined; reason: string }> = [];
    const inUse: string[] = [];
    let freed = 0;
    for (const d of await listHostDirs(root)) {
      const reason = pruneReason(d, olderThanMs, now);
      if (reason === undefined) continue;
      if (d.holdsManifestLog) {
        ctx.out.note(
          `kept ${d.path}: it holds the store's manifest log (manifests kept on this host), ` +
            `not only a cache (${reason}); remove it yourself once it is no longer needed`,
        );
        continue;
      }
      if (d.inUse || (!dryRun && !(await removeHostDir(d.path)))) {
        inUse.push(d.path);
        ctx.out.note(`kept ${d.path}: in use by a running process (${reason})`);
        continue;
      }
      removed.push({ path: d.path, location: d.location, reason });
      freed += d.bytes;
    }
    ctx.out.result(
      { root, dryRun, removed, keptInUse: inUse, bytes: freed },
      () =>
        [
          ...removed.map((r) =>
            `${dryRun ? "would remove" : "removed"} ${r.path} (${
              r.location ?? "Location not recorded"
            }): ${r.reason}`
          ),
          `${dryRun ? "would remove" : "removed"} ${removed.length} host directories, ${
            formatBytes(freed)
          }`,
        ].join("\n"),
    );
    return EXIT.ok;
  },
};
