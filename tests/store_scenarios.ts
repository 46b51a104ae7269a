/**
 * Store round trips written once and run on every kind of Location (memory,
 * localfs in `tests/store_scenarios_test.ts`; S3 in
 * `tests/s3_scenarios_test.ts`). `store/store_test.ts` goes deeper on memory,
 * where a test can corrupt objects directly.
 */

import assert from "node:assert/strict";
import { MemoryDriver } from "../drivers/memory.ts";
import { ArtifactNotFoundError } from "../errors.ts";
import { hashBytes } from "../format/hashing.ts";
import { initStore, openStore, type Store } from "../store/store.ts";
import type { LocationKind, TestLocation } from "./locations.ts";
import { body } from "./data.ts";

const config = {
  inlineThreshold: 64,
  chunkThreshold: 4096,
  packTargetSize: 64 * 1024,
  packLingerMs: 2,
  snapshotEveryPacks: 0,
  snapshotIntervalMs: 0,
};
const chunking = { min: 1024, avg: 2048, max: 4096 };

function streamOf(bytes: Uint8Array, piece: number): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream({
    pull(c) {
      if (at >= bytes.length) return c.close();
      c.enqueue(bytes.slice(at, at + piece));
      at += piece;
    },
  });
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/**
 * Registers the store round trips for one kind of Location.
 * @param kind The kind of Location.
 */
export function registerStoreScenarios(kind: LocationKind): void {
  const test = (
    name: string,
    fn: (loc: TestLocation, host: Map<string, Uint8Array>) => Promise<void>,
  ) =>
    Deno.test(`${kind.name}: ${name}`, async () => {
      const loc = await kind.create();
      try {
        await fn(loc, new Map());
      } finally {
        await loc.dispose();
      }
    });

  const open = async (loc: TestLocation, host: Map<string, Uint8Array>): Promise<Store> =>
    await openStore(await loc.open(), { hostStorage: new MemoryDriver({ objects: host }) });

  test(
    "Store round trips every size boundary, as bytes and as streams, across a reopen",
    async (loc, host) => {
      const { store } = await initStore(await loc.open(), {
        hostStorage: new MemoryDriver({ objects: host }),
        config,
        chunking,
      });
      const sizes = [0, 1, 63, 64, 65, 4095, 4096, 4097, 30_000, 200_000];
      await Promise.all(sizes.flatMap((size, i) => [
        store.put("bytes", `s${size}`, body(i, size), {
          contentType: "application/x-test",
          metadata: { n: `${size}` },
        }),
        store.put("stream", `s${size}`, streamOf(body(i, size), 777)),
      ]));
      const check = async (s: Store) => {
        for (const [i, size] of sizes.entries()) {
          for (const ns of ["bytes", "stream"]) {
            const want = body(i, size);
            assert.deepEqual(await s.get(ns, `s${size}`), want, `${ns} ${size}`);
            assert.deepEqual(await readAll(await s.getStream(ns, `s${size}`)), want);
            const info = await s.stat(ns, `s${size}`);
            assert.equal(info.size, size);
            assert.equal(info.digest, hashBytes("blake3", want));
            const from = Math.floor(size / 3);
            assert.deepEqual(
              await s.getRange(ns, `s${size}`, from, 5000),
              want.slice(from, from + 5000),
            );
          }
          assert.deepEqual((await s.stat("bytes", `s${size}`)).metadata, { n: `${size}` });
        }
      };
      await check(store);
      await store.close();
      const again = await open(loc, host);
      await check(again);
      await again.close();
      // And with no host cache: everything from the Location alone.
      const cold = await open(loc, new Map());
      await check(cold);
      await cold.close();
    },
  );

  test(
    "Store: 200 concurrent puts share packs and are all readable after reopen",
    async (loc, host) => {
      const { store } = await initStore(await loc.open(), {
        hostStorage: new MemoryDriver({ objects: host }),
        config,
        chunking,
      });
      await Promise.all(
        Array.from(
          { length: 200 },
          (_, i) => store.put("many", `k${String(i).padStart(3, "0")}`, body(i, 100 + i)),
        ),
      );
      const packs = store.index.counts().packs;
      assert.ok(packs < 50, `${packs} packs for 200 concurrent puts`);
      await store.close();
      const again = await open(loc, new Map());
      const keys: string[] = [];
      let after: string | undefined;
      for (;;) {
        const page = await again.list("many", { limit: 64, ...(after ? { after } : {}) });
        keys.push(...page.items.map((i) => i.key));
        if (!page.after) break;
        after = page.after;
      }
      assert.equal(keys.length, 200);
      for (let i = 0; i < 200; i++) {
        assert.deepEqual(await again.get("many", keys[i]!), body(i, 100 + i));
      }
      await again.close();
    },
  );

  test("Store versions, delete and a second handle's refresh()", async (loc, host) => {
    const { store } = await initStore(await loc.open(), {
      hostStorage: new MemoryDriver({ objects: host }),
      config,
      chunking,
    });
    const v1 = await store.put("ns", "doc", body(1, 5000));
    await store.put("ns", "doc", body(2, 6000));
    const other = await open(loc, new Map());
    assert.equal(await other.delete("ns", "doc"), true);
    await assert.rejects(store.get("ns", "nope"), ArtifactNotFoundError);
    await store.refresh();
    await assert.rejects(store.get("ns", "doc"), ArtifactNotFoundError);
    const versions = await store.versions("ns", "doc");
    assert.deepEqual(versions.map((v) => v.deleted), [true, false, false]);
    assert.deepEqual(await store.get("ns", "doc", { version: v1.version }), body(1, 5000));
    assert.equal(await store.delete("ns", "doc"), false);
    await other.close();
    await store.close();
  });
}
