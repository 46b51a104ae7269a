/**
 * `capsa status`: the store's health at a glance, with advice for every
 * state that needs an operator.
 *
 * @module
 */

import { ERROR_CODES, StoreMovedError } from "../../errors.ts";
import { decodeMovedMarker } from "../../format/markers.ts";
import { MOVED_KEY } from "../../layout.ts";
import type { StoreStatus } from "../../store/store.ts";
import { namePositionals, type ParsedArgs } from "../_args.ts";
import type { Command } from "../_command.ts";
import { EXIT, formatBytes, formatDuration, table } from "../_output.ts";
import { type CommandContext, openLocation, withStore } from "../_store.ts";

/** What `capsa status --json` prints: the store's status, plus what the CLI adds. */
export interface StatusReport extends StoreStatus {
  /** This host's directory for the store (`null` for none). */
  hostDir: string | null;
  /** How old the newest indexed pack is, in ms (`null` when the index is empty or unknown). */
  highWaterMarkAgeMs: number | null;
  /** Whether the lease (if any) is past its expiry. */
  leaseExpired: boolean | null;
  /** What to do next, when something needs doing. */
  advice: string[];
}

/**
 * What `capsa status` reports for a store that was moved away (`capsa
 * move`): the source only holds the marker naming the destination.
 */
export interface MovedReport {
  /** Always `Moved`. */
  state: "Moved";
  /** The Location as opened (the source). */
  location: string;
  /** Where the store lives now, as the move recorded it. */
  movedTo: string;
  /** The store that was moved. */
  storeId: string;
  /** When the move was committed, ISO 8601. */
  movedAt: string;
  /** What to do next. */
  advice: string[];
}

/**
 * The report of a moved store, from its marker.
 * @param ctx The command context.
 * @param location The Location as typed.
 * @param error What opening the store threw.
 * @returns The report.
 */
async function movedReport(
  ctx: CommandContext,
  location: string,
  error: StoreMovedError,
): Promise<MovedReport> {
  const opened = await openLocation(ctx, location);
  try {
    const marker = decodeMovedMarker(MOVED_KEY, await opened.driver.get(MOVED_KEY));
    return {
      state: "Moved",
      location: opened.driver.location,
      movedTo: marker.destination,
      storeId: marker.storeId,
      movedAt: new Date(marker.movedAt).toISOString(),
      advice: [`the store lives at ${marker.destination} now: capsa status ${marker.destination}`],
    };
  } catch {
    // The marker vanished or is unreadable since the open read it: what the open said is enough.
    return {
      state: "Moved",
      location: opened.driver.location,
      movedTo: error.destination,
      storeId: "",
      movedAt: "",
      advice: [`the store lives at ${error.destination} now: capsa status ${error.destination}`],
    };
  } finally {
    await opened.close();
  }
}

function ago(ms: number): string {
  return ms < 0 ? `in ${formatDuration(-ms)}` : `${formatDuration(ms)} ago`;
}

/**
 * What to do about a store's state, lease and maintenance mode.
 * @param s The status.
 * @param location The Location as typed.
 * @returns The advice lines (none when all is well).
 */
export function adviceFor(s: StoreStatus, location: string): string[] {
  const out: string[] = [];
  if (s.state === "Corrupted") {
    out.push(
      s.storeId === ""
        ? `every descriptor replica is lost: capsa rebuild ${location} --kit RECOVERY_KIT`
        : `the index or config cannot be loaded: capsa rebuild ${location}`,
    );
  } else if (s.state === "Degraded") {
    out.push(
      `the next command that opens the store for writing (e.g. capsa snapshot ${location}) heals ` +
        `descriptor replicas; capsa rebuild ${location} also repoints a dangling config pointer`,
    );
  }
  if (s.lease && s.lease.expiresAt < Date.now()) {
    out.push(
      `the maintenance lease of ${s.lease.holder} expired: the next agent takes it over (no action needed)`,
    );
  }
  if (s.maintenance && !s.lease) {
    out.push(
      "a maintenance mode is left without a lease (an agent crashed): it is ignored; the next agent clears it",
    );
  }
  return out;
}

/** `capsa status`. */
export const statusCommand: Command = {
  name: "status",
  summary: "state, counts and sizes, index, snapshots, lease, maintenance, problems",
  usage: "capsa status LOCATION",
  description:
    `Reports the store's state (Ready, Degraded, Corrupted), artifact/blob/pack counts and sizes,
where the index was loaded from, its high-water mark and age, the index snapshots, the
maintenance lease and mode, this host's directory, the problems found on open, and what to do
next. It only reads: it opens the store read-only and heals nothing. Exit code 5 when the store
is Corrupted. A store moved away (capsa move) is reported as state Moved with its destination
and the time of the move, exit code 1 (it cannot be used here).`,
  flags: {},
  flagsHelp: "",
  example: "capsa status /srv/capsa --json",
  async run(ctx: CommandContext, args: ParsedArgs): Promise<number> {
    const { location } = namePositionals("status", args.positionals, ["LOCATION"]);
    let report: StatusReport;
    try {
      report = await withStore(ctx, location!, async (store, opened): Promise<StatusReport> => {
        const s = await store.status();
        const now = Date.now();
        return {
          ...s,
          hostDir: opened.hostDir ?? null,
          highWaterMarkAgeMs: s.index?.highWaterMarkTime === undefined
            ? null
            : now - s.index.highWaterMarkTime,
          leaseExpired: s.lease ? s.lease.expiresAt < now : null,
          advice: adviceFor(s, location!),
        };
      }, { readOnly: true, allowCorrupted: true });
    } catch (e) {
      if (!(e instanceof StoreMovedError)) throw e;
      const moved = await movedReport(ctx, location!, e);
      ctx.out.result(moved, () => movedLines(moved), { essential: true });
      return ERROR_CODES.store_moved.exit;
    }
    ctx.out.result(report, () => statusLines(report), { essential: true });
    return report.state === "Corrupted" ? EXIT.corrupted : EXIT.ok;
  },
};

/**
 * The human form of a moved store's report.
 * @param r The report.
 * @returns The lines.
 */
export function movedLines(r: MovedReport): string[] {
  const lines = table([
    ["store", r.storeId === "" ? "unknown" : r.storeId],
    ["location", r.location],
    ["state", "Moved"],
    ["moved to", r.movedTo],
    ["moved at", r.movedAt === "" ? "unknown" : r.movedAt],
  ]);
  for (const a of r.advice) lines.push(`next: ${a}`);
  return lines;
}

/**
 * The human form of a status report.
 * @param r The report.
 * @returns The lines.
 */
export function statusLines(r: StatusReport): string[] {
  const c = r.counts;
  const rows: Array<[string, string]> = [
    ["store", r.storeId === "" ? "unknown (no readable descriptor)" : r.storeId],
    ["location", r.location],
    ["state", r.state],
    ["hash", r.hash ?? "unknown"],
    ["encryption", r.encryption ?? "unknown"],
    [
      "config",
      r.config
        ? `version ${r.config.seq}, pointer ${r.config.pointer}, manifests ${r.config.manifestStorage}`
        : "unknown",
    ],
    [
      "compression",
      !r.config
        ? "unknown"
        : r.config.compression === "zstd"
        ? `zstd level ${r.config.compressionLevel}`
        : "none",
    ],
  ];
  if (c) {
    rows.push(
      ["artifacts", `${c.artifacts} live (${c.manifests} versions and deletions)`],
      ["blobs", `${c.blobs} (${formatBytes(c.blobBytes)})`],
      ["packs", `${c.packs} (${formatBytes(c.packBytes)})`],
    );
  } else rows.push(["counts", "unknown (no index)"]);
  if (r.index) {
    rows.push([
      "index",
      `from ${r.index.source}${
        r.index.loadedFrom ? ` (${r.index.loadedFrom})` : ""
      }, schema v${r.index.schemaVersion}`,
    ]);
    rows.push([
      "high-water",
      r.index.highWaterMark === ""
        ? "none (no pack indexed)"
        : `${r.index.highWaterMark} (${new Date(r.index.highWaterMarkTime!).toISOString()}, ${
          ago(r.highWaterMarkAgeMs ?? 0)
        })`,
    ]);
  }
  rows.push([
    "snapshots",
    r.snapshots.length === 0 ? "none" : `${r.snapshots.length}, newest ${r.snapshots[0]}`,
  ]);
  rows.push([
    "lease",
    r.lease
      ? `${r.lease.holder}, ${r.leaseExpired ? "expired" : "expires"} ${
        new Date(r.lease.expiresAt).toISOString()
      } (${ago(Date.now() - r.lease.expiresAt)})`
      : "none",
  ]);
  rows.push([
    "maintenance",
    r.maintenance ? `${r.maintenance.mode} by ${r.maintenance.holder}` : "none",
  ]);
  rows.push(["host dir", r.hostDir ?? "none"]);
  rows.push(["problems", r.problems.length === 0 ? "none" : String(r.problems.length)]);
  const lines = table(rows);
  for (const p of r.problems) lines.push(`  - ${p}`);
  for (const a of r.advice) lines.push(`next: ${a}`);
  return lines;
}
