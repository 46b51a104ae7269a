/**
 * `capsa gc` as users run it (issue #13, "Done when"): real stores, the CLI
 * as real processes, writers in other OS processes during the run, on a
 * local directory and on the S3 test server, and gc killed at random points.
 *
 * @module
 */

import "../drivers/s3/mod.ts"; // s3:// Locations (the registry does not load the S3 driver by itself)
import assert from "node:assert/strict";
import { createLocationRegistry, type Driver, initStore, openStore, type Store } from "../mod.ts";
import { pool } from "../pool.ts";
import { body, Xorshift } from "./data.ts";
import { capsa, capsaOk, denoRun, killProcess, ROOT, runDeno } from "./processes.ts";
import { S3_TEST_CREDENTIALS, startS3Server } from "./s3_server.ts";
import type { GcWriterPlan } from "./fixtures/gc_writer.ts";

const registry = createLocationRegistry();
const KiB = 1024;

async function withStore<T>(
  location: string,
  hostDir: string,
  fn: (store: Store) => Promise<T>,
): Promise<T> {
  const driver = await registry.open(location, { durable: false });
  const host = await registry.open(hostDir, { create: true, durable: false });
  try {
    const store = await openStore(driver, { hostStorage: host });
    try {
      return await fn(store);
    } finally {
      await store.close();
    }
  } finally {
    await host.close();
    await driver.close();
  }
}

async function createStore(location: string): Promise<void> {
  const driver: Driver = await registry.open(location, { create: true, durable: false });
  try {
    const { store } = await initStore(driver);
    await store.close();
  } finally {
    await driver.close();
  }
}

async function dirBytes(dir: string): Promise<number> {
  let n = 0;
  for await (const e of Deno.readDir(dir)) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory) n += await dirBytes(path);
    else if (e.isFile) n += (await Deno.stat(path)).size;
  }
  return n;
}

async function packCount(store: string): Promise<number> {
  let n = 0;
  for await (const d of Deno.readDir(`${store}/packs`)) {
    for await (const _ of Deno.readDir(`${store}/packs/${d.name}`)) n++;
  }
  return n;
}

/** Every answer the index gives about a namespace: keys, current digests, version counts. */
async function answers(store: Store, ns: string): Promise<string[]> {
  const out: string[] = [];
  let after: string | undefined;
  for (;;) {
    const page = await store.list(ns, { limit: 1000, ...(after ? { after } : {}) });
    for (const i of page.items) {
      const versions = await store.versions(ns, i.key);
      out.push(`${i.key} ${i.digest} ${versions.length}`);
    }
    if (!page.after) break;
    after = page.after;
  }
  return out;
}

/** Rebuilds the index from a full scan (a CLI process, a fresh host directory) and compares. */
async function assertRebuildAgrees(
  store: string,
  hostDir: string,
  expected: string[],
  why?: string,
): Promise<void> {
  await capsaOk(["rebuild", store, "--source", "full-scan", "--host-dir", hostDir, "-q"]);
  assert.deepEqual(await withStore(store, hostDir, (s) => answers(s, "ns")), expected, why);
}

Deno.test("capsa gc --keep-versions 1 --drop-deleted-after 0s: only the live artifacts stay, about the size of a fresh store of them", async () => {
  const dir = await Deno.makeTempDir({ prefix: "capsa-gc-" });
  const store = `${dir}/store`;
  try {
    await createStore(store);
    const keys = Array.from({ length: 1000 }, (_, i) => `d${i % 10}/k${i}`);
    const size = (i: number, v: number) => 1 * KiB + ((i * 7 + v * 13) % 2048);
    await withStore(store, `${dir}/setup`, async (s) => {
      for (let v = 0; v < 3; v++) {
        await pool(keys, async (k, i) => {
          await s.put("ns", k, body(i * 10 + v, size(i, v)));
        }, { concurrency: 64 });
      }
      await pool(keys.filter((_, i) => i % 2 === 1), (k) => s.delete("ns", k).then(() => {}), {
        concurrency: 64,
      });
    });
    const before = await dirBytes(store);
    const gc = await capsa([
      "gc",
      store,
      "--keep-versions",
      "1",
      "--drop-deleted-after",
      "0s",
      "--grace",
      "0s",
      "--json",
      "--host-dir",
      `${dir}/host`,
    ]);
    assert.equal(gc.code, 0, gc.stderr);
    const report = JSON.parse(gc.stdout) as { stats: Record<string, number> };
    assert.equal(report.stats.manifestsDropped, 3000, JSON.stringify(report.stats)); // 3,500 manifests, 500 kept

    // A fresh store holding only the live artifacts, for the size comparison.
    const fresh = `${dir}/fresh`;
    await createStore(fresh);
    await withStore(
      fresh,
      `${dir}/fresh-host`,
      (s) =>
        pool(keys.filter((_, i) => i % 2 === 0), async (k) => {
          const i = keys.indexOf(k);
          await s.put("ns", k, body(i * 10 + 2, size(i, 2)));
        }, { concurrency: 64 }),
    );
    const after = await dirBytes(store);
    const ideal = await dirBytes(fresh);
    assert.ok(after <= ideal * 1.1, `after gc ${after} B (before ${before} B), fresh ${ideal} B`);

    const verify = await capsa(["verify", store, "--data", "--host-dir", `${dir}/host`]);
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);

    // From a fresh host directory: exactly the live artifacts, byte for byte, one version each.
    const indexAnswers = await withStore(store, `${dir}/reader`, async (s) => {
      for (const [i, k] of keys.entries()) {
        if (i % 2 === 1) {
          assert.deepEqual(await s.versions("ns", k), [], k);
          continue;
        }
        assert.deepEqual(await s.get("ns", k), body(i * 10 + 2, size(i, 2)), k);
      }
      return await answers(s, "ns");
    });
    assert.equal(indexAnswers.length, 500);
    assert.ok(indexAnswers.every((a) => a.endsWith(" 1")));
    // A full-scan rebuild gives the same answers.
    await assertRebuildAgrees(store, `${dir}/rebuilt`, indexAnswers);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("1,000 single puts (1,000 packs), then capsa gc: at most ceil(data / target) + 1 packs remain", async () => {
  const dir = await Deno.makeTempDir({ prefix: "capsa-gc-" });
  const store = `${dir}/store`;
  try {
    await createStore(store);
    let data = 0;
    await withStore(store, `${dir}/setup`, async (s) => {
      for (let i = 0; i < 1000; i++) {
        const bytes = body(i, 600 + (i % 700));
        data += bytes.length;
        await s.put("ns", `k${i}`, bytes);
        await s.flush();
      }
    });
    assert.equal(await packCount(store), 1000);
    await capsaOk(["gc", store, "--grace", "0s", "--host-dir", `${dir}/host`, "-q"]);
    const target = 16 * 1024 * 1024;
    assert.ok(await packCount(store) <= Math.ceil(data / target) + 1, `${await packCount(store)}`);
    await withStore(store, `${dir}/reader`, async (s) => {
      for (let i = 0; i < 1000; i++) {
        assert.deepEqual(await s.get("ns", `k${i}`), body(i, 600 + (i % 700)));
      }
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Two writer processes put and read during a whole gc run; every acknowledged put survives. */
async function concurrentWriters(location: string, env: Record<string, string>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "capsa-gc-w-" });
  const children: Deno.ChildProcess[] = [];
  try {
    await createStore(location);
    const oldBodies: Array<[number, number]> = [];
    await withStore(location, `${dir}/setup`, async (s) => {
      for (let v = 0; v < 2; v++) {
        await pool(Array.from({ length: 200 }, (_, i) => i), async (i) => {
          const seed = 50_000 + i * 2 + v;
          const size = 800 + (i * 37) % 3000;
          await s.put("old", `k${i}`, body(seed, size));
          oldBodies.push([seed, size]);
        }, { concurrency: 32 });
      }
    });
    const logs = [0, 1].map((w) => `${dir}/w${w}.log`);
    for (const w of [0, 1]) {
      const plan: GcWriterPlan = {
        worker: w,
        location,
        hostDir: `${dir}/wh${w}`,
        seed: 7 + w,
        oldBodies,
        stopFile: `${dir}/stop`,
        log: logs[w]!,
      };
      children.push(
        denoRun([`${ROOT}/tests/fixtures/gc_writer.ts`, JSON.stringify(plan)], { env }).spawn(),
      );
    }
    const lines = async (f: string) =>
      (await Deno.readTextFile(f).catch(() => "")).split("\n").filter((l) => l).length;
    const waitFor = async (n: number) => {
      for (let i = 0; i < 600 && (await lines(logs[0]!)) + (await lines(logs[1]!)) < n; i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    await waitFor(20);
    const gc = await capsa([
      "gc",
      location,
      "--keep-versions",
      "1",
      "--grace",
      "3s",
      "--json",
      "--host-dir",
      `${dir}/gc-host`,
    ], { env });
    assert.equal(gc.code, 0, gc.stderr);
    const stats = (JSON.parse(gc.stdout) as { stats: Record<string, number> }).stats;
    assert.ok(stats.manifestsDropped! >= 200, JSON.stringify(stats));
    await waitFor((await lines(logs[0]!)) + (await lines(logs[1]!)) + 10);
    await Deno.writeTextFile(`${dir}/stop`, "");
    for (const child of children) {
      const out = await child.output();
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    }
    children.length = 0;
    const check = await runDeno(
      [`${ROOT}/tests/fixtures/gc_check.ts`, location, `${dir}/check-host`, ...logs],
      { env },
    );
    assert.equal(check.code, 0, check.stderr);
    const result = JSON.parse(check.stdout) as { checked: number; bad: string[] };
    assert.ok(result.checked >= 30, JSON.stringify(result));
    assert.deepEqual(result.bad, []);
    const verify = await capsa(["verify", location, "--data", "--host-dir", `${dir}/v-host`], {
      env,
    });
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
  } finally {
    for (const child of children) await killProcess(child);
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("capsa gc while two other processes keep putting (duplicates of doomed blobs too) and reading: local directory", async () => {
  const dir = await Deno.makeTempDir({ prefix: "capsa-gc-l-" });
  try {
    await concurrentWriters(`${dir}/store`, {});
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("capsa gc while two other processes keep putting and reading: S3 test server", async () => {
  const server = await startS3Server({ createOnly: true });
  try {
    await server.createBucket("gc-writers");
    const env = {
      AWS_ACCESS_KEY_ID: S3_TEST_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: S3_TEST_CREDENTIALS.secretAccessKey,
    };
    for (const [k, v] of Object.entries(env)) Deno.env.set(k, v);
    await concurrentWriters(
      `s3://gc-writers/store?endpoint=${server.endpoint}&create-only=true`,
      env,
    );
  } finally {
    await server.stop();
  }
});

Deno.test("capsa gc killed (SIGKILL) at random points: rerunning gc and rebuilding always give the same answers", async () => {
  const seed = Number(Deno.env.get("CAPSA_GC_KILL_SEED") ?? Math.floor(Math.random() * 2 ** 31));
  const rand = new Xorshift(seed);
  for (let trial = 0; trial < 3; trial++) {
    const dir = await Deno.makeTempDir({ prefix: "capsa-gc-k-" });
    const store = `${dir}/store`;
    const why = `seed ${seed} (CAPSA_GC_KILL_SEED), trial ${trial}`;
    try {
      await createStore(store);
      const current = new Map<string, Uint8Array>();
      await withStore(store, `${dir}/setup`, async (s) => {
        for (let v = 0; v < 3; v++) {
          for (let i = 0; i < 60; i++) {
            const bytes = body(1000 * v + i, 1500 + i * 11);
            await s.put("ns", `k${i}`, bytes);
            current.set(`k${i}`, bytes);
            if (i % 7 === 0) await s.flush(); // many small packs
          }
        }
      });
      const child = denoRun([
        `${ROOT}/cli.ts`,
        "gc",
        store,
        "--keep-versions",
        "1",
        "--grace",
        "1s",
        "--host-dir",
        `${dir}/gc-host`,
        "-q",
      ]).spawn();
      await new Promise((r) => setTimeout(r, 300 + (rand.next() % 2500)));
      await killProcess(child);

      const check = async (host: string) => {
        const got = await withStore(store, `${dir}/${host}`, async (s) => {
          for (const [k, v] of current) assert.deepEqual(await s.get("ns", k), v, `${why}: ${k}`);
          return await answers(s, "ns");
        });
        assert.equal(got.length, 60, why);
        return got;
      };
      await check("after-kill");
      // Rerun (the killed run's lease is on this host, its process gone: --force).
      await capsaOk([
        "gc",
        store,
        "--keep-versions",
        "1",
        "--grace",
        "0s",
        "--force",
        "--host-dir",
        `${dir}/gc2`,
        "-q",
      ]);
      const afterRerun = await check("after-rerun");
      assert.ok(afterRerun.every((a) => a.endsWith(" 1")), why);
      const verify = await capsa(["verify", store, "--data", "--host-dir", `${dir}/v`]);
      assert.equal(verify.code, 0, `${why}: ${verify.stdout}${verify.stderr}`);
      await assertRebuildAgrees(store, `${dir}/rebuilt`, afterRerun, why);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
});
