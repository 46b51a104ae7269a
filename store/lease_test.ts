import assert from "node:assert/strict";
import { MemoryDriver } from "../drivers/memory.ts";
import { FaultyDriver } from "../drivers/faulty.ts";
import { type CapsaEvent, EventBus } from "./events.ts";
import {
  acquireLease,
  LeaseHeldError,
  LeaseLostError,
  readLease,
  STALE_MARKER_MS,
} from "./lease.ts";
import { LEASE_KEY, TAKEOVER_PREFIX } from "../layout.ts";

const base = { storeId: "S", agent: "RebuildIndex", ttlMs: 60_000 };

Deno.test("acquireLease() gives the lease to exactly one of many racing acquirers", async () => {
  const d = new MemoryDriver();
  const results = await Promise.allSettled(
    Array.from(
      { length: 10 },
      (_, i) => acquireLease(d, { ...base, pid: 1000 + i, isAlive: () => true }),
    ),
  );
  const won = results.filter((r) => r.status === "fulfilled");
  assert.equal(won.length, 1);
  for (const r of results) {
    if (r.status === "rejected") assert.ok(r.reason instanceof LeaseHeldError);
  }
  const held = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
  assert.match((held.reason as Error).message, /RebuildIndex on .* \(pid 10\d\d\) until \d{4}-/);
});

Deno.test("acquireLease() takes over an expired lease, with an event, and only once", async () => {
  const d = new MemoryDriver();
  let now = 1_000_000;
  const clock = () => now;
  const bus = new EventBus();
  const events: CapsaEvent[] = [];
  bus.subscribe((e) => events.push(e));
  const first = await acquireLease(d, { ...base, clock, host: "a", pid: 1 });
  now += 61_000;
  const takers = await Promise.allSettled([
    acquireLease(d, { ...base, clock, host: "b", pid: 2, bus }),
    acquireLease(d, { ...base, clock, host: "c", pid: 3, bus }),
  ]);
  assert.equal(takers.filter((r) => r.status === "fulfilled").length, 1);
  assert.equal(
    events.filter((e) => e.type === "warning" && e.code === "lease_taken_over").length,
    1,
  );
  await assert.rejects(first.check(), LeaseLostError);
  await first.release(); // a lost lease is not deleted by its old holder
  const current = await readLease(d);
  assert.ok(current !== null && current !== "invalid" && current.generation === 1);
});

Deno.test("acquireLease() refuses a live lease and breaks it only with force", async () => {
  const d = new MemoryDriver();
  const bus = new EventBus();
  const events: CapsaEvent[] = [];
  bus.subscribe((e) => events.push(e));
  const held = await acquireLease(d, { ...base, host: "a", pid: 1 });
  await assert.rejects(acquireLease(d, { ...base, host: "b", pid: 2 }), LeaseHeldError);
  const forced = await acquireLease(d, { ...base, host: "b", pid: 2, force: true, bus });
  assert.ok(events.some((e) => e.type === "warning" && e.code === "lease_broken"));
  await assert.rejects(held.check(), /taken over by RebuildIndex on b/);
  await forced.release();
  assert.equal(await readLease(d), null);
});

Deno.test("acquireLease() takes over a lease left by a dead process of the same host", async () => {
  const d = new MemoryDriver();
  await acquireLease(d, { ...base, host: "h", pid: 41 });
  await assert.rejects(
    acquireLease(d, { ...base, host: "h", pid: 42, isAlive: () => true }),
    LeaseHeldError,
  );
  // Another host cannot tell whether pid 41 lives: it must wait for the TTL.
  await assert.rejects(
    acquireLease(d, { ...base, host: "x", pid: 41, isAlive: () => false }),
    LeaseHeldError,
  );
  const taken = await acquireLease(d, {
    ...base,
    host: "h",
    pid: 42,
    isAlive: (pid) => pid !== 41,
  });
  await taken.release();
});

Deno.test("acquireLease() skips a takeover marker whose taker died, once it is stale", async () => {
  const d = new MemoryDriver();
  let now = 5_000_000;
  const clock = () => now;
  await acquireLease(d, { ...base, clock, host: "a", pid: 1 });
  now += 61_000;
  // A taker won marker 1 and died before writing the lease.
  await d.put(
    `${TAKEOVER_PREFIX}0000000001`,
    new TextEncoder().encode(JSON.stringify({ at: now })),
  );
  await assert.rejects(acquireLease(d, { ...base, clock, host: "b", pid: 2 }), LeaseHeldError);
  now += STALE_MARKER_MS;
  const taken = await acquireLease(d, { ...base, clock, host: "b", pid: 2 });
  assert.equal(taken.record.generation, 2);
  assert.equal(d.objects.has(`${TAKEOVER_PREFIX}0000000001`), false);
});

Deno.test("Lease.check() fails once the lease expired unrenewed, was deleted or rewritten", async () => {
  let now = 0;
  const d = new MemoryDriver();
  const lease = await acquireLease(d, { ...base, clock: () => now });
  await lease.renew();
  now += 59_000;
  await lease.check();
  now += 2_000;
  await assert.rejects(lease.check(), /expired/);

  const d2 = new MemoryDriver();
  const l2 = await acquireLease(d2, base);
  await d2.delete(LEASE_KEY);
  await assert.rejects(l2.check(), /deleted/);

  const d3 = new MemoryDriver();
  const l3 = await acquireLease(d3, base);
  await d3.put(LEASE_KEY, new TextEncoder().encode("garbage"));
  await assert.rejects(l3.check(), /unreadable/);
  await assert.rejects(acquireLease(d3, base), LeaseHeldError);
  await (await acquireLease(d3, { ...base, force: true })).release();
});

Deno.test("Lease.startRenewing() keeps a short lease alive past its TTL", async () => {
  const d = new MemoryDriver();
  const lease = await acquireLease(d, { ...base, ttlMs: 90 });
  lease.startRenewing();
  await new Promise((r) => setTimeout(r, 250));
  await lease.check();
  await lease.release();
  assert.equal(await readLease(d), null);
});

Deno.test("acquireLease() without race-free create-only confirms by reading back", async () => {
  const inner = new MemoryDriver();
  const d = new FaultyDriver(inner);
  Object.defineProperty(d, "capabilities", { value: { createOnly: false, durable: false } });
  const lease = await acquireLease(d, { ...base, settleMs: 5 });
  await lease.release();
  // Another writer overwrote the lease during the settle window: the acquirer backs off.
  const racing = acquireLease(d, { ...base, settleMs: 50 });
  await new Promise((r) => setTimeout(r, 10));
  await inner.put(
    LEASE_KEY,
    new TextEncoder().encode(JSON.stringify({
      format: "capsa-lease",
      version: 1,
      storeId: "S",
      agent: "Other",
      host: "z",
      pid: 9,
      processStart: null,
      nonce: "n",
      generation: 0,
      acquiredAt: 0,
      expiresAt: Date.now() + 60_000,
      ttlMs: 60_000,
    })),
  );
  await assert.rejects(racing, /Other on z/);
});

Deno.test("acquireLease() takes over again within a minute after a takeover, a release and a second crash", async () => {
  const d = new MemoryDriver();
  const dead = () => false;
  await acquireLease(d, { ...base, host: "h", pid: 1 }); // crashes: never released
  const second = await acquireLease(d, { ...base, host: "h", pid: 2, isAlive: dead });
  await second.release(); // finished cleanly; its takeover marker stays behind
  await acquireLease(d, { ...base, host: "h", pid: 3 }); // a fresh lease, then a crash
  const fourth = await acquireLease(d, { ...base, host: "h", pid: 4, isAlive: dead });
  const held = await readLease(d);
  assert.ok(held !== null && held !== "invalid" && held.pid === 4);
  await fourth.release();
});

Deno.test("acquireLease() refuses a damaged lease, naming it and --force, and breaks it with force", async () => {
  const d = new MemoryDriver();
  await d.put(
    LEASE_KEY,
    new TextEncoder().encode('{"format":"capsa-lease","version":1,"nonce":null}'),
  );
  await assert.rejects(
    acquireLease(d, { ...base, host: "a", pid: 1 }),
    (e) =>
      e instanceof LeaseHeldError && e.message.includes(LEASE_KEY) &&
      e.message.includes("--force") &&
      !e.message.includes("wait for it to finish"),
  );
  const taken = await acquireLease(d, { ...base, host: "a", pid: 1, force: true });
  assert.equal(taken.record.generation, 1);
});

Deno.test("acquireLease() refuses a damaged takeover marker with a typed error naming it", async () => {
  for (const text of ["null", "42", "[]", "{", ""]) {
    const d = new MemoryDriver();
    let now = 5_000_000;
    const clock = () => now;
    await acquireLease(d, { ...base, clock, host: "a", pid: 1 });
    now += 61_000 + STALE_MARKER_MS;
    const marker = `${TAKEOVER_PREFIX}0000000001`;
    await d.put(marker, new TextEncoder().encode(text));
    await assert.rejects(
      acquireLease(d, { ...base, clock, host: "b", pid: 2 }),
      (e) =>
        e instanceof LeaseHeldError && e.message.includes(marker) && e.message.includes("--force"),
      `a marker holding ${JSON.stringify(text)}`,
    );
    const taken = await acquireLease(d, { ...base, clock, host: "b", pid: 2, force: true });
    assert.equal(taken.record.generation, 2);
  }
});
