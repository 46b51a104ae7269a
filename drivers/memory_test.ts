import assert from "node:assert/strict";
import { testDriverConformance } from "./testing/conformance.ts";
import { MemoryDriver } from "./memory.ts";

testDriverConformance("memory", () => {
  const objects = new Map<string, Uint8Array>();
  return Promise.resolve({
    driver: new MemoryDriver({ objects }),
    reopen: () => Promise.resolve(new MemoryDriver({ objects })),
    dispose: () => Promise.resolve(),
  });
});

Deno.test("MemoryDriver exposes the map and clock a test owns", async () => {
  const objects = new Map<string, Uint8Array>();
  let now = 1000;
  const driver = new MemoryDriver({ objects, clock: () => now, name: "memory:test" });
  await driver.put("a", new Uint8Array([1, 2]));
  objects.get("a")![0] = 9;
  assert.deepEqual(await driver.get("a"), new Uint8Array([9, 2]));
  now += 5;
  assert.equal(driver.clock(), 1005);
  assert.equal(driver.location, "memory:test");
});
