/**
 * Progress bars for long work (`put --from`, `get --to`, `rebuild`), drawn
 * on stderr with `cli-progress`, and only when stderr is a terminal: piped
 * or redirected output gets no bar and no control characters, and
 * `--quiet` silences them everywhere.
 *
 * @module
 */

import cliProgress from "cli-progress";
import process from "node:process";
import type { EventBus } from "../store/events.ts";
import { formatBytes } from "./_output.ts";

/** A progress bar; every method is a no-op when no bar is drawn. */
export interface Progress {
  /**
   * Draws the bar.
   * @param total The work to do.
   * @param payload The extra fields of the format.
   */
  start(total: number, payload?: Record<string, string | number>): void;
  /**
   * Moves the bar to `value`.
   * @param value Work done.
   * @param payload The extra fields of the format.
   */
  update(value: number, payload?: Record<string, string | number>): void;
  /**
   * Changes the total (when it becomes known late).
   * @param total The work to do.
   */
  setTotal(total: number): void;
  /** Removes the bar from the screen. */
  stop(): void;
}

/** The part of a `cli-progress` SingleBar the CLI uses (the package ships no types). */
interface SingleBar {
  start(total: number, value: number, payload?: Record<string, unknown>): void;
  update(value: number, payload?: Record<string, unknown>): void;
  setTotal(total: number): void;
  stop(): void;
}

const NO_PROGRESS: Progress = {
  start() {},
  update() {},
  setTotal() {},
  stop() {},
};

/**
 * Whether a bar would be drawn: stderr is a terminal and not `--quiet`.
 * @param quiet The `--quiet` flag.
 * @returns The answer.
 */
export function progressEnabled(quiet: boolean): boolean {
  if (quiet) return false;
  try {
    return Deno.stderr.isTerminal();
  } catch {
    return false;
  }
}

/**
 * Creates a progress bar, or a silent stand-in when stderr is not a
 * terminal or `quiet` is set.
 *
 * @param format The `cli-progress` format, e.g.
 *   `"put  {bar} {value}/{total} files | {bytes} | ETA {eta_formatted}"`.
 * @param quiet The `--quiet` flag.
 * @returns The bar.
 */
export function createProgress(format: string, quiet: boolean): Progress {
  if (!progressEnabled(quiet)) return NO_PROGRESS;
  const Bar = (cliProgress as { SingleBar: new (o: object, p: object) => SingleBar }).SingleBar;
  const presets = (cliProgress as { Presets: Record<string, object> }).Presets;
  const bar = new Bar({
    format,
    stream: process.stderr,
    hideCursor: true,
    clearOnComplete: true,
    barsize: 30,
    etaBuffer: 20,
    fps: 5,
  }, presets["shades_classic"] ?? {});
  let started = false;
  return {
    start(total, payload = {}) {
      bar.start(total, 0, payload);
      started = true;
    },
    update(value, payload) {
      if (started) bar.update(value, payload);
    },
    setTotal(total) {
      if (started) bar.setTotal(total);
    },
    stop() {
      if (started) bar.stop();
      started = false;
    },
  };
}

/**
 * Drives a bar from a maintenance agent's `maintenance.progress` events
 * (published at least once a second with `done` and `total`): packs done and
 * to do, the rate, the ETA, and the manifests indexed so far.
 *
 * @param bus The bus the agent publishes on.
 * @param quiet The `--quiet` flag.
 * @returns A function that removes the bar and unsubscribes.
 */
export function maintenanceProgress(bus: EventBus, quiet: boolean): () => void {
  if (!progressEnabled(quiet)) return () => {};
  const bar = createProgress(
    "{agent} {bar} {value}/{total} packs | {rate} packs/s | {manifests} manifests | ETA {eta_formatted}",
    quiet,
  );
  let startedAt = 0;
  let shown = false;
  const off = bus.subscribe((e) => {
    if (e.type === "maintenance.started") {
      startedAt = e.at;
      return;
    }
    if (e.type !== "maintenance.progress") return;
    const done = e.done ?? 0;
    const total = e.total ?? 0;
    const secs = Math.max((e.at - (startedAt || e.at)) / 1000, 0.001);
    const payload = {
      agent: e.agent,
      rate: (done / secs).toFixed(done / secs >= 100 ? 0 : 1),
      manifests: Number(e.stats["manifestsIndexed"] ?? 0),
    };
    if (!shown) {
      bar.start(Math.max(total, 1), payload);
      shown = true;
    } else bar.setTotal(Math.max(total, 1));
    bar.update(done, payload);
  }, { types: ["maintenance.started", "maintenance.progress"] });
  return () => {
    off();
    bar.stop();
  };
}

/**
 * The payload of a {@linkcode transferFormat} bar.
 * @param bytes The bytes moved so far.
 * @returns The payload.
 */
export function bytesPayload(bytes: number): { bytes: string } {
  return { bytes: formatBytes(bytes) };
}

/**
 * The format of a files-and-bytes bar.
 * @param verb What is done (`put`, `get`).
 * @returns The format.
 */
export function transferFormat(verb: string): string {
  return `${verb} {bar} {value}/{total} files | {bytes} | ETA {eta_formatted}`;
}
