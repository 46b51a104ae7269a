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
import { formatBytes, formatDuration, type Output, table } from "./_output.ts";
import { maintenanceProgress } from "./_progress.ts";
import { type CommandContext, withStore } from "./_store.ts";

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
  signal?: AbortSignal,
): Promise<A> {
  agent.validate();
  const stopBar = maintenanceProgress(store.bus, out.quiet);
  try {
    await agent.run(signal === undefined ? {} : { signal });
  } finally {
    stopBar();
  }
  return agent;
}

/** Options of {@linkcode runAgentCommand}. */
export interface AgentCommandOptions {
  /** What runs, for the Ctrl-C note, e.g. `"verification"`. */
  what: string;
  /** The agent breaks a live lease: warned about first. */
  force?: boolean | undefined;
  /** Open a Corrupted store too (what a rebuild is for). */
  allowCorrupted?: boolean;
  /** Open the store without its index (a rebuild builds its own): `StoreOptions.deferIndex`. */
  deferIndex?: boolean;
  /** The message of the `aborted` error after a Ctrl-C (default: see {@linkcode withInterrupt}). */
  stopped?: string;
}

/**
 * The body of a maintenance command: opens the store at `location`, creates
 * the agent, runs it with a progress bar and Ctrl-C wired to its signal, and
 * returns what `report` makes of it once it has run.
 * @param ctx Output and global flags.
 * @param location The store's Location.
 * @param create Creates the agent on the opened store.
 * @param report What the command reports of the agent (read before the store closes).
 * @param options What runs, `force`, whether a Corrupted store is opened.
 * @returns The report.
 */
export async function runAgentCommand<A extends MaintenanceAgent, R>(
  ctx: CommandContext,
  location: string,
  create: (store: Store) => A,
  report: (agent: A) => R,
  options: AgentCommandOptions,
): Promise<R> {
  return await withInterrupt(
    ctx,
    options.what,
    (signal) =>
      withStore(ctx, location, async (store) => {
        if (options.force) {
          ctx.out.warn(
            "force",
            "--force breaks a live maintenance lease: be sure its holder is gone",
          );
        }
        return report(await runAgent(create(store), store, ctx.out, signal));
      }, {
        allowCorrupted: options.allowCorrupted ?? false,
        deferIndex: options.deferIndex ?? false,
      }),
    options.stopped,
  );
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
 * An agent's stats as indented `name  value` lines, with units for people:
 * `duration` (milliseconds in the stats and in `--json`) as `1.6 s`, a byte
 * count (`bytes…`, `…Bytes`) as `1048576 (1.0 MiB)`.
 * @param stats The stats.
 * @returns The lines.
 */
export function statsLines(stats: object): string[] {
  return table(Object.entries(stats).map(([k, v]) => [k, statValue(k, v)] as const), 2);
}

/** One stat as text. @param name Its name. @param value Its value. @returns The text. */
function statValue(name: string, value: unknown): string {
  if (typeof value !== "number") return String(value);
  if (name === "duration" || /^duration|Ms$/.test(name)) return formatDuration(value);
  if (/^bytes|Bytes$/.test(name)) return `${value} (${formatBytes(value)})`;
  return String(value);
}
