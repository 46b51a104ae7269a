import assert from "node:assert/strict";
import { testDriverConformance } from "../testing/conformance.ts";
import {
  compareKeys,
  type Driver,
  InvalidArgumentError,
  InvalidKeyError,
  NotFoundError,
  PermissionDeniedError,
  PreconditionFailedError,
  TransientError,
} from "../driver.ts";
import { LocalFsError, type LocalFsOptions, localFsPath, openLocalFs } from "./mod.ts";
import { packKey } from "../../layout.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const bytesOf = (text: string): Uint8Array => enc.encode(text);

/** A scratch directory with the driver's root at `<parent>/root`, so a test sees what lands beside it. */
async function scratch(options: LocalFsOptions = {}) {
  const parent = await Deno.realPath(await Deno.makeTempDir({ prefix: "capsa-localfs-" }));
  const driver = await openLocalFs(`${parent}/root`, { create: true, ...options });
  return {
    parent,
    root: driver.location,
    driver,
    async [Symbol.asyncDispose]() {
      await driver.close();
      await Deno.remove(parent, { recursive: true });
    },
  };
}

testDriverConformance("localfs", async () => {
  const parent = await Deno.makeTempDir({ prefix: "capsa-localfs-" });
  const driver = await openLocalFs(`${parent}/root`, { create: true });
  return {
    driver,
    reopen: () => openLocalFs(driver.location),
    dispose: () => Deno.remove(parent, { recursive: true }),
  };
});

interface Entry {
  /** Path relative to the walked directory, `/`-separated. */
  path: string;
  kind: "file" | "dir" | "symlink" | "other";
  /** Entries in it, for a directory. */
  count: number;
}

/** Every entry below `dir`, never following a symlink. */
async function walk(dir: string, base = ""): Promise<Entry[]> {
  const out: Entry[] = [];
  const children: Deno.DirEntry[] = [];
  for await (const e of Deno.readDir(dir)) children.push(e);
  for (const e of children) {
    const path = base === "" ? e.name : `${base}/${e.name}`;
    if (e.isSymlink) out.push({ path, kind: "symlink", count: 0 });
    else if (e.isFile) out.push({ path, kind: "file", count: 0 });
    else if (e.isDirectory) {
      const below = await walk(`${dir}/${e.name}`, path);
      out.push({
        path,
        kind: "dir",
        count: below.filter((b) => !b.path.includes("/", path.length + 1)).length,
      });
      out.push(...below);
    } else out.push({ path, kind: "other", count: 0 });
  }
  return out;
}

/** Names and contents of every file below `dir`: a fingerprint to compare before and after. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const e of await walk(dir)) {
    out[e.path] = e.kind === "file" ? await Deno.readTextFile(`${dir}/${e.path}`) : e.kind;
  }
  return out;
}

/** The keys a listing yields (the first `limit` of them, when given). */
async function keysOf(
  driver: Driver,
  prefix: string,
  startAfter?: string,
  limit = Infinity,
): Promise<string[]> {
  const keys: string[] = [];
  if (limit <= 0) return keys;
  for await (const info of driver.list(prefix, startAfter === undefined ? {} : { startAfter })) {
    if (keys.push(info.key) >= limit) break;
  }
  return keys;
}

async function rejects(p: Promise<unknown>, type: abstract new (...a: never[]) => Error) {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof type, `expected ${type.name}, got ${String(e)}`);
    return true;
  });
}

/** Every operation on `key` is refused with PermissionDeniedError. */
async function allRefused(driver: Driver, key: string): Promise<void> {
  await rejects(driver.get(key), PermissionDeniedError);
  await rejects(driver.getRange(key, 0, 1), PermissionDeniedError);
  await rejects(driver.stat(key), PermissionDeniedError);
  await rejects(driver.put(key, bytesOf("planted")), PermissionDeniedError);
  await rejects(driver.put(key, bytesOf("planted"), { ifAbsent: true }), PermissionDeniedError);
  await rejects(driver.delete(key), PermissionDeniedError);
}

Deno.test("openLocalFs() creates the root only when asked and reports its resolved path", async () => {
  const parent = await Deno.realPath(await Deno.makeTempDir({ prefix: "capsa-localfs-" }));
  try {
    await rejects(openLocalFs(`${parent}/a/b`), InvalidArgumentError);
    assert.deepEqual(await snapshot(parent), {});

    const driver = await openLocalFs(`${parent}/a/b`, { create: true });
    assert.equal(driver.kind, "localfs");
    assert.equal(driver.location, `${parent}/a/b`);
    assert.deepEqual(driver.capabilities, { createOnly: true, durable: false });
    await driver.close();

    // Symlinks in the root's own path are resolved once, when it opens.
    await Deno.symlink(`${parent}/a`, `${parent}/alias`);
    const durable = await openLocalFs(`${parent}/alias/b`, { durable: true });
    assert.equal(durable.location, `${parent}/a/b`);
    assert.deepEqual(durable.capabilities, { createOnly: true, durable: true });
    await durable.close();

    await Deno.writeTextFile(`${parent}/file`, "not a directory");
    await rejects(openLocalFs(`${parent}/file`), InvalidArgumentError);
    await rejects(openLocalFs(""), InvalidArgumentError);
  } finally {
    await Deno.remove(parent, { recursive: true });
  }
});

Deno.test("openLocalFs({ durable: true }) round-trips puts, create-only puts and deletes", async () => {
  const parent = await Deno.realPath(await Deno.makeTempDir({ prefix: "capsa-localfs-" }));
  try {
    const driver = await openLocalFs(`${parent}/deep/new/root`, { create: true, durable: true });
    const keys = [
      "store.json",
      "system.config/current",
      "packs/01j9z/01j9z3kxabcdefghjkmnpqrstv",
      "blobs/ab/" + "ab12".repeat(16),
    ];
    for (const k of keys) await driver.put(k, bytesOf(k));
    await driver.put("system.state/maintenance/lease", bytesOf("holder"), { ifAbsent: true });
    await rejects(
      driver.put("system.state/maintenance/lease", bytesOf("other"), { ifAbsent: true }),
      PreconditionFailedError,
    );
    await driver.put("store.json", bytesOf("replaced"));
    await driver.delete("blobs/ab/" + "ab12".repeat(16));

    const again = await openLocalFs(`${parent}/deep/new/root`, { durable: true });
    assert.deepEqual(await again.get("store.json"), bytesOf("replaced"));
    assert.deepEqual(await again.get("system.state/maintenance/lease"), bytesOf("holder"));
    assert.deepEqual(await keysOf(again, ""), [
      "packs/01j9z/01j9z3kxabcdefghjkmnpqrstv",
      "store.json",
      "system.config/current",
      "system.state/maintenance/lease",
    ]);
    const entries = await walk(driver.location);
    assert.deepEqual(entries.filter((e) => e.path.includes(",tmp.")), []);
    // The deleted blob's emptied directories went with it.
    assert.ok(!entries.some((e) => e.path.startsWith("blobs")), "blobs/ pruned");
    await driver.close();
    await again.close();
  } finally {
    await Deno.remove(parent, { recursive: true });
  }
});

Deno.test("LocalFsDriver refuses hostile keys and never creates anything outside its root", async () => {
  await using s = await scratch();
  const before = await walk(s.parent);
  const hostile = [
    "../x",
    "a/../../x",
    "/abs/x",
    `${s.parent}/x`,
    "a\u0000b",
    "..\\x",
    "a\\..\\..\\x",
    "C:\\x",
    "C:/x",
    "./x",
    "a/./x",
    "..",
    "a//b",
    "",
  ];
  for (const k of hostile) {
    await rejects(s.driver.put(k, bytesOf("x")), InvalidKeyError);
    await rejects(s.driver.put(k, bytesOf("x"), { ifAbsent: true }), InvalidKeyError);
    await rejects(s.driver.get(k), InvalidKeyError);
    await rejects(s.driver.getRange(k, 0, 1), InvalidKeyError);
    await rejects(s.driver.stat(k), InvalidKeyError);
    await rejects(s.driver.delete(k), InvalidKeyError);
  }
  for (const p of ["../../", "/abs", "a/../", "a\u0000"]) {
    await rejects(keysOf(s.driver, p), InvalidKeyError);
  }

  // Keys outside the alphabet are refused too, and create nothing.
  const foreign = [
    "%2e%2e",
    "%2e%2e/%2f%2e%2e/x",
    "...",
    "~/x",
    "$HOME/x",
    " space ",
    "con",
    "nul.txt/aux",
    "x".repeat(1000),
    "ü".repeat(10),
    "😀/tail",
    "ab:c/d*e?f",
    "Upper/x",
  ];
  for (const k of foreign) {
    await rejects(s.driver.put(k, bytesOf("x")), InvalidKeyError);
    await rejects(s.driver.get(k), InvalidKeyError);
  }
  assert.deepEqual(await walk(s.root), [], "nothing was created");

  // Keys that only look hostile are ordinary keys, stored below the root.
  const tricky = [
    "..x",
    "..y/.y/.z",
    "-rf",
    "--",
    "_",
    ".hidden",
    "cons",
    "nul-x/aux-y",
    "x".repeat(255),
    "a".repeat(200) + "/" + "b".repeat(200),
  ];
  for (const k of tricky) await s.driver.put(k, bytesOf(k));
  for (const k of tricky) assert.equal(dec.decode(await s.driver.get(k)), k);
  assert.deepEqual(await keysOf(s.driver, ""), [...tricky].sort(compareKeys));

  const after = await walk(s.parent);
  assert.deepEqual(
    after.filter((e) => !e.path.startsWith("root/")).map((e) => e.path),
    before.map((e) => e.path),
    "nothing beside the root",
  );
  assert.ok(after.every((e) => e.kind === "file" || e.kind === "dir"));

  for (const k of tricky) await s.driver.delete(k);
  assert.deepEqual(await walk(s.root), [], "deletes leave no directories behind");
});

Deno.test("LocalFsDriver refuses a symlinked directory under its root and leaves the target unchanged", async () => {
  await using s = await scratch();
  const outside = `${s.parent}/outside`;
  await Deno.mkdir(`${outside}/deep`, { recursive: true });
  // Laid out like the driver's own files, so following the link would succeed.
  await Deno.writeTextFile(`${outside}/x`, "secret");
  await Deno.writeTextFile(`${outside}/deep/y`, "secret too");
  await s.driver.put("other/k", bytesOf("fine"));
  const outsideBefore = await snapshot(outside);

  await Deno.symlink(outside, `${s.root}/packs`);
  for (const key of ["packs/x", "packs/deep/y", "packs/new", "packs/deep/new"]) {
    await allRefused(s.driver, key);
  }
  await rejects(keysOf(s.driver, ""), PermissionDeniedError);
  await rejects(keysOf(s.driver, "packs/"), PermissionDeniedError);
  assert.deepEqual(await keysOf(s.driver, "other/"), ["other/k"]);

  // A pack folder deeper in the tree, swapped for a link to a copy of itself.
  const ulid = "fan/01j9z/01j9z3kxabcdefghjkmnpqrstv";
  await s.driver.put(ulid, bytesOf("mine"));
  const [top, fanOut] = localFsPath(ulid).split("/");
  await Deno.rename(`${s.root}/${top}/${fanOut}`, `${s.parent}/moved`);
  await Deno.symlink(`${s.parent}/moved`, `${s.root}/${top}/${fanOut}`);
  const movedBefore = await snapshot(`${s.parent}/moved`);
  await allRefused(s.driver, ulid);
  await rejects(keysOf(s.driver, "fan/"), PermissionDeniedError);

  assert.deepEqual(await snapshot(outside), outsideBefore);
  assert.deepEqual(await snapshot(`${s.parent}/moved`), movedBefore);
  assert.deepEqual((await walk(s.parent)).filter((e) => e.path.includes(",tmp.")), []);
});

Deno.test("LocalFsDriver refuses a symlinked object and other unexpected entries, leaving targets unchanged", async () => {
  await using s = await scratch();
  const target = `${s.parent}/target`;
  await Deno.writeTextFile(target, "secret");
  await Deno.symlink(target, `${s.root}/${localFsPath("k")}`);
  await allRefused(s.driver, "k");
  await rejects(keysOf(s.driver, ""), PermissionDeniedError);
  assert.equal(await Deno.readTextFile(target), "secret");
  assert.ok(
    (await Deno.lstat(`${s.root}/${localFsPath("k")}`)).isSymlink,
    "the link is left alone",
  );
  await Deno.remove(`${s.root}/${localFsPath("k")}`);

  // A dangling link: writing through it would create the file it names.
  await Deno.symlink(`${s.parent}/created`, `${s.root}/${localFsPath("d")}`);
  await allRefused(s.driver, "d");
  await rejects(Deno.lstat(`${s.parent}/created`), Deno.errors.NotFound);
  await Deno.remove(`${s.root}/${localFsPath("d")}`);

  // A symlink to a directory where a folder of keys should be.
  await Deno.mkdir(`${s.parent}/dir`);
  await Deno.symlink(`${s.parent}/dir`, `${s.root}/f`);
  await allRefused(s.driver, "f/x");
  await rejects(keysOf(s.driver, "f/"), PermissionDeniedError);
  assert.deepEqual(await snapshot(`${s.parent}/dir`), {});
});

Deno.test("LocalFsDriver refuses a key beside its folder (K and K/…): a folder is not an object", async () => {
  await using s = await scratch();
  await s.driver.put("w/x", bytesOf("below"));
  // "w" is a folder of keys: not an object, and no object can be put there.
  await rejects(s.driver.get("w"), NotFoundError);
  await rejects(s.driver.getRange("w", 0, 1), NotFoundError);
  await rejects(s.driver.stat("w"), NotFoundError);
  await s.driver.delete("w"); // nothing to delete
  await rejects(s.driver.put("w", bytesOf("x")), InvalidKeyError);
  await rejects(s.driver.put("w", bytesOf("x"), { ifAbsent: true }), InvalidKeyError);
  // "f" is an object: no key can be put below it, and none exists there.
  await s.driver.put("f", bytesOf("object"));
  await rejects(s.driver.get("f/x"), NotFoundError);
  await rejects(s.driver.stat("f/x"), NotFoundError);
  await s.driver.delete("f/x");
  await rejects(s.driver.put("f/x", bytesOf("x")), InvalidKeyError);
  await rejects(s.driver.put("f/x/y", bytesOf("x"), { ifAbsent: true }), InvalidKeyError);
  assert.deepEqual(await snapshot(s.root), { f: "object", w: "dir", "w/x": "below" });
  assert.deepEqual(await keysOf(s.driver, ""), ["f", "w/x"]);
});

// ULID-like ids: 10 characters of time, 16 random, in lower-case Crockford base 32.
const CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz";

function random(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

function ulidLike(time: number, next: () => number): string {
  let out = "";
  for (let i = 9; i >= 0; i--) out += CROCKFORD[Math.floor(time / 2 ** (5 * i)) % 32];
  for (let i = 0; i < 16; i++) out += CROCKFORD[next() % 32];
  return out;
}

Deno.test("LocalFsDriver.list() stays in key order across pack folders, with and without startAfter", async () => {
  await using s = await scratch();
  const next = random(42);
  const keys = new Set<string>();
  // One pack every ~4 s for 22 hours: three 9.3-hour pack folders.
  for (let i = 0; i < 20_000; i++) {
    keys.add(packKey(ulidLike(1_730_000_000_000 + i * 4000 + (next() % 4000), next)));
  }
  for (let i = 0; i < 200; i++) {
    keys.add(
      "packs/" + Array.from({ length: 8 }, () => next().toString(16).padStart(8, "0")).join(""),
    );
  }
  for (const k of ["packs/0", "packs/01", "packs/01j", "packs/-", "packs/_"]) keys.add(k);
  const neighbours = ["packs-x", "packs.y", "packs0", "packr/z"];
  const all = [...keys];
  const queue = [...all, ...neighbours];
  // A few writers at a time: more only queue up in the filesystem's journal.
  await Promise.all(Array.from({ length: 4 }, async () => {
    for (let k = queue.pop(); k !== undefined; k = queue.pop()) await s.driver.put(k, bytesOf(k));
  }));
  const expected = all.sort(compareKeys);

  const listed: string[] = [];
  let size = 0;
  for await (const info of s.driver.list("packs/")) {
    listed.push(info.key);
    size += info.size;
  }
  assert.equal(listed.length, expected.length);
  assert.deepEqual(listed, expected);
  assert.equal(size, expected.reduce((n, k) => n + bytesOf(k).length, 0));
  assert.deepEqual(await keysOf(s.driver, ""), [...expected, ...neighbours].sort(compareKeys));

  // Resuming: the next few hundred keys after each point (the whole tail near the end).
  const window = 300;
  for (
    const i of [0, 1, 3, 4, 5, 777, 10_000, 15_555, expected.length - 250, expected.length - 1]
  ) {
    const after = expected[i]!;
    assert.deepEqual(
      await keysOf(s.driver, "packs/", after, window),
      expected.slice(i + 1, i + 1 + window),
      `after #${i}`,
    );
    // A key that is not there, sorting just after this one.
    const between = after + "0";
    assert.deepEqual(
      await keysOf(s.driver, "packs/", between, window),
      expected.filter((k) => compareKeys(k, between) > 0).slice(0, window),
    );
  }
  const partial = expected[12_345]!.slice(0, 14);
  assert.deepEqual(
    await keysOf(s.driver, partial),
    expected.filter((k) => k.startsWith(partial)),
  );
  assert.deepEqual(await keysOf(s.driver, "packs/", "packs/zz"), []);

  // Every directory is read once by a whole listing; resuming near the end
  // reads only the directories on the way to the last keys.
  const tree = await walk(s.root);
  const directories = tree.filter((e) => e.kind === "dir").length + 1;
  const readDir = Deno.readDir;
  const reads: string[] = [];
  (Deno as { readDir: typeof Deno.readDir }).readDir = (path) => {
    reads.push(String(path));
    return readDir(path);
  };
  let fullReads: number;
  try {
    await keysOf(s.driver, "");
    fullReads = reads.length;
    reads.length = 0;
    const tail = await keysOf(s.driver, "packs/", expected[expected.length - 3]);
    assert.equal(tail.length, 2);
  } finally {
    (Deno as { readDir: typeof Deno.readDir }).readDir = readDir;
  }
  assert.equal(fullReads, directories);
  assert.ok(reads.length <= 3, `resuming read ${reads.length} directories: ${reads.join(", ")}`);

  // Each object is the file at its key's path, and nothing else is there.
  assert.deepEqual(
    tree.filter((e) => e.kind === "file").map((e) => e.path).sort(compareKeys),
    [...expected, ...neighbours].sort(compareKeys),
  );
});

Deno.test("LocalFsDriver stores each key at its own path: plain names, one file per key", async () => {
  await using s = await scratch();
  const keys = [
    "store.json",
    "system.config/0000000001.json",
    "system.config/current",
    "system.state/descriptor/store.json",
    "system.state/index/snapshots/01j9z3kxabcdefghjkmnpqrstv",
    "packs/01j9z/01j9z3kxabcdefghjkmnpqrstv",
    "blobs/ab/ab" + "0".repeat(62),
    "x/a-b",
    "x/a.b",
    "x/a_b",
    "x/.a",
    "x/cons",
    "x/" + "y".repeat(255),
  ];
  for (const [i, k] of keys.entries()) await s.driver.put(k, bytesOf(`${i}`));
  for (const [i, k] of keys.entries()) {
    assert.equal(dec.decode(await s.driver.get(k)), `${i}`, k);
    assert.equal(localFsPath(k), k);
    assert.equal(await Deno.readTextFile(`${s.root}/${k}`), `${i}`, k);
  }
  assert.deepEqual(await keysOf(s.driver, ""), [...keys].sort(compareKeys));
  const tree = await walk(s.root);
  for (const e of tree) assert.match(e.path, /^[a-z0-9._-]+(\/[a-z0-9._-]+)*$/, e.path);
  assert.deepEqual(
    tree.filter((e) => e.kind === "file").map((e) => e.path).sort(),
    [...keys].sort(),
  );
});

Deno.test("LocalFsDriver ignores leftover temporary files and foreign names in list()", async () => {
  await using s = await scratch();
  await s.driver.put("a/b", bytesOf("ab"));
  await s.driver.put("c", bytesOf("c"));
  await s.driver.put("packs/01j9z/01j9z3kxabcdefghjkmnpqrstv", bytesOf("p"));
  // What a crash between creating and renaming a temporary file leaves behind.
  const temp = ",tmp.0123456789abcdef";
  for (const dir of ["", "a/", "packs/01j9z/"]) {
    await Deno.writeTextFile(`${s.root}/${dir}${temp}`, "half-writ");
  }
  // Names that are not keys: foreign files and directories.
  for (const name of ["README", ".DS_Store", "A", "%61", "x y", "Thumbs.db", "packs/01j9z/X"]) {
    await Deno.writeTextFile(`${s.root}/${name}`, "foreign");
  }
  await Deno.mkdir(`${s.root}/Foreign Dir`);
  await Deno.writeTextFile(`${s.root}/Foreign Dir/inside`, "foreign");

  const expected = ["a/b", "c", "packs/01j9z/01j9z3kxabcdefghjkmnpqrstv"];
  assert.deepEqual(await keysOf(s.driver, ""), expected);
  // A temporary file's name is never a key: it cannot be read, written or listed as one.
  for (const k of [temp, "a/" + temp, "A", "README", "Foreign Dir/inside"]) {
    await rejects(s.driver.get(k), InvalidKeyError);
    await rejects(s.driver.put(k, bytesOf("x")), InvalidKeyError);
  }
  for (const k of ["a", "packs/01x", "readme"]) await rejects(s.driver.get(k), NotFoundError);
  // A directory holding a leftover is not pruned, and that is not an error.
  await s.driver.delete("a/b");
  assert.equal(await Deno.readTextFile(`${s.root}/a/${temp}`), "half-writ");
  assert.deepEqual(await keysOf(s.driver, "a"), []);
});

Deno.test("LocalFsDriver.put({ ifAbsent }) lets exactly one writer win across two drivers", async () => {
  await using s = await scratch();
  const other = await openLocalFs(s.root);
  try {
    for (let round = 0; round < 3; round++) {
      const key = `system.state/maintenance/lease${round}`;
      const results = await Promise.allSettled(
        Array.from(
          { length: 24 },
          (_, i) => (i % 2 ? other : s.driver).put(key, bytesOf(`w${i}`), { ifAbsent: true }),
        ),
      );
      const won = results.flatMap((r, i) => (r.status === "fulfilled" ? [i] : []));
      assert.equal(won.length, 1);
      for (const r of results) {
        if (r.status === "rejected") assert.ok(r.reason instanceof PreconditionFailedError);
      }
      assert.deepEqual(await other.get(key), bytesOf(`w${won[0]}`));
    }
    assert.deepEqual((await walk(s.root)).filter((e) => e.path.includes(",tmp.")), []);
  } finally {
    await other.close();
  }
});

interface Interceptions {
  /** Runs before an lstat starts. */
  beforeLstat?: (path: string) => void;
  /** Runs once an lstat, and every lstat started before it, has finished. */
  afterLstat?: (path: string) => void;
}

/**
 * Runs `fn` with Deno.lstat and Deno.lstatSync wrapped (the driver checks
 * paths with the second, lists with the first), so that a test can swap
 * entries at a chosen moment of the driver's work: a race, made
 * deterministic.
 */
async function intercepted<T>(on: Interceptions, fn: () => Promise<T>): Promise<T> {
  const d = Deno as { lstat: typeof Deno.lstat; lstatSync: typeof Deno.lstatSync };
  const { lstat, lstatSync } = d;
  const inflight: Promise<unknown>[] = [];
  d.lstat = async (path) => {
    on.beforeLstat?.(String(path));
    const earlier = [...inflight];
    const pending = lstat(path);
    inflight.push(pending.catch(() => {}));
    const info = await pending;
    if (on.afterLstat) {
      await Promise.all(earlier);
      on.afterLstat(String(path));
    }
    return info;
  };
  d.lstatSync = (path) => {
    on.beforeLstat?.(String(path));
    const info = lstatSync(path);
    on.afterLstat?.(String(path));
    return info;
  };
  try {
    return await fn();
  } finally {
    d.lstat = lstat;
    d.lstatSync = lstatSync;
  }
}

/** A root whose `packs` directory a racer can swap for a link to a look-alike outside. */
async function racedScratch() {
  const s = await scratch();
  await s.driver.put("packs/x", bytesOf("mine"));
  const outside = `${s.parent}/outside`;
  await Deno.mkdir(outside);
  await Deno.writeTextFile(`${outside}/x`, "secret");
  const dir = `${s.root}/packs`;
  let swapped = false;
  return {
    ...s,
    outside,
    object: `${dir}/x`,
    get swapped() {
      return swapped;
    },
    swapIn() {
      Deno.renameSync(dir, `${s.parent}/real`);
      Deno.symlinkSync(outside, dir);
      swapped = true;
    },
    swapBack() {
      Deno.removeSync(dir);
      Deno.renameSync(`${s.parent}/real`, dir);
      swapped = false;
    },
  };
}

Deno.test("LocalFsDriver.get() refuses a directory swapped for a symlink after its check", async () => {
  await using r = await racedScratch();
  let once = true;
  const afterLstat = (path: string) => {
    if (path === r.object && once) (once = false, r.swapIn());
  };
  await intercepted({ afterLstat }, async () => {
    await rejects(r.driver.get("packs/x"), PermissionDeniedError);
  });
  assert.ok(!once && r.swapped, "the race happened");
  assert.equal(await Deno.readTextFile(`${r.outside}/x`), "secret");
});

Deno.test("LocalFsDriver.get() never returns bytes from outside when a swap is undone before the re-check", async () => {
  await using r = await racedScratch();
  let once = true;
  const on: Interceptions = {
    // Swapped after the driver's check, so the open goes outside…
    afterLstat: (path) => {
      if (path === r.object && once) (once = false, r.swapIn());
    },
    // …and restored before the driver looks again.
    beforeLstat: () => {
      if (r.swapped) r.swapBack();
    },
  };
  const body = await intercepted(on, () => r.driver.get("packs/x"));
  assert.equal(dec.decode(body), "mine");
  assert.ok(!once && !r.swapped, "the race happened");
});

Deno.test("LocalFsDriver.put() writes nothing outside when a directory is swapped after its check", async () => {
  await using r = await racedScratch();
  const before = await snapshot(r.outside);
  let once = true;
  const afterLstat = (path: string) => {
    if (path === `${r.root}/packs` && once) (once = false, r.swapIn());
  };
  await intercepted({ afterLstat }, async () => {
    await rejects(r.driver.put("packs/new", bytesOf("payload")), PermissionDeniedError);
  });
  assert.ok(!once && r.swapped, "the race happened");
  assert.deepEqual(await snapshot(r.outside), before);
  r.swapBack();
  assert.deepEqual(await keysOf(r.driver, ""), ["packs/x"]);
  assert.deepEqual((await walk(r.parent)).filter((e) => e.path.includes(",tmp.")), []);
});

type Patchable = "link" | "rename" | "lstat" | "lstatSync";

/** Runs `fn` with one of Deno's filesystem functions replaced. */
async function patched<K extends Patchable>(
  name: K,
  replacement: (typeof Deno)[K],
  fn: () => Promise<void>,
): Promise<void> {
  const d = Deno as { [P in Patchable]: (typeof Deno)[P] };
  const original = d[name];
  d[name] = replacement;
  try {
    await fn();
  } finally {
    d[name] = original;
  }
}

/** A system error as Deno and node:fs raise them. */
function systemError(code: string): Error {
  return Object.assign(new Error(`${code}: simulated`), { code });
}

Deno.test("openLocalFs() reports createOnly: false where hard links fail, and still refuses a key it sees", async () => {
  const parent = await Deno.makeTempDir({ prefix: "capsa-localfs-" });
  try {
    let driver: Awaited<ReturnType<typeof openLocalFs>> | undefined;
    await patched("link", () => Promise.reject(systemError("EPERM")), async () => {
      driver = await openLocalFs(`${parent}/root`, { create: true });
    });
    assert.ok(driver);
    assert.deepEqual(driver.capabilities, { createOnly: false, durable: false });
    await driver.put("lease", bytesOf("first"), { ifAbsent: true });
    await rejects(
      driver.put("lease", bytesOf("second"), { ifAbsent: true }),
      PreconditionFailedError,
    );
    assert.deepEqual(await driver.get("lease"), bytesOf("first"));
    assert.deepEqual((await walk(driver.location)).map((e) => e.path), ["lease"]);
    await driver.close();
  } finally {
    await Deno.remove(parent, { recursive: true });
  }
});

Deno.test("LocalFsDriver maps filesystem errors to typed errors, keeping the old object", async () => {
  await using s = await scratch();
  await s.driver.put("k", bytesOf("old"));
  const cases: [string, abstract new (...a: never[]) => Error][] = [
    ["EIO", LocalFsError],
    ["ENOSPC", LocalFsError],
    ["EDQUOT", LocalFsError],
    ["EACCES", PermissionDeniedError],
    ["EROFS", PermissionDeniedError],
    ["EMFILE", TransientError],
    ["ENAMETOOLONG", InvalidKeyError],
  ];
  for (const [code, type] of cases) {
    const failure = systemError(code);
    await patched("rename", () => Promise.reject(failure), async () => {
      await assert.rejects(s.driver.put("k", bytesOf("new")), (e: unknown) => {
        assert.ok(e instanceof type, `${code}: got ${String(e)}`);
        if (e instanceof LocalFsError) {
          assert.equal(e.code, "io_error");
          assert.equal(e.errno, code);
          assert.equal(e.cause, failure);
          assert.match(e.message, new RegExp(code));
        }
        return true;
      });
    });
    assert.deepEqual(await s.driver.get("k"), bytesOf("old"), code);
  }
  // Reads too: a failing lstat is an error, never "not found".
  // (Operations check paths with lstatSync, listings use lstat: both fail here.)
  const { lstat, lstatSync } = Deno;
  await patched("lstat", (path) => {
    return String(path).endsWith("/k") ? Promise.reject(systemError("EIO")) : lstat(path);
  }, async () => {
    await patched("lstatSync", (path) => {
      if (String(path).endsWith("/k")) throw systemError("EIO");
      return lstatSync(path);
    }, async () => {
      await rejects(s.driver.get("k"), LocalFsError);
      await rejects(s.driver.delete("k"), LocalFsError);
      await rejects(keysOf(s.driver, ""), LocalFsError);
    });
  });
  assert.deepEqual((await walk(s.root)).map((e) => e.path), ["k"]);
});

Deno.test("localFsPath() is the key itself, and refuses what validateKey refuses", () => {
  assert.equal(localFsPath("store.json"), "store.json");
  assert.equal(localFsPath("system.config/current"), "system.config/current");
  assert.equal(
    localFsPath("packs/01j9z/01j9z3kxabcdefghjkmnpqrstv"),
    "packs/01j9z/01j9z3kxabcdefghjkmnpqrstv",
  );
  for (const bad of ["../x", "A", "a b/con.txt", "x/", ""]) {
    assert.throws(() => localFsPath(bad), InvalidKeyError, bad);
  }
});
