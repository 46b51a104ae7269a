import assert from "node:assert/strict";
import { testDriverConformance } from "./testing/conformance.ts";
import { NotFoundError, TransientError } from "./driver.ts";
import { FaultyDriver, READ_METHODS, WRITE_METHODS } from "./faulty.ts";
import { MemoryDriver } from "./memory.ts";

testDriverConformance("faulty(memory)", () => {
  const objects = new Map<string, Uint8Array>();
  return Promise.resolve({
    driver: new FaultyDriver(new MemoryDriver({ objects })),
    reopen: () => Promise.resolve(new FaultyDriver(new MemoryDriver({ objects }))),
    dispose: () => Promise.resolve(),
  });
});

const one = new Uint8Array([1]);

async function collect(d: FaultyDriver, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const i of d.list(prefix)) out.push(i.key);
  return out;
}

Deno.test("FaultyDriver fails the n-th matching call once and counts every call", async () => {
  const inner = new MemoryDriver();
  const d = new FaultyDriver(inner);
  d.inject({ methods: WRITE_METHODS, nth: 2 });
  await d.put("a", one);
  await assert.rejects(d.put("b", one), TransientError);
  await d.put("c", one);
  assert.deepEqual([...inner.objects.keys()].sort(), ["a", "c"]);
  assert.equal(d.calls.put, 3);
  assert.equal(d.writes, 3);
  assert.deepEqual(d.fired, [{ method: "put", key: "b" }]);
});

Deno.test("FaultyDriver with crash fails every later call, of any method", async () => {
  const inner = new MemoryDriver();
  const d = new FaultyDriver(inner, { faults: [{ methods: WRITE_METHODS, nth: 1, crash: true }] });
  await assert.rejects(d.put("a", one), TransientError);
  assert.equal(d.crashed, true);
  await assert.rejects(d.get("a"), TransientError);
  await assert.rejects(d.delete("a"), TransientError);
  assert.equal(inner.objects.size, 0);
  d.clear();
  await d.put("a", one);
  assert.equal(inner.objects.size, 1);
});

Deno.test("FaultyDriver put modes: after stores then fails, partial stores a prefix", async () => {
  const inner = new MemoryDriver();
  const d = new FaultyDriver(inner);
  d.inject({ methods: ["put"], key: "lost-ack", mode: "after" });
  d.inject({ methods: ["put"], key: /^torn/, mode: "torn" });
  d.inject({ methods: ["put"], key: "partial", mode: "partial", tornBytes: 3 });
  const body = new Uint8Array([1, 2, 3, 4, 5, 6]);
  await assert.rejects(d.put("lost-ack", body), TransientError);
  assert.deepEqual(inner.objects.get("lost-ack"), body);
  await inner.put("torn/old", new Uint8Array([9]));
  await assert.rejects(d.put("torn/old", body), TransientError);
  assert.deepEqual(inner.objects.get("torn/old"), new Uint8Array([9]));
  await assert.rejects(d.put("partial", body), TransientError);
  assert.deepEqual(inner.objects.get("partial"), new Uint8Array([1, 2, 3]));
});

Deno.test("FaultyDriver key filters and custom errors target one object", async () => {
  const d = new FaultyDriver(new MemoryDriver());
  d.inject({
    methods: READ_METHODS,
    key: (k) => k.startsWith("packs/"),
    error: (_m, k) => new NotFoundError(k),
  });
  await d.put("packs/1", one);
  await d.put("other", one);
  await assert.rejects(d.get("packs/1"), NotFoundError);
  await assert.rejects(d.stat("packs/1"), NotFoundError);
  assert.deepEqual(await d.get("other"), one);
});

Deno.test("FaultyDriver seeded rate faults are reproducible", async () => {
  async function pattern(seed: number): Promise<boolean[]> {
    const d = new FaultyDriver(new MemoryDriver(), { seed, faults: [{ rate: 0.5 }] });
    const out: boolean[] = [];
    for (let i = 0; i < 64; i++) out.push(await d.put(`k${i}`, one).then(() => true, () => false));
    return out;
  }
  const a = await pattern(7);
  assert.deepEqual(await pattern(7), a);
  assert.notDeepEqual(await pattern(8), a);
  const failures = a.filter((ok) => !ok).length;
  assert.ok(failures > 16 && failures < 48, `${failures} of 64 failed at rate 0.5`);
});

Deno.test("FaultyDriver.list() can be cut short after n entries", async () => {
  const d = new FaultyDriver(new MemoryDriver());
  for (const k of ["a", "b", "c", "d"]) await d.put(k, one);
  const remove = d.inject({ methods: ["list"], afterEntries: 2 });
  const seen: string[] = [];
  await assert.rejects(async () => {
    for await (const i of d.list("")) seen.push(i.key);
  }, TransientError);
  assert.deepEqual(seen, ["a", "b"]);
  remove();
  assert.deepEqual(await collect(d, ""), ["a", "b", "c", "d"]);
});

Deno.test("FaultyDriver latency delays matching calls without failing them", async () => {
  const d = new FaultyDriver(new MemoryDriver(), {
    faults: [{ methods: ["get"], latencyMs: 30, latencyOnly: true }],
  });
  await d.put("k", one);
  const t0 = performance.now();
  assert.deepEqual(await d.get("k"), one);
  assert.ok(performance.now() - t0 >= 25);
});
