import { initStore } from "../mod.ts";
import { openLocalFs } from "../drivers/localfs/mod.ts";
const size = 256 * 1024 * 1024;
for (const enc of [false, true]) {
  const dir = await Deno.makeTempDir();
  const driver = await openLocalFs(`${dir}/s`, { create: true });
  const { store } = await initStore(
    driver,
    enc
      ? { encryption: { passphrase: "x", kdf: { memoryKiB: 1024, iterations: 1, parallelism: 1 } } }
      : {},
  );
  let sent = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(c) {
      if (sent >= size) return c.close();
      const b = new Uint8Array(1 << 20);
      for (let i = 0; i < b.length; i += 65536) crypto.getRandomValues(b.subarray(i, i + 65536));
      sent += b.length;
      c.enqueue(b);
    },
  });
  const t = performance.now();
  await store.put("ns", "big", stream);
  const s = (performance.now() - t) / 1000;
  console.log(
    enc ? "encrypted" : "plain",
    (size / 1e6 / s).toFixed(0),
    "MB/s",
    "rss",
    (Deno.memoryUsage().rss / 1e6).toFixed(0),
  );
  await store.close();
  await Deno.remove(dir, { recursive: true });
}
