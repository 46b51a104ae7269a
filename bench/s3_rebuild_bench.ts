/**
 * Full-scan rebuild against the loopback S3 server (s3rver, started here),
 * with and without added latency per request: packs/s at parallelism 1, 8,
 * 16 and 32, beside the raw GET rate of the same server measured in the same
 * run at the same concurrency (a TOC read is one ranged GET per pack).
 *
 * Usage: deno run -A bench/s3_rebuild_bench.ts [--packs 400] [--latency 0,25]
 * Prints a Markdown table for BENCHMARKS.md.
 */

import { parseArgs } from "node:util";
import { EventBus } from "../store/events.ts";
import { initStore, openStore } from "../store/store.ts";
import { openS3 } from "../drivers/s3/mod.ts";
import { createRebuildIndexAgent } from "../maintenance/mod.ts";
import { S3_TEST_CREDENTIALS, startS3Server } from "../tests/s3_server.ts";

const { values } = parseArgs({
  options: {
    packs: { type: "string", default: "400" },
    latency: { type: "string", default: "0,25" },
  },
});
const PACKS = Number(values.packs);
const LATENCIES = values.latency.split(",").map(Number);
const PARALLELISM = [1, 8, 16, 32];

Deno.env.set("AWS_ACCESS_KEY_ID", S3_TEST_CREDENTIALS.accessKeyId);
Deno.env.set("AWS_SECRET_ACCESS_KEY", S3_TEST_CREDENTIALS.secretAccessKey);
const server = await startS3Server({ createOnly: true });
try {
  await server.createBucket("bench");
  const url = `s3://bench/store?endpoint=${server.endpoint}`;
  const location = await openS3(url);
  const { store } = await initStore(location, {
    config: { packLingerMs: 0, snapshotEveryPacks: 0 },
  });
  // Sequential puts of small regular blobs: one pack each.
  for (let i = 0; i < PACKS; i++) {
    await store.put("bench", `k${i}`, crypto.getRandomValues(new Uint8Array(2048)));
  }
  await store.close();

  const rows: string[] = [];
  for (const latency of LATENCIES) {
    await server.setLatency(latency);
    // Raw floor: ranged GETs of one pack's tail, at each concurrency, for ~2 s.
    const probeKey = (await Array.fromAsync(location.list("packs/")))[0]!;
    for (const p of PARALLELISM) {
      let gets = 0;
      const until = performance.now() + 2000;
      const t0 = performance.now();
      await Promise.all(Array.from({ length: p }, async () => {
        while (performance.now() < until) {
          await location.getRange(probeKey.key, Math.max(0, probeKey.size - 65536), 65536);
          gets++;
        }
      }));
      const getRate = gets / ((performance.now() - t0) / 1000);

      const handle = await openS3(url);
      const s = await openStore(handle);
      const agent = createRebuildIndexAgent(s, new EventBus(), {
        source: "FullScan",
        parallelism: p,
      });
      const t1 = performance.now();
      await agent.run();
      const secs = (performance.now() - t1) / 1000;
      const stats = agent.stats();
      await s.close();
      await handle.close();
      const packRate = stats.packsIndexed / secs;
      const line = `| ${latency} ms | ${p} | ${stats.packsIndexed} | ${
        packRate.toFixed(0)
      } packs/s | ${getRate.toFixed(0)} GET/s | ${(packRate / getRate).toFixed(2)} |`;
      rows.push(line);
      console.error(line);
    }
  }
  await location.close();
  console.log(
    "| added latency | parallelism | packs | full-scan rebuild | raw ranged GET rate | ratio |",
  );
  console.log("| --- | --- | --- | --- | --- | --- |");
  for (const r of rows) console.log(r);
} finally {
  await server.stop();
}
