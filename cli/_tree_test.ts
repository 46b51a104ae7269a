import assert from "node:assert/strict";
import { ReadOnlyStoreError } from "../errors.ts";
import { MemoryDriver } from "../drivers/memory.ts";
import { initStore, openStore } from "../store/store.ts";
import { keyToSegments, listTree, putTree } from "./_tree.ts";

Deno.test("keyToSegments() refuses every key that could land outside the target directory", () => {
  assert.deepEqual(keyToSegments("a/b/c.txt"), ["a", "b", "c.txt"]);
  assert.deepEqual(keyToSegments("..a/b.."), ["..a", "b.."]);
  for (
    const key of ["../x", "a/../../x", "/etc/passwd", "a//b", "a/", "./a", "a/.", "..", "a\0b"]
  ) {
    const r = keyToSegments(key);
    assert.ok(!Array.isArray(r), key);
  }
  // One segment longer than a file name may be (255 bytes), counted in bytes, not characters.
  assert.ok(!Array.isArray(keyToSegments(`a/${"é".repeat(128)}`)));
  assert.deepEqual(keyToSegments(`a/${"é".repeat(127)}`), ["a", "é".repeat(127)]);
  // A backslash is an ordinary character of a file name, except on Windows.
  if (Deno.build.os !== "windows") assert.deepEqual(keyToSegments("a\\..\\x"), ["a\\..\\x"]);
});

Deno.test("putTree() keeps the typed error of a store that cannot write, its message naming the directory", async () => {
  const objects = new Map<string, Uint8Array>();
  await (await initStore(new MemoryDriver({ objects }))).store.close();
  const store = await openStore(new MemoryDriver({ objects }), { readOnly: true });
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/a.txt`, "hello");
    const e = await putTree(store, "ns", dir).then(() => undefined, (e: unknown) => e);
    assert.ok(e instanceof ReadOnlyStoreError, String(e));
    assert.equal(e.code, "read_only");
    assert.match(e.message, /\(nothing was stored\): this store handle is read-only/);
    assert.ok(e.message.startsWith(dir), e.message);
  } finally {
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("putTree() stores the other files when one cannot be read, then throws naming it", async () => {
  const objects = new Map<string, Uint8Array>();
  const { store } = await initStore(new MemoryDriver({ objects }));
  const dir = await Deno.makeTempDir();
  try {
    for (let i = 0; i < 30; i++) await Deno.writeFile(`${dir}/f${i}`, new Uint8Array(3000).fill(i));
    // A directory where a file was listed: reading it fails (even as root).
    const listed = (await listTree(dir)).files.filter((f) => !f.dir).length;
    assert.equal(listed, 30);
    const originalOpen = Deno.openSync;
    let swapped = false;
    // Replace one file by a directory after listing, through a hook on the first open.
    Deno.openSync = (path, o) => {
      if (!swapped) {
        swapped = true;
        Deno.removeSync(`${dir}/f17`);
        Deno.mkdirSync(`${dir}/f17`);
      }
      return originalOpen(path, o);
    };
    let e: unknown;
    try {
      e = await putTree(store, "ns", dir).then(() => undefined, (x: unknown) => x);
    } finally {
      Deno.openSync = originalOpen;
    }
    assert.ok(e instanceof Error, String(e));
    assert.match(e.message, /f17/);
    for (let i = 0; i < 30; i++) {
      if (i === 17) continue;
      assert.deepEqual((await store.get("ns", `f${i}`))[0], i);
    }
    // One write session: the 29 files share one pack.
    assert.equal([...objects.keys()].filter((k) => k.startsWith("packs/")).length, 1);
  } finally {
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

/** Counts the calls of `Deno[name]` while `fn` runs. */
async function counting<T>(
  names: Array<"stat" | "lstat" | "lstatSync" | "readFileSync" | "openSync">,
  fn: () => Promise<T>,
): Promise<{ result: T; calls: Record<string, number> }> {
  const calls: Record<string, number> = {};
  const originals = names.map((n) => [n, Deno[n]] as const);
  for (const [n, original] of originals) {
    calls[n] = 0;
    // deno-lint-ignore no-explicit-any
    (Deno as any)[n] = (...args: unknown[]) => {
      calls[n]!++;
      // deno-lint-ignore no-explicit-any
      return (original as any)(...args);
    };
  }
  try {
    return { result: await fn(), calls };
  } finally {
    // deno-lint-ignore no-explicit-any
    for (const [n, original] of originals) (Deno as any)[n] = original;
  }
}

Deno.test("putTree() opens each file once (its mode and time from that open file) and compares with current versions read once", async () => {
  const { store } = await initStore(new MemoryDriver());
  const dir = await Deno.makeTempDir();
  try {
    for (let i = 0; i < 20; i++) {
      await Deno.writeTextFile(`${dir}/f${i}.txt`, `file ${i} `.repeat(50), { mode: 0o640 });
    }
    await Deno.mkdir(`${dir}/sub`);
    await Deno.chmod(`${dir}/sub`, 0o750);
    const stats: number[] = [];
    const originalStat = store.stat.bind(store);
    store.stat = (...args) => {
      stats.push(1);
      return originalStat(...args);
    };
    const first = await counting(
      ["stat", "lstat", "lstatSync", "readFileSync", "openSync"],
      () => putTree(store, "ns", dir),
    );
    assert.equal(first.result.newVersions, 22);
    // Each file opened once, its metadata from that open file's fstat (no lstat of it while
    // listing, no second stat); the listing's lstat of each directory (the tree's own stat'd,
    // then lstat'd); no lookup of each key in an empty namespace.
    assert.deepEqual(first.calls, {
      stat: 1,
      lstat: 1,
      lstatSync: 1,
      readFileSync: 0,
      openSync: 20,
    });
    assert.equal(stats.length, 0);
    assert.deepEqual((await originalStat("ns", "sub/.")).metadata, {
      "capsa.type": "dir",
      "capsa.mode": "750",
      "capsa.mtime": String((await Deno.lstat(`${dir}/sub`)).mtime!.getTime()),
    });
    const info = await originalStat("ns", "f3.txt");
    assert.equal(info.metadata["capsa.mode"], "640");
    assert.equal(
      info.metadata["capsa.mtime"],
      String((await Deno.lstat(`${dir}/f3.txt`)).mtime!.getTime()),
    );

    // Changed bytes, same size and time: read once (to hash, then stored from those bytes).
    const f5 = await Deno.lstat(`${dir}/f5.txt`);
    await Deno.writeTextFile(`${dir}/f5.txt`, `FILE 5 `.repeat(50));
    assert.equal((await Deno.lstat(`${dir}/f5.txt`)).size, f5.size);
    await Deno.utime(`${dir}/f5.txt`, f5.atime!, f5.mtime!);
    // A new mode: changed without reading.
    await Deno.chmod(`${dir}/f6.txt`, 0o600);
    const again = await counting(
      ["stat", "lstat", "lstatSync", "readFileSync", "openSync"],
      () => putTree(store, "ns", dir),
    );
    assert.deepEqual([again.result.newVersions, again.result.unchanged], [2, 20]);
    // 18 unchanged files read to be hashed, f5 once (hashed, then stored), f6 once (stored).
    assert.deepEqual(again.calls, {
      stat: 1,
      lstat: 1,
      lstatSync: 1,
      readFileSync: 0,
      openSync: 20,
    });
    assert.equal(stats.length, 0, "no lookup per key: the current versions are listed once");
    assert.equal(
      await new Response(await store.getStream("ns", "f5.txt")).text(),
      `FILE 5 `.repeat(50),
    );
    assert.equal((await originalStat("ns", "f6.txt")).metadata["capsa.mode"], "600");
  } finally {
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("putTree() skips an unchanged file whose escaped key falls outside the escaped prefix", async () => {
  const { store } = await initStore(new MemoryDriver());
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/a\nb`, "two lines");
    await Deno.writeTextFile(`${dir}/plain`, "plain");
    const first = await putTree(store, "ns", dir, { prefix: "p%/" });
    assert.equal(first.newVersions, 3);
    // The key of a\nb is the whole key escaped, its prefix too: p%25/a%0Ab.
    assert.equal((await store.stat("ns", "p%25/a%0Ab")).metadata["capsa.escaped"], "1");
    const again = await putTree(store, "ns", dir, { prefix: "p%/" });
    assert.deepEqual([again.newVersions, again.unchanged], [0, 3]);
    await Deno.writeTextFile(`${dir}/a\nb`, "three lines");
    const third = await putTree(store, "ns", dir, { prefix: "p%/" });
    assert.deepEqual([third.newVersions, third.unchanged], [1, 2]);
  } finally {
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("putTree() stores a small file as it is when read, when it grows or shrinks after its fstat", async () => {
  const { store } = await initStore(new MemoryDriver());
  const dir = await Deno.makeTempDir();
  const originalOpen = Deno.openSync;
  try {
    await Deno.writeTextFile(`${dir}/grows`, "a".repeat(3000));
    await Deno.writeTextFile(`${dir}/shrinks`, "b".repeat(3000));
    // Past the size fstat gave: more than one read of the look past the end (64 KiB).
    const grown = "a".repeat(3000) + "c".repeat(150_000);
    Deno.openSync = (path, o) => {
      const file = originalOpen(path, o);
      const stat = file.statSync.bind(file);
      file.statSync = () => {
        const info = stat();
        if (String(path).endsWith("/grows")) Deno.writeTextFileSync(`${dir}/grows`, grown);
        if (String(path).endsWith("/shrinks")) Deno.truncateSync(`${dir}/shrinks`, 1000);
        return info;
      };
      return file;
    };
    try {
      await putTree(store, "ns", dir);
    } finally {
      Deno.openSync = originalOpen;
    }
    assert.equal(new TextDecoder().decode(await store.get("ns", "grows")), grown);
    assert.equal(new TextDecoder().decode(await store.get("ns", "shrinks")), "b".repeat(1000));
  } finally {
    Deno.openSync = originalOpen;
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
});
