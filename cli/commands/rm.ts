/**
 * `capsa rm`: delete an artifact (a tombstone version), or every live
 * artifact under a key prefix (`--prefix`, with `--dry-run` to list them).
 *
 * @module
 */

import { CapsaError } from "../../errors.ts";
import { pool } from "../../pool.ts";
import { withInterrupt } from "../_agent.ts";
import { boolFlag, namePositionals, type ParsedArgs, stringFlag } from "../_args.ts";
import type { Command } from "../_command.ts";
import { EXIT, UsageError } from "../_output.ts";
import { createProgress } from "../_progress.ts";
import { type CommandContext, listAll, withStore } from "../_store.ts";

/** Tombstones committed at once by `rm --prefix` (the group committer batches them). */
const RM_CONCURRENCY = 32;

/** `capsa rm`. */
export const rmCommand: Command = {
  name: "rm",
  summary: "delete an artifact, or every artifact under a prefix (tombstones; space freed by gc)",
  usage: `capsa rm LOCATION NAMESPACE KEY
       capsa rm LOCATION NAMESPACE --prefix P [--dry-run]`,
  description:
    `Deletes artifact KEY of NAMESPACE by committing a tombstone version. Nothing is removed in
place: the space is freed by garbage collection, a separate step. Fails (not_found) when there
is no such live artifact.
With --prefix P, deletes every live artifact of NAMESPACE whose key starts with P (P may not be
empty), with a progress bar on a terminal; --dry-run only lists them. Fails (not_found) when no
live artifact starts with P. Ctrl-C stops after the deletes in flight: those done stay done, and
running the same command again deletes the rest.`,
  flags: { prefix: { type: "string" }, "dry-run": { type: "boolean" } },
  flagsHelp: `  --prefix P  delete every live artifact whose key starts with P (instead of one KEY)
  --dry-run   with --prefix: list what would be deleted, delete nothing`,
  example: "capsa rm /srv/capsa photos --prefix 2023/ --dry-run",
  async run(ctx: CommandContext, args: ParsedArgs): Promise<number> {
    const prefix = stringFlag(args.values, "prefix");
    const dryRun = boolFlag(args.values, "dry-run");
    if (prefix !== undefined) return await removePrefix(ctx, args, prefix, dryRun);
    if (dryRun) throw new UsageError("--dry-run applies to rm --prefix P (see: capsa rm --help)");
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

async function removePrefix(
  ctx: CommandContext,
  args: ParsedArgs,
  prefix: string,
  dryRun: boolean,
): Promise<number> {
  const { location, namespace } = namePositionals("rm", args.positionals, [
    "LOCATION",
    "NAMESPACE",
  ]);
  if (prefix === "") {
    throw new UsageError(
      "--prefix must not be empty: rm --prefix deletes the keys starting with it, " +
        "not a whole namespace (see: capsa rm --help)",
    );
  }
  const started = performance.now();
  const noneMatch = () =>
    new CapsaError(
      "not_found",
      `no artifact of namespace ${JSON.stringify(namespace)} starts with ${
        JSON.stringify(prefix)
      }: nothing deleted (see capsa ls ${location} ${namespace})`,
    );
  if (dryRun) {
    const keys = await withStore(ctx, location!, async (store) => {
      const keys: string[] = [];
      for await (const info of listAll(store, namespace!, prefix)) keys.push(info.key);
      return keys;
    }, { readOnly: true });
    if (keys.length === 0) throw noneMatch();
    ctx.out.result(
      { namespace, prefix, dryRun: true, count: keys.length, keys },
      () =>
        [...keys, `would delete ${keys.length} artifacts of ${namespace} under ${prefix}`]
          .join("\n"),
    );
    return EXIT.ok;
  }
  let total = 0;
  let deleted = 0;
  let gone = 0;
  const result = await withInterrupt(
    ctx,
    "rm",
    (signal) =>
      withStore(ctx, location!, async (store) => {
        const keys: string[] = [];
        for await (const info of listAll(store, namespace!, prefix)) keys.push(info.key);
        total = keys.length;
        if (keys.length === 0) throw noneMatch();
        const progress = createProgress(
          "rm {bar} {value}/{total} artifacts{eta}",
          ctx.out.quiet,
        );
        progress.start(keys.length);
        let interrupted = false;
        try {
          await pool(keys, async (key) => {
            // `false`: deleted meanwhile by someone else; gone all the same.
            if (await store.delete(namespace!, key)) deleted++;
            else gone++;
            progress.update(deleted + gone);
          }, { concurrency: RM_CONCURRENCY, signal }).catch((e) => {
            if (!signal.aborted) throw e;
            interrupted = true;
          });
          await store.flush();
        } finally {
          progress.stop();
        }
        return { interrupted };
      }),
    "rm stopped by Ctrl-C",
  );
  if (result.interrupted) {
    throw new CapsaError(
      "aborted",
      `rm stopped by Ctrl-C after deleting ${deleted} of ${total} artifacts under ${
        JSON.stringify(prefix)
      }: those are deleted; run the same command again to delete the rest`,
    );
  }
  const ms = Math.round(performance.now() - started);
  ctx.out.result(
    { namespace, prefix, deleted, alreadyGone: gone, durationMs: ms },
    () =>
      `deleted ${deleted} artifacts of ${namespace} under ${prefix}` +
      (gone > 0 ? ` (${gone} more were deleted meanwhile by someone else)` : "") +
      `, in ${(ms / 1000).toFixed(1)} s`,
  );
  return EXIT.ok;
}
