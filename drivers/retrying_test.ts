import assert from "node:assert/strict";
import {
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  PreconditionFailedError,
  TransientError,
} from "../errors.ts";
import { FaultyDriver } from "./faulty.ts";
import { MemoryDriver } from "./memory.ts";
import { retry, type RetryEvent, RetryingDriver } from "./retrying.ts";
import { testDriverConformance } from "./testing/conformance.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A memory Location behind a fault injector behind the wrapper, with fast retries. */
function stack(options: { maxAttempts?: number; signal?: AbortSignal } = {}) {
  const memory = new MemoryDriver();
  const faulty = new FaultyDriver(memory);
  const events: RetryEvent[] = [];
  const driver = new RetryingDriver(faulty, {
    maxAttempts: options.maxAttempts ?? 4,
    baseDelayMs: 1,
    maxDelayMs: 2,
    signal: options.signal,
    onRetry: (e) => {
      events.push(e);
    },
  });
  return { memory, faulty, driver, events };
}

// The wrapper is transparent: a Location whose calls fail one time in five,
// retried, still keeps every promise of the contract.
testDriverConformance("retrying(faulty(memory), 20% transient faults)", () => {
  const objects = new Map<string, Uint8Array>();
  const open = (seed: number) =>
    new RetryingDriver(
      new FaultyDriver(new MemoryDriver({ objects }), { seed, faults: [{ rate: 0.2 }] }),
      { maxAttempts: 30, baseDelayMs: 0, maxDelayMs: 1 },
    );
  return Promise.resolve({
    driver: open(7),
    reopen: () => Promise.resolve(open(11)),
    dispose: () => Promise.resolve(),
  });
});

Deno.test("RetryingDriver retries a retryable error until the call succeeds", async () => {
  const { faulty, driver, events, memory } = stack();
  faulty.inject({ methods: ["put"], times: 2 });
  faulty.inject({ methods: ["get"], times: 3 });
  await driver.put("k", enc.encode("v"));
  assert.equal(dec.decode(await driver.get("k")), "v");
  assert.equal(faulty.calls.put, 3);
  assert.equal(faulty.calls.get, 4);
  assert.deepEqual(events.map((e) => [e.operation, e.key, e.attempt]), [
    ["put", "k", 1],
    ["put", "k", 2],
    ["get", "k", 1],
    ["get", "k", 2],
    ["get", "k", 3],
  ]);
  assert.ok(events.every((e) => e.error instanceof TransientError && e.delayMs <= 2));
  assert.equal(dec.decode(memory.objects.get("k")!), "v");
});

Deno.test("RetryingDriver does not retry an error that is not retryable", async () => {
  const { faulty, driver, events } = stack();
  await assert.rejects(driver.get("missing"), NotFoundError);
  assert.equal(faulty.calls.get, 1);
  faulty.inject({
    methods: ["put"],
    error: (_, key) => new PermissionDeniedError(key, "write"),
  });
  await assert.rejects(driver.put("k", enc.encode("v")), PermissionDeniedError);
  assert.equal(faulty.calls.put, 1);
  faulty.inject({ methods: ["stat"], error: () => new Error("a bug, not a failure") });
  await assert.rejects(driver.stat("k"), /a bug/);
  assert.equal(faulty.calls.stat, 1);
  assert.deepEqual(events, []);
});

Deno.test("RetryingDriver gives up after maxAttempts with the last error, attempts counted", async () => {
  const { faulty, driver, events } = stack({ maxAttempts: 3 });
  const cause = new Error("ECONNRESET");
  faulty.inject({
    methods: ["getRange"],
    error: (m, key) => new TransientError(`${m} of ${key} reset`, { cause }),
  });
  await assert.rejects(driver.getRange("k", 0, 1), (e: unknown) => {
    assert.ok(e instanceof TransientError, String(e));
    assert.match(e.message, /getRange of k reset \(gave up after 3 attempts\)/);
    assert.equal(e.cause, cause);
    return true;
  });
  assert.equal(faulty.calls.getRange, 3);
  assert.equal(events.length, 2);
});

Deno.test("RetryingDriver stops retrying when its signal aborts, during the wait too", async () => {
  const controller = new AbortController();
  const memory = new MemoryDriver();
  const faulty = new FaultyDriver(memory, { faults: [{ methods: ["get"] }] });
  const driver = new RetryingDriver(faulty, {
    maxAttempts: 100,
    baseDelayMs: 60_000,
    maxDelayMs: 60_000,
    signal: controller.signal,
    delayHintMs: () => 60_000,
    onRetry: () => controller.abort(new Error("stopped by the operator")),
  });
  await memory.put("k", enc.encode("v"));
  const started = Date.now();
  await assert.rejects(driver.get("k"), /stopped by the operator/);
  assert.ok(Date.now() - started < 5_000, "the one-minute wait was cut short");
  assert.equal(faulty.calls.get, 1);
  await assert.rejects(driver.get("k"), /stopped by the operator/);
  assert.equal(faulty.calls.get, 1, "no attempt after the abort");
});

Deno.test("retry() retries only retryable errors and honours an aborted signal", async () => {
  let calls = 0;
  assert.equal(
    await retry((attempt) => {
      calls++;
      return attempt < 3 ? Promise.reject(new TransientError("busy")) : Promise.resolve(attempt);
    }, { baseDelayMs: 0 }),
    3,
  );
  assert.equal(calls, 3);
  const aborted = AbortSignal.abort(new Error("no"));
  await assert.rejects(retry(() => Promise.resolve(1), { signal: aborted }), /no/);
  assert.throws(
    () => new RetryingDriver(new MemoryDriver(), { maxAttempts: 0 }),
    InvalidArgumentError,
  );
  await assert.rejects(retry(() => Promise.resolve(1), { baseDelayMs: -1 }), InvalidArgumentError);
});

Deno.test("RetryingDriver.list() resumes after the last key it yielded", async () => {
  const { memory, faulty, driver, events } = stack({ maxAttempts: 2 });
  const keys = Array.from({ length: 10 }, (_, i) => `k/${String(i).padStart(2, "0")}`);
  for (const k of keys) await memory.put(k, enc.encode(k));
  // Three cuts, each after some progress: with two attempts allowed, this
  // completes only because the attempts count again after each entry.
  faulty.inject({ methods: ["list"], afterEntries: 4, times: 1 });
  faulty.inject({ methods: ["list"], afterEntries: 3, times: 1 });
  faulty.inject({ methods: ["list"], afterEntries: 1, times: 1 });
  const listed: string[] = [];
  for await (const info of driver.list("k/")) listed.push(info.key);
  assert.deepEqual(listed, keys);
  assert.equal(faulty.calls.list, 4);
  assert.deepEqual(events.map((e) => [e.operation, e.key, e.attempt]), [
    ["list", "k/", 1],
    ["list", "k/", 1],
    ["list", "k/", 1],
  ]);
  // Two failures in a row without progress: the listing fails, never ends short.
  faulty.inject({ methods: ["list"], times: 2 });
  await assert.rejects(
    (async () => {
      for await (const _ of driver.list("k/", { startAfter: "k/05" })) { /* nothing */ }
    })(),
    TransientError,
  );
});

Deno.test("RetryingDriver: a create-only put whose answer was lost succeeds once, another's is refused", async () => {
  const { faulty, driver, memory } = stack();
  // The first attempt lands, but the caller sees a failure; the retry is
  // refused (the key exists) and the object, read back, holds our bytes.
  faulty.inject({ methods: ["put"], mode: "after", times: 1 });
  await driver.put("lease", enc.encode("ours"), { ifAbsent: true });
  assert.equal(faulty.calls.put, 2);
  assert.equal(dec.decode(memory.objects.get("lease")!), "ours");
  // Someone else's object stays refused, even after a failed attempt.
  faulty.inject({ methods: ["put"], mode: "before", times: 1 });
  await assert.rejects(
    driver.put("lease", enc.encode("theirs"), { ifAbsent: true }),
    PreconditionFailedError,
  );
  // Without a failed attempt, no read-back: a plain refusal.
  faulty.resetCounts();
  await assert.rejects(
    driver.put("lease", enc.encode("ours"), { ifAbsent: true }),
    PreconditionFailedError,
  );
  assert.equal(faulty.calls.get, 0);
});

Deno.test("RetryingDriver reports the wrapped driver's kind, Location and capabilities", async () => {
  const memory = new MemoryDriver({ name: "memory:x" });
  const driver = new RetryingDriver(memory);
  assert.equal(driver.kind, "memory");
  assert.equal(driver.location, "memory:x");
  assert.deepEqual(driver.capabilities, memory.capabilities);
  assert.equal(driver.inner, memory);
  await driver.close();
  await assert.rejects(driver.get("k"), /closed/);
});
