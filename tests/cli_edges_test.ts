/**
 * The CLI's smaller edges as a user meets them, in real processes: `kit
 * --out -`, a short bearer token, `stat` of a deleted key, `get --to` of a
 * namespace that is not there, `status` of a moved store, durations and
 * dates people can read, progress bars, usage errors and help texts.
 */

import assert from "node:assert/strict";
import { capsa, capsaOk, CLI, denoRun, PROCESS_FLAGS, ROOT } from "./processes.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A temporary directory; every process gets its own host directory inside it. */
async function sandbox() {
  const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "capsa-edges-" }));
  const host = ["--host-dir", `${dir}/host`];
  return {
    dir,
    host,
    /** `capsa ARGS… --host-dir DIR/host`, run in `dir`. */
    run: (args: string[], stdin?: Uint8Array) =>
      capsa([...args, ...host], { cwd: dir, ...(stdin ? { stdin } : {}) }),
    /** The same, insisting on exit code 0. */
    ok: (args: string[], stdin?: Uint8Array) =>
      capsaOk([...args, ...host], { cwd: dir, ...(stdin ? { stdin } : {}) }),
    dispose: () => Deno.remove(dir, { recursive: true }),
  };
}

Deno.test("capsa kit --out - writes the kit to stdout, not to a file named -", async () => {
  const s = await sandbox();
  try {
    await s.ok(["init", "store", "--kit", "store.kit"]);
    const saved = await Deno.readTextFile(`${s.dir}/store.kit`);
    const r = await s.ok(["kit", "store", "--out", "-"]);
    assert.equal(r.stdout, saved.endsWith("\n") ? saved : saved + "\n");
    assert.match(r.stderr, /written to stdout/);
    await assert.rejects(Deno.lstat(`${s.dir}/-`), Deno.errors.NotFound);
    const json = JSON.parse((await s.ok(["kit", "store", "--out", "-", "--json"])).stdout);
    assert.equal(json.text, saved);
    assert.equal(json.kit, "-");
    await assert.rejects(Deno.lstat(`${s.dir}/-`), Deno.errors.NotFound);
  } finally {
    await s.dispose();
  }
});

Deno.test("capsa serve refuses a token shorter than 16 characters (usage error, exit 2)", async () => {
  const s = await sandbox();
  try {
    await s.ok(["init", "store", "--kit", "store.kit"]);
    await Deno.writeTextFile(`${s.dir}/token`, "short\n", { mode: 0o600 });
    // A server that starts in spite of the short token is killed after a while (and the test fails).
    const child = denoRun([
      CLI,
      "serve",
      "store",
      "--listen",
      "127.0.0.1:0",
      "--token-file",
      "token",
      ...s.host,
    ], { cwd: s.dir }).spawn();
    const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    const out = await child.output();
    clearTimeout(timer);
    const r = { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr,
      /^capsa: usage: the token in --token-file .* has 5 characters; at least 16/,
    );
    assert.equal(r.stdout, "");
  } finally {
    await s.dispose();
  }
});

Deno.test("capsa stat and get of a deleted key say it was deleted and point to --versions", async () => {
  const s = await sandbox();
  try {
    await s.ok(["init", "store", "--kit", "store.kit"]);
    await s.ok(["put", "store", "ns", "a.txt"], enc.encode("one"));
    await s.ok(["put", "store", "ns", "a.txt"], enc.encode("two"));
    await s.ok(["rm", "store", "ns", "a.txt"]);
    for (const command of ["stat", "get"]) {
      const r = await s.run([command, "store", "ns", "a.txt"]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(
        r.stderr,
        /^capsa: not_found: artifact "a\.txt" in namespace "ns" was deleted \(\d{4}-\d\d-\d\dT[^)]*Z\); 2 earlier version\(s\) are still stored: capsa stat store ns a\.txt --versions/,
      );
    }
    // A key that never existed keeps the plain message.
    const never = await s.run(["stat", "store", "ns", "b.txt"]);
    assert.equal(never.code, 1);
    assert.match(never.stderr, /^capsa: not_found: no artifact "b\.txt" in namespace "ns"\n$/);
  } finally {
    await s.dispose();
  }
});

Deno.test("capsa get --to of a namespace that does not exist fails (not_found, exit 1) and leaves DIR alone", async () => {
  const s = await sandbox();
  try {
    await s.ok(["init", "store", "--kit", "store.kit"]);
    await s.ok(["put", "store", "photos", "a.txt"], enc.encode("one"));
    const r = await s.run(["get", "store", "fotos", "--to", "out"]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      r.stderr,
      /^capsa: not_found: no namespace "fotos" in the store .*; its namespaces: photos\n$/,
    );
    await assert.rejects(Deno.lstat(`${s.dir}/out`), Deno.errors.NotFound);
    const json = await s.run(["get", "store", "fotos", "--to", "out", "--json"]);
    assert.equal(json.code, 1);
    assert.equal(JSON.parse(json.stdout).error.code, "not_found");
    // The namespace that exists restores as before.
    const ok = await s.ok(["get", "store", "photos", "--to", "out"]);
    assert.match(ok.stdout, /restored 1 files/);
  } finally {
    await s.dispose();
  }
});

Deno.test("capsa status of a moved store reports Moved and where it went (exit 1)", async () => {
  const s = await sandbox();
  try {
    await s.ok(["init", "store", "--kit", "store.kit"]);
    await s.ok(["put", "store", "ns", "a.txt"], enc.encode("one"));
    await s.ok(["move", "store", `${s.dir}/moved`]);
    const r = await s.run(["status", "store"]);
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stderr, "");
    assert.match(r.stdout, /^state +Moved$/m);
    assert.match(r.stdout, new RegExp(`^moved to +${s.dir}/moved$`, "m"));
    assert.match(r.stdout, /^moved at +\d{4}-\d\d-\d\dT[\d:.]+Z$/m);
    assert.match(r.stdout, /^next: the store lives at .*moved.* now: capsa status /m);
    const json = await s.run(["status", "store", "--json"]);
    assert.equal(json.code, 1);
    const report = JSON.parse(json.stdout);
    assert.equal(report.state, "Moved");
    assert.match(report.movedTo, /moved\/?$/);
    assert.match(report.storeId, /./);
    // The destination is the store.
    const there = await s.ok(["status", report.movedTo, "--json"]);
    assert.equal(JSON.parse(there.stdout).state, "Ready");
  } finally {
    await s.dispose();
  }
});

Deno.test("capsa prints durations and byte counts with units, and dates as ISO text in --json too", async () => {
  const s = await sandbox();
  try {
    await s.ok(["init", "store", "--kit", "store.kit"]);
    const put = JSON.parse(
      (await s.ok(["put", "store", "ns", "a.txt", "--json"], enc.encode("one"))).stdout,
    );
    const iso = new Date(put.created).toISOString();
    assert.equal(typeof put.created, "number"); // milliseconds, as in the library and over HTTP
    assert.equal(put.createdAt, iso);
    const stat = JSON.parse((await s.ok(["stat", "store", "ns", "a.txt", "--json"])).stdout);
    assert.equal(stat.createdAt, iso);
    const versions = JSON.parse(
      (await s.ok(["stat", "store", "ns", "a.txt", "--versions", "--json"])).stdout,
    );
    assert.equal(versions.versions[0].createdAt, iso);
    const ls = JSON.parse((await s.ok(["ls", "store", "ns", "--json"])).stdout);
    assert.equal(ls.items[0].createdAt, iso);
    assert.match(
      (await s.ok(["stat", "store", "ns", "a.txt"])).stdout,
      new RegExp(`created +${iso}`),
    );

    for (
      const args of [["verify", "store", "--data"], ["rebuild", "store"], [
        "gc",
        "store",
        "--grace",
        "0s",
      ]]
    ) {
      const r = await s.ok(args);
      assert.match(r.stdout, /^ +duration +\d+(\.\d)? (ms|s)$/m, `${args[0]}: ${r.stdout}`);
      assert.doesNotMatch(r.stdout, /duration +\d+$/m);
    }
    const verify = await s.ok(["verify", "store", "--data"]);
    assert.match(verify.stdout, /^ +bytesRead +\d+ \(\d+(\.\d)? (B|KiB)\)$/m, verify.stdout);
  } finally {
    await s.dispose();
  }
});

Deno.test("capsa's maintenance progress bars (on a terminal) name the command and its unit, with no NF ETA", async () => {
  const s = await sandbox();
  try {
    await s.ok(["init", "store", "--kit", "store.kit"]);
    await s.ok(["put", "store", "ns", "a.txt"], enc.encode("one"));
    // `script` gives the process a terminal, so the bar is drawn.
    const onTerminal = async (args: string[]) => {
      const line = [Deno.execPath(), "run", ...PROCESS_FLAGS, CLI, ...args, ...s.host]
        .map((a) => `'${a}'`).join(" ");
      const r = await new Deno.Command("script", {
        args: ["-qec", line, "/dev/null"],
        cwd: s.dir,
        env: { NO_COLOR: "1" },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(r.code, 0, dec.decode(r.stderr));
      return dec.decode(r.stdout);
    };
    const rebuild = await onTerminal(["rebuild", "store"]);
    assert.match(rebuild, /rebuild [^\n]*\d+\/1 packs \| [^\n]*manifests indexed/);
    const verify = await onTerminal(["verify", "store"]);
    assert.match(verify, /verify [^\n]*\d+\/1 packs and loose blobs \|[^\n]* read/);
    for (const out of [rebuild, verify]) {
      assert.doesNotMatch(out, /RebuildIndex|Verify |NF|ETA 0s/);
    }
  } finally {
    await s.dispose();
  }
});

Deno.test("capsa's unknown-flag errors are its own one-line usage errors; deno task demo --help prints help", async () => {
  const s = await sandbox();
  try {
    await s.ok(["init", "store", "--kit", "store.kit"]);
    const rm = await s.run(["rm", "store", "ns", "a.txt", "--recursive"]);
    assert.equal(rm.code, 2);
    assert.match(
      rm.stderr,
      /^capsa: usage: unknown flag --recursive; its flags: --prefix, .*\(see: capsa rm --help\)\n$/,
    );
    const ls = await s.run(["ls", "store", "--bogus"]);
    assert.equal(ls.code, 2);
    assert.match(ls.stderr, /^capsa: usage: unknown flag --bogus; its flags: --prefix, .*\n$/);
    const missing = await s.run(["kit", "store", "--out"]);
    assert.equal(missing.code, 2);
    // (--host-dir follows it on this command line)
    assert.equal(
      missing.stderr,
      "capsa: usage: --out needs a value (a value starting with - is given as --out=-VALUE) " +
        "(see: capsa kit --help)\n",
    );
    const value = await s.run(["ls", "store", "--json=yes"]);
    assert.equal(value.code, 2);
    assert.equal(value.stderr, "capsa: usage: --json takes no value (see: capsa ls --help)\n");

    const demo = (args: string[]) =>
      new Deno.Command(Deno.execPath(), {
        args: ["task", "--quiet", "demo", ...args],
        cwd: ROOT,
        env: { NO_COLOR: "1" },
        stdout: "piped",
        stderr: "piped",
      }).output();
    const help = await demo(["--help"]);
    assert.equal(help.code, 0, dec.decode(help.stderr));
    assert.match(dec.decode(help.stdout), /^usage: deno task demo \[--files N\]/);
    assert.doesNotMatch(dec.decode(help.stderr), /at |Error/);
    const bad = await demo(["--bogus"]);
    assert.equal(bad.code, 2);
    assert.equal(
      dec.decode(bad.stderr),
      "capsa demo: usage: unknown flag --bogus; its flags: --files, --keep, --json, --quiet, --help (see: deno task demo --help)\n",
    );
  } finally {
    await s.dispose();
  }
});

Deno.test("capsa snapshot --help says it is an index snapshot, not a backup snapshot", async () => {
  const r = await capsaOk(["snapshot", "--help"]);
  assert.match(r.stdout, /^Writes a snapshot of the store's INDEX/m);
  assert.match(r.stdout, /not a backup snapshot in the restic or borg sense/);
  const top = await capsaOk(["--help"]);
  assert.match(
    top.stdout,
    /snapshot +write an index snapshot \(a copy of the index, not of your data\)/,
  );
  const readme = await Deno.readTextFile(`${ROOT}/README.md`);
  assert.match(readme, /"Snapshot" in capsa means an \*\*index snapshot\*\*/);
});

Deno.test("capsa init --kit in a directory that does not exist says so in one line and creates nothing", async () => {
  const s = await sandbox();
  try {
    const r = await s.run(["init", "store", "--kit", "no/such/dir/store.kit"]);
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.match(
      r.stderr,
      /^capsa: not_found: the directory .*no\/such\/dir does not exist: create it/,
    );
    await assert.rejects(Deno.lstat(`${s.dir}/store`), Deno.errors.NotFound);
    await s.ok(["init", "store", "--kit", "store.kit"]);
    const out = await s.run(["kit", "store", "--out", "missing/kit.txt"]);
    assert.equal(out.code, 1, out.stderr);
    assert.match(out.stderr, /the directory .*missing does not exist/);
  } finally {
    await s.dispose();
  }
});
