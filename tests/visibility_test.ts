/**
 * An acknowledged put stays visible to every host, whatever the clocks of
 * the writers and however long a handle stays open: real processes (the
 * `capsa` CLI, `capsa serve`) on stores in real directories.
 *
 * A reader resumes listing packs a safety overlap before its high-water mark
 * (15 minutes: docs/FORMAT.md §3, and rule P6 in §5.6). The scenarios here
 * are the ones where a writer's high-water mark runs past packs it never
 * listed:
 *
 * - a handle held open longer than the overlap, then writing (simulated: the
 *   handle's clock is moved 16 minutes on, and the processes that come
 *   "later" run 16 minutes ahead under `faketime`; only the file system's
 *   own timestamps stay real);
 * - a writer whose clock runs 20 minutes ahead, or behind (`faketime`);
 * - long-lived handles (`capsa serve`, a library `Store`) that must find
 *   what other processes put after they opened.
 *
 * A writer with a shifted clock may be refused (with a one-line error): what
 * was refused was not acknowledged, and only acknowledged artifacts must be
 * visible. Writers on the real clock must never be refused.
 */

import assert from "node:assert/strict";
import { createLocationRegistry, type Driver, openStore, type Store } from "../mod.ts";
import { body } from "./data.ts";
import {
  capsa,
  capsaOk,
  CLI,
  denoRun,
  killProcess,
  type ProcessOptions,
  type ProcessResult,
  requireFaketime,
} from "./processes.ts";

/** How long a moment passes in the "held open" scenario: more than the 15-minute overlap. */
const LATER_MINUTES = 16;
/** How soon `capsa serve` must answer for an object another process put. */
const SERVE_BOUND_MS = 5_000;

/** A temporary directory holding a store (`capsa init`), removed by `dispose`. */
async function sandbox() {
  const dir = await Deno.makeTempDir({ prefix: "capsa-visibility-" });
  const location = `${dir}/store`;
  const handles: Array<Store | Driver> = [];
  try {
    await capsaOk(["init", location, "--kit", `${dir}/kit.txt`, "--host-dir", `${dir}/host-init`]);
  } catch (e) {
    await Deno.remove(dir, { recursive: true });
    throw e;
  }
  return {
    dir,
    location,
    /** A host directory of its own for each name: another host. */
    host: (name: string) => `${dir}/host-${name}`,
    /** Opens the store in this process on a host directory, with a clock. */
    async open(host: string, clock: () => number = Date.now): Promise<Store> {
      const registry = createLocationRegistry();
      const driver = await registry.open(location);
      handles.push(driver);
      const hostStorage = await registry.open(host, { create: true });
      handles.push(hostStorage);
      const store = await openStore(driver, { hostStorage, clock });
      handles.push(store);
      return store;
    },
    async dispose() {
      // Stores first (their close writes the host cache), then drivers.
      for (const h of handles.reverse()) await h.close().catch(() => {});
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/**
 * `capsa put` by a writer whose clock may be shifted: `undefined` when it
 * was refused with a one-line error (then it was not acknowledged).
 */
async function putMaybeRefused(
  args: string[],
  options: ProcessOptions,
): Promise<ProcessResult | undefined> {
  const r = await capsa(args, options);
  if (r.code === 0) return r;
  assert.match(
    r.stderr.trim(),
    /^capsa: [a-z_]+: [^\n]+$/,
    `a refused writer exits with one error line, got exit ${r.code}: ${r.stderr}`,
  );
  return undefined;
}

/** Asserts that `capsa get` on a fresh host directory returns `bytes`. */
async function assertFreshHostGets(
  location: string,
  host: string,
  key: string,
  bytes: Uint8Array,
  why: string,
  options: ProcessOptions = {},
): Promise<void> {
  const r = await capsa(["get", location, "ns", key, "--host-dir", host], options);
  assert.equal(r.code, 0, `a fresh host must get ns/${key} (${why}); got: ${r.stderr.trim()}`);
  assert.deepEqual(r.bytes, bytes, `ns/${key} byte for byte`);
}

Deno.test("openStore(): a handle held open past the catch-up overlap, then writing, hides no artifact another process acknowledged meanwhile", async () => {
  await requireFaketime();
  const s = await sandbox();
  try {
    // L opens now and stays open; its clock runs on when time "passes".
    let passed = 0;
    const held = await s.open(s.host("held"), () => Date.now() + passed);

    // Meanwhile another process, on another host, puts a.txt: acknowledged.
    const a = body(1, 3_000);
    await capsaOk(["put", s.location, "ns", "a.txt", "--host-dir", s.host("other")], { stdin: a });

    // 16 minutes later L writes, writes an index snapshot, and closes (its host cache).
    passed = LATER_MINUTES * 60_000;
    const late = body(2, 3_000);
    await held.put("ns", "late.txt", late);
    await held.snapshotIndex();
    await held.close();

    // Later still, a fresh host sees both.
    const later = { clockOffset: `+${LATER_MINUTES}m` };
    await assertFreshHostGets(
      s.location,
      s.host("fresh-1"),
      "a.txt",
      a,
      "another process put it while a handle was held open",
      later,
    );
    await assertFreshHostGets(s.location, s.host("fresh-2"), "late.txt", late, "put", later);

    // And so does L's host, opening from the cache L left.
    const reopened = await s.open(s.host("held"), () => Date.now() + passed);
    const got = await reopened.get("ns", "a.txt").catch((e) => e);
    assert.ok(
      got instanceof Uint8Array,
      `the held-open handle's host, reopened, must get ns/a.txt; got: ${got}`,
    );
    assert.deepEqual(got, a);
  } finally {
    await s.dispose();
  }
});

Deno.test("openStore(): a writer whose clock runs 20 minutes ahead hides no artifact a writer on the real clock acknowledged", async () => {
  await requireFaketime();
  const s = await sandbox();
  try {
    const ahead = { clockOffset: "+20m" };
    const aheadBody = body(3, 2_000);
    const aheadPut = await putMaybeRefused(
      ["put", s.location, "ns", "ahead.txt", "--host-dir", s.host("ahead")],
      { ...ahead, stdin: aheadBody },
    );
    const normal = body(4, 2_000);
    await capsaOk(["put", s.location, "ns", "normal.txt", "--host-dir", s.host("normal")], {
      stdin: normal,
    });
    // The writer ahead writes an index snapshot (or is refused, like its put).
    await putMaybeRefused(["snapshot", s.location, "--host-dir", s.host("ahead")], ahead);
    const normal2 = body(5, 2_000);
    await capsaOk(["put", s.location, "ns", "normal2.txt", "--host-dir", s.host("normal")], {
      stdin: normal2,
    });

    const why = "a writer on the real clock put it";
    await assertFreshHostGets(s.location, s.host("fresh-1"), "normal.txt", normal, why);
    await assertFreshHostGets(s.location, s.host("fresh-2"), "normal2.txt", normal2, why);
    if (aheadPut) {
      await assertFreshHostGets(
        s.location,
        s.host("fresh-3"),
        "ahead.txt",
        aheadBody,
        "its put was acknowledged",
      );
    }
  } finally {
    await s.dispose();
  }
});

Deno.test("openStore(): a writer whose clock runs 20 minutes behind has its acknowledged artifacts seen by every host", async () => {
  await requireFaketime();
  const s = await sandbox();
  try {
    const normal = body(6, 2_000);
    await capsaOk(["put", s.location, "ns", "normal.txt", "--host-dir", s.host("normal")], {
      stdin: normal,
    });
    const behindBody = body(7, 2_000);
    const behindPut = await putMaybeRefused(
      ["put", s.location, "ns", "behind.txt", "--host-dir", s.host("behind")],
      { clockOffset: "-20m", stdin: behindBody },
    );
    // A writer on the real clock writes an index snapshot after the put behind.
    await capsaOk(["snapshot", s.location, "--host-dir", s.host("normal")]);

    await assertFreshHostGets(s.location, s.host("fresh-1"), "normal.txt", normal, "put");
    if (behindPut) {
      await assertFreshHostGets(
        s.location,
        s.host("fresh-2"),
        "behind.txt",
        behindBody,
        "its put was acknowledged, by a writer whose clock runs behind",
      );
      const r = await capsa([
        "get",
        s.location,
        "ns",
        "behind.txt",
        "--host-dir",
        s.host("normal"),
      ]);
      assert.equal(r.code, 0, `the snapshot's writer must get ns/behind.txt: ${r.stderr.trim()}`);
    }
  } finally {
    await s.dispose();
  }
});

Deno.test("Store.get() on a handle held open finds an artifact another process put after it opened", async () => {
  const s = await sandbox();
  try {
    const held = await s.open(s.host("held"));
    const bytes = body(8, 5_000);
    await capsaOk(["put", s.location, "ns", "new.txt", "--host-dir", s.host("other")], {
      stdin: bytes,
    });
    const got = await held.get("ns", "new.txt").catch((e) => e);
    assert.ok(
      got instanceof Uint8Array,
      `a handle held open must find ns/new.txt, put by another process since it opened ` +
        `(a miss catches up before answering not found); got: ${got}`,
    );
    assert.deepEqual(got, bytes);
  } finally {
    await s.dispose();
  }
});

/** `capsa serve` on loopback: its URL, and how to stop it. */
async function startServe(location: string, host: string) {
  const child = denoRun([
    CLI,
    "serve",
    location,
    "--listen",
    "127.0.0.1:0",
    "--json",
    "--host-dir",
    host,
  ]).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const stop = async () => {
    await reader.cancel().catch(() => {});
    await killProcess(child);
  };
  try {
    let text = "";
    while (!/\}\s*$/.test(text)) {
      const { value, done } = await reader.read();
      if (done) {
        const err = await new Response(child.stderr).text().catch(() => "");
        throw new Error(`capsa serve ended before listening: ${err}`);
      }
      text += value;
    }
    return { url: (JSON.parse(text) as { url: string }).url, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** Polls GET until it answers 200 with `bytes`, for at most {@linkcode SERVE_BOUND_MS}. */
async function assertServed(url: string, path: string, bytes: Uint8Array, why: string) {
  const deadline = Date.now() + SERVE_BOUND_MS;
  let last = "";
  for (;;) {
    const res = await fetch(`${url}/v1/objects/${path}`);
    if (res.status === 200) {
      assert.deepEqual(new Uint8Array(await res.arrayBuffer()), bytes, `${path} byte for byte`);
      return;
    }
    last = `${res.status} ${(await res.text()).slice(0, 300)}`;
    if (Date.now() >= deadline) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(
    `capsa serve must answer 200 for ${path} within ${SERVE_BOUND_MS / 1000}s (${why}); ` +
      `it answered ${last}`,
  );
}

Deno.test("capsa serve answers 200 within seconds for an object another process put after it opened", async () => {
  const s = await sandbox();
  let server: Awaited<ReturnType<typeof startServe>> | undefined;
  try {
    server = await startServe(s.location, s.host("serve"));
    const b = body(9, 4_000);
    await capsaOk(["put", s.location, "ns", "b.txt", "--host-dir", s.host("other")], {
      stdin: b,
    });
    await assertServed(server.url, "ns/b.txt", b, "another process put it after serve opened");
  } finally {
    await server?.stop();
    await s.dispose();
  }
});

Deno.test("capsa serve answers 200 within seconds after an outside capsa rebuild, for objects put before and after it", async () => {
  const s = await sandbox();
  let server: Awaited<ReturnType<typeof startServe>> | undefined;
  try {
    const before = body(10, 4_000);
    await capsaOk(["put", s.location, "ns", "before.txt", "--host-dir", s.host("other")], {
      stdin: before,
    });
    server = await startServe(s.location, s.host("serve"));
    await assertServed(server.url, "ns/before.txt", before, "it was put before serve opened");

    await capsaOk(["rebuild", s.location, "--host-dir", s.host("other")]);
    await assertServed(server.url, "ns/before.txt", before, "an outside rebuild ran since");
    const after = body(11, 4_000);
    await capsaOk(["put", s.location, "ns", "after.txt", "--host-dir", s.host("other")], {
      stdin: after,
    });
    await assertServed(server.url, "ns/after.txt", after, "put after an outside rebuild");
  } finally {
    await server?.stop();
    await s.dispose();
  }
});
