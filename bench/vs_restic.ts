/**
 * capsa beside restic on the same files (issue 12), whole processes:
 *
 * 1. bulk ingest — `capsa init` + `capsa put STORE ns --from DIR` against
 *    `restic init` + `restic backup DIR`; the packs each wrote (count, size
 *    distribution; capsa's must be within 10 % of the target size except the
 *    last);
 * 2. store size — apparent bytes of the store directory against the
 *    repository directory;
 * 3. open — `capsa status STORE` (from the host cache) against
 *    `restic snapshots`;
 * 4. full rebuild — `capsa rebuild STORE --source full-scan` with the host
 *    cache deleted against `restic rebuild-index --read-all-packs` (or
 *    `restic repair index --read-all-packs` on restic ≥ 0.16) after
 *    `rm index/*`;
 * 5. snapshot-path rebuild — `capsa snapshot`, then `capsa rebuild STORE`
 *    (source auto: from the snapshot) with the host cache deleted, against
 *    `restic rebuild-index` (the repository's index kept);
 * 6. rerun — the ingest's command again over the unchanged tree (capsa:
 *    checked to store nothing; restic: a second snapshot, the first its
 *    parent);
 * 7. restore — `capsa get STORE ns --to DIR` (checked to restore every file)
 *    against `restic restore latest --target DIR`, DIR new.
 *
 * Every measure runs capsa and restic one after the other in the same run
 * (which goes first alternates between runs; `sync` runs untimed before each
 * timed command), and reports medians over `--runs`. Each run starts from an
 * empty store and repository. The peak RSS of every process is taken with
 * `/usr/bin/time -f %M` when present, else by polling `/proc/PID/status`. When `borg` is on the PATH, a borg column is
 * added (ingest, rerun, size, open, full rebuild by replaying its segments
 * after deleting its index, restore with `borg extract`).
 *
 * capsa runs as the README's `capsa` command does: `deno run <permissions>
 * cli.ts …`, with `--host-dir` in the benchmark's directory; restic with a
 * password file and `RESTIC_CACHE_DIR` there too. A failing command stops
 * the benchmark with its stderr (the directory is kept for inspection).
 *
 * Where restic is not installed, prints one line saying so and exits 0.
 *
 * Usage: deno run -A bench/vs_restic.ts [--files 200000] [--dirs N] [--runs 3]
 *          [--seed 1] [--dir DIR] [--out FILE] [--json] [--keep]
 * (`deno task bench:restic`). Prints a Markdown table for BENCHMARKS.md
 * (with `--json`, one JSON document with every sample instead); `--out`
 * writes it to FILE too. The files go to a temporary directory, or to `--dir`
 * (which must be empty); each run's store and repository are removed after
 * the run, and the temporary directory at the end, unless `--keep`.
 */

import { parseArgs } from "node:util";
import { Xorshift } from "../tests/data.ts";
import {
  CONFIG_CURRENT_KEY,
  configVersionKey,
  HOST_CACHE_KEY,
  PACK_PREFIX,
  SNAPSHOT_PREFIX,
} from "../layout.ts";
import { CAPSA, GNU_TIME, runMeasured } from "./_capsa.ts";

const { values } = parseArgs({
  options: {
    files: { type: "string", default: "200000" },
    dirs: { type: "string" },
    runs: { type: "string", default: "3" },
    seed: { type: "string", default: "1" },
    dir: { type: "string", default: "" },
    out: { type: "string" },
    json: { type: "boolean", default: false },
    keep: { type: "boolean", default: false },
  },
});

function positiveInt(name: string, text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1) {
    console.error(`bench/vs_restic.ts: --${name} must be a positive integer, got "${text}"`);
    Deno.exit(2);
  }
  return n;
}

const FILES = positiveInt("files", values.files);
// 200,000 files in 10,000 directories: 20 a directory.
const DIRS = positiveInt("dirs", values.dirs ?? String(Math.max(1, Math.round(FILES / 20))));
const RUNS = positiveInt("runs", values.runs);
const SEED = Number(values.seed) >>> 0;

const dec = new TextDecoder();
const KiB = 1024;
const MiB = 1024 * KiB;

// ---------------------------------------------------------------- processes

/** Whether a program runs at all (`PROGRAM ARGS` exits 0). */
async function runs(program: string, args: string[]): Promise<boolean> {
  try {
    const r = await new Deno.Command(program, { args, stdout: "null", stderr: "null" }).output();
    return r.success;
  } catch {
    return false;
  }
}

async function versionOf(program: string, args: string[]): Promise<string> {
  const r = await new Deno.Command(program, { args, stdout: "piped", stderr: "piped" }).output();
  return dec.decode(r.stdout).trim().split("\n")[0] ?? "";
}

if (!await runs("restic", ["version"])) {
  console.log("bench/vs_restic.ts: skipped: restic is not installed (apt-get install restic)");
  Deno.exit(0);
}
const HAS_BORG = await runs("borg", ["--version"]);
/** restic ≥ 0.16 has `repair index`; before, `rebuild-index`. */
const RESTIC_REBUILD = await runs("restic", ["repair", "index", "--help"])
  ? ["repair", "index"]
  : ["rebuild-index"];

/** One finished process. */
interface Measured {
  /** Wall time, seconds. */
  s: number;
  /** Peak resident set, bytes (undefined when it could not be read). */
  rss: number | undefined;
  stdout: string;
}

/**
 * Runs a whole process to its end, timing it and taking its peak RSS; throws
 * with the command line and the process's stderr when it fails.
 */
async function measure(
  program: string,
  args: string[],
  env: Record<string, string> = {},
  cwd: string = base,
): Promise<Measured> {
  const line = [program, ...args].join(" ");
  // Untimed: what the previous command left to write back is written now, not during this one.
  await flushWrites();
  const out = await runMeasured(program, args, { env, cwd, tmpDir: base });
  if (out.code !== 0) {
    throw new CommandFailed(
      `${line}\nexited with code ${out.code}; its stderr:\n${out.stderr.trim()}\n` +
        `its stdout:\n${out.stdout.trim().slice(-2000)}`,
    );
  }
  return { s: out.s, rss: out.rss, stdout: out.stdout };
}

class CommandFailed extends Error {}

/** `sync(1)`: the file system's dirty pages written out (nothing where there is no `sync`). */
async function flushWrites(): Promise<void> {
  try {
    await new Deno.Command("sync", { stdout: "null", stderr: "null" }).output();
  } catch { /* no sync(1): measured as before */ }
}

// ---------------------------------------------------------------- files

/** Apparent sizes of every regular file under `dir` (recursively), by path relative to it. */
async function filesUnder(dir: string, rel = ""): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(`${dir}/${rel}`));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return out;
    throw e;
  }
  for (const e of entries) {
    const path = rel === "" ? e.name : `${rel}/${e.name}`;
    if (e.isDirectory) {
      for (const [p, n] of await filesUnder(dir, path)) out.set(p, n);
    } else if (e.isFile) {
      out.set(path, (await Deno.lstat(`${dir}/${path}`)).size);
    }
  }
  return out;
}

function sum(sizes: Iterable<number>): number {
  let n = 0;
  for (const s of sizes) n += s;
  return n;
}

function bytesUnder(files: Map<string, number>, prefix: string): number {
  let n = 0;
  for (const [p, s] of files) if (p.startsWith(prefix)) n += s;
  return n;
}

/** Writes the data set: FILES files of 1–4 KiB of seeded random bytes in DIRS directories. */
async function generate(dir: string): Promise<number> {
  const rng = new Xorshift(SEED);
  const dirName = (d: number) => `${dir}/d${String(d).padStart(5, "0")}`;
  for (let d = 0; d < DIRS; d++) await Deno.mkdir(dirName(d), { recursive: true });
  let bytes = 0;
  let next = 0;
  // Bodies are drawn in file order (deterministic), written a few at a time.
  const body = (i: number) => {
    const size = KiB + rng.next() % (3 * KiB + 1);
    bytes += size;
    return {
      path: `${dirName(i % DIRS)}/f${String(i).padStart(7, "0")}`,
      data: rng.fill(new Uint8Array(size)),
    };
  };
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next < FILES) {
      const f = body(next++);
      await Deno.writeFile(f.path, f.data);
    }
  }));
  return bytes;
}

// ---------------------------------------------------------------- the tools

interface PackStats {
  count: number;
  min: number;
  median: number;
  max: number;
  /** Packs other than the last written outside ±10 % of the target size (capsa only). */
  offTarget?: number;
  target?: number;
}

function packStats(sizes: number[], target?: number, lastIndex?: number): PackStats {
  const sorted = [...sizes].sort((a, b) => a - b);
  const stats: PackStats = {
    count: sizes.length,
    min: sorted[0] ?? 0,
    median: median(sorted),
    max: sorted[sorted.length - 1] ?? 0,
  };
  if (target !== undefined) {
    stats.target = target;
    stats.offTarget = sizes.filter((s, i) =>
      i !== lastIndex && (s < target * 0.9 || s > target * 1.1)
    ).length;
  }
  return stats;
}

interface Sizes {
  total: number;
  /** Named parts of the total, e.g. packs, index snapshots. */
  parts: Record<string, number>;
}

/** One tool's side of every measure. */
interface Tool {
  name: string;
  init(): Promise<Measured>;
  ingest(): Promise<Measured>;
  /** The same ingest again, nothing changed (restic and borg: a second snapshot or archive). */
  rerun(): Promise<Measured>;
  packs(): Promise<PackStats>;
  size(): Promise<Sizes>;
  open(): Promise<Measured>;
  fullRebuild(): Promise<Measured>;
  /** The step before the snapshot-path rebuild, when the tool has one (capsa: `snapshot`). */
  snapshot?(): Promise<Measured>;
  snapshotRebuild?(): Promise<Measured>;
  /** Everything ingested, restored into a new directory. */
  restore(): Promise<Measured>;
}

function capsaTool(dir: string, data: string): Tool {
  const store = `${dir}/store`;
  const host = `${dir}/host`;
  const capsa = (...args: string[]) =>
    measure(Deno.execPath(), [...CAPSA, ...args, "--host-dir", host, "-q"]);
  const dropHostCache = async () => {
    await Deno.remove(`${host}/${HOST_CACHE_KEY}`);
  };
  const rebuild = async (source: string, expected: string) => {
    const m = await capsa(
      "rebuild",
      store,
      ...(source === "" ? [] : ["--source", source]),
      "--json",
    );
    const stats = JSON.parse(m.stdout).stats ?? {};
    if (stats.source !== expected) {
      throw new CommandFailed(
        `capsa rebuild ${
          source || "(auto)"
        } used source ${stats.source}, expected ${expected}:\n${m.stdout}`,
      );
    }
    return m;
  };
  return {
    name: "capsa",
    init: () => capsa("init", store, "--kit", `${dir}/kit.txt`),
    ingest: () => capsa("put", store, "ns", "--from", data),
    async rerun() {
      const m = await capsa("put", store, "ns", "--from", data, "--json");
      const r = JSON.parse(m.stdout);
      if (r.newVersions !== 0 || r.unchanged !== r.files) {
        throw new CommandFailed(`capsa put --from again stored new versions:\n${m.stdout}`);
      }
      return m;
    },
    async packs() {
      const current = (await Deno.readTextFile(`${store}/${CONFIG_CURRENT_KEY}`)).trim();
      const config = JSON.parse(
        await Deno.readTextFile(`${store}/${configVersionKey(Number(current))}`),
      );
      const packs = [...await filesUnder(store, PACK_PREFIX.replace(/\/$/, ""))]
        .sort(([a], [b]) => a < b ? -1 : 1); // ULIDs: in the order written
      return packStats(packs.map(([, s]) => s), config.packTargetSize, packs.length - 1);
    },
    async size() {
      const files = await filesUnder(store);
      const packs = bytesUnder(files, PACK_PREFIX);
      const snapshots = bytesUnder(files, SNAPSHOT_PREFIX);
      const total = sum(files.values());
      return {
        total,
        parts: { packs, "index snapshots": snapshots, other: total - packs - snapshots },
      };
    },
    open: () => capsa("status", store),
    async fullRebuild() {
      await dropHostCache();
      return await rebuild("full-scan", "FullScan");
    },
    snapshot: () => capsa("snapshot", store),
    async restore() {
      const m = await capsa("get", store, "ns", "--to", `${dir}/restored`, "--json");
      const r = JSON.parse(m.stdout);
      if (r.files !== r.total || r.notRestored.length !== 0) {
        throw new CommandFailed(`capsa get --to did not restore everything:\n${m.stdout}`);
      }
      return m;
    },
    async snapshotRebuild() {
      await dropHostCache();
      return await rebuild("", "Snapshot");
    },
  };
}

function resticTool(dir: string, data: string, password: string): Tool {
  const repo = `${dir}/repo`;
  const env = {
    RESTIC_REPOSITORY: repo,
    RESTIC_PASSWORD_FILE: password,
    RESTIC_CACHE_DIR: `${dir}/cache`,
  };
  const restic = (...args: string[]) => measure("restic", args, env);
  return {
    name: "restic",
    init: () => restic("init", "-q"),
    ingest: () => restic("backup", "-q", data),
    rerun: () => restic("backup", "-q", data),
    async packs() {
      return packStats([...(await filesUnder(repo, "data")).values()]);
    },
    async size() {
      const files = await filesUnder(repo);
      const packs = bytesUnder(files, "data/");
      const index = bytesUnder(files, "index/");
      const total = sum(files.values());
      return { total, parts: { packs, index, other: total - packs - index } };
    },
    open: () => restic("snapshots", "-q"),
    async fullRebuild() {
      for await (const e of Deno.readDir(`${repo}/index`)) {
        await Deno.remove(`${repo}/index/${e.name}`);
      }
      return await restic(...RESTIC_REBUILD, "--read-all-packs", "-q");
    },
    snapshotRebuild: () => restic(...RESTIC_REBUILD, "-q"),
    restore: () => restic("restore", "latest", "--target", `${dir}/restored`, "-q"),
  };
}

function borgTool(dir: string, data: string): Tool {
  const repo = `${dir}/repo`;
  const env = {
    BORG_PASSPHRASE: "capsa-bench",
    BORG_BASE_DIR: `${dir}/base`,
    BORG_RELOCATED_REPO_ACCESS_IS_OK: "yes",
    BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: "yes",
  };
  const borg = (...args: string[]) => measure("borg", args, env);
  /** borg extracts into its working directory. */
  const borgExtract = (target: string) =>
    measure("borg", ["extract", `${repo}::bench`], env, target);
  return {
    name: "borg",
    init: () => borg("init", "--encryption=repokey", repo),
    ingest: () => borg("create", `${repo}::bench`, data),
    rerun: () => borg("create", `${repo}::again`, data),
    async packs() {
      return packStats([...(await filesUnder(repo, "data")).values()]);
    },
    async size() {
      const files = await filesUnder(repo);
      const packs = bytesUnder(files, "data/");
      const total = sum(files.values());
      return { total, parts: { segments: packs, other: total - packs } };
    },
    open: () => borg("list", repo),
    async restore() {
      await Deno.mkdir(`${dir}/restored`);
      return await borgExtract(`${dir}/restored`);
    },
    async fullRebuild() {
      // Without its index, borg replays every segment on the next open.
      for await (const e of Deno.readDir(repo)) {
        if (/^(index|hints|integrity)\.\d+$/.test(e.name)) await Deno.remove(`${repo}/${e.name}`);
      }
      const m = await borg("list", repo);
      const names = await Array.fromAsync(Deno.readDir(repo), (e) => e.name);
      if (!names.some((n) => /^index\.\d+$/.test(n))) {
        throw new CommandFailed(`borg list ${repo} left no index.* file: no rebuild was measured`);
      }
      return m;
    },
  };
}

/** What each measure runs (the table's rows name the measure only). */
const LEGEND = [
  "init: `capsa init STORE --kit FILE` / `restic init`" +
  (HAS_BORG ? " / `borg init --encryption=repokey`" : ""),
  "bulk ingest: `capsa put STORE ns --from DIR` / `restic backup DIR`" +
  (HAS_BORG ? " / `borg create REPO::bench DIR`" : ""),
  "rerun: the bulk ingest's command again, nothing changed (restic: a second snapshot with the first as parent" +
  (HAS_BORG ? "; borg: a second archive, `REPO::again`" : "") + ")",
  "packs: files under the store's `packs/` (capsa: each but the last written must be within ±10 % of the store's `packTargetSize`) / the repository's `data/`",
  "store size: apparent bytes of every file in the store / repository directory, right after the ingest",
  "open: `capsa status STORE` (from the host cache) / `restic snapshots`" +
  (HAS_BORG ? " / `borg list REPO`" : ""),
  "full rebuild: `capsa rebuild STORE --source full-scan` with the host cache deleted / `restic " +
  RESTIC_REBUILD.join(" ") + " --read-all-packs` after `rm index/*`" +
  (HAS_BORG
    ? " / `borg list REPO` after deleting its `index.*`, `hints.*`, `integrity.*` (a segment replay)"
    : ""),
  "capsa snapshot: `capsa snapshot STORE` (restic has no counterpart: its index is always on the repository)",
  "snapshot-path rebuild: `capsa rebuild STORE` (source auto, checked to start from the snapshot) with the host cache deleted / `restic " +
  RESTIC_REBUILD.join(" ") + "` with the repository's index in place",
  "restore: `capsa get STORE ns --to DIR` (checked to restore every file) / `restic restore latest --target DIR`" +
  (HAS_BORG ? " / `borg extract REPO::bench` in DIR" : "") + ", DIR new",
  "every capsa command runs as `deno run --no-prompt --config deno.json --allow-read --allow-write --allow-env --allow-sys cli.ts … --host-dir DIR -q`; restic with `RESTIC_PASSWORD_FILE` and `RESTIC_CACHE_DIR` in the benchmark's directory",
];

// ---------------------------------------------------------------- the runs

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

type ToolName = "capsa" | "restic" | "borg";
/** Per tool, per measure, one value a run. */
const samples: Record<string, Record<string, number[]>> = {};
const packSamples: Record<string, PackStats[]> = {};
const sizeSamples: Record<string, Sizes[]> = {};
const record = (tool: string, what: string, value: number | undefined) => {
  if (value === undefined) return;
  ((samples[tool] ??= {})[what] ??= []).push(value);
};

const base = values.dir
  ? await emptyDir(values.dir)
  : await Deno.makeTempDir({ prefix: "capsa-vs-restic-" });

/** `--dir`: created if missing, refused unless empty (the data set and the password file stay there). */
async function emptyDir(dir: string): Promise<string> {
  await Deno.mkdir(dir, { recursive: true });
  for await (const e of Deno.readDir(dir)) {
    console.error(`bench/vs_restic.ts: --dir ${dir} must be empty (it holds ${e.name})`);
    Deno.exit(2);
  }
  return dir;
}
const data = `${base}/data`;
const password = `${base}/restic-password`;
await Deno.writeTextFile(password, "capsa-bench\n");

const machine = {
  cpu: (await Deno.readTextFile("/proc/cpuinfo").catch(() => "")).match(/^model name\s*:\s*(.*)$/m)
    ?.[1] ?? "unknown",
  cores: navigator.hardwareConcurrency,
  memoryGiB: Math.round(Deno.systemMemoryInfo().total / 1024 ** 3),
  os: `${Deno.build.os} ${Deno.osRelease()}`,
  deno: Deno.version.deno,
  restic: await versionOf("restic", ["version"]),
  borg: HAS_BORG ? await versionOf("borg", ["--version"]) : undefined,
  rss: GNU_TIME ? "/usr/bin/time -f %M" : "/proc/PID/status VmHWM, polled every 20 ms",
};

const progress = (text: string) => console.error(`[vs_restic] ${text}`);

try {
  progress(
    `generating ${FILES.toLocaleString("en")} files in ${
      DIRS.toLocaleString("en")
    } directories under ${data}`,
  );
  const t0 = performance.now();
  const dataBytes = await generate(data);
  progress(
    `${(dataBytes / MiB).toFixed(1)} MiB in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );

  for (let run = 0; run < RUNS; run++) {
    const dir = `${base}/run-${run}`;
    const all: Tool[] = [
      capsaTool(`${dir}/capsa`, data),
      resticTool(`${dir}/restic`, data, password),
      ...(HAS_BORG ? [borgTool(`${dir}/borg`, data)] : []),
    ];
    // Which tool goes first alternates between runs (the page cache, the disk's state).
    const tools = run % 2 === 0 ? all : [...all].reverse();
    for (const t of all) await Deno.mkdir(`${dir}/${t.name}`, { recursive: true });
    const step = async (what: string, f: (t: Tool) => Promise<Measured> | undefined) => {
      for (const t of tools) {
        const m = await f(t);
        if (m === undefined) continue;
        record(t.name, what, m.s);
        record(t.name, `${what} rss`, m.rss);
        progress(
          `run ${run + 1}/${RUNS} ${t.name} ${what}: ${m.s.toFixed(2)} s, ${fmtBytes(m.rss)}`,
        );
      }
    };
    await step("init", (t) => t.init());
    await step("ingest", (t) => t.ingest());
    for (const t of tools) {
      (packSamples[t.name] ??= []).push(await t.packs());
      const size = await t.size();
      (sizeSamples[t.name] ??= []).push(size);
      record(t.name, "size", size.total);
    }
    await step("rerun", (t) => t.rerun());
    await step("open", (t) => t.open());
    await step("full rebuild", (t) => t.fullRebuild());
    await step("snapshot", (t) => t.snapshot?.());
    await step("snapshot-path rebuild", (t) => t.snapshotRebuild?.());
    await step("restore", (t) => t.restore());
    if (!values.keep) await Deno.remove(dir, { recursive: true });
  }

  const report = values.json ? JSON.stringify(jsonReport(dataBytes), null, 2) : markdown(dataBytes);
  console.log(report);
  if (values.out) await Deno.writeTextFile(values.out, report + "\n");
} catch (e) {
  if (!(e instanceof CommandFailed)) throw e;
  console.error(`bench/vs_restic.ts: a command failed (files kept under ${base}):\n${e.message}`);
  Deno.exit(1);
}
if (!values.keep && !values.dir) await Deno.remove(base, { recursive: true });

// ---------------------------------------------------------------- the report

function fmtBytes(n: number | undefined): string {
  if (n === undefined || Number.isNaN(n)) return "—";
  if (n >= 1024 * MiB) return `${(n / (1024 * MiB)).toFixed(2)} GiB`;
  if (n >= 100 * MiB) return `${(n / MiB).toFixed(0)} MiB`;
  if (n >= MiB) return `${(n / MiB).toFixed(1)} MiB`;
  return `${(n / KiB).toFixed(1)} KiB`;
}

function med(tool: ToolName, what: string): number | undefined {
  const xs = samples[tool]?.[what];
  return xs && xs.length > 0 ? median(xs) : undefined;
}

interface Row {
  measure: string;
  capsa: string;
  restic: string;
  borg?: string;
  /** capsa / restic, when both are numbers. */
  ratio: number | undefined;
  floor: string;
  /** undefined: reported only. */
  pass: boolean | undefined;
}

function rows(): Row[] {
  const out: Row[] = [];
  const seconds = (x: number | undefined) => x === undefined ? "—" : `${x.toFixed(2)} s`;
  const timed = (
    measure: string,
    what: string,
    floor?: number,
    extra: (tool: ToolName, x: number) => string = () => "",
  ) => {
    const cell = (tool: ToolName) => {
      const x = med(tool, what);
      return x === undefined ? "—" : seconds(x) + extra(tool, x);
    };
    const c = med("capsa", what);
    const r = med("restic", what);
    const ratio = c !== undefined && r !== undefined ? c / r : undefined;
    out.push({
      measure,
      capsa: cell("capsa"),
      restic: cell("restic"),
      ...(HAS_BORG ? { borg: cell("borg") } : {}),
      ratio,
      floor: floor === undefined ? "reported" : `ratio ≤ ${floor}`,
      pass: floor === undefined || ratio === undefined ? undefined : ratio <= floor,
    });
    const rss = (tool: ToolName) => fmtBytes(med(tool, `${what} rss`));
    const cr = med("capsa", `${what} rss`);
    const rr = med("restic", `${what} rss`);
    out.push({
      measure: `${measure}: peak RSS`,
      capsa: rss("capsa"),
      restic: rss("restic"),
      ...(HAS_BORG ? { borg: rss("borg") } : {}),
      ratio: cr !== undefined && rr !== undefined ? cr / rr : undefined,
      floor: "reported",
      pass: undefined,
    });
  };
  const perSecond = (_: ToolName, s: number) =>
    ` (${Math.round(FILES / s).toLocaleString("en")} files/s)`;
  timed("init", "init");
  timed("bulk ingest", "ingest", 0.67, perSecond);

  const packCell = (tool: ToolName) => {
    const all = packSamples[tool];
    if (!all || all.length === 0) return "—";
    const p = all[all.length >> 1]!;
    const off = p.offTarget === undefined
      ? ""
      : `; ${p.offTarget.toLocaleString("en")} off target (±10 % of ${fmtBytes(p.target)})`;
    return `${p.count.toLocaleString("en")} packs, min/median/max ${fmtBytes(p.min)} / ${
      fmtBytes(p.median)
    } / ${fmtBytes(p.max)}${off}`;
  };
  const capsaPacks = packSamples.capsa ?? [];
  const resticPacks = packSamples.restic ?? [];
  out.push({
    measure: "packs written by the ingest",
    capsa: packCell("capsa"),
    restic: packCell("restic"),
    ...(HAS_BORG ? { borg: packCell("borg") } : {}),
    ratio: capsaPacks.length && resticPacks.length
      ? median(capsaPacks.map((p) => p.count)) / median(resticPacks.map((p) => p.count))
      : undefined,
    floor: "within 10 % of the target size except the last",
    pass: capsaPacks.length > 0 && capsaPacks.every((p) => p.offTarget === 0),
  });

  const sizeCell = (tool: ToolName) => {
    const all = sizeSamples[tool];
    if (!all || all.length === 0) return "—";
    const total = median(all.map((s) => s.total));
    const parts = Object.keys(all[0]!.parts).map((k) =>
      `${k} ${fmtBytes(median(all.map((s) => s.parts[k] ?? 0)))}`
    );
    return `${fmtBytes(total)} (${parts.join(", ")})`;
  };
  const cs = med("capsa", "size");
  const rs = med("restic", "size");
  const sizeRatio = cs !== undefined && rs !== undefined ? cs / rs : undefined;
  out.push({
    measure: "store size after the ingest",
    capsa: sizeCell("capsa"),
    restic: sizeCell("restic"),
    ...(HAS_BORG ? { borg: sizeCell("borg") } : {}),
    ratio: sizeRatio,
    floor: "ratio ≤ 1.05",
    pass: sizeRatio === undefined ? undefined : sizeRatio <= 1.05,
  });
  timed("rerun of the unchanged tree", "rerun");
  timed("open", "open");
  timed("full rebuild", "full rebuild", 0.75);
  timed("capsa snapshot", "snapshot");
  timed("snapshot-path rebuild", "snapshot-path rebuild");
  timed("restore", "restore");
  return out;
}

function markdown(dataBytes: number): string {
  const head = [
    "measure",
    "capsa median",
    "restic median",
    ...(HAS_BORG ? ["borg median"] : []),
    "ratio capsa/restic",
    "floor (issue 12)",
    "pass/fail",
  ];
  const lines = [
    `${FILES.toLocaleString("en")} files of 1–4 KiB (${
      (dataBytes / MiB).toFixed(1)
    } MiB of seeded random bytes, seed ${SEED}) in ${
      DIRS.toLocaleString("en")
    } directories; medians of ${RUNS} run${
      RUNS === 1 ? "" : "s"
    }, each measure alternated between the tools.`,
    `Machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB, ${machine.os}; Deno ${machine.deno}; ${machine.restic}${
      machine.borg ? `; ${machine.borg}` : ""
    }; peak RSS by ${machine.rss}.`,
    "",
    `| ${head.join(" | ")} |`,
    `| ${head.map(() => "---").join(" | ")} |`,
  ];
  for (const r of rows()) {
    lines.push(
      `| ${
        [
          r.measure,
          r.capsa,
          r.restic,
          ...(HAS_BORG ? [r.borg ?? "—"] : []),
          r.ratio === undefined ? "—" : r.ratio.toFixed(2),
          r.floor,
          r.pass === undefined ? "—" : r.pass ? "pass" : "fail",
        ].join(" | ")
      } |`,
    );
  }
  lines.push("", ...LEGEND.map((l) => `- ${l}`));
  return lines.join("\n");
}

function jsonReport(dataBytes: number) {
  return {
    files: FILES,
    dirs: DIRS,
    runs: RUNS,
    seed: SEED,
    dataBytes,
    machine,
    samples,
    packs: packSamples,
    sizes: sizeSamples,
    rows: rows(),
    legend: LEGEND,
  };
}
