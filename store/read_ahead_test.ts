import assert from "node:assert/strict";
import { MemoryDriver } from "../drivers/memory.ts";
import type { PackSource } from "../format/pack.ts";
import { READ_AHEAD_WINDOW, ReadAhead } from "./read_ahead.ts";
import { initStore } from "./store.ts";
import { body } from "../tests/data.ts";
import { pool } from "../pool.ts";

const MiB = 1024 * 1024;
const KEY = "packs/01arz/01arz3ndektsv4rrffq69g5fav";

/** A pack of `size` patterned bytes behind a source that counts (and can fail) its reads. */
async function source(size: number) {
  const driver = new MemoryDriver();
  const bytes = new Uint8Array(size).map((_, i) => (i * 7 + (i >> 11)) % 251);
  await driver.put(KEY, bytes);
  const reads: Array<[number, number]> = [];
  let failNext = 0;
  const src: PackSource = {
    getRange(key, offset, length) {
      reads.push([offset, length]);
      if (failNext > 0) {
        failNext--;
        return Promise.reject(new Error("injected read failure"));
      }
      return driver.getRange(key, offset, length);
    },
    stat: (key) => driver.stat(key),
  };
  return { bytes, reads, src, fail: (n: number) => void (failNext = n) };
}

Deno.test("ReadAhead: reads out of order pass through, one source read each, no window", async () => {
  const s = await source(8 * MiB);
  const ahead = new ReadAhead(s.src);
  for (const offset of [5 * MiB, 1000, 3 * MiB, 7 * MiB, 200_000]) {
    assert.deepEqual(await ahead.getRange(KEY, offset, 3000), s.bytes.slice(offset, offset + 3000));
  }
  assert.equal(ahead.windowsRead, 0);
  assert.equal(s.reads.length, 5);
});

Deno.test("ReadAhead: reads in order, concurrent too, come from a few windows, byte for byte, clipped at the end", async () => {
  const size = 10 * MiB + 12_345;
  const s = await source(size);
  const ahead = new ReadAhead(s.src);
  // 3,000-byte reads with 100-byte gaps (a pack's blobs), all issued at once, 32 in flight.
  const ranges: Array<[number, number]> = [];
  for (let at = 0; at + 3000 <= size; at += 3100) ranges.push([at, 3000]);
  const got = new Map<number, Uint8Array>();
  await pool(ranges, async ([offset, length]) => {
    got.set(offset, await ahead.getRange(KEY, offset, length));
  }, { concurrency: 32 });
  for (const [offset, length] of ranges) {
    assert.deepEqual(got.get(offset), s.bytes.slice(offset, offset + length), `at ${offset}`);
  }
  const windows = Math.ceil(size / READ_AHEAD_WINDOW);
  assert.ok(
    ahead.windowsRead >= windows && ahead.windowsRead <= windows + 1,
    `${ahead.windowsRead} windows for ${ranges.length} reads`,
  );
  assert.ok(s.reads.length <= windows + 3, `${s.reads.length} source reads`);
  // Past the end: clipped, as the source clips.
  const tail = await ahead.getRange(KEY, size - 10, 100);
  assert.deepEqual(tail, s.bytes.slice(size - 10));
  // A read larger than a small one passes through.
  const before = s.reads.length;
  assert.deepEqual(await ahead.getRange(KEY, 0, MiB), s.bytes.slice(0, MiB));
  assert.equal(s.reads.length, before + 1);
});

Deno.test("ReadAhead: a failed window fails its reads and is forgotten: the next read asks again", async () => {
  const s = await source(6 * MiB);
  const ahead = new ReadAhead(s.src);
  await ahead.getRange(KEY, 0, 1000);
  s.fail(1);
  // The second read in order starts a window, whose read fails: so do the reads waiting on it.
  const waiting = [ahead.getRange(KEY, 1000, 1000), ahead.getRange(KEY, 2000, 1000)];
  for (const r of await Promise.allSettled(waiting)) assert.equal(r.status, "rejected");
  assert.deepEqual(await ahead.getRange(KEY, 3000, 1000), s.bytes.slice(3000, 4000));
  assert.deepEqual(await ahead.getRange(KEY, 4000, 1000), s.bytes.slice(4000, 5000));
});

Deno.test("Store.get of small artifacts in key order reads their packs ahead: a few reads of the Location for 600 artifacts", async () => {
  const objects = new Map<string, Uint8Array>();
  let packReads = 0;
  class Counting extends MemoryDriver {
    override getRange(key: string, offset: number, length: number): Promise<Uint8Array> {
      if (key.startsWith("packs/")) packReads++;
      return super.getRange(key, offset, length);
    }
  }
  const { store } = await initStore(new Counting({ objects }), {
    config: { compression: "none" },
  });
  const bodies = Array.from({ length: 600 }, (_, i) => body(i, 1000 + (i * 37) % 3000));
  const key = (i: number) => `f/${String(i).padStart(4, "0")}`;
  const batch = store.batch();
  for (let i = 0; i < bodies.length; i++) await batch.put("ns", key(i), bodies[i]!);
  await batch.close();
  // A single read costs one read of the Location, as before.
  packReads = 0;
  assert.deepEqual(await store.get("ns", key(17)), bodies[17]);
  assert.equal(packReads, 1);
  packReads = 0;
  await pool(bodies.map((_, i) => i), async (i) => {
    assert.deepEqual(await store.get("ns", key(i)), bodies[i], key(i));
  }, { concurrency: 32 });
  assert.ok(packReads <= 10, `${packReads} pack reads for 600 artifacts`);
  await store.close();
});
