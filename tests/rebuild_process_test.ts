/**
 * RebuildIndexAgent across OS processes: the lease excludes a second rebuild
 * running in another process, and a rebuild killed with SIGKILL mid-scan
 * leaves a store that opens with its old index; rerunning completes.
 */

import assert from "node:assert/strict";
import { initStore, openStore } from "../store/store.ts";
import { openLocalFs } from "../drivers/localfs/mod.ts";
import { SNAPSHOT_PREFIX } from "../layout.ts";

const FIXTURE = new URL("./fixtures/rebuild_process.ts", import.meta.url).pathname;
const PACKS = 30;

async function makeStore(): Promise<{ dir: string; host: string; root: string }> {
  const root = await Deno.makeTempDir({ prefix: "capsa-proc-" });
  const dir = `${root}/store`;
  const host = `${root}/host`;
  const { store } = await initStore(await openLocalFs(dir, { create: true }), {
    hostStorage: await openLocalFs(host, { create: true }),
    config: { inlineThreshold: 16, packLingerMs: 0, snapshotEveryPacks: 0, snapshotIntervalMs: 0 },
  });
  // Sequential puts: one pack each.
  for (let i = 0; i < PACKS; i++) {
    await store.put("ns", `k${i}`, new TextEncoder().encode(`value number ${i}`));
  }
  await store.close();
  return { dir, host, root };
}

/** `--allow-run` lets the agent probe whether a lease holder's pid is alive (lease.ts explains why). */
function spawn(dir: string, host: string, latencyMs: number, allowRun = true): Deno.ChildProcess {
  const flags = ["--allow-read", "--allow-write", "--allow-env", "--allow-sys"];
  if (allowRun) flags.push("--allow-run");
  return new Deno.Command(Deno.execPath(), {
    args: ["run", ...flags, FIXTURE, dir, host, String(latencyMs)],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
}

/** Reads a child's stdout lines, resolving `waitFor` when a line matches. */
function lines(
  child: Deno.ChildProcess,
): { all: string[]; waitFor: (re: RegExp) => Promise<void>; done: Promise<void> } {
  const all: string[] = [];
  const waiters: Array<{ re: RegExp; resolve: () => void }> = [];
  const done = (async () => {
    let buffered = "";
    for await (const text of child.stdout.pipeThrough(new TextDecoderStream())) {
      buffered += text;
      const parts = buffered.split("\n");
      buffered = parts.pop()!;
      for (const line of parts) {
        all.push(line);
        for (const w of waiters.splice(0)) {
          if (w.re.test(line)) w.resolve();
          else waiters.push(w);
        }
      }
    }
  })();
  return {
    all,
    done,
    waitFor: (re) =>
      all.some((l) => re.test(l))
        ? Promise.resolve()
        : new Promise((resolve) => waiters.push({ re, resolve })),
  };
}

async function stderrOf(child: Deno.ChildProcess): Promise<string> {
  let out = "";
  for await (const t of child.stderr.pipeThrough(new TextDecoderStream())) out += t;
  return out;
}

Deno.test("RebuildIndexAgent in two OS processes at once: exactly one runs, the other gets LeaseHeldError", async () => {
  const { dir, host, root } = await makeStore();
  const a = spawn(dir, host, 30);
  const b = spawn(dir, host, 30);
  const [outA, outB] = [lines(a), lines(b)];
  const [errA, errB] = [stderrOf(a), stderrOf(b)];
  const [sa, sb] = await Promise.all([a.status, b.status]);
  await Promise.all([outA.done, outB.done]);
  const codes = [sa.code, sb.code].sort();
  assert.deepEqual(codes, [0, 4], `exit codes ${sa.code}/${sb.code}: ${await errA} ${await errB}`);
  const loser = sa.code === 4 ? outA : outB;
  const winner = sa.code === 0 ? outA : outB;
  assert.match(
    loser.all.join("\n"),
    /"error":"lease_held".*held by RebuildIndex on .* \(pid \d+\)/,
  );
  const stats = JSON.parse(winner.all[winner.all.length - 1]!);
  assert.equal(stats.packsIndexed, PACKS);
  await Deno.remove(root, { recursive: true });
});

Deno.test("RebuildIndexAgent killed with SIGKILL mid-scan: the store opens with its old index; a rerun completes", async () => {
  const { dir, host, root } = await makeStore();
  const snapshotsBefore = await Array.fromAsync((await openLocalFs(dir, {})).list(SNAPSHOT_PREFIX));
  const child = spawn(dir, host, 60);
  const out = lines(child);
  const err = stderrOf(child);
  await out.waitFor(/^started$/);
  await new Promise((r) => setTimeout(r, 400)); // some TOCs read, far from all
  child.kill("SIGKILL");
  const status = await child.status;
  await out.done;
  await err;
  assert.equal(status.signal, "SIGKILL");
  assert.ok(!out.all.some((l) => l.startsWith("{")), "the rebuild finished before it was killed");

  // The old index (host cache) is still what opens, and it answers every read.
  const store = await openStore(await openLocalFs(dir, {}), {
    hostStorage: await openLocalFs(host, {}),
  });
  assert.equal(store.state, "Ready");
  assert.equal((await store.status()).index?.source, "host-cache");
  for (let i = 0; i < PACKS; i++) {
    assert.equal(new TextDecoder().decode(await store.get("ns", `k${i}`)), `value number ${i}`);
  }
  await store.close();
  const snapshotsAfter = await Array.fromAsync((await openLocalFs(dir, {})).list(SNAPSHOT_PREFIX));
  assert.deepEqual(snapshotsAfter, snapshotsBefore, "a killed rebuild wrote a snapshot");

  // Without a way to probe the dead pid, the rerun cannot tell it is dead and must wait (or --force).
  const blind = spawn(dir, host, 0, false);
  const blindOut = lines(blind);
  await stderrOf(blind);
  assert.equal((await blind.status).code, 4);
  await blindOut.done;
  assert.match(blindOut.all.join("\n"), /lease_held/);

  // With it, the lease left by the dead process is taken over and the rerun completes.
  const rerun = spawn(dir, host, 0);
  const rerunOut = lines(rerun);
  const rerunErr = stderrOf(rerun);
  const s = await rerun.status;
  await rerunOut.done;
  assert.equal(s.code, 0, `${rerunOut.all.join("\n")} ${await rerunErr}`);
  const stats = JSON.parse(rerunOut.all[rerunOut.all.length - 1]!);
  assert.equal(stats.packsIndexed, PACKS);
  assert.equal(stats.manifestsIndexed, PACKS);
  await Deno.remove(root, { recursive: true });
});
