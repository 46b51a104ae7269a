/**
 * `capsa get`: one artifact to stdout or a file (written atomically); or,
 * with `--to DIR`, every artifact of a namespace into a directory
 * (`cli/_tree.ts`).
 *
 * @module
 */

import { CapsaError } from "../../errors.ts";
import { intFlag, namePositionals, type ParsedArgs, stringFlag } from "../_args.ts";
import type { Command } from "../_command.ts";
import { writeFileAtomic } from "../_files.ts";
import { EXIT, formatBytes, UsageError, withCreatedAt } from "../_output.ts";
import { createProgress, transferFormat } from "../_progress.ts";
import { absolutePath, type CommandContext, withStore } from "../_store.ts";
import { DEFAULT_TREE_PARALLELISM, getTree } from "../_tree.ts";
import { explainMissing } from "./stat.ts";

/** `capsa get`. */
export const getCommand: Command = {
  name: "get",
  summary: "read an artifact to stdout or a file, or restore a namespace to a directory",
  usage: `capsa get LOCATION NAMESPACE KEY [-o FILE] [--version V]
       capsa get LOCATION NAMESPACE --to DIR [--prefix P] [--parallelism N]`,
  description:
    `Writes artifact KEY of NAMESPACE to stdout, or with -o to FILE (atomically: a temporary file,
then a rename, so FILE is never half-written). With --to, restores every artifact of NAMESPACE
(under P) into DIR, each at its key as a relative path; a namespace with no live artifact is
an error (not_found, exit 1) and DIR is left as it was. Everything that can be restored safely
is: a key that would land outside DIR ("../x", "/x", "a//b") or cannot be a file name here, a
key that is also the directory of other keys, and an artifact whose bytes are damaged are each
named on stderr and skipped, and the command then exits 1. Files stored by put --from get back
their mode and modification time, and symbolic links come back as the same links (made, never
followed). Every blob is checked against its hash on the way.`,
  flags: {
    output: { type: "string", short: "o" },
    version: { type: "string" },
    to: { type: "string" },
    prefix: { type: "string" },
    parallelism: { type: "string" },
  },
  flagsHelp: `  -o, --output FILE  write to FILE instead of stdout
  --version V        a version id (see stat) instead of the current version
  --to DIR           restore the namespace (or the keys under --prefix) into DIR
  --prefix P         with --to: only keys starting with P
  --parallelism N    with --to: files written at once (default ${DEFAULT_TREE_PARALLELISM})`,
  example: "capsa get /srv/capsa photos 2024/cat.jpg -o cat.jpg",
  async run(ctx: CommandContext, args: ParsedArgs): Promise<number> {
    const to = stringFlag(args.values, "to");
    if (to !== undefined) {
      const { location, namespace } = namePositionals("get", args.positionals, [
        "LOCATION",
        "NAMESPACE",
      ]);
      for (const f of ["output", "version"]) {
        if (args.values[f] !== undefined) throw new UsageError(`--${f} applies to a single get`);
      }
      const prefix = stringFlag(args.values, "prefix");
      const parallelism = intFlag(args.values, "parallelism", 256);
      const started = performance.now();
      const r = await withStore(
        ctx,
        location!,
        async (store) => {
          // Validates the name and catches up with other writers first.
          await store.list(namespace!, { limit: 1 });
          const namespaces = await store.namespaces();
          if (!namespaces.includes(namespace!)) {
            throw new CapsaError(
              "not_found",
              `no namespace ${JSON.stringify(namespace)} in the store (none of its artifacts is ` +
                `live); its namespaces: ${
                  namespaces.length === 0 ? "none" : namespaces.join(", ")
                }`,
            );
          }
          return await getTree(store, namespace!, absolutePath(to), {
            ...(prefix === undefined ? {} : { prefix }),
            ...(parallelism === undefined ? {} : { parallelism }),
            progress: createProgress(transferFormat("get"), ctx.out.quiet),
            onProblem: (p) => ctx.out.warn(p.code, `${namespace}/${p.key}: ${p.message}`),
          });
        },
        { readOnly: true },
      );
      const ms = Math.round(performance.now() - started);
      ctx.out.result(
        {
          namespace,
          prefix: prefix ?? "",
          to: r.to,
          files: r.files,
          total: r.total,
          bytes: r.bytes,
          notRestored: r.problems,
          durationMs: ms,
        },
        () =>
          r.problems.length === 0
            ? `restored ${r.files} files (${formatBytes(r.bytes)}) of ${namespace} into ${r.to}`
            : `restored ${r.files} of ${r.total} files (${formatBytes(r.bytes)}) of ${namespace} ` +
              `into ${r.to}; ${r.problems.length} not restored (each named above)`,
      );
      return r.problems.length === 0 ? EXIT.ok : EXIT.failed;
    }
    if (args.values["prefix"] !== undefined || args.values["parallelism"] !== undefined) {
      throw new UsageError("--prefix and --parallelism apply to get --to DIR");
    }
    const { location, namespace, key } = namePositionals("get", args.positionals, [
      "LOCATION",
      "NAMESPACE",
      "KEY",
    ]);
    const output = stringFlag(args.values, "output");
    const version = stringFlag(args.values, "version");
    const toStdout = output === undefined || output === "-";
    if (toStdout && ctx.out.json) {
      throw new UsageError("--json needs -o FILE: without it the body itself goes to stdout");
    }
    const info = await withStore(ctx, location!, async (store) => {
      const opts = version === undefined ? {} : { version };
      const info = await store.stat(namespace!, key!, opts)
        .catch((e) => explainMissing(store, location!, namespace!, key!, version, e));
      const body = await store.getStream(namespace!, key!, { version: info.version });
      if (toStdout) {
        ctx.out.markEmitted();
        for await (const chunk of body) await ctx.out.stdoutBytes(chunk);
      } else {
        await writeFileAtomic(absolutePath(output!), body);
      }
      return info;
    }, { readOnly: true });
    if (!toStdout) {
      const path = absolutePath(output!);
      ctx.out.result(
        { ...withCreatedAt(info), path },
        () =>
          `wrote ${namespace}/${key} (${
            formatBytes(info.size)
          }, version ${info.version}) to ${path}`,
      );
    }
    return EXIT.ok;
  },
};
