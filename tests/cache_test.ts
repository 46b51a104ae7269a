/**
 * `capsa cache list` and `capsa cache prune` (issue #15: host caches piled
 * up with nothing to list or prune them): each default host directory names
 * its Location, store id, size and last use; prune removes those whose
 * Location is gone or moved and those unused for longer than
 * `--older-than`, never one a running process has open. Real processes
 * with their own per-user cache directory.
 *
 * @module
 */

import assert from "node:assert/strict";
import { capsa, capsaOk, CLI, denoDir, PROCESS_FLAGS } from "./processes.ts";

const enc = new TextEncoder();

/** Deno's own cache directory, kept out of the sandboxed XDG_CACHE_HOME (tests/processes.ts). */
const DENO_DIR: string = await denoDir();

interface Listed {
  path: string;
  location: string | undefined;
  storeId: string | undefined;
  bytes: number;
  lastUsed: number;
  lastUsedAt: string;
  locationState: string;
  inUse: boolean;
}

/** Sets the time of every file and directory under `dir` to `when`. */
async function backdate(dir: string, when: Date): Promise<void> {
  for await (const e of Deno.readDir(dir)) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) await backdate(p, when);
    else await Deno.utime(p, when, when);
  }
  await Deno.utime(dir, when, when);
}

Deno.test("capsa cache list names each host directory's Location; prune removes gone, moved and old ones, never one in use", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "capsa-cache-" }));
  const env = { XDG_CACHE_HOME: `${dir}/cache`, DENO_DIR };
  const run = (args: string[], stdin?: Uint8Array) =>
    capsa(args, { env, cwd: dir, ...(stdin ? { stdin } : {}) });
  const ok = (args: string[], stdin?: Uint8Array) =>
    capsaOk(args, { env, cwd: dir, ...(stdin ? { stdin } : {}) });
  const list = async () =>
    (JSON.parse((await ok(["cache", "list", "--json"])).stdout) as { hostDirs: Listed[] })
      .hostDirs;
  const byLocation = (dirs: Listed[], name: string) =>
    dirs.find((d) => d.location === `file://${dir}/${name}`);
  let server: Deno.ChildProcess | undefined;
  try {
    assert.match((await ok(["cache", "list"])).stdout, /^no host directories under /);
    const ids = new Map<string, string>();
    for (const name of ["kept", "gone", "moved", "old", "busy"]) {
      await ok(["init", name, "--kit", `${name}.kit`]);
      await ok(["put", name, "ns", "k"], enc.encode(`in ${name}\n`));
      ids.set(name, JSON.parse((await ok(["status", name, "--json"])).stdout).storeId);
    }
    // A host directory named explicitly is not the cache's: nothing recorded there.
    await ok(["ls", "kept", "--host-dir", `${dir}/explicit`]);
    assert.equal(await Deno.lstat(`${dir}/explicit/location.json`).catch(() => null), null);

    const listed = await list();
    assert.equal(listed.length, 5);
    for (const [name, id] of ids) {
      const d = byLocation(listed, name);
      assert.ok(d, `${name} is listed by its Location`);
      assert.equal(d.storeId, id);
      assert.equal(d.locationState, "present");
      assert.equal(d.inUse, false);
      assert.ok(d.bytes > 0);
      assert.ok(Date.now() - d.lastUsed < 120_000, `${name} was used just now`);
      assert.equal(d.lastUsedAt, new Date(d.lastUsed).toISOString());
    }
    const text = (await ok(["cache", "list"])).stdout;
    assert.match(text, new RegExp(`location   file://${dir}/kept \\(present\\)`));
    assert.match(text, new RegExp(`store id   ${ids.get("kept")}`));

    await Deno.remove(`${dir}/gone`, { recursive: true });
    await ok(["move", "moved", `${dir}/moved-to`]);
    const hostOf = (name: string) => byLocation(listed, name)!.path;
    const longAgo = new Date(Date.now() - 40 * 86_400_000);
    await backdate(hostOf("old"), longAgo);
    await backdate(hostOf("busy"), longAgo);
    // A store held open by a running process (capsa serve).
    server = new Deno.Command(Deno.execPath(), {
      args: ["run", ...PROCESS_FLAGS, CLI, "serve", "busy", "--listen", "127.0.0.1:0", "--json"],
      cwd: dir,
      env,
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const reader = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let banner = "";
    while (!/\}\s*$/.test(banner)) {
      const { value, done } = await reader.read();
      if (done) break;
      banner += value;
    }
    assert.match(banner, /"url"/);
    await backdate(hostOf("busy"), longAgo); // opening it touched it
    const states = await list();
    assert.equal(byLocation(states, "gone")!.locationState, "gone");
    assert.equal(byLocation(states, "moved")!.locationState, "moved");
    assert.equal(byLocation(states, "busy")!.inUse, true);
    assert.equal(byLocation(states, "old")!.inUse, false);

    const dry = await ok(["cache", "prune", "--dry-run", "--json"]);
    const dryDoc = JSON.parse(dry.stdout);
    const removedNames = (doc: { removed: Array<{ location: string }> }) =>
      doc.removed.map((r) => r.location.slice(`file://${dir}/`.length)).sort();
    assert.deepEqual(removedNames(dryDoc), ["gone", "moved", "old"]);
    assert.deepEqual(dryDoc.keptInUse, [hostOf("busy")]);
    assert.match(dry.stderr, /kept .*: in use by a running process/);
    assert.equal((await list()).length, states.length, "a dry run removes nothing");

    const pruned = JSON.parse((await ok(["cache", "prune", "--json"])).stdout);
    assert.deepEqual(removedNames(pruned), ["gone", "moved", "old"]);
    assert.ok(pruned.bytes > 0);
    const left = await list();
    assert.equal(byLocation(left, "gone"), undefined);
    assert.equal(byLocation(left, "old"), undefined);
    assert.ok(byLocation(left, "kept"));
    assert.ok(byLocation(left, "busy"), "the host directory in use is kept");
    assert.ok(byLocation(left, "moved-to"), "the moved store's new Location is kept");
    // The busy store still answers through its open host directory.
    const url = JSON.parse(banner).url as string;
    const res = await fetch(`${url}/v1/objects/ns/k`);
    assert.equal(await res.text(), "in busy\n");
    server.kill("SIGINT");
    await server.status;
    server = undefined;

    // Closed, still 40 days unused: now it goes; a shorter --older-than takes kept too.
    await backdate(hostOf("busy"), longAgo);
    const later = JSON.parse((await ok(["cache", "prune", "--json"])).stdout);
    assert.deepEqual(removedNames(later), ["busy"]);
    // A host directory holding a manifest log is data, not a cache: never pruned.
    await Deno.mkdir(`${dir}/cache/capsa/0123456789abcdef/manifest-log`, { recursive: true });
    const allRun = await ok(["cache", "prune", "--older-than", "0s", "--json"]);
    const all = JSON.parse(allRun.stdout);
    assert.deepEqual(removedNames(all), ["kept", "moved-to"]);
    assert.match(allRun.stderr, /kept .*0123456789abcdef: it holds the store's manifest log/);
    assert.ok(await Deno.lstat(`${dir}/cache/capsa/0123456789abcdef`));
    // A pruned cache is only a cache: the store opens and rebuilds it.
    assert.equal((await ok(["get", "kept", "ns", "k"])).stdout, "in kept\n");

    const bad = await run(["cache", "prune", "--older-than", "soon"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^capsa: usage: --older-than must be a duration/);
    const unknown = await run(["cache", "clean"]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown action "clean": list or prune/);
  } finally {
    if (server) {
      server.kill("SIGKILL");
      await server.status;
    }
    await Deno.remove(dir, { recursive: true });
  }
});
