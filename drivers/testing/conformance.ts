/**
 * The driver conformance suite: one set of tests every {@linkcode Driver}
 * must pass, whatever its medium. capsa runs it against `memory`, `localfs`,
 * `s3` and the fault-injecting wrapper; plugin authors run it against theirs.
 *
 * {@linkcode testDriverConformance} registers one `Deno.test` per behaviour.
 * Each test gets a fresh, empty Location from the factory and disposes of it
 * at the end. A behaviour can be skipped only with a reason, which is printed
 * in the test's name; the race-free create-only test skips itself (saying
 * so) when the driver reports `capabilities.createOnly === false`.
 *
 * @example Running the suite on a plugin driver (in a `_test.ts` file)
 * ```ts ignore
 * import { testDriverConformance } from "@capsa/capsa/drivers/conformance";
 * import { MyDriver } from "./my_driver.ts";
 *
 * testDriverConformance("my-driver", async () => {
 *   const bucket = await createScratchBucket();
 *   return {
 *     driver: new MyDriver(bucket),
 *     reopen: () => Promise.resolve(new MyDriver(bucket)),
 *     dispose: () => bucket.destroy(),
 *   };
 * });
 * ```
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  ClosedError,
  compareKeys,
  type Driver,
  InvalidArgumentError,
  InvalidKeyError,
  NotFoundError,
  type ObjectInfo,
  PreconditionFailedError,
} from "../driver.ts";

/** One driver under test, with what the suite needs around it. */
export interface DriverUnderTest {
  /** The driver to test, on a fresh, empty Location. */
  driver: Driver;
  /** Opens a second driver on the same Location (another process's view). */
  reopen: () => Promise<Driver>;
  /** Removes everything the factory created (temp dirs, buckets). */
  dispose: () => Promise<void>;
}

/** Options of {@linkcode testDriverConformance}. */
export interface ConformanceOptions {
  /**
   * Behaviours to skip, by name (see {@linkcode CONFORMANCE_CASES}), each with
   * the reason printed in the test's title.
   */
  skip?: Record<string, string>;
  /** Size of the large-body case, in bytes (default 6 MiB). */
  largeBodyBytes?: number;
  /** Writers and readers in the concurrency cases (default 8). */
  concurrency?: number;
}

/**
 * Keys every driver must refuse with {@linkcode InvalidKeyError}: keys that
 * could escape the Location, and keys outside the plain alphabet (upper case,
 * spaces, other characters, empty segments…), see `validateKey`.
 */
export const HOSTILE_KEYS: readonly string[] = [
  "",
  "/etc/passwd",
  "/abs",
  "../escape",
  "a/../../escape",
  "a/..",
  "..",
  ".",
  "a/./b",
  "a//b",
  "a/",
  "a\\..\\b",
  "a\\b",
  "a\u0000b",
  "a\nb",
  "a\rb",
  "a\u001bb",
  "a\u007fb",
  "C:/windows",
  "c:/windows",
  "x".repeat(1025),
  "long/" + "s".repeat(256),
  "a/\ud800b",
  "A",
  "case/ABC",
  "packs/01ARZ3NDEKTSV4RRFFQ69G5FAV",
  "with space",
  "tab\tkey",
  "unicode/ünïcødé",
  "emoji/😀",
  "percent/%2e%2e",
  "punct/a:b",
  "punct/a*b",
  "punct/a?b",
  "punct/a~b",
  "punct/a+b",
  "punct/a,b",
  "punct/a=b",
  "trailing/dot.",
  "dots/...",
  "device/con",
  "device/nul.txt",
  "device/com1",
];

/** Keys every driver must store, list and return exactly: unusual, but within the alphabet. */
export const AWKWARD_KEYS: readonly string[] = [
  "plain",
  "dots/.hidden",
  "dots/..x",
  "dots/a.b.c",
  "dash/-",
  "dash/-leading",
  "under/_",
  "under/__init__",
  "digits/0",
  "digits/00",
  "mixed/a-b_c.d-0",
  "device/cons",
  "device/nul-x",
  "long/" + "s".repeat(255),
  "deep/" + Array.from({ length: 30 }, (_, i) => `d${i}`).join("/"),
];

const enc = new TextEncoder();

function bytesOf(text: string): Uint8Array {
  return enc.encode(text);
}

function patterned(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

async function collect(it: AsyncIterable<ObjectInfo>): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = [];
  for await (const info of it) out.push(info);
  return out;
}

async function keysOf(driver: Driver, prefix: string, startAfter?: string): Promise<string[]> {
  const opts = startAfter === undefined ? {} : { startAfter };
  return (await collect(driver.list(prefix, opts))).map((i) => i.key);
}

async function rejects(p: Promise<unknown>, type: abstract new (...a: never[]) => Error) {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof type, `expected ${type.name}, got ${String(e)}`);
    return true;
  });
}

type Case = (t: DriverUnderTest, o: Required<Omit<ConformanceOptions, "skip">>) => Promise<void>;

const cases: Record<string, Case> = {
  "put() then get() returns the same bytes": async ({ driver }) => {
    const body = bytesOf("hello, capsa");
    await driver.put("a/b/c", body);
    assert.deepEqual(await driver.get("a/b/c"), body);
    const info = await driver.stat("a/b/c");
    assert.deepEqual([info.key, info.size], ["a/b/c", body.length]);
    // `modified`, where a driver reports it, is the Location's clock: close to now.
    if (info.modified !== undefined) {
      assert.ok(Math.abs(info.modified - Date.now()) < 10 * 60_000, `modified ${info.modified}`);
    }
  },

  "put() replaces an object whole, shorter or longer": async ({ driver }) => {
    await driver.put("k", patterned(10_000, 1));
    await driver.put("k", bytesOf("short"));
    assert.deepEqual(await driver.get("k"), bytesOf("short"));
    const long = patterned(70_000, 2);
    await driver.put("k", long);
    assert.deepEqual(await driver.get("k"), long);
    assert.equal((await driver.stat("k")).size, long.length);
  },

  "put() copies its input: later changes to the buffer do not reach the object": async (
    { driver },
  ) => {
    const body = bytesOf("original");
    await driver.put("k", body);
    body.fill(0);
    assert.deepEqual(await driver.get("k"), bytesOf("original"));
  },

  "missing objects throw NotFoundError from get(), getRange() and stat()": async ({ driver }) => {
    await rejects(driver.get("none"), NotFoundError);
    await rejects(driver.getRange("none", 0, 1), NotFoundError);
    await rejects(driver.stat("none"), NotFoundError);
    await driver.put("dir/x", bytesOf("x"));
    // A "directory" is not an object.
    await rejects(driver.get("dir"), NotFoundError);
    await rejects(driver.stat("dir"), NotFoundError);
  },

  "delete() removes an object and is idempotent": async ({ driver }) => {
    await driver.put("d/1", bytesOf("1"));
    await driver.delete("d/1");
    await rejects(driver.get("d/1"), NotFoundError);
    await driver.delete("d/1");
    await driver.delete("never/there");
    assert.deepEqual(await keysOf(driver, ""), []);
  },

  "empty objects round trip": async ({ driver }) => {
    await driver.put("empty", new Uint8Array(0));
    assert.deepEqual(await driver.get("empty"), new Uint8Array(0));
    assert.equal((await driver.stat("empty")).size, 0);
    assert.deepEqual(await driver.getRange("empty", 0, 10), new Uint8Array(0));
    assert.deepEqual(await collect(driver.list("")), [{ key: "empty", size: 0 }]);
  },

  "a multi-MiB body round trips, whole and by range": async ({ driver }, o) => {
    const big = patterned(o.largeBodyBytes, 3);
    await driver.put("big/object", big);
    assert.deepEqual(await driver.get("big/object"), big);
    const mid = Math.floor(big.length / 2);
    assert.deepEqual(
      await driver.getRange("big/object", mid, 100_000),
      big.slice(mid, mid + 100_000),
    );
    assert.equal((await driver.stat("big/object")).size, big.length);
  },

  "getRange() clips at the end and is empty at or past it": async ({ driver }) => {
    const body = patterned(1000, 4);
    await driver.put("r", body);
    assert.deepEqual(await driver.getRange("r", 0, 10), body.slice(0, 10));
    assert.deepEqual(await driver.getRange("r", 500, 100), body.slice(500, 600));
    assert.deepEqual(await driver.getRange("r", 990, 10), body.slice(990));
    assert.deepEqual(await driver.getRange("r", 990, 50), body.slice(990));
    assert.deepEqual(await driver.getRange("r", 0, 5000), body);
    assert.deepEqual(await driver.getRange("r", 999, 1), body.slice(999));
    assert.deepEqual(await driver.getRange("r", 1000, 1), new Uint8Array(0));
    assert.deepEqual(await driver.getRange("r", 5000, 1), new Uint8Array(0));
    assert.deepEqual(await driver.getRange("r", 10, 0), new Uint8Array(0));
  },

  "getRange() refuses negative or fractional offsets and lengths": async ({ driver }) => {
    await driver.put("r", patterned(10, 5));
    await rejects(driver.getRange("r", -1, 1), InvalidArgumentError);
    await rejects(driver.getRange("r", 0, -1), InvalidArgumentError);
    await rejects(driver.getRange("r", 1.5, 1), InvalidArgumentError);
    await rejects(driver.getRange("r", 0, Number.NaN), InvalidArgumentError);
  },

  "list() yields every key under a prefix in order, across nested prefixes": async (
    { driver },
  ) => {
    // No key is also the folder of others (K beside K/…): see the contract.
    const keys = [
      "-",
      "_",
      "0",
      "a--",
      "a-b",
      "a.b",
      "a/b-c",
      "a/b.c",
      "a/b/c",
      "a/b/c-d/e",
      "a/b0",
      "a/b_",
      "a0",
      "a_",
      "ab/c",
      "b",
      "b-/a/a/a",
      "packs/01arz/01arz3ndektsv4rrffq69g5fav",
      "packs/01arz/01arz3ndektsv4rrffq69g5faw",
      "packs/01bx5/01bx5zzkbkactav9wevgemmvrz",
      "z",
    ];
    for (const k of [...keys].reverse()) await driver.put(k, bytesOf(k));
    const sorted = [...keys].sort(compareKeys);
    // Byte order: "-" < "." < "/" < digits < "_" < letters.
    assert.deepEqual(sorted.slice(0, 8), ["-", "0", "_", "a--", "a-b", "a.b", "a/b-c", "a/b.c"]);
    assert.deepEqual(await keysOf(driver, ""), sorted);
    assert.deepEqual(await keysOf(driver, "a"), sorted.filter((k) => k.startsWith("a")));
    const underA = ["a/b-c", "a/b.c", "a/b/c", "a/b/c-d/e", "a/b0", "a/b_"];
    assert.deepEqual(await keysOf(driver, "a/"), underA);
    assert.deepEqual(await keysOf(driver, "a/b"), underA);
    assert.deepEqual(await keysOf(driver, "a/b/"), ["a/b/c", "a/b/c-d/e"]);
    assert.deepEqual(await keysOf(driver, "a/b/c"), ["a/b/c", "a/b/c-d/e"]);
    assert.deepEqual(
      await keysOf(driver, "packs/01a"),
      sorted.filter((k) => k.startsWith("packs/01a")),
    );
    assert.deepEqual(await keysOf(driver, "packs/01arz/01arz3"), [
      "packs/01arz/01arz3ndektsv4rrffq69g5fav",
      "packs/01arz/01arz3ndektsv4rrffq69g5faw",
    ]);
    assert.deepEqual(await keysOf(driver, "nothing/"), []);
    const infos = await collect(driver.list("b"));
    assert.deepEqual(infos, [{ key: "b", size: 1 }, { key: "b-/a/a/a", size: 8 }]);
  },

  "list() honours startAfter, present or not": async ({ driver }) => {
    const keys = ["a-", "a/b-", "a/b/c", "a/c", "a0", "b", "b-/x", "c"];
    for (const k of keys) await driver.put(k, bytesOf(k));
    const afters = ["", "a", "a-", "a/", "a/b", "a/b-", "a/b/", "a/b/a", "a/b/c", "a/bz", "a0"];
    for (const after of [...afters, "az", "b", "b-/", "c", "zz"]) {
      const expected = keys.filter((k) => compareKeys(k, after) > 0);
      assert.deepEqual(await keysOf(driver, "", after), expected, `startAfter ${after}`);
    }
    assert.deepEqual(await keysOf(driver, "a/", "a/b-"), ["a/b/c", "a/c"]);
    assert.deepEqual(await keysOf(driver, "a/", "a/b"), ["a/b-", "a/b/c", "a/c"]);
    assert.deepEqual(await keysOf(driver, "a/", "a"), ["a/b-", "a/b/c", "a/c"]);
    assert.deepEqual(await keysOf(driver, "a/", "b"), []);
  },

  "list() of more keys than one page is complete and ordered": async ({ driver }) => {
    const keys = Array.from({ length: 1234 }, (_, i) => `many/${String(i).padStart(5, "0")}`);
    const batch = 32;
    for (let i = 0; i < keys.length; i += batch) {
      await Promise.all(keys.slice(i, i + batch).map((k) => driver.put(k, bytesOf(k))));
    }
    await driver.put("many0", bytesOf("after"));
    assert.deepEqual(await keysOf(driver, "many/"), keys);
    assert.deepEqual(await keysOf(driver, "many/", keys[1099]), keys.slice(1100));
    const all = await keysOf(driver, "");
    assert.equal(all.length, keys.length + 1);
    assert.equal(all[all.length - 1], "many0");
  },

  "list() no longer yields deleted keys": async ({ driver }) => {
    for (const k of ["x/1", "x/2", "x/3"]) await driver.put(k, bytesOf(k));
    await driver.delete("x/2");
    assert.deepEqual(await keysOf(driver, "x/"), ["x/1", "x/3"]);
  },

  "awkward but valid keys round trip and list in order": async ({ driver }) => {
    for (const k of AWKWARD_KEYS) await driver.put(k, bytesOf(k));
    for (const k of AWKWARD_KEYS) assert.deepEqual(await driver.get(k), bytesOf(k), k);
    assert.deepEqual(await keysOf(driver, ""), [...AWKWARD_KEYS].sort(compareKeys));
    assert.deepEqual(await keysOf(driver, "dots/"), ["dots/..x", "dots/.hidden", "dots/a.b.c"]);
  },

  "hostile keys and keys outside the alphabet are refused with InvalidKeyError": async (
    { driver },
  ) => {
    for (const k of HOSTILE_KEYS) {
      await rejects(driver.put(k, bytesOf("x")), InvalidKeyError);
      await rejects(driver.put(k, bytesOf("x"), { ifAbsent: true }), InvalidKeyError);
      await rejects(driver.get(k), InvalidKeyError);
      await rejects(driver.getRange(k, 0, 1), InvalidKeyError);
      await rejects(driver.stat(k), InvalidKeyError);
      await rejects(driver.delete(k), InvalidKeyError);
    }
    for (const p of ["/abs", "../up", "a//", "a/../", "a\u0000", "A", "a b", "ü/", "a\\", "%"]) {
      await rejects(collect(driver.list(p)), InvalidKeyError);
    }
    for (const after of ["a\u0000", "Z", "a b", "~"]) {
      await rejects(collect(driver.list("", { startAfter: after })), InvalidKeyError);
    }
    assert.deepEqual(await keysOf(driver, ""), []);
  },

  "put({ifAbsent}) creates a new key and refuses an existing one": async ({ driver }) => {
    await driver.put("lease", bytesOf("first"), { ifAbsent: true });
    await rejects(
      driver.put("lease", bytesOf("second"), { ifAbsent: true }),
      PreconditionFailedError,
    );
    assert.deepEqual(await driver.get("lease"), bytesOf("first"));
    await driver.delete("lease");
    await driver.put("lease", bytesOf("third"), { ifAbsent: true });
    assert.deepEqual(await driver.get("lease"), bytesOf("third"));
  },

  "racing create-only puts of one key: exactly one wins": async ({ driver }, o) => {
    const n = o.concurrency * 2;
    for (let round = 0; round < 3; round++) {
      const key = `race/${round}`;
      const results = await Promise.allSettled(
        Array.from(
          { length: n },
          (_, i) => driver.put(key, bytesOf(`writer ${i}`), { ifAbsent: true }),
        ),
      );
      const won = results.flatMap((r, i) => (r.status === "fulfilled" ? [i] : []));
      assert.equal(won.length, 1, `round ${round}: ${won.length} writers won`);
      for (const r of results) {
        if (r.status === "rejected") {
          assert.ok(r.reason instanceof PreconditionFailedError, String(r.reason));
        }
      }
      assert.deepEqual(await driver.get(key), bytesOf(`writer ${won[0]}`));
    }
  },

  "concurrent puts of one key never expose a torn object to readers": async ({ driver }, o) => {
    const size = 256 * 1024;
    const versions = Array.from({ length: o.concurrency }, (_, i) => patterned(size, 100 + i));
    await driver.put("hot", versions[0]!);
    let writing = true;
    const writers = (async () => {
      for (let round = 0; round < 3; round++) {
        await Promise.all(versions.map((v) => driver.put("hot", v)));
      }
      writing = false;
    })();
    const isWhole = (b: Uint8Array) =>
      b.length === size && versions.some((v) =>
        v[0] === b[0] && v[size - 1] === b[size - 1] &&
        v.every((x, i) => x === b[i])
      );
    const readers = Array.from({ length: o.concurrency }, async () => {
      let reads = 0;
      while (writing || reads === 0) {
        const b = await driver.get("hot");
        assert.ok(isWhole(b), `a reader saw a torn object of ${b.length} bytes`);
        reads++;
      }
      return reads;
    });
    await writers;
    await Promise.all(readers);
    assert.ok(isWhole(await driver.get("hot")));
  },

  "a second driver on the same Location reads what the first wrote": async (
    { driver, reopen },
  ) => {
    await driver.put("shared/one", bytesOf("1"));
    const other = await reopen();
    try {
      assert.deepEqual(await other.get("shared/one"), bytesOf("1"));
      await other.put("shared/two", bytesOf("2"));
      assert.deepEqual(await keysOf(driver, "shared/"), ["shared/one", "shared/two"]);
      await rejects(
        other.put("shared/one", bytesOf("x"), { ifAbsent: true }),
        PreconditionFailedError,
      );
    } finally {
      await other.close();
    }
  },

  "close() makes every later call throw ClosedError": async ({ driver }) => {
    await driver.put("k", bytesOf("v"));
    await driver.close();
    await rejects(driver.get("k"), ClosedError);
    await rejects(driver.put("k", bytesOf("v")), ClosedError);
    await rejects(driver.stat("k"), ClosedError);
    await rejects(driver.delete("k"), ClosedError);
    await rejects(collect(driver.list("")), ClosedError);
  },
};

/** The names of the behaviours the suite checks, for {@linkcode ConformanceOptions.skip}. */
export const CONFORMANCE_CASES: readonly string[] = Object.keys(cases);

/**
 * Registers one `Deno.test` per behaviour of the driver contract for the
 * driver made by `factory`.
 *
 * @param name The driver's name in test titles.
 * @param factory Makes a fresh, empty Location and a driver on it.
 * @param options Skips (each with its reason) and sizes.
 *
 * @example
 * ```ts ignore
 * import { testDriverConformance } from "@capsa/capsa/drivers/conformance";
 * import { MemoryDriver } from "@capsa/capsa";
 *
 * testDriverConformance("memory", () => {
 *   const objects = new Map<string, Uint8Array>();
 *   return Promise.resolve({
 *     driver: new MemoryDriver({ objects }),
 *     reopen: () => Promise.resolve(new MemoryDriver({ objects })),
 *     dispose: () => Promise.resolve(),
 *   });
 * });
 * ```
 */
export function testDriverConformance(
  name: string,
  factory: () => Promise<DriverUnderTest>,
  options: ConformanceOptions = {},
): void {
  const skip = options.skip ?? {};
  for (const unknown of Object.keys(skip).filter((k) => !(k in cases))) {
    throw new Error(`conformance: no case named "${unknown}" to skip`);
  }
  const o = {
    largeBodyBytes: options.largeBodyBytes ?? 6 * 1024 * 1024,
    concurrency: options.concurrency ?? 8,
  };
  for (const [title, fn] of Object.entries(cases)) {
    const reason = skip[title];
    if (reason !== undefined) {
      Deno.test({ name: `${name}: ${title} (skipped: ${reason})`, ignore: true, fn() {} });
      continue;
    }
    Deno.test(`${name}: ${title}`, async (t) => {
      const dut = await factory();
      try {
        if (title.startsWith("racing create-only") && !dut.driver.capabilities.createOnly) {
          // Not a failure: the driver says so honestly, and callers must use their fallback.
          await t.step({
            name: "skipped: capabilities.createOnly is false (no race-free create-only put)",
            ignore: true,
            fn() {},
          });
          return;
        }
        await fn(dut, o);
      } finally {
        await dut.driver.close();
        await dut.dispose();
      }
    });
  }
}
