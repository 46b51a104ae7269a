/**
 * `deno task demo`: capsa's main job, end to end, on a local store in a
 * temporary directory.
 *
 * 1. generates a few thousand files of varied sizes (some above the 1 MiB
 *    chunk threshold, a few duplicates);
 * 2. creates a store and its Recovery Kit (`capsa init`);
 * 3. stores every file (`capsa put --from`, the same code);
 * 4. destroys the index (host cache and every snapshot) and every replica of
 *    the descriptor, and shows the store is Corrupted;
 * 5. rebuilds with the Recovery Kit (`capsa rebuild --kit`), with progress;
 * 6. reopens the store and checks every file byte for byte.
 *
 * Prints the RebuildStats and a one-line verdict; exits 1 on any mismatch.
 *
 * ```sh
 * deno task demo [--files N] [--keep] [--json]
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { flagMistake } from "./_args.ts";
import { defaultConfig } from "../format/config.ts";
import { initStore, openStore } from "../store/store.ts";
import { type CommandContext, listAll, openLocation } from "./_store.ts";
import { Passphrases } from "./_passphrase.ts";
import { reserveFile } from "./_files.ts";
import { EXIT, formatBytes, formatDuration, Output } from "./_output.ts";
import { createProgress, transferFormat } from "./_progress.ts";
import { listTree, putTree } from "./_tree.ts";
import { pool } from "../pool.ts";
import { readKitFile } from "./_files.ts";
import { rebuildLines, type RebuildReport, runRebuild } from "./commands/rebuild.ts";
import { DESCRIPTOR_KEY, DESCRIPTOR_REPLICA_KEY, SNAPSHOT_PREFIX } from "../layout.ts";

/** Options of {@linkcode runDemo}. */
export interface DemoOptions {
  /** How many files to generate (default 3000). */
  files?: number;
  /** Keep the temporary directory (default: removed at the end). */
  keep?: boolean;
  /** Where output goes. */
  out?: Output;
}

/** What {@linkcode runDemo} reports. */
export interface DemoReport {
  /** `true` when every file came back byte for byte. */
  ok: boolean;
  /** The one-line verdict. */
  verdict: string;
  /** The temporary directory (removed unless kept). */
  dir: string;
  /** Files generated and stored. */
  files: number;
  /** Their total size. */
  bytes: number;
  /** Files larger than the chunk threshold. */
  chunkedFiles: number;
  /** The state the store was in after the destruction. */
  stateAfterDestruction: string;
  /** The rebuild's stats and problems. */
  rebuild: RebuildReport;
  /** Files that came back different or not at all. */
  mismatches: string[];
  /** Elapsed time of each step, ms. */
  timings: Record<string, number>;
}

/** A small, fast, seeded PRNG (mulberry32), so every run makes the same files. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Fills `n` bytes from a seed (xorshift32: fast, and incompressible enough). */
function bytesFrom(seed: number, n: number): Uint8Array {
  const words = new Uint32Array(Math.ceil(n / 4));
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    words[i] = x;
  }
  return new Uint8Array(words.buffer, 0, n);
}

/**
 * Generates the demo's files under `dir`: mostly small (some small enough to
 * be inlined in their manifest), some of tens or hundreds of KiB, a few
 * above the chunk threshold, and a few exact duplicates.
 * @param dir The directory.
 * @param count How many files.
 * @returns Their count, total size and how many are chunked.
 */
export async function generateFiles(
  dir: string,
  count: number,
): Promise<{ files: number; bytes: number; chunked: number }> {
  const rand = prng(0xca95a);
  const threshold = defaultConfig().chunkThreshold;
  const bigEvery = Math.max(1, Math.floor(count / 6));
  let bytes = 0;
  let chunked = 0;
  let previous: Uint8Array | undefined;
  const made = new Set<string>();
  for (let i = 0; i < count; i++) {
    const r = rand();
    let size: number;
    const big = i % bigEvery === Math.floor(bigEvery / 2);
    if (big) size = threshold + Math.floor(rand() * 2 * threshold);
    else if (r < 0.1) size = Math.floor(rand() * 256); // inlined in the manifest
    else if (r < 0.7) size = 256 + Math.floor(rand() * 4096);
    else if (r < 0.97) size = 4096 + Math.floor(rand() * 28 * 1024);
    else size = 32 * 1024 + Math.floor(rand() * 224 * 1024);
    // Every 100th file repeats the previous one: stored once (deduplicated).
    const body = i % 100 === 99 && !big && previous ? previous : bytesFrom(i + 1, size);
    previous = body;
    if (body.length > threshold) chunked++;
    const sub = `${dir}/set-${String(Math.floor(i / 100)).padStart(3, "0")}`;
    if (!made.has(sub)) {
      await Deno.mkdir(sub, { recursive: true });
      made.add(sub);
    }
    await Deno.writeFile(`${sub}/file-${String(i).padStart(5, "0")}.bin`, body);
    bytes += body.length;
  }
  return { files: count, bytes, chunked };
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Runs the demo.
 * @param options File count, whether to keep the directory, output.
 * @returns The report.
 */
export async function runDemo(options: DemoOptions = {}): Promise<DemoReport> {
  const count = options.files ?? 3000;
  const out = options.out ?? new Output();
  const say = (line: string) => {
    if (!out.json) out.stdout(line + "\n");
  };
  const timings: Record<string, number> = {};
  const step = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const t = performance.now();
    try {
      return await fn();
    } finally {
      timings[name] = Math.round(performance.now() - t);
    }
  };
  const dir = await Deno.makeTempDir({ prefix: "capsa-demo-" });
  const src = `${dir}/files`;
  const location = `${dir}/store`;
  const hostDir = `${dir}/host`;
  const ctx: CommandContext = { out, hostDir, passphrases: new Passphrases({}, () => {}) };
  const namespace = "demo";
  try {
    say(`capsa demo in ${dir}`);

    const gen = await step("generate", () => generateFiles(src, count));
    say(
      `1/6 generated ${gen.files} files, ${formatBytes(gen.bytes)} (${gen.chunked} above the ` +
        `${formatBytes(defaultConfig().chunkThreshold)} chunk threshold) in ${src}`,
    );

    const kitPath = `${dir}/capsa-recovery-kit.txt`;
    const storeId = await step("init", async () => {
      const reserved = await reserveFile(dir);
      const opened = await openLocation(ctx, location, { create: true });
      try {
        const { store, recoveryKit } = await initStore(opened.driver, {
          hostStorage: opened.host,
          location: opened.driver.location,
        });
        await store.close();
        await reserved.commit(kitPath, new TextEncoder().encode(recoveryKit));
        return store.storeId;
      } finally {
        await reserved.discard();
        await opened.close();
      }
    });
    say(`2/6 created store ${storeId} at ${location}; Recovery Kit in ${kitPath}`);

    const put = await step("put", async () => {
      const opened = await openLocation(ctx, location);
      const store = await openStore(opened.driver, { hostStorage: opened.host });
      try {
        const r = await putTree(store, namespace, src, {
          progress: createProgress(transferFormat("put"), out.quiet),
        });
        await store.snapshotIndex(); // as `capsa snapshot` would: destroyed below with the rest
        await store.close();
        return r;
      } finally {
        await store.close();
        await opened.close();
      }
    });
    say(
      `3/6 put --from: ${put.files} files, ${formatBytes(put.bytes)} in ${
        formatDuration(timings["put"]!)
      }`,
    );

    const destroyed = await step("destroy", async () => {
      await Deno.remove(hostDir, { recursive: true });
      const opened = await openLocation(
        { out, hostDir: `${dir}/host-empty`, passphrases: new Passphrases({}, () => {}) },
        location,
      );
      try {
        const gone = [DESCRIPTOR_KEY, DESCRIPTOR_REPLICA_KEY];
        for await (const info of opened.driver.list(SNAPSHOT_PREFIX)) gone.push(info.key);
        for (const key of gone) await opened.driver.delete(key);
        return gone;
      } finally {
        await opened.close();
        await Deno.remove(`${dir}/host-empty`, { recursive: true }).catch(() => {});
      }
    });
    const state = await (async () => {
      const opened = await openLocation(ctx, location);
      const store = await openStore(opened.driver, { hostStorage: opened.host, readOnly: true });
      const s = store.state;
      await store.close();
      await opened.close();
      return s;
    })();
    say(
      `4/6 destroyed the host directory (index cache, host descriptor replica) and ${destroyed.length} ` +
        `objects on the Location: ${destroyed.join(", ")}; the store is now ${state}`,
    );

    say("5/6 rebuild --kit …");
    const rebuild = await step("rebuild", async () => {
      const opened = await openLocation(ctx, location);
      const store = await openStore(opened.driver, { hostStorage: opened.host });
      try {
        const r = await runRebuild(store, { recoveryKit: await readKitFile(kitPath) }, { out });
        await store.close();
        return r;
      } finally {
        await store.close();
        await opened.close();
      }
    });
    if (!out.json) { for (const line of rebuildLines(rebuild)) say(`    ${line}`); }

    const mismatches = await step("verify", async () => {
      const bad: string[] = [];
      const opened = await openLocation(ctx, location);
      const store = await openStore(opened.driver, { hostStorage: opened.host, readOnly: true });
      try {
        const keys: string[] = [];
        for await (const info of listAll(store, namespace)) keys.push(info.key);
        const want = (await listTree(src)).files;
        const listed = new Set(keys);
        for (const f of want) if (!listed.has(f.key)) bad.push(`${f.key}: missing`);
        if (keys.length !== want.length) {
          bad.push(`the store lists ${keys.length} artifacts, ${want.length} were put`);
        }
        const progress = createProgress(transferFormat("check"), out.quiet);
        let done = 0;
        progress.start(want.length, { bytes: "" });
        await pool(want.filter((f) => listed.has(f.key)), async (f) => {
          const [got, orig] = await Promise.all([
            store.get(namespace, f.key),
            f.dir ? new Uint8Array(0) : Deno.readFile(f.path), // a directory: an empty artifact
          ]);
          if (!same(got, orig)) bad.push(`${f.key}: content differs`);
          progress.update(++done, { bytes: "" });
        }, { concurrency: 16 });
        progress.stop();
      } finally {
        await store.close();
        await opened.close();
      }
      return bad;
    });
    const ok = mismatches.length === 0 && state === "Corrupted";
    say(
      `6/6 checked ${gen.files} files byte for byte: ${
        mismatches.length === 0 ? "all identical" : `${mismatches.length} mismatches`
      }`,
    );
    for (const m of mismatches.slice(0, 20)) say(`    ${m}`);
    const verdict = ok
      ? `verdict: OK: all ${gen.files} files (${formatBytes(gen.bytes)}) came back byte for byte ` +
        `after the index and every descriptor replica were destroyed (rebuild: ${
          formatDuration(rebuild.stats.duration)
        })`
      : `verdict: FAILED: ${
        state !== "Corrupted"
          ? `the store was ${state}, not Corrupted, after the destruction; `
          : ""
      }${mismatches.length} of ${gen.files} files did not come back intact`;
    say(verdict);
    return {
      ok,
      verdict,
      dir,
      files: gen.files,
      bytes: gen.bytes,
      chunkedFiles: gen.chunked,
      stateAfterDestruction: state,
      rebuild,
      mismatches,
      timings,
    };
  } finally {
    if (!options.keep) await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** What `deno task demo --help` prints. */
export const DEMO_HELP = `usage: deno task demo [--files N] [--keep] [--json] [-q]

Runs capsa's main job end to end on a local store in a temporary directory: generates N files,
creates a store and its Recovery Kit, stores every file (put --from), destroys the index and every
descriptor replica, rebuilds with the Recovery Kit, and checks every file byte for byte.

flags:
  --files N    how many files to generate (default 3000, at most 1000000)
  --keep       keep the temporary directory (its path is printed)
  --json       print the report as one JSON document
  -q, --quiet  no progress bars or notes
  -h, --help   show this help

exit codes: 0 every file came back, 1 a mismatch or a failure, 2 usage error`;

if (import.meta.main) {
  const options = {
    files: { type: "string" },
    keep: { type: "boolean" },
    json: { type: "boolean" },
    quiet: { type: "boolean", short: "q" },
    help: { type: "boolean", short: "h" },
  } as const;
  let values: ReturnType<typeof parseArgs<{ args: string[]; options: typeof options }>>["values"];
  try {
    values = parseArgs({ args: Deno.args, options }).values;
  } catch (e) {
    console.error(`capsa demo: usage: ${flagMistake(e, options)} (see: deno task demo --help)`);
    Deno.exit(EXIT.usage);
  }
  if (values.help) {
    console.log(DEMO_HELP);
    Deno.exit(EXIT.ok);
  }
  const files = values.files === undefined ? 3000 : Number(values.files);
  if (!Number.isSafeInteger(files) || files < 1 || files > 1_000_000) {
    console.error("capsa demo: usage: --files N (1 to 1000000)");
    Deno.exit(EXIT.usage);
  }
  const out = new Output({ json: values.json ?? false, quiet: values.quiet ?? false });
  try {
    const report = await runDemo({ files, keep: values.keep ?? false, out });
    if (out.json) out.result(report, () => "");
    Deno.exit(report.ok ? EXIT.ok : EXIT.failed);
  } catch (e) {
    Deno.exit(out.error(e));
  }
}
