/**
 * A model-based concurrency test: several OS processes write to and read
 * from one store at once, and what they were told is checked against what
 * the store holds afterwards.
 *
 * **The processes** (`tests/fixtures/model_worker.ts`), on one Location
 * (a local directory, then a bucket of the S3 test server):
 *
 * - a long-lived handle (real clock) that stays open the whole run, like
 *   `capsa serve` or a library user, doing puts, deletes, reads and index
 *   snapshots; it runs {@linkcode BOUND_MS} and a second longer than the
 *   others, then reads every key once more (its last check);
 * - three handles that open the store, do a few operations and close it,
 *   again and again (sometimes on an emptied host directory, so that they
 *   load a snapshot): one whose clock runs ahead, one whose clock runs
 *   behind (both shifted with `faketime`), one on the real clock.
 *
 * Every operation is random (seeded: `CAPSA_MODEL_SEED=<n>` replays a
 * failing run's choices; every failure message shows its seed) over a small
 * key space shared by all processes, so that writers overwrite and delete
 * each other's artifacts.
 *
 * **The model.** Versions of a key are ordered by version id (a ULID: how
 * the store orders them, docs/FORMAT.md §2.4; with shifted clocks this is
 * not the order of acknowledgement). A write is *acknowledged* when `put`
 * or `delete` resolved; its time is the true time of that moment (a
 * worker's clock minus its shift). A read is `stat`, `get` of what `stat`
 * named, and `versions`: what it *saw* is the newest version `versions`
 * listed. Then:
 *
 * 1. Durability and visibility: from a fresh process on a fresh host
 *    directory, every acknowledged put's version exists and reads back byte
 *    for byte, every acknowledged delete's tombstone exists, and the current
 *    version of each key is its newest version, at least as new as the
 *    newest acknowledged write of it (a tombstone: the key is absent).
 * 2. Bounded staleness: whenever any handle reads a key at true time `t`, it
 *    sees a version at least as new as every write of that key acknowledged
 *    before `t − BOUND_MS`, whichever process wrote it. For a handle opened
 *    after the write this is plain visibility; for the long-lived handle it
 *    is the promise that an open handle catches up on its own within the
 *    bound, and its last check (after everyone else stopped) must see every
 *    write of the run.
 * 3. Refusals: a process on the real clock is never refused; a process with
 *    a shifted clock may be refused (a `CapsaError`), and what was refused
 *    was not acknowledged. No process fails with anything else, and every
 *    body read during the run is the one its writer put.
 *
 * The clocks are shifted by 20 minutes on the local directory, more than the
 * 15-minute catch-up overlap (docs/FORMAT.md §3, rule P6 in §5.6); on S3 by
 * 14 minutes each way, because S3 (and the test server) refuse a request
 * signed more than 15 minutes away from their own clock: the two shifted
 * writers are still 28 minutes apart.
 */

import "../drivers/s3/mod.ts"; // s3:// Locations (the registry does not load the S3 driver by itself)
import assert from "node:assert/strict";
import { createLocationRegistry, initStore } from "../mod.ts";
import type { Dump, Plan } from "./fixtures/model_worker.ts";
import { denoRun, killProcess, requireFaketime, ROOT, runDeno } from "./processes.ts";
import { S3_TEST_CREDENTIALS, startS3Server } from "./s3_server.ts";

/**
 * How soon a write must be visible to every handle, open or opened later:
 * the documented bound on how long an open handle may go without catching
 * up.
 */
const BOUND_MS = 10_000;
/** How long the writers run. */
const RUN_MS = 15_000;
const WORKER = `${ROOT}/tests/fixtures/model_worker.ts`;
const NAMESPACES = ["alpha", "beta"];
const KEYS = ["k0", "k1", "k2", "k3", "d/k4", "d/k5", "d/e/k6", "k7"];

const SEED = (() => {
  const given = Deno.env.get("CAPSA_MODEL_SEED");
  if (given === undefined) return Math.floor(Math.random() * 2 ** 31);
  const n = Number(given);
  if (!Number.isSafeInteger(n)) throw new Error(`CAPSA_MODEL_SEED must be an integer: ${given}`);
  return n;
})();

interface WorkerSpec {
  role: "long" | "batch";
  skewMinutes: number;
}

/** One line of a worker's log (see tests/fixtures/model_worker.ts). */
interface LogRecord {
  w: number;
  op: string;
  ns?: string;
  key?: string;
  version?: string;
  tombstones?: string[];
  seed?: number;
  size?: number;
  at?: number;
  ack?: number;
  seen?: string;
  final?: boolean;
  what?: string;
  code?: string;
  message?: string;
}

/** An acknowledged write. */
interface Write {
  w: number;
  id: string;
  ack: number;
  deleted: boolean;
}

async function runModel(
  name: string,
  location: string,
  skewMinutes: number,
  env: Record<string, string>,
): Promise<void> {
  await requireFaketime();
  const dir = await Deno.makeTempDir({ prefix: "capsa-model-" });
  const children: Deno.ChildProcess[] = [];
  try {
    const registry = createLocationRegistry();
    const driver = await registry.open(location, { create: true, durable: false });
    try {
      const { store } = await initStore(driver);
      await store.close();
    } finally {
      await driver.close();
    }

    const specs: WorkerSpec[] = [
      { role: "long", skewMinutes: 0 },
      { role: "batch", skewMinutes: skewMinutes },
      { role: "batch", skewMinutes: -skewMinutes },
      { role: "batch", skewMinutes: 0 },
    ];
    const launched = Date.now();
    const plans: Plan[] = specs.map((s, i) => ({
      role: s.role,
      worker: i,
      location,
      hostDir: `${dir}/host-${i}`,
      seed: (SEED + i * 7919) >>> 0,
      skewMs: s.skewMinutes * 60_000,
      until: launched + RUN_MS + (s.role === "long" ? BOUND_MS + 1000 : 0),
      log: `${dir}/log-${i}.jsonl`,
      namespaces: NAMESPACES,
      keys: KEYS,
    }));
    for (const [i, p] of plans.entries()) {
      const offset = specs[i]!.skewMinutes;
      children.push(
        denoRun([WORKER, JSON.stringify(p)], {
          env,
          ...(offset === 0 ? {} : { clockOffset: `${offset > 0 ? "+" : ""}${offset}m` }),
        }).spawn(),
      );
    }
    const outputs = await Promise.all(children.map((c) => c.output()));
    children.length = 0;
    const dec = new TextDecoder();
    outputs.forEach((o, i) => {
      assert.equal(o.code, 0, `worker ${i} exited ${o.code}: ${dec.decode(o.stderr)}`);
    });

    const dumped = await runDeno([
      WORKER,
      JSON.stringify({
        ...plans[0]!,
        role: "dump",
        worker: 99,
        hostDir: `${dir}/fresh-host`,
        skewMs: 0,
      }),
    ], { env });
    assert.equal(dumped.code, 0, `the fresh reader failed: ${dumped.stderr}`);
    const dump = JSON.parse(dumped.stdout) as Dump;

    const records: LogRecord[] = [];
    for (const p of plans) {
      const text = await Deno.readTextFile(p.log);
      for (const line of text.split("\n")) if (line !== "") records.push(JSON.parse(line));
    }
    const failures = check(records, dump, specs, launched);
    assert.equal(failures.size, 0, report(name, failures, records, specs));
  } finally {
    for (const c of children) await killProcess(c);
    await Deno.remove(dir, { recursive: true });
  }
}

/** Violations of the model, by kind, one line each. */
type Failures = Map<string, string[]>;

/** The failure message: its seed, what each worker did, each kind of violation with examples. */
function report(name: string, failures: Failures, records: LogRecord[], specs: WorkerSpec[]) {
  const lines = [
    `${name}: the model is violated (CAPSA_MODEL_SEED=${SEED} replays the choices)`,
  ];
  specs.forEach((s, w) => {
    const n = (op: string) => records.filter((r) => r.w === w && r.op === op).length;
    lines.push(
      `  worker ${w} (${s.role}, clock ${s.skewMinutes} min): ${n("open")} opens, ${n("put")} ` +
        `puts, ${n("delete")} deletes, ${n("observe")} reads, ${n("snapshot")} snapshots, ` +
        `${n("refused")} refused`,
    );
  });
  for (const [kind, list] of failures) {
    lines.push(`${kind}: ${list.length}, e.g.`, ...list.slice(0, 4).map((l) => `  ${l}`));
  }
  return lines.join("\n");
}

/** The violations of the model (see the module documentation). */
function check(records: LogRecord[], dump: Dump, specs: WorkerSpec[], launched: number): Failures {
  const failures: Failures = new Map();
  const fail = (kind: string, line: string) =>
    failures.set(kind, [...(failures.get(kind) ?? []), line]);
  const t = (ms: number) => `+${((ms - launched) / 1000).toFixed(1)}s`;
  const who = (w: number) =>
    `worker ${w} (${specs[w]!.role}${
      specs[w]!.skewMinutes === 0 ? "" : `, clock ${specs[w]!.skewMinutes} min`
    })`;

  // The shifted clocks took effect: each worker's "true" start is near the launch.
  for (const r of records.filter((r) => r.op === "start")) {
    if (Math.abs(r.at! - launched) > 60_000) {
      fail("clock not shifted", `${who(r.w)} started at ${t(r.at!)}`);
    }
  }
  for (const r of records) {
    if (r.op === "error") fail("errors", `${who(r.w)}: ${r.what}: ${r.message}`);
    if (r.op === "refused" && specs[r.w]!.skewMinutes === 0) {
      fail("refusals on the real clock", `${who(r.w)}: ${r.what}: ${r.code}: ${r.message}`);
    }
  }

  const writes = new Map<string, Write[]>();
  const puts: Array<LogRecord & Write> = [];
  for (const r of records) {
    if (r.op !== "put" && r.op !== "delete") continue;
    const id = r.op === "put" ? r.version! : [...r.tombstones!].sort()[0]!;
    const write = { w: r.w, id, ack: r.ack!, deleted: r.op === "delete" };
    const k = `${r.ns}/${r.key}`;
    writes.set(k, [...(writes.get(k) ?? []), write]);
    if (r.op === "put") puts.push({ ...r, ...write });
  }
  specs.forEach((s, w) => {
    if (s.skewMinutes === 0 && !puts.some((p) => p.w === w)) {
      fail("no put acknowledged (nothing was checked)", who(w));
    }
  });

  // 1. A fresh process sees every acknowledged write, byte for byte.
  for (const [k, ws] of writes) {
    const state = dump[k]!;
    const versions = new Map(state.versions.map((v) => [v.version, v]));
    for (const r of records.filter((r) => `${r.ns}/${r.key}` === k)) {
      if (r.op === "put") {
        const v = versions.get(r.version!);
        if (!v) {
          fail(
            "acknowledged puts a fresh reader lacks",
            `${k} version ${r.version}, put by ${who(r.w)} at ${t(r.ack!)}`,
          );
        } else if (v.bytes !== "ok") {
          fail("versions a fresh reader reads wrong", `${k} version ${r.version}: ${v.bytes}`);
        }
      } else if (r.op === "delete" && !r.tombstones!.some((id) => versions.get(id)?.deleted)) {
        fail(
          "acknowledged deletes a fresh reader lacks",
          `${k}, deleted by ${who(r.w)} at ${t(r.ack!)}`,
        );
      }
    }
    const newest = state.versions.reduce((m, v) => (v.version > m.version ? v : m), {
      version: "",
      deleted: true,
      bytes: "ok",
    });
    const last = ws.reduce((m, w) => (w.id > m.id ? w : m));
    if (newest.version < last.id) {
      fail(
        "keys whose newest version a fresh reader sees is older than acknowledged",
        `${k}: ${newest.version || "none"}, older than ${last.id} acknowledged by ` +
          `${who(last.w)} at ${t(last.ack)}`,
      );
    }
    const current = newest.deleted ? null : newest.version;
    if (state.current !== current) {
      fail(
        "keys whose current version is not their newest (fresh reader)",
        `${k}: current ${state.current}, newest ${current}`,
      );
    }
  }

  // 2. Every read sees every write acknowledged more than BOUND_MS before it.
  const finals = new Set<number>();
  for (const o of records.filter((r) => r.op === "observe")) {
    if (o.final) finals.add(o.w);
    const due = (writes.get(`${o.ns}/${o.key}`) ?? []).filter((w) => w.ack <= o.at! - BOUND_MS);
    if (due.length === 0) continue;
    const last = due.reduce((m, w) => (w.id > m.id ? w : m));
    if (o.seen! < last.id) {
      fail(
        o.final
          ? "reads of the long-lived handle's last check missing a write"
          : `reads missing a write acknowledged more than ${BOUND_MS / 1000}s before`,
        `${who(o.w)} at ${t(o.at!)} saw ${o.ns}/${o.key} at ${o.seen || "nothing"}, not ` +
          `${last.id} acknowledged by ${who(last.w)} at ${t(last.ack)}`,
      );
    }
  }
  specs.forEach((s, w) => {
    if (s.role === "long" && !finals.has(w)) {
      fail("long-lived handles without a last check", who(w));
    }
  });
  return failures;
}

Deno.test("openStore() on localfs: concurrent processes (one held open, clocks 20 min ahead and behind) never lose an acknowledged write, and every handle sees it within the bound", async () => {
  const dir = await Deno.makeTempDir({ prefix: "capsa-model-loc-" });
  try {
    await runModel("localfs", `${dir}/store`, 20, {});
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openStore() on S3: concurrent processes (one held open, clocks 14 min ahead and behind) never lose an acknowledged write, and every handle sees it within the bound", async () => {
  const server = await startS3Server({ createOnly: true });
  try {
    const bucket = "capsa-model";
    await server.createBucket(bucket);
    Deno.env.set("AWS_ACCESS_KEY_ID", S3_TEST_CREDENTIALS.accessKeyId);
    Deno.env.set("AWS_SECRET_ACCESS_KEY", S3_TEST_CREDENTIALS.secretAccessKey);
    await runModel(
      "s3",
      `s3://${bucket}/store?endpoint=${server.endpoint}&create-only=true`,
      14,
      {
        AWS_ACCESS_KEY_ID: S3_TEST_CREDENTIALS.accessKeyId,
        AWS_SECRET_ACCESS_KEY: S3_TEST_CREDENTIALS.secretAccessKey,
      },
    );
  } finally {
    await server.stop();
  }
});
