/**
 * The CLI's smaller edges as a user meets them, in real processes: `kit
 * --out -`, a short bearer token, `stat` of a deleted key, `get --to` of a
 * namespace that is not there, `status` of a moved store, durations and
 * dates people can read, progress bars, usage errors and help texts.
 */

import assert from "node:assert/strict";
import { capsa, capsaOk, CLI, denoRun } from "./processes.ts";

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
