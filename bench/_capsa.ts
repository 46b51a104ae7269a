/**
 * The `capsa` command line every benchmark runs as a whole process: the
 * README's `capsa` for a local store, with the tests' permissions.
 *
 * @module
 */

import { CLI, PROCESS_FLAGS } from "../tests/processes.ts";

/** `deno` arguments that run the `capsa` CLI: put the command's own arguments after them. */
export const CAPSA: readonly string[] = ["run", ...PROCESS_FLAGS, CLI];

/**
 * The peak RSS of a finished child: what `/usr/bin/time -f %M -o FILE`
 * wrote to `rssFile` (KiB; the file is removed), else the highest `VmHWM`
 * polled from `/proc` while it ran.
 * @param rssFile The file `/usr/bin/time` wrote, if it was used.
 * @param polled The polled peak in bytes (0 when none).
 * @returns The peak in bytes, or `undefined` when unknown.
 */
export async function peakRss(
  rssFile: string | undefined,
  polled: number,
): Promise<number | undefined> {
  if (!rssFile) return polled || undefined;
  const lines = (await Deno.readTextFile(rssFile)).trim().split("\n");
  const kib = Number(lines[lines.length - 1]);
  await Deno.remove(rssFile);
  return Number.isFinite(kib) && kib > 0 ? kib * 1024 : undefined;
}

/** Whether GNU `/usr/bin/time -f %M` works here (it reports a child's peak RSS exactly). */
export const GNU_TIME: boolean = await (async () => {
  const probe = await Deno.makeTempFile();
  try {
    const r = await new Deno.Command("/usr/bin/time", {
      args: ["-f", "%M", "-o", probe, "true"],
      stdout: "null",
      stderr: "null",
    }).output();
    return r.success && /^\d+\s*$/m.test(await Deno.readTextFile(probe));
  } catch {
    return false;
  } finally {
    await Deno.remove(probe);
  }
})();

/** One finished process, as {@linkcode runMeasured} saw it. */
export interface MeasuredRun {
  /** Wall time from spawn to exit, seconds. */
  s: number;
  /** Peak resident set, bytes (undefined when it could not be read). */
  rss: number | undefined;
  /** The exit code. */
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs a whole process to its end, timing it and taking its peak RSS
 * (`/usr/bin/time` when {@linkcode GNU_TIME}, else `VmHWM` polled every 20 ms).
 * With `stdinFrom`, that file's bytes are piped into its stdin (as
 * `cat FILE | …`: from the page cache, so the producer costs a copy).
 * @param program The program. @param args Its arguments.
 * @param options Environment, working directory, stdin file, and where
 *   `/usr/bin/time` writes (a directory for a temporary file).
 * @returns Time, peak RSS, exit code and output.
 */
export async function runMeasured(
  program: string,
  args: readonly string[],
  options: { env?: Record<string, string>; cwd?: string; stdinFrom?: string; tmpDir?: string } = {},
): Promise<MeasuredRun> {
  const rssFile = GNU_TIME
    ? await Deno.makeTempFile(options.tmpDir === undefined ? {} : { dir: options.tmpDir })
    : undefined;
  const t0 = performance.now();
  const child = new Deno.Command(rssFile ? "/usr/bin/time" : program, {
    args: rssFile ? ["-f", "%M", "-o", rssFile, program, ...args] : [...args],
    env: options.env ?? {},
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    stdin: options.stdinFrom === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let polled = 0;
  const poll = rssFile ? undefined : setInterval(async () => {
    try {
      const hwm = /^VmHWM:\s+(\d+) kB/m.exec(await Deno.readTextFile(`/proc/${child.pid}/status`));
      if (hwm) polled = Math.max(polled, Number(hwm[1]) * 1024);
    } catch { /* gone */ }
  }, 20);
  const output = child.output();
  if (options.stdinFrom !== undefined) {
    const source = await Deno.open(options.stdinFrom, { read: true });
    await source.readable.pipeTo(child.stdin).catch(() => {
      // The child exited early: its stderr says why.
    });
  }
  const out = await output;
  const s = (performance.now() - t0) / 1000;
  if (poll !== undefined) clearInterval(poll);
  const dec = new TextDecoder();
  return {
    s,
    rss: await peakRss(rssFile, polled),
    code: out.code,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
  };
}
