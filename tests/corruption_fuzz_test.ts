/**
 * Corruption fuzzing over every kind of object capsa keeps: packs, a pack's
 * TOC, index snapshots, each descriptor replica, config versions, the config
 * pointer, the maintenance lease and mode, the host cache and the Recovery
 * Kit. For each kind, seeded trials damage one object of a fresh copy of a
 * small real store (flip a bit, truncate, delete, zero, replace it with
 * another object of its kind, or with garbage JSON) and check:
 *
 * - **before the repair**: every read returns exactly the original bytes or
 *   a typed capsa error (a `CapsaError` with a code of `ERROR_CODES`, never
 *   `internal`) whose message names the damaged object; an artifact whose
 *   bytes the damage cannot touch reads back; reading changes nothing on the
 *   Location;
 * - **after the repair docs/OPERATIONS.md documents** (run as real `capsa`
 *   processes): the store is `Ready`, every artifact whose bytes survived
 *   reads back byte for byte, and an artifact whose bytes were destroyed
 *   fails with a typed error.
 *
 * `CAPSA_FUZZ_SEED` replays a run (every failure message names its seed value, the
 * kind, the trial and the damage); `CAPSA_FUZZ_TRIALS` (default 3) sets the
 * trials per kind.
 */

import assert from "node:assert/strict";
import { PACK_TRAILER_BYTES, parsePackTrailer } from "../format/pack.ts";
import {
  CONFIG_CURRENT_KEY,
  configReplicaKey,
  configVersionKey,
  DESCRIPTOR_KEY,
  DESCRIPTOR_REPLICA_KEY,
  HOST_CACHE_KEY,
  HOST_DESCRIPTOR_KEY,
  LEASE_KEY,
  MAINTENANCE_MODE_KEY,
  TAKEOVER_PREFIX,
} from "../layout.ts";
import { acquireLease } from "../store/lease.ts";
import { encodeMaintenanceMode } from "../format/markers.ts";
import { openLocalFs } from "../drivers/localfs/mod.ts";
import { capsa, type ProcessResult } from "./processes.ts";
import {
  type Artifact,
  buildFixture,
  copyDir,
  type Damage,
  damageFile,
  type DamageOp,
  dumpDiff,
  dumpDir,
  type Fixture,
  FUZZ_SEED,
  FUZZ_TRIALS,
  readEvery,
  type ReadOutcome,
  Rng,
  sameBytes,
  trialSeed,
} from "./fuzz_store.ts";

/** One trial's copy of the fixture. */
interface Trial {
  fx: Fixture;
  rng: Rng;
  /** `<dir>/store`, `<dir>/host`, `<dir>/kit.txt`. */
  dir: string;
  store: string;
  host: string;
  kit: string;
  where: string;
}

/** What a kind of object is and how it is damaged and repaired. */
interface Kind {
  name: string;
  /** The damages that apply (default: all). */
  ops?: readonly DamageOp[];
  /** Prepares the copy before the damage (e.g. leaves a crashed agent's lease). */
  setup?(t: Trial): Promise<void>;
  /** Damages the copy. */
  damage(t: Trial, op: DamageOp): Promise<Damage[]>;
  /** Words one of which an error caused by the damage must contain (keys, the kind's name). */
  names(t: Trial, damages: Damage[]): string[];
  /** Artifacts the damage may have touched (default none). */
  atRisk?(t: Trial, damages: Damage[]): Set<number>;
  /** Whether the artifacts at risk certainly lost their bytes (they must then fail after the repair). */
  destroys?(op: DamageOp): boolean;
  /** Whether every artifact not at risk must read back before the repair (default true). */
  readableBefore?: boolean;
  /** Read before the repair from a fresh host directory (the snapshot is then what is loaded). */
  freshHostBefore?: boolean;
  /** Runs the documented repair. */
  repair(t: Trial, damages: Damage[]): Promise<void>;
  /** The key of a damaged object the repair cannot undo, which the store may go on listing. */
  lastingProblem?(t: Trial, damages: Damage[]): string;
  /** The host directory to read from after the repair (default the trial's). */
  afterHost?(t: Trial): string;
  /** A known defect, described in the name: the case is kept but not run. */
  ignore?: boolean;
  /** Checks after the repair, beyond the reads. */
  after?(t: Trial, damages: Damage[]): Promise<void>;
}

const text = new TextDecoder();

/** Runs `capsa ARGS… --host-dir <trial host>`, insisting on exit 0. */
async function cli(t: Trial, args: string[], host = t.host): Promise<ProcessResult> {
  const r = await capsa([...args, "--host-dir", host]);
  assert.equal(
    r.code,
    0,
    `${t.where}: capsa ${args.join(" ")} exited ${r.code}: ${r.stderr.trim()}`,
  );
  return r;
}

/** The bytes of a key of the base fixture (relative to `store/`, `host/`, or the kit). */
function original(t: Trial, rel: string): Promise<Uint8Array> {
  return Deno.readFile(`${t.fx.dir}/${rel}`);
}

async function assertRestored(t: Trial, damages: Damage[]): Promise<void> {
  for (const d of damages) {
    const rel = d.path.slice(t.dir.length + 1);
    const now = await Deno.readFile(d.path).catch(() => undefined);
    const was = await original(t, rel);
    assert.ok(
      now !== undefined && (sameBytes(now, was) || sameJson(now, was)),
      `${t.where} [${d.op}: ${d.detail}]: ${rel} was not restored by the repair`,
    );
  }
}

/** Whether two objects hold the same JSON (a replica rewritten in another layout is sound). */
function sameJson(a: Uint8Array, b: Uint8Array): boolean {
  try {
    return assert.deepStrictEqual(JSON.parse(text.decode(a)), JSON.parse(text.decode(b))) ===
      undefined;
  } catch {
    return false;
  }
}

function foreign(t: Trial, key: string): Uint8Array {
  const v = t.fx.foreign.get(key);
  assert.ok(v, `the foreign store has no ${key}`);
  return v;
}

function foreignSnapshot(t: Trial): Uint8Array {
  const key = [...t.fx.foreign.keys()].find((k) => k.startsWith("system.state/index/snapshots/"));
  return foreign(t, key!);
}

/** The artifacts with a manifest or a blob in a pack. */
function groupOf(t: Trial, packKey: string): Set<number> {
  return new Set(t.fx.artifacts.flatMap((a, i) => a.packs.includes(packKey) ? [i] : []));
}

/** Leaves the lease of an agent that crashed an hour ago on another host: expired. */
async function crashedLease(t: Trial, withMode: boolean): Promise<void> {
  const driver = await openLocalFs(t.store);
  const lease = await acquireLease(driver, {
    storeId: t.fx.storeId,
    agent: "RebuildIndex",
    ttlMs: 60_000,
    host: "crashed-host",
    pid: 4242,
    clock: () => Date.now() - 3600_000,
  });
  if (withMode) {
    await driver.put(
      MAINTENANCE_MODE_KEY,
      encodeMaintenanceMode({
        mode: "offline",
        agent: "RebuildIndex",
        holder: lease.holder,
        nonce: lease.record.nonce,
      }),
    );
  }
}

async function absent(t: Trial, key: string): Promise<void> {
  const gone = await Deno.stat(`${t.store}/${key}`).then(() => false, () => true);
  assert.ok(gone, `${t.where}: ${key} is still there after the repair`);
}

/** `capsa rebuild`, with `--force` when a lease holds it (docs/OPERATIONS.md "Lease held", step 3). */
async function rebuildBreakingLease(t: Trial): Promise<void> {
  const r = await capsa(["rebuild", t.store, "--host-dir", t.host]);
  if (r.code === 0) return;
  assert.equal(r.code, 4, `${t.where}: capsa rebuild exited ${r.code}: ${r.stderr.trim()}`);
  assert.match(r.stderr, /lease_held/, t.where);
  assert.match(r.stderr, /maintenance lease held by/, `${t.where}: the refusal names the lease`);
  if (/unreadable/.test(r.stderr)) {
    // A damaged lease or marker never expires: the message must say which object and --force.
    assert.match(r.stderr, /system\.state\/maintenance\/(lease|takeover\/\d+) is damaged/, t.where);
    assert.doesNotMatch(r.stderr, /wait for it to finish/, t.where);
  }
  await cli(t, ["rebuild", t.store, "--force"]);
}

/** The problems `capsa status --json` lists. */
async function problems(t: Trial): Promise<string[]> {
  const r = await capsa(["status", t.store, "--json", "--host-dir", t.host]);
  return JSON.parse(r.stdout).problems ?? [];
}

/** Removes the objects `status` lists with a problem matching `pattern` (group 1: the key, `host:` for the host's). */
async function removeListed(t: Trial, pattern: RegExp): Promise<number> {
  let removed = 0;
  for (const p of await problems(t)) {
    const m = pattern.exec(p);
    if (!m) continue;
    const key = m[1]!;
    await Deno.remove(key.startsWith("host:") ? `${t.host}/${key.slice(5)}` : `${t.store}/${key}`);
    removed++;
  }
  return removed;
}

const DESCRIPTOR_NAMES = [DESCRIPTOR_KEY, "descriptor"];

function descriptorKind(name: string, rel: string): Kind {
  return {
    name,
    damage: async (t, op) => [
      await damageFile(`${t.dir}/${rel}`, op, t.rng, {
        other: foreign(t, rel.replace(/^store\//, "").replace(/^host\//, "host:")),
      }),
    ],
    names: () => DESCRIPTOR_NAMES,
    // docs/OPERATIONS.md "Every descriptor replica lost": a writable open rewrites a bad replica;
    // one of another store is left for the operator to check and remove, then rewritten.
    repair: async (t) => {
      await cli(t, ["snapshot", t.store]);
      if (await removeListed(t, /^(\S+): foreign: /) > 0) await cli(t, ["snapshot", t.store]);
    },
    after: assertRestored,
  };
}

function configKind(name: string, keys: (t: Trial) => string[]): Kind {
  return {
    name,
    damage: async (t, op) => {
      const out: Damage[] = [];
      for (const key of keys(t)) {
        out.push(await damageFile(`${t.store}/${key}`, op, t.rng, { other: foreign(t, key) }));
      }
      return out;
    },
    names: () => ["system.config", "system.state/config", "config"],
    readableBefore: false,
    // docs/OPERATIONS.md "A damaged config": a writable open heals one copy; with none left,
    // `capsa rebuild` writes a new version, and the unreadable copies of the old one are removed.
    repair: async (t, damages) => {
      if (damages.length === 1) return void await cli(t, ["snapshot", t.store]);
      await cli(t, ["rebuild", t.store]);
      await removeListed(t, /^(system\.(?:config|state\/config)\/\d{10}\.json): invalid: /);
    },
  };
}

const KINDS: Kind[] = [
  {
    name: "pack",
    damage: async (t, op) => {
      const key = t.rng.pick(t.fx.packs);
      const others = t.fx.packs.filter((k) => k !== key);
      const other = t.rng.int(2) === 0
        ? await Deno.readFile(`${t.store}/${t.rng.pick(others)}`)
        : foreign(t, [...t.fx.foreign.keys()].find((k) => k.startsWith("packs/"))!);
      return [await damageFile(`${t.store}/${key}`, op, t.rng, { other })];
    },
    names: (t, [d]) => {
      const key = d!.path.slice(t.store.length + 1);
      return [key, key.split("/").at(-1)!];
    },
    atRisk: (t, [d]) => groupOf(t, d!.path.slice(t.store.length + 1)),
    destroys: (op) => op !== "flip",
    lastingProblem: (t, [d]) => d!.path.slice(t.store.length + 1),
    // docs/OPERATIONS.md "Problems found by capsa verify": missing_pack, corrupt_toc… → rebuild --source full-scan.
    repair: async (t) => void await cli(t, ["rebuild", t.store, "--source", "full-scan"]),
  },
  {
    name: "pack TOC",
    ops: ["flip", "truncate", "zeros", "other", "garbage"],
    damage: async (t, op) => {
      const key = t.rng.pick(t.fx.packs);
      const path = `${t.store}/${key}`;
      const bytes = await Deno.readFile(path);
      const trailer = parsePackTrailer(key, bytes.subarray(bytes.length - PACK_TRAILER_BYTES));
      const region: [number, number] = [trailer.tocOffset, bytes.length];
      // Another pack's TOC and trailer spliced onto this pack's blobs.
      const donorKey = t.rng.pick(t.fx.packs.filter((k) => k !== key));
      const donor = await Deno.readFile(`${t.store}/${donorKey}`);
      const donorTrailer = parsePackTrailer(
        donorKey,
        donor.subarray(donor.length - PACK_TRAILER_BYTES),
      );
      const spliced = new Uint8Array(trailer.tocOffset + donor.length - donorTrailer.tocOffset);
      spliced.set(bytes.subarray(0, trailer.tocOffset));
      spliced.set(donor.subarray(donorTrailer.tocOffset), trailer.tocOffset);
      return [await damageFile(path, op, t.rng, { region, other: spliced })];
    },
    names: (t, [d]) => {
      const key = d!.path.slice(t.store.length + 1);
      return [key, key.split("/").at(-1)!];
    },
    // No artifact is at risk: the blobs are intact, the host cache and the newest snapshot record
    // what the damaged TOC held, and `capsa rebuild` starts from that snapshot
    // (docs/OPERATIONS.md "Unparsable packs or manifests").
    lastingProblem: (t, [d]) => d!.path.slice(t.store.length + 1),
    repair: async (t) => void await cli(t, ["rebuild", t.store]),
  },
  {
    name: "index snapshot",
    freshHostBefore: true,
    damage: async (t, op) => {
      const key = t.fx.snapshots.at(-1)!;
      const other = t.rng.int(2) === 0
        ? await original(t, `store/${t.fx.snapshots[0]}`)
        : foreignSnapshot(t);
      return [await damageFile(`${t.store}/${key}`, op, t.rng, { other })];
    },
    names: (t) => [t.fx.snapshots.at(-1)!, "snapshot"],
    // docs/OPERATIONS.md "Corrupted or unusable index snapshot": write a fresh one.
    repair: async (t) => {
      await cli(t, ["snapshot", t.store], `${t.dir}/host-snapshot`);
      // Read it back on a host that has no cache: the fresh snapshot is what is loaded.
      await Deno.remove(`${t.dir}/host-snapshot/${HOST_CACHE_KEY}`);
    },
    afterHost: (t) => `${t.dir}/host-snapshot`,
  },
  descriptorKind("descriptor replica store.json", `store/${DESCRIPTOR_KEY}`),
  descriptorKind("descriptor replica system.state", `store/${DESCRIPTOR_REPLICA_KEY}`),
  descriptorKind("descriptor replica of the host", `host/${HOST_DESCRIPTOR_KEY}`),
  {
    name: "every descriptor replica",
    ops: ["flip", "truncate", "delete", "zeros", "garbage"],
    damage: async (t, op) => {
      const out: Damage[] = [];
      for (
        const rel of [
          `store/${DESCRIPTOR_KEY}`,
          `store/${DESCRIPTOR_REPLICA_KEY}`,
          `host/${HOST_DESCRIPTOR_KEY}`,
        ]
      ) {
        out.push(
          await damageFile(`${t.dir}/${rel}`, op, t.rng, { other: foreign(t, DESCRIPTOR_KEY) }),
        );
      }
      return out;
    },
    names: () => DESCRIPTOR_NAMES,
    readableBefore: false,
    // docs/OPERATIONS.md "Every descriptor replica lost".
    repair: async (t) => void await cli(t, ["rebuild", t.store, "--kit", t.kit]),
    after: assertRestored,
  },
  {
    // Every replica holds one other store's descriptor while the packs are this store's: the
    // store is Corrupted, its problem naming store.json; `rebuild --kit` with this store's kit
    // rewrites the replicas (docs/OPERATIONS.md "Every descriptor replica lost").
    name: "every descriptor replica replaced by another store's",
    ops: ["other"],
    damage: async (t, op) => {
      const out: Damage[] = [];
      for (
        const rel of [
          `store/${DESCRIPTOR_KEY}`,
          `store/${DESCRIPTOR_REPLICA_KEY}`,
          `host/${HOST_DESCRIPTOR_KEY}`,
        ]
      ) {
        out.push(
          await damageFile(`${t.dir}/${rel}`, op, t.rng, { other: foreign(t, DESCRIPTOR_KEY) }),
        );
      }
      return out;
    },
    names: () => DESCRIPTOR_NAMES,
    readableBefore: false,
    repair: async (t) => void await cli(t, ["rebuild", t.store, "--kit", t.kit]),
    after: assertRestored,
  },
  configKind("config version (one copy)", (t) => [
    t.rng.pick([configVersionKey(1), configReplicaKey(1)]),
  ]),
  configKind("config version (both copies)", () => [configVersionKey(1), configReplicaKey(1)]),
  {
    name: "config pointer",
    damage: async (t, op) => [
      await damageFile(`${t.store}/${CONFIG_CURRENT_KEY}`, op, t.rng, {
        other: new TextEncoder().encode("0000000007"),
      }),
    ],
    names: () => [CONFIG_CURRENT_KEY, "pointer"],
    // docs/OPERATIONS.md "Dangling config pointer".
    repair: async (t) => void await cli(t, ["rebuild", t.store]),
    after: async (t) => {
      const { location } = { location: await openLocalFs(t.store) };
      const current = text.decode(await location.get(CONFIG_CURRENT_KEY));
      assert.match(current, /0*1\b/, `${t.where}: the pointer names version 1 again: ${current}`);
    },
  },
  {
    name: "maintenance lease",
    setup: (t) => crashedLease(t, false),
    damage: async (t, op) => [
      await damageFile(`${t.store}/${LEASE_KEY}`, op, t.rng, {
        // The same lease, of another store.
        other: new TextEncoder().encode(JSON.stringify({
          ...JSON.parse(text.decode(await Deno.readFile(`${t.store}/${LEASE_KEY}`))),
          storeId: "0123456789abcdef0123456789abcdef",
        })),
      }),
    ],
    names: () => [LEASE_KEY, "lease"],
    repair: rebuildBreakingLease,
    after: async (t) => await absent(t, LEASE_KEY),
  },
  {
    name: "takeover marker",
    ops: ["flip", "truncate", "zeros", "garbage"],
    setup: async (t) => {
      await crashedLease(t, false);
      // A taker that won marker 1 and died before writing the lease, long ago.
      await Deno.mkdir(`${t.store}/${TAKEOVER_PREFIX}`, { recursive: true });
      await Deno.writeTextFile(
        `${t.store}/${TAKEOVER_PREFIX}0000000001`,
        JSON.stringify({ host: "h", pid: 1, at: 1 }),
      );
    },
    damage: async (
      t,
      op,
    ) => [await damageFile(`${t.store}/${TAKEOVER_PREFIX}0000000001`, op, t.rng)],
    names: () => [TAKEOVER_PREFIX, "takeover"],
    repair: rebuildBreakingLease,
    after: async (t) => await absent(t, LEASE_KEY),
  },
  {
    name: "maintenance mode",
    setup: (t) => crashedLease(t, true),
    damage: async (t, op) => [
      await damageFile(`${t.store}/${MAINTENANCE_MODE_KEY}`, op, t.rng, {
        other: encodeMaintenanceMode({
          mode: "read-only",
          agent: "Verify",
          holder: "elsewhere",
          nonce: "ab",
        }),
      }),
    ],
    names: () => [MAINTENANCE_MODE_KEY, "maintenance"],
    // docs/OPERATIONS.md "Maintenance mode left by a crash": the next agent run removes it.
    repair: async (t) => void await cli(t, ["rebuild", t.store]),
    after: async (t) => {
      await absent(t, MAINTENANCE_MODE_KEY);
      await absent(t, LEASE_KEY);
    },
  },
  {
    name: "host cache",
    damage: async (t, op) => [
      await damageFile(`${t.host}/${HOST_CACHE_KEY}`, op, t.rng, {
        other: t.rng.int(2) === 0 ? t.fx.staleHostCache : foreign(t, `host:${HOST_CACHE_KEY}`),
      }),
    ],
    names: () => [HOST_CACHE_KEY, "host cache", "cache"],
    // docs/OPERATIONS.md "Lost host cache": nothing to do; `capsa snapshot` makes opens fast again.
    repair: async (t) => void await cli(t, ["snapshot", t.store]),
  },
  {
    name: "recovery kit",
    damage: async (t, op) => [await damageFile(t.kit, op, t.rng, { other: foreign(t, "kit") })],
    names: () => ["kit", "Recovery Kit"],
    repair: async (t, [d]) => {
      // docs/OPERATIONS.md "Every descriptor replica lost": re-issue the kit while the store is healthy…
      const fresh = `${t.dir}/kit-reissued.txt`;
      await cli(t, ["kit", t.store, "--out", fresh]);
      // …because the damaged one must not be trusted once every descriptor replica is lost.
      for (
        const rel of [
          `store/${DESCRIPTOR_KEY}`,
          `store/${DESCRIPTOR_REPLICA_KEY}`,
          `host/${HOST_DESCRIPTOR_KEY}`,
        ]
      ) {
        await Deno.remove(`${t.dir}/${rel}`);
      }
      const before = await dumpDir(t.store);
      const r = await capsa(["rebuild", t.store, "--kit", t.kit, "--host-dir", t.host]);
      if (r.code !== 0) {
        assert.match(
          r.stderr,
          /^capsa: (recovery_kit_invalid|recovery_kit_mismatch|recovery_kit_required|not_found|file_not_found): /m,
          `${t.where} (${d!.detail}): rebuild --kit with the damaged kit: ${r.stderr.trim()}`,
        );
        assert.match(r.stderr, /kit/i, `${t.where}: the refusal names the kit`);
        assert.equal(
          dumpDiff(before, await dumpDir(t.store)),
          "",
          `${t.where}: a refused rebuild --kit changed the store`,
        );
        await cli(t, ["rebuild", t.store, "--kit", fresh]);
      }
    },
  },
];

/** Checks the reads of one phase against what the kind expects. */
function judge(
  t: Trial,
  kind: Kind,
  damages: Damage[],
  outcomes: ReadOutcome[],
  phase: "before" | "after",
): void {
  const atRisk = kind.atRisk?.(t, damages) ?? new Set<number>();
  const names = kind.names(t, damages);
  const what = damages.map((d) => `${d.path.slice(t.dir.length + 1)}: ${d.op}, ${d.detail}`).join(
    "; ",
  );
  outcomes.forEach((o, i) => {
    const a: Artifact = t.fx.artifacts[i]!;
    const label = `${t.where} [${what}] ${phase} the repair, ${a.namespace}/${a.key} (${a.shape})`;
    const mustRead = phase === "after"
      ? !atRisk.has(i)
      : !atRisk.has(i) && kind.readableBefore !== false;
    if (o.ok) {
      if (phase === "after" && atRisk.has(i) && kind.destroys?.(damages[0]!.op)) {
        assert.fail(`${label}: its bytes were destroyed, yet it reads back`);
      }
      return;
    }
    if (mustRead) {
      assert.fail(`${label}: its bytes survive, yet ${o.error.code}: ${o.error.message}`);
    }
    if (phase === "before") {
      const message = chain(o.error);
      assert.ok(
        names.some((n) => message.includes(n)),
        `${label}: ${o.error.code}: "${message}" does not name the damaged object (${
          names.join(" | ")
        })`,
      );
    }
  });
}

/** An error's message with its causes'. */
function chain(e: unknown): string {
  const out: string[] = [];
  for (let c = e; c instanceof Error && out.length < 5; c = c.cause) out.push(c.message);
  return out.join(" <- ");
}

async function runTrial(fx: Fixture, root: string, kind: Kind, trial: number): Promise<void> {
  const seed = trialSeed(FUZZ_SEED, kind.name, trial);
  const ops = kind.ops ?? ["flip", "truncate", "delete", "zeros", "other", "garbage"];
  const rng = new Rng(seed);
  const op = ops[(rng.int(ops.length) + trial) % ops.length]!;
  const dir = `${root}/${kind.name.replace(/[^a-z0-9]+/gi, "-")}-${trial}`;
  await copyDir(fx.dir, dir);
  const t: Trial = {
    fx,
    rng,
    dir,
    store: `${dir}/store`,
    host: `${dir}/host`,
    kit: `${dir}/kit.txt`,
    where: `[CAPSA_FUZZ_SEED=${FUZZ_SEED} kind "${kind.name}" trial ${trial}, ${op}]`,
  };
  try {
    await kind.setup?.(t);
    const damages = await kind.damage(t, op);
    const damaged = await dumpDir(t.store);
    const before = await readEvery(
      t.store,
      kind.freshHostBefore ? `${dir}/host-fresh` : t.host,
      fx.artifacts,
      `${t.where} before the repair`,
    );
    judge(t, kind, damages, before.outcomes, "before");
    assert.equal(
      dumpDiff(damaged, await dumpDir(t.store)),
      "",
      `${t.where}: reading changed the Location`,
    );

    await kind.repair(t, damages);
    const after = await readEvery(
      t.store,
      kind.afterHost?.(t) ?? t.host,
      fx.artifacts,
      `${t.where} after the repair`,
    );
    judge(t, kind, damages, after.outcomes, "after");
    // A pack whose damage no repair can undo stays listed (docs/OPERATIONS.md); nothing else may.
    const lasting = kind.lastingProblem?.(t, damages);
    const others = after.problems.filter((p) =>
      lasting === undefined || !p.startsWith(`${lasting}:`)
    );
    assert.equal(
      others.length === 0 && after.state !== "Corrupted" ? "Ready" : after.state,
      "Ready",
      `${t.where}: the store is ${after.state} after the repair: ${after.problems.join("; ")}`,
    );
    await kind.after?.(t, damages);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test(`corruption fuzz: every kind of object (seed ${FUZZ_SEED}, ${FUZZ_TRIALS} trials each)`, async (ctx) => {
  const root = await Deno.makeTempDir({ prefix: "capsa-fuzz-" });
  try {
    const fx = await buildFixture(`${root}/base`, new Rng(FUZZ_SEED));
    const only = Deno.env.get("CAPSA_FUZZ_KIND");
    for (const kind of KINDS.filter((k) => only === undefined || k.name.includes(only))) {
      await ctx.step({
        name: kind.name,
        ignore: kind.ignore === true,
        fn: async () => {
          for (let trial = 0; trial < FUZZ_TRIALS; trial++) await runTrial(fx, root, kind, trial);
        },
      });
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
