import assert from "node:assert/strict";
import { keyToSegments, runPool } from "./objects.ts";

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

Deno.test("runPool() bounds concurrency and, after a failure, starts nothing new", async () => {
  let running = 0;
  let peak = 0;
  const seen: number[] = [];
  await runPool([...Array(20).keys()], 3, async (i) => {
    running++;
    peak = Math.max(peak, running);
    await new Promise((r) => setTimeout(r, 1));
    seen.push(i);
    running--;
  });
  assert.equal(peak, 3);
  assert.equal(seen.length, 20);

  const started: number[] = [];
  await assert.rejects(
    runPool([...Array(20).keys()], 2, async (i) => {
      started.push(i);
      await new Promise((r) => setTimeout(r, 1));
      if (i === 3) throw new Error("boom");
    }),
    /boom/,
  );
  assert.ok(started.length <= 6, `started ${started.length}`);
});
