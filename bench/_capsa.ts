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
