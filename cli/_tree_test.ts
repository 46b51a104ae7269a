import assert from "node:assert/strict";
import { ReadOnlyStoreError } from "../errors.ts";
import { MemoryDriver } from "../drivers/memory.ts";
import { initStore, openStore } from "../store/store.ts";
import { keyToSegments, putTree } from "./_tree.ts";

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

Deno.test("putTree() keeps the typed error of a failed put, its message naming the file", async () => {
  const objects = new Map<string, Uint8Array>();
  await (await initStore(new MemoryDriver({ objects }))).store.close();
  const store = await openStore(new MemoryDriver({ objects }), { readOnly: true });
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/a.txt`, "hello");
    const e = await putTree(store, "ns", dir).then(() => undefined, (e: unknown) => e);
    assert.ok(e instanceof ReadOnlyStoreError, String(e));
    assert.equal(e.code, "read_only");
    assert.match(e.message, /a\.txt: this store handle is read-only/);
  } finally {
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
});
