import assert from "node:assert/strict";
import { keyToSegments } from "./_tree.ts";

Deno.test("keyToSegments() refuses every key that could land outside the target directory", () => {
  assert.deepEqual(keyToSegments("a/b/c.txt"), ["a", "b", "c.txt"]);
  assert.deepEqual(keyToSegments("..a/b.."), ["..a", "b.."]);
  for (
    const key of ["../x", "a/../../x", "/etc/passwd", "a//b", "a/", "./a", "a/.", "a\\..\\x", ".."]
  ) {
    const r = keyToSegments(key);
    assert.ok(!Array.isArray(r), key);
  }
});
