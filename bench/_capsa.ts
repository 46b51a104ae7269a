/**
 * The `capsa` command line every benchmark runs as a whole process: the
 * README's `capsa` for a local store, with the tests' permissions.
 *
 * @module
 */

import { CLI, PROCESS_FLAGS } from "../tests/processes.ts";

/** `deno` arguments that run the `capsa` CLI: put the command's own arguments after them. */
export const CAPSA: readonly string[] = ["run", ...PROCESS_FLAGS, CLI];
