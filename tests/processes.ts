/**
 * capsa as real OS processes, for the tests whose subject is what happens
 * between processes: the `capsa` CLI (`deno run cli.ts …`) and test
 * fixtures, each optionally under `faketime` so that its wall clock runs
 * ahead of or behind the others'.
 *
 * Every CLI call here names its host directory (`--host-dir`): a test
 * decides which processes share one (the same host) and which do not
 * (other hosts), and nothing is written to the user's cache directory.
 *
 * @module
 */

/** The repository root. */
export const ROOT: string = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
/** The CLI entry point. */
export const CLI = `${ROOT}/cli.ts`;

/**
 * The permissions of every process started here: files, the environment
 * (S3 credentials), loopback (the S3 test server, `capsa serve`) and the
 * host name (the lease records it).
 */
export const PROCESS_FLAGS: readonly string[] = [
  "--no-prompt",
  "--config",
  `${ROOT}/deno.json`,
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-net=127.0.0.1",
  "--allow-sys",
];

const dec = new TextDecoder();

/** How a process is started. */
export interface ProcessOptions {
  /** Bytes written to its stdin, which is then closed (default: no stdin). */
  stdin?: Uint8Array;
  /**
   * Shifts its wall clock with `faketime`, e.g. `"+20m"` or `"-20m"`
   * (default: the real clock). Call {@linkcode requireFaketime} first.
   */
  clockOffset?: string;
  /** Added to its environment. */
  env?: Record<string, string>;
  /** Its working directory (default the repository root). */
  cwd?: string;
}

/** What a finished process left. */
export interface ProcessResult {
  /** The exit code. */
  code: number;
  /** Stdout as text. */
  stdout: string;
  /** Stdout as bytes (for `capsa get`). */
  bytes: Uint8Array;
  /** Stderr as text. */
  stderr: string;
}

let faketimeChecked: Promise<void> | undefined;

let denoDirOnce: Promise<string> | undefined;

/**
 * Deno's own cache directory (`DENO_DIR`, else what `deno info` says). A test
 * that points XDG_CACHE_HOME (where capsa keeps host directories) at a sandbox
 * would also move Deno's cache there, and the CLI would fetch every dependency
 * again: passing DENO_DIR keeps it where the dependencies already are.
 * @returns The directory.
 */
export function denoDir(): Promise<string> {
  denoDirOnce ??= (async () =>
    Deno.env.get("DENO_DIR") ??
      JSON.parse(
        new TextDecoder().decode(
          (await new Deno.Command(Deno.execPath(), { args: ["info", "--json"], stdout: "piped" })
            .output()).stdout,
        ),
      ).denoDir)();
  return denoDirOnce;
}

/**
 * Fails, with the command that installs it, when `faketime` is missing: the
 * tests that shift a process's clock must not pass by skipping.
 */
export function requireFaketime(): Promise<void> {
  faketimeChecked ??= (async () => {
    try {
      const r = await new Deno.Command("faketime", {
        args: ["-f", "+0", "true"],
        stdout: "null",
        stderr: "piped",
      }).output();
      if (!r.success) {
        throw new Error(`faketime does not run: ${dec.decode(r.stderr).trim()}`);
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
      throw new Error(
        "faketime is not installed, and these tests run processes whose clocks are shifted: " +
          "install it (Debian/Ubuntu: `apt-get install faketime`; .ci/run does so)",
      );
    }
  })();
  return faketimeChecked;
}

/**
 * The command running `deno run <flags> <args…>`, under `faketime` when the
 * options shift the clock.
 * @param args The script and its arguments.
 * @param options Stdin, clock offset, environment, working directory.
 * @returns The command (not started).
 */
export function denoRun(args: readonly string[], options: ProcessOptions = {}): Deno.Command {
  const deno = ["run", ...PROCESS_FLAGS, ...args];
  const shifted = options.clockOffset !== undefined;
  return new Deno.Command(shifted ? "faketime" : Deno.execPath(), {
    args: shifted ? ["-f", options.clockOffset!, Deno.execPath(), ...deno] : deno,
    cwd: options.cwd ?? ROOT,
    env: {
      NO_COLOR: "1",
      // A constant offset is all these tests need; a shifted monotonic clock could go negative.
      ...(shifted ? { FAKETIME_DONT_FAKE_MONOTONIC: "1" } : {}),
      ...options.env,
    },
    stdin: options.stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  });
}

/**
 * Runs a process to its end.
 * @param args The script and its arguments (see {@linkcode denoRun}).
 * @param options Stdin, clock offset, environment, working directory.
 * @returns Its exit code and output.
 */
export function runDeno(
  args: readonly string[],
  options: ProcessOptions = {},
): Promise<ProcessResult> {
  return runToEnd(denoRun(args, options), options.stdin);
}

/**
 * Spawns a command whose stdin is piped when `stdin` is given (and null
 * otherwise), writes `stdin` and closes it, and collects the output.
 * @param command The command, with stdout and stderr piped.
 * @param stdin The bytes for its stdin, if any.
 * @returns Its exit code and output.
 */
export async function runToEnd(command: Deno.Command, stdin?: Uint8Array): Promise<ProcessResult> {
  const child = command.spawn();
  if (stdin) {
    const w = child.stdin.getWriter();
    await w.write(stdin);
    await w.close();
  }
  const r = await child.output();
  return {
    code: r.code,
    stdout: dec.decode(r.stdout),
    bytes: r.stdout,
    stderr: dec.decode(r.stderr),
  };
}

/**
 * Runs `capsa ARGS…` to its end.
 * @param args The command line after `capsa` (include `--host-dir`).
 * @param options Stdin, clock offset, environment, working directory.
 * @returns Its exit code and output.
 */
export function capsa(
  args: readonly string[],
  options: ProcessOptions = {},
): Promise<ProcessResult> {
  return runDeno([CLI, ...args], options);
}

/**
 * Runs `capsa ARGS…` and insists on exit code 0.
 * @param args The command line after `capsa` (include `--host-dir`).
 * @param options Stdin, clock offset, environment, working directory.
 * @returns Its output.
 * @throws {Error} naming the command and its stderr when it fails.
 */
export async function capsaOk(
  args: readonly string[],
  options: ProcessOptions = {},
): Promise<ProcessResult> {
  const r = await capsa(args, options);
  if (r.code !== 0) {
    throw new Error(`capsa ${args.join(" ")} exited ${r.code}: ${r.stderr.trim()}`);
  }
  return r;
}

/**
 * Kills a child process if it still runs and waits for its end; its pipes
 * are drained so that nothing is left open.
 * @param child The process.
 */
export async function killProcess(child: Deno.ChildProcess): Promise<void> {
  try {
    child.kill("SIGKILL");
  } catch {
    // It has already exited.
  }
  await child.status;
  for (const stream of [child.stdout, child.stderr]) {
    await stream.cancel().catch(() => {});
  }
}
