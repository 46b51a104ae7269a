/**
 * What the CLI prints and how it exits: results on stdout (human text, or
 * exactly one JSON document with `--json`), notes and warnings on stderr,
 * errors as one line `capsa: <code>: <message>` (or `{"error":{…}}` on
 * stdout with `--json`), and the exit code each error maps to.
 *
 * @module
 */

import { CapsaError, ERROR_CODES, EXIT_CODES, isErrorCode } from "../errors.ts";

/**
 * The exit codes of every command (documented in `--help` and
 * docs/OPERATIONS.md); each error code's exit code is in `ERROR_CODES`.
 */
export const EXIT = EXIT_CODES;

/** The exit-code table as printed by `capsa --help`. */
export const EXIT_CODES_HELP = `exit codes:
  0  done
  1  failed (the error line says what to do next)
  2  usage error (unknown command or flag, missing or malformed argument)
  3  problems found (verify)
  4  the maintenance lease is held by another holder (wait, or rebuild --force if it is gone)
  5  the store is corrupted (run: capsa rebuild LOCATION --kit RECOVERY_KIT)
  6  the store is encrypted and the passphrase is wrong or missing`;

/**
 * A malformed command line: exit code 2.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { UsageError } from "./_output.ts";
 * assert.deepEqual(new UsageError("missing LOCATION").code, "usage");
 * ```
 */
export class UsageError extends CapsaError {
  /**
   * Creates the error.
   * @param message What is wrong with the command line, and how to get help.
   */
  constructor(message: string) {
    super("usage", message);
  }
}

/**
 * Maps an error to the exit code of the command that failed with it: the
 * `exit` of its code in `ERROR_CODES` (`errors.ts`), 1 for anything else.
 *
 * @param error What was thrown.
 * @returns The exit code (see {@linkcode EXIT}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { exitCodeOf, UsageError } from "./_output.ts";
 * assert.deepEqual(exitCodeOf(new UsageError("x")), 2);
 * ```
 */
export function exitCodeOf(error: unknown): number {
  if (error instanceof CapsaError && isErrorCode(error.code)) return ERROR_CODES[error.code].exit;
  return EXIT.failed;
}

/**
 * The `{code, message}` of an error as the CLI reports it: capsa's own code
 * for a {@linkcode CapsaError}, a stable code for Deno's errors, `internal`
 * for anything else. Messages are one line.
 *
 * @param error What was thrown.
 * @returns The code and the one-line message.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { describeError } from "./_output.ts";
 * assert.deepEqual(describeError(new Error("boom")).code, "internal");
 * ```
 */
export function describeError(error: unknown): { code: string; message: string } {
  const oneLine = (s: string) => s.replace(/\s*\n\s*/g, " ").trim();
  if (error instanceof CapsaError) return { code: error.code, message: oneLine(error.message) };
  if (error instanceof Deno.errors.NotCapable) {
    return {
      code: "permission_denied",
      message: oneLine(
        `${error.message}: grant that Deno permission (see docs/OPERATIONS.md, "Permissions")`,
      ),
    };
  }
  if (error instanceof Deno.errors.PermissionDenied) {
    return {
      code: "permission_denied",
      message: oneLine(`${error.message}: check the file's owner and mode`),
    };
  }
  if (error instanceof Deno.errors.BrokenPipe) {
    return { code: "broken_pipe", message: "the output was closed before everything was written" };
  }
  // Deno's other system errors (NotFound, IsADirectory, AddrInUse…): their name, in snake case.
  const deno = Object.entries(Deno.errors).find(([, cls]) => error instanceof cls);
  if (deno) {
    const code = deno[0].replace(/([a-z])([A-Z])/g, "$1_$2").replace(
      /([A-Z])([A-Z][a-z])/g,
      "$1_$2",
    )
      .toLowerCase();
    return { code, message: oneLine((error as Error).message) };
  }
  const message = error instanceof Error ? error.message : String(error);
  return {
    code: "internal",
    message: oneLine(`${message} (an unexpected error: please report it with the command you ran)`),
  };
}

const enc = new TextEncoder();

/**
 * Stdout was closed by its reader (`capsa ls S ns | head -1`): the command
 * stops writing and exits 0 without a word, as every Unix filter does. Only
 * {@linkcode Output} throws it, so a closed pipe elsewhere is still an error.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { OutputClosed } from "./_output.ts";
 * assert.ok(new OutputClosed() instanceof Error);
 * ```
 */
export class OutputClosed extends Error {
  /** Creates the signal. */
  constructor() {
    super("stdout was closed by its reader");
    this.name = "OutputClosed";
  }
}

/**
 * Writes all of `bytes` to a Deno writer (stdout or stderr), synchronously,
 * so output is never lost when the process exits right after.
 * @param w The writer.
 * @param bytes The bytes.
 */
function writeAllSync(w: { writeSync(p: Uint8Array): number }, bytes: Uint8Array): void {
  let at = 0;
  while (at < bytes.length) at += w.writeSync(bytes.subarray(at));
}

/** Options of {@linkcode Output}. */
export interface OutputOptions {
  /** One JSON document on stdout, nothing else there. */
  json?: boolean;
  /** No progress and no notes on stderr. */
  quiet?: boolean;
}

/**
 * The CLI's output channel. Commands emit their result once, through
 * {@linkcode Output.result}; everything else goes to stderr.
 *
 * @example
 * ```ts
 * import { Output } from "./_output.ts";
 * const out = new Output({ json: false, quiet: true });
 * out.result({ ok: true }, () => "ok");
 * ```
 */
export class Output {
  /** Whether stdout carries one JSON document. */
  readonly json: boolean;
  /** Whether progress and notes are silenced. */
  readonly quiet: boolean;
  #emitted = false;

  /**
   * Creates the channel.
   * @param options JSON and quiet modes.
   */
  constructor(options: OutputOptions = {}) {
    this.json = options.json ?? false;
    this.quiet = options.quiet ?? false;
  }

  /** Whether a result (or the start of a streamed one) was written. @returns The flag. */
  get emitted(): boolean {
    return this.#emitted;
  }

  /**
   * Writes the command's result: `value` as JSON with `--json`, else the
   * text `human` returns (skipped entirely with `--quiet` when `quietText`
   * is false).
   * @param value The JSON document.
   * @param human The human text (lines), computed only when needed.
   * @param options Whether the text is the command's output proper (printed even with `--quiet`).
   */
  result(
    value: unknown,
    human: () => string | string[],
    options: { essential?: boolean } = {},
  ): void {
    this.#emitted = true;
    if (this.json) {
      this.stdout(JSON.stringify(value, null, 2) + "\n");
      return;
    }
    if (this.quiet && !options.essential) return;
    const text = human();
    const lines = Array.isArray(text) ? text.join("\n") : text;
    if (lines !== "") this.stdout(lines.endsWith("\n") ? lines : lines + "\n");
  }

  /** Marks the result as started (a command that streams its result itself). */
  markEmitted(): void {
    this.#emitted = true;
  }

  /**
   * Writes text to stdout.
   * @param text The text.
   * @throws {OutputClosed} when the reader closed stdout.
   */
  stdout(text: string): void {
    try {
      writeAllSync(Deno.stdout, enc.encode(text));
    } catch (e) {
      if (e instanceof Deno.errors.BrokenPipe) throw new OutputClosed();
      throw e;
    }
  }

  /**
   * Writes bytes to stdout (a body streamed by `capsa get`).
   * @param bytes The bytes.
   * @throws {OutputClosed} when the reader closed stdout.
   */
  async stdoutBytes(bytes: Uint8Array): Promise<void> {
    try {
      let at = 0;
      while (at < bytes.length) at += await Deno.stdout.write(bytes.subarray(at));
    } catch (e) {
      if (e instanceof Deno.errors.BrokenPipe) throw new OutputClosed();
      throw e;
    }
  }

  /** Writes a line to stderr, unless `--quiet`. @param message The note. */
  note(message: string): void {
    if (!this.quiet) writeAllSync(Deno.stderr, enc.encode(`capsa: ${message}\n`));
  }

  /** Writes a warning line to stderr (even with `--quiet`). @param code A stable code. @param message What happened. */
  warn(code: string, message: string): void {
    writeAllSync(Deno.stderr, enc.encode(`capsa: warning: ${code}: ${message}\n`));
  }

  /**
   * Reports an error: one line on stderr, or with `--json` the document
   * `{"error":{"code","message"}}` on stdout (when no result was written).
   * @param error What was thrown.
   * @returns The exit code.
   */
  error(error: unknown): number {
    const { code, message } = describeError(error);
    if (this.json && !this.#emitted) {
      this.#emitted = true;
      this.stdout(JSON.stringify({ error: { code, message } }, null, 2) + "\n");
    } else {
      writeAllSync(Deno.stderr, enc.encode(`capsa: ${code}: ${message}\n`));
    }
    return exitCodeOf(error);
  }
}

/**
 * Formats a byte count for people: `0 B`, `12.3 KiB`, `4.0 MiB`…
 * @param n Bytes.
 * @returns The text.
 */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB", "PiB"];
  let v = n;
  let i = -1;
  do {
    v /= 1024;
    i++;
  } while (v >= 1024 && i < units.length - 1);
  return `${v.toFixed(1)} ${units[i]}`;
}

/**
 * Formats a duration for people: `850 ms`, `12.4 s`, `3 min 5 s`, `2 h 4 min`.
 * @param ms Milliseconds.
 * @returns The text.
 */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86_400)} d ${Math.floor((s % 86_400) / 3600)} h`;
}

/**
 * Formats two-column rows (`name   value`) aligned on the longest name.
 * @param rows The rows.
 * @param indent Spaces before each row.
 * @returns The lines.
 */
export function table(rows: ReadonlyArray<readonly [string, string]>, indent = 0): string[] {
  const width = Math.max(0, ...rows.map(([k]) => k.length));
  const pad = " ".repeat(indent);
  return rows.map(([k, v]) => `${pad}${k.padEnd(width)}  ${v}`);
}

/**
 * A version as the CLI prints it in `--json`: the library's fields
 * unchanged (`created` in milliseconds since the epoch, as in the library and
 * over HTTP, so scripts can compare and sort it) plus `createdAt`, the same
 * instant as ISO 8601 text, as the plain output shows it.
 * @param info A version (anything with `created`).
 * @returns The same fields plus `createdAt`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { withCreatedAt } from "./_output.ts";
 * assert.deepEqual(withCreatedAt({ created: 0 }).createdAt, "1970-01-01T00:00:00.000Z");
 * ```
 */
export function withCreatedAt<T extends { created: number }>(info: T): T & { createdAt: string } {
  return { ...info, createdAt: new Date(info.created).toISOString() };
}
