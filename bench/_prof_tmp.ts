import { initStore } from "../mod.ts";
import { openLocalFs } from "../drivers/localfs/mod.ts";
const size = 512 * 1024 * 1024;
const enc = Deno.args[0] === "enc";
const dir = await Deno.makeTempDir();
const driver = await openLocalFs(`${dir}/s`, {
  create: true,
  durable: Deno.args[1] !== "nodurable",
});
const { store } = await initStore(
  driver,
  enc
    ? { encryption: { passphrase: "x", kdf: { memoryKiB: 1024, iterations: 1, parallelism: 1 } } }
    : {},
);
let sent = 0;
let x = 123456789, y = 362436069, z = 521288629, w = 88675123;
const stream = new ReadableStream<Uint8Array>({
  pull(c) {
    if (sent >= size) return c.close();
    const b = new Uint8Array(4 << 20);
    const v = new Uint32Array(b.buffer);
    for (let i = 0; i < v.length; i++) {
      const t = x ^ (x << 11);
      x = y;
      y = z;
      z = w;
      w = (w ^ (w >>> 19)) ^ (t ^ (t >>> 8));
      v[i] = w;
    }
    sent += b.length;
    c.enqueue(b);
  },
});
const t = performance.now();
await store.put("ns", "big", stream);
await store.flush();
const s = (performance.now() - t) / 1000;
console.log(
  enc ? "encrypted" : "plain",
  (size / 1e6 / s).toFixed(0),
  "MB/s",
  "backpressure ms",
  Math.round((globalThis as any).__bp ?? 0),
  "total ms",
  Math.round(s * 1000),
  "put ms",
  Math.round((globalThis as any).__put),
  "packs",
  (globalThis as any).__n,
);
await store.close();
await Deno.remove(dir, { recursive: true });
