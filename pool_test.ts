import assert from "node:assert/strict";
import { InvalidArgumentError } from "./errors.ts";
import { pool, poolMap } from "./pool.ts";

const tick = (ms = 1) => new Promise((r) => setTimeout(r, ms));

Deno.test("pool() keeps at most `concurrency` items in flight and runs every item once", async () => {
  for (const concurrency of [1, 3, 50]) {
    let running = 0;
    let peak = 0;
    const seen: number[] = [];
    await pool([...Array(20).keys()], async (i) => {
      running++;
      peak = Math.max(peak, running);
      await tick();
      seen.push(i);
      running--;
    }, { concurrency });
    assert.equal(peak, Math.min(concurrency, 20));
    assert.deepEqual(seen.sort((a, b) => a - b), [...Array(20).keys()]);
  }
});

Deno.test("pool() starts nothing after the first failure, lets running items settle, throws that failure", async () => {
  const started: number[] = [];
  const settled: number[] = [];
  await assert.rejects(
    pool([...Array(20).keys()], async (i) => {
      started.push(i);
      await tick(i === 3 ? 1 : 5);
      settled.push(i);
      if (i === 3) throw new Error("boom");
      if (i === 4) throw new Error("second");
    }, { concurrency: 2 }),
    /boom/,
  );
  assert.ok(started.length <= 5, `started ${started.length}`);
  assert.deepEqual(settled.sort(), started.sort(), "every started item settled before the throw");
});

Deno.test("pool() hands each item a signal that aborts on the first failure", async () => {
  let sawAbort = false;
  await assert.rejects(
    pool([0, 1], async (i, _index, signal) => {
      if (i === 0) {
        await tick();
        throw new Error("first");
      }
      await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve()));
      sawAbort = signal.aborted;
    }, { concurrency: 2 }),
    /first/,
  );
  assert.equal(sawAbort, true);
});

Deno.test("pool() honours an AbortSignal: before the start, and between items", async () => {
  const before = new AbortController();
  before.abort(new Error("stopped early"));
  let calls = 0;
  await assert.rejects(
    pool([1, 2, 3], () => {
      calls++;
      return Promise.resolve();
    }, { concurrency: 1, signal: before.signal }),
    /stopped early/,
  );
  assert.equal(calls, 0);

  const during = new AbortController();
  const done: number[] = [];
  await assert.rejects(
    pool([...Array(10).keys()], async (i) => {
      if (i === 2) during.abort(new Error("stopped"));
      await tick();
      done.push(i);
    }, { concurrency: 1, signal: during.signal }),
    /stopped/,
  );
  assert.deepEqual(done, [0, 1, 2], "the running item settles; no other starts");
});

Deno.test("poolMap() returns the results in the order of the items", async () => {
  const delays = [9, 1, 5, 3, 7, 0];
  const out = await poolMap(delays, async (ms, i) => {
    await tick(ms);
    return `${i}:${ms}`;
  }, { concurrency: 3 });
  assert.deepEqual(out, delays.map((ms, i) => `${i}:${ms}`));
  assert.deepEqual(await poolMap([], () => Promise.resolve(1), { concurrency: 4 }), []);
});

Deno.test("pool() reads a lazy iterable one item per start, and refuses a bad concurrency", async () => {
  let pulled = 0;
  function* items() {
    for (let i = 0; i < 6; i++) {
      pulled++;
      yield i;
    }
  }
  await assert.rejects(
    pool(items(), async (i) => {
      if (i === 1) throw new Error("stop");
      await tick();
    }, { concurrency: 2 }),
    /stop/,
  );
  assert.ok(pulled <= 3, `pulled ${pulled}`);
  for (const concurrency of [0, -1, 1.5, NaN]) {
    await assert.rejects(pool([1], async () => {}, { concurrency }), InvalidArgumentError);
  }
});

Deno.test("pool() bounds concurrency and, after a failure, starts nothing new (the tree transfers' case)", async () => {
  let running = 0;
  let peak = 0;
  const seen: number[] = [];
  await pool([...Array(20).keys()], async (i) => {
    running++;
    peak = Math.max(peak, running);
    await tick();
    seen.push(i);
    running--;
  }, { concurrency: 3 });
  assert.equal(peak, 3);
  assert.equal(seen.length, 20);

  const started: number[] = [];
  await assert.rejects(
    pool([...Array(20).keys()], async (i) => {
      started.push(i);
      await tick();
      if (i === 3) throw new Error("boom");
    }, { concurrency: 2 }),
    /boom/,
  );
  assert.ok(started.length <= 6, `started ${started.length}`);
});
