import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { ReadOnlyStoreError } from "../errors.ts";
import { MemoryDriver } from "../drivers/memory.ts";
import { readPackToc } from "../format/pack.ts";
import { initStore, openStore, type Store } from "../store/store.ts";
import { escapeKeyPath, keyToSegments, listTree, putTree } from "./_tree.ts";

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
    for (const reader of ["worker", "thread"] as const) {
      // After listing, before reading: one file becomes a directory, another goes away.
      const afterListing = () => {
        Deno.removeSync(`${dir}/f17`);
        Deno.mkdirSync(`${dir}/f17`);
        Deno.removeSync(`${dir}/f23`);
      };
      const e = await putTree(store, reader, dir, { reader, afterListing }).then(
        () => undefined,
        (x: unknown) => x,
      );
      // The first failure, typed as reading it here would have thrown it, names the rest.
      assert.ok(e instanceof Deno.errors.IsADirectory, `${reader}: ${e}`);
      assert.match(e.message, /f17 \(and 1 more files not stored; the others were\)/);
      for (let i = 0; i < 30; i++) {
        if (i === 17 || i === 23) continue;
        assert.deepEqual((await store.get(reader, `f${i}`))[0], i);
      }
      await Deno.remove(`${dir}/f17`);
      await Deno.writeFile(`${dir}/f17`, new Uint8Array(3000).fill(17));
      await Deno.writeFile(`${dir}/f23`, new Uint8Array(3000).fill(23));
    }
    // Each run one write session: its 28 files share one pack.
    assert.equal([...objects.keys()].filter((k) => k.startsWith("packs/")).length, 2);
    const e = await putTree(store, "ns", dir, {
      afterListing: () => Deno.removeSync(`${dir}/f17`),
    }).then(() => undefined, (x: unknown) => x);
    assert.ok(e instanceof Deno.errors.NotFound, String(e));
    assert.match(e.message, /f17/);
    for (let i = 0; i < 30; i++) {
      if (i === 17) continue;
      assert.deepEqual((await store.get("ns", `f${i}`))[0], i);
    }
    assert.equal([...objects.keys()].filter((k) => k.startsWith("packs/")).length, 3);
  } finally {
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("putTree() reading in its worker stores what reading on this thread stores, opening no file here", async () => {
  const dir = await Deno.makeTempDir();
  const kdf = { memoryKiB: 1024, iterations: 1, parallelism: 1 }; // cheap, for the test
  try {
    const rand = (n: number) => {
      const b = new Uint8Array(n);
      for (let i = 0; i < n; i += 65536) crypto.getRandomValues(b.subarray(i, i + 65536));
      return b;
    };
    const text = (n: number, seed: number) =>
      new TextEncoder().encode(`line ${seed} of a text that compresses\n`.repeat(n));
    await Deno.mkdir(`${dir}/a/b/c`, { recursive: true });
    await Deno.mkdir(`${dir}/empty-dir`);
    const regular = new Map<string, Uint8Array>([
      ["empty", new Uint8Array(0)],
      ["a/inline", text(2, 1)], // under the inline threshold
      ["a/b/random", rand(3000)], // not worth compressing
      ["a/b/c/text", text(200, 2)], // compressed
      ["a/b/c/text-again", text(200, 2)], // the same blob
      ["a/at-limit", rand(64 * 1024)], // the largest read in the worker
      ["a/past-limit", text(3000, 3)], // read on this thread
      ["big", rand(1_500_000)], // above the chunk threshold: chunked, streamed here
      ["tab\tname", text(50, 4)], // an escaped key
    ]);
    for (let i = 0; i < 600; i++) regular.set(`a/b/many/f${i}`, i % 2 ? rand(100 + i) : text(i, i));
    await Deno.mkdir(`${dir}/a/b/many`);
    for (const [k, v] of regular) await Deno.writeFile(`${dir}/${k}`, v);
    await Deno.symlink("a/b/random", `${dir}/link`);
    for (const encryption of [undefined, { passphrase: "p", kdf }]) {
      const stores = [];
      const objects: Array<Map<string, Uint8Array>> = [];
      for (const reader of ["thread", "worker"] as const) {
        objects.push(new Map());
        const { store } = await initStore(
          new MemoryDriver({ objects: objects.at(-1)! }),
          encryption ? { encryption } : {},
        );
        let opens = 0;
        const originalOpen = Deno.openSync;
        Deno.openSync = (...args) => {
          opens++;
          return originalOpen(...args);
        };
        let result;
        try {
          result = await putTree(store, "ns", dir, { reader });
        } finally {
          Deno.openSync = originalOpen;
        }
        // The worker opened every regular file; this thread none (the large ones it reads again).
        assert.equal(result.readByWorker, reader === "worker" ? regular.size : 0);
        assert.equal(opens, reader === "worker" ? 0 : regular.size);
        assert.equal(result.newVersions, regular.size + 1 + 6); // the link and 6 directories
        stores.push(store);
      }
      const [thread, worker] = stores as [Store, Store];
      const all = async (store: Store) => {
        const out = [];
        for await (const a of store.iterate("ns")) {
          // An encrypted store's digests are keyed: each store its own.
          const digest = encryption === undefined ? a.digest : "";
          const body = createHash("sha256").update(await store.get("ns", a.key)).digest("hex");
          out.push([a.key, a.size, digest, a.metadata, body]);
        }
        return out;
      };
      // Each get checks the body's digest and every blob id against the bytes.
      const expected = await all(thread);
      assert.deepEqual(await all(worker), expected);
      for (const [k, v] of regular) {
        assert.deepEqual(await worker.get("ns", escapeKeyPath(k)), v, k);
      }
      // The same blobs, compressed alike (the TOCs differ: manifest ids and times).
      const counts = async (store: Store) => {
        const { blobs, blobBytes, packs } = (await store.status()).counts!;
        return { blobs, blobBytes, packs };
      };
      assert.deepEqual(await counts(worker), await counts(thread));
      if (encryption === undefined) {
        assert.deepEqual(await storedBlobs(objects[1]!), await storedBlobs(objects[0]!));
      }
      // Unchanged files are recognised by the worker's digests: nothing is stored again.
      const again = await putTree(worker, "ns", dir);
      assert.deepEqual([again.newVersions, again.unchanged], [0, regular.size + 7]);
      for (const store of stores) await store.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Every blob of the packs of an unencrypted store: its id, compression and stored size. */
async function storedBlobs(objects: Map<string, Uint8Array>): Promise<string[]> {
  const driver = new MemoryDriver({ objects });
  const out: string[] = [];
  for (const key of objects.keys()) {
    if (!key.startsWith("packs/")) continue;
    for (const b of (await readPackToc(driver, key)).blobs) {
      out.push(`${b.id} ${b.compression} ${b.storedLength}`);
    }
  }
  return out.sort();
}

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
      () => putTree(store, "ns", dir, { reader: "thread" }),
    );
    assert.equal(first.result.newVersions, 22);
    assert.equal(first.result.readByWorker, 0);
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

    // Changed bytes, same size and time; and a new mode.
    const f5 = await Deno.lstat(`${dir}/f5.txt`);
    const f5Before = await Deno.readTextFile(`${dir}/f5.txt`);
    await Deno.writeTextFile(`${dir}/f5.txt`, `FILE 5 `.repeat(50));
    assert.equal((await Deno.lstat(`${dir}/f5.txt`)).size, f5.size);
    await Deno.utime(`${dir}/f5.txt`, f5.atime!, f5.mtime!);
    await Deno.chmod(`${dir}/f6.txt`, 0o600);
    const again = await counting(
      ["stat", "lstat", "lstatSync", "readFileSync", "openSync"],
      () => putTree(store, "ns", dir, { reader: "thread" }),
    );
    // Size, mode and time as stored: unchanged from one lstat each, never opened (f5 too: its
    // bytes changed, not its size or time); f6's new mode: lstat'd, then opened and stored.
    assert.deepEqual([again.result.newVersions, again.result.unchanged], [1, 21]);
    assert.deepEqual(again.calls, {
      stat: 1,
      lstat: 1,
      lstatSync: 21,
      readFileSync: 0,
      openSync: 1,
    });
    assert.equal(stats.length, 0, "no lookup per key: the current versions are listed once");
    assert.equal(await new Response(await store.getStream("ns", "f5.txt")).text(), f5Before);
    assert.equal((await originalStat("ns", "f6.txt")).metadata["capsa.mode"], "600");

    // checksum: every file read and hashed; f5 read once (hashed, then stored from those bytes).
    const checked = await counting(
      ["stat", "lstat", "lstatSync", "readFileSync", "openSync"],
      () => putTree(store, "ns", dir, { reader: "thread", checksum: true }),
    );
    assert.deepEqual([checked.result.newVersions, checked.result.unchanged], [1, 21]);
    assert.deepEqual(checked.calls, {
      stat: 1,
      lstat: 1,
      lstatSync: 1,
      readFileSync: 0,
      openSync: 20,
    });
    assert.equal(
      await new Response(await store.getStream("ns", "f5.txt")).text(),
      `FILE 5 `.repeat(50),
    );
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
      await putTree(store, "ns", dir, { reader: "thread" });
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

Deno.test("listTree() walks in key order, handing over regular files' paths as it goes; escaped names are put in order", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // Names around "/" (0x2f) and "." (0x2e): a directory sorts as its name followed by "/", its
    // own entry as "." among its entries ("!" and "-" sort before it).
    const dirs = ["a", "a-", "a.", "ab", "a/b", "a/b-", "a/!", "z z", "a/b/c"];
    const regular = [
      "a0",
      "a-b",
      "a.b",
      "a/!x",
      "a/-",
      "a/x",
      "a/b/!",
      "a/b/..x",
      "a/b-/f",
      "a./f",
      "ab/f",
      "b",
      "é",
      "z z/ü",
      "~",
      "a/b/c/deep",
    ];
    for (const d of dirs) await Deno.mkdir(`${dir}/${d}`, { recursive: true });
    for (const f of regular) await Deno.writeTextFile(`${dir}/${f}`, f);
    await Deno.symlink("b", `${dir}/a+link`);
    for (const prefix of ["", "p/", "p-"]) {
      const handed: string[] = [];
      const listed = await listTree(dir, prefix, { onRegular: (p) => handed.push(...p) });
      const keys = listed.files.map((f) => f.key);
      assert.deepEqual(keys, [...keys].sort(), `${prefix}: in key order`);
      assert.equal(listed.reordered, false, prefix);
      assert.equal(new Set(keys).size, keys.length);
      // Every regular file, handed over in the listing's order.
      assert.deepEqual(handed, listed.files.filter((f) => !f.dir && !f.symlink).map((f) => f.path));
      assert.equal(handed.length, regular.length);
      // What was listed: every file, link and directory (and the tree itself under "" and "p/").
      const expected = [
        ...regular.map((f) => prefix + f),
        ...dirs.map((d) => `${prefix}${d}/.`),
        `${prefix}a+link`,
        ...(prefix.endsWith("/") || prefix === "" ? [`${prefix}.`] : []),
      ].sort();
      assert.deepEqual(keys, expected, prefix);
    }
    // A control character escapes the whole key, "%" included: such keys may need sorting after
    // the walk; the result is in key order all the same, and says so.
    await Deno.mkdir(`${dir}/q\u0001`);
    await Deno.writeTextFile(`${dir}/q\u0001/%`, "x");
    await Deno.writeTextFile(`${dir}/q%`, "y");
    await Deno.writeTextFile(`${dir}/q\u0001%`, "z");
    const listed = await listTree(dir, "", { onRegular: () => {} });
    const keys = listed.files.map((f) => f.key);
    assert.deepEqual(keys, [...keys].sort());
    assert.ok(keys.includes("q%01/%25") && keys.includes("q%") && keys.includes("q%01%25"));
    assert.equal(listed.reordered, true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("putTree() with its worker reading during the walk: a walk that escaped names put out of order is read again in key order", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // Enough directories that the walk lets the event loop run (and the worker start) midway.
    const bodies = new Map<string, string>();
    for (let d = 0; d < 150; d++) {
      await Deno.mkdir(`${dir}/d${d}`);
      for (let f = 0; f < 3; f++) bodies.set(`d${d}/f${f}`, `body ${d}.${f}`);
    }
    for (const [k, v] of bodies) await Deno.writeTextFile(`${dir}/${k}`, v);
    for (const escaped of [false, true]) {
      if (escaped) {
        // The walk finds these in another order than their (escaped) keys sort in.
        await Deno.mkdir(`${dir}/q\u0001`);
        for (const [k, v] of [["q\u0001/%", "x"], ["q%", "y"], ["q\u0001%", "z"]] as const) {
          await Deno.writeTextFile(`${dir}/${k}`, v);
          bodies.set(k.includes("\u0001") ? escapeKeyPath(k) : k, v);
        }
      }
      const { store } = await initStore(new MemoryDriver());
      try {
        const listed = await listTree(dir, "", { onRegular: () => {} });
        assert.equal(listed.reordered, escaped);
        const result = await putTree(store, "ns", dir, { reader: "worker" });
        assert.equal(result.readByWorker, bodies.size, `escaped ${escaped}`);
        for (const [key, body] of bodies) {
          assert.equal(new TextDecoder().decode(await store.get("ns", key)), body, key);
        }
      } finally {
        await store.close();
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
