/**
 * Maintenance agents' throughput, each beside its raw floor measured in the
 * same run:
 *
 * 1. `VerificationAgent` with `data: true` on a local store — MB/s of blob
 *    bytes re-read and re-hashed; floor: reading every pack file whole and
 *    hashing it (BLAKE3) in one pass.
 * 2. `MoveStoreAgent` from a local store to the loopback S3 server at
 *    parallelism 1, 8 and 32 — MB/s; floor: plain PUTs of the same objects at
 *    the same concurrency.
 *
 * Usage: deno run -A bench/maintenance_bench.ts [--mib 256]
 * Prints Markdown tables for BENCHMARKS.md.
 */

import { parseArgs } from "node:util";
import { EventBus } from "../store/events.ts";
import { hashBytes } from "../format/hashing.ts";
import { initStore, openStore } from "../store/store.ts";
import { openLocalFs } from "../drivers/localfs/mod.ts";
import { openS3 } from "../drivers/s3/mod.ts";
import { createMoveStoreAgent, createVerificationAgent } from "../maintenance/mod.ts";
import { S3_TEST_CREDENTIALS, startS3Server } from "../tests/s3_server.ts";

const { values } = parseArgs({ options: { mib: { type: "string", default: "256" } } });
const MIB = Number(values.mib);
const root = await Deno.makeTempDir({ prefix: "capsa-mbench-" });
const MiB = 1024 * 1024;

// A store of MIB MiB in 64 KiB–1 MiB artifacts of random bytes (regular blobs in 16 MiB packs).
const location = await openLocalFs(`${root}/store`, { create: true, durable: false });
const { store } = await initStore(location);
let written = 0;
for (let i = 0; written < MIB * MiB; i++) {
  const size = 65536 + (i * 7919 % 15) * 65536;
  const body = new Uint8Array(size);
  for (let at = 0; at < size; at += 65536) crypto.getRandomValues(body.subarray(at, at + 65536));
  await store.put("bench", `k${i}`, body);
  written += size;
}
await store.close();

// 1. verify --data, and the floor: read and hash every pack.
{
  const s = await openStore(location);
  const agent = createVerificationAgent(s, new EventBus(), { data: true });
  const t0 = performance.now();
  await agent.run();
  const secs = (performance.now() - t0) / 1000;
  const stats = agent.stats();
  await s.close();
  const t1 = performance.now();
  let floorBytes = 0;
  for await (const info of location.list("packs/")) {
    const bytes = await location.get(info.key);
    hashBytes("blake3", bytes);
    floorBytes += bytes.length;
  }
  const floorSecs = (performance.now() - t1) / 1000;
  console.log("| benchmark | result | raw floor | ratio |");
  console.log("| --- | --- | --- | --- |");
  const rate = stats.bytesRead / MiB / secs;
  const floor = floorBytes / MiB / floorSecs;
  console.log(
    `| verify --data, ${
      (stats.bytesRead / MiB).toFixed(0)
    } MiB in ${stats.packsChecked} packs (localfs) | ${
      rate.toFixed(0)
    } MiB/s | read + BLAKE3 of every pack: ${floor.toFixed(0)} MiB/s | ${
      (rate / floor).toFixed(2)
    } |`,
  );
  if (agent.problems().length > 0) throw new Error("verify found problems in a sound store");
}

// 2. move localfs → S3 at parallelism 1, 8, 32, and plain PUTs of the same objects.
Deno.env.set("AWS_ACCESS_KEY_ID", S3_TEST_CREDENTIALS.accessKeyId);
Deno.env.set("AWS_SECRET_ACCESS_KEY", S3_TEST_CREDENTIALS.secretAccessKey);
const server = await startS3Server({ createOnly: true });
try {
  const objects = await Array.fromAsync(location.list(""));
  const total = objects.reduce((n, o) => n + o.size, 0);
  console.log("");
  console.log("| parallelism | move localfs → S3 | plain PUTs of the same objects | ratio |");
  console.log("| --- | --- | --- | --- |");
  for (const p of [1, 8, 32]) {
    await server.createBucket(`move-${p}`);
    await server.createBucket(`plain-${p}`);
    const dest = await openS3(`s3://move-${p}/store?endpoint=${server.endpoint}`);
    // Each run moves a fresh copy of the source (a move marks its source as moved).
    const copyRoot = `${root}/copy-${p}`;
    const copy = await openLocalFs(copyRoot, { create: true, durable: false });
    for (const o of objects) await copy.put(o.key, await location.get(o.key));
    const s = await openStore(copy);
    const agent = createMoveStoreAgent(s, new EventBus(), {
      destination: dest,
      destinationLocation: `s3://move-${p}/store`,
      parallelism: p,
    });
    const t0 = performance.now();
    await agent.run();
    const moveSecs = (performance.now() - t0) / 1000;
    await s.close();
    const plain = await openS3(`s3://plain-${p}/x?endpoint=${server.endpoint}`);
    let next = 0;
    const t1 = performance.now();
    await Promise.all(Array.from({ length: p }, async () => {
      while (next < objects.length) {
        const o = objects[next++]!;
        await plain.put(o.key, await location.get(o.key));
      }
    }));
    const plainSecs = (performance.now() - t1) / 1000;
    await plain.close();
    await dest.close();
    const move = total / MiB / moveSecs;
    const floor = total / MiB / plainSecs;
    console.log(
      `| ${p} | ${move.toFixed(0)} MiB/s (${objects.length} objects, ${
        (total / MiB).toFixed(0)
      } MiB, each read back and checked) | ${floor.toFixed(0)} MiB/s | ${
        (move / floor).toFixed(2)
      } |`,
    );
  }
} finally {
  await server.stop();
  await Deno.remove(root, { recursive: true });
}
