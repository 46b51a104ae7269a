/**
 * Store benchmarks on a local directory, each beside its raw floor:
 *
 * 1. ingest of N small artifacts (1–4 KiB) — artifacts/s; floor: writing the
 *    same bytes as plain 16 MiB files, and hashing them;
 * 2. ingest of one large artifact streamed (never held whole) — MB/s and peak
 *    RSS; floor: hashing it, writing it as plain files;
 * 3. open of an M-artifact store from its host cache — ms (in this process
 *    and in a fresh one);
 * 4. `get` of a small (inline) artifact: index time per get, µs.
 *
 * Usage: deno run -A bench/store_bench.ts [--small 100000] [--big-mib 1024]
 *          [--open 1000000] [--concurrency 256] [--dir /tmp]
 * Prints a Markdown table for BENCHMARKS.md.
 */

import { parseArgs } from "node:util";
import { body } from "../tests/data.ts";
import { createHasher, hashBytes } from "../format/hashing.ts";
import { initStore, openStore } from "../store/store.ts";
import { openLocalFs } from "../drivers/localfs/mod.ts";

const { values } = parseArgs({
  options: {
    small: { type: "string", default: "100000" },
    "big-mib": { type: "string", default: "1024" },
    open: { type: "string", default: "1000000" },
    concurrency: { type: "string", default: "256" },
    dir: { type: "string", default: "" },
    "open-child": { type: "string" },
  },
});

const MiB = 1024 * 1024;
const rows: string[][] = [];
const row = (...cells: string[]) => {
  rows.push(cells);
  console.error(cells.join(" | "));
};

const random = (size: number, seed: number) => body(seed, size);

async function openDirStore(root: string) {
  return {
    location: await openLocalFs(`${root}/store`, { create: true, durable: false }),
    host: await openLocalFs(`${root}/host`, { create: true, durable: false }),
  };
}

// Child mode: open a store from its host cache in a fresh process and report the time.
if (values["open-child"]) {
  const t0 = performance.now();
  const { location, host } = await openDirStore(values["open-child"]);
  const store = await openStore(location, { hostStorage: host, readOnly: true });
  const ms = performance.now() - t0;
  console.log(JSON.stringify({ ms, source: (await store.status()).index?.source }));
  await store.close();
  Deno.exit(0);
}

const base = values.dir || await Deno.makeTempDir({ prefix: "capsa-bench-" });

async function ingestSmall(n: number, concurrency: number): Promise<void> {
  const root = `${base}/small`;
  const { location, host } = await openDirStore(root);
  const { store } = await initStore(location, { hostStorage: host });
  const templates = Array.from({ length: 256 }, (_, i) => random(1024 + (i * 97) % 3073, i + 1));
  let bytes = 0;
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < n) {
      const i = next++;
      const body = templates[i % 256]!.slice();
      new DataView(body.buffer).setUint32(0, i); // distinct bodies: no dedup
      bytes += body.length;
      await store.put("bench", `file/${i}`, body);
    }
  }));
  await store.flush();
  const s = (performance.now() - t0) / 1000;
  await store.close();
  // Floors: hash the same bytes one by one; write them as plain 16 MiB files.
  const t1 = performance.now();
  for (let i = 0; i < n; i++) hashBytes("blake3", templates[i % 256]!);
  const hashS = (performance.now() - t1) / 1000;
  const plain = `${base}/plain-small`;
  await Deno.mkdir(plain, { recursive: true });
  const block = random(16 * MiB, 9);
  const t2 = performance.now();
  for (let done = 0, k = 0; done < bytes; done += block.length, k++) {
    await Deno.writeFile(`${plain}/${k}`, block.subarray(0, Math.min(block.length, bytes - done)));
  }
  const writeS = (performance.now() - t2) / 1000;
  row(
    `ingest ${n.toLocaleString("en")} artifacts of 1–4 KiB (${
      (bytes / MiB).toFixed(0)
    } MiB), ${concurrency} concurrent puts`,
    `${Math.round(n / s).toLocaleString("en")} artifacts/s (${(bytes / MiB / s).toFixed(0)} MiB/s)`,
    `hash alone ${Math.round(n / hashS).toLocaleString("en")}/s; plain file write ${
      (bytes / MiB / writeS).toFixed(0)
    } MiB/s`,
    "≥ 20,000 artifacts/s",
  );
  await Deno.remove(plain, { recursive: true });
  await Deno.remove(root, { recursive: true });
}

async function ingestBig(mib: number): Promise<void> {
  const root = `${base}/big`;
  const { location, host } = await openDirStore(root);
  const { store } = await initStore(location, { hostStorage: host });
  const piece = random(4 * MiB, 42);
  const pieces = mib / 4;
  let sent = 0;
  let peak = 0;
  const sample = setInterval(() => peak = Math.max(peak, Deno.memoryUsage().rss), 50);
  const rssBefore = Deno.memoryUsage().rss;
  const body = new ReadableStream<Uint8Array>({
    pull(c) {
      if (sent >= pieces) return c.close();
      const p = piece.slice();
      new DataView(p.buffer).setUint32(p.length - 4, sent++); // no two pieces alike
      for (let at = 0; at < p.length; at += 65536) {
        new DataView(p.buffer).setUint32(at, sent * 7919 + at);
      }
      c.enqueue(p);
    },
  });
  const t0 = performance.now();
  await store.put("bench", "big", body);
  const s = (performance.now() - t0) / 1000;
  clearInterval(sample);
  await store.close();
  const t1 = performance.now();
  const h = createHasher("blake3");
  for (let i = 0; i < pieces; i++) h.update(piece);
  h.digestHex();
  const hashS = (performance.now() - t1) / 1000;
  const t2 = performance.now();
  for (let i = 0; i < pieces; i++) await Deno.writeFile(`${base}/plain-big-${i % 8}`, piece);
  const writeS = (performance.now() - t2) / 1000;
  for (let i = 0; i < 8; i++) await Deno.remove(`${base}/plain-big-${i}`).catch(() => {});
  row(
    `ingest one ${mib} MiB artifact, streamed in 4 MiB pieces`,
    `${(mib / s).toFixed(0)} MiB/s; peak RSS ${(peak / MiB).toFixed(0)} MiB (${
      ((peak - rssBefore) / MiB).toFixed(0)
    } MiB above start)`,
    `BLAKE3 alone ${(mib / hashS).toFixed(0)} MiB/s; plain write ${
      (mib / writeS).toFixed(0)
    } MiB/s`,
    "≥ 150 MB/s, flat memory",
  );
  await Deno.remove(root, { recursive: true });
}

async function openAndGet(m: number, concurrency: number): Promise<void> {
  const root = `${base}/open`;
  const { location, host } = await openDirStore(root);
  const { store } = await initStore(location, { hostStorage: host });
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < m) {
      const i = next++;
      await store.put(
        "bench",
        `k/${String(i).padStart(8, "0")}`,
        new TextEncoder().encode(`v${i}`),
      );
    }
  }));
  const buildS = (performance.now() - t0) / 1000;
  await store.close();
  const cache =
    (await Deno.stat(`${root}/host`).then(() => Array.fromAsync(host.list("index/"))))[0];

  const t1 = performance.now();
  const opened = await openStore(location, { hostStorage: host });
  const inProcess = performance.now() - t1;
  const source = (await opened.status()).index?.source;
  const child = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(import.meta.url).pathname, "--open-child", root],
    stdout: "piped",
  }).output();
  const fresh = JSON.parse(new TextDecoder().decode(child.stdout));
  row(
    `open a ${m.toLocaleString("en")}-artifact store from its host cache (${
      ((cache?.size ?? 0) / MiB).toFixed(0)
    } MiB; built at ${Math.round(m / buildS).toLocaleString("en")}/s)`,
    `${inProcess.toFixed(0)} ms in process (${source}); ${
      fresh.ms.toFixed(0)
    } ms in a fresh process`,
    `reading the cache file alone: ${await (async () => {
      const t = performance.now();
      await host.get("index/cache");
      return (performance.now() - t).toFixed(0);
    })()} ms`,
    "≤ 1 s",
  );

  // get of small artifacts: inline bodies, so the time is the index's.
  const keys = Array.from(
    { length: 100_000 },
    (_, i) => `k/${String((i * 7919) % m).padStart(8, "0")}`,
  );
  const t2 = performance.now();
  for (const k of keys) await opened.get("bench", k);
  const getUs = (performance.now() - t2) * 1000 / keys.length;
  const t3 = performance.now();
  for (const k of keys) opened.index.current("bench", k);
  const indexUs = (performance.now() - t3) * 1000 / keys.length;
  row(
    `get of a small (inline) artifact in the ${
      m.toLocaleString("en")
    }-artifact store, 100,000 random keys`,
    `${getUs.toFixed(1)} µs per get`,
    `the index lookup alone: ${indexUs.toFixed(1)} µs`,
    "≤ 100 µs of index time",
  );
  await opened.close();
  await Deno.remove(root, { recursive: true });
}

const concurrency = Number(values.concurrency);
if (Number(values.small) > 0) await ingestSmall(Number(values.small), concurrency);
if (Number(values["big-mib"]) > 0) await ingestBig(Number(values["big-mib"]));
if (Number(values.open) > 0) await openAndGet(Number(values.open), concurrency);

console.log("| benchmark | result | raw floor | target |");
console.log("| --- | --- | --- | --- |");
for (const r of rows) console.log(`| ${r.join(" | ")} |`);
if (!values.dir) await Deno.remove(base, { recursive: true });
