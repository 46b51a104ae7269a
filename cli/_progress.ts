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
import { formatBytes, formatDuration } from "./_output.ts";

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
 *   `"put {bar} {value}/{total} files | {bytes}{eta}"` (`{eta}`: see
 *   {@linkcode etaText}).
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
  let startedAt = 0;
  let total = 0;
  return {
    start(t, payload = {}) {
      startedAt = performance.now();
      total = t;
      bar.start(t, 0, { ...payload, eta: "" });
      started = true;
    },
    update(value, payload) {
      if (started) {
        bar.update(value, {
          ...payload,
          eta: etaText(value, total, performance.now() - startedAt),
        });
      }
    },
    setTotal(t) {
      total = t;
      if (started) bar.setTotal(t);
    },
    stop() {
      if (started) bar.stop();
      started = false;
    },
  };
}

/** How the bar names an agent's work: the command, the unit counted, what else it shows. */
const AGENT_BARS: Record<string, { label: string; unit: string; extra?: (s: Stats) => string }> = {
  RebuildIndex: {
    label: "rebuild",
    unit: "packs",
    extra: (s) => `${Number(s["manifestsIndexed"] ?? 0)} manifests indexed`,
  },
  Verify: {
    label: "verify",
    unit: "packs and loose blobs",
    extra: (s) => `${formatBytes(Number(s["bytesRead"] ?? 0))} read`,
  },
  GarbageCollect: {
    label: "gc",
    unit: "packs rewritten",
    extra: (s) => (typeof s["phase"] === "string" ? `phase ${s["phase"]}` : ""),
  },
  MigrateIndex: { label: "migrate", unit: "packs" },
  MoveStore: {
    label: "move",
    unit: "objects",
    extra: (s) => `${formatBytes(Number(s["bytesCopied"] ?? 0))} copied`,
  },
};

type Stats = Record<string, unknown>;

/**
 * The text of a maintenance bar after the bar itself, from one
 * `maintenance.progress` event: `done/total unit`, the rate, what else the
 * agent counts, and the ETA. The total is shown only once known (not
 * `0/1`), the rate once something is done, and the ETA only once there is a
 * rate to base it on (never `ETA NFs`).
 *
 * @param e The event's agent, stats, done and total.
 * @param elapsedMs Time since the agent started.
 * @returns The bar's label, its total (at least 1) and the text.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { maintenanceBarText } from "./_progress.ts";
 * const first = maintenanceBarText({ agent: "RebuildIndex", stats: {}, done: 0, total: 0 }, 10);
 * assert.deepEqual(first.text, "0 packs | 0 manifests indexed");
 * const later = maintenanceBarText(
 *   { agent: "RebuildIndex", stats: { manifestsIndexed: 40 }, done: 4, total: 8 },
 *   2000,
 * );
 * assert.deepEqual(later.text, "4/8 packs | 2.0 packs/s | 40 manifests indexed | ETA 2.0 s");
 * ```
 */
export function maintenanceBarText(
  e: { agent: string; stats: Stats; done?: number; total?: number },
  elapsedMs: number,
): { label: string; total: number; text: string } {
  const how = AGENT_BARS[e.agent] ?? { label: e.agent.toLowerCase(), unit: "steps" };
  const done = e.done ?? 0;
  const total = e.total ?? 0;
  const parts = [total > 0 ? `${done}/${total} ${how.unit}` : `${done} ${how.unit}`];
  const secs = elapsedMs / 1000;
  const unitWord = how.unit.split(" ")[0];
  if (done > 0 && secs >= 0.5) {
    const rate = done / secs;
    parts.push(`${rate.toFixed(rate >= 100 ? 0 : 1)} ${unitWord}/s`);
  }
  const extra = how.extra?.(e.stats) ?? "";
  if (extra !== "") parts.push(extra);
  if (done > 0 && total > done && secs >= 1) {
    parts.push(`ETA ${formatDuration((elapsedMs * (total - done)) / done)}`);
  }
  return { label: how.label, total: Math.max(total, done, 1), text: parts.join(" | ") };
}

/**
 * Drives a bar from a maintenance agent's `maintenance.progress` events
 * (published at least once a second with `done` and `total`): labelled with
 * the command (`rebuild`, `verify`, `gc`, `migrate`, `move`), counting what
 * the agent counts (see {@linkcode maintenanceBarText}).
 *
 * @param bus The bus the agent publishes on.
 * @param quiet The `--quiet` flag.
 * @returns A function that removes the bar and unsubscribes.
 */
export function maintenanceProgress(bus: EventBus, quiet: boolean): () => void {
  if (!progressEnabled(quiet)) return () => {};
  const bar = createProgress("{label} {bar} {text}", quiet);
  let startedAt = 0;
  let shown = false;
  const off = bus.subscribe((e) => {
    if (e.type === "maintenance.started") {
      startedAt = e.at;
      return;
    }
    if (e.type !== "maintenance.progress") return;
    const { label, total, text } = maintenanceBarText(e, e.at - (startedAt || e.at));
    if (!shown) {
      bar.start(total, { label, text });
      shown = true;
    } else bar.setTotal(total);
    bar.update(e.done ?? 0, { label, text });
  }, { types: ["maintenance.started", "maintenance.progress"] });
  return () => {
    off();
    bar.stop();
  };
}

/**
 * The ETA part of a bar (`{eta}` in its format): empty until it means
 * something, that is until some work is done and a second has passed (no
 * `ETA NFs` at 0 %, no wild guess from the first file), and once all is done.
 *
 * @param done Work done.
 * @param total The work to do.
 * @param elapsedMs Time since the bar started.
 * @returns `" | ETA 2.0 s"`, or `""`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { etaText } from "./_progress.ts";
 * assert.equal(etaText(0, 100, 5000), "");
 * assert.equal(etaText(50, 100, 500), "");
 * assert.equal(etaText(50, 100, 4000), " | ETA 4.0 s");
 * assert.equal(etaText(100, 100, 4000), "");
 * ```
 */
export function etaText(done: number, total: number, elapsedMs: number): string {
  if (done <= 0 || total <= done || elapsedMs < 1000) return "";
  return ` | ETA ${formatDuration((elapsedMs * (total - done)) / done)}`;
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
 * The format of a files-and-bytes bar; its ETA is {@linkcode etaText}.
 * @param verb What is done (`put`, `get`).
 * @returns The format.
 */
export function transferFormat(verb: string): string {
  return `${verb} {bar} {value}/{total} files | {bytes}{eta}`;
}
