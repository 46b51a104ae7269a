/**
 * Where the CLI takes passphrases from (docs/OPERATIONS.md "Encryption"):
 * `--passphrase-file FILE`, else the `CAPSA_PASSPHRASE` environment variable,
 * else a prompt when stdin is a terminal — never the command line, where
 * other users and shell histories can read it. A new passphrase (`init
 * --encrypt`, `key add`, `key passwd`) comes from `--new-passphrase-file`,
 * `CAPSA_NEW_PASSPHRASE` or a prompt asked twice.
 *
 * @module
 */

import { CapsaError } from "../errors.ts";
import {
  DEFAULT_KDF,
  type KdfCost,
  kdfCostProblem,
  PassphraseRequiredError,
} from "../format/crypto.ts";
import { UsageError } from "./_output.ts";

/** The environment variable of the passphrase. */
export const PASSPHRASE_ENV = "CAPSA_PASSPHRASE";
/** The environment variable of a new passphrase. */
export const NEW_PASSPHRASE_ENV = "CAPSA_NEW_PASSPHRASE";

function env(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch (e) {
    if (e instanceof Deno.errors.NotCapable) return undefined;
    throw e;
  }
}

/**
 * Reads a passphrase file: its content without one trailing line ending.
 * @param path The file. @param flag Its flag, for messages.
 * @param warn Where a warning about a file others can read goes.
 * @returns The passphrase.
 */
export async function readPassphraseFile(
  path: string,
  flag: string,
  warn: (code: string, message: string) => void,
): Promise<string> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
    const info = await Deno.stat(path);
    if (info.mode !== null && (info.mode & 0o077) !== 0) {
      warn(
        "passphrase_file_readable",
        `${path} can be read by other users: chmod 600 ${path}`,
      );
    }
  } catch (e) {
    throw new UsageError(`${flag} ${path}: ${e instanceof Error ? e.message : String(e)}`);
  }
  const passphrase = text.replace(/\r?\n$/, "");
  if (passphrase === "") throw new UsageError(`${flag} ${path} is empty`);
  return passphrase;
}

/** Reads a line from a terminal without echoing it. */
async function promptHidden(question: string): Promise<string> {
  const enc = new TextEncoder();
  await Deno.stderr.write(enc.encode(question));
  Deno.stdin.setRaw(true);
  const bytes: number[] = [];
  const buf = new Uint8Array(64);
  try {
    outer: for (;;) {
      const n = await Deno.stdin.read(buf);
      if (n === null) break;
      for (const b of buf.subarray(0, n)) {
        if (b === 13 || b === 10) break outer;
        if (b === 3) throw new CapsaError("aborted", "interrupted at the passphrase prompt");
        if (b === 127 || b === 8) bytes.pop();
        else bytes.push(b);
      }
    }
  } finally {
    Deno.stdin.setRaw(false);
    await Deno.stderr.write(enc.encode("\n"));
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}

function canPrompt(): boolean {
  try {
    return Deno.stdin.isTerminal() && Deno.stderr.isTerminal();
  } catch {
    return false;
  }
}

/** Resolves the passphrase of an encrypted store, once per command. */
export class Passphrases {
  readonly #file: string | undefined;
  readonly #newFile: string | undefined;
  readonly #warn: (code: string, message: string) => void;
  #cached: string | undefined;

  /**
   * @param files `--passphrase-file` and `--new-passphrase-file`.
   * @param warn Where warnings go.
   */
  constructor(
    files: { file?: string | undefined; newFile?: string | undefined },
    warn: (code: string, message: string) => void,
  ) {
    this.#file = files.file;
    this.#newFile = files.newFile;
    this.#warn = warn;
  }

  /**
   * The passphrase from the file or the environment, without prompting.
   * @returns It, or `undefined`.
   */
  async given(): Promise<string | undefined> {
    if (this.#cached !== undefined) return this.#cached;
    if (this.#file !== undefined) {
      this.#cached = await readPassphraseFile(this.#file, "--passphrase-file", this.#warn);
    } else this.#cached = env(PASSPHRASE_ENV);
    return this.#cached;
  }

  /**
   * The passphrase: given, else asked on the terminal.
   * @returns It.
   * @throws {PassphraseRequiredError} when none is given and there is no terminal.
   */
  async get(): Promise<string> {
    const given = await this.given();
    if (given !== undefined) return given;
    if (!canPrompt()) throw new PassphraseRequiredError();
    const typed = await promptHidden("passphrase: ");
    if (typed === "") throw new PassphraseRequiredError("an empty passphrase was typed");
    this.#cached = typed;
    return typed;
  }

  /**
   * A new passphrase: `--new-passphrase-file`, `CAPSA_NEW_PASSPHRASE`, else
   * asked twice on the terminal. For `init --encrypt`, `--passphrase-file`
   * and `CAPSA_PASSPHRASE` are accepted too.
   * @param forInit Whether the store is being created.
   * @returns It.
   */
  async newOne(forInit: boolean): Promise<string> {
    if (this.#newFile !== undefined) {
      return await readPassphraseFile(this.#newFile, "--new-passphrase-file", this.#warn);
    }
    const fromEnv = env(NEW_PASSPHRASE_ENV);
    if (fromEnv !== undefined) return fromEnv;
    if (forInit) {
      const given = await this.given();
      if (given !== undefined) return given;
    }
    if (!canPrompt()) {
      if (forInit) throw new PassphraseRequiredError("an encrypted store needs a passphrase");
      throw new CapsaError(
        "passphrase_required",
        "the new key slot needs a passphrase: give it in CAPSA_NEW_PASSPHRASE, with " +
          "--new-passphrase-file FILE, or at the prompt on a terminal",
      );
    }
    const first = await promptHidden(
      forInit ? "passphrase for the new store: " : "new passphrase: ",
    );
    if (first === "") throw new UsageError("an empty passphrase is refused");
    const second = await promptHidden("again: ");
    if (first !== second) throw new UsageError("the two passphrases differ: nothing was changed");
    return first;
  }
}

/**
 * Parses `--kdf m=KiB,t=N,p=N` (any order, each optional).
 * @param text The flag's value.
 * @returns The cost.
 */
export function parseKdf(text: string): KdfCost {
  const cost: { memoryKiB: number; iterations: number; parallelism: number } = { ...DEFAULT_KDF };
  for (const part of text.split(",")) {
    const m = /^([mtp])=([0-9]{1,10})$/.exec(part.trim());
    if (m === null) {
      throw new UsageError(`--kdf must be like m=65536,t=3,p=1, got ${JSON.stringify(text)}`);
    }
    const n = Number(m[2]);
    if (m[1] === "m") cost.memoryKiB = n;
    else if (m[1] === "t") cost.iterations = n;
    else cost.parallelism = n;
  }
  const problem = kdfCostProblem(cost);
  if (problem !== undefined) throw new UsageError(`--kdf: ${problem}`);
  return cost;
}
