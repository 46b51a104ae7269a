/**
 * Garbage collection of a store with half of it dead (issue 13), whole
 * processes, beside its floor and beside `restic prune` on the same data:
 *
 * - the data: `--mib` MiB of random files of 64–512 KiB, seeded;
 * - capsa: `capsa put STORE ns --from DIR`; half of the files then get a
 *   new version (the old one dies) and the other half stay; `capsa gc STORE
 *   --keep-versions 1 --grace 0s` is timed;
 * - restic: `restic backup DIR`, the same half of the files rewritten,
 *   `restic backup DIR` again, then `restic forget --keep-last 1 --prune`
 *   is timed (its prune drops what only the first snapshot held);
 * - the floor: reading the live half of the bytes and writing them once
 *   (to a file, synced), the least any compaction has to do.
 *
 * Each measure runs once per `--runs`, capsa and restic alternating which
 * goes first; medians are printed as a Markdown table. Where `restic` is
 * missing its column says so.
 *
 * Usage: deno run -A bench/gc_bench.ts [--mib 1024] [--runs 1] [--dir DIR]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { body, Xorshift } from "../tests/data.ts";
import { CAPSA } from "./_capsa.ts";

const { values } = parseArgs({
  options: {
    mib: { type: "string", default: "1024" },
    runs: { type: "string", default: "1" },
    dir: { type: "string", default: "" },
  },
});
const MIB = Number(values.mib);
const RUNS = Number(values.runs);

let lastStdout = "";

async function run(cmd: string, args: string[], env: Record<string, string> = {}): Promise<number> {
  const start = performance.now();
  const out = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" }).output();
  const ms = performance.now() - start;
  lastStdout = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(
      `${cmd} ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr).slice(-2000)}`,
    );
  }
  return ms;
}

async function has(cmd: string): Promise<boolean> {
  try {
    return (await new Deno.Command(cmd, { args: ["version"], stdout: "null", stderr: "null" })
      .output()).success;
  } catch {
    return false;
  }
}

async function dirBytes(dir: string): Promise<number> {
  let n = 0;
  for await (const e of Deno.readDir(dir)) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) n += await dirBytes(p);
    else if (e.isFile) n += (await Deno.stat(p)).size;
  }
  return n;
}

/** Writes the data set; returns the files (path, seed, size). */
async function generate(dir: string, seed: number): Promise<Array<[string, number]>> {
  const rand = new Xorshift(seed);
  const files: Array<[string, number]> = [];
  let total = 0;
  for (let i = 0; total < MIB * 1024 * 1024; i++) {
    const size = 64 * 1024 + (rand.next() % (448 * 1024));
    const path = `${dir}/d${i % 64}/f${i}.bin`;
    await Deno.mkdir(`${dir}/d${i % 64}`, { recursive: true });
    await Deno.writeFile(path, body(seed * 1_000_000 + i, size));
    files.push([path, size]);
    total += size;
  }
  return files;
}

/** New content for every other file: their first versions die. */
async function rewriteHalf(files: Array<[string, number]>, seed: number): Promise<void> {
  for (const [i, [path, size]] of files.entries()) {
    if (i % 2 === 0) await Deno.writeFile(path, body(seed * 7_000_000 + i, size));
  }
}

/** Reads `bytes` of live data and writes them once, synced: the floor. */
async function floor(files: Array<[string, number]>, out: string): Promise<number> {
  const start = performance.now();
  const f = await Deno.open(out, { write: true, create: true, truncate: true });
  for (const [i, [path]] of files.entries()) {
    if (i % 2 === 1) continue;
    const bytes = await Deno.readFile(path);
    let at = 0;
    while (at < bytes.length) at += await f.write(bytes.subarray(at));
  }
  await f.sync();
  f.close();
  return performance.now() - start;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const results = {
  capsa: [] as number[],
  capsaAgent: [] as number[],
  restic: [] as number[],
  floor: [] as number[],
};
const sizes = { capsaBefore: 0, capsaAfter: 0, resticBefore: 0, resticAfter: 0 };
const haveRestic = await has("restic");
const base = values.dir || await Deno.makeTempDir({ prefix: "capsa-gc-bench-" });

for (let r = 0; r < RUNS; r++) {
  const dir = `${base}/run${r}`;
  await Deno.mkdir(dir, { recursive: true });
  const data = `${dir}/data`;
  const files = await generate(data, r + 1);
  const order = r % 2 === 0 ? ["capsa", "restic"] : ["restic", "capsa"];
  // Both tools first see the same first version of every file, then the same second half.
  const store = `${dir}/store`;
  const repo = `${dir}/repo`;
  const host = `${dir}/host`;
  const env = { RESTIC_PASSWORD: "bench", RESTIC_CACHE_DIR: `${dir}/restic-cache` };
  await run(Deno.execPath(), [
    ...CAPSA,
    "init",
    store,
    "--kit",
    `${dir}/kit`,
    "--host-dir",
    host,
    "-q",
  ]);
  await run(Deno.execPath(), [
    ...CAPSA,
    "put",
    store,
    "ns",
    "--from",
    data,
    "--host-dir",
    host,
    "-q",
  ]);
  if (haveRestic) {
    await run("restic", ["-r", repo, "init", "-q"], env);
    await run("restic", ["-r", repo, "backup", data, "-q"], env);
  }
  await rewriteHalf(files, r + 1);
  await run(Deno.execPath(), [
    ...CAPSA,
    "put",
    store,
    "ns",
    "--from",
    data,
    "--host-dir",
    host,
    "-q",
  ]);
  if (haveRestic) await run("restic", ["-r", repo, "backup", data, "-q"], env);
  sizes.capsaBefore = await dirBytes(store);
  if (haveRestic) sizes.resticBefore = await dirBytes(repo);
  for (const tool of order) {
    if (tool === "capsa") {
      results.capsa.push(
        await run(Deno.execPath(), [
          ...CAPSA,
          "gc",
          store,
          "--keep-versions",
          "1",
          "--grace",
          "0s",
          "--host-dir",
          host,
          "--json",
        ]),
      );
      results.capsaAgent.push(JSON.parse(lastStdout).stats.duration);
    } else if (haveRestic) {
      results.restic.push(
        await run("restic", ["-r", repo, "forget", "--keep-last", "1", "--prune", "-q"], env),
      );
    }
  }
  results.floor.push(await floor(files, `${dir}/floor.bin`));
  sizes.capsaAfter = await dirBytes(store);
  if (haveRestic) sizes.resticAfter = await dirBytes(repo);
  await Deno.remove(dir, { recursive: true });
}
if (!values.dir) await Deno.remove(base, { recursive: true });

const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const m = (b: number) => `${(b / 1048576).toFixed(1)} MiB`;
const c = median(results.capsa);
const f = median(results.floor);
console.log(`gc of ${MIB} MiB (half dead), ${RUNS} run(s), medians\n`);
console.log("| measure | capsa gc | restic forget --prune | floor (read+write live half once) |");
console.log("| --- | --- | --- | --- |");
console.log(
  `| time | ${s(c)} (${(c / f).toFixed(2)}× floor; the agent's own run ${
    s(median(results.capsaAgent))
  }) | ${
    haveRestic
      ? `${s(median(results.restic))} (capsa/restic ${(c / median(results.restic)).toFixed(2)})`
      : "restic not installed"
  } | ${s(f)} |`,
);
console.log(
  `| size before → after | ${m(sizes.capsaBefore)} → ${m(sizes.capsaAfter)} | ${
    haveRestic ? `${m(sizes.resticBefore)} → ${m(sizes.resticAfter)}` : "—"
  } | — |`,
);
