import assert from "node:assert/strict";
import { openRegular, readToEnd } from "./_reader.ts";

Deno.test("openRegular() reads a file whole in its fstat's size", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const size of [0, 1, 4095, 4096, 65_536]) {
      const bytes = crypto.getRandomValues(new Uint8Array(size));
      const path = `${dir}/f${size}`;
      await Deno.writeFile(path, bytes);
      const opened = openRegular(path);
      assert.equal(opened.info.size, size);
      assert.deepEqual(opened.bytes, bytes, `${size} bytes`);
      assert.equal(opened.bytes!.length, size);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readToEnd() reads on to the end of a file that grew or shrank after its fstat", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const bytes = new Uint8Array(100_000).map((_, i) => (i * 2_654_435_761) >>> 24);
    const path = `${dir}/f`;
    await Deno.writeFile(path, bytes);
    // The size fstat gave, now wrong: smaller (the file grew), larger (it shrank), or right.
    for (const said of [0, 1, 99, 65_535, 99_999, 100_000, 100_001, 250_000]) {
      using file = Deno.openSync(path, { read: true });
      assert.deepEqual(readToEnd(file, said), bytes, `fstat said ${said}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
