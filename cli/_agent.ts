/**
 * What the maintenance commands (`rebuild`, `verify`, `migrate`, `move`)
 * share: running an agent with a progress bar driven by its
 * `maintenance.progress` events, Ctrl-C wired to its AbortSignal (lease
 * released, the store as it was), and its stats as a table.
 *
 * @module
 */

import { CapsaError } from "../errors.ts";
import type { MaintenanceAgent } from "../maintenance/mod.ts";
import type { Store } from "../store/store.ts";
import { type Output, table } from "./_output.ts";
import { maintenanceProgress } from "./_progress.ts";
import type { CommandContext } from "./_store.ts";

/**
 * Validates and runs an agent with a progress bar on a terminal.
 * @param agent The agent.
 * @param store Its store (whose bus drives the progress bar).
 * @param out Whether progress is quiet.
 * @param signal Stops the agent.
 * @returns The agent, for its stats and problems.
 */
export async function runAgent<A extends MaintenanceAgent>(
  agent: A,
  store: Store,
  out: Output,
  signal: AbortSignal,
): Promise<A> {
  agent.validate();
  const stopBar = maintenanceProgress(store.bus, out.quiet);
  try {
    await agent.run({ signal });
  } finally {
    stopBar();
  }
  return agent;
}

/**
 * Runs `fn` with Ctrl-C wired to the signal it receives: the first Ctrl-C
 * aborts it (the agent stops cleanly and releases the lease), a second one
 * quits at once.
 * @param ctx Where the "stopping" note goes.
 * @param what What is running, e.g. `"verification"`.
 * @param fn The work.
 * @param stopped The message of the `aborted` error the command then fails with.
 * @returns What `fn` returns.
 */
export async function withInterrupt<T>(
  ctx: CommandContext,
  what: string,
  fn: (signal: AbortSignal) => Promise<T>,
  stopped = `${what} stopped by Ctrl-C: the lease is released; run it again`,
): Promise<T> {
  const stop = new AbortController();
  let interrupts = 0;
  const onSigint = () => {
    if (++interrupts > 1) Deno.exit(130); // a second Ctrl-C: stop now, whatever state
    ctx.out.note(`stopping the ${what} (Ctrl-C again to quit at once)…`);
    stop.abort(new CapsaError("aborted", stopped));
  };
  Deno.addSignalListener("SIGINT", onSigint);
  try {
    return await fn(stop.signal);
  } catch (e) {
    if (stop.signal.aborted) throw stop.signal.reason;
    throw e;
  } finally {
    Deno.removeSignalListener("SIGINT", onSigint);
  }
}

/**
 * An agent's stats as indented `name  value` lines.
 * @param stats The stats.
 * @returns The lines.
 */
export function statsLines(stats: object): string[] {
  return table(Object.entries(stats).map(([k, v]) => [k, String(v)] as const), 2);
}
