/**
 * The `capsa` CLI end to end: every command run as a real process
 * (`deno run cli.ts …`) on stores in real directories, every exit code,
 * `--json` parsed for every command, no progress output when piped, Ctrl-C
 * during a rebuild, `capsa serve`, the demo (`deno task demo`), and the
 * single-file bundle under narrow permissions.
 */

import assert from "node:assert/strict";
import { denoDir, runToEnd } from "./processes.ts";
import { acquireLease, readLease } from "../store/lease.ts";
import { openStore } from "../store/store.ts";
import { INDEX_SCHEMA_VERSION } from "../index/schema.ts";
import { openLocalFs } from "../drivers/localfs/mod.ts";
import { S3_TEST_CREDENTIALS, startS3Server } from "./s3_server.ts";
import { DESCRIPTOR_KEY, DESCRIPTOR_REPLICA_KEY } from "../layout.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const CLI = `${ROOT}/cli.ts`;
const CONFIG = `${ROOT}/deno.json`;
const FLAGS = [
  "--no-prompt",
  "--config",
  CONFIG,
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-sys=hostname",
];
const enc = new TextEncoder();
const dec = new TextDecoder();

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  bytes: Uint8Array;
}

/** Deno's own cache directory, kept out of the sandboxed XDG_CACHE_HOME (tests/processes.ts). */
const DENO_DIR: string = await denoDir();

/** The environment of a CLI process whose per-user cache directory is `cache`. */
function envFor(cache: string): Record<string, string> {
  return { NO_COLOR: "1", XDG_CACHE_HOME: cache, DENO_DIR };
}

interface RunOptions {
  stdin?: Uint8Array;
  cwd?: string;
  cache: string;
  program?: string[];
}

function run(args: string[], options: RunOptions): Promise<Run> {
  const command = new Deno.Command(Deno.execPath(), {
    args: [...(options.program ?? ["run", ...FLAGS, CLI]), ...args],
    cwd: options.cwd ?? options.cache,
    env: envFor(options.cache),
    stdin: options.stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  });
  return runToEnd(command, options.stdin);
}

/** A temporary directory with a cache dir (XDG_CACHE_HOME) and helpers bound to it. */
async function sandbox() {
  const dir = await Deno.makeTempDir({ prefix: "capsa-cli-" });
  const cache = `${dir}/cache`;
  await Deno.mkdir(cache);
  const capsa = (args: string[], o: Omit<RunOptions, "cache"> = {}) =>
    run(args, { cache, cwd: dir, ...o });
  const json = async (args: string[], o: Omit<RunOptions, "cache"> = {}) => {
    const r = await capsa([...args, "--json"], o);
    let doc: Record<string, unknown>;
    try {
      doc = JSON.parse(r.stdout);
    } catch {
      throw new Error(`not one JSON document on stdout: ${r.stdout}\nstderr: ${r.stderr}`);
    }
    return { ...r, doc };
  };
  return {
    dir,
    cache,
    capsa,
    json,
    dispose: () => Deno.remove(dir, { recursive: true }),
  };
}

/** Whether text holds what a progress bar draws with: carriage returns or escape sequences. */
function hasBarControls(text: string): boolean {
  return text.includes("\r") || text.includes("\u001b");
}

/** Asserts the one-line error format and returns the code. */
function errorLine(r: Run): string {
  const lines = r.stderr.trim().split("\n").filter((l) => !l.startsWith("capsa: warning:"));
  assert.equal(lines.length, 1, `exactly one error line, got:\n${r.stderr}`);
  const m = /^capsa: ([a-z_]+): (.+)$/.exec(lines[0]!);
  assert.ok(m, `error line format: ${lines[0]}`);
  return m[1]!;
}

function jsonError(doc: Record<string, unknown>): { code: string; message: string } {
  const e = doc["error"] as { code: string; message: string } | undefined;
  assert.ok(e && typeof e.code === "string" && typeof e.message === "string", JSON.stringify(doc));
  return e;
}

async function initStoreCli(s: Awaited<ReturnType<typeof sandbox>>, name = "store") {
  const r = await s.json(["init", `${s.dir}/${name}`, "--kit", `${s.dir}/${name}.kit`]);
  assert.equal(r.code, 0, r.stderr);
  return {
    location: `${s.dir}/${name}`,
    kit: `${s.dir}/${name}.kit`,
    storeId: String(r.doc["storeId"]),
  };
}

// ------------------------------------------------------------------ usage

Deno.test("capsa --help and COMMAND --help print usage and exit codes; usage errors exit 2", async () => {
  const s = await sandbox();
  try {
    const top = await s.capsa(["--help"]);
    assert.equal(top.code, 0);
    for (
      const c of [
        "init",
        "put",
        "get",
        "ls",
        "rm",
        "stat",
        "status",
        "rebuild",
        "snapshot",
        "kit",
        "serve",
      ]
    ) {
      assert.match(top.stdout, new RegExp(`\\n  ${c} `));
    }
    assert.match(
      top.stdout,
      /exit codes:\n {2}0 +done\n {2}1 +failed.*\n {2}2 +usage.*\n {2}3 .*\n {2}4 .*lease.*\n {2}5 .*corrupted/,
    );
    const commands = [
      "init",
      "put",
      "get",
      "ls",
      "rm",
      "stat",
      "status",
      "rebuild",
      "snapshot",
      "kit",
      "serve",
    ];
    const helps = await Promise.all(commands.map((c) => s.capsa([c, "--help"])));
    helps.forEach((h, i) => {
      assert.equal(h.code, 0, commands[i]);
      assert.match(h.stdout, new RegExp(`^usage: capsa ${commands[i]} `), commands[i]);
      assert.match(h.stdout, /--json/);
      assert.match(h.stdout, /exit codes:/);
      assert.equal(h.stderr, "");
    });
    const asJson = await s.json(["status", "-h"]);
    assert.match(String(asJson.doc["help"]), /^usage: capsa status/);

    const usage = await Promise.all([
      s.capsa([]),
      s.capsa(["frobnicate"]),
      s.capsa(["ls"]),
      s.capsa(["ls", "x", "--bogus"]),
      s.capsa(["rebuild", "x", "--source", "sideways"]),
      s.capsa(["rebuild", "x", "--lease-ttl", "soon"]),
      s.capsa(["put", "x", "ns", "k", "f", "extra"]),
      s.capsa(["put", "x", "ns", "k", "f", "--checksum"]),
      s.capsa(["serve", "x", "--listen", "nowhere"]),
    ]);
    for (const r of usage) {
      assert.equal(r.code, 2, r.stderr);
      assert.equal(errorLine(r), "usage");
    }
    for (const args of [["ls", "--bogus"], ["get", "x", "ns", "k"], ["nope"]]) {
      const j = await s.json(args);
      assert.equal(j.code, 2, args.join(" "));
      assert.equal(jsonError(j.doc).code, "usage");
      assert.equal(j.stderr, "");
    }
  } finally {
    await s.dispose();
  }
});

// ------------------------------------------------------------- init & kit

Deno.test("capsa init writes a 0600 Recovery Kit in the working directory; init and kit never overwrite", async () => {
  const s = await sandbox();
  try {
    const r = await s.json(["init", "store"]);
    assert.equal(r.code, 0, r.stderr);
    const id = String(r.doc["storeId"]);
    assert.match(id, /^[0-9a-f]{32}$/);
    assert.equal(r.doc["kit"], `${s.dir}/capsa-recovery-kit-${id}.txt`);
    assert.equal(r.doc["hash"], "blake3");
    assert.match(String(r.doc["notice"]), /offline/);
    assert.equal(r.doc["hostDir"], `${s.cache}/capsa/${String(r.doc["hostDir"]).slice(-16)}`);
    const kit = await Deno.readTextFile(String(r.doc["kit"]));
    assert.match(kit, new RegExp(`^capsa recovery kit v1\\n[\\s\\S]*store-id: ${id}\\n`));
    assert.equal((await Deno.stat(String(r.doc["kit"]))).mode! & 0o777, 0o600);

    const human = await s.capsa(["init", "other", "--hash", "sha256"]);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /created store [0-9a-f]{32} .*\(hash sha256\)/);
    assert.match(human.stdout, /Keep the Recovery Kit offline/);

    // A second init of the same Location fails, and leaves the store alone.
    const again = await s.capsa(["init", "store", "--kit", "k2.txt"]);
    assert.equal(again.code, 1);
    assert.equal(errorLine(again), "invalid_argument");
    assert.match(again.stderr, /already holds a store/);
    assert.equal(await Deno.stat(`${s.dir}/k2.txt`).catch(() => null), null);

    // An existing kit file is never replaced, and no store is created.
    await Deno.writeTextFile(`${s.dir}/precious.txt`, "mine");
    const clobber = await s.json(["init", "third", "--kit", "precious.txt"]);
    assert.equal(clobber.code, 1);
    assert.equal(jsonError(clobber.doc).code, "file_exists");
    assert.equal(await Deno.readTextFile(`${s.dir}/precious.txt`), "mine");
    assert.equal(await Deno.stat(`${s.dir}/third`).catch(() => null), null);

    // kit re-issues the same kit from the descriptor.
    const out = await s.json(["kit", "store", "--out", "again.txt"]);
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.doc["storeId"], id);
    const reissued = await Deno.readTextFile(`${s.dir}/again.txt`);
    const fields = (t: string) =>
      t.split("\n").filter((l) => /^(store-id|hash|chunking|checksum):/.test(l));
    assert.deepEqual(fields(reissued), fields(kit));
    assert.equal((await Deno.stat(`${s.dir}/again.txt`)).mode! & 0o777, 0o600);
    const twice = await s.capsa(["kit", "store", "--out", "again.txt"]);
    assert.equal(twice.code, 1);
    assert.equal(errorLine(twice), "file_exists");
    const missing = await s.capsa(["kit", "store"]);
    assert.equal(missing.code, 2);
    const noStore = await s.capsa(["kit", "nowhere", "--out", "x.txt"]);
    assert.equal(noStore.code, 1);
    assert.equal(errorLine(noStore), "no_store");
  } finally {
    await s.dispose();
  }
});

// ---------------------------------------------------------- object commands

Deno.test("capsa put/get/ls/stat/rm round trip, with --json parsed for each", async () => {
  const s = await sandbox();
  try {
    const { location } = await initStoreCli(s);
    const body = new Uint8Array(50_000).map((_, i) => (i * 7919) % 251);
    await Deno.writeFile(`${s.dir}/body.bin`, body);

    const put = await s.json([
      "put",
      location,
      "docs",
      "a/b.bin",
      "body.bin",
      "--content-type",
      "application/x-test",
      "--meta",
      "owner=ops",
      "--meta",
      "n=1",
    ]);
    assert.equal(put.code, 0, put.stderr);
    assert.equal(put.doc["size"], body.length);
    assert.equal(put.doc["key"], "a/b.bin");
    assert.match(String(put.doc["version"]), /^[0-9a-hjkmnp-tv-z]{26}$/);

    const fromStdin = await s.capsa(["put", location, "docs", "hello.txt"], {
      stdin: enc.encode("hello\n"),
    });
    assert.equal(fromStdin.code, 0, fromStdin.stderr);
    assert.match(fromStdin.stdout, /^stored docs\/hello\.txt: 6 B, version /);
    const quiet = await s.capsa(["put", location, "other", "x", "-", "-q"], {
      stdin: enc.encode("x"),
    });
    assert.equal(quiet.code, 0);
    assert.equal(quiet.stdout + quiet.stderr, "");

    const get = await s.capsa(["get", location, "docs", "a/b.bin"]);
    assert.equal(get.code, 0, get.stderr);
    assert.deepEqual(get.bytes, body);
    const getFile = await s.json(["get", location, "docs", "hello.txt", "-o", "missing/hello.out"]);
    assert.equal(getFile.code, 1, "the directory missing/ does not exist");
    assert.equal(jsonError(getFile.doc).code, "not_found");
    const getOk = await s.json(["get", location, "docs", "hello.txt", "-o", "hello.out"]);
    assert.equal(getOk.code, 0, getOk.stderr);
    assert.equal(getOk.doc["path"], `${s.dir}/hello.out`);
    assert.equal(await Deno.readTextFile(`${s.dir}/hello.out`), "hello\n");
    assert.deepEqual([...Deno.readDirSync(s.dir)].filter((e) => e.name.includes(".tmp")), []);

    const stat = await s.json(["stat", location, "docs", "a/b.bin"]);
    assert.equal(stat.code, 0);
    assert.equal(stat.doc["contentType"], "application/x-test");
    assert.deepEqual(stat.doc["metadata"], { owner: "ops", n: "1" });
    assert.equal(stat.doc["hash"], "blake3");
    assert.match(String(stat.doc["digest"]), /^[0-9a-f]{64}$/);
    const statText = await s.capsa(["stat", location, "docs", "hello.txt"]);
    assert.match(statText.stdout, /^namespace +docs\nkey +hello\.txt\n/);

    const namespaces = await s.json(["ls", location]);
    assert.deepEqual(namespaces.doc, { namespaces: ["docs", "other"] });
    const keys = await s.json(["ls", location, "docs"]);
    assert.deepEqual((keys.doc["items"] as Array<{ key: string }>).map((i) => i.key), [
      "a/b.bin",
      "hello.txt",
    ]);
    const under = await s.json(["ls", location, "docs", "--prefix", "a/"]);
    assert.deepEqual(
      (under.doc["items"] as Array<{ key: string; size: number }>).map((i) => [i.key, i.size]),
      [["a/b.bin", body.length]],
    );
    assert.equal((await s.capsa(["ls", location, "docs"])).stdout, "a/b.bin\nhello.txt\n");
    assert.match(
      (await s.capsa(["ls", location, "docs", "-l"])).stdout,
      /^ +50000 {2}\d{4}-.*Z {2}[0-9a-hjkmnp-tv-z]{26} {2}a\/b\.bin\n/,
    );

    const rm = await s.json(["rm", location, "docs", "hello.txt"]);
    assert.equal(rm.code, 0);
    assert.deepEqual(rm.doc, { namespace: "docs", key: "hello.txt", deleted: true });
    const versions = await s.json(["stat", location, "docs", "hello.txt", "--versions"]);
    assert.deepEqual(
      (versions.doc["versions"] as Array<{ deleted: boolean }>).map((v) => v.deleted),
      [true, false],
    );
    const gone = await s.capsa(["get", location, "docs", "hello.txt"]);
    assert.equal(gone.code, 1);
    assert.equal(errorLine(gone), "not_found");
    const goneJson = await s.json(["rm", location, "docs", "hello.txt"]);
    assert.equal(goneJson.code, 1);
    assert.equal(jsonError(goneJson.doc).code, "not_found");
    assert.equal(goneJson.stderr, "");

    // Every command closed its store: the host cache is current, no catch-up needed.
    const status = await s.json(["status", location]);
    const index = status.doc["index"] as { source: string };
    assert.equal(index.source, "host-cache");
    assert.equal((status.doc["counts"] as { artifacts: number }).artifacts, 2);

    const nowhere = await s.capsa(["ls", `${s.dir}/nowhere`]);
    assert.equal(nowhere.code, 1);
    assert.equal(errorLine(nowhere), "no_store");
  } finally {
    await s.dispose();
  }
});

Deno.test("capsa put --from and get --to move a tree (no progress output when piped); --to refuses escaping keys", async () => {
  const s = await sandbox();
  try {
    const { location } = await initStoreCli(s);
    const src = `${s.dir}/src`;
    const files = new Map<string, Uint8Array>();
    for (let i = 0; i < 40; i++) {
      const key = `d${i % 4}/sub/f${i}.bin`;
      files.set(key, crypto.getRandomValues(new Uint8Array((i * 977) % 9000)));
    }
    const big = new Uint8Array(1_600_000).map((_, i) => (i * 31) & 255); // above the chunk threshold
    files.set("big.bin", big);
    for (const [k, v] of files) {
      await Deno.mkdir(`${src}/${k.slice(0, k.lastIndexOf("/") + 1)}`, { recursive: true });
      await Deno.writeFile(`${src}/${k}`, v);
    }
    // A FIFO is no file to store (symbolic links are stored: tests/cli_user_test.ts).
    const fifo = await new Deno.Command("mkfifo", { args: [`${src}/fifo`] }).output();
    assert.ok(fifo.success, "mkfifo");

    const put = await s.json(["put", location, "tree", "--from", "src", "--parallelism", "4"]);
    assert.equal(put.code, 0, put.stderr);
    // The files and 9 directories (`.`, d0/. … d3/., d0/sub/. … d3/sub/.), each an artifact.
    assert.equal(put.doc["files"], files.size + 9);
    assert.equal(put.doc["bytes"], [...files.values()].reduce((n, b) => n + b.length, 0));
    assert.deepEqual(put.doc["skipped"], ["fifo"]);
    // Every regular file was opened in the reader worker (cli/_reader.ts), the big one too.
    assert.equal(put.doc["readByWorker"], files.size);
    // One write session: the 41 files (1.8 MB) fill a single pack of the 16 MiB target.
    const packs: string[] = [];
    const walk = (d: string) => {
      for (const e of Deno.readDirSync(d)) {
        if (e.isDirectory) walk(`${d}/${e.name}`);
        else packs.push(e.name);
      }
    };
    walk(`${location}/packs`);
    assert.equal(packs.length, 1, packs.join(", "));
    // Piped stderr: no progress bar, no control characters, only the note about the FIFO.
    assert.ok(!hasBarControls(put.stderr), put.stderr);
    assert.equal(put.stderr, "capsa: skipped fifo: not a regular file or symbolic link\n");

    const prefixed = await s.capsa([
      "put",
      location,
      "tree",
      "--from",
      "src/d1",
      "--prefix",
      "again/",
    ]);
    assert.equal(prefixed.code, 0, prefixed.stderr);
    assert.match(prefixed.stdout, /^stored 12 files/); // 10 files, again/. and again/sub/.
    assert.ok(!hasBarControls(prefixed.stderr), prefixed.stderr);

    const got = await s.json(["get", location, "tree", "--to", "restored"]);
    assert.equal(got.code, 0, got.stderr);
    assert.equal(got.doc["files"], files.size + 9 + 12);
    assert.ok(!hasBarControls(got.stderr), got.stderr);
    for (const [k, v] of files) {
      assert.deepEqual(await Deno.readFile(`${s.dir}/restored/${k}`), v, k);
    }
    assert.deepEqual(
      await Deno.readFile(`${s.dir}/restored/again/sub/f1.bin`),
      files.get("d1/sub/f1.bin"),
    );

    const some = await s.json(["get", location, "tree", "--to", "some", "--prefix", "d2/"]);
    assert.equal(some.doc["files"], 12);
    assert.deepEqual([...Deno.readDirSync(`${s.dir}/some`)].map((e) => e.name), ["d2"]);

    // A key is data: "../escape" must not be written outside the target; the rest is restored.
    await s.capsa(["put", location, "evil", "../escape"], { stdin: enc.encode("x") });
    await s.capsa(["put", location, "evil", "fine.txt"], { stdin: enc.encode("y") });
    await Deno.mkdir(`${s.dir}/target`);
    const refused = await s.capsa(["get", location, "evil", "--to", "target"]);
    assert.equal(refused.code, 1);
    assert.match(
      refused.stderr,
      /^capsa: warning: unsafe_key: evil\/\.\.\/escape: not restored: .*"\.\." segment/m,
    );
    assert.match(refused.stdout, /^restored 1 of 2 files .*; 1 not restored \(each named above\)/);
    assert.equal(await Deno.stat(`${s.dir}/escape`).catch(() => null), null);
    assert.deepEqual([...Deno.readDirSync(`${s.dir}/target`)].map((e) => e.name), ["fine.txt"]);
    const conflict = await s.capsa(["put", location, "clash", "a"], { stdin: enc.encode("1") });
    assert.equal(conflict.code, 0);
    await s.capsa(["put", location, "clash", "a/b"], { stdin: enc.encode("2") });
    const clash = await s.json(["get", location, "clash", "--to", "clash"]);
    assert.equal(clash.code, 1);
    assert.deepEqual(
      (clash.doc["notRestored"] as Array<{ key: string; code: string }>).map((
        p,
      ) => [p.key, p.code]),
      [["a", "key_conflict"]],
    );
    assert.equal(await Deno.readTextFile(`${s.dir}/clash/a/b`), "2");

    // A name holding a control character is stored under an escaped key (%09); a file
    // already named as that escaped key would share it: refused, nothing is stored.
    await Deno.mkdir(`${s.dir}/bad`);
    await Deno.writeFile(`${s.dir}/bad/ok.txt`, enc.encode("ok"));
    await Deno.writeFile(`${s.dir}/bad/tab\there.txt`, enc.encode("no"));
    await Deno.writeFile(`${s.dir}/bad/tab%09here.txt`, enc.encode("clash"));
    const bad = await s.capsa(["put", location, "badns", "--from", "bad"]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /would both be stored as key "tab%09here.txt".*nothing was stored/);
    assert.deepEqual((await s.json(["ls", location])).doc["namespaces"], ["clash", "evil", "tree"]);
  } finally {
    await s.dispose();
  }
});

/** script(1) (util-linux) runs a command on a pseudo-terminal: how a terminal is faked here. */
const HAS_SCRIPT = await new Deno.Command("script", {
  args: ["--version"],
  stdout: "null",
  stderr: "null",
}).output().then((o) => o.success, () => false);

Deno.test({
  name: "capsa shows progress bars on a terminal (under script(1)), and none with --quiet",
  ignore: !HAS_SCRIPT,
}, async () => {
  const s = await sandbox();
  try {
    const { location } = await initStoreCli(s);
    await Deno.mkdir(`${s.dir}/src`);
    for (let i = 0; i < 300; i++) {
      await Deno.writeFile(`${s.dir}/src/f${i}`, new Uint8Array(20_000).fill(i));
    }
    const shell = (extra: string) =>
      [
        Deno.execPath(),
        "run",
        ...FLAGS,
        CLI,
        "put",
        location,
        "ns",
        "--from",
        `${s.dir}/src`,
        extra,
      ]
        .map((a) => `'${a}'`).join(" ");
    const tty = await new Deno.Command("script", {
      args: ["-qec", shell("--parallelism=1"), "/dev/null"],
      env: envFor(s.cache),
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = dec.decode(tty.stdout);
    assert.equal(tty.code, 0, text);
    assert.ok(text.includes("\u001b["), "terminal control sequences");
    assert.match(text, /put .*\/301 files/); // 300 files and the directory itself
    // No ETA before one means something: none at 0 %, never "NFs" or an infinity.
    assert.doesNotMatch(text, / 0\/301 files[^\r\n]*ETA/);
    assert.doesNotMatch(text, /ETA[: ]*(NF|NULL|∞|Inf)/);
    const quiet = await new Deno.Command("script", {
      args: ["-qec", shell("--quiet"), "/dev/null"],
      env: envFor(s.cache),
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(quiet.code, 0);
    assert.equal(dec.decode(quiet.stdout).trim(), "");
  } finally {
    await s.dispose();
  }
});

// ------------------------------------------------------ status & snapshot

Deno.test("capsa status and snapshot report the store, with --json", async () => {
  const s = await sandbox();
  try {
    const { location, storeId } = await initStoreCli(s);
    await s.capsa(["put", location, "ns", "k"], {
      stdin: enc.encode("some bytes over the inline limit".repeat(20)),
    });
    const snap = await s.json(["snapshot", location]);
    assert.equal(snap.code, 0, snap.stderr);
    assert.match(
      String(snap.doc["key"]),
      /^system\.state\/index\/snapshots\/[0-9a-hjkmnp-tv-z]{26}$/,
    );
    assert.match(String(snap.doc["highWaterMark"]), /^[0-9a-hjkmnp-tv-z]{26}$/);

    const st = await s.json(["status", location]);
    assert.equal(st.code, 0);
    // deno-lint-ignore no-explicit-any
    const d = st.doc as Record<string, any>;
    assert.equal(d.storeId, storeId);
    assert.equal(d.state, "Ready");
    assert.equal(d.location, location);
    assert.equal(d.hash, "blake3");
    assert.deepEqual(d.config, {
      seq: 1,
      pointer: "ok",
      manifestStorage: "Remote",
      compression: "zstd",
      compressionLevel: 3,
    });
    assert.equal(d.counts.artifacts, 1);
    assert.equal(d.counts.packs, 1);
    assert.equal(d.counts.blobs, 1);
    assert.equal(d.index.highWaterMark, snap.doc["highWaterMark"]);
    assert.ok(d.highWaterMarkAgeMs >= 0 && d.highWaterMarkAgeMs < 60_000);
    assert.deepEqual(d.snapshots, [snap.doc["key"]]);
    assert.equal(d.lease, undefined);
    assert.equal(d.maintenance, undefined);
    assert.equal(d.leaseExpired, null);
    assert.deepEqual(d.problems, []);
    assert.deepEqual(d.advice, []);
    assert.match(d.hostDir, new RegExp(`^${s.cache}/capsa/[0-9a-f]{16}$`));

    const text = await s.capsa(["status", location]);
    assert.equal(text.code, 0);
    for (
      const row of [
        "store",
        "state",
        "artifacts",
        "packs",
        "index",
        "high-water",
        "snapshots",
        "lease",
        "maintenance",
        "host dir",
        "problems",
      ]
    ) {
      assert.match(text.stdout, new RegExp(`^${row} +\\S`, "m"), row);
    }

    // --host-dir: another host directory starts with no cache and loads the snapshot.
    const other = await s.json(["status", location, "--host-dir", `${s.dir}/h2`]);
    assert.equal((other.doc["index"] as { source: string }).source, "snapshot");
    assert.equal(other.doc["hostDir"], `${s.dir}/h2`);
  } finally {
    await s.dispose();
  }
});

// --------------------------------------------- recovery: lost descriptor

Deno.test("capsa on a store whose every descriptor replica is lost: exit 5 until rebuild --kit, then all is back", async () => {
  const s = await sandbox();
  try {
    const { location, kit } = await initStoreCli(s);
    await s.capsa(["put", location, "ns", "a"], { stdin: enc.encode("alpha".repeat(100)) });
    await s.capsa(["put", location, "ns", "b"], { stdin: enc.encode("beta") });
    const status0 = await s.json(["status", location]);
    await Deno.remove(String(status0.doc["hostDir"]), { recursive: true });
    const raw = await openLocalFs(location);
    await raw.delete(DESCRIPTOR_KEY);
    await raw.delete(DESCRIPTOR_REPLICA_KEY);
    await raw.close();

    const ls = await s.capsa(["ls", location, "ns"]);
    assert.equal(ls.code, 5);
    assert.equal(errorLine(ls), "store_corrupted");
    assert.match(ls.stderr, /rebuild LOCATION --kit RECOVERY_KIT/);
    const lsJson = await s.json(["get", location, "ns", "a", "-o", "a.out"]);
    assert.equal(lsJson.code, 5);
    assert.equal(jsonError(lsJson.doc).code, "store_corrupted");

    const st = await s.json(["status", location]);
    assert.equal(st.code, 5);
    assert.equal(st.doc["state"], "Corrupted");
    assert.equal(st.doc["storeId"], "");
    assert.match(String((st.doc["advice"] as string[])[0]), /--kit/);
    assert.equal((st.doc["problems"] as string[]).length, 3);

    const noKit = await s.capsa(["rebuild", location]);
    assert.equal(noKit.code, 5);
    assert.equal(errorLine(noKit), "recovery_kit_required");

    await Deno.writeTextFile(`${s.dir}/wrong.kit`, "not a kit\n");
    const wrongKit = await s.json(["rebuild", location, "--kit", "wrong.kit"]);
    assert.equal(wrongKit.code, 1);
    assert.equal(jsonError(wrongKit.doc).code, "recovery_kit_invalid");

    const rebuild = await s.json([
      "rebuild",
      location,
      "--kit",
      kit,
      "--batch-size",
      "1",
      "--parallelism",
      "2",
    ]);
    assert.equal(rebuild.code, 0, rebuild.stderr);
    assert.ok(!hasBarControls(rebuild.stderr), rebuild.stderr);
    const stats = rebuild.doc["stats"] as Record<string, unknown>;
    assert.deepEqual(Object.keys(stats).sort(), [
      "blobsRegistered",
      "descriptorRewrote",
      "duration",
      "manifestsIndexed",
      "manifestsScanned",
      "manifestsSkipped",
      "packsIndexed",
      "pointerRecovered",
      "snapshotUsed",
      "snapshotWritten",
      "source",
    ]);
    assert.equal(stats["descriptorRewrote"], true);
    assert.equal(stats["source"], "FullScan");
    assert.equal(stats["manifestsIndexed"], 2);
    assert.equal(stats["packsIndexed"], 2);
    assert.deepEqual(rebuild.doc["problems"], []);

    const a = await s.capsa(["get", location, "ns", "a"]);
    assert.equal(a.stdout, "alpha".repeat(100));
    const after = await s.json(["status", location]);
    assert.equal(after.code, 0);
    assert.equal(after.doc["state"], "Ready");

    // A human rebuild prints the stats as a table.
    const again = await s.capsa(["rebuild", location, "--source", "snapshot"]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^rebuild complete: 0 manifests indexed from 0 packs/);
    assert.match(again.stdout, /\n {2}source +Snapshot\n/);
    assert.match(again.stdout, /\n {2}descriptorRewrote +false\n/);
  } finally {
    await s.dispose();
  }
});

// ------------------------------------------------------- runbook states

Deno.test("capsa through the runbook: lost host cache, corrupted snapshot, dangling config pointer, mode left by a crash", async () => {
  const s = await sandbox();
  try {
    const { location } = await initStoreCli(s);
    await s.capsa(["put", location, "ns", "a"], { stdin: enc.encode("a".repeat(500)) });
    await s.capsa(["put", location, "ns", "b"], { stdin: enc.encode("b") });
    const snap = await s.json(["snapshot", location]);
    const hostDir = String((await s.json(["status", location])).doc["hostDir"]);
    const raw = await openLocalFs(location);
    try {
      // Lost host cache: the store opens from the newest snapshot.
      await Deno.remove(hostDir, { recursive: true });
      const fromSnapshot = await s.json(["status", location]);
      assert.equal(fromSnapshot.code, 0);
      assert.equal((fromSnapshot.doc["index"] as { source: string }).source, "snapshot");
      assert.equal((fromSnapshot.doc["counts"] as { artifacts: number }).artifacts, 2);

      // Corrupted snapshot: refused with a warning; the index is caught up from the packs.
      await raw.put(String(snap.doc["key"]), enc.encode("garbage"));
      await Deno.remove(hostDir, { recursive: true }).catch(() => {});
      const rejected = await s.json(["status", location]);
      assert.equal(rejected.code, 0);
      assert.match(rejected.stderr, /^capsa: warning: snapshot_rejected: /m);
      assert.equal((rejected.doc["index"] as { source: string }).source, "empty");
      assert.equal((rejected.doc["counts"] as { artifacts: number }).artifacts, 2);
      const fresh = await s.json(["snapshot", location]);
      assert.equal(fresh.code, 0);

      // Dangling config pointer: Degraded, reads work, rebuild repoints it.
      await raw.delete("system.config/current");
      const degraded = await s.json(["status", location]);
      assert.equal(degraded.code, 0);
      assert.equal(degraded.doc["state"], "Degraded");
      assert.ok(
        (degraded.doc["problems"] as string[]).some((p) =>
          p.startsWith("system.config/current: dangling")
        ),
      );
      assert.match((degraded.doc["advice"] as string[]).join("\n"), /capsa rebuild/);
      assert.equal((await s.capsa(["get", location, "ns", "b"])).stdout, "b");
      const repaired = await s.json(["rebuild", location]);
      assert.equal(repaired.code, 0, repaired.stderr);
      assert.equal((repaired.doc["stats"] as { pointerRecovered: boolean }).pointerRecovered, true);
      assert.equal((await s.json(["status", location])).doc["state"], "Ready");

      // A maintenance mode left by a crashed agent (no lease): ignored, then cleared by the next agent.
      await raw.put(
        "system.state/maintenance/mode",
        enc.encode(
          JSON.stringify({
            format: "capsa-maintenance-mode",
            version: 1,
            mode: "offline",
            agent: "RebuildIndex",
            holder: "RebuildIndex on gone (pid 1)",
            nonce: "dead",
          }),
        ),
      );
      const left = await s.json(["status", location]);
      assert.deepEqual(left.doc["maintenance"], {
        mode: "offline",
        holder: "RebuildIndex on gone (pid 1)",
      });
      assert.match((left.doc["advice"] as string[]).join("\n"), /left without a lease/);
      assert.equal((await s.capsa(["get", location, "ns", "b"])).stdout, "b");
      const put = await s.capsa(["put", location, "ns", "c"], { stdin: enc.encode("c") });
      assert.equal(put.code, 0, put.stderr);
      assert.equal((await s.capsa(["rebuild", location, "-q"])).code, 0);
      assert.equal((await s.json(["status", location])).doc["maintenance"], undefined);
    } finally {
      await raw.close();
    }
  } finally {
    await s.dispose();
  }
});

// ------------------------------------------------------------------ lease

Deno.test("capsa rebuild exits 4 while another holder has the lease; --force breaks it, loudly", async () => {
  const s = await sandbox();
  try {
    const { location, storeId } = await initStoreCli(s);
    const raw = await openLocalFs(location);
    await acquireLease(raw, {
      storeId,
      agent: "Verify",
      host: "other-host",
      pid: 4242,
      ttlMs: 600_000,
    });

    const held = await s.json(["rebuild", location]);
    assert.equal(held.code, 4);
    const e = jsonError(held.doc);
    assert.equal(e.code, "lease_held");
    assert.match(e.message, /Verify on other-host \(pid 4242\).*--force/);
    const heldText = await s.capsa(["rebuild", location]);
    assert.equal(heldText.code, 4);
    assert.equal(errorLine(heldText), "lease_held");

    const st = await s.json(["status", location]);
    assert.equal(st.code, 0);
    assert.match(String((st.doc["lease"] as { holder: string }).holder), /other-host/);
    assert.equal(st.doc["leaseExpired"], false);

    const forced = await s.json(["rebuild", location, "--force"]);
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(forced.stderr, /capsa: warning: lease_broken: .*other-host/);
    assert.equal(await readLease(raw), null);
    await raw.close();
  } finally {
    await s.dispose();
  }
});

// ----------------------------------------------------------------- Ctrl-C

Deno.test("Ctrl-C during capsa rebuild stops it: exit 1, lease released, old index kept", async () => {
  const s = await sandbox();
  try {
    const { location } = await initStoreCli(s);
    // Many small packs, so the rebuild is still scanning when the signal lands.
    const raw = await openLocalFs(location);
    const store = await openStore(raw);
    for (let i = 0; i < 1200; i++) {
      await store.put("ns", `k${i}`, enc.encode(`v${i}`));
      await store.flush();
    }
    await store.close();
    const before = await s.json(["status", location]);
    assert.equal((before.doc["counts"] as { packs: number }).packs, 1200);

    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        ...FLAGS,
        CLI,
        "rebuild",
        location,
        "--source",
        "full-scan",
        "--parallelism",
        "1",
        "--batch-size",
        "1",
      ],
      cwd: s.dir,
      env: envFor(s.cache),
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const result = child.output();
    for (let i = 0; i < 2000 && (await readLease(raw)) === null; i++) {
      await new Promise((r) => setTimeout(r, 5));
    }
    child.kill("SIGINT");
    const r = await result;
    const stderr = dec.decode(r.stderr);
    assert.equal(r.code, 1, stderr);
    assert.match(
      stderr,
      /^capsa: aborted: rebuild stopped by Ctrl-C: the lease is released and the previous index is kept/m,
    );
    assert.equal(dec.decode(r.stdout), "");
    assert.equal(await readLease(raw), null);
    assert.equal((await s.json(["status", location])).doc["maintenance"], undefined);
    await raw.close();

    const after = await s.json(["status", location]);
    assert.equal(after.code, 0);
    assert.equal(after.doc["state"], "Ready");
    assert.deepEqual(after.doc["counts"], before.doc["counts"]);
    assert.deepEqual(after.doc["index"], before.doc["index"]);
  } finally {
    await s.dispose();
  }
});

// ------------------------------------------------------------------ serve

Deno.test("capsa serve serves the store on loopback until SIGINT, then closes it; refuses other interfaces without a token", async () => {
  const s = await sandbox();
  try {
    const { location } = await initStoreCli(s);
    await s.capsa(["put", location, "docs", "a.txt"], { stdin: enc.encode("served") });
    const refused = await s.capsa(["serve", location, "--listen", "0.0.0.0:0"]);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /without a token/);

    await Deno.writeTextFile(`${s.dir}/token`, "0123456789abcdef-token\n");
    await Deno.chmod(`${s.dir}/token`, 0o600); // a readable token file gets a warning
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        ...FLAGS,
        "--allow-net=127.0.0.1",
        CLI,
        "serve",
        location,
        "--listen",
        "127.0.0.1:0",
        "--token-file",
        "token",
        "--json",
      ],
      cwd: s.dir,
      env: envFor(s.cache),
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!/\}\s*$/.test(text)) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
    const listening = JSON.parse(text) as { url: string; port: number; token: boolean };
    assert.equal(listening.token, true);
    assert.match(listening.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const unauth = await fetch(`${listening.url}/v1/objects/docs/a.txt`);
    await unauth.body?.cancel();
    assert.equal(unauth.status, 401);
    const res = await fetch(`${listening.url}/v1/objects/docs/a.txt`, {
      headers: { Authorization: "Bearer 0123456789abcdef-token" },
    });
    assert.equal(await res.text(), "served");
    child.kill("SIGINT");
    const rest = await reader.read();
    assert.ok(rest.done, "nothing more on stdout");
    const status = await child.status;
    assert.equal(status.code, 0);
    assert.equal(dec.decode(await new Response(child.stderr).arrayBuffer()), "");
  } finally {
    await s.dispose();
  }
});

// ------------------------------------------------------------------ demo

Deno.test("deno task demo: 3,000 files survive losing the index and every descriptor replica", async () => {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", "demo", "--json"],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = dec.decode(r.stderr);
  assert.equal(r.code, 0, stderr);
  const report = JSON.parse(dec.decode(r.stdout));
  assert.equal(report.ok, true);
  assert.equal(report.files, 3000);
  assert.ok(report.chunkedFiles > 0);
  assert.equal(report.stateAfterDestruction, "Corrupted");
  assert.deepEqual(report.mismatches, []);
  assert.equal(report.rebuild.stats.descriptorRewrote, true);
  assert.equal(report.rebuild.stats.source, "FullScan");
  // The files and their 31 directories (`.` and 30 subdirectories), each an artifact.
  assert.equal(report.rebuild.stats.manifestsIndexed, 3031);
  assert.match(report.verdict, /^verdict: OK/);
  assert.equal(
    await Deno.stat(report.dir).catch(() => null),
    null,
    "the temporary directory is removed",
  );
});

// ----------------------------------------------------------------- bundle

Deno.test("the deno bundle of cli.ts runs init/put/get/ls/status/rebuild under narrow permissions, put --from in its reader worker", async () => {
  const s = await sandbox();
  try {
    const bundle = `${s.dir}/capsa.js`;
    const b = await new Deno.Command(Deno.execPath(), {
      args: ["bundle", "--quiet", "--platform", "deno", "-o", bundle, CLI],
      cwd: ROOT,
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(b.code, 0, dec.decode(b.stderr));
    const data = `${s.dir}/data`;
    await Deno.mkdir(data);
    const narrow = [
      "run",
      "--no-prompt",
      "--no-config",
      `--allow-read=${data},${s.cache}`,
      `--allow-write=${data},${s.cache}`,
      "--allow-env=HOME,XDG_CACHE_HOME",
      "--allow-sys=hostname",
      bundle,
    ];
    const capsa = (args: string[], stdin?: Uint8Array) =>
      run(args, { cache: s.cache, cwd: data, program: narrow, ...(stdin ? { stdin } : {}) });
    const store = `${data}/store`;
    const init = await capsa(["init", store, "--kit", `${data}/kit.txt`, "--json"]);
    assert.equal(init.code, 0, init.stderr);
    const body = new Uint8Array(300_000).map((_, i) => (i * 7919) % 251);
    const put = await capsa(["put", store, "ns", "blob.bin", "--json"], body);
    assert.equal(put.code, 0, put.stderr);
    assert.equal(JSON.parse(put.stdout).size, body.length);
    const get = await capsa(["get", store, "ns", "blob.bin"]);
    assert.equal(get.code, 0, get.stderr);
    assert.deepEqual(get.bytes, body);
    assert.equal((await capsa(["ls", store, "ns"])).stdout, "blob.bin\n");
    const status = await capsa(["status", store, "--json"]);
    assert.equal(status.code, 0, status.stderr);
    assert.equal(JSON.parse(status.stdout).counts.artifacts, 1);
    const rebuild = await capsa(["rebuild", store, "--json"]);
    assert.equal(rebuild.code, 0, rebuild.stderr);
    assert.equal(JSON.parse(rebuild.stdout).stats.manifestsIndexed, 1);
    // put --from: the bundle cannot read itself here, so no worker starts: read on one thread.
    const tree = `${data}/tree`;
    await Deno.mkdir(`${tree}/sub`, { recursive: true });
    const bodies = Array.from({ length: 30 }, (_, i) => body.subarray(i * 997, i * 997 + 50 * i));
    for (const [i, b] of bodies.entries()) await Deno.writeFile(`${tree}/sub/f${i}`, b);
    const narrowPut = await capsa(["put", store, "tree", "--from", tree, "--json"]);
    assert.equal(narrowPut.code, 0, narrowPut.stderr);
    assert.deepEqual([
      JSON.parse(narrowPut.stdout).newVersions,
      JSON.parse(narrowPut.stdout).readByWorker,
    ], [32, 0]);
    // Allowed to read itself, the bundle starts its reader worker: from the bundle, not cli.ts.
    const readable = narrow.map((a) => a.startsWith("--allow-read=") ? `${a},${bundle}` : a);
    const workerPut = await run(["put", store, "tree2", "--from", tree, "--json"], {
      cache: s.cache,
      cwd: data,
      program: readable,
    });
    assert.equal(workerPut.code, 0, workerPut.stderr);
    assert.equal(JSON.parse(workerPut.stdout).readByWorker, 30);
    for (const ns of ["tree", "tree2"]) {
      const restored = `${data}/restored-${ns}`;
      const got = await capsa(["get", store, ns, "--to", restored]);
      assert.equal(got.code, 0, got.stderr);
      for (const [i, b] of bodies.entries()) {
        assert.deepEqual(await Deno.readFile(`${restored}/sub/f${i}`), b);
      }
    }
    // Outside what was granted: one clear line, exit 1.
    const outside = await capsa(["ls", `${s.dir}/elsewhere`]);
    assert.equal(outside.code, 1);
    assert.equal(errorLine(outside), "permission_denied");
    assert.match(outside.stderr, /grant that Deno permission/);
  } finally {
    await s.dispose();
  }
});

// --------------------------------------------------------------------- S3

Deno.test("capsa on an s3:// Location under the README's narrow S3 permissions", async () => {
  const server = await startS3Server({ createOnly: true });
  const s = await sandbox();
  try {
    await server.createBucket("cli-bucket");
    const location = `s3://cli-bucket/team/store?endpoint=${server.endpoint}`;
    const program = [
      "run",
      "--no-prompt",
      "--config",
      CONFIG,
      `--allow-net=127.0.0.1:${server.port}`,
      "--allow-env=HOME,XDG_CACHE_HOME,AWS_*,USERPROFILE,HOMEPATH,HOMEDRIVE,_X_AMZN_TRACE_ID",
      "--allow-sys=osRelease,hostname",
      `--allow-read=${s.dir}`,
      `--allow-write=${s.dir}`,
      CLI,
    ];
    const capsa = async (args: string[], stdin?: Uint8Array): Promise<Run> => {
      const child = new Deno.Command(Deno.execPath(), {
        args: [...program, ...args],
        cwd: s.dir,
        clearEnv: true,
        env: {
          ...envFor(s.cache),
          HOME: s.dir,
          AWS_ACCESS_KEY_ID: S3_TEST_CREDENTIALS.accessKeyId,
          AWS_SECRET_ACCESS_KEY: S3_TEST_CREDENTIALS.secretAccessKey,
        },
        stdin: stdin ? "piped" : "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      if (stdin) {
        const w = child.stdin.getWriter();
        await w.write(stdin);
        await w.close();
      }
      const r = await child.output();
      return {
        code: r.code,
        stdout: dec.decode(r.stdout),
        stderr: dec.decode(r.stderr),
        bytes: r.stdout,
      };
    };
    const init = await capsa(["init", location, "--json"]);
    assert.equal(init.code, 0, init.stderr);
    const { storeId, location: shown, kit } = JSON.parse(init.stdout);
    assert.equal(shown, `s3://cli-bucket/team/store/?endpoint=${server.endpoint}`);
    assert.match(await Deno.readTextFile(kit), new RegExp(`store-id: ${storeId}`));
    const put = await capsa(["put", location, "ns", "k.txt"], enc.encode("over S3"));
    assert.equal(put.code, 0, put.stderr);
    assert.equal((await capsa(["get", location, "ns", "k.txt"])).stdout, "over S3");
    assert.equal((await capsa(["ls", location, "ns"])).stdout, "k.txt\n");
    const status = await capsa(["status", location, "--json"]);
    assert.equal(status.code, 0, status.stderr);
    const doc = JSON.parse(status.stdout);
    assert.equal(doc.state, "Ready");
    assert.equal(doc.counts.artifacts, 1);
    assert.match(doc.hostDir, new RegExp(`^${s.cache}/capsa/[0-9a-f]{16}$`));
    const rebuild = await capsa(["rebuild", location, "--kit", kit, "--json"]);
    assert.equal(rebuild.code, 0, rebuild.stderr);
    assert.equal(JSON.parse(rebuild.stdout).stats.manifestsIndexed, 1);
  } finally {
    await s.dispose();
    await server.stop();
  }
});

Deno.test("capsa verify exits 0 on a sound store and 3 listing each problem; capsa move relocates the store", async () => {
  const s = await sandbox();
  try {
    const { location } = await initStoreCli(s);
    for (let i = 0; i < 3; i++) {
      const put = await s.capsa(["put", location, "docs", `f${i}`], {
        stdin: enc.encode(`body ${i} `.repeat(200)),
      });
      assert.equal(put.code, 0, put.stderr);
    }
    const sound = await s.json(["verify", location, "--data"]);
    assert.equal(sound.code, 0, sound.stderr);
    assert.deepEqual(sound.doc["problems"], []);

    // Damage one blob byte inside a pack: only the data check sees it.
    const raw = await openLocalFs(location, {});
    const victim = (await Array.fromAsync(raw.list("packs/")))[0]!.key;
    const bytes = await raw.get(victim);
    bytes[20]! ^= 0xff;
    await raw.put(victim, bytes);
    await raw.close();
    assert.equal(
      (await s.capsa(["verify", location])).code,
      0,
      "structure alone cannot see a flipped blob byte",
    );
    const damaged = await s.json(["verify", location, "--data"]);
    assert.equal(damaged.code, 3, damaged.stderr);
    const problems = damaged.doc["problems"] as Array<{ kind: string; key: string }>;
    assert.deepEqual(problems.map((p) => [p.kind, p.key]), [["blob_hash_mismatch", victim]]);
    const text = await s.capsa(["verify", location, "--data", "--subset", "1/1"]);
    assert.equal(text.code, 3);
    assert.match(text.stdout, /blob_hash_mismatch: packs\//);
    assert.equal(
      (await s.capsa(["verify", location, "--subset", "1/2"])).code,
      2,
      "--subset needs --data",
    );

    // Repair the byte, then move the store to another directory.
    const fix = await openLocalFs(location, {});
    const again = await fix.get(victim);
    again[20]! ^= 0xff;
    await fix.put(victim, again);
    await fix.close();
    const moved = await s.json(["move", location, `${s.dir}/moved`]);
    assert.equal(moved.code, 0, moved.stderr);
    const got = await s.capsa(["get", `${s.dir}/moved`, "docs", "f1"]);
    assert.equal(got.code, 0, got.stderr);
    assert.equal(got.stdout, "body 1 ".repeat(200));
    // status reports where the store went (state Moved, exit 1); other commands fail there.
    const old = await s.capsa(["status", location]);
    assert.equal(old.code, 1);
    assert.match(old.stdout, /^state +Moved$/m);
    assert.match(old.stdout, /^moved to +.*\/moved$/m);
    const ls = await s.capsa(["ls", location]);
    assert.equal(ls.code, 1);
    assert.equal(errorLine(ls), "store_moved");
    assert.match(ls.stderr, /moved/);
  } finally {
    await s.dispose();
  }
});

Deno.test("capsa migrate brings the index to the current schema and changes manifest storage", async () => {
  const s = await sandbox();
  try {
    const { location } = await initStoreCli(s);
    assert.equal(
      (await s.capsa(["put", location, "docs", "a"], { stdin: enc.encode("alpha") })).code,
      0,
    );
    const r = await s.json(["migrate", location, "--manifest-storage", "replicated"]);
    assert.equal(r.code, 0, r.stderr);
    const stats = r.doc["stats"] as { toSchema: number; configSeq: number };
    assert.equal(stats.toSchema, INDEX_SCHEMA_VERSION);
    assert.equal(stats.configSeq, 2);
    const st = await s.json(["status", location]);
    assert.equal((st.doc["config"] as { manifestStorage: string }).manifestStorage, "Replicated");
    assert.equal((await s.capsa(["get", location, "docs", "a"])).stdout, "alpha");
    const usage = await s.capsa(["migrate", location, "--manifest-storage", "bogus"]);
    assert.equal(usage.code, 2);
  } finally {
    await s.dispose();
  }
});
