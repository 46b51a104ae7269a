/**
 * Command-line parsing for the CLI, on `node:util` `parseArgs`: each command
 * declares its flags and positionals; global flags (`--host-dir`, `--json`,
 * `--quiet`, `--help`) are accepted anywhere on the line. Every mistake is a
 * {@linkcode UsageError} (exit code 2) that names the help to read.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { InvalidArgumentError } from "../errors.ts";
import { integer, readOptions } from "../maintenance/options.ts";
import { UsageError } from "./_output.ts";

/** A flag of a command. */
export interface FlagSpec {
  /** `string` takes a value, `boolean` does not. */
  type: "string" | "boolean";
  /** A one-letter alias. */
  short?: string;
  /** May be repeated (values collected in order). */
  multiple?: boolean;
}

/** The global flags, accepted by every command. */
export const GLOBAL_FLAGS: Record<string, FlagSpec> = {
  "host-dir": { type: "string" },
  "passphrase-file": { type: "string" },
  "new-passphrase-file": { type: "string" },
  json: { type: "boolean" },
  quiet: { type: "boolean", short: "q" },
  help: { type: "boolean", short: "h" },
};

/** The global flags as shown in every help text. */
export const GLOBAL_HELP = `global flags:
  --host-dir DIR  this host's directory for the store (index cache, descriptor replica);
                  default: $XDG_CACHE_HOME/capsa/<hash of LOCATION> (or ~/.cache/capsa/…)
  --passphrase-file FILE  an encrypted store's passphrase (else CAPSA_PASSPHRASE, else a prompt)
  --new-passphrase-file FILE  a new passphrase (init --encrypt, key add|passwd; else
                  CAPSA_NEW_PASSPHRASE, else a prompt); never give a passphrase on the command line
  --json          print exactly one JSON document on stdout (errors too: {"error":{code,message}})
  -q, --quiet     no progress bars, notes or confirmations
  -h, --help      show this help`;

/** What {@linkcode parseCommandLine} returns. */
export interface ParsedArgs {
  /** Flag values by name. */
  values: Record<string, string | boolean | string[] | undefined>;
  /** The positional arguments. */
  positionals: string[];
}

/**
 * Parses a command's arguments (everything after its name).
 * @param command The command's name, for messages.
 * @param args The arguments.
 * @param flags The command's own flags (the global ones are added).
 * @returns Values and positionals.
 * @throws {UsageError} on an unknown flag, a missing value, or a value given to a boolean.
 */
export function parseCommandLine(
  command: string,
  args: string[],
  flags: Record<string, FlagSpec>,
): ParsedArgs {
  try {
    const { values, positionals } = parseArgs({
      args,
      options: { ...GLOBAL_FLAGS, ...flags },
      allowPositionals: true,
      strict: true,
    });
    return { values: values as ParsedArgs["values"], positionals };
  } catch (e) {
    throw new UsageError(`${flagMistake(e, flags)} (see: capsa ${command} --help)`);
  }
}

/**
 * What `parseArgs` found wrong, in capsa's words (its own text is long,
 * spans lines and quotes unevenly).
 * @param error What `parseArgs` threw.
 * @param flags The command's own flags.
 * @returns One line naming the flag.
 */
export function flagMistake(error: unknown, flags: Record<string, FlagSpec>): string {
  const message = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: unknown }).code;
  const flag = /'(-{1,2}[^'\s<]+)/.exec(message)?.[1];
  if (flag !== undefined) {
    if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
      const own = Object.keys(flags).map((f) => `--${f}`);
      return `unknown flag ${flag}; ${
        own.length === 0 ? "this command has none of its own" : `its flags: ${own.join(", ")}`
      }`;
    }
    if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
      if (/does not take an argument/.test(message)) return `${flag} takes no value`;
      if (/ambiguous/.test(message)) {
        return `${flag} needs a value (a value starting with - is given as ${flag}=-VALUE)`;
      }
      return `${flag} needs a value`;
    }
  }
  return message.replace(/\s*\n\s*/g, " ");
}

/**
 * Splits the command name from the arguments: the first argument that is not
 * a flag (nor the value of a global flag that takes one).
 * @param argv The whole command line.
 * @returns The command (or `undefined`) and the remaining arguments.
 */
export function splitCommand(argv: string[]): { command: string | undefined; rest: string[] } {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") break;
    if (a === "--host-dir") {
      i++;
      continue;
    }
    if (a.startsWith("-")) continue;
    return { command: a, rest: [...argv.slice(0, i), ...argv.slice(i + 1)] };
  }
  return { command: undefined, rest: argv };
}

/**
 * Checks the number of positionals and names them (`"LOCATION"` → `location`).
 * @param command The command, for messages.
 * @param positionals The positionals.
 * @param names Their names, in order (`?` suffix: optional).
 * @returns The positionals by name.
 * @throws {UsageError} when one is missing or there are too many.
 */
export function namePositionals(
  command: string,
  positionals: string[],
  names: string[],
): Record<string, string | undefined> {
  const required = names.filter((n) => !n.endsWith("?")).length;
  if (positionals.length < required) {
    const missing = names[positionals.length]!.replace(/\?$/, "");
    throw new UsageError(`missing ${missing} (see: capsa ${command} --help)`);
  }
  if (positionals.length > names.length) {
    throw new UsageError(
      `unexpected argument ${
        JSON.stringify(positionals[names.length])
      } (see: capsa ${command} --help)`,
    );
  }
  const out: Record<string, string | undefined> = {};
  names.forEach((n, i) => (out[n.replace(/\?$/, "").toLowerCase()] = positionals[i]));
  return out;
}

/**
 * A string flag's value.
 * @param values The parsed values.
 * @param name The flag.
 * @returns Its value, or `undefined`.
 */
export function stringFlag(values: ParsedArgs["values"], name: string): string | undefined {
  const v = values[name];
  return typeof v === "string" ? v : undefined;
}

/**
 * A repeatable string flag's values.
 * @param values The parsed values.
 * @param name The flag.
 * @returns Its values (empty when absent).
 */
export function stringsFlag(values: ParsedArgs["values"], name: string): string[] {
  const v = values[name];
  return Array.isArray(v) ? v : typeof v === "string" ? [v] : [];
}

/**
 * A boolean flag's value.
 * @param values The parsed values.
 * @param name The flag.
 * @returns Whether it was given.
 */
export function boolFlag(values: ParsedArgs["values"], name: string): boolean {
  return values[name] === true;
}

/**
 * Runs a read of options through the shared parser (`maintenance/options.ts`),
 * turning its refusal into a usage error: the same message as HTTP gives for
 * the same bad option, reported with exit code 2.
 * @param read The read.
 * @returns What it returns.
 * @throws {UsageError} when the parser refuses an option.
 */
export function asUsage<T>(read: () => T): T {
  try {
    return read();
  } catch (e) {
    if (e instanceof InvalidArgumentError) throw new UsageError(e.message);
    throw e;
  }
}

/**
 * A positive integer flag.
 * @param values The parsed values.
 * @param name The flag.
 * @param max The largest value accepted.
 * @returns The value, or `undefined` when absent.
 * @throws {UsageError} when it is not an integer in `1..max`.
 */
export function intFlag(
  values: ParsedArgs["values"],
  name: string,
  max = 1_000_000,
): number | undefined {
  return asUsage(() => readOptions({ value: integer(1, max, name) }, values, "flags").value);
}

/**
 * Parses `HOST:PORT` (IPv6 as `[::1]:8787`).
 * @param text The text.
 * @returns The host name and port.
 * @throws {UsageError} when malformed.
 */
export function parseListen(text: string): { hostname: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s[\]]+)):([0-9]{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65_535) {
    throw new UsageError(
      `--listen must be HOST:PORT (e.g. 127.0.0.1:8787 or [::1]:8787), got ${JSON.stringify(text)}`,
    );
  }
  return { hostname: m[1] ?? m[2]!, port };
}
