/**
 * The pieces of the corruption fuzz (`tests/corruption_fuzz_test.ts`): a
 * small real store on a local directory holding artifacts of every body
 * shape in several packs, with snapshots, a host directory and a Recovery
 * Kit; a second, foreign store whose objects serve as "another object of the
 * same kind"; seeded damages; and the check that reads every artifact and
 * sorts each read into exact bytes or a typed capsa error.
 *
 * @module
 */

import assert from "node:assert/strict";
import { openLocalFs } from "../drivers/localfs/mod.ts";
import { CapsaError, isErrorCode } from "../errors.ts";
import { initStore, openStore, type Store } from "../store/store.ts";
import { listSnapshots } from "../store/persistence.ts";
import { HOST_CACHE_KEY, PACK_PREFIX } from "../layout.ts";
import { readPackToc } from "../format/pack.ts";
import { Xorshift } from "./data.ts";

/** The seed of a run: `CAPSA_FUZZ_SEED`, else a fixed one. */
export const FUZZ_SEED: number = Number(Deno.env.get("CAPSA_FUZZ_SEED") ?? "20261128") >>> 0;
/** Trials per kind of object: `CAPSA_FUZZ_TRIALS`, else 3 (well under a minute for the whole file). */
export const FUZZ_TRIALS: number = Math.max(1, Number(Deno.env.get("CAPSA_FUZZ_TRIALS") ?? "3"));

/** A seeded generator with the draws the fuzz needs. */
export class Rng {
  #x: Xorshift;
  /** @param seed The seed. */
  constructor(seed: number) {
    this.#x = new Xorshift(seed);
    for (let i = 0; i < 4; i++) this.#x.next(); // small seeds start with small values
  }
  /** @param n The bound. @returns An integer in [0, n). */
  int(n: number): number {
    return n <= 0 ? 0 : this.#x.next() % n;
  }
  /** @param items A non-empty array. @returns One of them. */
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  /** @param size How many. @returns Random bytes. */
  bytes(size: number): Uint8Array<ArrayBuffer> {
    return this.#x.fill(new Uint8Array(size));
  }
}

/** A seed for one (kind, trial): each trial replays on its own. */
export function trialSeed(seed: number, kind: string, trial: number): number {
  let h = seed ^ 0x811c9dc5;
  for (const c of `${kind}#${trial}`) h = Math.imul(h ^ c.charCodeAt(0), 0x01000193);
  return h >>> 0;
}

/** One artifact of the fixture. */
export interface Artifact {
  namespace: string;
  key: string;
  bytes: Uint8Array;
  shape: "inline" | "regular" | "chunked";
  /** The index of its put group (snapshots and the stale host cache are taken between groups). */
  group: number;
  /** The packs holding its manifest and its blobs (from their TOCs). */
  packs: string[];
}

/** The base store every trial copies. */
export interface Fixture {
  /** Holds `store/`, `host/`, `kit.txt`. */
  dir: string;
  storeId: string;
  artifacts: Artifact[];
  /** Every pack key. */
  packs: string[];
  /** Snapshot keys, oldest first (the older one misses the last groups). */
  snapshots: string[];
  /** The host cache as it was before the last groups were put: stale but valid. */
  staleHostCache: Uint8Array;
  /** Objects of another store, by key (relative to its Location), plus `host:` keys and `kit`. */
  foreign: Map<string, Uint8Array>;
}

/** The settings that make every shape small: bodies up to 64 B inline, up to 2 KiB one blob, larger chunked. */
const CONFIG = {
  inlineThreshold: 64,
  chunkThreshold: 2048,
  packTargetSize: 1024 * 1024,
  packLingerMs: 10_000,
  snapshotEveryPacks: 0,
  snapshotIntervalMs: 0,
  snapshotsKept: 10,
};
const CHUNKING = { min: 64, avg: 256, max: 1024 };
const NAMESPACES = ["alpha", "beta", "gamma"];
const GROUPS = 5;
/** After this many groups the older snapshot and the stale host cache are taken. */
const EARLY_GROUPS = 3;

async function listPacks(dir: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const fan of Deno.readDir(`${dir}/${PACK_PREFIX}`)) {
      for await (const p of Deno.readDir(`${dir}/${PACK_PREFIX}${fan.name}`)) {
        out.push(`${PACK_PREFIX}${fan.name}/${p.name}`);
      }
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out.sort();
}

/** Opens the drivers of a store directory and a host directory. */
export async function openDrivers(storeDir: string, hostDir: string) {
  await Deno.mkdir(hostDir, { recursive: true, mode: 0o700 });
  return {
    location: await openLocalFs(storeDir),
    host: await openLocalFs(hostDir, { create: true }),
  };
}

/**
 * Builds the base store under `dir`: {@linkcode GROUPS} groups of puts, one
 * pack each, three artifacts per group (one of each shape, in random
 * namespaces), a snapshot after {@linkcode EARLY_GROUPS} groups and one at
 * the end, the host cache of a process that closed after the last group, the
 * Recovery Kit; and a foreign store beside it.
 * @param dir An empty directory.
 * @param rng Draws the bodies and namespaces.
 * @returns The fixture.
 */
export async function buildFixture(dir: string, rng: Rng): Promise<Fixture> {
  await Deno.mkdir(`${dir}/store`, { recursive: true });
  const { location, host } = await openDrivers(`${dir}/store`, `${dir}/host`);
  const { store, recoveryKit } = await initStore(location, {
    hostStorage: host,
    chunking: CHUNKING,
    config: CONFIG,
  });
  await Deno.writeTextFile(`${dir}/kit.txt`, recoveryKit);
  const artifacts: Artifact[] = [];
  let staleHostCache: Uint8Array | undefined;
  try {
    for (let g = 0; g < GROUPS; g++) {
      const sizes = {
        inline: 1 + rng.int(64),
        regular: 65 + rng.int(1900),
        chunked: 3000 + rng.int(5000),
      };
      const puts: Promise<unknown>[] = [];
      for (const shape of ["inline", "regular", "chunked"] as const) {
        const a: Artifact = {
          namespace: rng.pick(NAMESPACES),
          key: `g${g}/${shape}-${rng.int(1000)}.bin`,
          bytes: rng.bytes(sizes[shape]),
          shape,
          group: g,
          packs: [],
        };
        puts.push(store.put(a.namespace, a.key, a.bytes));
        artifacts.push(a);
      }
      // Held open by the linger until the flush: one pack for the group.
      await store.flush();
      await Promise.all(puts);
      if (g === EARLY_GROUPS - 1) {
        await store.snapshotIndex();
        await store.saveHostCache();
        staleHostCache = await Deno.readFile(`${dir}/host/${HOST_CACHE_KEY}`);
      }
    }
    await store.snapshotIndex();
  } finally {
    await store.close();
  }
  const packs = await listPacks(`${dir}/store`);
  assert.ok(packs.length >= GROUPS, `at least one pack per group, found ${packs.length}`);
  const where = new Map<string, string>(); // blob id, or "namespace/key" of a manifest -> pack key
  const named = new Map<string, string[]>(); // "namespace/key" -> the blob ids its manifest names
  for (const key of packs) {
    const toc = await readPackToc(location, key);
    for (const b of toc.blobs) where.set(b.id, key);
    for (const m of toc.manifests) {
      where.set(`${m.namespace}/${m.key}`, key);
      named.set(`${m.namespace}/${m.key}`, m.blobs);
    }
  }
  for (const a of artifacts) {
    const id = `${a.namespace}/${a.key}`;
    const holders = [id, ...named.get(id) ?? []].map((x) => where.get(x));
    assert.ok(
      holders.every((h) => h !== undefined),
      `the manifest and blobs of ${id} are in packs`,
    );
    a.packs = [...new Set(holders as string[])].sort();
  }
  const snapshots = await listSnapshots(location);
  assert.equal(snapshots.length, 2, `two snapshots, found ${snapshots.join(", ")}`);
  const storeId = await readStoreId(`${dir}/store`);
  return {
    dir,
    storeId,
    artifacts,
    packs,
    snapshots: snapshots.sort(),
    staleHostCache: staleHostCache!,
    foreign: await buildForeign(`${dir}/foreign`),
  };
}

async function readStoreId(storeDir: string): Promise<string> {
  return JSON.parse(await Deno.readTextFile(`${storeDir}/store.json`)).storeId;
}

/** Another store, with a lease and a maintenance mode of its own: the source of "another object of the same kind". */
async function buildForeign(dir: string): Promise<Map<string, Uint8Array>> {
  await Deno.mkdir(`${dir}/store`, { recursive: true });
  const { location, host } = await openDrivers(`${dir}/store`, `${dir}/host`);
  const { store, recoveryKit } = await initStore(location, {
    hostStorage: host,
    chunking: CHUNKING,
    config: { ...CONFIG, inlineThreshold: 32, snapshotsKept: 3 },
  });
  try {
    const put = store.put("alpha", "foreign.bin", new Uint8Array(3000).fill(7));
    await store.flush();
    await put;
    await store.snapshotIndex();
  } finally {
    await store.close();
  }
  const out = await dumpDir(`${dir}/store`);
  for (const [k, v] of await dumpDir(`${dir}/host`)) out.set(`host:${k}`, v);
  out.set("kit", new TextEncoder().encode(recoveryKit));
  return out;
}

/** Every file under a directory, by path relative to it. */
export async function dumpDir(dir: string): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  const walk = async (rel: string) => {
    for await (const e of Deno.readDir(rel === "" ? dir : `${dir}/${rel}`)) {
      const path = rel === "" ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory) await walk(path);
      else if (e.isFile) out.set(path, await Deno.readFile(`${dir}/${path}`));
    }
  };
  await walk("");
  return out;
}

/** Copies a directory tree (files and directories only). */
export async function copyDir(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true, mode: 0o700 });
  for await (const e of Deno.readDir(from)) {
    if (e.isDirectory) await copyDir(`${from}/${e.name}`, `${to}/${e.name}`);
    else if (e.isFile) await Deno.copyFile(`${from}/${e.name}`, `${to}/${e.name}`);
  }
}

/** The differences between two dumps, for messages ("" when equal). */
export function dumpDiff(before: Map<string, Uint8Array>, after: Map<string, Uint8Array>): string {
  const out: string[] = [];
  for (const [k, v] of before) {
    const w = after.get(k);
    if (w === undefined) out.push(`${k} deleted`);
    else if (!sameBytes(v, w)) out.push(`${k} rewritten`);
  }
  for (const k of after.keys()) if (!before.has(k)) out.push(`${k} created`);
  return out.join(", ");
}

/** @returns Whether two byte arrays are equal. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

// ---------------------------------------------------------------- damages

/** The ways an object is damaged. */
export type DamageOp = "flip" | "truncate" | "delete" | "zeros" | "other" | "garbage";

/** Every damage, in the order trials cycle through them. */
export const DAMAGE_OPS: readonly DamageOp[] = [
  "flip",
  "truncate",
  "delete",
  "zeros",
  "other",
  "garbage",
];

/** What was done, for messages. */
export interface Damage {
  op: DamageOp;
  path: string;
  detail: string;
}

const GARBAGE_JSON = [
  "{}",
  "null",
  "[]",
  "42",
  '"store.json"',
  '{"format":null}',
  '{"a":',
  "\u0000\u0000{}",
  '{"__proto__":{"x":1}}',
];
const ODD_VALUES: unknown[] = [null, -1, 1e300, "", "x", [], {}, true, 2 ** 53, "0000000001"];

/**
 * Garbage that still looks like JSON: the object's own JSON with one field
 * set to an odd value when it parses, else a short random JSON text.
 */
function garbageFor(original: Uint8Array, rng: Rng): { bytes: Uint8Array; detail: string } {
  const enc = new TextEncoder();
  try {
    const v = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(original));
    if (v !== null && typeof v === "object" && !Array.isArray(v) && rng.int(4) !== 0) {
      const keys = Object.keys(v);
      if (keys.length > 0) {
        const field = rng.pick(keys);
        const odd = ODD_VALUES.filter((x) => JSON.stringify(x) !== JSON.stringify(v[field]));
        const value = rng.pick(odd);
        v[field] = value;
        return {
          bytes: enc.encode(JSON.stringify(v)),
          detail: `"${field}" set to ${JSON.stringify(value)}`,
        };
      }
    }
  } catch {
    // Not JSON: replaced whole below.
  }
  const text = rng.pick(GARBAGE_JSON);
  return { bytes: enc.encode(text), detail: `replaced with ${JSON.stringify(text)}` };
}

/**
 * Damages one file. `region` confines flips, truncation points and zeros to
 * a byte range (a pack's TOC); `other` is the replacement for `"other"`.
 * @returns What was done.
 */
export async function damageFile(
  path: string,
  op: DamageOp,
  rng: Rng,
  options: { region?: [number, number]; other?: Uint8Array } = {},
): Promise<Damage> {
  const bytes = await Deno.readFile(path);
  const [start, end] = options.region ?? [0, bytes.length];
  let detail: string;
  switch (op) {
    case "flip": {
      const at = start + rng.int(end - start);
      const bit = rng.int(8);
      bytes[at]! ^= 1 << bit;
      await Deno.writeFile(path, bytes);
      detail = `bit ${bit} of byte ${at} of ${bytes.length}`;
      break;
    }
    case "truncate": {
      const at = start + rng.int(end - start);
      await Deno.writeFile(path, bytes.subarray(0, at));
      detail = `cut at ${at} of ${bytes.length}`;
      break;
    }
    case "delete":
      await Deno.remove(path);
      detail = "deleted";
      break;
    case "zeros":
      bytes.fill(0, start, end);
      await Deno.writeFile(path, bytes);
      detail = `bytes ${start}..${end} zeroed`;
      break;
    case "other": {
      assert.ok(options.other, `no other object for ${path}`);
      await Deno.writeFile(path, options.other);
      detail = `replaced with another object of its kind (${options.other.length} bytes)`;
      break;
    }
    case "garbage": {
      const g = garbageFor(bytes.subarray(start, end), rng);
      if (options.region) {
        const out = new Uint8Array(bytes.length);
        out.set(bytes);
        out.fill(0x20, start, end);
        out.set(g.bytes.subarray(0, end - start), start);
        await Deno.writeFile(path, out);
      } else {
        await Deno.writeFile(path, g.bytes);
      }
      detail = g.detail;
      break;
    }
  }
  return { op, path, detail };
}

// ---------------------------------------------------------------- reads

/** How one read ended. */
export type ReadOutcome = { ok: true } | { ok: false; error: CapsaError };

/**
 * Fails unless `e` is a typed capsa error: a {@linkcode CapsaError} with a
 * code of the table, not `internal`.
 */
export function assertTyped(e: unknown, where: string): asserts e is CapsaError {
  if (!(e instanceof CapsaError) || !isErrorCode(e.code) || e.code === "internal") {
    const what = e instanceof Error ? `${e.name}: ${e.message}\n${e.stack}` : String(e);
    assert.fail(`${where}: an untyped error: ${what}`);
  }
}

/**
 * Opens the store (read-only, so that nothing is healed or written) and
 * reads every artifact. Wrong bytes and untyped errors fail at once; the
 * outcome of each read is returned for the caller's expectations.
 * @param storeDir The Location.
 * @param hostDir The host directory.
 * @param artifacts What the store should hold.
 * @param where The trial, for messages.
 * @returns The outcome per artifact (index-aligned), and the store's state.
 */
export async function readEvery(
  storeDir: string,
  hostDir: string,
  artifacts: readonly Artifact[],
  where: string,
  options: { readOnly?: boolean } = {},
): Promise<{ outcomes: ReadOutcome[]; state: string | undefined; problems: string[] }> {
  const { location, host } = await openDrivers(storeDir, hostDir);
  let store: Store;
  try {
    store = await openStore(location, { hostStorage: host, readOnly: options.readOnly ?? true });
  } catch (e) {
    assertTyped(e, `${where}: openStore`);
    return {
      outcomes: artifacts.map(() => ({ ok: false, error: e })),
      state: undefined,
      problems: [],
    };
  }
  try {
    const outcomes: ReadOutcome[] = [];
    for (const a of artifacts) {
      const label = `${where}: get ${a.namespace}/${a.key} (${a.shape}, group ${a.group})`;
      try {
        const got = await store.get(a.namespace, a.key);
        assert.ok(
          sameBytes(got, a.bytes),
          `${label}: WRONG BYTES: ${got.length} bytes returned for ${a.bytes.length}`,
        );
        outcomes.push({ ok: true });
      } catch (e) {
        if (e instanceof assert.AssertionError) throw e;
        assertTyped(e, label);
        outcomes.push({ ok: false, error: e });
      }
    }
    return { outcomes, state: store.state, problems: (await store.status()).problems };
  } finally {
    await store.close().catch((e) => assertTyped(e, `${where}: close`));
  }
}
