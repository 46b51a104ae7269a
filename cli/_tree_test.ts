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
    const originalReadFile = Deno.readFile;
    let swapped = false;
    // Replace one file by a directory after listing, through a hook on the first read.
    Deno.readFile = async (path, o) => {
      if (!swapped) {
        swapped = true;
        await Deno.remove(`${dir}/f17`);
        await Deno.mkdir(`${dir}/f17`);
      }
      return await originalReadFile(path, o);
    };
    let e: unknown;
    try {
      e = await putTree(store, "ns", dir).then(() => undefined, (x: unknown) => x);
    } finally {
      Deno.readFile = originalReadFile;
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
