/**
 * Index benchmarks on a local directory, whole processes (runtime start
 * included), each repeated and reported as the median with its spread:
 *
 * 1. full rebuild (`source: "FullScan"`) after the host cache is deleted —
 *    wall time and peak RSS of the process that opens the store and rebuilds;
 * 2. snapshot fast path (`source: "Snapshot"`) with `--extra` artifacts
 *    written after the newest snapshot, host cache deleted;
 * 3. open from the host cache (read-only) and close.
 *
 * The store holds `--count` small artifacts (~140 B each, so every body is
 * inline in its manifest) written through the library by `--concurrency`
 * concurrent puts, so packs are full. It is made once in `--dir` and reused
 * by later runs with the same `--dir`.
 *
 * Usage: deno run -A bench/index_bench.ts [--count 1000000] [--extra 10000]
 *          [--concurrency 1024] [--runs 3] [--dir /tmp/capsa-index-bench]
 *          [--only rebuild,snapshot,open]
 * Prints a Markdown table for BENCHMARKS.md. Peak RSS is the child's
 * `VmHWM` from /proc (Linux).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { body } from "../tests/data.ts";
import { initStore, openStore } from "../store/store.ts";
import { defaultConfig, writeConfigVersion } from "../format/config.ts";
import { openLocalFs } from "../drivers/localfs/mod.ts";
import { EventBus } from "../store/events.ts";
import { createRebuildIndexAgent } from "../maintenance/mod.ts";
import { HOST_CACHE_KEY, SNAPSHOT_PREFIX } from "../layout.ts";

const { values } = parseArgs({
  options: {
    count: { type: "string", default: "1000000" },
    extra: { type: "string", default: "10000" },
    concurrency: { type: "string", default: "1024" },
    runs: { type: "string", default: "3" },
    dir: { type: "string", default: "/tmp/capsa-index-bench" },
    only: { type: "string", default: "rebuild,snapshot,open" },
    child: { type: "string" },
  },
});

const dir = values.dir;
const open = async () => ({
  location: await openLocalFs(`${dir}/store`, { create: true, durable: false }),
  host: await openLocalFs(`${dir}/host`, { create: true, durable: false }),
});

function peakRss(): number {
  const status = Deno.readTextFileSync("/proc/self/status");
  const m = /VmHWM:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) * 1024 : 0;
}

// Child mode: one measured operation; prints {ms, rss, ...} as JSON.
if (values.child) {
  const t0 = performance.now();
  const { location, host } = await open();
  const what = values.child;
  const extra: Record<string, unknown> = {};
  if (what === "open") {
    const store = await openStore(location, { hostStorage: host, readOnly: true });
    extra.source = (await store.status()).index?.source;
    await store.close();
  } else {
    // As `capsa rebuild` does: the agent loads or builds its own index.
    const store = await openStore(location, { hostStorage: host, deferIndex: true });
    const t1 = performance.now();
    extra.openMs = Math.round(t1 - t0);
    const agent = createRebuildIndexAgent(store, new EventBus(), {
      source: what === "rebuild" ? "FullScan" : "Snapshot",
    });
    agent.validate();
    await agent.run();
    const s = agent.stats();
    extra.agentMs = Math.round(performance.now() - t1);
    extra.packs = s.packsIndexed;
    extra.manifests = s.manifestsIndexed;
    await store.close();
  }
  console.log(JSON.stringify({ ms: performance.now() - t0, rss: peakRss(), ...extra }));
  Deno.exit(0);
}

const COUNT = Number(values.count);
const EXTRA = Number(values.extra);
const CONCURRENCY = Number(values.concurrency);
const RUNS = Number(values.runs);
const MiB = 1024 * 1024;

async function putMany(
  store: Awaited<ReturnType<typeof initStore>>["store"],
  from: number,
  n: number,
) {
  const template = body(7, 140);
  let next = from;
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < from + n) {
      const i = next++;
      const b = template.slice();
      new DataView(b.buffer).setUint32(0, i);
      await store.put("bench", `k/${i}`, b);
    }
  }));
  await store.flush();
}

/** Makes the store once: COUNT artifacts, a snapshot, then EXTRA more written after it. */
async function ensureStore(): Promise<void> {
  try {
    await Deno.stat(`${dir}/ready`);
    await defaultSchedule();
    return;
  } catch { /* make it */ }
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  const { location, host } = await open();
  const t0 = performance.now();
  const { store } = await initStore(location, {
    hostStorage: host,
    // No periodic snapshot: the one taken below is the snapshot path's starting point.
    config: { snapshotEveryPacks: 0, snapshotIntervalMs: 0 },
  });
  await putMany(store, 0, COUNT);
  console.error(`made ${COUNT} artifacts in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  await store.snapshotIndex();
  await putMany(store, COUNT, EXTRA);
  await store.close();
  await Deno.mkdir(`${dir}/saved`, { recursive: true });
  for await (const e of Deno.readDir(`${dir}/store/${SNAPSHOT_PREFIX}`)) {
    await Deno.copyFile(`${dir}/store/${SNAPSHOT_PREFIX}${e.name}`, `${dir}/saved/${e.name}`);
  }
  await defaultSchedule();
  await Deno.writeTextFile(`${dir}/ready`, "");
}

/**
 * Puts the default snapshot schedule back in force (a new config version) once the store is
 * made: the rebuilds are measured on a store configured as users' are (a rebuild from the
 * newest snapshot with fewer than `snapshotEveryPacks` packs past it writes no new one).
 */
async function defaultSchedule(): Promise<void> {
  const { location, host } = await open();
  const store = await openStore(location, { hostStorage: host, deferIndex: true });
  const config = store.config!;
  const defaults = defaultConfig();
  if (
    config.snapshotEveryPacks !== defaults.snapshotEveryPacks ||
    config.snapshotIntervalMs !== defaults.snapshotIntervalMs
  ) {
    await writeConfigVersion(location, {
      ...config,
      snapshotEveryPacks: defaults.snapshotEveryPacks,
      snapshotIntervalMs: defaults.snapshotIntervalMs,
    }, { chunking: store.descriptor!.chunking });
  }
  await store.close();
}

/** Puts the snapshots back as made (one snapshot, EXTRA artifacts after it); drops the host cache. */
async function resetSnapshots(): Promise<void> {
  const snaps = `${dir}/store/${SNAPSHOT_PREFIX}`;
  for await (const e of Deno.readDir(snaps)) await Deno.remove(`${snaps}${e.name}`);
  for await (const e of Deno.readDir(`${dir}/saved`)) {
    await Deno.copyFile(`${dir}/saved/${e.name}`, `${snaps}${e.name}`);
  }
  await Deno.remove(`${dir}/host/${HOST_CACHE_KEY}`).catch(() => {});
}

async function child(what: string): Promise<Record<string, number>> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(import.meta.url).pathname, "--dir", dir, "--child", what],
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error(`child ${what} failed`);
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (xs: number[], unit: (x: number) => string) =>
  `${unit(median(xs))} (${xs.map(unit).join(", ")})`;
const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const mib = (b: number) => `${(b / MiB).toFixed(0)} MiB`;

await ensureStore();
async function du(path: string): Promise<number> {
  let total = 0;
  for await (const e of Deno.readDir(path)) {
    if (e.isDirectory) total += await du(`${path}/${e.name}`);
    else if (e.isFile) total += (await Deno.stat(`${path}/${e.name}`)).size;
  }
  return total;
}
const storeBytes = await du(`${dir}/store/packs`);
const only = new Set(values.only.split(","));
const rows: string[][] = [];
const results: Record<string, Array<Record<string, number>>> = {};
for (let r = 0; r < RUNS; r++) {
  for (const what of ["rebuild", "snapshot", "open"]) {
    if (!only.has(what)) continue;
    if (what !== "open") await resetSnapshots();
    // Untimed: the previous step's writes are flushed first, so that no step pays for writing back
    // what the one before it wrote (as bench/vs_restic.ts does).
    await new Deno.Command("sync").output();
    const res = await child(what);
    console.error(what, JSON.stringify(res));
    (results[what] ??= []).push(res);
  }
}
const label: Record<string, string> = {
  rebuild: `full rebuild, host cache deleted (${COUNT + EXTRA} artifacts)`,
  snapshot: `snapshot fast path, ${EXTRA} artifacts after the snapshot, host cache deleted`,
  open: "open from the host cache (read-only) and close",
};
for (const [what, rs] of Object.entries(results)) {
  rows.push([
    label[what]!,
    fmt(rs.map((x) => x.ms!), secs),
    fmt(rs.map((x) => x.rss!), mib),
    rs[0]!.openMs === undefined
      ? ""
      : `open ${secs(median(rs.map((x) => x.openMs!)))}, agent ${
        secs(median(rs.map((x) => x.agentMs!)))
      }`,
  ]);
}
let snapBytes = 0;
for await (const e of Deno.readDir(`${dir}/store/${SNAPSHOT_PREFIX}`)) {
  snapBytes += (await Deno.stat(`${dir}/store/${SNAPSHOT_PREFIX}${e.name}`)).size;
}
const cache = await Deno.stat(`${dir}/host/${HOST_CACHE_KEY}`).then((s) => s.size, () => 0);
console.log(`packs ${mib(storeBytes)}; snapshots now ${mib(snapBytes)}; host cache ${mib(cache)}`);
console.log("| measure | wall time, median (runs) | peak RSS, median (runs) | split |");
console.log("| --- | --- | --- | --- |");
for (const r of rows) console.log(`| ${r.join(" | ")} |`);
