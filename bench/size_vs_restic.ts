/**
 * On-disk size of the same real, mixed files in capsa and in restic (issue
 * 14: ≤ 1.05× restic's repository), measured in one run:
 *
 * - capsa: `capsa init STORE` (default config: zstd level 3, or `--level N`)
 *   and one `capsa put STORE docs --from DIR`, whole processes;
 * - restic: `restic init` and `restic backup --compression auto DIR`
 *   (repository format 2, zstd), with `RESTIC_PASSWORD` in its environment;
 * - borg, when installed: `borg init -e none` and
 *   `borg create --compression zstd,3` of the same directory.
 *
 * Sizes are apparent bytes of every file under the store / repository
 * (`du -sb`). capsa's is broken down from the packs' TOCs: blob bodies as
 * stored (raw → stored), TOCs (manifests included), pack headers and
 * trailers, index snapshots and the rest; restic's into `data/`, `index/`,
 * `snapshots/` and the rest.
 *
 * Usage: deno run -A bench/size_vs_restic.ts [--from /usr/share/doc]
 *          [--level 3] [--dir DIR] [--keep]
 * Needs `restic` on the PATH (otherwise prints one line and exits 0).
 */

import { parseArgs } from "node:util";
import { openLocalFs } from "../drivers/localfs/mod.ts";
import { PACK_HEADER_BYTES, PACK_TRAILER_BYTES, readPackToc } from "../format/pack.ts";
import { PACK_PREFIX, SNAPSHOT_PREFIX } from "../layout.ts";
import { openStore } from "../store/store.ts";
import { CAPSA } from "./_capsa.ts";

const { values } = parseArgs({
  options: {
    from: { type: "string", default: "/usr/share/doc" },
    level: { type: "string", default: "3" },
    dir: { type: "string", default: "" },
    keep: { type: "boolean", default: false },
    encrypt: { type: "boolean", default: false },
  },
});
/** `--encrypt`: capsa encrypts too, as restic always does (the passphrase in the environment). */
const PASS_ENV: Record<string, string> = values.encrypt
  ? { CAPSA_PASSPHRASE: "capsa-size-bench" }
  : {};

const dec = new TextDecoder();
const MB = 1e6;

async function runs(program: string, args: string[]): Promise<boolean> {
  try {
    return (await new Deno.Command(program, { args, stdout: "null", stderr: "null" }).output())
      .success;
  } catch {
    return false;
  }
}

async function run(
  program: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ s: number; stdout: string }> {
  const t0 = performance.now();
  const out = await new Deno.Command(program, { args, env, stdout: "piped", stderr: "piped" })
    .output();
  const s = (performance.now() - t0) / 1000;
  if (!out.success) {
    console.error(
      `${program} ${args.join(" ")} exited ${out.code}:\n${dec.decode(out.stderr).trim()}`,
    );
    Deno.exit(1);
  }
  return { s, stdout: dec.decode(out.stdout) };
}

/** Apparent sizes of every file under `dir`, by path relative to it. */
async function filesUnder(dir: string, rel = ""): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for await (const e of Deno.readDir(rel === "" ? dir : `${dir}/${rel}`)) {
    const path = rel === "" ? e.name : `${rel}/${e.name}`;
    if (e.isDirectory) { for (const [k, v] of await filesUnder(dir, path)) out.set(k, v); }
    else out.set(path, (await Deno.lstat(`${dir}/${path}`)).size);
  }
  return out;
}

const sum = (m: Map<string, number>, prefix = "") =>
  [...m].filter(([k]) => k.startsWith(prefix)).reduce((a, [, v]) => a + v, 0);

if (!await runs("restic", ["version"])) {
  console.log("bench/size_vs_restic.ts: skipped: restic is not installed (apt-get install restic)");
  Deno.exit(0);
}
const HAS_BORG = await runs("borg", ["--version"]);
const base = values.dir || await Deno.makeTempDir({ prefix: "capsa-size-bench-" });
await Deno.mkdir(base, { recursive: true });
const data = values.from;
const input = await filesUnder(data).catch(() => new Map<string, number>());
const inputBytes = sum(input);

// capsa
const store = `${base}/store`;
const host = `${base}/host`;
await run(Deno.execPath(), [
  ...CAPSA,
  "init",
  store,
  "--kit",
  `${base}/kit.txt`,
  "--compression-level",
  values.level,
  ...(values.encrypt ? ["--encrypt"] : []),
  "--host-dir",
  host,
  "-q",
], PASS_ENV);
const capsaPut = await run(Deno.execPath(), [
  ...CAPSA,
  "put",
  store,
  "docs",
  "--from",
  data,
  "--host-dir",
  host,
  "-q",
  "--json",
], PASS_ENV);
const capsaFiles = await filesUnder(store);
const capsaTotal = sum(capsaFiles);
const packs = [...capsaFiles].filter(([k]) => k.startsWith(PACK_PREFIX));
const driver = await openLocalFs(store);
// An encrypted store's TOCs are read with its keys.
const opened = values.encrypt
  ? await openStore(driver, { passphrase: PASS_ENV.CAPSA_PASSPHRASE, readOnly: true })
  : undefined;
const keys = opened?.keys;
let raw = 0, stored = 0, blobs = 0, zstdBlobs = 0, manifests = 0, tocs = 0;
for (const [key, size] of packs) {
  const toc = await readPackToc(driver, key, { size, keys });
  let body = 0;
  for (const b of toc.blobs) {
    raw += b.rawLength;
    body += b.storedLength;
    blobs++;
    if (b.compression === "zstd") zstdBlobs++;
  }
  stored += body;
  manifests += toc.manifests.length;
  tocs += size - body - PACK_HEADER_BYTES - PACK_TRAILER_BYTES;
}
const inline = JSON.parse(capsaPut.stdout);

// restic
const repo = `${base}/repo`;
const resticEnv = {
  RESTIC_REPOSITORY: repo,
  RESTIC_PASSWORD: "capsa-size-bench",
  RESTIC_CACHE_DIR: `${base}/restic-cache`,
};
const resticVersion = (await run("restic", ["version"])).stdout.trim();
await run("restic", ["init", "-q"], resticEnv);
const resticBackup = await run(
  "restic",
  ["backup", "-q", "--compression", "auto", data],
  resticEnv,
);
const resticFiles = await filesUnder(repo);
const resticTotal = sum(resticFiles);

// borg
let borg: { total: number; s: number; version: string } | undefined;
if (HAS_BORG) {
  const brepo = `${base}/borg`;
  const env = {
    BORG_REPO: brepo,
    BORG_BASE_DIR: `${base}/borg-home`,
    BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: "yes",
  };
  const version = (await run("borg", ["--version"])).stdout.trim();
  await run("borg", ["init", "-e", "none"], env);
  const b = await run("borg", ["create", "--compression", "zstd,3", "::docs", data], env);
  borg = { total: sum(await filesUnder(brepo)), s: b.s, version };
}

if (!values.dir && !values.keep) await Deno.remove(base, { recursive: true });

const mb = (n: number) => n >= MB ? `${(n / MB).toFixed(2)} MB` : `${(n / 1e3).toFixed(1)} kB`;
const ratio = capsaTotal / resticTotal;
console.log(
  `Data: ${data}: ${input.size.toLocaleString("en")} entries, ${mb(inputBytes)} (apparent). ` +
    `capsa: ${inline.files} files put in ${capsaPut.s.toFixed(2)} s; ${resticVersion}: backup ` +
    `in ${resticBackup.s.toFixed(2)} s${
      borg ? `; ${borg.version}: create in ${borg.s.toFixed(2)} s` : ""
    }.\n`,
);
console.log(
  `| measure | capsa (zstd level ${values.level}${
    values.encrypt ? ", encrypted" : ""
  }) | restic (--compression auto) |${borg ? " borg (-e none, zstd,3) |" : ""}`,
);
console.log(`| --- | --- | --- |${borg ? " --- |" : ""}`);
console.log(
  `| store / repository size | ${mb(capsaTotal)} | ${mb(resticTotal)} |${
    borg ? ` ${mb(borg.total)} |` : ""
  }`,
);
console.log(
  `| against restic (floor ≤ 1.05) | **${ratio.toFixed(3)}×** ${
    ratio <= 1.05 ? "pass" : "fail"
  } | 1 |${borg ? ` ${(borg.total / resticTotal).toFixed(3)}× |` : ""}`,
);
console.log(
  `| blob bodies | ${mb(stored)} stored of ${mb(raw)} raw in ${blobs.toLocaleString("en")} blobs (${
    zstdBlobs.toLocaleString("en")
  } compressed) | \`data/\` ${mb(sum(resticFiles, "data/"))} (blobs, their TOCs and MACs) |${
    borg ? " — |" : ""
  }`,
);
console.log(
  `| per-pack TOCs (${manifests.toLocaleString("en")} manifests), headers, trailers | ${
    mb(tocs + packs.length * (PACK_HEADER_BYTES + PACK_TRAILER_BYTES))
  } in ${packs.length} packs | — |${borg ? " — |" : ""}`,
);
console.log(
  `| index | snapshots ${mb(sum(capsaFiles, SNAPSHOT_PREFIX))} | \`index/\` ${
    mb(sum(resticFiles, "index/"))
  } |${borg ? " — |" : ""}`,
);
console.log(
  `| everything else | ${
    mb(capsaTotal - sum(capsaFiles, PACK_PREFIX) - sum(capsaFiles, SNAPSHOT_PREFIX))
  } | ${
    mb(resticTotal - sum(resticFiles, "data/") - sum(resticFiles, "index/"))
  } (snapshots, keys, config) |${borg ? " — |" : ""}`,
);
