import assert from "node:assert/strict";
import { openRegular } from "./_reader.ts";

Deno.test("openRegular() reads a file whole in its fstat's size, and on past a size that is wrong", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const size of [0, 1, 4095, 4096, 65_536]) {
      const bytes = crypto.getRandomValues(new Uint8Array(Math.min(size, 65_536)));
      const path = `${dir}/f${size}`;
      await Deno.writeFile(path, bytes);
      const opened = openRegular(path);
      assert.equal(opened.info.size, size);
      assert.deepEqual(opened.bytes, bytes, `${size} bytes`);
      assert.equal(opened.bytes!.length, size);
    }
    // A file whose fstat says 0 bytes and that reads more (as /proc's do): read to its end.
    const proc = openRegular("/proc/self/cmdline");
    assert.equal(proc.info.size, 0);
    assert.deepEqual(proc.bytes, await Deno.readFile("/proc/self/cmdline"));
    assert.ok(proc.bytes!.length > 0);
    // Larger than fstat says and past the first buffer's doubling.
    const maps = openRegular("/proc/self/maps");
    assert.ok(maps.bytes!.length > 1000);
    assert.match(new TextDecoder().decode(maps.bytes), /\n$/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
