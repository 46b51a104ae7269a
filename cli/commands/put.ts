/**
 * `capsa put`: one artifact from a file or stdin, streamed; or, with
 * `--from DIR`, every file under a directory (`cli/_tree.ts`).
 *
 * @module
 */

import { CapsaError } from "../../errors.ts";
import { withInterrupt } from "../_agent.ts";
import {
  boolFlag,
  intFlag,
  namePositionals,
  type ParsedArgs,
  stringFlag,
  stringsFlag,
} from "../_args.ts";
import type { Command } from "../_command.ts";
import { EXIT, formatBytes, UsageError, withCreatedAt } from "../_output.ts";
import { createProgress, transferFormat } from "../_progress.ts";
import { absolutePath, type CommandContext, withStore } from "../_store.ts";
import { DEFAULT_TREE_PARALLELISM, putTree } from "../_tree.ts";

/** `capsa put`. */
export const putCommand: Command = {
  name: "put",
  summary: "store a file, stdin, or every file under a directory",
  usage: `capsa put LOCATION NAMESPACE KEY [FILE]
       capsa put LOCATION NAMESPACE --from DIR [--prefix P] [--parallelism N]`,
  description:
    `Stores FILE (stdin when FILE is absent or "-") as artifact KEY of NAMESPACE: a new version.
With --from, stores every regular file, directory and symbolic link under DIR, keys being the
paths relative to DIR with "/", after P; several at once, with a progress bar on a terminal. Each
file's and directory's mode and modification time are kept as metadata (capsa.mode, capsa.mtime);
a directory is an empty artifact at "PATH/." (DIR itself at "."), a link is stored as the link
itself (capsa.type=symlink, its target as the body), never followed; a name holding a newline or
another control character gets an escaped key (%0A, capsa.escaped=1); \`get --to\` restores them
as they were. FIFOs, sockets and devices are skipped, each named on stderr.
A file whose current version has the same size, mode and modification time is taken as
unchanged without being read (--checksum reads and hashes it to compare its bytes too), and not
stored again (--force stores it anyway). Ctrl-C stops after the files being stored: what was
stored is kept, and running the same command again completes it. Every key is checked before
anything is stored. The files go through one write session: they fill packs of the store's
target size; files up to 1 MiB are read whole, larger ones streamed; files up to 64 KiB are read
and hashed in a worker thread beside the one that stores them, when the process may read its own
module file (else on the one thread). A file that cannot be read
or stored does not stop the others; the command then fails naming it.`,
  flags: {
    from: { type: "string" },
    force: { type: "boolean" },
    checksum: { type: "boolean" },
    prefix: { type: "string" },
    parallelism: { type: "string" },
    "content-type": { type: "string" },
    meta: { type: "string", multiple: true },
  },
  flagsHelp: `  --from DIR           store every file under DIR
  --prefix P           with --from: put P before every key
  --parallelism N      with --from: files stored at once (default ${DEFAULT_TREE_PARALLELISM})
  --force              with --from: store every file, even one whose current version is the same
  --checksum           with --from: read and hash files whose size, mode and time are unchanged,
                       to compare their bytes with the current version's too
  --content-type TYPE  the media type of a single put
  --meta NAME=VALUE    user metadata of a single put (repeatable)`,
  example: "capsa put /srv/capsa photos 2024/cat.jpg ./cat.jpg",
  async run(ctx: CommandContext, args: ParsedArgs): Promise<number> {
    const from = stringFlag(args.values, "from");
    if (from !== undefined) {
      const { location, namespace } = namePositionals("put", args.positionals, [
        "LOCATION",
        "NAMESPACE",
      ]);
      for (const f of ["content-type", "meta"]) {
        if (args.values[f] !== undefined) throw new UsageError(`--${f} applies to a single put`);
      }
      const parallelism = intFlag(args.values, "parallelism", 256);
      const prefix = stringFlag(args.values, "prefix") ?? "";
      const dir = absolutePath(from);
      const started = performance.now();
      const force = boolFlag(args.values, "force");
      const checksum = boolFlag(args.values, "checksum");
      const result = await withInterrupt(
        ctx,
        "put",
        (signal) =>
          withStore(ctx, location!, (store) =>
            putTree(store, namespace!, dir, {
              prefix,
              force,
              checksum,
              signal,
              ...(parallelism === undefined ? {} : { parallelism }),
              progress: createProgress(transferFormat("put"), ctx.out.quiet),
            })),
      );
      const ms = Math.round(performance.now() - started);
      for (const s of result.skipped) {
        ctx.out.note(`skipped ${s}: not a regular file or symbolic link`);
      }
      const summary = `${result.newVersions} new versions (${formatBytes(result.bytes)}), ` +
        `${result.unchanged} unchanged, ${formatBytes(result.newBytes)} new in the store`;
      if (result.interrupted) {
        throw new CapsaError(
          "aborted",
          `put stopped by Ctrl-C after ${result.files} of ${result.total} files: ${summary}; ` +
            `what was stored is kept: run the same command again to store the rest`,
        );
      }
      ctx.out.result(
        {
          namespace,
          from: dir,
          prefix,
          files: result.files,
          newVersions: result.newVersions,
          unchanged: result.unchanged,
          bytes: result.bytes,
          newBytes: result.newBytes,
          skipped: result.skipped,
          readByWorker: result.readByWorker,
          durationMs: ms,
        },
        () =>
          `stored ${result.files} files from ${dir} into namespace ${namespace}: ${summary}, ` +
          `in ${(ms / 1000).toFixed(1)} s`,
      );
      return EXIT.ok;
    }
    if (
      args.values["prefix"] !== undefined || args.values["parallelism"] !== undefined ||
      args.values["force"] !== undefined || args.values["checksum"] !== undefined
    ) {
      throw new UsageError(
        "--prefix, --parallelism, --force and --checksum apply to put --from DIR",
      );
    }
    const { location, namespace, key, file } = namePositionals("put", args.positionals, [
      "LOCATION",
      "NAMESPACE",
      "KEY",
      "FILE?",
    ]);
    const metadata: Record<string, string> = {};
    for (const m of stringsFlag(args.values, "meta")) {
      const i = m.indexOf("=");
      if (i <= 0) throw new UsageError(`--meta must be NAME=VALUE, got ${JSON.stringify(m)}`);
      metadata[m.slice(0, i)] = m.slice(i + 1);
    }
    const contentType = stringFlag(args.values, "content-type");
    const fromStdin = file === undefined || file === "-";
    if (fromStdin && Deno.stdin.isTerminal()) {
      throw new UsageError("no FILE given and stdin is a terminal: give FILE, or pipe the body in");
    }
    if (!fromStdin && (await Deno.stat(absolutePath(file!))).isDirectory) {
      throw new UsageError(`${file} is a directory: use put LOCATION NAMESPACE --from ${file}`);
    }
    const info = await withStore(ctx, location!, async (store) => {
      const source = fromStdin ? undefined : await Deno.open(absolutePath(file!), { read: true });
      try {
        const put = await store.put(namespace!, key!, inLargePieces(source ?? Deno.stdin), {
          ...(contentType === undefined ? {} : { contentType }),
          metadata,
        });
        await store.flush();
        return put;
      } finally {
        try {
          source?.close();
        } catch { /* already closed */ }
      }
    });
    ctx.out.result(
      withCreatedAt(info),
      () => `stored ${namespace}/${key}: ${formatBytes(info.size)}, version ${info.version}`,
    );
    return EXIT.ok;
  },
};

/** The size of the pieces a body is read in (a file's or a pipe's reads are 64 KiB or less). */
const PIECE = 4 * 1024 * 1024;

/**
 * A file or stdin as a stream of pieces of up to 4 MiB, each filled by as
 * many reads as it takes: the write path then handles a few hundred pieces
 * per GiB instead of sixteen thousand.
 * @param source The open file, or stdin.
 * @returns The body stream.
 */
function inLargePieces(source: {
  read(p: Uint8Array): Promise<number | null>;
  readSync?(p: Uint8Array): number | null;
}) {
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const piece = new Uint8Array(PIECE);
      let filled = 0;
      while (filled < PIECE) {
        // A pipe gives at most 64 KiB a read: synchronous reads gather a piece without a trip
        // through the event loop for each (the writer of the pipe is rarely slower than capsa;
        // a single put has no Ctrl-C handler of its own, so a wait here never delays Ctrl-C).
        const n = source.readSync
          ? source.readSync(piece.subarray(filled))
          : await source.read(piece.subarray(filled));
        if (n === null) break;
        filled += n;
      }
      if (filled > 0) controller.enqueue(filled === PIECE ? piece : piece.subarray(0, filled));
      if (filled < PIECE) controller.close();
    },
  });
}
