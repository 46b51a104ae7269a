/**
 * The `capsa` command as a new user meets it, in real processes: the
 * installed command (`deno task install`), one host directory per store
 * whatever the spelling of its Location, no false `Degraded` on a new host,
 * a pipe closed early, targets that are not empty, and directory trees
 * that come back as they were.
 */

import assert from "node:assert/strict";
import { capsa, capsaOk, ROOT, runToEnd } from "./processes.ts";

const dec = new TextDecoder();
const enc = new TextEncoder();

/** A temporary directory with its own per-user cache (XDG_CACHE_HOME). */
async function sandbox() {
  const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "capsa-user-" }));
  const cache = `${dir}/cache`;
  await Deno.mkdir(cache);
  const env = { XDG_CACHE_HOME: cache };
  return {
    dir,
    cache,
    env,
    /** `capsa ARGS…` with this sandbox's cache, run in `dir`. */
    run: (args: string[], stdin?: Uint8Array) =>
      capsa(args, { env, cwd: dir, ...(stdin ? { stdin } : {}) }),
    /** The same, insisting on exit code 0. */
    ok: (args: string[], stdin?: Uint8Array) =>
      capsaOk(args, { env, cwd: dir, ...(stdin ? { stdin } : {}) }),
    /** The host directories made so far under the cache. */
    hostDirs: async () => {
      const names: string[] = [];
      try {
        for await (const e of Deno.readDir(`${cache}/capsa`)) names.push(e.name);
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      }
      return names.sort();
    },
    dispose: () => Deno.remove(dir, { recursive: true }),
  };
}

// ------------------------------------------------------------ the command

Deno.test("deno task install installs a `capsa` command that runs --help and a put/get", async () => {
  const s = await sandbox();
  try {
    const root = `${s.dir}/install-root`;
    const install = await runToEnd(
      new Deno.Command(Deno.execPath(), {
        args: ["task", "--quiet", "install"],
        cwd: ROOT,
        env: { NO_COLOR: "1", DENO_INSTALL_ROOT: root },
        stdout: "piped",
        stderr: "piped",
      }),
    );
    assert.equal(install.code, 0, install.stderr);
    const denoDir = Deno.execPath().replace(/\/[^/]+$/, "");
    const installed = (args: string[], stdin?: Uint8Array) =>
      runToEnd(
        new Deno.Command(`${root}/bin/capsa`, {
          args,
          cwd: s.dir,
          env: { NO_COLOR: "1", XDG_CACHE_HOME: s.cache, PATH: `${denoDir}:/usr/bin:/bin` },
          stdin: stdin ? "piped" : "null",
          stdout: "piped",
          stderr: "piped",
        }),
        stdin,
      );
    const help = await installed(["--help"]);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /^usage: capsa COMMAND LOCATION/m);
    const init = await installed(["init", "store", "--kit", "store.kit"]);
    assert.equal(init.code, 0, init.stderr);
    const put = await installed(["put", "store", "ns", "a.txt"], enc.encode("hello"));
    assert.equal(put.code, 0, put.stderr);
    const get = await installed(["get", "store", "ns", "a.txt"]);
    assert.equal(get.code, 0, get.stderr);
    assert.equal(get.stdout, "hello");
  } finally {
    await s.dispose();
  }
});
