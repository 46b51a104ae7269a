import assert from "node:assert/strict";
import { FaultyDriver } from "../drivers/faulty.ts";
import { MemoryDriver } from "../drivers/memory.ts";
import { openLocalFs } from "../drivers/localfs/mod.ts";
import { ulidTime } from "../format/ulid.ts";
import { PACK_PREFIX, parsePackKey, PROBE_PREFIX } from "../layout.ts";
import { type CapsaEvent, EventBus } from "./events.ts";
import { initStore, openStore } from "./store.ts";
import { PackClock } from "./clock.ts";

const MINUTE = 60_000;

async function packTimes(driver: MemoryDriver): Promise<number[]> {
  const times = [];
  for await (const info of driver.list(PACK_PREFIX)) times.push(ulidTime(parsePackKey(info.key)!));
  return times;
}

for (const skew of [+20 * MINUTE, -20 * MINUTE]) {
  Deno.test(`Store.put() on a host whose clock is ${skew / MINUTE} min off draws pack ids from the Location's clock`, async () => {
    const driver = new MemoryDriver(); // the Location's clock: Date.now
    const { store: init } = await initStore(driver);
    await init.close();
    const bus = new EventBus();
    const warnings: CapsaEvent[] = [];
    bus.subscribe((e) => {
      if (e.type === "warning" && e.code === "clock_skew") warnings.push(e);
    });
    const store = await openStore(driver, { clock: () => Date.now() + skew, bus });
    await store.put("ns", "k", new TextEncoder().encode("skewed host"));
    await store.close();
    const [time] = await packTimes(driver);
    assert.ok(
      Math.abs(time! - Date.now()) < 10_000,
      `pack time ${time} is off by ${time! - Date.now()} ms`,
    );
    assert.equal(warnings.length, 1, "one clock_skew warning");
    // The probe is gone.
    assert.deepEqual(await Array.fromAsync(driver.list(PROBE_PREFIX)), []);
  });
}

Deno.test("PackClock.sync() measures once per interval and not at all for a host on time", async () => {
  const counting = new FaultyDriver(new MemoryDriver());
  const puts = () => counting.calls.put;
  let now = Date.now();
  const clock = new PackClock(counting, () => now, new EventBus(), () => "s");
  await clock.sync();
  await clock.sync();
  assert.equal(puts(), 1);
  assert.ok(Math.abs(clock.offset) < 2_000);
  now += 11 * MINUTE; // the host's clock was stepped: measured again
  await clock.sync();
  assert.equal(puts(), 2);
  assert.ok(Math.abs(clock.offset + 11 * MINUTE) < 2_000, `offset ${clock.offset}`);
});

Deno.test("LocalFsDriver.stat() reports the time the file system stamped", async () => {
  const root = await Deno.makeTempDir();
  try {
    const driver = await openLocalFs(`${root}/s`, { create: true });
    const before = Date.now();
    await driver.put("k", new Uint8Array([1]));
    const { modified } = await driver.stat("k");
    assert.ok(modified !== undefined && Math.abs(modified - before) < 5_000);
    await driver.close();
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("Store.snapshotIndex() on a host 20 min ahead, before any put, leaves later pack ids on the Location's clock", async () => {
  const driver = new MemoryDriver();
  const { store: init } = await initStore(driver);
  await init.close();
  const store = await openStore(driver, { clock: () => Date.now() + 20 * MINUTE });
  await store.snapshotIndex(); // draws an id from the generator pack ids come from
  await store.put("ns", "k", new TextEncoder().encode("after the snapshot"));
  await store.close();
  for (const time of await packTimes(driver)) {
    assert.ok(Math.abs(time - Date.now()) < 10_000, `pack time off by ${time - Date.now()} ms`);
  }
});
