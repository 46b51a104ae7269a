/**
 * The `capsa` command line: finds the command, parses its flags, runs it,
 * and turns any error into one line (or one JSON document) and an exit code.
 *
 * @example
 * ```ts ignore
 * import { main } from "./main.ts";
 * Deno.exit(await main(["status", "/srv/capsa", "--json"]));
 * ```
 *
 * @module
 */

import { boolFlag, GLOBAL_HELP, parseCommandLine, splitCommand, stringFlag } from "./_args.ts";
import { type Command, commandHelp } from "./_command.ts";
import { EXIT, EXIT_CODES_HELP, Output, OutputClosed, UsageError } from "./_output.ts";
import { Passphrases } from "./_passphrase.ts";
import { cacheCommand } from "./commands/cache.ts";
import { getCommand } from "./commands/get.ts";
import { initCommand } from "./commands/init.ts";
import { kitCommand } from "./commands/kit.ts";
import { keyCommand } from "./commands/key.ts";
import { lsCommand } from "./commands/ls.ts";
import { migrateCommand } from "./commands/migrate.ts";
import { moveCommand } from "./commands/move.ts";
import { putCommand } from "./commands/put.ts";
import { rebuildCommand } from "./commands/rebuild.ts";
import { rmCommand } from "./commands/rm.ts";
import { serveCommand } from "./commands/serve.ts";
import { snapshotCommand } from "./commands/snapshot.ts";
import { statCommand } from "./commands/stat.ts";
import { statusCommand } from "./commands/status.ts";
import { verifyCommand } from "./commands/verify.ts";
import { gcCommand } from "./commands/gc.ts";

/** The version printed by `capsa --version`. */
export const VERSION = "0.1.0";

/** Every command, in the order `capsa --help` lists them. */
export const COMMANDS: readonly Command[] = [
  initCommand,
  putCommand,
  getCommand,
  lsCommand,
  rmCommand,
  statCommand,
  statusCommand,
  rebuildCommand,
  verifyCommand,
  gcCommand,
  migrateCommand,
  moveCommand,
  snapshotCommand,
  kitCommand,
  keyCommand,
  serveCommand,
  cacheCommand,
];

/**
 * The top-level help.
 * @returns The text.
 */
export function mainHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    "capsa: a deduplicating, content-addressed object store",
    "",
    "usage: capsa COMMAND LOCATION [ARGS…] [FLAGS]",
    "",
    "LOCATION is a directory path, file:///path, s3://bucket/prefix?endpoint=…&region=…, or memory:",
    "",
    "commands:",
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    "",
    GLOBAL_HELP,
    "  --version       print the version",
    "",
    "Run `capsa COMMAND --help` for a command's arguments and an example.",
    "The runbook (every state and how to recover from it): docs/OPERATIONS.md",
    "",
    EXIT_CODES_HELP,
    "",
  ].join("\n");
}

/**
 * Runs the CLI.
 * @param argv The arguments (without the program name).
 * @returns The exit code.
 */
export async function main(argv: string[]): Promise<number> {
  try {
    return await runCommandLine(argv);
  } catch (e) {
    // A reader that stopped reading (`capsa ls S ns | head -1`) got what it wanted.
    if (e instanceof OutputClosed) return EXIT.ok;
    throw e;
  }
}

async function runCommandLine(argv: string[]): Promise<number> {
  const { command: name, rest } = splitCommand(argv);
  const wantsJson = rest.includes("--json");
  const out0 = new Output({ json: wantsJson });
  if (name === undefined || name === "help") {
    if (rest.includes("--version")) {
      out0.result({ version: VERSION }, () => `capsa ${VERSION}`, { essential: true });
      return EXIT.ok;
    }
    const topic = name === "help" ? rest.find((a) => !a.startsWith("-")) : undefined;
    const cmd = topic === undefined ? undefined : COMMANDS.find((c) => c.name === topic);
    if (name === undefined && !rest.some((a) => a === "--help" || a === "-h")) {
      const err = new UsageError("missing COMMAND (see: capsa --help)");
      if (!wantsJson) out0.stdout(mainHelp());
      return out0.error(err);
    }
    const text = cmd ? commandHelp(cmd) : mainHelp();
    out0.result({ help: text }, () => text, { essential: true });
    return EXIT.ok;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    return out0.error(
      new UsageError(`unknown command ${JSON.stringify(name)} (see: capsa --help)`),
    );
  }
  let out = out0;
  try {
    if (rest.some((a) => a === "--passphrase" || a.startsWith("--passphrase="))) {
      throw new UsageError(
        "a passphrase is never taken from the command line (other users and the shell history " +
          "can read it): set CAPSA_PASSPHRASE, or use --passphrase-file FILE",
      );
    }
    const args = parseCommandLine(command.name, rest, command.flags);
    out = new Output({
      json: boolFlag(args.values, "json"),
      quiet: boolFlag(args.values, "quiet"),
    });
    if (boolFlag(args.values, "help")) {
      const text = commandHelp(command);
      out.result({ help: text }, () => text, { essential: true });
      return EXIT.ok;
    }
    const passphrases = new Passphrases({
      file: stringFlag(args.values, "passphrase-file"),
      newFile: stringFlag(args.values, "new-passphrase-file"),
    }, (code, message) => out.warn(code, message));
    return await command.run(
      { out, hostDir: stringFlag(args.values, "host-dir"), passphrases },
      args,
    );
  } catch (e) {
    if (e instanceof OutputClosed) throw e;
    return out.error(e);
  }
}
