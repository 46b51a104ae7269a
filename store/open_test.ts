import assert from "node:assert/strict";
import { MemoryDriver } from "../drivers/memory.ts";
import { CapsaError, HostStorageRequiredError, InvalidArgumentError } from "../errors.ts";
import { DESCRIPTOR_REPLICA_KEY, PACK_PREFIX } from "../layout.ts";
import { initStore, openStore } from "./store.ts";

type Objects = Map<string, Uint8Array>;
const enc = new TextEncoder();

function copy(m: Objects): Objects {
  return new Map([...m].map(([k, v]) => [k, v.slice()]));
}

async function storeWith(
  manifestStorage: "Local" | "Replicated",
): Promise<{ objects: Objects; host: Objects }> {
  const objects: Objects = new Map();
  const host: Objects = new Map();
  const { store } = await initStore(new MemoryDriver({ objects }), {
    hostStorage: new MemoryDriver({ objects: host }),
    config: { manifestStorage, packLingerMs: 1 },
  });
  await store.put("ns", "a", enc.encode("a body long enough not to be inline ".repeat(8)));
  await store.close();
  return { objects, host };
}

Deno.test("openStore() refuses a Local store without host storage with HostStorageRequiredError, writing nothing", async () => {
  const { objects, host } = await storeWith("Local");
  // A missing replica that an open would heal: the refusal comes before any write.
  objects.delete(DESCRIPTOR_REPLICA_KEY);
  const before = copy(objects);
  for (const readOnly of [false, true]) {
    await assert.rejects(
      openStore(new MemoryDriver({ objects }), { readOnly }),
      (e: unknown) => e instanceof HostStorageRequiredError && e.code === "host_storage_required",
    );
    assert.deepEqual(objects, before);
  }
  // With its host storage the same store opens, heals and answers.
  const store = await openStore(new MemoryDriver({ objects }), {
    hostStorage: new MemoryDriver({ objects: host }),
  });
  assert.equal(store.state, "Ready", store.problems.join("; "));
  assert.ok(objects.has(DESCRIPTOR_REPLICA_KEY));
  assert.equal((await store.stat("ns", "a")).key, "a");
  await store.close();
});

Deno.test("Store.put() on a Replicated store opened without host storage fails before writing a pack", async () => {
  const { objects } = await storeWith("Replicated");
  const store = await openStore(new MemoryDriver({ objects }));
  const packs = () => [...objects.keys()].filter((k) => k.startsWith(PACK_PREFIX)).sort();
  const before = packs();
  // Reads work from the pack TOCs.
  assert.equal((await store.stat("ns", "a")).key, "a");
  await assert.rejects(
    store.put("ns", "b", enc.encode("b")),
    (e: unknown) => e instanceof InvalidArgumentError && /needs host storage/.test(e.message),
  );
  assert.deepEqual(packs(), before);
  await store.close();
});

Deno.test("openStore() on an empty Location is no_store, not a Corrupted store", async () => {
  const e = await openStore(new MemoryDriver()).then(() => undefined, (e: unknown) => e);
  assert.ok(e instanceof CapsaError && e.code === "no_store", String(e));
  assert.match((e as Error).message, /there is no store at .* \(it is empty\)/);
});
