/**
 * The shape of a CLI command and its help text.
 *
 * @module
 */

import { type FlagSpec, GLOBAL_HELP, type ParsedArgs } from "./_args.ts";
import { EXIT_CODES_HELP } from "./_output.ts";
import type { CommandContext } from "./_store.ts";

/** One `capsa` command. */
export interface Command {
  /** Its name on the command line. */
  name: string;
  /** One line for `capsa --help`. */
  summary: string;
  /** The usage line(s). */
  usage: string;
  /** What it does, a few lines. */
  description: string;
  /** Its own flags (the global ones are added). */
  flags: Record<string, FlagSpec>;
  /** The help of its own flags, one per line (empty when none). */
  flagsHelp: string;
  /** An example command line. */
  example: string;
  /**
   * Runs the command.
   * @param ctx Output and global flags.
   * @param args Its parsed arguments.
   * @returns The exit code.
   */
  run(ctx: CommandContext, args: ParsedArgs): Promise<number>;
}

/**
 * The full help of a command: usage, description, flags, global flags,
 * example and exit codes.
 * @param c The command.
 * @returns The text.
 */
export function commandHelp(c: Command): string {
  return [
    `usage: ${c.usage}`,
    "",
    c.description,
    "",
    ...(c.flagsHelp === "" ? [] : ["flags:", c.flagsHelp, ""]),
    GLOBAL_HELP,
    "",
    `example:\n  ${c.example}`,
    "",
    EXIT_CODES_HELP,
    "",
  ].join("\n");
}
